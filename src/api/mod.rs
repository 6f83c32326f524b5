//! The HTTP surface. Handlers translate between HTTP and the library; the work
//! itself happens in `intake` and `store`.
//!
//! Architecture invariant: every error response is RFC 9457 problem+json, and
//! none repeats a value from a record.

mod admin;
mod audit;
pub mod auth;
mod console;
pub mod gate;
pub mod problem;
mod records;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::intake::Intake;
use crate::model::Role;
use crate::store::Store;
use crate::telemetry::{Metrics, ResponseLabels};
use auth::Caller;
use problem::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub intake: Arc<Intake>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// Wakes the delivery workers when deliveries become due (replay, consent).
    pub nudge: Option<Arc<tokio::sync::Notify>>,
    /// Each destination's pace and recent activity (None when not delivering).
    pub activity: Option<Arc<crate::delivery::activity::Activity>>,
    /// The exchange log's checkpoint signer (`[audit]`), if configured.
    pub checkpoints: Option<Arc<crate::checkpoints::Checkpointer>>,
}

impl AppState {
    /// A 503 when the exchange log has gone unsigned too long: records are
    /// not taken while their events cannot be committed to a checkpoint.
    pub fn refuse_unsigned(&self) -> Result<(), Problem> {
        match self.checkpoints.as_ref().and_then(|c| c.refusal()) {
            Some(reason) => Err(Problem::unavailable(&reason, 30)),
            None => Ok(()),
        }
    }
}

/// The OpenAPI description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the API serves, in one place: (method, path template, handler).
///
/// The router is built from this table and nothing else, so the table is the
/// route list that axum cannot give back. Two tests hold it to the document:
/// `tests/it/openapi.rs` checks over real HTTP that each entry reaches a
/// handler (not the fallback 404 or axum's 405), that no other method is
/// served on these paths, and that the (method, path) set equals the
/// OpenAPI `paths`; `routes_are_added_only_through_the_table` (below) fails
/// when a `.route(...)`, `.nest(...)` or `.merge(...)` appears anywhere else
/// in `src/`. To add an endpoint: add a line here and its operation to
/// `openapi.json`.
fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (
            Method::POST,
            "/v1/sources/{source}/records",
            post(records::submit),
        ),
        (Method::GET, "/v1/records/{id}", get(records::status)),
        (Method::DELETE, "/v1/records/{id}", delete(records::erase)),
        (
            Method::POST,
            "/v1/records/{id}/consent",
            post(records::consent),
        ),
        (
            Method::GET,
            "/v1/records/{id}/consent",
            get(records::consent_fhir),
        ),
        (
            Method::GET,
            "/v1/admin/dead-letters",
            get(admin::dead_letters),
        ),
        (
            Method::POST,
            "/v1/admin/dead-letters/replay",
            post(admin::replay),
        ),
        (Method::GET, "/v1/admin/parked", get(admin::parked)),
        (Method::GET, "/v1/admin/deliveries", get(admin::deliveries)),
        (
            Method::GET,
            "/v1/admin/destinations",
            get(admin::destinations),
        ),
        (Method::GET, "/v1/whoami", get(console::whoami)),
        (Method::GET, "/v1/manifest", get(console::manifest)),
        (Method::GET, "/console/", get(console::index)),
        (Method::GET, "/console/{asset}", get(console::asset)),
        (Method::GET, "/v1/audit/public-key", get(audit::public_key)),
        (Method::GET, "/v1/audit/checkpoint", get(audit::checkpoint)),
        (Method::GET, "/v1/audit/entries", get(audit::entries)),
        (
            Method::GET,
            "/v1/audit/proof/inclusion",
            get(audit::inclusion),
        ),
        (
            Method::GET,
            "/v1/audit/proof/consistency",
            get(audit::consistency),
        ),
        (Method::GET, "/v1/audit/records/{id}", get(audit::record)),
        (Method::GET, "/v1/audit/bundle", get(audit::bundle)),
        (
            Method::POST,
            "/v1/admin/audit/checkpoint",
            post(audit::sign_now),
        ),
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/readyz", get(readyz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/openapi.json", get(openapi)),
    ]
}

/// The (method, path template) of every route [`router`] serves.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

pub fn router(state: AppState) -> Router {
    let gate = Arc::new(gate::Gate::new(&state.config));
    let timeout = state.config.server.request_timeout;
    let max_body = state.config.server.max_body_bytes;
    // Entries on one path merge into one method router.
    let api = routes()
        .into_iter()
        .fold(Router::new(), |api, (_, path, handler)| {
            api.route(path, handler)
        });
    api.fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            max_body,
            refuse_announced_oversize,
        ))
        .layer(middleware::from_fn_with_state(gate, gate::gate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(timeout_response))
                .timeout(timeout),
        )
        .layer(middleware::from_fn(errors_as_problems))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await.is_err() {
        return Problem::unavailable("the store is not reachable", 5).into_response();
    }
    match state.refuse_unsigned() {
        Ok(()) => "ready\n".into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// `/metrics` on the API's address: a client of role metrics (a scraper)
/// or admin. On `server.metrics_listen` it is served without a token
/// ([`metrics_router`]).
async fn metrics(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(p) = caller.require_any(&[Role::Metrics, Role::Admin]) {
        return p.into_response();
    }
    render_metrics(&state.metrics)
}

/// The router of `server.metrics_listen`: `/metrics`, tokenless, and nothing
/// else (the address is meant to be private to the scraper).
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new().fallback(move |request: Request| {
        let metrics = metrics.clone();
        async move {
            if request.method() == Method::GET && request.uri().path() == "/metrics" {
                render_metrics(&metrics)
            } else {
                Problem::not_found("this address serves GET /metrics only").into_response()
            }
        }
    })
}

fn render_metrics(metrics: &Metrics) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn not_found() -> Problem {
    Problem::not_found("no such path; see /openapi.json")
}

/// Count responses by status and log each request without its content.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state
        .metrics
        .http_responses
        .get_or_create(&ResponseLabels { status })
        .inc();
    tracing::debug!(%method, %path, status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}

/// A body announced larger than the cap is refused before a byte of it is
/// read: the body limit alone would wait for the bytes past the cap, which a
/// client announcing a gigabyte may never send.
async fn refuse_announced_oversize(
    State(max_body): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    if announces_more_than(&request, max_body) {
        return Problem::too_large().into_response();
    }
    next.run(request).await
}

/// Whether the request's Content-Length announces more than `max` bytes.
fn announces_more_than(request: &Request, max: usize) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

/// The last line of "every error is problem+json": an error answer that some
/// layer or extractor wrote in another form (axum's 405 and 413 are empty or
/// text/plain) is replaced by a problem of the same status. Its headers
/// (Allow, Retry-After) are kept.
async fn errors_as_problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let problem = Problem::for_status(status).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

async fn timeout_response(_: tower::BoxError) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "urn:registry-gateway:problem:timeout",
        "The request took too long; nothing is confirmed",
    )
    .detail("resend with the same Idempotency-Key: a record stored meanwhile is answered, not stored twice")
    .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "urn:registry-gateway:problem:internal",
        "Internal error; nothing is confirmed",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The route table is only the router's whole list if nothing adds a
    /// route beside it: outside the one call in `router`, no file of `src/`
    /// that uses axum may call `route`, `route_service`, `nest`,
    /// `nest_service` or `merge` (comments aside).
    #[test]
    fn routes_are_added_only_through_the_table() {
        let calls: Vec<String> = ["route", "route_service", "nest", "nest_service", "merge"]
            .iter()
            .map(|name| format!(".{name}("))
            .collect();
        let mut found = Vec::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                if !text.contains("axum") {
                    continue;
                }
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    if calls.iter().any(|c| code.contains(c.as_str())) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, code));
                    }
                }
            }
        }
        // The one call in `router` (spelt so that this line is not a match).
        let table_call = format!("api.{}(path, handler)", "route");
        assert!(
            found.len() == 1 && found[0].ends_with(&table_call),
            "routes must be added through `routes()` in src/api/mod.rs (and documented in \
             openapi.json), not beside it; found:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_route_table_names_each_method_and_path_once() {
        let table = super::route_table();
        let mut seen = std::collections::HashSet::new();
        for (method, path) in &table {
            assert!(
                seen.insert((method.clone(), *path)),
                "{method} {path} twice"
            );
        }
    }
}
