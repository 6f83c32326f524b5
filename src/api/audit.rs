//! Auditors (role auditor, read only): the exchange log's signed checkpoint,
//! its public key, its entries, inclusion and consistency proofs, a record's
//! events and the self-contained bundle. Formats: docs/audit.md. Operators
//! (role admin) may ask for a checkpoint now.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::audit::bundle;
use crate::audit::merkle::{Hash, Tree};
use crate::checkpoints::Checkpointer;
use crate::model::{RecordId, Role};
use crate::store::{StoredAuditEvent, StoredCheckpoint};

/// Entries one page (entries, bundle) holds at most; ask again for more.
pub const MAX_PAGE: u64 = 1000;

fn bad_request(detail: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "urn:registry-gateway:problem:bad-request",
        "The request is malformed",
    )
    .detail(detail)
}

fn store_down() -> Problem {
    Problem::unavailable("the store is not reachable", 5)
}

/// The signer, or a 404 when this gateway does not sign its log.
fn signer(state: &AppState) -> Result<&Arc<Checkpointer>, Problem> {
    state.checkpoints.as_ref().ok_or_else(|| {
        Problem::not_found(
            "this gateway does not sign its exchange log ([audit] is not configured)",
        )
    })
}

fn text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// The latest stored checkpoint, signing one first if none exists yet.
async fn latest(state: &AppState) -> Result<StoredCheckpoint, Problem> {
    let signer = signer(state)?;
    match state
        .store
        .latest_checkpoint()
        .await
        .map_err(|_| store_down())?
    {
        Some(cp) if signer.verifier().open(&cp.note).is_ok() => Ok(cp),
        _ => signer
            .sign_now()
            .await
            .map_err(|e| Problem::unavailable(&e.to_string(), 30)),
    }
}

/// The log's tree up to `size` entries, from the stored leaf hashes.
async fn tree(state: &AppState, size: u64) -> Result<Tree, Problem> {
    let leaves = state
        .store
        .audit_leaf_hashes(size)
        .await
        .map_err(|_| store_down())?;
    Ok(Tree::new(leaves))
}

async fn log_size(state: &AppState) -> Result<u64, Problem> {
    state.store.audit_size().await.map_err(|_| store_down())
}

fn entry_json(e: &StoredAuditEvent) -> Value {
    json!({
        "index": e.seq - 1,
        "leaf": B64.encode(&e.event),
        "event": serde_json::from_slice::<Value>(&e.event).unwrap_or(Value::Null),
    })
}

/// `GET /v1/audit/public-key`: the C2SP verifier key line.
pub async fn public_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    Ok(text(format!("{}\n", signer(&state)?.verifier().to_line())))
}

/// `GET /v1/audit/checkpoint`: the latest signed note.
pub async fn checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    Ok(text(latest(&state).await?.note))
}

/// `POST /v1/admin/audit/checkpoint` (admin): sign the log as it is now.
pub async fn sign_now(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let cp = signer(&state)?
        .sign_now()
        .await
        .map_err(|e| Problem::unavailable(&e.to_string(), 30))?;
    Ok(text(cp.note))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    start: u64,
    end: u64,
}

fn range(query: Result<Query<RangeQuery>, QueryRejection>) -> Result<(u64, u64), Problem> {
    let Query(q) = query.map_err(|_| bad_request("use start and end, non-negative integers"))?;
    if q.start > q.end {
        return Err(bad_request("start must not be after end"));
    }
    Ok((q.start, q.end))
}

/// `GET /v1/audit/entries?start=N&end=M`: entries `N..M` (end exclusive),
/// at most [`MAX_PAGE`], and none past the end of the log.
pub async fn entries(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    let (start, end) = range(query)?;
    let end = end.min(start.saturating_add(MAX_PAGE));
    let events = read_range(&state, start, end).await?;
    let entries: Vec<Value> = events.iter().map(entry_json).collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

async fn read_range(
    state: &AppState,
    start: u64,
    end: u64,
) -> Result<Vec<StoredAuditEvent>, Problem> {
    if start >= end {
        return Ok(Vec::new());
    }
    let (from, to) = (
        i64::try_from(start + 1).map_err(|_| bad_request("start is too large"))?,
        i64::try_from(end).map_err(|_| bad_request("end is too large"))?,
    );
    state
        .store
        .audit_events(from, to)
        .await
        .map_err(|_| store_down())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    index: u64,
    tree_size: u64,
}

/// `GET /v1/audit/proof/inclusion?index=I&tree_size=S`: the audit path.
pub async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    let Query(q) =
        query.map_err(|_| bad_request("use index and tree_size, non-negative integers"))?;
    if q.index >= q.tree_size || q.tree_size > log_size(&state).await? {
        return Err(bad_request(
            "index must be below tree_size, and tree_size at most the log's size",
        ));
    }
    let path = tree(&state, q.tree_size)
        .await?
        .inclusion_proof(q.index, q.tree_size)
        .map_err(|_| bad_request("no such proof"))?;
    let hashes: Vec<String> = path.iter().map(b64).collect();
    Ok(
        Json(json!({"leaf_index": q.index, "tree_size": q.tree_size, "hashes": hashes}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    first: u64,
    second: u64,
}

/// `GET /v1/audit/proof/consistency?first=M&second=N`.
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    let Query(q) = query.map_err(|_| bad_request("use first and second, non-negative integers"))?;
    if q.first > q.second || q.second > log_size(&state).await? {
        return Err(bad_request(
            "first must not be above second, and second at most the log's size",
        ));
    }
    let proof = tree(&state, q.second)
        .await?
        .consistency_proof(q.first, q.second)
        .map_err(|_| bad_request("no such proof"))?;
    let hashes: Vec<String> = proof.iter().map(b64).collect();
    Ok(Json(json!({"first": q.first, "second": q.second, "hashes": hashes})).into_response())
}

/// `GET /v1/audit/records/{id}`: the events about one record, each with its
/// audit path to the latest checkpoint (`null` for an event the checkpoint
/// does not cover yet).
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    let id = RecordId::parse(&id).ok_or_else(|| Problem::not_found("no record with this id"))?;
    let events = state
        .store
        .audit_events_of_record(&id.to_string())
        .await
        .map_err(|_| store_down())?;
    if events.is_empty() {
        return Err(Problem::not_found(
            "the exchange log holds no event about this record",
        ));
    }
    let cp = latest(&state).await?;
    let tree = tree(&state, cp.size).await?;
    let entries: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut entry = entry_json(e);
            let path = tree
                .inclusion_proof((e.seq - 1) as u64, cp.size)
                .ok()
                .map(|p| p.iter().map(b64).collect::<Vec<_>>());
            entry["inclusion"] = json!(path);
            entry
        })
        .collect();
    Ok(Json(json!({"checkpoint": cp.note, "entries": entries})).into_response())
}

/// `GET /v1/audit/bundle?start=N&end=M`: entries `N..M` (at most
/// [`MAX_PAGE`], none past the latest checkpoint) with the checkpoint and
/// each entry's audit path to it: what `registry-gateway audit verify
/// --bundle` checks offline.
pub async fn bundle(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Auditor)?;
    let (start, end) = range(query)?;
    let cp = latest(&state).await?;
    let end = end.min(start.saturating_add(MAX_PAGE)).min(cp.size);
    let start = start.min(end);
    let events = read_range(&state, start, end).await?;
    let tree = tree(&state, cp.size).await?;
    let leaves: Vec<Vec<u8>> = events.into_iter().map(|e| e.event).collect();
    let bundle = bundle::build(&cp.note, cp.size, &tree, start, &leaves)
        .map_err(|_| Problem::unavailable("the exchange log changed while it was read", 1))?;
    Ok(Json(bundle).into_response())
}
