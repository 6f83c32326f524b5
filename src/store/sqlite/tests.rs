//! What only the embedded store has: files of its own. The rest of its
//! tests are the backend-generic suite in `store/tests.rs`.

use std::sync::Arc;

use chrono::Utc;

use super::*;
use crate::audit::AuditKind;
use crate::model::RecordType;
use crate::store::NewDelivery;

fn test_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap())
}

fn new_record() -> NewRecord {
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
        idempotency_key: None,
        request_sha256: [1; 32],
        canonical: br#"{"record_type":"birth-notification"}"#.to_vec(),
        deliveries: vec![NewDelivery {
            route: "birth-notification-to-a".into(),
            destination: "a".into(),
        }],
        audit,
        subject: None,
        consent: None,
    }
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
    store.accept(new_record()).await.unwrap();
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
