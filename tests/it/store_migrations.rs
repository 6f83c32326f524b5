//! Stores made by every released schema open with this build and migrate:
//! one fixture per release in `tests/fixtures/stores/` (how each was made:
//! its README), copied to a temp dir and opened with the real store. And the
//! shipped migrations are pinned: editing one breaks every store that ran it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use registry_gateway::audit::{AuditEvent, AuditKind, leaf_hash};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::store::keyring::Keyring;
use registry_gateway::store::sqlite::{MigrationError, SqliteStore};
use registry_gateway::store::{AcceptOutcome, NewDelivery, NewRecord, Store, StoreError};
use registry_gateway::telemetry::StoreMetrics;
use sha2::{Digest, Sha384};
use sqlx::Connection;
use tempfile::TempDir;

use crate::common::repo_path;

/// One fixed KEK, so a store reopened in a test still reads its data keys.
fn test_keyring() -> std::sync::Arc<Keyring> {
    std::sync::Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap())
}

/// SHA-384 of every shipped migration of the embedded store, as sqlx records
/// it in `_sqlx_migrations`.
const PINNED: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        "de510ed2c5a34e04e1bd09a9697ce7d5939ca5540c6924d841b71ebb80aae78d3d0ec434d75b3a567f3b3321f70fd354",
    ),
    (
        "0002_delivery.sql",
        "5e5521aa11b59e54eeae357762cef0fb1746d86644650dd4d80a783e35b214a17fd0e67c2efef22c97eb8279cb2f9e90",
    ),
    (
        "0003_delivery_states.sql",
        "1998f282281f33f3c850266d5c10b81e682a5566d73d86bcf39394486285adb7a39e464f7d86e5d1254fa9500a7dcaff",
    ),
    (
        "0004_checkpoints.sql",
        "cae4abcae978f9330106343fce1101cfa8a4f380c99bab6696bf05bff523c6b129d7a5e3364d7b7d4b7cd094c87c2b7a",
    ),
    (
        "0005_payload_keys.sql",
        "fe9c45b87e364d8ec4f5f1dac73d03bc3fbf8ed94ecaa9269c14c723a80eddcd9e89ffc686636605d108639dc7f10878",
    ),
    (
        "0006_quota_days.sql",
        "9a2eeaf293c5556dd9bc3192821a2b8c99de7153e4bf8326c6c16f9636fe154c88e2a64f614e7a58441be46b7be59781",
    ),
    (
        "0007_subject_index_on_records.sql",
        "706ed877f29bfcf4f92e765bae9daa1262951a40c3dec3a15a4acb272c5f04c0ddb495a590f6b354ed4247ddd8dcd86f",
    ),
];

/// The same for the PostgreSQL store (`migrations/postgres/`).
const PINNED_POSTGRES: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        "1186c61e4af3aa4fcf7afc6ab581bcbe401d73b34ad5c241c0a1567f1827de0999529bc26cf410d357820316a330fbc1",
    ),
    (
        "0002_subject_index_on_records.sql",
        "1b179253b359a2f462f888eec54a718fd64484e1b73fe432a0cde16627b66f71b516ccd1299f1d0b3f0c501deee3eabb",
    ),
];

/// A migration's version, as sqlx reads it: the number before the first `_`.
fn version_of(file: &str) -> i64 {
    file.split('_').next().unwrap().parse().unwrap()
}

#[test]
fn shipped_migrations_are_pinned() {
    assert_pinned("migrations/sqlite", PINNED);
    assert_pinned("migrations/postgres", PINNED_POSTGRES);
}

fn assert_pinned(folder: &str, pinned: &[(&str, &str)]) {
    let dir = repo_path(folder);
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(
                name,
                hex::encode(Sha384::digest(std::fs::read(&path).unwrap())),
            );
        }
    }
    for (name, pinned) in pinned {
        let Some(actual) = files.remove(*name) else {
            panic!(
                "{folder}/{name} shipped and is gone: stores that ran it no longer open; restore it"
            );
        };
        assert_eq!(
            actual, *pinned,
            "{folder}/{name}: a shipped migration was edited: never edit one, add a new migration"
        );
    }
    assert!(
        files.is_empty(),
        "{folder}: migrations not pinned: {:?}. When a migration ships, add its SHA-384 to \
         tests/it/store_migrations.rs (for the embedded store, also make the release's fixture, \
         tests/fixtures/stores/README.md)",
        files
    );
}

/// What a fixture holds, as the release that made it wrote it.
struct Fixture {
    file: &'static str,
    /// Migrations recorded in the fixture.
    applied: &'static [i64],
    /// The record pushed when the fixture was made, and its routes' statuses.
    record: &'static str,
    routes: &'static [(&'static str, &'static str)],
    /// Events in its exchange log.
    audit_events: i64,
    /// Whether a consent decision was recorded for the record's subject.
    consent: bool,
}

const RELEASE_2_ROUTES: &[(&str, &str)] = &[
    ("birth-notification-to-opencrvs", "delivered"),
    ("birth-notification-to-opencrvs-v1", "dead"),
    ("birth-notification-to-fhir-r4", "pending"),
    ("birth-notification-to-examplia-crvs", "pending"),
];

const FIXTURES: &[Fixture] = &[
    Fixture {
        file: "release-1.sqlite",
        applied: &[1],
        record: "01936000-0000-7000-8000-00000000f101",
        routes: &[
            ("birth-notification-to-opencrvs", "pending"),
            ("birth-notification-to-opencrvs-v1", "pending"),
            ("birth-notification-to-fhir-r4", "pending"),
            ("birth-notification-to-examplia-crvs", "pending"),
        ],
        audit_events: 2,
        consent: false,
    },
    Fixture {
        file: "release-2-pre-edit.sqlite",
        applied: &[1, 2],
        record: "01936000-0000-7000-8000-00000000f201",
        routes: RELEASE_2_ROUTES,
        audit_events: 6,
        consent: true,
    },
    Fixture {
        file: "release-2.sqlite",
        applied: &[1, 2],
        record: "01936000-0000-7000-8000-00000000f301",
        routes: RELEASE_2_ROUTES,
        audit_events: 6,
        consent: true,
    },
];

fn fixture(file: &str) -> &'static Fixture {
    FIXTURES.iter().find(|f| f.file == file).unwrap()
}

/// A copy of the fixture as the store file of a fresh data dir.
fn copy_fixture(file: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path(&format!("tests/fixtures/stores/{file}")),
        dir.path().join("gateway.db"),
    )
    .unwrap();
    dir
}

async fn connect(data_dir: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", data_dir.join("gateway.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

async fn applied(data_dir: &Path) -> Vec<(i64, bool, String)> {
    let rows: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut connect(data_dir).await)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(v, ok, sum)| (v, ok, hex::encode(sum)))
        .collect()
}

/// Every table, index and trigger, as SQLite holds their definitions.
async fn schema(data_dir: &Path) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master
          WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY type, name",
    )
    .fetch_all(&mut connect(data_dir).await)
    .await
    .unwrap()
}

fn new_record() -> NewRecord {
    let id = RecordId::new();
    let at = Utc::now();
    let mut audit = AuditEvent::new(AuditKind::RecordAccepted, at, "fixture-agency", "canonical");
    audit.record_id = Some(id.to_string());
    NewRecord {
        id,
        client_id: "fixture-agency".into(),
        source: "canonical".into(),
        record_type: RecordType::BirthNotification,
        received_at: at,
        idempotency_key: Some("after-migration-1".into()),
        request_sha256: [7; 32],
        canonical: br#"{"record_type":"birth-notification"}"#.to_vec(),
        deliveries: vec![NewDelivery {
            route: "birth-notification-to-fixture".into(),
            destination: "fixture".into(),
        }],
        audit,
        subject: Some("fixture-subject-after-migration".into()),
        consent: None,
    }
}

/// Open the fixture with the real store; everything is migrated, the old
/// data reads back and a new record is accepted and claimed on top.
async fn opens_and_migrates(file: &str) {
    let fixture = fixture(file);
    let dir = copy_fixture(file);
    let before: Vec<i64> = applied(dir.path()).await.iter().map(|a| a.0).collect();
    // The fixture's synthetic child, in plaintext as older builds stored it.
    let plaintext = b"Child-F001";
    let had_plaintext = std::fs::read(dir.path().join("gateway.db"))
        .unwrap()
        .windows(plaintext.len())
        .any(|w| w == plaintext);
    assert_eq!(
        before, fixture.applied,
        "{file}: migrations recorded in the fixture"
    );

    let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap_or_else(|e| panic!("{file} does not open: {:#}", anyhow::Error::from(e)));

    // The old record and its deliveries, as the status API shows them.
    let id = RecordId::parse(fixture.record).unwrap();
    let status = store.record_status(id).await.unwrap().expect("old record");
    let status = serde_json::to_value(&status).unwrap();
    assert_eq!(status["record_type"], "birth-notification");
    let routes: Vec<(String, String)> = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = fixture
        .routes
        .iter()
        .map(|(r, s)| (r.to_string(), s.to_string()))
        .collect();
    assert_eq!(routes, expected, "{file}: routes of the old record");

    // The old exchange log, each event with its leaf hash.
    let events = store.audit_events(1, i64::MAX).await.unwrap();
    assert_eq!(events.len() as i64, fixture.audit_events, "{file}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
        assert_eq!(e.leaf_hash, leaf_hash(&e.event), "{file}: event {}", e.seq);
    }
    let accepted = serde_json::from_slice::<serde_json::Value>(&events[0].event).unwrap();
    assert_eq!(accepted["kind"], "record.accepted");
    assert_eq!(accepted["record_id"], fixture.record);

    // Consent, where the release had it.
    let owner = store.record_owner(id).await.unwrap().expect("old record");
    if fixture.consent {
        let subject = owner.subject.expect("release 2 records have a subject");
        assert!(store.latest_consent(&subject).await.unwrap().is_some());
    } else {
        assert_eq!(owner.subject, None, "{file}: release 1 had no subjects");
    }

    // A new record on top, claimed through the new indexes.
    let record = new_record();
    let new_id = record.id;
    assert_eq!(
        store.accept(record).await.unwrap(),
        AcceptOutcome::Created(new_id)
    );
    let claimed = store
        .claim_due(
            "fixture",
            "worker-1",
            10,
            Duration::from_secs(30),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].record_id, new_id);
    let events = store.audit_events(1, i64::MAX).await.unwrap();
    assert_eq!(events.len() as i64, fixture.audit_events + 1);
    store.close().await;

    // The plaintext rows were sealed when the store opened, and the pages
    // that held them are gone from the files.
    if had_plaintext {
        for file in ["gateway.db", "gateway.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                assert!(
                    !bytes.windows(plaintext.len()).any(|w| w == plaintext),
                    "{file}: {file} still holds the plaintext record"
                );
            }
        }
    }

    // Every migration applied, each with the shipped checksum, and the schema
    // is the one a fresh store gets.
    let after = applied(dir.path()).await;
    let pinned: Vec<(i64, bool, String)> = PINNED
        .iter()
        .map(|(file, sum)| (version_of(file), true, sum.to_string()))
        .collect();
    assert_eq!(after, pinned, "{file}: migrations after open");
    let fresh = tempfile::tempdir().unwrap();
    SqliteStore::open(fresh.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap()
        .close()
        .await;
    assert_eq!(
        schema(dir.path()).await,
        schema(fresh.path()).await,
        "{file}: schema after migration"
    );
}

#[tokio::test]
async fn a_release_1_store_opens_and_migrates() {
    opens_and_migrates("release-1.sqlite").await;
}

#[tokio::test]
async fn a_release_2_store_made_before_0002_was_edited_is_repaired() {
    opens_and_migrates("release-2-pre-edit.sqlite").await;
}

#[tokio::test]
async fn a_release_2_store_opens() {
    opens_and_migrates("release-2.sqlite").await;
}

/// Set the recorded checksum of migration `version` in a fixture copy.
async fn record_checksum(data_dir: &Path, version: i64, checksum: &[u8]) {
    sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = ?")
        .bind(checksum)
        .bind(version)
        .execute(&mut connect(data_dir).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_edit_is_refused_naming_the_migration_and_changes_nothing() {
    let dir = copy_fixture("release-2.sqlite");
    record_checksum(dir.path(), 2, &[0xab; 48]).await;
    let schema_before = schema(dir.path()).await;
    let applied_before = applied(dir.path()).await;
    let Err(err) = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring()).await
    else {
        panic!("a store with an unknown edit opened");
    };
    assert!(
        matches!(
            &err,
            StoreError::Migration(MigrationError::Edited { version: 2, recorded })
                if *recorded == "ab".repeat(48)
        ),
        "{err:?}"
    );
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(message.contains("migration 2 "), "{message}");
    assert_eq!(schema(dir.path()).await, schema_before);
    assert_eq!(applied(dir.path()).await, applied_before);
}

#[tokio::test]
async fn the_pre_edit_checksum_on_another_version_is_not_repaired() {
    // The repair is for (version 2, old text) only.
    let dir = copy_fixture("release-2-pre-edit.sqlite");
    let (old,): (Vec<u8>,) =
        sqlx::query_as("SELECT checksum FROM _sqlx_migrations WHERE version = 2")
            .fetch_one(&mut connect(dir.path()).await)
            .await
            .unwrap();
    record_checksum(dir.path(), 1, &old).await;
    let err = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            StoreError::Migration(MigrationError::Edited { version: 1, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_store_from_a_newer_build_is_refused() {
    let dir = copy_fixture("release-2.sqlite");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&mut connect(dir.path()).await)
    .await
    .unwrap();
    let err = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            StoreError::Migration(MigrationError::Unknown { version: 9999 })
        ),
        "{err:?}"
    );
}
