//! The console's routes: its page and assets (embedded, [`crate::console`]),
//! and the two reads it needs beside the JSON API: who the token is, and
//! the data-sharing manifest.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::console::{self, Asset, CSP};
use crate::model::Role;

/// The headers of every console response.
fn hardened(asset: &Asset) -> Response {
    let headers: [(HeaderName, HeaderValue); 7] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Revalidated on every load: a new gateway's console is never mixed
        // with an old one's cached scripts. No data is in them, only code.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, asset.body).into_response()
}

/// `GET /console/`: the page.
pub async fn index() -> Response {
    match console::asset("index.html") {
        Some(asset) => hardened(asset),
        None => Problem::not_found("the console is not built in").into_response(),
    }
}

/// `GET /console/{asset}`: a script, the style sheet or the icon.
pub async fn asset(Path(name): Path<String>) -> Response {
    match console::asset(&name) {
        Some(asset) => hardened(asset),
        None => Problem::not_found("the console has no such file").into_response(),
    }
}

/// `GET /v1/whoami`: the calling client's id and role (what the console
/// shows and which views it offers; the API decides what each may read).
pub async fn whoami(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({"client": caller.0.id, "role": caller.0.role.as_str()}))
}

/// `GET /v1/manifest` (auditor or admin): the data-sharing manifest, as
/// `registry-gateway manifest --format json` prints it, with each route's
/// policy in plain words (`policy_text`).
pub async fn manifest(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require_any(&[Role::Auditor, Role::Admin])?;
    let manifest = crate::manifest::build(state.intake.pipeline());
    let mut value = serde_json::to_value(&manifest)
        .map_err(|_| Problem::unavailable("the manifest cannot be written", 5))?;
    for (route, json) in manifest
        .routes
        .iter()
        .zip(value["routes"].as_array_mut().into_iter().flatten())
    {
        json["policy_text"] = json!(crate::manifest::route_policy_markdown(route));
    }
    Ok(Json(value).into_response())
}
