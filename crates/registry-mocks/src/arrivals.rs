//! The arrival log: every request that reached a registry or token endpoint,
//! with its time, so tests check pace, duplicates and outcomes. It holds ids,
//! hashes, codes and statuses, never a body.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lock;

/// Which kind of endpoint a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Token or session creation (and Primero's token deletion).
    Token,
    /// The registry's submission endpoint.
    Submit,
    /// Anything else (answered 404 in the registry's dialect).
    Unknown,
}

/// What the registry did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Registered (a token endpoint: a token or session was issued).
    Accepted,
    /// The idempotency key was already registered: nothing new was stored.
    Duplicate,
    /// A stored registration was replaced by a newer version (a FHIR update).
    Updated,
    /// The key was registered with different content (Examplia `Client.Duplicate`).
    Conflict,
    /// Refused as invalid; nothing stored.
    Rejected,
    /// Missing, wrong or expired credentials.
    Unauthorized,
    /// An injected fault or the maintenance window: 5xx, reset or no answer.
    Fault,
    /// Refused by a limit (rate, daily quota, concurrency).
    Limited,
    /// Not a registry endpoint.
    NotFound,
}

#[derive(Debug, Clone, Serialize)]
pub struct Arrival {
    /// 1, 2, ... in arrival order.
    pub seq: u64,
    /// When the request arrived (monotonic; for pace checks).
    #[serde(skip)]
    pub at: Instant,
    /// Milliseconds since the mock started, from `at`.
    pub elapsed_ms: f64,
    /// The mock clock's time at arrival.
    pub received_at: DateTime<Utc>,
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    /// The registry's idempotency key, when the request carried one it could read.
    pub idempotency_key: Option<String>,
    pub outcome: Outcome,
    /// HTTP status; None when the mock never answered (reset, timeout).
    pub status: Option<u16>,
    /// The receipt: tracking id, registry reference, resource or case id.
    pub reference: Option<String>,
    /// A code saying why (fault code, limit, rule), never a value.
    pub detail: Option<String>,
    /// SHA-256 (hex) of the request body, to tell identical resends apart.
    pub body_sha256: Option<String>,
}

/// Bounded: a long demo must not grow without end.
const MAX_KEPT: usize = 100_000;

pub(crate) struct ArrivalLog {
    started: Instant,
    state: Mutex<(u64, Vec<Arrival>)>,
}

/// What the pipeline knows about a request when it is answered.
pub(crate) struct Entry {
    pub at: Instant,
    pub received_at: DateTime<Utc>,
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body_sha256: Option<String>,
}

impl ArrivalLog {
    pub fn new() -> ArrivalLog {
        ArrivalLog {
            started: Instant::now(),
            state: Mutex::new((0, Vec::new())),
        }
    }

    pub fn record(
        &self,
        entry: Entry,
        outcome: Outcome,
        status: Option<u16>,
        reference: Option<String>,
        detail: Option<String>,
    ) {
        let mut state = lock(&self.state);
        state.0 += 1;
        let arrival = Arrival {
            seq: state.0,
            at: entry.at,
            elapsed_ms: entry
                .at
                .saturating_duration_since(self.started)
                .as_secs_f64()
                * 1000.0,
            received_at: entry.received_at,
            endpoint: entry.endpoint,
            method: entry.method,
            path: entry.path,
            idempotency_key: entry.idempotency_key,
            outcome,
            status,
            reference,
            detail,
            body_sha256: entry.body_sha256,
        };
        if state.1.len() >= MAX_KEPT {
            state.1.drain(..MAX_KEPT / 2);
        }
        // Answers can finish out of order; keep the log in arrival order.
        let position = state.1.partition_point(|a| a.at <= arrival.at);
        state.1.insert(position, arrival);
    }

    pub fn all(&self) -> Vec<Arrival> {
        lock(&self.state).1.clone()
    }

    pub fn clear(&self) {
        lock(&self.state).1.clear();
    }
}
