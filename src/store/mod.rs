//! Durable state: records, deliveries, idempotency keys and the exchange log.
//!
//! [`Store`] is the one interface the rest of the gateway uses. It is shaped for
//! two backends: the embedded SQLite store ([`sqlite`]) and PostgreSQL (planned).
//! Deliveries are claimed with a lease rather than held in a transaction across
//! a network call: `claim_due` maps to `UPDATE … RETURNING` here and to
//! `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL.

pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::model::{RecordId, RecordType};

/// A validated record, ready to be committed with its deliveries and its audit event.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub id: RecordId,
    pub client_id: String,
    pub source: String,
    pub record_type: RecordType,
    pub received_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of (source, body): what makes a replay "the same request".
    pub request_sha256: [u8; 32],
    /// The canonical record, as JSON bytes.
    pub canonical: Vec<u8>,
    pub deliveries: Vec<NewDelivery>,
    pub audit: AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub route: String,
    pub destination: String,
}

/// What `accept` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Committed now.
    Created(RecordId),
    /// The same client sent the same key and body before: nothing new stored.
    Replayed(RecordId),
    /// The same client sent the same key with a different body: nothing stored.
    Conflict(RecordId),
}

/// Store failures, classified by what the caller does about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the write: try again later.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The transaction this request rode in did not commit: nothing of it was stored.
    #[error("commit failed; nothing was stored")]
    CommitFailed,
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// Data in the store is not what the gateway wrote: needs an operator.
    #[error("store holds unexpected data: {0}")]
    Corrupt(String),
    /// Opening or migrating the store failed.
    #[error("store could not be opened: {0}")]
    Open(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

/// The status of one record, per route. Holds no personal data.
#[derive(Debug, Clone, Serialize)]
pub struct RecordStatus {
    pub id: RecordId,
    #[serde(skip)]
    pub client_id: String,
    pub source: String,
    pub record_type: String,
    pub received_at: String,
    pub routes: Vec<DeliveryStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStatus {
    pub route: String,
    pub destination: String,
    pub status: String,
    pub attempts: i64,
    pub receipt: Option<serde_json::Value>,
    pub last_error: Option<String>,
}

/// A delivery leased to one worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    pub record_id: RecordId,
    pub route: String,
    pub destination: String,
    /// Attempts including this one.
    pub attempt: i64,
    pub lease_until: DateTime<Utc>,
}

/// One stored event of the exchange log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub event: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit a record, one delivery per route and its audit event in one
    /// transaction, honouring the idempotency key. Returns after the commit is durable.
    async fn accept(&self, record: NewRecord) -> Result<AcceptOutcome, StoreError>;

    /// Append one event to the exchange log, durably. Returns its sequence number.
    async fn append_audit(&self, event: AuditEvent) -> Result<i64, StoreError>;

    async fn record_status(&self, id: RecordId) -> Result<Option<RecordStatus>, StoreError>;

    /// Lease up to `limit` due deliveries of `destination` to `worker` for `lease`.
    /// A delivery whose lease has expired is due again.
    async fn claim_due(
        &self,
        destination: &str,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Events with `from <= seq <= to`, in order.
    async fn audit_events(&self, from: i64, to: i64) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// Is the store reachable? For `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finish pending writes and close.
    async fn close(&self);
}
