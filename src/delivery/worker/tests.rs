//! How the worker uses its in-flight slots, against the embedded store and a
//! transport that answers when the test says so.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use sqlx::{Connection, SqliteConnection};

use super::*;
use crate::audit::{AuditEvent, AuditKind};
use crate::config::{Config, Overrides};
use crate::model::{RecordId, RecordType};
use crate::store::keyring::Keyring;
use crate::store::sqlite::SqliteStore;
use crate::store::{NewDelivery, NewRecord};
use crate::telemetry::StoreMetrics;

/// Counts sends and answers each one only when the test adds a permit.
struct HeldAnswers {
    sent: AtomicUsize,
    answers: Semaphore,
}

#[async_trait]
impl Transport for HeldAnswers {
    async fn send(&self, _: &Outbound<'_>) -> Result<Receipt, SendError> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.answers
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
        Ok(Receipt {
            status: ReceiptStatus::Accepted,
            reference: Some("T1".into()),
            http_status: 200,
            details: serde_json::Map::new(),
        })
    }
}

/// Wait up to `secs` for `done`.
async fn eventually(secs: u64, mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..secs * 20 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn leased(db: &Path) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    n
}

/// A slot is given back once the registry has answered, not once the
/// outcome is committed: the group commit is shared with intake, and a slot
/// held through it sat idle (docs/perf, "Delivery under load"). With the
/// store's write lock held, the outcomes of the first two sends cannot
/// commit, yet the two deliveries claimed behind them still go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_free_once_the_registry_answered_before_the_outcome_commits() {
    let config = Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.example.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let pipeline = Arc::new(Pipeline::load(Arc::new(config)).unwrap());
    let route = pipeline
        .config()
        .routes
        .iter()
        .find(|r| r.destination == "opencrvs" && r.record_type == RecordType::BirthNotification)
        .unwrap()
        .clone();
    let mut destination = pipeline.config().destinations["opencrvs"].clone();
    destination.limits.max_in_flight = 2;
    destination.limits.rate_per_second = None;

    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap());
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path(), StoreMetrics::default(), keyring)
            .await
            .unwrap(),
    );
    let example: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples/birth-notification.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let canonical = pipeline
        .canonicalize(&pipeline.config().sources["canonical"], &example)
        .unwrap();
    for _ in 0..4 {
        let id = RecordId::new();
        let at = Utc::now();
        let mut audit = AuditEvent::new(AuditKind::RecordAccepted, at, "agency-a", "canonical");
        audit.record_id = Some(id.to_string());
        store
            .accept(NewRecord {
                id,
                client_id: "agency-a".into(),
                source: "canonical".into(),
                record_type: RecordType::BirthNotification,
                received_at: at,
                idempotency_key: None,
                request_sha256: [0; 32],
                canonical: serde_json::to_vec(&canonical.record).unwrap(),
                deliveries: vec![NewDelivery {
                    route: route.name.clone(),
                    destination: "opencrvs".into(),
                }],
                audit,
                subject: None,
                consent: None,
            })
            .await
            .unwrap();
    }

    let transport = Arc::new(HeldAnswers {
        sent: AtomicUsize::new(0),
        answers: Semaphore::new(0),
    });
    let pace = Arc::new(Pace::new(&destination.limits, &destination.retry));
    let worker = Arc::new(Worker {
        id: "test/opencrvs".into(),
        activity: crate::delivery::activity::Activity::default().add("opencrvs", pace.clone()),
        destination,
        pipeline,
        store: store.clone(),
        transport: transport.clone(),
        pace,
        metrics: Metrics::default(),
        nudge: Arc::new(Notify::new()),
    });
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));

    // Two on the wire, and the next two claimed behind them.
    let db = dir.path().join("gateway.db");
    assert!(eventually(10, async || transport.sent.load(Ordering::SeqCst) == 2).await);
    assert!(eventually(10, async || leased(&db).await == 4).await);

    // Nothing commits while this transaction holds the write lock.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let mut blocker = SqliteConnection::connect_with(&options).await.unwrap();
    let lock = blocker.begin_with("BEGIN IMMEDIATE").await.unwrap();
    transport.answers.add_permits(2);
    let all_sent = eventually(5, async || transport.sent.load(Ordering::SeqCst) == 4).await;
    lock.rollback().await.unwrap();
    assert!(
        all_sent,
        "the slots stayed taken until the outcomes committed: {} of 4 sent",
        transport.sent.load(Ordering::SeqCst)
    );

    transport.answers.add_permits(2);
    let delivered = async || {
        store
            .delivery_counts()
            .await
            .unwrap()
            .iter()
            .any(|c| c.status == crate::model::DeliveryState::Delivered && c.count == 4)
    };
    assert!(eventually(10, delivered).await);
    stop.send(true).unwrap();
    running.await.unwrap();
    store.close().await;
}
