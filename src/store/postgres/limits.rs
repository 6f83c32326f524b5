//! What every instance shares besides the records: each destination's GCRA
//! state and daily count, and who signs checkpoints.
//!
//! The GCRA cell is one row per destination changed by one conditional
//! UPDATE on the database's clock (`clock_timestamp()`), so instances with
//! skewed clocks still share one schedule and N instances together admit at
//! most `rate x W + burst` requests in any window W.

use std::time::Duration;

use chrono::NaiveDate;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};

use crate::store::StoreError;

/// Count one request to `destination` on `day` if fewer than `quota` were.
pub(super) async fn take_quota(
    pool: &PgPool,
    destination: &str,
    day: NaiveDate,
    quota: u32,
) -> Result<bool, StoreError> {
    if quota == 0 {
        return Ok(false);
    }
    let counted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO quota_days (destination, day, sent) VALUES ($1, $2, 1)
         ON CONFLICT (destination, day) DO UPDATE SET sent = quota_days.sent + 1
          WHERE quota_days.sent < $3
         RETURNING sent",
    )
    .bind(destination)
    .bind(day.to_string())
    .bind(i64::from(quota))
    .fetch_optional(pool)
    .await?;
    Ok(counted.is_some())
}

/// Take one GCRA cell of `destination` (emission interval `period`, `burst`
/// at once): `None` when taken, else how long until one may be.
pub(super) async fn take_cell(
    pool: &PgPool,
    destination: &str,
    period: Duration,
    burst: u32,
) -> Result<Option<Duration>, StoreError> {
    let t = i64::try_from(period.as_micros()).unwrap_or(i64::MAX).max(1);
    let burst = i64::from(burst.max(1));
    // tat: the theoretical arrival time; a request at `now` conforms when
    // max(tat, now) + T - now <= T x burst. One statement: the row lock
    // orders instances, the WHERE admits only what conforms. Otherwise it
    // answers how long until the request would conform. The row a first
    // call seeds is not seen by the same statement: that call waits 1 µs.
    let wait: i64 = sqlx::query_scalar(
        "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us),
              seed AS (INSERT INTO pace_cells (destination, tat_us) VALUES ($1, 0)
                       ON CONFLICT (destination) DO NOTHING),
              taken AS (UPDATE pace_cells SET tat_us = GREATEST(tat_us, now.us) + $2
                          FROM now
                         WHERE destination = $1
                           AND GREATEST(tat_us, now.us) + $2 - now.us <= $2 * $3
                     RETURNING 0::bigint AS wait)
         SELECT coalesce((SELECT wait FROM taken),
                         (SELECT GREATEST(p.tat_us + $2 - $2 * $3 - now.us, 1)
                            FROM pace_cells p, now WHERE p.destination = $1),
                         1)",
    )
    .bind(destination)
    .bind(t)
    .bind(burst)
    .fetch_one(pool)
    .await?;
    Ok((wait > 0).then(|| Duration::from_micros(wait as u64)))
}

/// The advisory lock's key, per schema.
const SIGNER_LOCK: &str = "hashtext(current_schema() || '/checkpoint-signer')";

/// Whether this instance is the checkpoint signer: it holds a session
/// advisory lock (keyed by the schema, so stores in other schemas of the
/// database have their own) on the connection kept in `held`. When the
/// holder dies, PostgreSQL ends its session and the lock is free for the
/// next instance that asks.
pub(super) async fn lead(
    held: &mut Option<PgConnection>,
    connect: &PgConnectOptions,
) -> Result<bool, StoreError> {
    if let Some(conn) = held.as_mut() {
        if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
            return Ok(true);
        }
        // The session is gone, and the lock with it: ask again.
        *held = None;
    }
    let mut conn = PgConnection::connect_with(connect).await?;
    let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({SIGNER_LOCK})"))
        .fetch_one(&mut conn)
        .await?;
    if got {
        *held = Some(conn);
    } else {
        let _ = conn.close().await;
    }
    Ok(got)
}

/// Give up the signer's lock, then the connection that held it. Unlocking
/// first: PostgreSQL frees a session's locks only once its backend has
/// exited, which comes a moment after the client's close returns, so
/// another instance asking at once could still be refused.
pub(super) async fn step_down(held: Option<PgConnection>) {
    if let Some(mut conn) = held {
        let _ = sqlx::query(&format!("SELECT pg_advisory_unlock({SIGNER_LOCK})"))
            .execute(&mut conn)
            .await;
        let _ = sqlx::Connection::close(conn).await;
    }
}
