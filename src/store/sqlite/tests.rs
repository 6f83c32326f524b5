//! What only the embedded store has: files of its own. The rest of its
//! tests are the backend-generic suite in `store/tests.rs`.

use std::sync::Arc;

use super::*;

fn test_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap())
}

/// Children's records: the store's folder and files are the owner's alone
/// (#13, finding 10).
#[tokio::test]
async fn the_store_folder_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let store = SqliteStore::open(&dir, StoreMetrics::default(), test_keyring())
        .await
        .unwrap();
    store
        .accept(crate::store::tests::new_record(None, 1))
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "the database and its WAL");
    store.close().await;
}

/// Checkpoints are the checkpointer's: a commit never copies the WAL back
/// into the database, so no accept waits behind a checkpoint (docs/perf,
/// "Intake"). With the checkpointer stopped, the WAL keeps every frame the
/// writer appended; had the writer checkpointed (SQLite's default, every
/// 1000 frames), the WAL would have been restarted below that.
#[tokio::test]
async fn the_writer_leaves_checkpoints_to_the_checkpointer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_checkpointing(
        dir.path(),
        StoreMetrics::default(),
        test_keyring(),
        WalUpkeep {
            checkpoint_every: Duration::MAX,
            restart_at_frames: i64::MAX,
        },
    )
    .await
    .unwrap();
    // One commit each: every accept appends its pages to the WAL.
    for n in 0..400u32 {
        store
            .accept(crate::store::tests::new_record(None, n as u8))
            .await
            .unwrap();
    }
    let options = SqliteConnectOptions::new().filename(dir.path().join(DB_FILE));
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    // Reports the WAL's frames; copies them back (the store is idle now).
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        frames > 1200,
        "the WAL holds {frames} frames: the writer checkpointed"
    );
    conn.close().await.unwrap();
    store.close().await;
}

/// Under commits that never pause, the WAL starts over once it is
/// `restart_at_frames` long (docs/perf, "Intake"): passive checkpoints alone
/// let it grow without bound. Eight callers keep the writer busy; the same
/// load with restarts off is the control that shows the WAL would grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_sustained_commits() {
    const RESTART_AT: i64 = 128;
    let wal_bytes = |restart_at_frames| async move {
        let dir = tempfile::tempdir().unwrap();
        let upkeep = WalUpkeep {
            checkpoint_every: Duration::from_millis(5),
            restart_at_frames,
        };
        let store = Arc::new(
            SqliteStore::open_checkpointing(
                dir.path(),
                StoreMetrics::default(),
                test_keyring(),
                upkeep,
            )
            .await
            .unwrap(),
        );
        let callers: Vec<_> = (0..8u8)
            .map(|caller| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..150 {
                        let record = crate::store::tests::new_record(None, caller);
                        store.accept(record).await.unwrap();
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        let bytes = std::fs::metadata(dir.path().join("gateway.db-wal"))
            .unwrap()
            .len();
        store.close().await;
        bytes
    };
    let limit = (4 * RESTART_AT * 4096) as u64;
    let unbounded = wal_bytes(i64::MAX).await;
    assert!(
        unbounded > 2 * limit,
        "control: without restarts the WAL grew to only {unbounded} bytes"
    );
    let bounded = wal_bytes(RESTART_AT).await;
    assert!(
        bounded <= limit,
        "the WAL is {bounded} bytes, past {limit}: it was not started over"
    );
}

/// A subject that never had a consent is answered without a query (intake
/// asks for every record; docs/perf, "Intake"): with the read pool closed,
/// the answer is still "none", while a subject with a consent still reads
/// the database (and so fails here).
#[tokio::test]
async fn a_subject_without_consent_costs_no_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap();
    let mut consent = crate::store::tests::new_record(None, 1);
    consent.consent = Some(crate::store::ConsentEntry {
        subject: "subject-with-consent".into(),
        consent: br#"{"status":"granted"}"#.to_vec(),
    });
    store.accept(consent).await.unwrap();
    store.reads.close().await;
    assert!(
        store
            .latest_consent("subject-without")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.latest_consent("subject-with-consent").await.is_err());
    store.close().await;
}

/// A subject's deliveries are found through its records (one index entry per
/// record), not through an index over every delivery's subject (a random
/// page written per delivery: docs/perf, "Intake"). The claim's ordering
/// check and the prior-receipt lookup go from `records_by_subject` to each
/// record's deliveries; had the planner walked a destination's queue
/// instead, every claim would cost as much as the backlog.
#[tokio::test]
async fn a_subjects_deliveries_are_found_through_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap();
    let mut conn = store.reads.acquire().await.unwrap();
    let indexed: Vec<String> = sqlx::query_scalar(
        "SELECT i.name FROM pragma_index_list('deliveries') i, pragma_index_info(i.name) c
          WHERE c.name = 'subject'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(
        indexed.is_empty(),
        "deliveries indexed by subject: {indexed:?}"
    );
    for (name, sql) in [("claim", CLAIM_DUE), ("prior receipt", PRIOR_RECEIPT)] {
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect();
        let step = |prefix: &str| plan.iter().position(|d| d.starts_with(prefix));
        let subject = step("SEARCH r USING COVERING INDEX records_by_subject (subject=?");
        let deliveries = step("SEARCH e USING INDEX sqlite_autoindex_deliveries_1 (record_id=?");
        assert!(
            subject.is_some() && deliveries.is_some() && subject < deliveries,
            "{name}: {plan:#?}"
        );
    }
    drop(conn);
    store.close().await;
}
