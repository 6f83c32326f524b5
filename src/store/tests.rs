//! One store suite, run against both backends with the same assertions:
//! each test is an `async fn(Backend)`, instantiated by [`both_backends!`]
//! once on SQLite (a temp dir) and once on PostgreSQL (a fresh schema of
//! the machine's database, dropped after; skipped with a message when it
//! cannot be reached, except in CI).

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::Row;

use super::keyring::Keyring;
use super::postgres::PgStore;
use super::postgres::testing::PgSchema;
use super::sqlite::SqliteStore;
use super::*;
use crate::audit::{AuditKind, leaf_hash};
use crate::model::{DeliveryState, RecordId, RecordType};
use crate::telemetry::StoreMetrics;

/// One fixed KEK, so a store reopened in a test still reads its data keys.
fn test_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap())
}

/// Where a test's store lives.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(Box<PgSchema>),
}

/// Run `$body` with `$conn`, a fresh connection of the test's own database
/// (each backend's connection type: the body compiles once per backend).
macro_rules! on_raw {
    ($test:expr, $conn:ident => $body:expr) => {
        match &*$test.place {
            Place::Sqlite(dir) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("gateway.db"))
                    .busy_timeout(Duration::from_secs(10));
                let mut $conn =
                    <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                        .await
                        .unwrap();
                $body
            }
            Place::Postgres(schema) => {
                let mut $conn =
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&schema.options())
                        .await
                        .unwrap();
                $body
            }
        }
    };
}

/// A store under test, and raw SQL on its database (to look behind the
/// trait, or to plant what only an operator's hand could).
struct TestStore {
    store: Arc<dyn Store>,
    place: Arc<Place>,
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl TestStore {
    async fn open(place: Arc<Place>) -> TestStore {
        let store: Arc<dyn Store> = match &*place {
            Place::Sqlite(dir) => Arc::new(
                SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
                    .await
                    .unwrap(),
            ),
            Place::Postgres(schema) => Arc::new(
                PgStore::open_with(schema.options(), test_keyring())
                    .await
                    .unwrap(),
            ),
        };
        TestStore { store, place }
    }

    /// Another instance on the same database (on SQLite, whose file belongs
    /// to one process, the same store).
    async fn another_instance(&self) -> TestStore {
        match &*self.place {
            Place::Sqlite(_) => TestStore {
                store: self.store.clone(),
                place: self.place.clone(),
            },
            Place::Postgres(_) => TestStore::open(self.place.clone()).await,
        }
    }

    /// Close and open again on the same data.
    async fn reopen(self) -> TestStore {
        self.store.close().await;
        TestStore::open(self.place.clone()).await
    }

    fn arc(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Run one statement on the database, behind the store's back.
    async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        on_raw!(self, conn => Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected()))
    }

    /// The first column of every row of a query, as bytes.
    async fn column_bytes(&self, sql: &str) -> Vec<Vec<u8>> {
        on_raw!(self, conn => {
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| r.get::<Vec<u8>, _>(0)).collect()
        })
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        on_raw!(self, conn => sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap())
    }

    /// Files of the store that could hold a payload (SQLite's database and
    /// WAL; PostgreSQL's files are the server's, out of a test's reach).
    fn files(&self) -> Vec<std::path::PathBuf> {
        match &*self.place {
            Place::Sqlite(dir) => ["gateway.db", "gateway.db-wal"]
                .iter()
                .map(|f| dir.path().join(f))
                .collect(),
            Place::Postgres(_) => Vec::new(),
        }
    }
}

/// Which backend a test runs on.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh store; `None` when PostgreSQL is out of reach (said on stderr).
    async fn open(self, test: &str) -> Option<TestStore> {
        let place = match self {
            Backend::Sqlite => Place::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Place::Postgres(Box::new(PgSchema::create(test).await?)),
        };
        Some(TestStore::open(Arc::new(place)).await)
    }
}

/// Each named `async fn(TestStore)` becomes one test per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::Backend::Sqlite.open(stringify!($name)).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = super::Backend::Postgres.open(stringify!($name)).await {
                        super::$name(store).await;
                    }
                }
            )*
        }
    };
}

pub(super) fn new_record(key: Option<&str>, body_hash: u8) -> NewRecord {
    let id = RecordId::new();
    let at = Utc::now();
    let mut audit = AuditEvent::new(AuditKind::RecordAccepted, at, "agency-a", "canonical");
    audit.record_id = Some(id.to_string());
    NewRecord {
        id,
        client_id: "agency-a".into(),
        source: "canonical".into(),
        record_type: RecordType::BirthNotification,
        received_at: at,
        idempotency_key: key.map(str::to_string),
        request_sha256: [body_hash; 32],
        canonical: br#"{"record_type":"birth-notification"}"#.to_vec(),
        deliveries: vec![
            NewDelivery {
                route: "birth-notification-to-a".into(),
                destination: "a".into(),
            },
            NewDelivery {
                route: "birth-notification-to-b".into(),
                destination: "b".into(),
            },
        ],
        audit,
        subject: None,
        consent: None,
    }
}

async fn accept_commits_record_deliveries_and_audit_together(store: TestStore) {
    let record = new_record(None, 1);
    let id = record.id;
    assert_eq!(
        store.accept(record).await.unwrap(),
        AcceptOutcome::Created(id)
    );
    let status = store.record_status(id).await.unwrap().unwrap();
    assert_eq!(status.routes.len(), 2);
    assert!(
        status
            .routes
            .iter()
            .all(|r| r.status == DeliveryState::Pending)
    );
    assert_eq!(store.count("audit_log").await, 1);
    let events = store.audit_events(1, 10).await.unwrap();
    assert_eq!(events[0].leaf_hash, leaf_hash(&events[0].event));
}

async fn idempotency_keys_replay_or_conflict_and_store_nothing_new(store: TestStore) {
    let first = new_record(Some("k1"), 1);
    let id = first.id;
    store.accept(first).await.unwrap();
    assert_eq!(
        store.accept(new_record(Some("k1"), 1)).await.unwrap(),
        AcceptOutcome::Replayed(id)
    );
    assert_eq!(
        store.accept(new_record(Some("k1"), 2)).await.unwrap(),
        AcceptOutcome::Conflict(id)
    );
    assert_eq!(store.count("records").await, 1);
    assert_eq!(store.count("deliveries").await, 2);
    assert_eq!(store.count("audit_log").await, 1);
}

async fn concurrent_accepts_with_one_key_store_one_record(store: TestStore) {
    let shared = store.arc();
    let results = futures::future::join_all((0..50).map(|_| {
        let store = shared.clone();
        async move { store.accept(new_record(Some("same"), 7)).await.unwrap() }
    }))
    .await;
    let created = results
        .iter()
        .filter(|r| matches!(r, AcceptOutcome::Created(_)))
        .count();
    assert_eq!(created, 1);
    assert_eq!(store.count("records").await, 1);
}

async fn a_failing_request_does_not_take_its_group_down(store: TestStore) {
    let shared = store.arc();
    let mut duplicate = new_record(None, 3);
    // Two deliveries on one route violate UNIQUE (record_id, route).
    duplicate.deliveries.push(duplicate.deliveries[0].clone());
    let good: Vec<_> = (0..20).map(|i| new_record(None, i)).collect();
    let mut tasks = Vec::new();
    for r in good {
        let store = shared.clone();
        tasks.push(tokio::spawn(async move { store.accept(r).await.is_ok() }));
    }
    let bad = {
        let store = shared.clone();
        tokio::spawn(async move { store.accept(duplicate).await })
    };
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert!(bad.await.unwrap().is_err());
    assert_eq!(store.count("records").await, 20);
    assert_eq!(store.count("deliveries").await, 40);
}

async fn the_audit_log_refuses_updates_and_deletes(store: TestStore) {
    store.accept(new_record(None, 1)).await.unwrap();
    let update = store.exec("UPDATE audit_log SET kind = 'x'").await;
    let delete = store.exec("DELETE FROM audit_log").await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

async fn claims_lease_each_delivery_to_one_worker_until_the_lease_expires(store: TestStore) {
    for i in 0..3 {
        store.accept(new_record(None, i)).await.unwrap();
    }
    let now = Utc::now();
    let lease = Duration::from_secs(30);
    let w1 = store.claim_due("a", "w1", 2, lease, now).await.unwrap();
    let w2 = store.claim_due("a", "w2", 5, lease, now).await.unwrap();
    assert_eq!(w1.len(), 2);
    assert_eq!(w2.len(), 1, "only the unleased delivery is left");
    assert!(w1.iter().all(|c| c.destination == "a" && c.attempt == 1));
    assert!(w1.iter().all(|c| !w2.contains(c)));
    // Nothing is due while leases hold; all of it once they have expired.
    assert!(
        store
            .claim_due("a", "w3", 5, lease, now)
            .await
            .unwrap()
            .is_empty()
    );
    let later = now + ChronoDuration::seconds(31);
    let again = store.claim_due("a", "w3", 5, lease, later).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|c| c.attempt == 2));
}

async fn data_survives_reopening(store: TestStore) {
    let record = new_record(Some("k"), 1);
    let id = record.id;
    store.accept(record).await.unwrap();
    let store = store.reopen().await;
    assert_eq!(
        store.record_status(id).await.unwrap().unwrap().routes.len(),
        2
    );
    assert_eq!(
        store.accept(new_record(Some("k"), 1)).await.unwrap(),
        AcceptOutcome::Replayed(id)
    );
}

fn completion(d: &ClaimedDelivery, worker: &str, outcome: DeliveryOutcome) -> Completion {
    let mut audit = AuditEvent::new(
        AuditKind::DeliveryDelivered,
        Utc::now(),
        "agency-a",
        "delivery",
    );
    audit.record_id = Some(d.record_id.to_string());
    Completion {
        delivery_id: d.delivery_id,
        worker: worker.into(),
        claim: d.claim,
        outcome,
        at: Utc::now(),
        audit: Some(audit),
    }
}

async fn a_completion_counts_only_while_the_lease_is_held(store: TestStore) {
    let record = new_record(None, 1);
    let id = record.id;
    store.accept(record).await.unwrap();
    let lease = Duration::from_secs(30);
    let now = Utc::now();
    let first = store.claim_due("a", "w1", 10, lease, now).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].canonical.as_deref(),
        Ok(&br#"{"record_type":"birth-notification"}"#[..])
    );
    // w1's lease expires; w2 takes the delivery over.
    let later = now + ChronoDuration::seconds(31);
    let second = store.claim_due("a", "w2", 10, lease, later).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    let events_before = store.count("audit_log").await;
    let receipt = serde_json::json!({"status": "ACCEPTED", "reference": "T-1"});
    let late = completion(
        &first[0],
        "w1",
        DeliveryOutcome::Delivered {
            receipt: receipt.clone(),
        },
    );
    assert!(
        !store.complete(late).await.unwrap(),
        "a lost lease records nothing"
    );
    assert_eq!(store.count("audit_log").await, events_before);
    let done = completion(
        &second[0],
        "w2",
        DeliveryOutcome::Delivered {
            receipt: receipt.clone(),
        },
    );
    assert!(store.complete(done).await.unwrap());
    assert_eq!(store.count("audit_log").await, events_before + 1);
    let status = store.record_status(id).await.unwrap().unwrap();
    let a = status.routes.iter().find(|r| r.destination == "a").unwrap();
    assert_eq!(a.status, DeliveryState::Delivered);
    assert_eq!(a.receipt.as_ref(), Some(&receipt));
    assert!(
        store
            .claim_due("a", "w3", 10, lease, later + ChronoDuration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn released_claims_do_not_count_as_attempts_and_dead_letters_replay(store: TestStore) {
    store.accept(new_record(None, 1)).await.unwrap();
    let lease = Duration::from_secs(30);
    let now = Utc::now();
    let c = store.claim_due("a", "w", 1, lease, now).await.unwrap();
    let next = now + ChronoDuration::seconds(5);
    assert!(
        store
            .complete(completion(
                &c[0],
                "w",
                DeliveryOutcome::Released { next_attempt: next }
            ))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_due("a", "w", 1, lease, now)
            .await
            .unwrap()
            .is_empty(),
        "not due before next_attempt"
    );
    let c = store.claim_due("a", "w", 1, lease, next).await.unwrap();
    assert_eq!(c[0].attempt, 1, "a released claim is not an attempt");
    assert!(
        store
            .complete(completion(
                &c[0],
                "w",
                DeliveryOutcome::Dead {
                    error: "permanent: http 400".into()
                }
            ))
            .await
            .unwrap()
    );
    let dead = store.dead_letters(Some("a"), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("permanent: http 400"));
    assert!(store.dead_letters(Some("b"), 10).await.unwrap().is_empty());
    let audit = |d: &DeadLetter| {
        let mut e = AuditEvent::new(AuditKind::DeliveryReplayed, Utc::now(), "admin", "admin");
        e.record_id = Some(d.record_id.clone());
        e
    };
    let replayed = store.replay(Some("a"), &[], next, &audit).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert!(store.dead_letters(None, 10).await.unwrap().is_empty());
    let again = store.claim_due("a", "w", 1, lease, next).await.unwrap();
    assert_eq!(
        again[0].attempt, 1,
        "a replay starts counting attempts afresh"
    );
}

async fn a_subjects_deliveries_leave_in_acceptance_order(store: TestStore) {
    let mut first = new_record(None, 1);
    first.subject = Some("child-1".into());
    let mut second = new_record(None, 2);
    second.subject = Some("child-1".into());
    let mut other = new_record(None, 3);
    other.subject = Some("child-2".into());
    for r in [first, second, other] {
        store.accept(r).await.unwrap();
    }
    let lease = Duration::from_secs(30);
    let now = Utc::now() + ChronoDuration::seconds(1);
    let claimed = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    let subjects: Vec<_> = claimed.iter().map(|c| c.subject.clone().unwrap()).collect();
    assert_eq!(
        subjects,
        ["child-1", "child-2"],
        "child-1's second record waits for its first"
    );
    let first = &claimed[0];
    store
        .complete(completion(
            first,
            "w",
            DeliveryOutcome::Delivered {
                receipt: serde_json::json!({}),
            },
        ))
        .await
        .unwrap();
    let next = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].delivery_id > first.delivery_id);
    assert_eq!(next[0].subject.as_deref(), Some("child-1"));
}

fn delivered(receipt: serde_json::Value) -> DeliveryOutcome {
    DeliveryOutcome::Delivered { receipt }
}

/// A child's record and its corrections, one subject, on destination `a`.
async fn versions_of_one_child(store: &TestStore, versions: u8) {
    for v in 1..=versions {
        let mut r = new_record(None, v);
        r.subject = Some("child-1".into());
        store.accept(r).await.unwrap();
    }
}

async fn a_correction_is_claimed_with_the_receipt_of_the_version_before_it(store: TestStore) {
    versions_of_one_child(&store, 2).await;
    let lease = Duration::from_secs(30);
    let now = Utc::now() + ChronoDuration::seconds(1);
    let first = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    assert_eq!(first.len(), 1, "the correction waits for the first version");
    assert_eq!(first[0].prior_receipt, None);
    let receipt =
        serde_json::json!({"status": "ACCEPTED", "reference": "case-1", "http_status": 204});
    store
        .complete(completion(&first[0], "w", delivered(receipt.clone())))
        .await
        .unwrap();
    let second = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].prior_receipt.as_ref(), Some(&receipt));
    // Another destination's receipt is not this route's.
    let on_b = store.claim_due("b", "w", 10, lease, now).await.unwrap();
    assert!(on_b.iter().all(|c| c.prior_receipt.is_none()));
}

async fn a_parked_delivery_holds_back_later_versions_until_an_operator_replays_it(
    store: TestStore,
) {
    versions_of_one_child(&store, 2).await;
    let lease = Duration::from_secs(30);
    let now = Utc::now() + ChronoDuration::seconds(1);
    let first = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    let parked = DeliveryOutcome::Parked {
        reason: "outcome unknown: timeout after the request was written".into(),
    };
    store
        .complete(completion(&first[0], "w", parked))
        .await
        .unwrap();
    let later = Utc::now() + ChronoDuration::hours(1);
    assert!(
        store
            .claim_due("a", "w", 10, lease, later)
            .await
            .unwrap()
            .is_empty(),
        "nothing of this child goes while its first version's outcome is unknown"
    );
    let listed = store.parked(Some("a"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].delivery_id, first[0].delivery_id);
    assert!(store.dead_letters(Some("a"), 10).await.unwrap().is_empty());
    // A bulk replay of the destination leaves parked deliveries alone.
    let audit = |d: &DeadLetter| {
        let mut e = AuditEvent::new(AuditKind::DeliveryReplayed, Utc::now(), "admin", "admin");
        e.record_id = Some(d.record_id.clone());
        e
    };
    let bulk = store
        .replay(Some("a"), &[], Utc::now(), &audit)
        .await
        .unwrap();
    assert!(bulk.is_empty());
    // Named by id, after the operator checked the registry, it goes again.
    let replayed = store
        .replay(None, &[first[0].delivery_id], Utc::now(), &audit)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    let again = store.claim_due("a", "w", 10, lease, later).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_id, first[0].delivery_id);
}

async fn an_awaiting_delivery_is_checked_again_when_due_and_holds_back_later_versions(
    store: TestStore,
) {
    versions_of_one_child(&store, 2).await;
    let lease = Duration::from_secs(30);
    let now = Utc::now() + ChronoDuration::seconds(1);
    let first = store.claim_due("a", "w", 10, lease, now).await.unwrap();
    let check_at = now + ChronoDuration::minutes(5);
    let awaiting = DeliveryOutcome::Awaiting {
        receipt: serde_json::json!({"status": "REQUESTED", "reference": "evt-1"}),
        next_check: check_at,
    };
    store
        .complete(completion(&first[0], "w", awaiting))
        .await
        .unwrap();
    assert!(
        store
            .claim_due("a", "w", 10, lease, now)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .claim_due("a", "w", 10, lease, check_at + ChronoDuration::seconds(1))
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "only the awaiting one, the correction waits");
    assert_eq!(due[0].delivery_id, first[0].delivery_id);
    assert_eq!(
        due[0].attempt, 1,
        "attempts start again once the registry holds it"
    );
}

/// The same worker claims a delivery again once its lease ran out (a send
/// that outlived it): the first claim's late outcome is not recorded, only
/// the current claim's (#13, finding 3).
async fn a_late_outcome_of_an_expired_claim_by_the_same_worker_is_not_recorded(store: TestStore) {
    store.accept(new_record(None, 1)).await.unwrap();
    let lease = Duration::from_secs(30);
    let now = Utc::now() + ChronoDuration::seconds(1);
    let first = store.claim_due("a", "w", 1, lease, now).await.unwrap();
    let expired = now + ChronoDuration::seconds(31);
    let second = store.claim_due("a", "w", 1, lease, expired).await.unwrap();
    assert_eq!(first[0].delivery_id, second[0].delivery_id);
    assert_ne!(first[0].claim, second[0].claim);
    let late = completion(
        &first[0],
        "w",
        delivered(serde_json::json!({"status": "ACCEPTED"})),
    );
    assert!(
        !store.complete(late).await.unwrap(),
        "an expired claim's outcome was recorded"
    );
    let current = completion(
        &second[0],
        "w",
        delivered(serde_json::json!({"status": "ACCEPTED"})),
    );
    assert!(store.complete(current).await.unwrap());
}

/// Each outcome leaves the status `DeliveryOutcome::status` names, and every
/// stored status reads back (record status and counts), so the status words
/// in the SQL and `DeliveryState` cannot drift apart.
async fn recorded_outcomes_read_back_as_their_delivery_state(store: TestStore) {
    let lease = Duration::from_secs(30);
    let now = Utc::now();
    let outcomes = [
        DeliveryOutcome::Delivered {
            receipt: serde_json::json!({"status": "ACCEPTED"}),
        },
        DeliveryOutcome::Retry {
            next_attempt: now,
            error: "503".into(),
        },
        DeliveryOutcome::Dead {
            error: "permanent: 400".into(),
        },
        DeliveryOutcome::Cancelled {
            reason: "consent withdrawn".into(),
        },
        DeliveryOutcome::Released { next_attempt: now },
        DeliveryOutcome::Awaiting {
            receipt: serde_json::json!({"status": "REQUESTED"}),
            next_check: now,
        },
        DeliveryOutcome::Parked {
            reason: "outcome unknown: timeout".into(),
        },
        DeliveryOutcome::Referred {
            reason: "needs the registry's own process".into(),
            receipt: serde_json::json!({"status": "REFERRED", "reference": "T1"}),
        },
    ];
    // One destination per outcome, so each claim finds only its own record.
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let a = format!("a{n}");
        let mut record = new_record(None, 1);
        record.deliveries[0].destination = a.clone();
        let id = record.id;
        store.accept(record).await.unwrap();
        let due = Utc::now() + ChronoDuration::seconds(1);
        let c = store.claim_due(&a, "w", 1, lease, due).await.unwrap();
        assert_eq!(c[0].record_type, Ok(RecordType::BirthNotification));
        let expected = outcome.status();
        assert!(
            store
                .complete(completion(&c[0], "w", outcome))
                .await
                .unwrap()
        );
        let status = store.record_status(id).await.unwrap().unwrap();
        assert_eq!(status.record_type, RecordType::BirthNotification);
        let route = status.routes.iter().find(|r| r.destination == a).unwrap();
        assert_eq!(route.status, expected);
        let counts = store.delivery_counts().await.unwrap();
        assert!(
            counts
                .iter()
                .any(|c| c.destination == a && c.status == expected)
        );
        assert!(
            counts
                .iter()
                .any(|c| c.destination == "b" && c.status == DeliveryState::Pending)
        );
    }
}

/// A value the gateway does not know is a typed error on reads, and, in a
/// claim, only that delivery's record type fails to decode.
async fn unknown_stored_values_are_typed_errors(store: TestStore) {
    let record = new_record(None, 1);
    let id = record.id;
    store.accept(record).await.unwrap();
    store
        .exec("UPDATE records SET record_type = 'death-notification'")
        .await
        .unwrap();
    assert!(matches!(
        store.record_status(id).await,
        Err(StoreError::Unknown(crate::store::UnknownValue::RecordType))
    ));
    assert!(matches!(
        store.record_owner(id).await,
        Err(StoreError::Unknown(crate::store::UnknownValue::RecordType))
    ));
    let due = Utc::now() + ChronoDuration::seconds(1);
    let c = store
        .claim_due("a", "w", 1, Duration::from_secs(30), due)
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].record_type,
        Err(crate::store::UnknownValue::RecordType)
    );
}

async fn the_consent_in_force_is_decoded_and_an_undecodable_one_is_left_aside(store: TestStore) {
    let consent = br#"{"record_type":"consent","record_version":1,"status":"withdrawn","given_by":"caregiver","decided_at":"2026-11-03T10:00:00Z","subject":{"source_record_id":"x"}}"#;
    let mut record = new_record(None, 1);
    record.record_type = RecordType::Consent;
    record.deliveries.clear();
    record.consent = Some(crate::store::ConsentEntry {
        subject: "s1".into(),
        consent: consent.to_vec(),
    });
    store.accept(record).await.unwrap();
    let state = store.latest_consent("s1").await.unwrap().unwrap();
    assert_eq!(state.status, crate::policy::ConsentStatus::Withdrawn);
    assert!(store.latest_consent("s2").await.unwrap().is_none());
    let mut newer = new_record(None, 2);
    newer.record_type = RecordType::Consent;
    newer.deliveries.clear();
    newer.consent = Some(crate::store::ConsentEntry {
        subject: "s1".into(),
        consent: b"not json".to_vec(),
    });
    store.accept(newer).await.unwrap();
    // It has no decision time to be ordered by: the decodable one holds.
    let state = store.latest_consent("s1").await.unwrap().unwrap();
    assert_eq!(state.status, crate::policy::ConsentStatus::Withdrawn);
    let mut only_bad = new_record(None, 3);
    only_bad.record_type = RecordType::Consent;
    only_bad.deliveries.clear();
    only_bad.consent = Some(crate::store::ConsentEntry {
        subject: "s3".into(),
        consent: b"not json".to_vec(),
    });
    store.accept(only_bad).await.unwrap();
    assert!(store.latest_consent("s3").await.unwrap().is_none());
}

fn purge_audit(r: &crate::store::PurgedRecord) -> AuditEvent {
    let mut e = AuditEvent::new(
        AuditKind::RecordPurged,
        Utc::now(),
        "retention",
        "canonical",
    );
    e.record_id = Some(r.id.to_string());
    e
}

async fn payloads_are_sealed_at_rest_and_a_purge_waits_for_final_deliveries(store: TestStore) {
    let mut record = new_record(Some("k1"), 1);
    record.canonical = br#"{"record_type":"birth-notification","name":"KNRY0001Q"}"#.to_vec();
    let id = record.id;
    store.accept(record).await.unwrap();
    let stored = store
        .column_bytes("SELECT canonical FROM records")
        .await
        .remove(0);
    assert!(crate::store::keyring::is_sealed(&stored));
    assert!(!stored.windows(9).any(|w| w == b"KNRY0001Q"));

    // Not yet: both deliveries are pending.
    let later = Utc::now() + ChronoDuration::days(1);
    assert!(
        store
            .purge_expired(later, later, 10, &purge_audit)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .erase(id, "agency-a", later, &purge_audit)
            .await
            .unwrap(),
        crate::store::Erasure::InFlight(DeliveryState::Pending)
    );
    let lease = Duration::from_secs(30);
    for destination in ["a", "b"] {
        let c = store
            .claim_due(destination, "w", 1, lease, later)
            .await
            .unwrap();
        assert_eq!(
            c[0].canonical.as_deref().unwrap(),
            br#"{"record_type":"birth-notification","name":"KNRY0001Q"}"#
        );
        let outcome = DeliveryOutcome::Dead {
            error: "permanent: http 400".into(),
        };
        assert!(
            store
                .complete(completion(&c[0], "w", outcome))
                .await
                .unwrap()
        );
    }
    // Final, but received after the cutoff: kept.
    let before = Utc::now() - ChronoDuration::days(1);
    assert!(
        store
            .purge_expired(before, later, 10, &purge_audit)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .erase(id, "agency-b", later, &purge_audit)
            .await
            .unwrap(),
        crate::store::Erasure::NotFound
    );
    let purged = store
        .purge_expired(later, later, 10, &purge_audit)
        .await
        .unwrap();
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].id, id);
    assert_eq!(store.count("payload_keys").await, 0);
    assert_eq!(store.count("idempotency_keys").await, 0);
    assert_eq!(
        store
            .erase(id, "agency-a", later, &purge_audit)
            .await
            .unwrap(),
        crate::store::Erasure::AlreadyPurged
    );
    let status = store.record_status(id).await.unwrap().unwrap();
    assert!(status.purged_at.is_some());
    assert_eq!(status.routes.len(), 2);
    let owner = store.record_owner(id).await.unwrap().unwrap();
    assert_eq!(owner.source_record_id, None);

    // Its dead letters are not replayed: by id a 409 for the caller, by
    // destination left out.
    let dead = store.dead_letters(None, 10).await.unwrap();
    let replay_audit = |d: &DeadLetter| {
        let mut e = AuditEvent::new(AuditKind::DeliveryReplayed, Utc::now(), "admin", "admin");
        e.record_id = Some(d.record_id.clone());
        e
    };
    assert!(matches!(
        store.replay(None, &[dead[0].delivery_id], later, &replay_audit).await,
        Err(StoreError::PayloadPurged(ids)) if ids == vec![dead[0].delivery_id]
    ));
    assert!(
        store
            .replay(Some("a"), &[], later, &replay_audit)
            .await
            .unwrap()
            .is_empty()
    );

    // A delivery that is somehow due again is claimed without a payload.
    store
        .exec("UPDATE deliveries SET status = 'pending' WHERE destination = 'a'")
        .await
        .unwrap();
    let c = store.claim_due("a", "w", 1, lease, later).await.unwrap();
    assert_eq!(c[0].canonical, Err(crate::store::PayloadGone::Purged));

    // The exchange log holds the purge and still verifies.
    let events = store.audit_events(1, i64::MAX).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.leaf_hash == crate::audit::leaf_hash(&e.event))
    );
    assert!(
        events
            .iter()
            .any(|e| String::from_utf8_lossy(&e.event).contains("record.purged"))
    );
    // No row holds it readable, and (SQLite) no file.
    for sql in [
        "SELECT canonical FROM records",
        "SELECT consent FROM consents",
    ] {
        for value in store.column_bytes(sql).await {
            assert!(!value.windows(9).any(|w| w == b"KNRY0001Q"), "{sql}");
        }
    }
    store.close().await;
    for file in store.files() {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(9).any(|w| w == b"KNRY0001Q"),
                "{}",
                file.display()
            );
        }
    }
}

/// Two instances race with one idempotency key: one record, every other
/// answer a replay of it (the unique key decides, not timing).
async fn an_idempotency_race_across_two_instances_stores_one_record(store: TestStore) {
    let other = store.another_instance().await;
    let instances = [store.arc(), other.arc()];
    let results = futures::future::join_all((0..40).map(|i| {
        let s = instances[i % 2].clone();
        async move { s.accept(new_record(Some("race"), 7)).await.unwrap() }
    }))
    .await;
    let created: Vec<RecordId> = results
        .iter()
        .filter_map(|r| match r {
            AcceptOutcome::Created(id) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, AcceptOutcome::Created(id) | AcceptOutcome::Replayed(id) if *id == created[0]))
    );
    assert_eq!(store.count("records").await, 1);
    assert_eq!(store.count("audit_log").await, 1);
}

/// Two instances claim one destination at once: no delivery is leased to
/// both, and together they lease every one.
async fn two_instances_claiming_at_once_never_lease_one_delivery_twice(store: TestStore) {
    let other = store.another_instance().await;
    for i in 0..60 {
        store.accept(new_record(None, i)).await.unwrap();
    }
    let now = Utc::now() + ChronoDuration::seconds(1);
    let claimers = [store.arc(), other.arc()].map(|s| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0..100 {
                let c = s
                    .claim_due("a", &format!("w{round}"), 4, Duration::from_secs(60), now)
                    .await
                    .unwrap();
                if c.is_empty() && round > 0 {
                    break;
                }
                mine.extend(c.into_iter().map(|c| c.delivery_id));
            }
            mine
        })
    });
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let distinct: std::collections::BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a delivery was leased twice");
    assert_eq!(all.len(), 60);
}

/// Accepts and audit appends from two instances at once: the exchange log
/// is one gap-free sequence whose leaves hash their events.
async fn the_audit_sequence_stays_contiguous_under_two_instances(store: TestStore) {
    let other = store.another_instance().await;
    let instances = [store.arc(), other.arc()];
    futures::future::join_all((0..60).map(|i| {
        let s = instances[i % 2].clone();
        async move {
            if i % 3 == 0 {
                let e = AuditEvent::new(AuditKind::DeliveryReplayed, Utc::now(), "admin", "admin");
                s.append_audit(e).await.unwrap();
            } else {
                s.accept(new_record(None, i as u8)).await.unwrap();
            }
        }
    }))
    .await;
    let size = store.audit_size().await.unwrap();
    assert_eq!(size, 60);
    let hashes = other.audit_leaf_hashes(size).await.unwrap();
    assert_eq!(hashes.len(), 60);
    let events = store.audit_events(1, 60).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.leaf_hash == leaf_hash(&e.event)));
}

/// The day's count is the store's: a restart keeps it, and the next
/// registry day starts again.
async fn the_daily_quota_survives_a_restart(store: TestStore) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    for _ in 0..3 {
        assert!(store.take_quota("a", day, 3).await.unwrap());
    }
    assert!(!store.take_quota("a", day, 3).await.unwrap());
    let store = store.reopen().await;
    assert!(
        !store.take_quota("a", day, 3).await.unwrap(),
        "the count was forgotten"
    );
    assert!(
        store.take_quota("b", day, 3).await.unwrap(),
        "per destination"
    );
    assert!(
        store
            .take_quota("a", day.succ_opt().unwrap(), 3)
            .await
            .unwrap()
    );
}

/// On a store that shares limits, instances draw GCRA cells from one
/// schedule: `burst` at once, then one per period, whoever asks.
async fn shared_rate_cells_are_one_schedule_for_every_instance(store: TestStore) {
    let other = store.another_instance().await;
    let period = Duration::from_millis(400);
    if !store.shares_limits() {
        // Each process paces itself in memory (governor): nothing stored.
        assert_eq!(store.take_cell("a", period, 2).await.unwrap(), None);
        return;
    }
    // The first call seeds the row and waits a microsecond.
    let mut taken = 0;
    let mut waits = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { &store } else { &other };
        match s.take_cell("a", period, 2).await.unwrap() {
            None => taken += 1,
            Some(w) => waits.push(w),
        }
    }
    assert_eq!(taken, 2, "burst 2, then one per {period:?}: {waits:?}");
    assert!(waits.iter().all(|w| *w <= period), "{waits:?}");
    tokio::time::sleep(period).await;
    assert_eq!(other.take_cell("a", period, 2).await.unwrap(), None);
    assert!(store.take_cell("a", period, 2).await.unwrap().is_some());
}

/// One checkpoint signer at a time: on PostgreSQL the first instance to ask
/// leads until it closes (or dies), then another takes over; the embedded
/// store's process always leads.
async fn one_instance_signs_checkpoints_and_another_takes_over(store: TestStore) {
    let other = store.another_instance().await;
    assert!(store.checkpoint_leader().await.unwrap());
    assert!(store.checkpoint_leader().await.unwrap(), "the leader stays");
    if !store.shares_limits() {
        assert!(other.checkpoint_leader().await.unwrap());
        return;
    }
    assert!(!other.checkpoint_leader().await.unwrap());
    store.close().await;
    assert!(other.checkpoint_leader().await.unwrap(), "not taken over");
}

both_backends!(
    accept_commits_record_deliveries_and_audit_together,
    idempotency_keys_replay_or_conflict_and_store_nothing_new,
    concurrent_accepts_with_one_key_store_one_record,
    a_failing_request_does_not_take_its_group_down,
    the_audit_log_refuses_updates_and_deletes,
    claims_lease_each_delivery_to_one_worker_until_the_lease_expires,
    data_survives_reopening,
    a_completion_counts_only_while_the_lease_is_held,
    released_claims_do_not_count_as_attempts_and_dead_letters_replay,
    a_subjects_deliveries_leave_in_acceptance_order,
    a_correction_is_claimed_with_the_receipt_of_the_version_before_it,
    a_parked_delivery_holds_back_later_versions_until_an_operator_replays_it,
    an_awaiting_delivery_is_checked_again_when_due_and_holds_back_later_versions,
    a_late_outcome_of_an_expired_claim_by_the_same_worker_is_not_recorded,
    recorded_outcomes_read_back_as_their_delivery_state,
    unknown_stored_values_are_typed_errors,
    the_consent_in_force_is_decoded_and_an_undecodable_one_is_left_aside,
    payloads_are_sealed_at_rest_and_a_purge_waits_for_final_deliveries,
    an_idempotency_race_across_two_instances_stores_one_record,
    two_instances_claiming_at_once_never_lease_one_delivery_twice,
    the_audit_sequence_stays_contiguous_under_two_instances,
    the_daily_quota_survives_a_restart,
    shared_rate_cells_are_one_schedule_for_every_instance,
    one_instance_signs_checkpoints_and_another_takes_over,
);
