//! The console in Debian's headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini), against a real gateway and a mock OpenCRVS
//! registry: sign in as each role; the operator's overview while records
//! flow; a dead letter replayed from the page and followed to its receipt;
//! an auditor's record history with every inclusion proof checked in the
//! browser, then one stored entry edited and marked failing; an agency kept
//! out of another agency's record; canaries planted in every field of the
//! records never in any page's DOM or any asset. One browser session for
//! all of it. Screenshots of the main pages at 1280x720 and 390x844 go to
//! a temporary folder, or to docs/console/ with CONSOLE_SCREENSHOTS=docs.
//!
//! Chromium and chromedriver come from `tools/install-oracles`; without
//! them the test says so and passes, except under CI=true, where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use registry_gateway::config::ClosedWindow;
use registry_mocks::{self as mocks, Fault, MockConfig, MockKind};
use serde_json::{Value, json};

use crate::common::{
    ADMIN, AGENCY, AGENCY_2, AUDITOR, TestGateway, config_with, example_record,
    opencrvs_destination, repo_path, with_canaries,
};

const WAIT: Duration = Duration::from_secs(30);

/// chromedriver on a free port, stopped (by its own handle) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The browser and its driver, or None (skipped) when they are not installed.
async fn browser() -> Option<(Driver, Client)> {
    let chromium = find_program(&["chromium", "chromium-browser"]);
    let driver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let why = "chromium and chromedriver are not installed (bash tools/install-oracles installs them)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "console browser tests: {why}"
        );
        eprintln!("SKIPPED console browser tests: {why}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < WAIT, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--lang=en-GB", "--window-size=1280,720", "--force-device-scale-factor=1"],
            "prefs": {"intl.accept_languages": "en-GB"}
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    Some((driver, client))
}

/// Poll `script` (a JS expression) until it is truthy; its last value.
async fn until(c: &Client, script: &str, what: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = c
            .execute(&format!("return ({script});"), vec![])
            .await
            .unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return value;
        }
        if started.elapsed() > WAIT {
            let text = c
                .execute("return document.body.innerText.slice(0, 3000);", vec![])
                .await
                .unwrap_or_default();
            panic!("waited too long for {what}; the page shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(&format!("return ({script});"), vec![])
        .await
        .unwrap()
}

/// Open `hash` of the console (`#/view/arg`).
async fn open(c: &Client, base: &str, hash: &str) {
    c.goto(&format!("{base}/console/{hash}")).await.unwrap();
}

async fn sign_in(c: &Client, base: &str, token: &str, role: &str) {
    open(c, base, "").await;
    js(c, "sessionStorage.clear() || true").await;
    c.refresh().await.unwrap();
    let field = c.wait().for_element(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    c.find(Locator::Id("signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        c,
        &format!("document.querySelector('#whoami[data-role=\"{role}\"]')"),
        "signed in",
    )
    .await;
    // The token is in the tab's session storage, not in the address or a cookie.
    let url = c.current_url().await.unwrap().to_string();
    assert!(!url.contains(token), "{url}");
    assert_eq!(js(c, "document.cookie").await, "");
}

/// The rendered DOM of the page as it is now.
async fn dom(c: &Client) -> String {
    js(c, "document.documentElement.outerHTML")
        .await
        .as_str()
        .unwrap()
        .to_string()
}

struct Shots {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Shots {
    fn new() -> Shots {
        if std::env::var("CONSOLE_SCREENSHOTS").as_deref() == Ok("docs") {
            let dir = repo_path("docs/console");
            std::fs::create_dir_all(&dir).unwrap();
            return Shots { dir, _temp: None };
        }
        let temp = tempfile::tempdir().unwrap();
        Shots {
            dir: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }

    /// The page at both sizes, `<name>-1280x720.png` and `<name>-390x844.png`.
    async fn take(&self, c: &Client, name: &str) {
        for (w, h) in [(390u32, 844u32), (1280, 720)] {
            viewport(c, w, h).await;
            // Let the layout settle at the new size.
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = c.screenshot().await.unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}: not a PNG");
            let (pw, ph) = (
                u32::from_be_bytes(png[16..20].try_into().unwrap()),
                u32::from_be_bytes(png[20..24].try_into().unwrap()),
            );
            assert_eq!((pw, ph), (w, h), "{name}: screenshot size");
            assert!(
                png.len() > 5_000,
                "{name}: a {} byte PNG is blank",
                png.len()
            );
            std::fs::write(self.dir.join(format!("{name}-{w}x{h}.png")), png).unwrap();
        }
    }
}

/// Make the page's viewport exactly `w` x `h` CSS pixels.
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let inner = js(c, "[window.innerWidth, window.innerHeight]").await;
    let (iw, ih) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
    if (iw, ih) != (u64::from(w), u64::from(h)) {
        c.set_window_size(w + (w - iw as u32), h + (h - ih as u32))
            .await
            .unwrap();
    }
}

/// The example record with a canary in each field in turn (each with its
/// own source id): pushed while the operator watches.
async fn push_canaries(base: String) -> (Vec<String>, Vec<String>) {
    let http = reqwest::Client::new();
    let record = example_record("birth-notification");
    let (mut planted, mut accepted) = (Vec::new(), Vec::new());
    for (pointer, canary, r) in with_canaries(&record) {
        planted.push(canary);
        let answer = http
            .post(format!("{base}/v1/sources/canonical/records"))
            .bearer_auth(AGENCY)
            .json(&r)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert!(status == 202 || status == 422, "{pointer}: {status}");
        if status == 202 {
            let body: Value = answer.json().await.unwrap();
            accepted.push(body["id"].as_str().unwrap().to_string());
        }
    }
    (planted, accepted)
}

async fn submit(gw: &TestGateway, token: &str, source_id: &str) -> String {
    let mut record = example_record("birth-notification");
    record["source_record_id"] = json!(source_id);
    let answer = gw
        .submit(
            "canonical",
            Some(token),
            None,
            serde_json::to_vec(&record).unwrap(),
        )
        .await;
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn route_status(gw: &TestGateway, id: &str) -> String {
    let status: Value = gw
        .get(&format!("/v1/records/{id}"), Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    status["routes"][0]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A closed window that is not now: the one starting twelve hours from now.
fn closed_window_later() -> ClosedWindow {
    let hour = (Utc::now().hour() + 12) % 24;
    let hour = hour.min(22);
    ClosedWindow {
        days: Vec::new(),
        from: chrono::NaiveTime::from_hms_opt(hour, 0, 0).unwrap(),
        to: chrono::NaiveTime::from_hms_opt(hour + 1, 0, 0).unwrap(),
        offset: chrono::FixedOffset::east_opt(0).unwrap(),
    }
}

async fn gateway() -> (TestGateway, mocks::RunningMock) {
    let registry = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let destinations = opencrvs_destination(&registry, "");
    let mut config = config_with(
        dir.path(),
        &destinations,
        &[("birth-notification", "opencrvs")],
    );
    let opencrvs = config.destinations.get_mut("opencrvs").unwrap();
    // One attempt: the registry's one 503 makes a dead letter at once.
    opencrvs.retry.max_attempts = 1;
    opencrvs.limits.rate_per_second = Some(20.0);
    opencrvs.limits.burst = 5;
    opencrvs.limits.daily_quota = Some(5000);
    opencrvs.limits.closed = vec![closed_window_later()];
    (TestGateway::start_with(config, dir).await, registry)
}

/// Edit the stored event of log entry `index` behind the store's back.
async fn tamper(store: &Path, index: u64) {
    use sqlx::Connection;
    let db = store.join("gateway.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_is_append_only_update")
        .execute(&mut conn)
        .await
        .unwrap();
    let edited = sqlx::query(
        "UPDATE audit_log SET event = CAST(replace(CAST(event AS TEXT), '\"version\":1', '\"version\":2') AS BLOB) WHERE seq = ?",
    )
    .bind(index as i64 + 1)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);
}

/// The browser on one gateway: each view opened is waited for, and its
/// rendered DOM kept for the canary check.
struct Tour {
    c: Client,
    base: String,
    shots: Shots,
    pages: Vec<(String, String)>,
}

impl Tour {
    /// Open `hash` and wait until `ready` (a JS expression) holds.
    async fn visit(&self, hash: &str, ready: &str, what: &str) -> Value {
        open(&self.c, &self.base, hash).await;
        until(&self.c, ready, what).await
    }

    /// Keep the page's DOM, and screenshots of it when `shot`.
    async fn keep(&mut self, name: &str, shot: bool) {
        if shot {
            self.shots.take(&self.c, name).await;
        }
        let html = dom(&self.c).await;
        self.pages.push((name.to_string(), html));
    }

    async fn click(&self, id: &str) {
        let element = self.c.wait().for_element(Locator::Id(id)).await.unwrap();
        element.click().await.unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        js(&self.c, script).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let started = Instant::now();
    let (gw, registry) = gateway().await;
    let mut tour = Tour {
        c,
        base: gw.base.clone(),
        shots: Shots::new(),
        pages: Vec::new(),
    };

    // A record the registry refuses once (503, one attempt): a dead letter.
    registry
        .faults()
        .push(Fault::Status503 { retry_after: None }.times(1));
    let dead = submit(&gw, AGENCY, "urn:uuid:10000000-0000-4000-8000-000000000001").await;
    let deadline = Instant::now() + WAIT;
    while route_status(&gw, &dead).await != "dead" {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let theirs = submit(
        &gw,
        AGENCY_2,
        "urn:uuid:20000000-0000-4000-8000-000000000002",
    )
    .await;

    sign_in_page(&tour).await;
    agency(&mut tour, &dead, &theirs).await;
    let planted = operator(&mut tour, &gw, &dead).await;
    auditor(&mut tour, &gw, &dead).await;

    // No canary in any page or asset.
    for (name, html) in &tour.pages {
        for canary in &planted {
            assert!(
                !html.contains(canary.as_str()),
                "{canary} in the {name} page"
            );
        }
    }
    for asset in registry_gateway::console::ASSETS {
        let answer = gw.get(&format!("/console/{}", asset.name), None).await;
        assert_eq!(answer.status(), 200, "{}", asset.name);
        let body = answer.text().await.unwrap();
        assert!(
            planted.iter().all(|c| !body.contains(c.as_str())),
            "{}",
            asset.name
        );
    }
    eprintln!("console browser test: {:?}", started.elapsed());
    tour.c.close().await.unwrap();
    gw.stop().await;
    registry.stop().await;
}

/// The sign-in page; a wrong token is refused.
async fn sign_in_page(tour: &Tour) {
    open(&tour.c, &tour.base, "").await;
    let field = tour
        .c
        .wait()
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    tour.shots.take(&tour.c, "sign-in").await;
    field.send_keys("not-a-token").await.unwrap();
    tour.click("signin").await;
    until(
        &tour.c,
        "document.querySelector('[role=alert]')",
        "a refusal",
    )
    .await;
}

/// An agency: its own record's status, not another agency's.
async fn agency(tour: &mut Tour, own: &str, theirs: &str) {
    sign_in(&tour.c, &tour.base, AGENCY, "agency").await;
    assert_eq!(
        tour.js("!!document.getElementById('nav-overview')").await,
        false
    );
    tour.visit(
        &format!("#/record/{own}"),
        "document.querySelector('#routes [data-status]')",
        "own record",
    )
    .await;
    tour.keep("agency record", false).await;
    tour.visit(
        &format!("#/record/{theirs}"),
        "document.getElementById('not-visible')",
        "refusal",
    )
    .await;
    assert_eq!(
        tour.js("!!document.getElementById('routes')").await,
        false,
        "an agency sees another agency's record"
    );
}

/// The operator: the overview while records flow, the dead letter replayed
/// from the page and followed to its receipt. Returns the canaries planted.
async fn operator(tour: &mut Tour, gw: &TestGateway, dead: &str) -> Vec<String> {
    sign_in(&tour.c, &tour.base, ADMIN, "admin").await;
    tour.visit(
        "#/overview",
        "document.querySelector('[data-destination=opencrvs] [data-breaker]')",
        "overview",
    )
    .await;
    let delivered = "Number((document.querySelector('[data-destination=opencrvs] [data-status=delivered]')?.textContent || '0').replace(/[^0-9]/g, ''))";
    let before = tour.js(delivered).await.as_u64().unwrap();
    let flow = tokio::spawn(push_canaries(tour.base.clone()));
    until(
        &tour.c,
        &format!("{delivered} > {before} + 5"),
        "deliveries counted while they flow",
    )
    .await;
    until(
        &tour.c,
        "Number(document.querySelector('svg.chart').dataset.bars) > 0",
        "the chart",
    )
    .await;
    let (planted, accepted) = flow.await.unwrap();
    assert!(accepted.len() > 5, "{} accepted", accepted.len());
    let facts = tour
        .js("document.querySelector('[data-destination=opencrvs]').textContent")
        .await;
    for fact in ["20/s", "burst 5", "/ 5,000", "closed", "Next closed window"] {
        assert!(
            facts.as_str().unwrap().contains(fact),
            "overview lacks {fact:?}: {facts}"
        );
    }
    let dead_shown = tour
        .js("Number(document.querySelector('[data-destination=opencrvs] [data-status=dead]')?.textContent)")
        .await;
    assert!(
        dead_shown.as_u64() >= Some(1),
        "dead letters on the overview: {dead_shown}"
    );
    tour.keep("overview", true).await;

    // Replay the dead letter from the page, with confirmation; watch it deliver.
    let letters: Value = gw
        .get("/v1/admin/dead-letters", Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    let letter = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["record_id"] == dead)
        .expect("the dead letter is listed")
        .clone();
    let pick = format!("pick-{}", letter["delivery_id"]);
    tour.visit(
        "#/dead-letters",
        &format!("document.getElementById('{pick}')"),
        "the dead letter",
    )
    .await;
    tour.click(&pick).await;
    tour.keep("dead-letters", true).await;
    tour.click("replay-selected").await;
    until(
        &tour.c,
        "document.getElementById('confirm').open",
        "the confirmation",
    )
    .await;
    tour.click("confirm-ok").await;
    until(
        &tour.c,
        "document.getElementById('status').textContent.includes('1 delivery')",
        "replayed",
    )
    .await;
    tour.visit(
        &format!("#/record/{dead}"),
        "document.querySelector('#routes [data-status=delivered]')",
        "the replayed record delivered",
    )
    .await;
    tour.keep("record", true).await;
    for id in accepted.iter().take(5) {
        let shown = format!(
            "document.querySelector('#routes') && document.querySelector('#record dl code')?.textContent === '{id}'"
        );
        tour.visit(&format!("#/record/{id}"), &shown, "a canary record")
            .await;
        tour.keep(&format!("record {id}"), false).await;
    }
    planted
}

/// The auditor: the checkpoint, the log, the replayed record's history with
/// every proof verified; then one stored entry edited, and marked failing.
async fn auditor(tour: &mut Tour, gw: &TestGateway, dead: &str) {
    let signed = gw
        .http
        .post(gw.url("/v1/admin/audit/checkpoint"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    sign_in(&tour.c, &tour.base, AUDITOR, "auditor").await;
    tour.visit(
        "#/checkpoint",
        "document.querySelector('#checkpoint[data-verdict=ok]')",
        "the checkpoint verified",
    )
    .await;
    tour.keep("checkpoint", true).await;
    let rows = tour
        .visit(
            "#/log/start%3D0%26end%3D1000",
            "document.querySelectorAll('#log tbody tr').length",
            "the log",
        )
        .await;
    assert!(rows.as_u64().unwrap() > 10, "{rows}");
    tour.keep("log", true).await;

    let history: Value = gw
        .get(&format!("/v1/audit/records/{dead}"), Some(AUDITOR))
        .await
        .json()
        .await
        .unwrap();
    let entries = history["entries"].as_array().unwrap();
    assert!(
        entries.len() >= 4,
        "accepted, dead, replayed, delivered: {history}"
    );
    let verdicts = "[...document.querySelectorAll('#history tr[data-verdict]')].map(r => [Number(r.dataset.index), r.dataset.verdict])";
    let proofs = "document.getElementById('proof-summary')";
    tour.visit(&format!("#/history/{dead}"), proofs, "the proofs")
        .await;
    let expected: Vec<Value> = entries.iter().map(|e| json!([e["index"], "ok"])).collect();
    assert_eq!(
        tour.js(verdicts).await,
        json!(expected),
        "every inclusion proof verifies in the browser"
    );
    tour.keep("history", true).await;

    // One stored entry edited after the checkpoint: it fails, the others hold.
    let edited = entries[1]["index"].as_u64().unwrap();
    tamper(&gw.data_dir.path().join("store"), edited).await;
    open(&tour.c, &tour.base, "#/checkpoint").await;
    tour.visit(&format!("#/history/{dead}"), proofs, "the proofs again")
        .await;
    let expected: Vec<Value> = entries
        .iter()
        .map(|e| json!([e["index"], if e["index"] == edited { "fail" } else { "ok" }]))
        .collect();
    assert_eq!(
        tour.js(verdicts).await,
        json!(expected),
        "the edited entry fails, alone"
    );
    assert_eq!(
        tour.js(&format!("{proofs}.classList.contains('fail')"))
            .await,
        true
    );
    tour.keep("history-tampered", true).await;

    tour.visit(
        "#/manifest",
        "document.querySelector('[data-route] .policy li')",
        "the manifest",
    )
    .await;
    tour.keep("manifest", true).await;
}

/// Every console response carries the CSP and the other hardening headers,
/// and a page load's assets are not refused by the per-address limit on
/// requests without credentials (the example's 10/s, burst 20).
#[tokio::test]
async fn console_responses_are_hardened_and_not_throttled_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    config.server.front.unauthenticated_limits.rate_per_second = 10.0;
    config.server.front.unauthenticated_limits.burst = 20;
    let gw = TestGateway::start_with(config, dir).await;
    for _ in 0..10 {
        for path in [
            "/console/",
            "/console/app.js",
            "/console/verify.js",
            "/console/i18n.js",
            "/console/console.css",
            "/console/favicon.svg",
        ] {
            let answer = gw.get(path, None).await;
            assert_eq!(answer.status(), 200, "{path}");
            let headers = answer.headers();
            assert_eq!(
                headers["content-security-policy"],
                registry_gateway::console::CSP
            );
            assert!(registry_gateway::console::CSP.contains("script-src 'self'"));
            assert!(registry_gateway::console::CSP.contains("frame-ancestors 'none'"));
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["referrer-policy"], "no-referrer");
        }
    }
    assert_eq!(gw.get("/console/nothing.js", None).await.status(), 404);
    // The API itself is still limited per address without credentials.
    let mut refused = false;
    for _ in 0..40 {
        refused |= gw.get("/v1/whoami", None).await.status() == 429;
    }
    assert!(refused, "requests without credentials are still limited");
    // whoami answers the caller, nothing else.
    let me: Value = gw
        .get("/v1/whoami", Some(AUDITOR))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"client": "demo-auditor", "role": "auditor"}));
    gw.stop().await;
}

/// The console's verifier (`verify.js`, the code that runs in the auditor's
/// browser) agrees with the core's Merkle tree and signed notes, run by
/// Node's Web Crypto: every inclusion proof of trees of 1..=33 leaves
/// verifies, and the same proof fails for another leaf, index or root; a
/// signed checkpoint opens with its key and not after an edit or with
/// another key. Node is one of the oracles `tools/install-oracles` installs.
#[test]
fn the_browser_verifier_agrees_with_the_core() {
    use registry_gateway::audit::checkpoint::{Checkpoint, NoteSigner};
    use registry_gateway::audit::merkle::{Tree, leaf_hash};

    let b64 = |h: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(h)
    };
    let mut cases = Vec::new();
    for size in 1..=33u64 {
        let entries: Vec<Vec<u8>> = (0..size)
            .map(|i| format!("{{\"entry\":{i}}}").into_bytes())
            .collect();
        let tree = Tree::new(entries.iter().map(|e| leaf_hash(e)).collect());
        let root = tree.root(size).unwrap();
        for index in 0..size {
            let path: Vec<String> = tree
                .inclusion_proof(index, size)
                .unwrap()
                .iter()
                .map(|h| b64(h))
                .collect();
            cases.push(
                json!({"index": index, "size": size, "entry": b64(&entries[index as usize]),
                              "other": b64(&entries[((index + 1) % size) as usize]),
                              "path": path, "root": b64(&root)}),
            );
        }
    }
    let signer = NoteSigner::from_seed("registry-gateway.example/log", &[7u8; 32]).unwrap();
    let other = NoteSigner::from_seed("registry-gateway.example/log", &[8u8; 32]).unwrap();
    let body = Checkpoint {
        origin: "registry-gateway.example/log".into(),
        size: 5,
        root: [3u8; 32],
    }
    .body();
    let note = signer.sign(&body).unwrap();
    let input = json!({
        "cases": cases,
        "key": signer.verifier().to_line(),
        "otherKey": other.verifier().to_line(),
        "note": note,
        "edited": note.replacen("\n5\n", "\n6\n", 1),
    });
    let script = format!(
        r#"
import * as v from {module:?};
import {{ readFileSync }} from "node:fs";
const input = JSON.parse(readFileSync(0, "utf8"));
const out = {{ ok: 0, wrongly: [] }};
for (const c of input.cases) {{
  const path = c.path.map(v.fromBase64), root = v.fromBase64(c.root);
  const leaf = await v.leafHash(v.fromBase64(c.entry));
  if (await v.verifyInclusion(c.index, c.size, leaf, path, root)) out.ok++; else out.wrongly.push(["refused", c.index, c.size]);
  if (c.size > 1 && await v.verifyInclusion(c.index, c.size, await v.leafHash(v.fromBase64(c.other)), path, root)) out.wrongly.push(["other leaf", c.index, c.size]);
  if (c.size > 1 && await v.verifyInclusion((c.index + 1) % c.size, c.size, leaf, path, root)) out.wrongly.push(["other index", c.index, c.size]);
  if (await v.verifyInclusion(c.index, c.size, leaf, path, await v.sha256(root))) out.wrongly.push(["other root", c.index, c.size]);
}}
const key = await v.parseKey(input.key);
const cp = await v.openCheckpoint(input.note, key);
out.checkpoint = [cp.origin, cp.size, v.toBase64(cp.root)];
for (const [label, note, k] of [["edited", input.edited, key], ["other key", input.note, await v.parseKey(input.otherKey)]]) {{
  try {{ await v.openCheckpoint(note, k); out.wrongly.push(["opened", label]); }} catch (e) {{ out[label] = e.message; }}
}}
try {{ await v.parseKey(input.key.replace(/\+[0-9a-f]{{8}}\+/, "+00000000+")); out.wrongly.push(["key with a wrong hash"]); }} catch (e) {{ out.keyHash = e.message; }}
console.log(JSON.stringify(out));
"#,
        module = format!(
            "file://{}",
            repo_path("src/console/assets/verify.js").display()
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.mjs");
    std::fs::write(&file, script).unwrap();
    let mut child = Command::new("node")
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (bash tools/install-oracles installs it)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(out["wrongly"], json!([]), "{out}");
    assert_eq!(
        out["ok"].as_u64().unwrap() as usize,
        input["cases"].as_array().unwrap().len()
    );
    assert_eq!(
        out["checkpoint"],
        json!(["registry-gateway.example/log", 5, b64(&[3u8; 32])])
    );
    assert_eq!(out["edited"], "signature");
    assert_eq!(out["other key"], "not-signed");
    assert_eq!(out["keyHash"], "key-hash");
}
