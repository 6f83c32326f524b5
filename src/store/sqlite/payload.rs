//! Payloads at rest: sealing a record's columns with its data key, reading
//! them back, keeping the store's keys usable across KEK rotations and older
//! builds' plaintext rows, and the purge that destroys a data key.

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};

use super::{corrupt, key_error};
use crate::audit::AuditEvent;
use crate::model::RecordId;
use crate::store::keyring::{DataKey, Keyring, is_sealed};
use crate::store::{Erasure, PayloadGone, PurgeAudit, PurgedRecord, StoreError};

pub(super) use crate::store::sealed::{CANONICAL, CONSENT, REQUEST_SHA256, Sealed};

/// A claimed record's canonical JSON, from a row of `records LEFT JOIN
/// payload_keys`: `Err(Purged)` when its key is gone.
pub(super) fn open_canonical(
    row: &SqliteRow,
    record_id: &str,
    keyring: &Keyring,
) -> Result<Result<Vec<u8>, PayloadGone>, sqlx::Error> {
    crate::store::sealed::open_canonical(
        keyring,
        record_id,
        row.get("kek_id"),
        row.get("wrapped"),
        row.get("canonical"),
    )
    .map_err(key_error)
}

/// Every KEK id in the store must be configured, and each must unwrap one
/// of its data keys: a missing or wrong KEK stops the start with its id.
pub(super) async fn check_keks(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
) -> Result<(), StoreError> {
    let rows =
        sqlx::query("SELECT kek_id, min(record_id) AS record_id FROM payload_keys GROUP BY kek_id")
            .fetch_all(&mut *conn)
            .await?;
    for r in rows {
        let kek_id: String = r.get("kek_id");
        let record_id: String = r.get("record_id");
        let wrapped: Vec<u8> =
            sqlx::query_scalar("SELECT wrapped FROM payload_keys WHERE record_id = ?")
                .bind(&record_id)
                .fetch_one(&mut *conn)
                .await?;
        keyring.unwrap(&record_id, &kek_id, &wrapped)?;
    }
    Ok(())
}

/// Data keys wrapped by an earlier KEK are wrapped again by the current one,
/// in one transaction, so the earlier KEK can be retired after one start.
pub(super) async fn rewrap(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
) -> Result<u64, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query("SELECT record_id, kek_id, wrapped FROM payload_keys WHERE kek_id <> ?")
        .bind(keyring.current_id())
        .fetch_all(&mut *tx)
        .await?;
    for r in &rows {
        let record_id: String = r.get("record_id");
        let key = keyring.unwrap(&record_id, r.get("kek_id"), r.get("wrapped"))?;
        let (kek_id, wrapped) = keyring.wrap(&key);
        sqlx::query("UPDATE payload_keys SET kek_id = ?, wrapped = ? WHERE record_id = ?")
            .bind(kek_id)
            .bind(wrapped)
            .bind(&record_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Records written by builds before payload encryption are sealed now, each
/// with a new data key, in one transaction (with secure_delete on, the
/// plaintext is overwritten).
pub(super) async fn seal_plaintext(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
) -> Result<u64, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query(
        "SELECT id, canonical, request_sha256 FROM records
          WHERE purged_at IS NULL AND id NOT IN (SELECT record_id FROM payload_keys)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let id: String = r.get("id");
        let canonical: Vec<u8> = r.get("canonical");
        let hash: Vec<u8> = r.get("request_sha256");
        if is_sealed(&canonical) {
            return Err(StoreError::Corrupt(format!(
                "record {id} is sealed but has no data key"
            )));
        }
        let key = DataKey::generate(&id);
        let (kek_id, wrapped) = keyring.wrap(&key);
        sqlx::query("UPDATE records SET canonical = ?, request_sha256 = ? WHERE id = ?")
            .bind(key.seal(CANONICAL, &canonical))
            .bind(key.seal(REQUEST_SHA256, &hash))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let consents = sqlx::query("SELECT id, consent FROM consents WHERE record_id = ?")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
        for c in consents {
            sqlx::query("UPDATE consents SET consent = ? WHERE id = ?")
                .bind(key.seal(CONSENT, c.get("consent")))
                .bind(c.get::<i64, _>("id"))
                .execute(&mut *tx)
                .await?;
        }
        let keys = sqlx::query(
            "SELECT client_id, key, request_sha256 FROM idempotency_keys WHERE record_id = ?",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        for k in keys {
            sqlx::query(
                "UPDATE idempotency_keys SET request_sha256 = ? WHERE client_id = ? AND key = ?",
            )
            .bind(key.seal(REQUEST_SHA256, k.get("request_sha256")))
            .bind(k.get::<String, _>("client_id"))
            .bind(k.get::<String, _>("key"))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO payload_keys (record_id, kek_id, wrapped) VALUES (?, ?, ?)")
            .bind(&id)
            .bind(kek_id)
            .bind(wrapped)
            .execute(&mut *tx)
            .await?;
    }
    // Consent rows whose record is gone or purged keep nothing readable.
    sqlx::query(
        "UPDATE consents SET consent = X''
          WHERE record_id IS NULL OR record_id NOT IN (SELECT record_id FROM payload_keys)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Copy every WAL frame into the database and truncate the WAL, so pages
/// that held a destroyed key or replaced plaintext are gone from `-wal` too
/// (secure_delete has already zeroed them in the database's own pages).
/// Retried while a reader holds an older snapshot.
pub(super) async fn wipe_wal(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    for _ in 0..50 {
        let (busy,): (i64,) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        if busy == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!("the WAL could not be truncated after a purge; the next purge tries again");
    Ok(())
}

/// Of the named deliveries, those whose record was purged.
pub(super) async fn purged_deliveries(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT d.id FROM deliveries d JOIN records r ON r.id = d.record_id
          WHERE r.purged_at IS NOT NULL AND d.id IN (",
    );
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(") ORDER BY d.id");
    q.build_query_scalar().fetch_all(&mut *conn).await
}

const FINAL: &str = "('delivered', 'referred', 'dead', 'cancelled')";

/// Records received before `cutoff`, not purged, with no delivery that is
/// not final (the SQL list is [`DeliveryState::is_final`]'s; a test holds them equal).
/// Records past their retention period whose every delivery is final.
/// Consent decisions are not among them: a purged withdrawal would stop
/// applying, and a child's later records would go out on their own consent
/// fields. A decision leaves only by its owner's erasure.
pub(super) async fn expired(
    conn: &mut SqliteConnection,
    cutoff: &str,
    limit: u32,
) -> Result<Vec<PurgedRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT r.id, r.client_id, r.source, r.record_type, r.received_at FROM records r
          WHERE r.purged_at IS NULL AND r.received_at < ?
            AND r.record_type <> 'consent'
            AND NOT EXISTS (SELECT 1 FROM deliveries d
                             WHERE d.record_id = r.id AND d.status NOT IN {FINAL})
          ORDER BY r.received_at LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(cutoff)
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(purged_record).collect()
}

fn purged_record(r: &SqliteRow) -> Result<PurgedRecord, sqlx::Error> {
    let id: String = r.get("id");
    Ok(PurgedRecord {
        id: RecordId::parse(&id).ok_or_else(|| corrupt("a malformed record id"))?,
        client_id: r.get("client_id"),
        source: r.get("source"),
        record_type: r.get("record_type"),
        received_at: r.get("received_at"),
    })
}

/// Whether `client_id` may erase record `id` now.
pub(super) async fn erasable(
    conn: &mut SqliteConnection,
    id: RecordId,
    client_id: &str,
) -> Result<Erasure, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT id, client_id, source, record_type, received_at, purged_at FROM records
          WHERE id = ? AND client_id = ?",
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
        sqlx::query_scalar("SELECT status FROM deliveries WHERE record_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    for status in statuses {
        let state = crate::store::decode_delivery_state(&status)?;
        if !state.is_final() {
            return Ok(Erasure::InFlight(state));
        }
    }
    Ok(Erasure::Purged(purged_record(&row)?))
}

/// Destroy the records' data keys and clear what their rows held of the
/// payload (ciphertexts, the idempotency key a client chose), mark them
/// purged and log one `record.purged` event each. Ids, subjects,
/// deliveries, receipts and the exchange log stay.
pub(super) async fn purge(
    conn: &mut SqliteConnection,
    records: &[PurgedRecord],
    now: &str,
    audit: &PurgeAudit,
) -> Result<(), sqlx::Error> {
    for r in records {
        let id = r.id.to_string();
        sqlx::query(
            "UPDATE records SET canonical = X'', request_sha256 = X'', purged_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        for sql in [
            "DELETE FROM payload_keys WHERE record_id = ?",
            "UPDATE consents SET consent = X'' WHERE record_id = ?",
            "DELETE FROM idempotency_keys WHERE record_id = ?",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *conn).await?;
        }
    }
    let events: Vec<AuditEvent> = records.iter().map(audit).collect();
    let events: Vec<(&AuditEvent, Option<String>)> = events
        .iter()
        .zip(records)
        .map(|(e, r)| (e, Some(r.id.to_string())))
        .collect();
    super::insert_events(conn, &events).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryState;

    #[test]
    fn the_final_states_in_sql_are_the_models() {
        let listed: Vec<DeliveryState> = FINAL
            .trim_matches(['(', ')'])
            .split(", ")
            .map(|s| DeliveryState::parse(s.trim_matches('\'')).unwrap())
            .collect();
        let finals: Vec<DeliveryState> = DeliveryState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        let mut listed = listed;
        listed.sort();
        assert_eq!(listed, finals);
    }
}
