//! The PostgreSQL store: the same [`Store`] as the embedded one, for several
//! gateway instances sharing one database.
//!
//! Every write is one transaction on a pooled connection; PostgreSQL's own
//! group commit shares fsyncs between instances. What SQLite gets from its
//! single writer, this store gets from the database:
//! - idempotency races across instances end at the primary key of
//!   `idempotency_keys` (the loser waits for the winner's commit, finds the
//!   key taken, rolls back and answers replay or conflict);
//! - claims lease rows picked with `FOR UPDATE SKIP LOCKED`, so two
//!   instances never lease one delivery;
//! - the exchange log's sequence comes from the `audit_head` row, locked
//!   from the append to the commit, so the log has no gap and is seen in
//!   order by every instance;
//! - shared limits (`pace_cells`, `quota_days`) are one row per destination
//!   updated by one statement, on the database's clock;
//! - the checkpoint signer is whoever holds an advisory lock.

mod limits;
mod payload;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use tokio::sync::Mutex;

use super::keyring::Keyring;
use super::sealed::{self, Sealed};
use super::{
    AcceptOutcome, ClaimedDelivery, Completion, DeadLetter, DeliveryCount, DeliveryOutcome,
    DeliveryStatus, Erasure, NewRecord, PurgeAudit, PurgedRecord, RecordOwner, RecordStatus, Store,
    StoreError, StoredAuditEvent, StoredCheckpoint, consent_in_force, decode_delivery_state,
    decode_record_type, log_leaves, stored_checkpoint, stored_leaf,
};
use crate::audit::{AuditEvent, leaf_hash};
use crate::model::{DeliveryState, RecordId};
use crate::policy::ConsentState;

/// Connections per instance: writes are short transactions, so a few suffice.
const POOL_SIZE: u32 = 8;
/// Rows per multi-row INSERT (PostgreSQL allows 65,535 bound parameters).
const ROWS_PER_STATEMENT: usize = 1000;

pub struct PgStore {
    pool: PgPool,
    keyring: Arc<Keyring>,
    connect: PgConnectOptions,
    /// The session holding the checkpoint signer's advisory lock, while this
    /// instance is the signer.
    leader: Mutex<Option<PgConnection>>,
}

impl PgStore {
    /// Connect to `url` (postgres://), run the embedded migrations (sqlx's
    /// migrator holds an advisory lock, so instances starting together
    /// migrate once), check the KEKs and re-wrap earlier KEKs' data keys.
    pub async fn open(url: &str, keyring: Arc<Keyring>) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("database_url: {e}")))?;
        PgStore::open_with(options, keyring).await
    }

    pub async fn open_with(
        connect: PgConnectOptions,
        keyring: Arc<Keyring>,
    ) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect.clone())
            .await
            .map_err(|e| StoreError::Open(format!("cannot connect to PostgreSQL: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(super::sqlite::classify_migration_error)?;
        payload::check_keks(&pool, &keyring).await?;
        payload::rewrap(&pool, &keyring).await?;
        Ok(PgStore {
            pool,
            keyring,
            connect,
            leader: Mutex::new(None),
        })
    }

    async fn stopped(
        &self,
        status: DeliveryState,
        destination: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, record_id, route, destination, attempts, last_error, updated_at
               FROM deliveries
              WHERE status = $1 AND ($2::text IS NULL OR destination = $2)
              ORDER BY id LIMIT $3",
        )
        .bind(status.as_str())
        .bind(destination)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(dead_letter).collect())
    }

    /// The stored request hash and record of `(client, key)`, if taken.
    async fn known_key(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<(Option<[u8; 32]>, RecordId)>, StoreError> {
        let row = sqlx::query(
            "SELECT i.request_sha256, i.record_id, k.kek_id, k.wrapped
               FROM idempotency_keys i LEFT JOIN payload_keys k ON k.record_id = i.record_id
              WHERE i.client_id = $1 AND i.key = $2",
        )
        .bind(client_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.get("record_id");
        let hash = sealed::open_request_hash(
            &self.keyring,
            &id,
            row.get("kek_id"),
            row.get("wrapped"),
            row.get("request_sha256"),
        )?;
        let id = RecordId::parse(&id)
            .ok_or_else(|| StoreError::Corrupt("an idempotency key names a malformed id".into()))?;
        Ok(Some((hash, id)))
    }

    /// Insert the record, its key, deliveries, consent and audit event; `false`
    /// (rolled back) when another request took the idempotency key first.
    async fn insert_accepted(&self, record: &NewRecord) -> Result<bool, sqlx::Error> {
        let sealed = Sealed::new(record, &self.keyring);
        let id = record.id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical, subject)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&record.client_id)
        .bind(&record.source)
        .bind(record.record_type.as_str())
        .bind(rfc3339(record.received_at))
        .bind(&sealed.request_sha256)
        .bind(&sealed.canonical)
        .bind(record.subject.as_deref())
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO payload_keys (record_id, kek_id, wrapped) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&sealed.kek_id)
            .bind(&sealed.wrapped)
            .execute(&mut *tx)
            .await?;
        if let Some(key) = &record.idempotency_key {
            // Waits for a concurrent holder of the key to commit or roll back.
            let taken = sqlx::query(
                "INSERT INTO idempotency_keys (client_id, key, request_sha256, record_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, key) DO NOTHING",
            )
            .bind(&record.client_id)
            .bind(key)
            .bind(&sealed.request_sha256)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 0;
            if taken {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        for chunk in record.deliveries.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms, subject) ",
            );
            q.push_values(chunk, |mut row, d| {
                row.push_bind(&id)
                    .push_bind(&d.route)
                    .push_bind(&d.destination)
                    .push_bind(DeliveryState::Pending.as_str())
                    .push_bind(record.received_at.timestamp_millis())
                    .push_bind(record.subject.as_deref());
            });
            q.build().execute(&mut *tx).await?;
        }
        if let (Some(entry), Some(consent)) = (&record.consent, &sealed.consent) {
            sqlx::query(
                "INSERT INTO consents (subject, client_id, record_id, recorded_at, consent)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&entry.subject)
            .bind(&record.client_id)
            .bind(&id)
            .bind(rfc3339(record.received_at))
            .bind(consent)
            .execute(&mut *tx)
            .await?;
        }
        insert_events(&mut tx, &[(&record.audit, Some(id.clone()))]).await?;
        tx.commit().await?;
        Ok(true)
    }
}

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A failed write: the database refused it (nothing of it was stored), or
/// could not be reached.
fn write_failed(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            tracing::warn!(code = ?db.code(), "commit failed");
            StoreError::CommitFailed
        }
        other => StoreError::Unavailable(other),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn accept(&self, record: NewRecord) -> Result<AcceptOutcome, StoreError> {
        // A key taken by a request that then rolled back, or purged between
        // the insert and the read, is looked at again: a few rounds at most.
        for _ in 0..3 {
            if let Some(key) = &record.idempotency_key
                && let Some((hash, id)) = self.known_key(&record.client_id, key).await?
            {
                return Ok(if hash == Some(record.request_sha256) {
                    AcceptOutcome::Replayed(id)
                } else {
                    AcceptOutcome::Conflict(id)
                });
            }
            if self.insert_accepted(&record).await.map_err(write_failed)? {
                return Ok(AcceptOutcome::Created(record.id));
            }
        }
        Err(StoreError::CommitFailed)
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record_id = event.record_id.clone();
        let seq = insert_events(&mut tx, &[(&event, record_id)])
            .await
            .map_err(write_failed)?;
        tx.commit().await.map_err(write_failed)?;
        Ok(seq)
    }

    async fn record_status(&self, id: RecordId) -> Result<Option<RecordStatus>, StoreError> {
        let id_text = id.to_string();
        let Some(row) = sqlx::query(
            "SELECT client_id, source, record_type, received_at, purged_at FROM records WHERE id = $1",
        )
        .bind(&id_text)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT route, destination, status, attempts, receipt, last_error, updated_at
               FROM deliveries WHERE record_id = $1 ORDER BY id",
        )
        .bind(&id_text)
        .fetch_all(&self.pool)
        .await?;
        let mut routes = Vec::with_capacity(rows.len());
        for r in rows {
            routes.push(DeliveryStatus {
                route: r.get("route"),
                destination: r.get("destination"),
                status: decode_delivery_state(r.get("status"))?,
                attempts: r.get("attempts"),
                receipt: receipt(r.get("receipt")).map_err(|_| {
                    StoreError::Corrupt(format!("receipt of record {id} is not JSON"))
                })?,
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
        let mut conn = self.pool.acquire().await?;
        let until_ms = now.timestamp_millis() + lease.as_millis() as i64;
        let claimed = claim_in(
            &mut conn,
            destination,
            worker,
            limit,
            now.timestamp_millis(),
            until_ms,
            &self.keyring,
        )
        .await?;
        Ok(claimed)
    }

    async fn complete(&self, completion: Completion) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let recorded = record_completion(&mut tx, &completion)
            .await
            .map_err(write_failed)?;
        if recorded && let Some(event) = &completion.audit {
            insert_events(&mut tx, &[(event, event.record_id.clone())])
                .await
                .map_err(write_failed)?;
        }
        tx.commit().await.map_err(write_failed)?;
        Ok(recorded)
    }

    /// Nothing: other instances hold leases in this database. A dead
    /// instance's leases run out and its deliveries are due again then.
    async fn release_all_leases(&self) -> Result<u64, StoreError> {
        Ok(0)
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
        let mut tx = self.pool.begin().await?;
        let purged = payload::purged_deliveries(&mut tx, ids).await?;
        if !purged.is_empty() {
            return Err(StoreError::PayloadPurged(purged));
        }
        // Parked deliveries only when named: the outcome of their last
        // attempt is for a person to settle, not a bulk replay.
        let statuses: &[&str] = if ids.is_empty() {
            &["dead"]
        } else {
            &["dead", "parked"]
        };
        let rows = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, lease_owner = NULL,
                    lease_until_ms = NULL, next_attempt_ms = $1, updated_at = $2
              WHERE status = ANY($3)
                AND ($4::text IS NULL OR destination = $4)
                AND (cardinality($5::bigint[]) = 0 OR id = ANY($5))
                AND record_id NOT IN (SELECT id FROM records WHERE purged_at IS NOT NULL)
          RETURNING id, record_id, route, destination, attempts, last_error, updated_at",
        )
        .bind(now.timestamp_millis())
        .bind(rfc3339(now))
        .bind(statuses)
        .bind(destination)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut replayed: Vec<DeadLetter> = rows.iter().map(dead_letter).collect();
        replayed.sort_by_key(|d| d.delivery_id);
        let events: Vec<AuditEvent> = replayed.iter().map(audit).collect();
        let events: Vec<(&AuditEvent, Option<String>)> = events
            .iter()
            .zip(&replayed)
            .map(|(e, d)| (e, Some(d.record_id.clone())))
            .collect();
        insert_events(&mut tx, &events)
            .await
            .map_err(write_failed)?;
        tx.commit().await.map_err(write_failed)?;
        Ok(replayed)
    }

    async fn latest_consent(&self, subject: &str) -> Result<Option<ConsentState>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.record_id, c.consent, k.kek_id, k.wrapped
               FROM consents c JOIN payload_keys k ON k.record_id = c.record_id
              WHERE c.subject = $1 ORDER BY c.id",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        let mut decisions = Vec::with_capacity(rows.len());
        for r in &rows {
            let key = self.keyring.unwrap(
                r.get("record_id"),
                r.get("kek_id"),
                r.get::<&[u8], _>("wrapped"),
            )?;
            decisions.push(key.open(sealed::CONSENT, r.get::<&[u8], _>("consent"))?);
        }
        Ok(consent_in_force(decisions.iter().map(|d| d.as_slice())))
    }

    async fn record_owner(&self, id: RecordId) -> Result<Option<RecordOwner>, StoreError> {
        let row = sqlx::query(
            "SELECT r.client_id, r.subject, r.record_type, r.canonical, k.kek_id, k.wrapped
               FROM records r LEFT JOIN payload_keys k ON k.record_id = r.id WHERE r.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let canonical = sealed::open_canonical(
            &self.keyring,
            &id.to_string(),
            r.get("kek_id"),
            r.get("wrapped"),
            r.get("canonical"),
        )?;
        // A purged record has an owner and a subject, but no source id any more.
        let record: serde_json::Value = match canonical {
            Err(_) => serde_json::Value::Null,
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::Corrupt(format!("record {id} is not JSON")))?,
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
        .fetch_all(&self.pool)
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
            "SELECT seq, event, leaf_hash FROM audit_log WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored_event).collect()
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0)::bigint FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn audit_leaf_hashes(&self, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let limit = i64::try_from(size).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, leaf_hash FROM audit_log ORDER BY seq LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        log_leaves(rows)
    }

    async fn audit_events_of_record(
        &self,
        record_id: &str,
    ) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, event, leaf_hash FROM audit_log WHERE record_id = $1 ORDER BY seq",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored_event).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT size, root, note, signed_at FROM checkpoints ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
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
        sqlx::query(
            "INSERT INTO checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::try_from(checkpoint.size).unwrap_or(i64::MAX))
        .bind(checkpoint.root.to_vec())
        .bind(&checkpoint.note)
        .bind(rfc3339(checkpoint.signed_at))
        .execute(&self.pool)
        .await
        .map_err(write_failed)?;
        Ok(())
    }

    async fn purge_expired(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
        audit: &PurgeAudit,
    ) -> Result<Vec<PurgedRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let due = payload::expired(&mut tx, &rfc3339(cutoff), limit).await?;
        payload::purge(&mut tx, &due, &rfc3339(now), audit).await?;
        tx.commit().await.map_err(write_failed)?;
        if !due.is_empty() {
            payload::vacuum_keys(&self.pool).await;
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
        let mut tx = self.pool.begin().await?;
        let erasure = payload::erasable(&mut tx, id, client_id).await?;
        let Erasure::Purged(record) = &erasure else {
            return Ok(erasure);
        };
        payload::purge(&mut tx, std::slice::from_ref(record), &rfc3339(now), audit).await?;
        tx.commit().await.map_err(write_failed)?;
        payload::vacuum_keys(&self.pool).await;
        Ok(erasure)
    }

    async fn take_quota(
        &self,
        destination: &str,
        day: NaiveDate,
        quota: u32,
    ) -> Result<bool, StoreError> {
        limits::take_quota(&self.pool, destination, day, quota).await
    }

    fn shares_limits(&self) -> bool {
        true
    }

    async fn take_cell(
        &self,
        destination: &str,
        period: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, StoreError> {
        limits::take_cell(&self.pool, destination, period, burst).await
    }

    async fn checkpoint_leader(&self) -> Result<bool, StoreError> {
        let mut held = self.leader.lock().await;
        limits::lead(&mut held, &self.connect).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    async fn close(&self) {
        // Another instance may sign checkpoints from now on.
        limits::step_down(self.leader.lock().await.take()).await;
        self.pool.close().await;
    }
}

const CLAIM_DUE: &str = "
    WITH due AS (
         SELECT d.id FROM deliveries d
          WHERE d.destination = $3 AND d.status IN ('pending', 'awaiting')
            AND d.next_attempt_ms <= $4
            AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $4)
            AND (d.subject IS NULL OR NOT EXISTS (
                 SELECT 1 FROM records r JOIN deliveries e ON e.record_id = r.id
                  WHERE r.subject = d.subject AND e.destination = d.destination
                    AND e.status IN ('pending', 'awaiting', 'parked')
                    AND e.id < d.id))
          ORDER BY d.id LIMIT $5
          FOR UPDATE SKIP LOCKED)
    UPDATE deliveries AS d
       SET lease_owner = $1, lease_until_ms = $2, attempts = d.attempts + 1,
           claims = d.claims + 1
      FROM due WHERE d.id = due.id
 RETURNING d.id, d.record_id, d.route, d.destination, d.attempts, d.claims, d.subject";

/// Lease due deliveries of `destination`, with their records, in one
/// statement: rows another instance is leasing right now are skipped, never
/// waited for or leased twice. A subject's deliveries leave in acceptance
/// order, as on SQLite, and are found the same way: through the subject's
/// records (`records_by_subject`), then each record's deliveries.
async fn claim_in(
    conn: &mut PgConnection,
    destination: &str,
    worker: &str,
    limit: u32,
    now_ms: i64,
    until_ms: i64,
    keyring: &Keyring,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let rows = sqlx::query(CLAIM_DUE)
        .bind(worker)
        .bind(until_ms)
        .bind(destination)
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.get("record_id")).collect();
    let records: std::collections::HashMap<String, PgRow> = sqlx::query(
        "SELECT r.id, r.client_id, r.record_type, r.received_at, r.canonical, k.kek_id, k.wrapped
           FROM records r LEFT JOIN payload_keys k ON k.record_id = r.id WHERE r.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.get("id"), r))
    .collect();
    let lease_until = DateTime::from_timestamp_millis(until_ms)
        .ok_or_else(|| StoreError::Corrupt("lease time out of range".into()))?;
    let corrupt = |what: &str| StoreError::Corrupt(what.into());
    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let record_id: String = r.get("record_id");
        let record = records
            .get(&record_id)
            .ok_or_else(|| corrupt("a delivery names a missing record"))?;
        let received_at: String = record.get("received_at");
        let mut c = ClaimedDelivery {
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
            canonical: sealed::open_canonical(
                keyring,
                &record_id,
                record.get("kek_id"),
                record.get("wrapped"),
                record.get("canonical"),
            )?,
            prior_receipt: None,
        };
        c.prior_receipt = prior_receipt(conn, &c).await?;
        claimed.push(c);
    }
    claimed.sort_by_key(|c| c.delivery_id);
    Ok(claimed)
}

const PRIOR_RECEIPT: &str = "
    SELECT e.receipt FROM records r JOIN deliveries e ON e.record_id = r.id
     WHERE e.destination = $1 AND r.subject = $2 AND e.route = $3 AND e.id < $4
       AND e.status IN ('delivered', 'awaiting', 'referred') AND e.receipt IS NOT NULL
     ORDER BY e.id DESC LIMIT 1";

/// The receipt of the subject's latest earlier delivery on the same route
/// that a registry answered: what a correction updates.
async fn prior_receipt(
    conn: &mut PgConnection,
    c: &ClaimedDelivery,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(subject) = &c.subject else {
        return Ok(None);
    };
    let text: Option<String> = sqlx::query_scalar(PRIOR_RECEIPT)
        .bind(&c.destination)
        .bind(subject)
        .bind(&c.route)
        .bind(c.delivery_id)
        .fetch_optional(&mut *conn)
        .await?;
    receipt(text).map_err(|_| StoreError::Corrupt("a receipt is not JSON".into()))
}

fn receipt(text: Option<String>) -> Result<Option<serde_json::Value>, serde_json::Error> {
    text.map(|t| serde_json::from_str(&t)).transpose()
}

/// Apply a completion if this worker still holds this claim's lease.
async fn record_completion(conn: &mut PgConnection, c: &Completion) -> Result<bool, sqlx::Error> {
    use DeliveryOutcome as O;
    // Each arm: its SET clause (numbered from $1) and what it binds.
    let (set, text, int): (&str, Vec<String>, Option<i64>) = match &c.outcome {
        O::Delivered { receipt } => (
            "status = 'delivered', receipt = $1, last_error = NULL",
            vec![receipt.to_string()],
            None,
        ),
        O::Awaiting {
            receipt,
            next_check,
        } => (
            "status = 'awaiting', receipt = $1, last_error = NULL, attempts = 0, next_attempt_ms = $2",
            vec![receipt.to_string()],
            Some(next_check.timestamp_millis()),
        ),
        O::Retry {
            next_attempt,
            error,
        } => (
            "last_error = $1, next_attempt_ms = $2",
            vec![error.clone()],
            Some(next_attempt.timestamp_millis()),
        ),
        O::Dead { error } => (
            "status = 'dead', last_error = $1",
            vec![error.clone()],
            None,
        ),
        O::Parked { reason } => (
            "status = 'parked', last_error = $1",
            vec![reason.clone()],
            None,
        ),
        O::Referred { reason, receipt } => (
            "status = 'referred', last_error = $1, receipt = $2",
            vec![reason.clone(), receipt.to_string()],
            None,
        ),
        O::Cancelled { reason } => (
            "status = 'cancelled', last_error = $1",
            vec![reason.clone()],
            None,
        ),
        O::Released { next_attempt } => (
            "attempts = GREATEST(attempts - 1, 0), next_attempt_ms = $1",
            vec![],
            Some(next_attempt.timestamp_millis()),
        ),
    };
    let n = text.len() + usize::from(int.is_some());
    let sql = format!(
        "UPDATE deliveries SET {set}, lease_owner = NULL, lease_until_ms = NULL, updated_at = ${}
          WHERE id = ${} AND lease_owner = ${} AND claims = ${} AND status IN ('pending', 'awaiting')",
        n + 1,
        n + 2,
        n + 3,
        n + 4
    );
    let mut q = sqlx::query(&sql);
    for t in text {
        q = q.bind(t);
    }
    if let Some(i) = int {
        q = q.bind(i);
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

/// Append events at the log's head; returns the first one's seq. The head
/// row stays locked until this transaction ends, so appends from every
/// instance are numbered in commit order without gaps.
async fn insert_events(
    conn: &mut PgConnection,
    events: &[(&AuditEvent, Option<String>)],
) -> Result<i64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let last: i64 = sqlx::query_scalar(
        "UPDATE audit_head SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq",
    )
    .bind(events.len() as i64)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - events.len() as i64 + 1;
    for (n, chunk) in events.chunks(ROWS_PER_STATEMENT).enumerate() {
        let offset = first + (n * ROWS_PER_STATEMENT) as i64;
        let mut q = QueryBuilder::<Postgres>::new(
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

fn stored_event(r: PgRow) -> Result<StoredAuditEvent, StoreError> {
    let hash: Vec<u8> = r.get("leaf_hash");
    Ok(StoredAuditEvent {
        seq: r.get("seq"),
        event: r.get("event"),
        leaf_hash: stored_leaf(hash)?,
    })
}

fn dead_letter(r: &PgRow) -> DeadLetter {
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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
