//! The embedded store: one SQLite file in the data directory, WAL journal,
//! `synchronous=FULL` (a commit is on disk before anyone is told "accepted").
//!
//! Writes that answer an agency (`accept`, `append_audit`) go through one
//! writer task that commits them in groups: every request waiting when a
//! transaction starts rides in it, written with a few multi-row statements, so
//! one fsync and a handful of statements serve hundreds of accepts. A group
//! that fails is retried request by request, so a bad request cannot take its
//! neighbours down.
//! Reads use a small pool; WAL lets them run beside the writer.
//!
//! Intake asks for the latest consent of every record's subject, and most
//! subjects never had one: the store keeps a hash of every subject with a
//! consent row (`ConsentSubjects`, loaded at open, added to by the writer
//! before the commit that makes the row visible) and answers "none" for the
//! others without a query.
//!
//! The writer never checkpoints (`wal_autocheckpoint = 0` on its
//! connection): copying the WAL back into the database and syncing it took
//! tens of milliseconds inside a commit every thousand pages, while every
//! waiting accept queued behind it (the p99 at a fixed 1,000 records/s,
//! docs/perf). A checkpointer task on a connection of its own runs passive
//! checkpoints beside the writer, which SQLite's WAL allows.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::keyring::{KeyError, Keyring};
use super::{
    AcceptOutcome, ClaimedDelivery, Completion, DeadLetter, DeliveryCount, DeliveryOutcome,
    DeliveryStatus, Erasure, NewRecord, PurgeAudit, PurgedRecord, RecordOwner, RecordStatus, Store,
    StoreError, StoredAuditEvent, StoredCheckpoint, consent_in_force, decode_delivery_state,
    decode_record_type, log_leaves, stored_checkpoint, stored_leaf,
};
use crate::audit::{AuditEvent, leaf_hash};
use crate::model::{DeliveryState, RecordId};
use crate::policy::ConsentState;
use crate::telemetry::StoreMetrics;

const DB_FILE: &str = "gateway.db";
/// How long a connection waits for a lock another holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests committed together at most; bounds a transaction's size and latency.
const MAX_GROUP: usize = 512;
/// Requests waiting for the writer at most; beyond that, callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;
/// How the WAL is kept short: copied back often, and started over once long.
const WAL_UPKEEP: WalUpkeep = WalUpkeep {
    // At 1,000 records/s, 50 ms of WAL is about a megabyte.
    checkpoint_every: Duration::from_millis(50),
    // 16 MiB of 4 KiB pages.
    restart_at_frames: 4096,
};
/// Frames a checkpoint pass may find new and still count as caught up.
const LITTLE_LEFT_FRAMES: i64 = 64;

/// The checkpointer copies the WAL back into the database every
/// `checkpoint_every`, beside the writer. Passive checkpoints alone never let
/// the WAL start over while commits keep coming (it is never wholly copied
/// back at the moment a transaction begins), so under sustained intake it
/// grew without bound (2 GB after 45 s at full speed, every commit appending
/// to a longer file, each fsync slower). Past `restart_at_frames`, the writer
/// starts it over between two groups, and SQLite truncates the file back to
/// that size (`journal_size_limit`).
#[derive(Clone, Copy)]
struct WalUpkeep {
    checkpoint_every: Duration,
    restart_at_frames: i64,
}

mod migrate;
mod payload;
pub use migrate::MigrationError;

/// A migrator error of either backend, classified.
pub fn classify_migration_error(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(migrate::classify(e))
}

pub struct SqliteStore {
    reads: SqlitePool,
    consent_subjects: Arc<ConsentSubjects>,
    keyring: Arc<Keyring>,
    writes: Mutex<Option<mpsc::Sender<WriteOp>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<(Arc<tokio::sync::Notify>, JoinHandle<()>)>>,
}

enum WriteOp {
    Accept(
        Box<NewRecord>,
        oneshot::Sender<Result<AcceptOutcome, StoreError>>,
    ),
    Audit(Box<AuditEvent>, oneshot::Sender<Result<i64, StoreError>>),
    Complete(Box<Completion>, oneshot::Sender<Result<bool, StoreError>>),
    Claim(
        Box<Claim>,
        oneshot::Sender<Result<Vec<ClaimedDelivery>, StoreError>>,
    ),
}

/// The store holds children's records: its folder is the owner's alone
/// (0700 when created here) and its file is created 0600. SQLite gives the
/// WAL and shared-memory files the database file's permissions.
fn private_store_files(data_dir: &Path) -> Result<(), StoreError> {
    use std::fs::{DirBuilder, OpenOptions};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let cannot = |what: &Path, e: std::io::Error| {
        StoreError::Open(format!("cannot create {}: {e}", what.display()))
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| cannot(data_dir, e))?;
    let file = data_dir.join(DB_FILE);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&file)
        .map_err(|e| cannot(&file, e))?;
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the store in `data_dir`, run migrations,
    /// check that `keyring` unwraps the stored data keys, re-wrap those of
    /// earlier KEKs under the current one and seal rows older builds wrote
    /// in plaintext.
    pub async fn open(
        data_dir: &Path,
        metrics: StoreMetrics,
        keyring: Arc<Keyring>,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_checkpointing(data_dir, metrics, keyring, WAL_UPKEEP).await
    }

    /// `open`, with the WAL's upkeep (tests stop the checkpointer or restart
    /// sooner).
    async fn open_checkpointing(
        data_dir: &Path,
        metrics: StoreMetrics,
        keyring: Arc<Keyring>,
        upkeep: WalUpkeep,
    ) -> Result<SqliteStore, StoreError> {
        private_store_files(data_dir)?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Open(e.to_string()))?
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted content (a destroyed data key, a replaced plaintext)
            // is overwritten with zeros, not left in free space.
            .pragma("secure_delete", "ON")
            .busy_timeout(BUSY_TIMEOUT);
        let mut writer = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        migrate::migrate(&mut writer).await?;
        payload::check_keks(&mut writer, &keyring).await?;
        let changed = payload::rewrap(&mut writer, &keyring).await?
            + payload::seal_plaintext(&mut writer, &keyring).await?;
        if changed > 0 {
            payload::wipe_wal(&mut writer).await?;
        }
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut writer)
            .await?;
        sqlx::query(&format!(
            "PRAGMA journal_size_limit = {}",
            upkeep.restart_at_frames.saturating_mul(4096)
        ))
        .execute(&mut writer)
        .await?;
        let checkpoints = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let consent_subjects = Arc::new(ConsentSubjects::load(&reads).await?);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let wal_restart = Arc::new(AtomicBool::new(false));
        let handle = tokio::spawn(run_writer(
            writer,
            rx,
            metrics,
            keyring.clone(),
            consent_subjects.clone(),
            wal_restart.clone(),
        ));
        let stop = Arc::new(tokio::sync::Notify::new());
        let checkpointer = tokio::spawn(run_checkpointer(
            checkpoints,
            upkeep,
            stop.clone(),
            wal_restart,
        ));
        Ok(SqliteStore {
            reads,
            consent_subjects,
            keyring,
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some((stop, checkpointer))),
        })
    }

    /// Deliveries waiting for an operator in `status`, oldest first.
    async fn stopped(
        &self,
        status: DeliveryState,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, record_id, route, destination, attempts, last_error, updated_at
               FROM deliveries
              WHERE status = ?1 AND (?2 IS NULL OR destination = ?2)
              ORDER BY id LIMIT ?3",
        )
        .bind(status.as_str())
        .bind(destination)
        .bind(limit as i64)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(dead_letter).collect())
    }

    async fn submit(&self, op: WriteOp) -> Result<(), StoreError> {
        let sender = self.writes.lock().await.clone().ok_or(StoreError::Closed)?;
        sender.send(op).await.map_err(|_| StoreError::Closed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(&self, record: NewRecord) -> Result<AcceptOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Accept(Box::new(record), tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<i64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Audit(Box::new(event), tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn record_status(&self, id: RecordId) -> Result<Option<RecordStatus>, StoreError> {
        let id_text = id.to_string();
        let Some(row) = sqlx::query(
            "SELECT client_id, source, record_type, received_at, purged_at FROM records WHERE id = ?",
        )
        .bind(&id_text)
        .fetch_optional(&self.reads)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT route, destination, status, attempts, receipt, last_error, updated_at
             FROM deliveries WHERE record_id = ? ORDER BY id",
        )
        .bind(&id_text)
        .fetch_all(&self.reads)
        .await?;
        let mut routes = Vec::with_capacity(rows.len());
        for r in rows {
            let receipt: Option<String> = r.get("receipt");
            let receipt = receipt
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("receipt of record {id} is not JSON")))?;
            routes.push(DeliveryStatus {
                route: r.get("route"),
                destination: r.get("destination"),
                status: decode_delivery_state(r.get("status"))?,
                attempts: r.get("attempts"),
                receipt,
                last_error: r.get("last_error"),
                updated_at: r.get("updated_at"),
            });
        }
        Ok(Some(RecordStatus {
            id,
            client_id: row.get("client_id"),
            source: row.get("source"),
            record_type: decode_record_type(row.get("record_type"))?,
            received_at: row.get("received_at"),
            purged_at: row.get("purged_at"),
            routes,
        }))
    }

    async fn claim_due(
        &self,
        destination: &str,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let claim = Claim {
            destination: destination.to_string(),
            worker: worker.to_string(),
            limit,
            now_ms: now.timestamp_millis(),
            until_ms: now.timestamp_millis() + lease.as_millis() as i64,
        };
        self.submit(WriteOp::Claim(Box::new(claim), tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn complete(&self, completion: Completion) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp::Complete(Box::new(completion), tx))
            .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = NULL
              WHERE status IN ('pending', 'awaiting') AND lease_owner IS NOT NULL",
        )
        .execute(&self.reads)
        .await?;
        Ok(done.rows_affected())
    }

    async fn dead_letters(
        &self,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.stopped(DeliveryState::Dead, destination, limit).await
    }

    async fn parked(
        &self,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.stopped(DeliveryState::Parked, destination, limit)
            .await
    }

    async fn replay(
        &self,
        destination: Option<&str>,
        ids: &[i64],
        now: DateTime<Utc>,
        audit: &(dyn for<'d> Fn(&'d DeadLetter) -> AuditEvent + Send + Sync),
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut conn = self.reads.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let purged = payload::purged_deliveries(&mut tx, ids).await?;
        if !purged.is_empty() {
            return Err(StoreError::PayloadPurged(purged));
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE deliveries SET status = 'pending', attempts = 0, lease_owner = NULL,
                    lease_until_ms = NULL, next_attempt_ms = ",
        );
        q.push_bind(now.timestamp_millis())
            .push(", updated_at = ")
            .push_bind(rfc3339(now))
            // Parked deliveries only when named: the outcome of their last
            // attempt is for a person to settle, not a bulk replay.
            .push(if ids.is_empty() {
                " WHERE status = 'dead'"
            } else {
                " WHERE status IN ('dead', 'parked')"
            });
        if let Some(d) = destination {
            q.push(" AND destination = ").push_bind(d);
        }
        // A purged record has nothing left to send: its dead letters stay.
        q.push(" AND record_id NOT IN (SELECT id FROM records WHERE purged_at IS NOT NULL)");
        if !ids.is_empty() {
            q.push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
        }
        q.push(" RETURNING id, record_id, route, destination, attempts, last_error, updated_at");
        let mut replayed: Vec<DeadLetter> = q
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(dead_letter)
            .collect();
        replayed.sort_by_key(|d| d.delivery_id);
        let events: Vec<AuditEvent> = replayed.iter().map(audit).collect();
        let events: Vec<(&AuditEvent, Option<String>)> = events
            .iter()
            .zip(&replayed)
            .map(|(e, d)| (e, Some(d.record_id.clone())))
            .collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(replayed)
    }

    async fn latest_consent(&self, subject: &str) -> Result<Option<ConsentState>, StoreError> {
        // A person's decisions are few; the one in force is chosen by the
        // time each was decided (consent_in_force), not by arrival.
        // A purged decision has no key left and is no longer read.
        if !self.consent_subjects.may_have(subject) {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT c.record_id, c.consent, k.kek_id, k.wrapped
               FROM consents c JOIN payload_keys k ON k.record_id = c.record_id
              WHERE c.subject = ? ORDER BY c.id",
        )
        .bind(subject)
        .fetch_all(&self.reads)
        .await?;
        let mut decisions = Vec::with_capacity(rows.len());
        for r in &rows {
            let key = self
                .keyring
                .unwrap(r.get("record_id"), r.get("kek_id"), r.get("wrapped"))?;
            decisions.push(key.open(payload::CONSENT, r.get("consent"))?);
        }
        Ok(consent_in_force(decisions.iter().map(|d| d.as_slice())))
    }

    async fn record_owner(&self, id: RecordId) -> Result<Option<RecordOwner>, StoreError> {
        let row = sqlx::query(
            "SELECT r.client_id, r.subject, r.record_type, r.canonical, k.kek_id, k.wrapped
               FROM records r LEFT JOIN payload_keys k ON k.record_id = r.id WHERE r.id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.reads)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        // A purged record has an owner and a subject, but no source id any more.
        let record: serde_json::Value = match r.get::<Option<String>, _>("kek_id") {
            None => serde_json::Value::Null,
            Some(kek_id) => {
                let key = self
                    .keyring
                    .unwrap(&id.to_string(), &kek_id, r.get("wrapped"))?;
                let canonical = key.open(payload::CANONICAL, r.get("canonical"))?;
                serde_json::from_slice(&canonical)
                    .map_err(|_| StoreError::Corrupt(format!("record {id} is not JSON")))?
            }
        };
        Ok(Some(RecordOwner {
            client_id: r.get("client_id"),
            record_type: decode_record_type(r.get("record_type"))?,
            subject: r.get("subject"),
            source_record_id: record
                .get("source_record_id")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        }))
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT destination, status, count(*) AS n FROM deliveries
              GROUP BY destination, status ORDER BY destination, status",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryCount {
                    destination: r.get("destination"),
                    status: decode_delivery_state(r.get("status"))?,
                    count: r.get("n"),
                })
            })
            .collect()
    }

    async fn audit_events(&self, from: i64, to: i64) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event, leaf_hash FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter().map(stored_event).collect()
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM audit_log")
            .fetch_one(&self.reads)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn audit_leaf_hashes(&self, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let limit = i64::try_from(size).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, leaf_hash FROM audit_log ORDER BY seq LIMIT ?")
                .bind(limit)
                .fetch_all(&self.reads)
                .await?;
        log_leaves(rows)
    }

    async fn audit_events_of_record(
        &self,
        record_id: &str,
    ) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event, leaf_hash FROM audit_log WHERE record_id = ? ORDER BY seq",
        )
        .bind(record_id)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter().map(stored_event).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT size, root, note, signed_at FROM checkpoints ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.reads)
        .await?;
        let Some(r) = row else { return Ok(None) };
        stored_checkpoint(
            r.get("size"),
            r.get("root"),
            r.get("note"),
            r.get::<&str, _>("signed_at"),
        )
        .map(Some)
    }

    async fn store_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        // A rare write: straight through the pool (busy_timeout waits for the writer).
        sqlx::query("INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)")
            .bind(i64::try_from(checkpoint.size).unwrap_or(i64::MAX))
            .bind(checkpoint.root.to_vec())
            .bind(&checkpoint.note)
            .bind(rfc3339(checkpoint.signed_at))
            .execute(&self.reads)
            .await?;
        Ok(())
    }

    async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
        audit: &PurgeAudit,
    ) -> Result<Vec<PurgedRecord>, StoreError> {
        let mut conn = self.reads.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let due = payload::expired(&mut tx, &rfc3339(cutoff), limit).await?;
        payload::purge(&mut tx, &due, &rfc3339(now), audit).await?;
        tx.commit().await?;
        if !due.is_empty() {
            payload::wipe_wal(&mut conn).await?;
        }
        Ok(due)
    }

    async fn erase(
        &self,
        id: RecordId,
        client_id: &str,
        now: DateTime<Utc>,
        audit: &PurgeAudit,
    ) -> Result<Erasure, StoreError> {
        let mut conn = self.reads.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let erasure = payload::erasable(&mut tx, id, client_id).await?;
        let Erasure::Purged(record) = &erasure else {
            return Ok(erasure);
        };
        payload::purge(&mut tx, std::slice::from_ref(record), &rfc3339(now), audit).await?;
        tx.commit().await?;
        payload::wipe_wal(&mut conn).await?;
        Ok(erasure)
    }

    async fn take_quota(
        &self,
        destination: &str,
        day: chrono::NaiveDate,
        quota: u32,
    ) -> Result<bool, StoreError> {
        if quota == 0 {
            return Ok(false);
        }
        // A rare write (one per send, only with a quota): straight through
        // the pool, busy_timeout waits for the writer.
        let counted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO quota_days (destination, day, sent) VALUES (?1, ?2, 1)
             ON CONFLICT (destination, day) DO UPDATE SET sent = sent + 1 WHERE sent < ?3
             RETURNING sent",
        )
        .bind(destination)
        .bind(day.to_string())
        .bind(i64::from(quota))
        .fetch_optional(&self.reads)
        .await?;
        Ok(counted.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        if self.writes.lock().await.is_none() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    async fn close(&self) {
        // Dropping the sender lets the writer drain what is queued, then stop.
        self.writes.lock().await.take();
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
        }
        if let Some((stop, handle)) = self.checkpointer.lock().await.take() {
            stop.notify_one();
            let _ = handle.await;
        }
        self.reads.close().await;
    }
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<WriteOp>,
    metrics: StoreMetrics,
    keyring: Arc<Keyring>,
    consent_subjects: Arc<ConsentSubjects>,
    wal_restart: Arc<AtomicBool>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let started = Instant::now();
        metrics.commit_group_size.observe(group.len() as f64);
        commit_group(
            &mut conn,
            std::mem::take(&mut group),
            &keyring,
            &consent_subjects,
        )
        .await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        if wal_restart.swap(false, Ordering::Relaxed) {
            restart_wal(&mut conn).await;
        }
    }
    let _ = conn.close().await;
}

/// Between two groups, so no transaction of ours is open: copy back what the
/// checkpointer has not yet (little: it asks only once caught up), sync the
/// database and start the WAL over; commits wait meanwhile (3-10 ms at
/// 1,000 records/s here). It waits for no reader: one still reading the WAL
/// makes it return busy, and the checkpointer asks again at its next tick.
async fn restart_wal(conn: &mut SqliteConnection) {
    let restarted = async {
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *conn)
            .await?;
        let checkpoint: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
                .fetch_one(&mut *conn)
                .await;
        sqlx::query(&format!(
            "PRAGMA busy_timeout = {}",
            BUSY_TIMEOUT.as_millis()
        ))
        .execute(&mut *conn)
        .await?;
        checkpoint
    };
    match restarted.await {
        Ok((0, _, _)) => {}
        Ok(_) => tracing::debug!("WAL restart deferred: a reader is still in the WAL"),
        Err(e) => tracing::warn!(error = %e, "WAL restart failed; retried later"),
    }
}

/// Every subject with a consent row, as a 64-bit hash: a subject not in it
/// has no consent, so its latest consent is "none" without a query. A hash
/// collision, or a subject whose rows were purged, only costs that query.
/// The embedded store is one process's, so every consent row is written by
/// this store's writer, which adds the subject before committing the row.
pub(super) struct ConsentSubjects(std::sync::RwLock<std::collections::HashSet<u64>>);

impl ConsentSubjects {
    async fn load(reads: &SqlitePool) -> Result<ConsentSubjects, StoreError> {
        use futures::TryStreamExt;
        let mut subjects = std::collections::HashSet::new();
        let mut rows =
            sqlx::query_scalar::<_, String>("SELECT DISTINCT subject FROM consents").fetch(reads);
        while let Some(subject) = rows.try_next().await? {
            subjects.insert(Self::hash(&subject));
        }
        Ok(ConsentSubjects(std::sync::RwLock::new(subjects)))
    }

    fn hash(subject: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(subject)
    }

    fn add(&self, subject: &str) {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        set.insert(Self::hash(subject));
    }

    fn may_have(&self, subject: &str) -> bool {
        let set = self.0.read().unwrap_or_else(|e| e.into_inner());
        set.contains(&Self::hash(subject))
    }
}

/// Passive checkpoints every `checkpoint_every` until `stop`, then a last
/// one. Passive: it copies what no reader still needs and never waits for,
/// or blocks, the writer. Once the WAL is `restart_at_frames` long, it asks
/// the writer to start it over. A failed checkpoint is retried at the next
/// tick; the WAL only grows meanwhile.
async fn run_checkpointer(
    mut conn: SqliteConnection,
    upkeep: WalUpkeep,
    stop: Arc<tokio::sync::Notify>,
    wal_restart: Arc<AtomicBool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(upkeep.checkpoint_every) => false,
            _ = stop.notified() => true,
        };
        match checkpoint_passive(&mut conn, upkeep.restart_at_frames).await {
            Ok(true) => wal_restart.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retried later"),
        }
        if stopping {
            break;
        }
    }
    let _ = conn.close().await;
}

/// Copy the WAL back; whether the writer should now restart it. Before
/// asking, copy again until a pass finds little new (at most three passes):
/// the writer's restart copies what is left while commits wait, and then
/// syncs the database, so the less is left the shorter that pause.
async fn checkpoint_passive(
    conn: &mut SqliteConnection,
    restart_at_frames: i64,
) -> Result<bool, sqlx::Error> {
    let mut copied_before = 0;
    for _ in 0..3 {
        let (_, frames, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *conn)
            .await?;
        if frames < restart_at_frames {
            return Ok(false);
        }
        if copied - copied_before < LITTLE_LEFT_FRAMES {
            break;
        }
        copied_before = copied;
    }
    Ok(true)
}

/// What one request of a group gets once the group has committed.
enum Outcome {
    Accept(AcceptOutcome),
    /// Index of the event among the group's appended events; the sequence
    /// number is known after the insert.
    Audit(i64),
    /// Whether the completion was recorded (the lease was still held).
    Complete(bool),
    Claim(Vec<ClaimedDelivery>),
}

/// Commit a group in one transaction with a handful of multi-row statements.
/// If the group fails, each request is retried alone, so one bad request is
/// refused without taking its neighbours down. Nobody is answered before the
/// commit that holds their request.
async fn commit_group(
    conn: &mut SqliteConnection,
    ops: Vec<WriteOp>,
    keyring: &Keyring,
    consent_subjects: &ConsentSubjects,
) {
    match write_group(conn, &ops, keyring, consent_subjects).await {
        Ok(outcomes) => reply(ops, outcomes.into_iter().map(Ok).collect()),
        Err(e) if ops.len() > 1 => {
            tracing::warn!(error = %e, requests = ops.len(), "group commit failed; committing its requests one by one");
            for op in ops {
                let result =
                    write_group(conn, std::slice::from_ref(&op), keyring, consent_subjects)
                        .await
                        .map(|mut outcomes| outcomes.remove(0))
                        .map_err(StoreError::from);
                reply(vec![op], vec![result]);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "commit failed");
            reply(ops, vec![Err(StoreError::CommitFailed)]);
        }
    }
}

fn reply(ops: Vec<WriteOp>, results: Vec<Result<Outcome, StoreError>>) {
    let mut results = results.into_iter();
    for op in ops {
        let result = results.next().unwrap_or(Err(StoreError::CommitFailed));
        match op {
            WriteOp::Accept(_, reply) => {
                let _ = reply.send(result.and_then(|o| match o {
                    Outcome::Accept(a) => Ok(a),
                    _ => Err(StoreError::CommitFailed),
                }));
            }
            WriteOp::Audit(_, reply) => {
                let _ = reply.send(result.and_then(|o| match o {
                    Outcome::Audit(seq) => Ok(seq),
                    _ => Err(StoreError::CommitFailed),
                }));
            }
            WriteOp::Complete(_, reply) => {
                let _ = reply.send(result.and_then(|o| match o {
                    Outcome::Complete(recorded) => Ok(recorded),
                    _ => Err(StoreError::CommitFailed),
                }));
            }
            WriteOp::Claim(_, reply) => {
                let _ = reply.send(result.and_then(|o| match o {
                    Outcome::Claim(claimed) => Ok(claimed),
                    _ => Err(StoreError::CommitFailed),
                }));
            }
        }
    }
}

/// SQLite allows 32,766 bound parameters per statement; stay well below.
const ROWS_PER_STATEMENT: usize = 1000;

async fn write_group(
    conn: &mut SqliteConnection,
    ops: &[WriteOp],
    keyring: &Keyring,
    consent_subjects: &ConsentSubjects,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut known = existing_keys(&mut tx, ops, keyring).await?;
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut records: Vec<&NewRecord> = Vec::new();
    let mut events: Vec<(&AuditEvent, Option<String>)> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Accept(record, _) => {
                let key = record
                    .idempotency_key
                    .as_ref()
                    .map(|k| (record.client_id.clone(), k.clone()));
                if let Some((hash, id)) = key.as_ref().and_then(|k| known.get(k)) {
                    outcomes.push(Outcome::Accept(if *hash == Some(record.request_sha256) {
                        AcceptOutcome::Replayed(*id)
                    } else {
                        AcceptOutcome::Conflict(*id)
                    }));
                    continue;
                }
                if let Some(k) = key {
                    known.insert(k, (Some(record.request_sha256), record.id));
                }
                records.push(record);
                events.push((&record.audit, Some(record.id.to_string())));
                outcomes.push(Outcome::Accept(AcceptOutcome::Created(record.id)));
            }
            WriteOp::Audit(event, _) => {
                outcomes.push(Outcome::Audit(events.len() as i64));
                events.push((event, event.record_id.clone()));
            }
            WriteOp::Complete(c, _) => {
                let recorded = record_completion(&mut tx, c).await?;
                if recorded && let Some(event) = &c.audit {
                    events.push((event, event.record_id.clone()));
                }
                outcomes.push(Outcome::Complete(recorded));
            }
            // Claims run after the group's accepts are inserted (below), so
            // they see new deliveries; their place in `outcomes` is kept now.
            WriteOp::Claim(..) => outcomes.push(Outcome::Claim(Vec::new())),
        }
    }
    let sealed: Vec<payload::Sealed> = records
        .iter()
        .map(|r| payload::Sealed::new(r, keyring))
        .collect();
    // The log's rows are numbered before they are written, so they go out
    // with the records in one query.
    let first_seq = if events.is_empty() {
        0
    } else {
        next_seq(&mut tx).await?
    };
    let mut inserts = QueryBuilder::<Sqlite>::new("");
    push_records(&mut inserts, &records, &sealed);
    push_events(&mut inserts, &events, first_seq);
    execute_all(&mut tx, inserts).await?;
    insert_consents(&mut tx, &records, &sealed).await?;
    // Before the commit: once a consent row is visible, its subject is known
    // here. (A group that then fails leaves a subject that only costs a query.)
    for r in &records {
        if let Some(entry) = &r.consent {
            consent_subjects.add(&entry.subject);
        }
    }
    for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
        if let WriteOp::Claim(claim, _) = op {
            *outcome = Outcome::Claim(claim_in(&mut tx, claim, keyring).await?);
        }
    }
    tx.commit().await?;
    for o in &mut outcomes {
        if let Outcome::Audit(index) = o {
            *index += first_seq;
        }
    }
    Ok(outcomes)
}

/// The request hash is `None` when it cannot be read back (its record was
/// purged): a reuse of the key is then a conflict, never a replay.
type KnownKeys = HashMap<(String, String), (Option<[u8; 32]>, RecordId)>;

/// The idempotency keys of this group that are already stored.
async fn existing_keys(
    conn: &mut SqliteConnection,
    ops: &[WriteOp],
    keyring: &Keyring,
) -> Result<KnownKeys, sqlx::Error> {
    let keyed: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Accept(r, _) => r
                .idempotency_key
                .as_deref()
                .map(|k| (r.client_id.as_str(), k)),
            WriteOp::Audit(..) | WriteOp::Complete(..) | WriteOp::Claim(..) => None,
        })
        .collect();
    let mut known = HashMap::new();
    for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT i.client_id, i.key, i.request_sha256, i.record_id, k.kek_id, k.wrapped
               FROM idempotency_keys i LEFT JOIN payload_keys k ON k.record_id = i.record_id
             WHERE (i.client_id, i.key) IN (",
        );
        let mut list = q.separated(", ");
        for (client, key) in chunk {
            list.push("(")
                .push_bind_unseparated(*client)
                .push_unseparated(", ")
                .push_bind_unseparated(*key)
                .push_unseparated(")");
        }
        q.push(")");
        for row in q.build().fetch_all(&mut *conn).await? {
            let id: String = row.get("record_id");
            let corrupt = || sqlx::Error::Decode("malformed row in idempotency_keys".into());
            let hash = match row.get::<Option<String>, _>("kek_id") {
                None => None,
                Some(kek_id) => {
                    let key = keyring
                        .unwrap(&id, &kek_id, row.get("wrapped"))
                        .map_err(key_error)?;
                    let hash = key
                        .open(payload::REQUEST_SHA256, row.get("request_sha256"))
                        .map_err(key_error)?;
                    Some(hash.as_slice().try_into().map_err(|_| corrupt())?)
                }
            };
            known.insert(
                (row.get("client_id"), row.get("key")),
                (hash, RecordId::parse(&id).ok_or_else(corrupt)?),
            );
        }
    }
    Ok(known)
}

/// The rows of `records` (their payload keys, idempotency keys and
/// deliveries too), as statements appended to `q`.
fn push_records<'a>(
    q: &mut QueryBuilder<'a, Sqlite>,
    records: &[&'a NewRecord],
    sealed: &'a [payload::Sealed],
) {
    let rows: Vec<(&NewRecord, &payload::Sealed)> =
        records.iter().copied().zip(sealed.iter()).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        q.push("INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical, subject) ");
        q.push_values(chunk, |mut row, (r, sealed)| {
            row.push_bind(r.id.to_string())
                .push_bind(r.client_id.as_str())
                .push_bind(r.source.as_str())
                .push_bind(r.record_type.as_str())
                .push_bind(
                    r.received_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
                .push_bind(sealed.request_sha256.as_slice())
                .push_bind(sealed.canonical.as_slice())
                .push_bind(r.subject.as_deref());
        });
        q.push(";\nINSERT INTO payload_keys (record_id, kek_id, wrapped) ");
        q.push_values(chunk, |mut row, (r, sealed)| {
            row.push_bind(r.id.to_string())
                .push_bind(sealed.kek_id.as_str())
                .push_bind(sealed.wrapped.as_slice());
        });
        q.push(";\n");
    }
    let keyed: Vec<&(&NewRecord, &payload::Sealed)> = rows
        .iter()
        .filter(|(r, _)| r.idempotency_key.is_some())
        .collect();
    for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
        q.push("INSERT INTO idempotency_keys (client_id, key, request_sha256, record_id) ");
        q.push_values(chunk, |mut row, (r, sealed)| {
            row.push_bind(r.client_id.as_str())
                .push_bind(r.idempotency_key.as_deref())
                .push_bind(sealed.request_sha256.as_slice())
                .push_bind(r.id.to_string());
        });
        q.push(";\n");
    }
    let deliveries: Vec<(&NewRecord, &super::NewDelivery)> = records
        .iter()
        .flat_map(|r| r.deliveries.iter().map(move |d| (*r, d)))
        .collect();
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        q.push("INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms, subject) ");
        q.push_values(chunk, |mut row, (r, d)| {
            row.push_bind(r.id.to_string())
                .push_bind(d.route.as_str())
                .push_bind(d.destination.as_str())
                .push_bind(DeliveryState::Pending.as_str())
                .push_bind(r.received_at.timestamp_millis())
                .push_bind(r.subject.as_deref());
        });
        q.push(";\n");
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn dead_letter(r: &sqlx::sqlite::SqliteRow) -> DeadLetter {
    DeadLetter {
        delivery_id: r.get("id"),
        record_id: r.get("record_id"),
        route: r.get("route"),
        destination: r.get("destination"),
        attempts: r.get("attempts"),
        last_error: r.get("last_error"),
        failed_at: r.get("updated_at"),
    }
}

/// A lease request, run by the writer inside a group transaction: claims
/// never contend with the writer for SQLite's write lock.
struct Claim {
    destination: String,
    worker: String,
    limit: u32,
    now_ms: i64,
    until_ms: i64,
}

/// Lease due deliveries of a destination. A subject's earlier deliveries that
/// are still open hold later ones back; they are found through the subject's
/// records (`records_by_subject`, then each record's deliveries), never by
/// walking the destination's queue: the plan is pinned by the unary `+`s and
/// the CROSS JOIN, and checked by a test.
const CLAIM_DUE: &str = "
    UPDATE deliveries
       SET lease_owner = ?1, lease_until_ms = ?2, attempts = attempts + 1, claims = claims + 1
     WHERE id IN (
           SELECT d.id FROM deliveries d
            WHERE d.destination = ?3 AND d.status IN ('pending', 'awaiting')
              AND d.next_attempt_ms <= ?4
              AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?4)
              AND (d.subject IS NULL OR NOT EXISTS (
                   SELECT 1 FROM records r CROSS JOIN deliveries e ON e.record_id = r.id
                    WHERE r.subject = d.subject AND +e.destination = d.destination
                      AND +e.status IN ('pending', 'awaiting', 'parked')
                      AND e.id < d.id))
            ORDER BY d.id LIMIT ?5)
 RETURNING id, record_id, route, destination, attempts, claims, subject";

/// Lease due deliveries, with their records. A subject's deliveries to one
/// destination leave in acceptance order: one waits while an earlier one of
/// the same subject is still pending.
async fn claim_in(
    conn: &mut SqliteConnection,
    c: &Claim,
    keyring: &Keyring,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    let rows = sqlx::query(CLAIM_DUE)
        .bind(&c.worker)
        .bind(c.until_ms)
        .bind(&c.destination)
        .bind(c.now_ms)
        .bind(c.limit as i64)
        .fetch_all(&mut *conn)
        .await?;
    let mut records = HashMap::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.client_id, r.record_type, r.received_at, r.canonical, k.kek_id, k.wrapped
               FROM records r LEFT JOIN payload_keys k ON k.record_id = r.id WHERE r.id IN (",
        );
        let mut list = q.separated(", ");
        for r in chunk {
            list.push_bind(r.get::<String, _>("record_id"));
        }
        q.push(")");
        for r in q.build().fetch_all(&mut *conn).await? {
            records.insert(r.get::<String, _>("id"), r);
        }
    }
    let lease_until = DateTime::from_timestamp_millis(c.until_ms)
        .ok_or_else(|| corrupt("lease time out of range"))?;
    let mut claimed = rows
        .into_iter()
        .map(|r| {
            let record_id: String = r.get("record_id");
            let record = records
                .get(&record_id)
                .ok_or_else(|| corrupt("a delivery names a missing record"))?;
            let received_at: String = record.get("received_at");
            Ok(ClaimedDelivery {
                delivery_id: r.get("id"),
                record_id: RecordId::parse(&record_id)
                    .ok_or_else(|| corrupt("a delivery names a malformed record id"))?,
                route: r.get("route"),
                destination: r.get("destination"),
                attempt: r.get("attempts"),
                claim: r.get("claims"),
                lease_until,
                client_id: record.get("client_id"),
                record_type: decode_record_type(record.get("record_type")),
                received_at: DateTime::parse_from_rfc3339(&received_at)
                    .map_err(|_| corrupt("a record has a malformed time"))?
                    .with_timezone(&Utc),
                subject: r.get("subject"),
                canonical: payload::open_canonical(record, &record_id, keyring)?,
                prior_receipt: None,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    for c in &mut claimed {
        c.prior_receipt = prior_receipt(conn, c).await?;
    }
    claimed.sort_by_key(|c| c.delivery_id);
    Ok(claimed)
}

/// The latest answered delivery of a subject on a route before a given one,
/// found through the subject's records like [`CLAIM_DUE`]'s check.
const PRIOR_RECEIPT: &str = "
    SELECT e.receipt FROM records r CROSS JOIN deliveries e ON e.record_id = r.id
     WHERE +e.destination = ? AND r.subject = ? AND e.route = ? AND e.id < ?
       AND +e.status IN ('delivered', 'awaiting', 'referred') AND e.receipt IS NOT NULL
     ORDER BY e.id DESC LIMIT 1";

/// The receipt of the subject's latest earlier delivery on the same route that
/// a registry answered: what a correction updates.
async fn prior_receipt(
    conn: &mut SqliteConnection,
    c: &ClaimedDelivery,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    let Some(subject) = &c.subject else {
        return Ok(None);
    };
    let receipt: Option<String> = sqlx::query_scalar(PRIOR_RECEIPT)
        .bind(&c.destination)
        .bind(subject)
        .bind(&c.route)
        .bind(c.delivery_id)
        .fetch_optional(&mut *conn)
        .await?;
    receipt
        .map(|text| serde_json::from_str(&text).map_err(|_| corrupt("a receipt is not JSON")))
        .transpose()
}

/// A key failure inside a writer transaction; the caller sees the group fail.
fn key_error(e: KeyError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("the store holds unexpected data: {what}").into())
}

/// Apply a completion if this worker still holds the lease; false if not.
/// The status words in these statements are [`DeliveryState`]'s names (the
/// table's CHECK constraint lists the same ones); a test holds each outcome to
/// [`DeliveryOutcome::status`].
async fn record_completion(
    conn: &mut SqliteConnection,
    c: &Completion,
) -> Result<bool, sqlx::Error> {
    // Every statement ends with: updated_at = ?, then the lease check on (id, worker).
    let (sql, binds): (&str, Vec<Bind>) = match &c.outcome {
        DeliveryOutcome::Delivered { receipt } => (
            "UPDATE deliveries SET status = 'delivered', receipt = ?, last_error = NULL,",
            vec![Bind::Text(receipt.to_string())],
        ),
        DeliveryOutcome::Awaiting {
            receipt,
            next_check,
        } => (
            "UPDATE deliveries SET status = 'awaiting', receipt = ?, last_error = NULL,
                    attempts = 0, next_attempt_ms = ?,",
            vec![
                Bind::Text(receipt.to_string()),
                Bind::Int(next_check.timestamp_millis()),
            ],
        ),
        DeliveryOutcome::Retry {
            next_attempt,
            error,
        } => (
            "UPDATE deliveries SET last_error = ?, next_attempt_ms = ?,",
            vec![
                Bind::Text(error.clone()),
                Bind::Int(next_attempt.timestamp_millis()),
            ],
        ),
        DeliveryOutcome::Dead { error } => (
            "UPDATE deliveries SET status = 'dead', last_error = ?,",
            vec![Bind::Text(error.clone())],
        ),
        DeliveryOutcome::Parked { reason } => (
            "UPDATE deliveries SET status = 'parked', last_error = ?,",
            vec![Bind::Text(reason.clone())],
        ),
        DeliveryOutcome::Referred { reason, receipt } => (
            "UPDATE deliveries SET status = 'referred', last_error = ?, receipt = ?,",
            vec![Bind::Text(reason.clone()), Bind::Text(receipt.to_string())],
        ),
        DeliveryOutcome::Cancelled { reason } => (
            "UPDATE deliveries SET status = 'cancelled', last_error = ?,",
            vec![Bind::Text(reason.clone())],
        ),
        DeliveryOutcome::Released { next_attempt } => (
            "UPDATE deliveries SET attempts = max(attempts - 1, 0), next_attempt_ms = ?,",
            vec![Bind::Int(next_attempt.timestamp_millis())],
        ),
    };
    let sql = format!(
        "{sql} lease_owner = NULL, lease_until_ms = NULL, updated_at = ?
          WHERE id = ? AND lease_owner = ? AND claims = ? AND status IN ('pending', 'awaiting')"
    );
    let mut q = sqlx::query(&sql);
    for bind in binds {
        q = match bind {
            Bind::Text(text) => q.bind(text),
            Bind::Int(n) => q.bind(n),
        };
    }
    let done = q
        .bind(rfc3339(c.at))
        .bind(c.delivery_id)
        .bind(&c.worker)
        .bind(c.claim)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A value bound to a completion's statement, in order.
enum Bind {
    Text(String),
    Int(i64),
}

/// Consent records become their subject's latest consent.
async fn insert_consents(
    conn: &mut SqliteConnection,
    records: &[&NewRecord],
    sealed: &[payload::Sealed],
) -> Result<(), sqlx::Error> {
    for (r, sealed) in records.iter().zip(sealed) {
        if let (Some(entry), Some(consent)) = (&r.consent, &sealed.consent) {
            sqlx::query(
                "INSERT INTO consents (subject, client_id, record_id, recorded_at, consent)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&entry.subject)
            .bind(&r.client_id)
            .bind(r.id.to_string())
            .bind(rfc3339(r.received_at))
            .bind(consent.as_slice())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

fn stored_event(r: sqlx::sqlite::SqliteRow) -> Result<StoredAuditEvent, StoreError> {
    let hash: Vec<u8> = r.get("leaf_hash");
    Ok(StoredAuditEvent {
        seq: r.get("seq"),
        event: r.get("event"),
        leaf_hash: stored_leaf(hash)?,
    })
}

/// Append events with explicit, gap-free sequence numbers; returns the first.
/// Safe because this transaction holds SQLite's write lock.
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[(&AuditEvent, Option<String>)],
) -> Result<i64, sqlx::Error> {
    let first = next_seq(conn).await?;
    let mut q = QueryBuilder::<Sqlite>::new("");
    push_events(&mut q, events, first);
    execute_all(conn, q).await?;
    Ok(first)
}

/// The next sequence number of the log. Only a transaction holding SQLite's
/// write lock may use it.
async fn next_seq(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let (last,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM audit_log")
        .fetch_one(&mut *conn)
        .await?;
    Ok(last + 1)
}

/// `events` numbered from `first`, as statements appended to `q`.
fn push_events(
    q: &mut QueryBuilder<'_, Sqlite>,
    events: &[(&AuditEvent, Option<String>)],
    first: i64,
) {
    for (n, chunk) in events.chunks(ROWS_PER_STATEMENT).enumerate() {
        let offset = first + (n * ROWS_PER_STATEMENT) as i64;
        q.push("INSERT INTO audit_log (seq, at, kind, record_id, event, leaf_hash) ");
        q.push_values(
            chunk.iter().enumerate(),
            |mut row, (i, (event, record_id))| {
                let bytes = event.canonical_bytes();
                let hash = leaf_hash(&bytes);
                row.push_bind(offset + i as i64)
                    .push_bind(event.at.clone())
                    .push_bind(event.kind.as_str())
                    .push_bind(record_id.clone())
                    .push_bind(bytes)
                    .push_bind(hash.to_vec());
            },
        );
        q.push(";\n");
    }
}

/// Run the statements appended to `q` as one query: one round trip to
/// SQLite's thread for all of them (sqlx binds the `?`s across the
/// statements in order), where a statement each cost a hop there and back.
async fn execute_all(
    conn: &mut SqliteConnection,
    mut q: QueryBuilder<'_, Sqlite>,
) -> Result<(), sqlx::Error> {
    if !q.sql().is_empty() {
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
