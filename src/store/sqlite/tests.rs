use chrono::{Duration as ChronoDuration, Utc};
use tempfile::TempDir;

use super::*;
use crate::audit::AuditKind;
use crate::model::{DeliveryState, RecordType};
use crate::store::{Completion, DeadLetter, DeliveryOutcome, NewDelivery};

/// One fixed KEK, so a store reopened in a test still reads its data keys.
fn test_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_hex(("test", &"ab".repeat(32)), &[]).unwrap())
}

async fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap();
    (dir, store)
}

fn new_record(key: Option<&str>, body_hash: u8) -> NewRecord {
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

async fn count(store: &SqliteStore, table: &str) -> i64 {
    sqlx::query(&format!("SELECT count(*) AS n FROM {table}"))
        .fetch_one(&store.reads)
        .await
        .unwrap()
        .get("n")
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
    store.accept(new_record(None, 1)).await.unwrap();
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

#[tokio::test]
async fn accept_commits_record_deliveries_and_audit_together() {
    let (_dir, store) = open().await;
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
    assert_eq!(count(&store, "audit_log").await, 1);
    let events = store.audit_events(1, 10).await.unwrap();
    assert_eq!(events[0].leaf_hash, leaf_hash(&events[0].event));
}

#[tokio::test]
async fn idempotency_keys_replay_or_conflict_and_store_nothing_new() {
    let (_dir, store) = open().await;
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
    assert_eq!(count(&store, "records").await, 1);
    assert_eq!(count(&store, "deliveries").await, 2);
    assert_eq!(count(&store, "audit_log").await, 1);
}

#[tokio::test]
async fn concurrent_accepts_with_one_key_store_one_record() {
    let (_dir, store) = open().await;
    let store = std::sync::Arc::new(store);
    let results = futures::future::join_all((0..50).map(|_| {
        let store = store.clone();
        async move { store.accept(new_record(Some("same"), 7)).await.unwrap() }
    }))
    .await;
    let created = results
        .iter()
        .filter(|r| matches!(r, AcceptOutcome::Created(_)))
        .count();
    assert_eq!(created, 1);
    assert_eq!(count(&store, "records").await, 1);
}

#[tokio::test]
async fn a_failing_request_does_not_take_its_group_down() {
    let (_dir, store) = open().await;
    let store = std::sync::Arc::new(store);
    let mut duplicate = new_record(None, 3);
    // Two deliveries on one route violate UNIQUE (record_id, route).
    duplicate.deliveries.push(duplicate.deliveries[0].clone());
    let good: Vec<_> = (0..20).map(|i| new_record(None, i)).collect();
    let mut tasks = Vec::new();
    for r in good {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.accept(r).await.is_ok() }));
    }
    let bad = {
        let store = store.clone();
        tokio::spawn(async move { store.accept(duplicate).await })
    };
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert!(bad.await.unwrap().is_err());
    assert_eq!(count(&store, "records").await, 20);
    assert_eq!(count(&store, "deliveries").await, 40);
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let (_dir, store) = open().await;
    store.accept(new_record(None, 1)).await.unwrap();
    let update = sqlx::query("UPDATE audit_log SET kind = 'x'")
        .execute(&store.reads)
        .await;
    let delete = sqlx::query("DELETE FROM audit_log")
        .execute(&store.reads)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn claims_lease_each_delivery_to_one_worker_until_the_lease_expires() {
    let (_dir, store) = open().await;
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

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let record = new_record(Some("k"), 1);
    let id = record.id;
    {
        let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
            .await
            .unwrap();
        store.accept(record).await.unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(dir.path(), StoreMetrics::default(), test_keyring())
        .await
        .unwrap();
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

#[tokio::test]
async fn a_completion_counts_only_while_the_lease_is_held() {
    let (_dir, store) = open().await;
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
    let events_before = count(&store, "audit_log").await;
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
    assert_eq!(count(&store, "audit_log").await, events_before);
    let done = completion(
        &second[0],
        "w2",
        DeliveryOutcome::Delivered {
            receipt: receipt.clone(),
        },
    );
    assert!(store.complete(done).await.unwrap());
    assert_eq!(count(&store, "audit_log").await, events_before + 1);
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

#[tokio::test]
async fn released_claims_do_not_count_as_attempts_and_dead_letters_replay() {
    let (_dir, store) = open().await;
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

#[tokio::test]
async fn a_subjects_deliveries_leave_in_acceptance_order() {
    let (_dir, store) = open().await;
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
async fn versions_of_one_child(store: &SqliteStore, versions: u8) {
    for v in 1..=versions {
        let mut r = new_record(None, v);
        r.subject = Some("child-1".into());
        store.accept(r).await.unwrap();
    }
}

#[tokio::test]
async fn a_correction_is_claimed_with_the_receipt_of_the_version_before_it() {
    let (_dir, store) = open().await;
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

#[tokio::test]
async fn a_parked_delivery_holds_back_later_versions_until_an_operator_replays_it() {
    let (_dir, store) = open().await;
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

#[tokio::test]
async fn an_awaiting_delivery_is_checked_again_when_due_and_holds_back_later_versions() {
    let (_dir, store) = open().await;
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
#[tokio::test]
async fn a_late_outcome_of_an_expired_claim_by_the_same_worker_is_not_recorded() {
    let (_dir, store) = open().await;
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
#[tokio::test]
async fn recorded_outcomes_read_back_as_their_delivery_state() {
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
    for outcome in outcomes {
        let (_dir, store) = open().await;
        let record = new_record(None, 1);
        let id = record.id;
        store.accept(record).await.unwrap();
        let due = Utc::now() + ChronoDuration::seconds(1);
        let c = store.claim_due("a", "w", 1, lease, due).await.unwrap();
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
        let a = status.routes.iter().find(|r| r.destination == "a").unwrap();
        assert_eq!(a.status, expected);
        let counts = store.delivery_counts().await.unwrap();
        assert!(
            counts
                .iter()
                .any(|c| c.destination == "a" && c.status == expected)
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
#[tokio::test]
async fn unknown_stored_values_are_typed_errors() {
    let (_dir, store) = open().await;
    let record = new_record(None, 1);
    let id = record.id;
    store.accept(record).await.unwrap();
    sqlx::query("UPDATE records SET record_type = 'death-notification'")
        .execute(&store.reads)
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

#[tokio::test]
async fn the_consent_in_force_is_decoded_and_an_undecodable_one_is_left_aside() {
    let (_dir, store) = open().await;
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

#[tokio::test]
async fn payloads_are_sealed_at_rest_and_a_purge_waits_for_final_deliveries() {
    let (dir, store) = open().await;
    let mut record = new_record(Some("k1"), 1);
    record.canonical = br#"{"record_type":"birth-notification","name":"KNRY0001Q"}"#.to_vec();
    let id = record.id;
    store.accept(record).await.unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT canonical FROM records")
        .fetch_one(&store.reads)
        .await
        .unwrap();
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
    assert_eq!(count(&store, "payload_keys").await, 0);
    assert_eq!(count(&store, "idempotency_keys").await, 0);
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
    sqlx::query("UPDATE deliveries SET status = 'pending' WHERE destination = 'a'")
        .execute(&store.reads)
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
    store.close().await;
    for file in ["gateway.db", "gateway.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            assert!(!bytes.windows(9).any(|w| w == b"KNRY0001Q"), "{file}");
        }
    }
}
