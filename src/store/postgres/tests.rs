//! What only the PostgreSQL store has: its own statements' plans. The rest of
//! its tests are the backend-generic suite in `store/tests.rs`.

use std::sync::Arc;

use super::testing::PgSchema;
use super::*;

/// A subject's deliveries are found through its records (one index entry per
/// record), not through an index over every delivery's subject (a random
/// leaf written per delivery: docs/perf, "Intake"), as in the embedded store.
/// The plans are read on a queue of 20,000 records with four deliveries
/// each, analysed, so the planner weighs them as in production; had it
/// walked a destination's queue instead, every claim would cost as much as
/// the backlog.
#[tokio::test]
async fn a_subjects_deliveries_are_found_through_its_records() {
    let Some(schema) =
        PgSchema::create("a_subjects_deliveries_are_found_through_its_records").await
    else {
        return;
    };
    let keyring = Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap());
    let store = PgStore::open_with(schema.options(), keyring).await.unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    let indexed: Vec<String> = sqlx::query_scalar(
        "SELECT indexname FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = 'deliveries'
            AND indexdef LIKE '%subject%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(
        indexed.is_empty(),
        "deliveries indexed by subject: {indexed:?}"
    );
    for sql in [
        "INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical, subject)
         SELECT 'r' || g, 'c', 's', 'birth-notification', '2026-12-03T00:00:00Z', '\\x00', '\\x00', md5(g::text)
           FROM generate_series(1, 20000) g",
        "INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms, subject)
         SELECT 'r' || g, route, route, CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'delivered' END, 0, md5(g::text)
           FROM generate_series(1, 20000) g, unnest(ARRAY['a', 'b', 'c', 'd']) route",
        "ANALYZE records",
        "ANALYZE deliveries",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    let subject = "c4ca4238a0b923820dcc509a6f75849b";
    let claim: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {CLAIM_DUE}"))
        .bind("worker")
        .bind(2_i64)
        .bind("a")
        .bind(1_i64)
        .bind(32_i64)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let prior: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {PRIOR_RECEIPT}"))
        .bind("a")
        .bind(subject)
        .bind("a")
        .bind(80_000_i64)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    for (name, plan) in [("claim", claim), ("prior receipt", prior)] {
        let step = |needle: &str| plan.iter().position(|line| line.contains(needle));
        let records = step("records_by_subject on records r");
        let deliveries = step("deliveries_record_id_route_key");
        assert!(
            records.is_some() && deliveries.is_some() && records < deliveries,
            "{name}: {plan:#?}"
        );
    }
    drop(conn);
    store.close().await;
}
