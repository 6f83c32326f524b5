//! The HTTP surface. Handlers translate between HTTP and the library; the work
//! itself happens in `intake` and `store`.
//!
//! Architecture invariant: every error response is RFC 9457 problem+json, and
//! none repeats a value from a record.

mod admin;
pub mod auth;
pub mod problem;
mod records;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::intake::Intake;
use crate::store::Store;
use crate::telemetry::{Metrics, ResponseLabels};
use auth::Clients;
use problem::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub clients: Arc<Clients>,
    pub intake: Arc<Intake>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// Wakes the delivery workers when deliveries become due (replay, consent).
    pub nudge: Option<Arc<tokio::sync::Notify>>,
}

/// The OpenAPI description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: AppState) -> Router {
    let timeout = state.config.server.request_timeout;
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .route("/v1/sources/{source}/records", post(records::submit))
        .route("/v1/records/{id}", get(records::status))
        .route(
            "/v1/records/{id}/consent",
            post(records::consent).get(records::consent_fhir),
        )
        .route("/v1/admin/dead-letters", get(admin::dead_letters))
        .route("/v1/admin/dead-letters/replay", post(admin::replay))
        .route("/v1/admin/deliveries", get(admin::deliveries))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(timeout_response))
                .timeout(timeout),
        )
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(_) => Problem::unavailable("the store is not reachable", 5).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
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
