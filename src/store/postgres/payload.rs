//! Payload keys on PostgreSQL: the KEK check and re-wrap at open, and the
//! purge that destroys a record's data key (same meaning as
//! `sqlite/payload.rs`).

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgRow};

use super::insert_events;
use crate::audit::AuditEvent;
use crate::model::RecordId;
use crate::store::keyring::Keyring;
use crate::store::{Erasure, PurgeAudit, PurgedRecord, StoreError, decode_delivery_state};

/// Every KEK id in the store must be configured and unwrap one of its data
/// keys: a missing or wrong KEK stops the start with its id.
pub(super) async fn check_keks(pool: &PgPool, keyring: &Keyring) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (kek_id) kek_id, record_id, wrapped FROM payload_keys
          ORDER BY kek_id, record_id",
    )
    .fetch_all(pool)
    .await?;
    for r in rows {
        keyring.unwrap(
            r.get("record_id"),
            r.get("kek_id"),
            r.get::<&[u8], _>("wrapped"),
        )?;
    }
    Ok(())
}

/// Data keys wrapped by an earlier KEK are wrapped again by the current one,
/// in one transaction (rows locked, so two instances starting together do
/// not both re-wrap a key).
pub(super) async fn rewrap(pool: &PgPool, keyring: &Keyring) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT record_id, kek_id, wrapped FROM payload_keys WHERE kek_id <> $1 FOR UPDATE",
    )
    .bind(keyring.current_id())
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let record_id: String = r.get("record_id");
        let key = keyring.unwrap(&record_id, r.get("kek_id"), r.get::<&[u8], _>("wrapped"))?;
        let (kek_id, wrapped) = keyring.wrap(&key);
        sqlx::query("UPDATE payload_keys SET kek_id = $1, wrapped = $2 WHERE record_id = $3")
            .bind(kek_id)
            .bind(wrapped)
            .bind(&record_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Of the named deliveries, those whose record was purged.
pub(super) async fn purged_deliveries(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "SELECT d.id FROM deliveries d JOIN records r ON r.id = d.record_id
          WHERE r.purged_at IS NOT NULL AND d.id = ANY($1) ORDER BY d.id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
}

/// Records past their retention period whose every delivery is final
/// ([`crate::model::DeliveryState::is_final`]), consent decisions excepted
/// (see `sqlite/payload.rs`). Locked, so two instances do not purge one twice.
pub(super) async fn expired(
    conn: &mut PgConnection,
    cutoff: &str,
    limit: u32,
) -> Result<Vec<PurgedRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.client_id, r.source, r.record_type, r.received_at FROM records r
          WHERE r.purged_at IS NULL AND r.received_at < $1
            AND r.record_type <> 'consent'
            AND NOT EXISTS (SELECT 1 FROM deliveries d
                             WHERE d.record_id = r.id
                               AND d.status NOT IN ('delivered', 'referred', 'dead', 'cancelled'))
          ORDER BY r.received_at LIMIT $2
          FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(purged_record).collect()
}

fn purged_record(r: &PgRow) -> Result<PurgedRecord, sqlx::Error> {
    let id: String = r.get("id");
    Ok(PurgedRecord {
        id: RecordId::parse(&id)
            .ok_or_else(|| sqlx::Error::Decode("a malformed record id".into()))?,
        client_id: r.get("client_id"),
        source: r.get("source"),
        record_type: r.get("record_type"),
        received_at: r.get("received_at"),
    })
}

/// Whether `client_id` may erase record `id` now (the row locked until the
/// transaction ends).
pub(super) async fn erasable(
    conn: &mut PgConnection,
    id: RecordId,
    client_id: &str,
) -> Result<Erasure, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT id, client_id, source, record_type, received_at, purged_at FROM records
          WHERE id = $1 AND client_id = $2 FOR UPDATE",
    )
    .bind(id.to_string())
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Erasure::NotFound);
    };
    if row.get::<Option<String>, _>("purged_at").is_some() {
        return Ok(Erasure::AlreadyPurged);
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE record_id = $1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    for status in statuses {
        let state = decode_delivery_state(&status)?;
        if !state.is_final() {
            return Ok(Erasure::InFlight(state));
        }
    }
    Ok(Erasure::Purged(purged_record(&row)?))
}

/// Destroy the records' data keys and clear their payload columns, mark
/// them purged and log one `record.purged` event each.
pub(super) async fn purge(
    conn: &mut PgConnection,
    records: &[PurgedRecord],
    now: &str,
    audit: &PurgeAudit,
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    sqlx::query(
        "UPDATE records SET canonical = '', request_sha256 = '', purged_at = $1 WHERE id = ANY($2)",
    )
    .bind(now)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    for sql in [
        "DELETE FROM payload_keys WHERE record_id = ANY($1)",
        "UPDATE consents SET consent = '' WHERE record_id = ANY($1)",
        "DELETE FROM idempotency_keys WHERE record_id = ANY($1)",
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut *conn).await?;
    }
    let events: Vec<AuditEvent> = records.iter().map(audit).collect();
    let events: Vec<(&AuditEvent, Option<String>)> = events
        .iter()
        .zip(&ids)
        .map(|(e, id)| (e, Some(id.clone())))
        .collect();
    insert_events(conn, &events).await?;
    Ok(())
}

/// Reclaim the deleted key rows' space now rather than at autovacuum's next
/// pass (docs/store.md says what this does and does not erase). Best effort:
/// the purge has committed either way.
pub(super) async fn vacuum_keys(pool: &PgPool) {
    for table in ["payload_keys", "idempotency_keys"] {
        if let Err(e) = sqlx::query(&format!("VACUUM {table}")).execute(pool).await {
            tracing::warn!(error = %e, table, "vacuum after a purge failed");
        }
    }
}
