//! The hostile-input suite (#13): the gateway binary at its default limits,
//! fed what an attacker with an agency token, or a broken or hostile registry,
//! would send. For each class: the answer, the slowest of four sent at once,
//! the process's peak RSS while they ran (VmHWM, reset before each class),
//! and the slowest /healthz answer meanwhile, each asserted against a bound.
//!
//! A binary of its own: it measures time and memory, so it must not share
//! its process (or its CPU) with the other integration tests.

#[path = "it/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The bounds of #13's Done-when.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
const PEAK_RSS_MIB: u64 = 128;
const HEALTHZ_WITHIN: Duration = Duration::from_millis(50);
const PARALLEL: usize = 4;

/// The tests here run one at a time: the harness would run them on threads
/// side by side, and another test's gateway starting up, or its 64 trickling
/// clients, would share the two cores with a measurement (it did: /healthz
/// took 105 ms in the first class while the other gateways started).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One class of hostile request.
struct Class {
    name: &'static str,
    source: &'static str,
    content_type: Option<&'static str>,
    content_encoding: Option<&'static str>,
    body: Vec<u8>,
    expect: u16,
}

impl Class {
    fn json(name: &'static str, body: Vec<u8>, expect: u16) -> Class {
        Class {
            name,
            source: "canonical",
            content_type: Some("application/json"),
            content_encoding: None,
            body,
            expect,
        }
    }
}

fn example(record_type: &str) -> Value {
    example_record(record_type)
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// About 900 KB of each shape: under the 1 MiB body cap, so every one is
/// parsed, not refused for its size.
fn classes() -> Vec<Class> {
    let mut classes = Vec::new();
    classes.push(Class::json("deep nesting", vec![b'['; 900_000], 422));
    let mut huge_string = example("birth-notification");
    huge_string["child"]["given_names"] = json!("A".repeat(900_000));
    classes.push(Class::json("huge string", bytes(&huge_string), 422));
    let mut many_keys = serde_json::Map::new();
    many_keys.insert("record_type".into(), json!("birth-notification"));
    for i in 0..70_000 {
        many_keys.insert(format!("k{i}"), json!(0));
    }
    classes.push(Class::json(
        "many keys",
        bytes(&Value::Object(many_keys)),
        422,
    ));
    let mut many_items = example("birth-notification");
    many_items["mother"]["identifiers"] = Value::Array(vec![json!(1); 300_000]);
    classes.push(Class::json("many array items", bytes(&many_items), 422));
    let mut many_violations = example("birth-notification");
    many_violations["mother"]["identifiers"] =
        Value::Array(vec![json!({"kind": 7, "value": [], "extra": null}); 20_000]);
    classes.push(Class::json("many violations", bytes(&many_violations), 422));
    let mut invalid_utf8 =
        br#"{"record_type":"birth-notification","child":{"given_names":""#.to_vec();
    invalid_utf8.extend(std::iter::repeat_n([0xC3u8, 0x28], 400_000).flatten());
    invalid_utf8.extend_from_slice(br#""}}"#);
    classes.push(Class::json("invalid UTF-8", invalid_utf8, 422));
    let mut duplicates = b"{".to_vec();
    for _ in 0..25_000 {
        duplicates.extend_from_slice(br#""record_type":"birth-notification","#);
    }
    duplicates.extend_from_slice(br#""record_version":1}"#);
    classes.push(Class::json("duplicate keys", duplicates, 422));
    classes.push(Class {
        content_type: Some("application/xml"),
        ..Class::json(
            "wrong content type",
            format!("<r>{}</r>", "<a/>".repeat(200_000)).into_bytes(),
            415,
        )
    });
    classes.push(Class {
        content_encoding: Some("gzip"),
        // A gzip member header, then what would inflate to gigabytes.
        ..Class::json(
            "compressed bomb",
            [&[0x1f, 0x8b, 0x08, 0x00][..], &vec![0u8; 900_000]].concat(),
            415,
        )
    });
    classes.push(Class {
        source: "fhir-r4",
        content_type: Some("application/fhir+json"),
        ..Class::json("FHIR reference storm", bytes(&fhir_storm(990)), 202)
    });
    classes.push(Class {
        source: "primero",
        ..Class::json("Primero subform storm", bytes(&primero_storm(12_000)), 422)
    });
    classes
}

/// A FHIR birth document with `observations` birth-weight Observations, each
/// referring to the child twice.
fn fhir_storm(observations: usize) -> Value {
    let mut bundle: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "conformance/cases/41-fhir-facility-refugee-mother/input.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let entries = bundle["entry"].as_array_mut().unwrap();
    let child = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .map(|e| e["fullUrl"].as_str().unwrap().to_string())
        .unwrap();
    for i in 0..observations {
        entries.push(json!({
            "fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{i:012}"),
            "resource": {
                "resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8339-4"}]},
                "subject": {"reference": child}, "focus": [{"reference": child}],
                "valueQuantity": {"value": 3100, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
            }
        }));
    }
    bundle
}

/// A Primero case whose family subform has `rows` rows, every one malformed.
fn primero_storm(rows: usize) -> Value {
    let mut case: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "conformance/cases/34-primero-separated-consented/input.json",
        ))
        .unwrap(),
    )
    .unwrap();
    case["data"]["family_details_section"] = Value::Array(
        (0..rows)
            .map(|i| json!({"unique_id": i, "relation": [i], "relation_is_alive": {}}))
            .collect(),
    );
    case
}

/// The process's peak resident set since the last reset, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

/// Start the next peak from the current resident set (Linux clear_refs 5).
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Poll /healthz every 10 ms until `stop`; the slowest answer (a failure
/// counts as an hour).
fn watch_health(base: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    let url = format!("{base}/healthz");
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut slowest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let ok = http.get(&url).send().await.is_ok_and(|r| r.status() == 200);
            let took = if ok {
                started.elapsed()
            } else {
                Duration::from_secs(3600)
            };
            slowest = slowest.max(took);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slowest
    })
}

struct Measured {
    statuses: Vec<u16>,
    slowest: Duration,
    peak_mib: u64,
    health: Duration,
}

async fn measure<F, Fut>(pid: u32, base: &str, send: F) -> Measured
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    reset_peak_rss(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(base, stop.clone());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let sends: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let request = send();
            tokio::spawn(async move {
                let started = Instant::now();
                let status = request.await;
                (status, started.elapsed())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for s in sends {
        let (status, took) = s.await.unwrap();
        statuses.push(status);
        slowest = slowest.max(took);
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.store(true, Ordering::Relaxed);
    Measured {
        statuses,
        slowest,
        peak_mib: peak_rss_mib(pid),
        health: health.await.unwrap(),
    }
}

/// `Content-Length: 1 GiB`, 1 KiB of it sent: the answer comes without
/// waiting for the rest. Raw TCP, since an HTTP client would insist on
/// sending what it announced.
fn announce_one_gib(address: &str) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST /v1/sources/canonical/records HTTP/1.1\r\nHost: gateway\r\n\
         Authorization: Bearer {AGENCY}\r\nContent-Type: application/json\r\n\
         Content-Length: 1073741824\r\n\r\n"
    )
    .unwrap();
    let _ = stream.write_all(&[b' '; 1024]);
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap_or(0);
    let line = String::from_utf8_lossy(&answer[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_answered_fast_in_bounded_memory() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut gateway = spawn_gateway(&example_config_path(), Some(data_dir.path()), "warn");
    let pid = gateway.child.id();
    let base = gateway.base.clone();
    let address = base.trim_start_matches("http://").to_string();
    assert!(
        reset_peak_rss(pid),
        "this kernel cannot reset VmHWM: peaks would span classes"
    );
    let http = reqwest::Client::new();
    // One ordinary record first: a fresh process's first request pays for
    // faulting in its code and the store's pages, which is not what the
    // bounds are about.
    let warm_up = http
        .post(format!("{base}/v1/sources/canonical/records"))
        .bearer_auth(AGENCY)
        .json(&example("birth-notification"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm_up.status(), 202, "the warm-up record");
    // And one large body: the first one starts the blocking pool's threads
    // (small bodies are decoded on the runtime) and takes the allocator's
    // first large pages from the kernel. The classes below then measure
    // what every later hostile body costs.
    let warm_up = http
        .post(format!("{base}/v1/sources/canonical/records"))
        .bearer_auth(AGENCY)
        .header("content-type", "application/json")
        .body(vec![b'['; 900_000])
        .send()
        .await
        .unwrap();
    assert_eq!(warm_up.status(), 422, "the large warm-up body");
    let mut failures = Vec::new();
    let mut report = vec![format!(
        "{:<24} {:>6} {:>10} {:>9} {:>10}",
        "class", "answer", "slowest", "peak RSS", "/healthz"
    )];
    let mut check = |name: &str, expect: u16, m: Measured| {
        report.push(format!(
            "{:<24} {:>6} {:>8}ms {:>6}MiB {:>8}ms",
            name,
            m.statuses[0],
            m.slowest.as_millis(),
            m.peak_mib,
            m.health.as_millis()
        ));
        if m.statuses.iter().any(|s| *s != expect) {
            failures.push(format!(
                "{name}: answers {:?}, expected {expect}",
                m.statuses
            ));
        }
        if m.slowest > ANSWER_WITHIN {
            failures.push(format!("{name}: slowest answer {:?}", m.slowest));
        }
        if m.peak_mib > PEAK_RSS_MIB {
            failures.push(format!("{name}: peak RSS {} MiB", m.peak_mib));
        }
        if m.health > HEALTHZ_WITHIN {
            failures.push(format!("{name}: /healthz took {:?}", m.health));
        }
    };
    for class in classes() {
        assert!(
            class.body.len() < 1024 * 1024,
            "{}: {} bytes would be refused for its size, not parsed",
            class.name,
            class.body.len()
        );
        let body = axum::body::Bytes::from(class.body);
        let url = format!("{base}/v1/sources/{}/records", class.source);
        let measured = measure(pid, &base, || {
            let mut request = http.post(&url).bearer_auth(AGENCY).body(body.clone());
            if let Some(t) = class.content_type {
                request = request.header("content-type", t);
            }
            if let Some(e) = class.content_encoding {
                request = request.header("content-encoding", e);
            }
            async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .await;
        check(class.name, class.expect, measured);
    }
    let measured = measure(pid, &base, || {
        let address = address.clone();
        async move {
            tokio::task::spawn_blocking(move || announce_one_gib(&address))
                .await
                .unwrap()
        }
    })
    .await;
    check("1 GiB Content-Length", 413, measured);

    eprintln!("{}", report.join("\n"));
    assert!(
        gateway.child.try_wait().unwrap().is_none(),
        "the gateway died"
    );
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Slow clients: connections that trickle their headers or their body do
/// not hold up anyone else's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_hold_up_others() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut gateway = spawn_gateway(&example_config_path(), Some(data_dir.path()), "warn");
    let address = gateway.base.trim_start_matches("http://").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let mut trickles = Vec::new();
    for i in 0..64 {
        let address = address.clone();
        let stop = stop.clone();
        trickles.push(std::thread::spawn(move || {
            let Ok(mut stream) = TcpStream::connect(&address) else {
                return;
            };
            let head = if i % 2 == 0 {
                // Headers, one byte at a time.
                "POST /v1/sources/canonical/records HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
                    .to_string()
            } else {
                // Complete headers, then the body one byte at a time.
                format!(
                    "POST /v1/sources/canonical/records HTTP/1.1\r\nHost: gateway\r\n\
                     Authorization: Bearer {AGENCY}\r\nContent-Type: application/json\r\n\
                     Content-Length: 100000\r\n\r\n"
                )
            };
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = watch_health(&gateway.base, stop.clone());
    let http = reqwest::Client::new();
    let record = bytes(&example("birth-notification"));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let status = http
            .post(format!("{}/v1/sources/canonical/records", gateway.base))
            .bearer_auth(AGENCY_2)
            .header("content-type", "application/json")
            .body(record.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
        slowest = slowest.max(started.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let health = health.await.unwrap();
    for t in trickles {
        t.join().unwrap();
    }
    eprintln!("64 slow clients: slowest submit {slowest:?}, slowest /healthz {health:?}");
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    assert!(slowest < ANSWER_WITHIN, "a submit took {slowest:?}");
    assert!(health < HEALTHZ_WITHIN, "/healthz took {health:?}");
}

/// Slowloris: a connection that never finishes its headers is closed after
/// `header_read_timeout_secs` (10 in the example config), so such
/// connections cannot pile up until `max_connections` is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut gateway = spawn_gateway(&example_config_path(), Some(data_dir.path()), "warn");
    let address = gateway.base.trim_start_matches("http://").to_string();
    let cut_after = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        let started = Instant::now();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buffer = [0u8; 512];
        while started.elapsed() < Duration::from_secs(30) {
            if stream.write_all(b"a").is_err() {
                return started.elapsed();
            }
            match stream.read(&mut buffer) {
                // Closed, or reset.
                Ok(0) => return started.elapsed(),
                Err(e)
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return started.elapsed();
                }
                // An answer (a 408) before the close, or still open.
                _ => {}
            }
        }
        started.elapsed()
    })
    .await
    .unwrap();
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    eprintln!("a header trickle was cut off after {cut_after:?}");
    assert!(
        cut_after >= Duration::from_secs(9) && cut_after < Duration::from_secs(15),
        "cut off after {cut_after:?}, expected about 10 s"
    );
}

/// A hostile registry: answers that never end, answers of 50 MB, XML that
/// declares entities, a Retry-After of three thousand years and a token
/// that lives 10^19 seconds. The gateway classifies each and keeps serving,
/// within its memory bound, and no task panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_answers_do_not_take_the_gateway_down() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let registry = hostile_registry::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let destinations = format!(
        r#"
[destinations.fhir-r4]
kind = "fhir-r4"
url = "{r}/huge"
auth = {{ mode = "client-credentials", token_url = "{r}/token", client_id = "gw", client_secret = "hostile-registry-secret" }}
retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1, breaker_cooldown_secs = 1 }}

[destinations.primero]
kind = "primero"
url = "{r}/endless"
timeout_secs = 3
auth = {{ mode = "basic", user = "gw", password = "hostile-registry-secret" }}
retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1, breaker_cooldown_secs = 1 }}

[destinations.examplia-crvs]
kind = "examplia-crvs"
url = "{r}/entities"
retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1, breaker_cooldown_secs = 1 }}

[destinations.opencrvs-v1]
kind = "opencrvs-v1"
url = "{r}/retry-after"
auth = {{ mode = "client-credentials", token_url = "{r}/token-negative", client_id = "gw", client_secret = "hostile-registry-secret" }}
locations = {{ file = "{locations}" }}
"#,
        r = registry.base,
        locations = repo_path("deploy/locations/examplia-opencrvs.json").display(),
    );
    let config_dir = data_dir.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let _ = config_with(
        &config_dir,
        &destinations,
        &[
            ("birth-notification", "fhir-r4"),
            ("birth-notification", "examplia-crvs"),
            ("birth-notification", "opencrvs-v1"),
            ("child-protection-case", "primero"),
        ],
    );
    let log = data_dir.path().join("gateway.log");
    let mut gateway = spawn_logging_to(
        &config_dir.join("gateway.toml"),
        &data_dir.path().join("store"),
        &log,
    );
    let pid = gateway.child.id();
    reset_peak_rss(pid);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (source, record) in [
        ("canonical", example("birth-notification")),
        ("canonical", example("child-protection-case")),
    ] {
        let answer = http
            .post(format!("{}/v1/sources/{source}/records", gateway.base))
            .bearer_auth(AGENCY)
            .json(&record)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let answer: Value = answer.json().await.unwrap();
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(&gateway.base, stop.clone());
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let health = health.await.unwrap();
    let peak = peak_rss_mib(pid);
    let mut routes = Vec::new();
    for id in &ids {
        let status: Value = http
            .get(format!("{}/v1/records/{id}", gateway.base))
            .bearer_auth(AGENCY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        routes.extend(status["routes"].as_array().unwrap().iter().cloned());
    }
    let alive = gateway.child.try_wait().unwrap().is_none();
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "hostile registry: peak RSS {peak} MiB, slowest /healthz {health:?}, calls {:?}\n{}",
        registry.calls(),
        serde_json::to_string_pretty(&routes).unwrap()
    );
    assert!(alive, "the gateway died");
    assert!(!log.contains("panicked"), "a task panicked:\n{log}");
    assert!(peak <= PEAK_RSS_MIB, "peak RSS {peak} MiB");
    // Looser than for hostile requests: the hostile registry streams its
    // 50 MB answers from this test's own process, which also times /healthz.
    assert!(
        health < Duration::from_millis(250),
        "/healthz took {health:?}"
    );
    assert_eq!(routes.len(), 4);
    for route in &routes {
        // Nothing hostile is taken for a receipt.
        assert_ne!(route["status"], "delivered", "{route}");
        assert!(
            !route["last_error"].is_null(),
            "no attempt recorded: {route}"
        );
    }
    // Each hostile endpoint was reached (the others are tried again later).
    for endpoint in ["huge", "endless", "entities", "retry-after"] {
        assert!(
            registry.calls().iter().any(|c| c == endpoint),
            "{endpoint} never called"
        );
    }
}

fn spawn_logging_to(config: &Path, data_dir: &Path, log: &Path) -> GatewayProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("registry-gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    GatewayProcess { child, base }
}

/// A registry that answers as badly as it can.
mod hostile_registry {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use futures::stream;

    pub struct Hostile {
        pub base: String,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Hostile {
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    type Calls = Arc<Mutex<Vec<String>>>;

    fn called(calls: &Calls, what: &str) {
        calls.lock().unwrap().push(what.to_string());
    }

    pub async fn start() -> Hostile {
        let calls: Calls = Arc::default();
        let app = Router::new()
            .route("/token", post(token))
            .route("/token-negative", post(token_negative))
            .route("/huge", post(huge))
            .route("/endless", post(endless))
            .route("/entities", post(entities))
            .route("/retry-after", post(retry_after))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hostile { base, calls }
    }

    fn json(body: &'static str) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    /// A token that would live 10^19 seconds.
    async fn token(State(calls): State<Calls>) -> Response {
        called(&calls, "token");
        json(r#"{"access_token":"aaa.bbb.ccc","token_type":"Bearer","expires_in":1e19}"#)
    }

    async fn token_negative(State(calls): State<Calls>) -> Response {
        called(&calls, "token-negative");
        json(
            r#"{"access_token":"aaa.bbb.ccc","token_type":"Bearer","expires_in":-9223372036854775808}"#,
        )
    }

    /// 50 MB of JSON-looking bytes, announced as such.
    async fn huge(State(calls): State<Calls>) -> Response {
        called(&calls, "huge");
        let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
        let chunks =
            stream::iter(std::iter::repeat_n(chunk, 800).map(Ok::<_, std::convert::Infallible>));
        (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Body::from_stream(chunks),
        )
            .into_response()
    }

    /// A chunked answer that never ends.
    async fn endless(State(calls): State<Calls>) -> Response {
        called(&calls, "endless");
        let chunks = stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Some((
                Ok::<_, std::convert::Infallible>(axum::body::Bytes::from_static(b"[[[[[[[[")),
                (),
            ))
        });
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(chunks),
        )
            .into_response()
    }

    /// A SOAP answer that declares entities nine levels deep (a billion
    /// laughs): read, it must not expand.
    async fn entities(State(calls): State<Calls>) -> Response {
        called(&calls, "entities");
        let mut doctype = String::from("<!DOCTYPE e [<!ENTITY l0 \"lol\">");
        for i in 1..10 {
            let refs = format!("&l{};", i - 1).repeat(10);
            doctype.push_str(&format!("<!ENTITY l{i} \"{refs}\">"));
        }
        doctype.push(']');
        doctype.push('>');
        let body = format!(
            "<?xml version=\"1.0\"?>{doctype}<SOAP-ENV:Envelope \
             xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>\
             <SOAP-ENV:Fault><faultcode>&l9;</faultcode><faultstring>&l9;</faultstring>\
             </SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
        );
        ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
    }

    /// Come back in three thousand years.
    async fn retry_after(State(calls): State<Calls>) -> Response {
        called(&calls, "retry-after");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "99999999999")],
            "",
        )
            .into_response()
    }
}
