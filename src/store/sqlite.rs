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

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
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
    Accept(
        Box<NewRecord>,
        oneshot::Sender<Result<AcceptOutcome, StoreError>>,
    ),
    Audit(AuditEvent, oneshot::Sender<Result<i64, StoreError>>),
}

impl SqliteStore {
    /// Open (creating if needed) the store in `data_dir` and run migrations.
    pub async fn open(data_dir: &Path, metrics: StoreMetrics) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", data_dir.display())))?;
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
        commit_group(&mut conn, std::mem::take(&mut group)).await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    let _ = conn.close().await;
}

/// What one request of a group gets once the group has committed.
enum Outcome {
    Accept(AcceptOutcome),
    /// Index of the event among the group's appended events; the sequence
    /// number is known after the insert.
    Audit(i64),
}

/// Commit a group in one transaction with a handful of multi-row statements.
/// If the group fails, each request is retried alone, so one bad request is
/// refused without taking its neighbours down. Nobody is answered before the
/// commit that holds their request.
async fn commit_group(conn: &mut SqliteConnection, ops: Vec<WriteOp>) {
    match write_group(conn, &ops).await {
        Ok(outcomes) => reply(ops, outcomes.into_iter().map(Ok).collect()),
        Err(e) if ops.len() > 1 => {
            tracing::warn!(error = %e, requests = ops.len(), "group commit failed; committing its requests one by one");
            for op in ops {
                let result = write_group(conn, std::slice::from_ref(&op))
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
                    Outcome::Audit(_) => Err(StoreError::CommitFailed),
                }));
            }
            WriteOp::Audit(_, reply) => {
                let _ = reply.send(result.and_then(|o| match o {
                    Outcome::Audit(seq) => Ok(seq),
                    Outcome::Accept(_) => Err(StoreError::CommitFailed),
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
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut known = existing_keys(&mut tx, ops).await?;
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
                    outcomes.push(Outcome::Accept(if *hash == record.request_sha256 {
                        AcceptOutcome::Replayed(*id)
                    } else {
                        AcceptOutcome::Conflict(*id)
                    }));
                    continue;
                }
                if let Some(k) = key {
                    known.insert(k, (record.request_sha256, record.id));
                }
                records.push(record);
                events.push((&record.audit, Some(record.id.to_string())));
                outcomes.push(Outcome::Accept(AcceptOutcome::Created(record.id)));
            }
            WriteOp::Audit(event, _) => {
                outcomes.push(Outcome::Audit(events.len() as i64));
                events.push((event, event.record_id.clone()));
            }
        }
    }
    insert_records(&mut tx, &records).await?;
    let first_seq = insert_events(&mut tx, &events).await?;
    tx.commit().await?;
    for o in &mut outcomes {
        if let Outcome::Audit(index) = o {
            *index += first_seq;
        }
    }
    Ok(outcomes)
}

type KnownKeys = HashMap<(String, String), ([u8; 32], RecordId)>;

/// The idempotency keys of this group that are already stored.
async fn existing_keys(
    conn: &mut SqliteConnection,
    ops: &[WriteOp],
) -> Result<KnownKeys, sqlx::Error> {
    let keyed: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Accept(r, _) => r
                .idempotency_key
                .as_deref()
                .map(|k| (r.client_id.as_str(), k)),
            WriteOp::Audit(..) => None,
        })
        .collect();
    let mut known = HashMap::new();
    for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT client_id, key, request_sha256, record_id FROM idempotency_keys
             WHERE (client_id, key) IN (",
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
            let hash: Vec<u8> = row.get("request_sha256");
            let id: String = row.get("record_id");
            let corrupt = || sqlx::Error::Decode("malformed row in idempotency_keys".into());
            known.insert(
                (row.get("client_id"), row.get("key")),
                (
                    hash.try_into().map_err(|_| corrupt())?,
                    RecordId::parse(&id).ok_or_else(corrupt)?,
                ),
            );
        }
    }
    Ok(known)
}

async fn insert_records(
    conn: &mut SqliteConnection,
    records: &[&NewRecord],
) -> Result<(), sqlx::Error> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical) ",
        );
        q.push_values(chunk, |mut row, r| {
            row.push_bind(r.id.to_string())
                .push_bind(r.client_id.as_str())
                .push_bind(r.source.as_str())
                .push_bind(r.record_type.as_str())
                .push_bind(
                    r.received_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
                .push_bind(&r.request_sha256[..])
                .push_bind(r.canonical.as_slice());
        });
        q.build().execute(&mut *conn).await?;
    }
    let keyed: Vec<&&NewRecord> = records
        .iter()
        .filter(|r| r.idempotency_key.is_some())
        .collect();
    for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO idempotency_keys (client_id, key, request_sha256, record_id) ",
        );
        q.push_values(chunk, |mut row, r| {
            row.push_bind(r.client_id.as_str())
                .push_bind(r.idempotency_key.as_deref())
                .push_bind(&r.request_sha256[..])
                .push_bind(r.id.to_string());
        });
        q.build().execute(&mut *conn).await?;
    }
    let deliveries: Vec<(&NewRecord, &super::NewDelivery)> = records
        .iter()
        .flat_map(|r| r.deliveries.iter().map(move |d| (*r, d)))
        .collect();
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms) ",
        );
        q.push_values(chunk, |mut row, (r, d)| {
            row.push_bind(r.id.to_string())
                .push_bind(d.route.as_str())
                .push_bind(d.destination.as_str())
                .push_bind("pending")
                .push_bind(r.received_at.timestamp_millis());
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Append events with explicit, gap-free sequence numbers; returns the first.
/// Safe because this transaction holds SQLite's write lock.
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[(&AuditEvent, Option<String>)],
) -> Result<i64, sqlx::Error> {
    let (last,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM audit_log")
        .fetch_one(&mut *conn)
        .await?;
    let first = last + 1;
    for (n, chunk) in events.chunks(ROWS_PER_STATEMENT).enumerate() {
        let offset = first + (n * ROWS_PER_STATEMENT) as i64;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (seq, at, kind, record_id, event, leaf_hash) ",
        );
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
        q.build().execute(&mut *conn).await?;
    }
    Ok(first)
}

#[cfg(test)]
mod tests;
