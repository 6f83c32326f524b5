//! Retention by crypto-shredding (docs/retention.md): canary strings planted
//! in every field of a record (and of a consent decision) that can hold one
//! go through intake and delivery; after the purge, by age or by the owning
//! agency's erasure, none is in the store's files (db, -wal, -shm), the logs
//! or /metrics; the record's status still answers and the exchange log still
//! reads, every entry with its leaf hash. And a rotated KEK still unwraps,
//! while an unknown or wrong one is a clear error at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_gateway::audit::leaf_hash;
use registry_gateway::config::{Config, Overrides, SourceConfig, SourceFormat};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::pipeline::Pipeline;
use registry_gateway::policy::Outcome;
use registry_gateway::store::keyring::{KeyError, Keyring};
use registry_gateway::store::sqlite::SqliteStore;
use registry_gateway::store::{AcceptOutcome, ConsentEntry, NewRecord, Store, StoreError};
use registry_gateway::telemetry::StoreMetrics;
use registry_mocks::{self as mocks, Fault, MockConfig, MockKind};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{
    ADMIN, AGENCY, AGENCY_2, TestGateway, config_with, example_record, opencrvs_destination,
};

/// Fixed width, so that no canary is part of another.
fn canary(n: usize) -> String {
    format!("KNRY{n:04}Q")
}

/// Every string leaf of `value`, by JSON pointer.
fn string_leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(at),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                string_leaves(v, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                string_leaves(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

/// The example birth notification with a canary in every string field that
/// accepts one (the schema and semantic rules pass, and the route to
/// `route` still delivers), and the canaries planted.
fn planted_birth(pipeline: &Pipeline, route: &str, first: usize) -> (Value, Vec<String>) {
    let source = SourceConfig {
        name: "canonical".into(),
        format: SourceFormat::Canonical,
    };
    let mut record = example_record("birth-notification");
    let mut pointers = Vec::new();
    string_leaves(&record, String::new(), &mut pointers);
    let mut canaries = Vec::new();
    for (i, pointer) in pointers.iter().enumerate() {
        if pointer == "/record_type" {
            continue;
        }
        let mut candidate = record.clone();
        let value = canary(first + i);
        *candidate.pointer_mut(pointer).unwrap() = json!(value);
        let Ok(canonical) = pipeline.canonicalize(&source, &candidate) else {
            continue;
        };
        let delivers = pipeline
            .decide_routes(&canonical, None)
            .iter()
            .any(|(r, d)| r.name == route && d.decision == Outcome::Deliver);
        if delivers {
            record = candidate;
            canaries.push(value);
        }
    }
    assert!(
        canaries.len() >= 10,
        "too few fields took a canary: {canaries:?}"
    );
    (record, canaries)
}

fn pipeline_of(config: &Config) -> Pipeline {
    Pipeline::load(Arc::new(config.clone())).unwrap()
}

/// The store's files as they are on disk now.
fn store_files(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["gateway.db", "gateway.db-wal", "gateway.db-shm"]
        .iter()
        .map(|f| store.join(f))
        .filter(|p| p.exists())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn assert_no_canary(what: &str, bytes: &[u8], canaries: &[String]) {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    for c in canaries {
        assert!(
            !text.contains(&c.to_lowercase()),
            "{what} holds the canary {c}"
        );
    }
}

fn assert_store_holds_no_canary(store: &Path, canaries: &[String]) {
    let files = store_files(store);
    assert!(files.iter().any(|(p, _)| p.ends_with("gateway.db")));
    for (path, bytes) in files {
        assert_no_canary(&path.display().to_string(), &bytes, canaries);
    }
}

/// The exchange log reads: gap-free, each entry's leaf hash its bytes', and
/// one `record.purged` event per purged record, by `client`.
async fn assert_log_reads(store: &Path, purged: &[(&str, &str)]) {
    let url = format!("sqlite://{}?mode=ro", store.join("gateway.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT seq, kind, event, leaf_hash FROM audit_log ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(!rows.is_empty());
    for (i, (seq, _, event, hash)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "the log has a gap");
        assert_eq!(hash.as_slice(), leaf_hash(event).as_slice(), "entry {seq}");
    }
    for (id, client) in purged {
        let event = rows
            .iter()
            .filter(|r| r.1 == "record.purged")
            .map(|r| serde_json::from_slice::<Value>(&r.2).unwrap())
            .find(|e| e["record_id"] == *id)
            .unwrap_or_else(|| panic!("no record.purged event for {id}"));
        assert_eq!(event["client"], *client, "{event}");
        // Ids, codes and times only.
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        for key in keys {
            assert!(
                [
                    "version",
                    "at",
                    "kind",
                    "client",
                    "source",
                    "record_id",
                    "record_type"
                ]
                .contains(&key.as_str()),
                "record.purged carries {key}"
            );
        }
        // A consent's acceptance is its consent.granted or .withdrawn event.
        let accepted = rows
            .iter()
            .filter(|r| {
                ["record.accepted", "consent.granted", "consent.withdrawn"].contains(&r.1.as_str())
            })
            .any(|r| serde_json::from_slice::<Value>(&r.2).unwrap()["record_id"] == *id);
        assert!(accepted, "the acceptance event of {id} is gone");
    }
    // The data keys are destroyed and the payload columns cleared.
    for (id, _) in purged {
        let (keys,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM payload_keys WHERE record_id = ?")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(keys, 0, "the data key of {id} survived the purge");
        let (len,): (i64,) = sqlx::query_as("SELECT length(canonical) FROM records WHERE id = ?")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 0);
    }
}

async fn status_json(gateway: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{gateway}/v1/records/{id}"))
        .bearer_auth(AGENCY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wait until `done` holds for the record's status.
async fn wait_status(gateway: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let status = status_json(gateway, id).await;
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never {what}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn all_final(status: &Value) -> bool {
    status["routes"].as_array().is_some_and(|routes| {
        routes.iter().all(|r| {
            ["delivered", "referred", "dead", "cancelled"]
                .contains(&r["status"].as_str().unwrap_or(""))
        })
    })
}

async fn post_consent(base: &str, record: &str, reference: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/records/{record}/consent"))
        .bearer_auth(AGENCY)
        .json(&json!({
            "status": "granted",
            "given_by": "caregiver",
            "purposes": ["birth_registration"],
            "recipients": ["opencrvs"],
            "reference": reference,
        }))
        .send()
        .await
        .unwrap()
}

/// Purge by age: a gateway process whose payloads are kept 0 days, purging
/// every second, logging at debug level into a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_retention_period_no_canary_is_left_in_the_store_files_logs_or_metrics() {
    let mock = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        &opencrvs_destination(&mock, ""),
        &[("birth-notification", "opencrvs")],
    );
    let config_path = dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("payload_days = 30", "payload_days = 0")
        .replace("purge_interval_secs = 3600", "purge_interval_secs = 1");
    std::fs::write(&config_path, text).unwrap();
    let (record, mut canaries) =
        planted_birth(&pipeline_of(&config), "birth-notification-to-opencrvs", 0);
    // The search finds what is there.
    let body = serde_json::to_vec(&record).unwrap();
    assert!(std::panic::catch_unwind(|| assert_no_canary("body", &body, &canaries)).is_err());
    let idempotency_canary = canary(9000);
    let consent_canary = canary(9001);
    canaries.extend([idempotency_canary.clone(), consent_canary.clone()]);

    let log_path = dir.path().join("gateway.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug,hyper=info,h2=info,rustls=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = format!(
        "http://{}",
        line.trim()
            .strip_prefix("registry-gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_start_matches("http://")
    );
    let http = reqwest::Client::new();

    let answer = http
        .post(format!("{base}/v1/sources/canonical/records"))
        .bearer_auth(AGENCY)
        .header("idempotency-key", &idempotency_canary)
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let id = answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = post_consent(&base, &id, &consent_canary).await;
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let consent_id = answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Delivered (the registry got canaries: they went through delivery),
    // then purged; the status still answers, with the receipt.
    let status = wait_status(&base, &id, "purged", |s| s["purged_at"].is_string()).await;
    assert_eq!(status["routes"][0]["status"], "delivered", "{status}");
    assert!(status["routes"][0]["receipt"].is_object(), "{status}");
    assert_eq!(mock.records().len(), 1, "the registry has the record");
    // A consent decision outlives the retention period (a forgotten
    // withdrawal would let the child's later records go out); its owner
    // erases it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let consent_status = status_json(&base, &consent_id).await;
    assert!(consent_status["purged_at"].is_null(), "{consent_status}");
    let erased = http
        .delete(format!("{base}/v1/records/{consent_id}"))
        .bearer_auth(AGENCY)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204);
    wait_status(&base, &consent_id, "purged", |s| s["purged_at"].is_string()).await;

    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let purged_line = metrics
        .lines()
        .find(|l| l.starts_with("gateway_records_purged_total{reason=\"expired\"}"))
        .unwrap_or_else(|| panic!("no purge metric:\n{metrics}"));
    let purged: f64 = purged_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(purged >= 1.0, "{purged_line}");
    assert_no_canary("/metrics", metrics.as_bytes(), &canaries);

    // While it runs (db, -wal, -shm all present) and after it stopped.
    let store = dir.path().join("store");
    assert_store_holds_no_canary(&store, &canaries);
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert_store_holds_no_canary(&store, &canaries);
    let log = std::fs::read(&log_path).unwrap();
    assert!(!log.is_empty());
    assert_no_canary("the log", &log, &canaries);
    assert_log_reads(&store, &[(&id, "retention"), (&consent_id, "demo-agency")]).await;
}

/// Erasure by the owning agency: refused while a delivery is in flight,
/// 404 for another agency, then at once; a replay of the purged record's
/// dead letter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_erases_its_record_once_its_deliveries_are_final() {
    let mock = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    mock.faults()
        .push(Fault::Latency(Duration::from_secs(3)).times(1));
    let dir = tempfile::tempdir().unwrap();
    // The FHIR route's registry answers 404 at that path: a dead letter.
    let destinations = format!(
        "{}\n[destinations.fhir-r4]\nkind = \"fhir-r4\"\nurl = \"{}/no-such-path/Bundle\"\n",
        opencrvs_destination(&mock, ""),
        mock.base_url(),
    );
    let config = config_with(
        dir.path(),
        &destinations,
        &[
            ("birth-notification", "opencrvs"),
            ("birth-notification", "fhir-r4"),
        ],
    );
    let (record, mut canaries) =
        planted_birth(&pipeline_of(&config), "birth-notification-to-opencrvs", 0);
    let consent_canary = canary(9001);
    canaries.push(consent_canary.clone());
    let gateway = TestGateway::start_with(config, dir).await;
    let answer = gateway
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            serde_json::to_vec(&record).unwrap(),
        )
        .await;
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let id = answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = post_consent(&gateway.base, &id, &consent_canary).await;
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let consent_id = answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let delete = |token: &'static str, id: String| {
        let http = gateway.http.clone();
        let url = gateway.url(&format!("/v1/records/{id}"));
        async move { http.delete(url).bearer_auth(token).send().await.unwrap() }
    };
    // The registry holds its answer 3 s: the delivery is still pending.
    let refused = delete(AGENCY, id.clone()).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:registry-gateway:problem:delivery-in-flight"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("pending"),
        "{problem}"
    );

    let before = wait_status(&gateway.base, &id, "final", all_final).await;
    assert_eq!(delete(AGENCY_2, id.clone()).await.status(), 404);
    assert_eq!(delete(AGENCY, id.clone()).await.status(), 204);
    assert_eq!(delete(AGENCY, id.clone()).await.status(), 204, "again");
    assert_eq!(delete(AGENCY, consent_id.clone()).await.status(), 204);

    // The status answers as before, with its receipts, and says when.
    let after = status_json(&gateway.base, &id).await;
    assert!(after["purged_at"].is_string(), "{after}");
    assert_eq!(after["routes"], before["routes"]);
    assert!(
        after["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "delivered" && r["receipt"].is_object()),
        "{after}"
    );

    // The FHIR route's dead letter cannot be replayed: nothing is left to send.
    let dead: Value = gateway
        .get("/v1/admin/dead-letters?destination=fhir-r4", Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    let delivery = dead["dead_letters"]
        .as_array()
        .or_else(|| dead["items"].as_array())
        .or_else(|| dead.as_array())
        .and_then(|l| l.iter().find(|d| d["record_id"] == *id))
        .unwrap_or_else(|| panic!("no dead letter of {id}: {dead}"))["delivery_id"]
        .as_i64()
        .unwrap();
    let replay = gateway
        .http
        .post(gateway.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({"ids": [delivery]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 409);
    let problem: Value = replay.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:registry-gateway:problem:payload-purged"
    );

    let metrics = gateway
        .get("/metrics", Some(ADMIN))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_records_purged_total{reason=\"erased\"} 2"),
        "{metrics}"
    );
    assert_no_canary("/metrics", metrics.as_bytes(), &canaries);

    // The log still verifies after the purge, offline, purge events included.
    let signed = gateway
        .http
        .post(gateway.url("/v1/admin/audit/checkpoint"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let note = signed.text().await.unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let auditor = "demo-auditor-token";
    let key = gateway
        .get("/v1/audit/public-key", Some(auditor))
        .await
        .text()
        .await
        .unwrap();
    let bundle = gateway
        .get(
            &format!("/v1/audit/bundle?start=0&end={size}"),
            Some(auditor),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        bundle.contains("record.purged"),
        "no purge event in the bundle"
    );
    assert_no_canary("audit bundle", bundle.as_bytes(), &canaries);
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("bundle.json"), &bundle).unwrap();
    std::fs::write(files.path().join("key.txt"), &key).unwrap();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["audit", "verify", "--bundle"])
        .arg(files.path().join("bundle.json"))
        .arg("--public-key")
        .arg(files.path().join("key.txt"))
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "the log no longer verifies after a purge: {}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let dir = gateway.stop().await;
    let store = dir.path().join("store");
    assert_store_holds_no_canary(&store, &canaries);
    assert_log_reads(
        &store,
        &[(&id, "demo-agency"), (&consent_id, "demo-agency")],
    )
    .await;
}

fn keyring(current: (&str, u8), previous: &[(&str, u8)]) -> Arc<Keyring> {
    let hex = |b: u8| format!("{b:02x}").repeat(32);
    let previous: Vec<(String, String)> = previous
        .iter()
        .map(|(id, b)| (id.to_string(), hex(*b)))
        .collect();
    let previous: Vec<(&str, &str)> = previous
        .iter()
        .map(|(i, h)| (i.as_str(), h.as_str()))
        .collect();
    Arc::new(Keyring::from_hex((current.0, &hex(current.1)), &previous).unwrap())
}

fn consent_record(subject: &str) -> NewRecord {
    let id = RecordId::new();
    let at = chrono::Utc::now();
    let mut audit = registry_gateway::audit::AuditEvent::new(
        registry_gateway::audit::AuditKind::RecordAccepted,
        at,
        "demo-agency",
        "canonical",
    );
    audit.record_id = Some(id.to_string());
    let consent = serde_json::to_vec(&json!({
        "record_type": "consent", "record_version": 1, "status": "withdrawn",
        "given_by": "caregiver", "purposes": [], "recipients": [],
        "decided_at": "2026-10-05T11:20:00+02:00", "source_record_id": "KNRY7000Q",
    }))
    .unwrap();
    NewRecord {
        id,
        client_id: "demo-agency".into(),
        source: "canonical".into(),
        record_type: RecordType::Consent,
        received_at: at,
        idempotency_key: Some("key-1".into()),
        request_sha256: [3; 32],
        canonical: consent.clone(),
        deliveries: Vec::new(),
        audit,
        subject: Some(subject.into()),
        consent: Some(ConsentEntry {
            subject: subject.into(),
            consent,
        }),
    }
}

#[tokio::test]
async fn a_rotated_kek_still_unwraps_and_an_unknown_or_wrong_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let open = |ring: Arc<Keyring>| SqliteStore::open(dir.path(), StoreMetrics::default(), ring);
    let record = consent_record("subject-1");
    let id = record.id;
    let store = open(keyring(("k1", 1), &[])).await.unwrap();
    assert_eq!(
        store.accept(record).await.unwrap(),
        AcceptOutcome::Created(id)
    );
    store.close().await;

    // Rotated: k2 wraps, k1 still unwraps; the data keys are wrapped again.
    let store = open(keyring(("k2", 2), &[("k1", 1)])).await.unwrap();
    let owner = store.record_owner(id).await.unwrap().unwrap();
    assert_eq!(owner.source_record_id.as_deref(), Some("KNRY7000Q"));
    assert!(store.latest_consent("subject-1").await.unwrap().is_some());
    // The same key and body is still a replay (the sealed request hash reads).
    let mut again = consent_record("subject-1");
    again.id = RecordId::new();
    assert_eq!(
        store.accept(again).await.unwrap(),
        AcceptOutcome::Replayed(id)
    );
    store.close().await;

    // k1 retired: everything was re-wrapped under k2 at the last open.
    let store = open(keyring(("k2", 2), &[])).await.unwrap();
    assert!(store.latest_consent("subject-1").await.unwrap().is_some());
    store.close().await;

    // A KEK that the store's keys are not wrapped by: named, not a panic.
    let Err(err) = open(keyring(("k3", 3), &[])).await else {
        panic!("a store opened without its KEK");
    };
    assert!(
        matches!(&err, StoreError::Key(KeyError::UnknownKek { kek_id }) if kek_id == "k2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"k2\""), "{err}");
    // The right id with the wrong bytes.
    let Err(err) = open(keyring(("k2", 9), &[])).await else {
        panic!("a store opened with a wrong KEK");
    };
    assert!(
        matches!(&err, StoreError::Key(KeyError::WrongKek { kek_id }) if kek_id == "k2"),
        "{err:?}"
    );
}

#[test]
fn retention_config_errors_are_collected_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(crate::common::example_config_path()).unwrap();
    let head = &example[..example.find("# --- retention").unwrap()];
    let text = format!(
        "{head}\n[retention]\nkek = \"0011\"\npayload_days = -1\npurge_interval_secs = 0\n\
         previous_keks = [{{ id = \"Bad Id\", kek = \"env:RG_TEST_NO_SUCH_VARIABLE\" }}]\n"
    )
    .replace("mappings_dir = \"../mappings\"", "")
    .replace("policies_dir = \"../policies\"", "");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    // payload_days = -1 does not parse as a day count at all.
    assert!(Config::load(&path, &Overrides::default()).is_err());
    let text = text.replace("payload_days = -1\n", "");
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path, &Overrides::default()).unwrap_err();
    let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "retention.kek",
        "retention.kek_id",
        "retention.previous_keks[0].id",
        "retention.previous_keks[0].kek",
        "retention.purge_interval_secs",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
    // A KEK written in the config itself is refused, not just warned about.
    let kek_error = err
        .errors
        .iter()
        .find(|e| e.path == "retention.kek")
        .unwrap();
    assert!(kek_error.message.contains("env:NAME"), "{kek_error}");
    assert!(!kek_error.message.contains("0011"), "{kek_error}");
}

#[tokio::test]
async fn serving_without_a_kek_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    config.retention = None;
    let Err(err) = registry_gateway::server::start(config).await else {
        panic!("served without a KEK");
    };
    assert!(err.to_string().contains("retention.kek"), "{err}");
}
