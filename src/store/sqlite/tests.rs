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
