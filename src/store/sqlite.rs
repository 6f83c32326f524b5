//! The embedded store: one SQLite file in the data directory, WAL journal,
//! `synchronous=FULL` (a commit is on disk before anyone is told "accepted").
//!
//! Writes that answer an agency (`accept`, `append_audit`) go through one
//! writer task that commits them in groups: every request waiting when a
//! transaction starts rides in it, each inside its own savepoint, so a failing
//! request cannot take its neighbours down and one fsync serves many accepts.
//! Reads use a small pool; WAL lets them run beside the writer.

use std::collections::VecDeque;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Acquire, Connection, Row};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    AcceptOutcome, ClaimedDelivery, DeliveryStatus, NewRecord, RecordStatus, Store, StoreError,
    StoredAuditEvent,
};
use crate::audit::{AuditEvent, leaf_hash};
use crate::model::RecordId;
use crate::telemetry::StoreMetrics;

const DB_FILE: &str = "gateway.db";
/// Requests committed together at most; bounds a transaction's size and latency.
const MAX_GROUP: usize = 512;
/// Requests waiting for the writer at most; beyond that, callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    reads: SqlitePool,
    writes: Mutex<Option<mpsc::Sender<WriteOp>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

enum WriteOp {
    Accept(Box<NewRecord>, oneshot::Sender<Result<AcceptOutcome, StoreError>>),
    Audit(AuditEvent, oneshot::Sender<Result<i64, StoreError>>),
}

impl SqliteStore {
    /// Open (creating if needed) the store in `data_dir` and run migrations.
    pub async fn open(data_dir: &Path, metrics: StoreMetrics) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Open(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Open(e.to_string()))?
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut writer = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        MIGRATOR
            .run(&mut writer)
            .await
            .map_err(|e| StoreError::Open(format!("migration failed: {e}")))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = tokio::spawn(run_writer(writer, rx, metrics));
        Ok(SqliteStore {
            reads,
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
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
        self.submit(WriteOp::Audit(event, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn record_status(&self, id: RecordId) -> Result<Option<RecordStatus>, StoreError> {
        let id_text = id.to_string();
        let Some(row) = sqlx::query(
            "SELECT client_id, source, record_type, received_at FROM records WHERE id = ?",
        )
        .bind(&id_text)
        .fetch_optional(&self.reads)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT route, destination, status, attempts, receipt, last_error
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
                status: r.get("status"),
                attempts: r.get("attempts"),
                receipt,
                last_error: r.get("last_error"),
            });
        }
        Ok(Some(RecordStatus {
            id,
            client_id: row.get("client_id"),
            source: row.get("source"),
            record_type: row.get("record_type"),
            received_at: row.get("received_at"),
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
        let now_ms = now.timestamp_millis();
        let until_ms = now_ms + lease.as_millis() as i64;
        let mut conn = self.reads.acquire().await?;
        // IMMEDIATE: take the write lock up front so two claimers never both
        // read the same rows and then race to update them.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "UPDATE deliveries
                SET lease_owner = ?1, lease_until_ms = ?2, attempts = attempts + 1
              WHERE id IN (
                    SELECT id FROM deliveries
                     WHERE destination = ?3 AND status = 'pending'
                       AND next_attempt_ms <= ?4
                       AND (lease_until_ms IS NULL OR lease_until_ms <= ?4)
                     ORDER BY id LIMIT ?5)
          RETURNING id, record_id, route, destination, attempts",
        )
        .bind(worker)
        .bind(until_ms)
        .bind(destination)
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let lease_until = DateTime::from_timestamp_millis(until_ms)
            .ok_or_else(|| StoreError::Corrupt("lease time out of range".into()))?;
        let mut claimed = rows
            .into_iter()
            .map(|r| {
                let record_id: String = r.get("record_id");
                Ok(ClaimedDelivery {
                    delivery_id: r.get("id"),
                    record_id: RecordId::parse(&record_id).ok_or_else(|| {
                        StoreError::Corrupt("a delivery names a malformed record id".into())
                    })?,
                    route: r.get("route"),
                    destination: r.get("destination"),
                    attempt: r.get("attempts"),
                    lease_until,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|c| c.delivery_id);
        Ok(claimed)
    }

    async fn audit_events(&self, from: i64, to: i64) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event, leaf_hash FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|r| {
                let hash: Vec<u8> = r.get("leaf_hash");
                Ok(StoredAuditEvent {
                    seq: r.get("seq"),
                    event: r.get("event"),
                    leaf_hash: hash
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("a leaf hash is not 32 bytes".into()))?,
                })
            })
            .collect()
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
        self.reads.close().await;
    }
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<WriteOp>,
    metrics: StoreMetrics,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let started = Instant::now();
        metrics.commit_group_size.observe(group.len() as f64);
        commit_group(&mut conn, &mut group).await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    let _ = conn.close().await;
}

/// A request's result, held until the group's commit is durable.
enum Pending {
    Accept(
        oneshot::Sender<Result<AcceptOutcome, StoreError>>,
        Result<AcceptOutcome, sqlx::Error>,
    ),
    Audit(
        oneshot::Sender<Result<i64, StoreError>>,
        Result<i64, sqlx::Error>,
    ),
}

async fn commit_group(conn: &mut SqliteConnection, group: &mut Vec<WriteOp>) {
    let mut waiting: VecDeque<WriteOp> = group.drain(..).collect();
    let mut pending = Vec::with_capacity(waiting.len());
    let committed = async {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        while let Some(op) = waiting.pop_front() {
            let mut savepoint = tx.begin().await?;
            let (ok, result) = match op {
                WriteOp::Accept(record, reply) => {
                    let r = insert_record(&mut savepoint, &record).await;
                    (r.is_ok(), Pending::Accept(reply, r))
                }
                WriteOp::Audit(event, reply) => {
                    let r = insert_audit(&mut savepoint, &event, None).await;
                    (r.is_ok(), Pending::Audit(reply, r))
                }
            };
            if ok {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            pending.push(result);
        }
        tx.commit().await
    }
    .await;
    // Only now, with the commit durable (or failed), is anyone answered.
    let commit_failed = match committed {
        Ok(()) => false,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; every request in it is refused");
            true
        }
    };
    for p in pending {
        match p {
            Pending::Accept(reply, r) => {
                let _ = reply.send(settle(commit_failed, r));
            }
            Pending::Audit(reply, r) => {
                let _ = reply.send(settle(commit_failed, r));
            }
        }
    }
    for op in waiting {
        match op {
            WriteOp::Accept(_, reply) => {
                let _ = reply.send(Err(StoreError::CommitFailed));
            }
            WriteOp::Audit(_, reply) => {
                let _ = reply.send(Err(StoreError::CommitFailed));
            }
        }
    }
}

fn settle<T>(commit_failed: bool, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
    if commit_failed {
        Err(StoreError::CommitFailed)
    } else {
        result.map_err(StoreError::from)
    }
}

async fn insert_record(
    conn: &mut SqliteConnection,
    record: &NewRecord,
) -> Result<AcceptOutcome, sqlx::Error> {
    if let Some(key) = &record.idempotency_key {
        let existing = sqlx::query(
            "SELECT request_sha256, record_id FROM idempotency_keys WHERE client_id = ? AND key = ?",
        )
        .bind(&record.client_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            let hash: Vec<u8> = row.get("request_sha256");
            let id: String = row.get("record_id");
            let id = RecordId::parse(&id)
                .ok_or_else(|| sqlx::Error::Decode("malformed record id in idempotency_keys".into()))?;
            return Ok(if hash == record.request_sha256 {
                AcceptOutcome::Replayed(id)
            } else {
                AcceptOutcome::Conflict(id)
            });
        }
    }
    let id = record.id.to_string();
    let received_at = record.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query(
        "INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&record.client_id)
    .bind(&record.source)
    .bind(record.record_type.as_str())
    .bind(&received_at)
    .bind(&record.request_sha256[..])
    .bind(&record.canonical)
    .execute(&mut *conn)
    .await?;
    if let Some(key) = &record.idempotency_key {
        sqlx::query(
            "INSERT INTO idempotency_keys (client_id, key, request_sha256, record_id) VALUES (?, ?, ?, ?)",
        )
        .bind(&record.client_id)
        .bind(key)
        .bind(&record.request_sha256[..])
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    }
    let due_ms = record.received_at.timestamp_millis();
    for d in &record.deliveries {
        sqlx::query(
            "INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms)
             VALUES (?, ?, ?, 'pending', ?)",
        )
        .bind(&id)
        .bind(&d.route)
        .bind(&d.destination)
        .bind(due_ms)
        .execute(&mut *conn)
        .await?;
    }
    insert_audit(conn, &record.audit, Some(&id)).await?;
    Ok(AcceptOutcome::Created(record.id))
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    event: &AuditEvent,
    record_id: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let bytes = event.canonical_bytes();
    let hash = leaf_hash(&bytes);
    let row = sqlx::query(
        "INSERT INTO audit_log (at, kind, record_id, event, leaf_hash) VALUES (?, ?, ?, ?, ?)
         RETURNING seq",
    )
    .bind(&event.at)
    .bind(event.kind.as_str())
    .bind(record_id.or(event.record_id.as_deref()))
    .bind(&bytes)
    .bind(&hash[..])
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.get("seq"))
}

#[cfg(test)]
mod tests;
