//! Operators (role admin): dead letters and parked deliveries, their replay,
//! and delivery counts.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::audit::{AuditEvent, AuditKind, DeliveryAudit};
use crate::model::Role;
use crate::store::{DeadLetter, StoreError};

const MAX_LIST: u32 = 10_000;

/// Ids one replay request may name: a page of the dead-letter list's size
/// class, well inside what one store statement binds.
pub const MAX_REPLAY_IDS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    destination: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/admin/dead-letters?destination=&limit=`
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    list(&state, &caller, query, Waiting::DeadLetters).await
}

/// `GET /v1/admin/parked?destination=&limit=`: deliveries whose last attempt
/// may or may not have registered the record, at a registry that honours no
/// idempotency key. An operator checks the registry, then replays those it
/// does not hold (by id) and leaves the rest.
pub async fn parked(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    list(&state, &caller, query, Waiting::Parked).await
}

/// Which deliveries waiting for an operator a list shows.
#[derive(Clone, Copy)]
enum Waiting {
    DeadLetters,
    Parked,
}

/// Deliveries waiting for an operator, as `{"dead_letters" | "parked": [...]}`.
async fn list(
    state: &AppState,
    caller: &Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    which: Waiting,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let Query(query) = query.map_err(|_| {
        bad_request("unknown or malformed query parameter; use destination and limit")
    })?;
    let limit = query.limit.unwrap_or(1000).clamp(1, MAX_LIST);
    let destination = query.destination.as_deref();
    let (key, listed) = match which {
        Waiting::DeadLetters => (
            "dead_letters",
            state.store.dead_letters(destination, limit).await,
        ),
        Waiting::Parked => ("parked", state.store.parked(destination, limit).await),
    };
    let listed = listed.map_err(|_| Problem::unavailable("the store is not reachable", 5))?;
    Ok(Json(json!({ key: listed })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay every dead letter of this destination (with `ids`: only those of it).
    destination: Option<String>,
    /// Replay these deliveries (dead letters, or parked deliveries the
    /// operator has checked the registry does not hold).
    #[serde(default)]
    ids: Vec<i64>,
}

/// `POST /v1/admin/dead-letters/replay` with `{"destination"?, "ids"?}`; at
/// least one must be given, so that an empty body never replays everything.
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    super::records::require_json(&headers, false)?;
    let body = body.map_err(Problem::from_body_rejection)?;
    let request: ReplayRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(&format!(
            "the body must be {{\"destination\": string, \"ids\": [integer]}} (error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if request.ids.len() > MAX_REPLAY_IDS {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:registry-gateway:problem:too-many-ids",
            "Too many delivery ids in one replay",
        )
        .detail(format!(
            "/ids: at most {MAX_REPLAY_IDS} per request; send the rest in further requests"
        )));
    }
    if request.destination.is_none() && request.ids.is_empty() {
        return Err(bad_request(
            "name a destination or list delivery ids to replay",
        ));
    }
    if let Some(d) = &request.destination
        && !state.config.destinations.contains_key(d)
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:registry-gateway:problem:unknown-destination",
            "No destination of that name is configured",
        )
        .detail("/destination"));
    }
    let admin = caller.0.id.clone();
    let now = Utc::now();
    let audit = move |d: &DeadLetter| replay_event(&admin, d, now);
    let replayed = state
        .store
        .replay(request.destination.as_deref(), &request.ids, now, &audit)
        .await
        .map_err(|e| match e {
            StoreError::PayloadPurged(ids) => Problem::new(
                StatusCode::CONFLICT,
                "urn:registry-gateway:problem:payload-purged",
                "The payload of a named delivery's record was purged",
            )
            .detail(format!(
                "/ids: deliveries {ids:?} belong to purged records; nothing was replayed"
            )),
            _ => Problem::unavailable("the store is not reachable", 5),
        })?;
    if let Some(nudge) = &state.nudge {
        nudge.notify_waiters();
    }
    tracing::info!(count = replayed.len(), "dead letters replayed");
    Ok(Json(json!({"replayed": replayed})).into_response())
}

fn replay_event(admin: &str, d: &DeadLetter, at: chrono::DateTime<Utc>) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::DeliveryReplayed, at, admin, "admin");
    event.record_id = Some(d.record_id.clone());
    event.delivery = Some(DeliveryAudit::new(
        &d.route,
        &d.destination,
        d.delivery_id,
        d.attempts,
    ));
    event
}

/// `GET /v1/admin/deliveries`: counts per destination and status.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let counts = delivery_counts(&state).await?;
    Ok(Json(json!({"deliveries": counts})).into_response())
}

async fn delivery_counts(state: &AppState) -> Result<Vec<crate::store::DeliveryCount>, Problem> {
    state
        .store
        .delivery_counts()
        .await
        .map_err(|_| Problem::unavailable("the store is not reachable", 5))
}

fn bad_request(detail: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "urn:registry-gateway:problem:bad-request",
        "The request is malformed",
    )
    .detail(detail)
}

/// `GET /v1/admin/destinations`: per destination, deliveries by status (the
/// store), and what holds it now and its last hour (the worker's pace and
/// activity, in memory): the operators' console overview.
pub async fn destinations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let counts = delivery_counts(&state).await?;
    let now = Utc::now();
    let mut live = state
        .activity
        .as_ref()
        .map(|a| a.snapshot(now))
        .unwrap_or_default();
    let destinations: Vec<_> = state
        .config
        .destinations
        .values()
        .map(|d| {
            let by_status: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .filter(|c| c.destination == d.name)
                .map(|c| (c.status.as_str().to_string(), json!(c.count)))
                .collect();
            let activity = live.remove(&d.name);
            json!({
                "name": d.name,
                "kind": d.kind.as_str(),
                "deliveries": by_status,
                // Null when this gateway runs no worker for it (serve --no-deliver).
                "pace": activity.as_ref().map(|a| &a.pace),
                "minutes": activity.as_ref().map(|a| &a.minutes),
            })
        })
        .collect();
    Ok(Json(json!({
        "at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "destinations": destinations,
    }))
    .into_response())
}
