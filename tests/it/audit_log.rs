//! The exchange log for auditors, end to end through the real server: records
//! pushed and delivered to a mock registry, checkpoints signed, entries,
//! proofs and a bundle fetched as an auditor and verified offline by the
//! `registry-gateway audit verify` command; tampered bundles fail naming the
//! entry; canaries planted in every field never reach the log.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_mocks::{self as mocks, MockConfig, MockKind};
use serde_json::{Value, json};

use crate::common::{
    ADMIN, AGENCY, AUDITOR, TestGateway, config_with, example_record, opencrvs_destination,
    with_canaries,
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
}

async fn gateway() -> (TestGateway, mocks::RunningMock) {
    let registry = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let destinations = opencrvs_destination(&registry, "");
    let config = config_with(
        dir.path(),
        &destinations,
        &[("birth-notification", "opencrvs")],
    );
    (TestGateway::start_with(config, dir).await, registry)
}

async fn text(gw: &TestGateway, path: &str, token: &str) -> String {
    let r = gw.get(path, Some(token)).await;
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

async fn sign(gw: &TestGateway) -> String {
    let r = gw
        .http
        .post(gw.url("/v1/admin/audit/checkpoint"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn size_of(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

fn verify(args: &[&str], files: &[&std::path::PathBuf]) -> (bool, String) {
    let mut c = bin();
    c.args(["audit", "verify"]);
    let mut files = files.iter();
    for a in args {
        if a.is_empty() {
            c.arg(files.next().unwrap());
        } else {
            c.arg(a);
        }
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn auditors_verify_the_log_offline_and_no_canary_reaches_it() {
    let (gw, registry) = gateway().await;
    let mut planted = Vec::new();

    // A valid record, delivered.
    let record = example_record("birth-notification");
    let r = gw
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            serde_json::to_vec(&record).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A canary in each field in turn (accepted or refused, either way logged),
    // and unknown keys whose names and values are canaries.
    for (pointer, canary, r) in with_canaries(&record) {
        planted.push(canary);
        let status = gw
            .submit(
                "canonical",
                Some(AGENCY),
                None,
                serde_json::to_vec(&r).unwrap(),
            )
            .await
            .status();
        assert!(status == 202 || status == 422, "{pointer}: {status}");
    }
    let mut unknown = record.clone();
    unknown["KNRY9001Q"] = json!("KNRY9002Q");
    unknown["child"]["KNRY9003Q"] = json!({"KNRY9004Q": 1});
    planted.extend(["KNRY9001Q", "KNRY9002Q", "KNRY9003Q", "KNRY9004Q"].map(String::from));
    let status = gw
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            serde_json::to_vec(&unknown).unwrap(),
        )
        .await
        .status();
    assert_eq!(status, 422);

    // A consent decision with canaries in its free fields.
    let consent = json!({"status": "withdrawn", "given_by": "caregiver", "purposes": ["services"],
                         "reference": "KNRY9005Q", "decided_at": "2026-11-01T10:00:00Z"});
    planted.push("KNRY9005Q".into());
    let r = gw
        .http
        .post(gw.url(&format!("/v1/records/{id}/consent")))
        .bearer_auth(AGENCY)
        .json(&consent)
        .send()
        .await
        .unwrap();
    assert!(r.status() == 202 || r.status() == 422, "{}", r.status());

    // Let the deliveries reach the mock registry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while registry.records().is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the registry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Agencies and strangers are refused.
    for path in [
        "/v1/audit/checkpoint",
        "/v1/audit/public-key",
        "/v1/audit/entries?start=0&end=1",
    ] {
        assert_eq!(gw.get(path, Some(AGENCY)).await.status(), 403, "{path}");
        assert_eq!(gw.get(path, None).await.status(), 401, "{path}");
    }

    let old = sign(&gw).await;
    let key = text(&gw, "/v1/audit/public-key", AUDITOR).await;
    assert_eq!(text(&gw, "/v1/audit/checkpoint", AUDITOR).await, old);
    // One more event, one more checkpoint.
    let r = gw
        .submit("canonical", Some(AGENCY), None, b"{}".to_vec())
        .await;
    assert_eq!(r.status(), 422);
    let new = sign(&gw).await;
    let (m, n) = (size_of(&old), size_of(&new));
    assert!(m < n && m > 10, "{m} {n}");

    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let key_file = file("key.pub", &key);
    let old_file = file("old.note", &old);
    let new_file = file("new.note", &new);
    let proof = text(
        &gw,
        &format!("/v1/audit/proof/consistency?first={m}&second={n}"),
        AUDITOR,
    )
    .await;
    let proof_file = file("proof.json", &proof);
    let args = [
        "--public-key",
        "",
        "--checkpoint",
        "",
        "--checkpoint",
        "",
        "--proof",
        "",
    ];
    let (ok, out) = verify(&args, &[&key_file, &old_file, &new_file, &proof_file]);
    assert!(ok, "{out}");
    // Swapped, they do not verify.
    let (ok, _) = verify(&args, &[&key_file, &new_file, &old_file, &proof_file]);
    assert!(!ok);

    // Inclusion proof of entry 0 against the newer checkpoint.
    let inclusion: Value = serde_json::from_str(
        &text(
            &gw,
            &format!("/v1/audit/proof/inclusion?index=0&tree_size={n}"),
            AUDITOR,
        )
        .await,
    )
    .unwrap();
    assert_eq!(inclusion["leaf_index"], 0);
    assert!(!inclusion["hashes"].as_array().unwrap().is_empty());

    // The whole log as one bundle verifies offline.
    let bundle = text(&gw, &format!("/v1/audit/bundle?start=0&end={n}"), AUDITOR).await;
    let bundle_file = file("bundle.json", &bundle);
    let bundle_args = ["--bundle", "", "--public-key", ""];
    let (ok, out) = verify(&bundle_args, &[&bundle_file, &key_file]);
    assert!(ok, "{out}");

    // Tampered: a flipped byte in entry 3's leaf, entry 5 dropped, 6 and 7
    // swapped: each fails and names the entry.
    let parsed: Value = serde_json::from_str(&bundle).unwrap();
    let mut flipped = parsed.clone();
    let leaf = flipped["entries"][3]["leaf"].as_str().unwrap().to_string();
    let mut bytes = leaf.into_bytes();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    flipped["entries"][3]["leaf"] = json!(String::from_utf8(bytes).unwrap());
    let mut dropped = parsed.clone();
    dropped["entries"].as_array_mut().unwrap().remove(5);
    let mut swapped = parsed.clone();
    swapped["entries"].as_array_mut().unwrap().swap(6, 7);
    for (name, bad, entry) in [
        ("flipped", flipped, 3),
        ("dropped", dropped, 5),
        ("swapped", swapped, 6),
    ] {
        let f = file(&format!("{name}.json"), &bad.to_string());
        let (ok, out) = verify(&bundle_args, &[&f, &key_file]);
        assert!(!ok, "{name} verified");
        assert!(out.contains(&format!("entry {entry}:")), "{name}: {out}");
    }

    // A record's events, each proved against the latest checkpoint.
    let events: Value =
        serde_json::from_str(&text(&gw, &format!("/v1/audit/records/{id}"), AUDITOR).await)
            .unwrap();
    let kinds: Vec<&str> = events["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"record.accepted"), "{kinds:?}");
    assert!(kinds.contains(&"delivery.delivered"), "{kinds:?}");
    assert!(events["entries"][0]["inclusion"].is_array());

    // No canary anywhere in the log: entries, bundle, or the stored rows.
    let entries = text(&gw, &format!("/v1/audit/entries?start=0&end={n}"), AUDITOR).await;
    let entries_json: Value = serde_json::from_str(&entries).unwrap();
    assert_eq!(entries_json["entries"].as_array().unwrap().len() as u64, n);
    let mut decoded = String::new();
    for e in entries_json["entries"].as_array().unwrap() {
        use base64::Engine as _;
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(e["leaf"].as_str().unwrap())
            .unwrap();
        decoded.push_str(&String::from_utf8(leaf).unwrap());
    }
    let store = gw.data_dir.path().join("store");
    let stored = stored_events(&store).await;
    let metrics = gw.get("/metrics", Some(ADMIN)).await.text().await.unwrap();
    assert!(metrics.contains("records_rejected"), "{metrics}");
    for c in &planted {
        for (what, haystack) in [
            ("entries", &entries),
            ("bundle", &bundle),
            ("leaves", &decoded),
            ("store", &stored),
        ] {
            assert!(!haystack.contains(c.as_str()), "{c} found in the {what}");
        }
    }
    // The unknown key was refused, and logged without its name.
    assert!(decoded.contains("\"code\":\"unknown_field\""));
    gw.stop().await;
}

async fn stored_events(store: &Path) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", store.join("gateway.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT event FROM audit_log ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(e,)| String::from_utf8(e).unwrap())
        .collect()
}

#[tokio::test]
async fn an_edited_log_is_not_signed_and_records_are_refused_until_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    let audit = config.audit.as_mut().unwrap();
    audit.checkpoint_interval = Duration::from_secs(1);
    audit.max_unsigned = Duration::from_secs(2);
    let gw = TestGateway::start_with(config, dir).await;
    for _ in 0..3 {
        let r = gw
            .submit("canonical", Some(AGENCY), None, b"{}".to_vec())
            .await;
        assert_eq!(r.status(), 422);
    }
    assert_eq!(size_of(&sign(&gw).await), 3);

    // The database owner drops the trigger and edits an event.
    {
        use sqlx::Connection;
        let db = gw.data_dir.path().join("store").join("gateway.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER audit_log_is_append_only_update")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET leaf_hash = zeroblob(32) WHERE seq = 2")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let r = gw
        .http
        .post(gw.url("/v1/admin/audit/checkpoint"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("not consistent"));

    // Past max_unsigned: submissions are refused and /readyz says why.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = gw
            .submit("canonical", Some(AGENCY), None, b"{}".to_vec())
            .await;
        if r.status() == 503 {
            let body: Value = r.json().await.unwrap();
            assert!(
                body["detail"].as_str().unwrap().contains("not consistent"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records still accepted: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ready = gw.get("/readyz", None).await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("exchange log"));
    gw.stop().await;
}
