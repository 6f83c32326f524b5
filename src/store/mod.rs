//! Durable state: records, deliveries, idempotency keys and the exchange log.
//!
//! [`Store`] is the one interface the rest of the gateway uses. It is shaped for
//! two backends: the embedded SQLite store ([`sqlite`]) and PostgreSQL
//! ([`postgres`], for several instances sharing one database).
//! Deliveries are claimed with a lease rather than held in a transaction across
//! a network call: `claim_due` maps to `UPDATE … RETURNING` here and to
//! `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL.

pub mod keyring;
pub mod postgres;
mod sealed;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::model::{DeliveryState, RecordId, RecordType};
use crate::policy::ConsentState;

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
    /// Who the record is about, as a hash (see [`crate::model::subject_key`]); None when the
    /// source gave no stable id.
    pub subject: Option<String>,
    /// When the record is a consent decision: the consent record, stored as
    /// the latest consent of its subject.
    pub consent: Option<ConsentEntry>,
}

/// A consent decision for a subject, from a consent record or the consent API.
#[derive(Debug, Clone)]
pub struct ConsentEntry {
    pub subject: String,
    /// The canonical consent record, JSON.
    pub consent: Vec<u8>,
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
    /// A column holds a value this gateway does not know (written by a newer
    /// version, or edited by hand): needs an operator.
    #[error("store holds unexpected data: {0}")]
    Unknown(#[from] UnknownValue),
    /// Opening or migrating the store failed.
    #[error("store could not be opened: {0}")]
    Open(String),
    /// The store's schema could not be brought up to this build's.
    #[error("store could not be migrated")]
    Migration(#[from] sqlite::MigrationError),
    /// Payload keys cannot be used (a KEK missing from the config, a wrong
    /// KEK, a sealed value that does not open): needs an operator.
    #[error("payload keys cannot be used: {0}")]
    Key(#[from] keyring::KeyError),
    /// A named delivery's record was purged: there is nothing left to send.
    #[error("the payload of the record of deliveries {0:?} was purged")]
    PayloadPurged(Vec<i64>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

/// A stored value that does not decode to one of the gateway's closed enums.
/// Names the column only, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnknownValue {
    #[error("unknown record type")]
    RecordType,
    #[error("unknown delivery status")]
    DeliveryState,
}

/// Decode a stored record type.
pub fn decode_record_type(stored: &str) -> Result<RecordType, UnknownValue> {
    RecordType::parse(stored).ok_or(UnknownValue::RecordType)
}

/// Decode a stored delivery status.
pub fn decode_delivery_state(stored: &str) -> Result<DeliveryState, UnknownValue> {
    DeliveryState::parse(stored).ok_or(UnknownValue::DeliveryState)
}

/// Decode a stored consent record (the canonical consent record, JSON) into
/// the subject's consent state: the one decode every reader of
/// [`Store::latest_consent`] shares.
///
/// A stored consent that no longer decodes (not JSON, or no longer a consent
/// decision this version understands) is treated as absent: it has no
/// decision time to be ordered by, and when no other decision of the subject
/// decodes, the record's own consent fields decide.
pub fn decode_consent(stored: &[u8]) -> Option<ConsentState> {
    let record = serde_json::from_slice::<serde_json::Value>(stored).ok()?;
    ConsentState::from_record(&record)
}

/// The consent in force among a subject's stored decisions, given in arrival
/// order: the one decided last by its own `decided_at` (not the one that
/// arrived last: an older grant delivered late must not override a newer
/// withdrawal); between two decided at the same instant, the later arrival.
/// Decisions that no longer decode are left aside (see [`decode_consent`]).
pub fn consent_in_force<'a>(
    stored_in_arrival_order: impl IntoIterator<Item = &'a [u8]>,
) -> Option<ConsentState> {
    stored_in_arrival_order
        .into_iter()
        .filter_map(decode_consent)
        // max_by_key keeps the last of equal keys: the later arrival.
        .max_by_key(|c| c.decided_at)
}

/// The status of one record, per route. Holds no personal data.
#[derive(Debug, Clone, Serialize)]
pub struct RecordStatus {
    pub id: RecordId,
    #[serde(skip)]
    pub client_id: String,
    pub source: String,
    pub record_type: RecordType,
    pub received_at: String,
    /// When the payload was purged (RFC 3339); ids, statuses and receipts stay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<String>,
    pub routes: Vec<DeliveryStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStatus {
    pub route: String,
    pub destination: String,
    pub status: DeliveryState,
    pub attempts: i64,
    pub receipt: Option<serde_json::Value>,
    pub last_error: Option<String>,
    /// When the status last changed (RFC 3339), if it has since acceptance.
    pub updated_at: Option<String>,
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
    /// Claims including this one. Never goes down (a release gives the
    /// attempt back, not the claim): per-request ids derive from it, so a
    /// request after a rate-limited one, or after a crash, has a new one.
    pub claim: i64,
    pub lease_until: DateTime<Utc>,
    pub client_id: String,
    /// `Err` when the stored type is unknown: that delivery cannot be
    /// rendered (it becomes a dead letter), while the rest of the claim goes on.
    pub record_type: Result<RecordType, UnknownValue>,
    pub received_at: DateTime<Utc>,
    pub subject: Option<String>,
    /// The canonical record, JSON; `Err` when it is gone (purged) and the
    /// delivery can only become a dead letter.
    pub canonical: Result<Vec<u8>, PayloadGone>,
    /// The receipt of the latest earlier delivery of the same subject on this
    /// route that a registry answered (delivered, awaiting or parked with a
    /// receipt): a correction updates what that delivery created.
    pub prior_receipt: Option<serde_json::Value>,
}

/// Why a claimed delivery has no payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadGone {
    /// The record's data key was destroyed.
    Purged,
}

impl PayloadGone {
    /// The reason a dead letter records.
    pub fn reason(self) -> &'static str {
        match self {
            PayloadGone::Purged => "payload-purged",
        }
    }
}

/// A record whose payload was purged, for its audit event (ids and times only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedRecord {
    pub id: RecordId,
    pub client_id: String,
    pub source: String,
    pub record_type: String,
    pub received_at: String,
}

/// What an erasure request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// The data key is destroyed now.
    Purged(PurgedRecord),
    /// It was purged before; nothing more to do.
    AlreadyPurged,
    /// No record of that id belongs to the client.
    NotFound,
    /// A delivery still needs the payload: its state.
    InFlight(DeliveryState),
}

/// Builds the `record.purged` event of a purged record.
pub type PurgeAudit = dyn for<'r> Fn(&'r PurgedRecord) -> AuditEvent + Send + Sync;

/// How a leased delivery ended this time.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The registry registered it (or already had it): its receipt.
    Delivered { receipt: serde_json::Value },
    /// The registry holds it but has not decided: its receipt so far; checked
    /// again at `next_check` (attempts start again from zero).
    Awaiting {
        receipt: serde_json::Value,
        next_check: DateTime<Utc>,
    },
    /// Needs a person before anything more is sent: the reason (codes only).
    Parked { reason: String },
    /// The registry takes this change only through its own process: the
    /// reason, and the receipt holding the registry's reference.
    Referred {
        reason: String,
        receipt: serde_json::Value,
    },
    /// Failed; due again at `next_attempt`.
    Retry {
        next_attempt: DateTime<Utc>,
        error: String,
    },
    /// Will not be retried: a permanent refusal or too many attempts.
    Dead { error: String },
    /// The policy no longer lets it go (consent withdrawn): the reason.
    Cancelled { reason: String },
    /// Not attempted (shutdown, quota, closed window): due again at
    /// `next_attempt`, and the claim does not count as an attempt.
    Released { next_attempt: DateTime<Utc> },
}

impl DeliveryOutcome {
    /// The delivery's status once this outcome is recorded.
    pub fn status(&self) -> DeliveryState {
        match self {
            DeliveryOutcome::Delivered { .. } => DeliveryState::Delivered,
            DeliveryOutcome::Awaiting { .. } => DeliveryState::Awaiting,
            DeliveryOutcome::Parked { .. } => DeliveryState::Parked,
            DeliveryOutcome::Referred { .. } => DeliveryState::Referred,
            DeliveryOutcome::Retry { .. } | DeliveryOutcome::Released { .. } => {
                DeliveryState::Pending
            }
            DeliveryOutcome::Dead { .. } => DeliveryState::Dead,
            DeliveryOutcome::Cancelled { .. } => DeliveryState::Cancelled,
        }
    }
}

/// The outcome of one leased delivery, recorded with its audit event in one transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: i64,
    /// The lease holder; a worker whose lease was taken over records nothing.
    pub worker: String,
    /// The claim this outcome is for ([`ClaimedDelivery::claim`]): the
    /// fence. The same worker may claim a delivery again once its lease ran
    /// out; the earlier claim's late outcome is then not recorded.
    pub claim: i64,
    pub outcome: DeliveryOutcome,
    pub at: DateTime<Utc>,
    pub audit: Option<AuditEvent>,
}

/// A delivery that will not be retried until an operator replays it (a dead
/// letter), or that waits for a person (parked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub delivery_id: i64,
    pub record_id: String,
    pub route: String,
    pub destination: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: Option<String>,
}

/// Who owns a record and whom it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOwner {
    pub client_id: String,
    pub record_type: RecordType,
    pub subject: Option<String>,
    /// The source's stable id of the record (`source_record_id`), if it gave one.
    pub source_record_id: Option<String>,
}

/// Deliveries per destination and status, for progress and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryCount {
    pub destination: String,
    pub status: DeliveryState,
    pub count: i64,
}

/// One stored event of the exchange log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub event: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

/// A signed checkpoint of the exchange log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    /// The signed note, exactly as served.
    pub note: String,
    pub signed_at: DateTime<Utc>,
}

/// A stored leaf hash, which must be 32 bytes.
pub(crate) fn stored_leaf(hash: Vec<u8>) -> Result<[u8; 32], StoreError> {
    hash.try_into()
        .map_err(|_| StoreError::Corrupt("a leaf hash is not 32 bytes".into()))
}

/// `(seq, leaf_hash)` rows of the log in order, checked: entry `i` is seq
/// `i + 1`, so a gap means rows were deleted.
pub(crate) fn log_leaves(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<[u8; 32]>, StoreError> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (seq, hash))| {
            if seq != i as i64 + 1 {
                return Err(StoreError::Corrupt(format!(
                    "the exchange log has a gap before seq {seq}"
                )));
            }
            stored_leaf(hash)
        })
        .collect()
}

/// A checkpoint row (size, root, note, signed_at) as stored by either backend.
pub(crate) fn stored_checkpoint(
    size: i64,
    root: Vec<u8>,
    note: String,
    signed_at: &str,
) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: size.max(0) as u64,
        root: root
            .try_into()
            .map_err(|_| StoreError::Corrupt("a checkpoint root is not 32 bytes".into()))?,
        note,
        signed_at: DateTime::parse_from_rfc3339(signed_at)
            .map_err(|_| StoreError::Corrupt("a checkpoint time is not RFC 3339".into()))?
            .with_timezone(&Utc),
    })
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

    /// Record how a leased delivery ended, with its audit event, in one
    /// transaction. `Ok(false)`: the lease was no longer this worker's, so
    /// nothing was recorded.
    async fn complete(&self, completion: Completion) -> Result<bool, StoreError>;

    /// Give back every lease (the embedded store at start: it is the only
    /// process using its file, so any lease held is a crashed run's).
    async fn release_all_leases(&self) -> Result<u64, StoreError>;

    /// Dead letters, oldest first, optionally of one destination.
    async fn dead_letters(
        &self,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Parked deliveries, oldest first, optionally of one destination.
    async fn parked(
        &self,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Make dead letters due again (all of `destination`, or the given ids),
    /// with attempts reset; they leave in their original order per subject.
    /// Parked deliveries are sent again only when named by id: an operator
    /// has checked that the registry does not hold them.
    /// One audit event per replayed delivery, built by `audit`.
    async fn replay(
        &self,
        destination: Option<&str>,
        ids: &[i64],
        now: DateTime<Utc>,
        audit: &(dyn for<'d> Fn(&'d DeadLetter) -> AuditEvent + Send + Sync),
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// The consent in force for a subject ([`consent_in_force`]: the latest
    /// by its decision time, decoded by [`decode_consent`]); `None` when none
    /// is recorded or none decodes.
    async fn latest_consent(&self, subject: &str) -> Result<Option<ConsentState>, StoreError>;

    /// Who owns a record and whom it is about, if the record exists.
    async fn record_owner(&self, id: RecordId) -> Result<Option<RecordOwner>, StoreError>;

    /// Deliveries per destination and status.
    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError>;

    /// Events with `from <= seq <= to`, in order.
    async fn audit_events(&self, from: i64, to: i64) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// How many events the log holds (its tree size; entry `i` is `seq` i + 1).
    async fn audit_size(&self) -> Result<u64, StoreError>;

    /// The leaf hashes of the log's first `size` entries, in log order.
    async fn audit_leaf_hashes(&self, size: u64) -> Result<Vec<[u8; 32]>, StoreError>;

    /// The events about one record, in log order.
    async fn audit_events_of_record(
        &self,
        record_id: &str,
    ) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// The checkpoint signed last, if any.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Append a signed checkpoint, durably.
    async fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;
    /// Purge (destroy the data key of) up to `limit` records received before
    /// `cutoff` whose every delivery is final ([`DeliveryState::is_final`]),
    /// each with its `record.purged` event, in one transaction; then the
    /// freed pages are wiped from the files. Returns the purged records.
    async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
        audit: &PurgeAudit,
    ) -> Result<Vec<PurgedRecord>, StoreError>;

    /// Purge one record now, at the request of `client_id`, its owner.
    async fn erase(
        &self,
        id: RecordId,
        client_id: &str,
        now: DateTime<Utc>,
        audit: &PurgeAudit,
    ) -> Result<Erasure, StoreError>;

    /// Count one request to `destination` against its daily quota of
    /// registry day `day`, if fewer than `quota` were counted; `false` when
    /// the day's quota is spent. Kept in the store: a restart keeps the
    /// day's count, and on PostgreSQL every instance shares it.
    async fn take_quota(
        &self,
        destination: &str,
        day: NaiveDate,
        quota: u32,
    ) -> Result<bool, StoreError>;

    /// Whether the GCRA state of each destination lives here, shared by the
    /// instances using this store ([`Store::take_cell`]); otherwise each
    /// process paces itself in memory.
    fn shares_limits(&self) -> bool {
        false
    }

    /// Take one GCRA cell of `destination` (one request per `period`,
    /// `burst` at once): `None` when taken, else how long to wait before
    /// asking again. Only meaningful when [`Store::shares_limits`].
    async fn take_cell(
        &self,
        _destination: &str,
        _period: Duration,
        _burst: u32,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(None)
    }

    /// Whether this process signs checkpoints now. The embedded store's
    /// process always does; on PostgreSQL one instance at a time does (an
    /// advisory lock, free again when its holder dies).
    async fn checkpoint_leader(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Is the store reachable? For `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finish pending writes and close.
    async fn close(&self);
}

#[cfg(test)]
mod tests;
