//! Three gateway processes on one PostgreSQL database (#14). Records are
//! pushed to all three while one is killed with SIGKILL and restarted again
//! and again. At the end: every acknowledged record reached every registry
//! of its routes exactly once; the instances together never exceeded a
//! registry's limit in any 1-second window (arrivals timed at the mock);
//! and the deployment has one exchange log whose checkpoints verify with
//! `registry-gateway audit verify`, whichever instance signed them.

#[path = "it/common/mod.rs"]
mod common;
#[path = "../src/store/postgres/testing.rs"]
#[allow(dead_code)]
mod pg_testing;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    ADMIN, AUDITOR, GatewayProcess, config_with, push_until, registrations, spawn_gateway,
};
use registry_mocks::{self as mocks, MockConfig, MockKind, RunningMock};

const KILLS: usize = 10;
/// The registries' published limit in this test: 20 requests/s, burst 5,
/// so at most 25 in any 1 s window.
const REGISTRY_RATE: f64 = 20.0;
const REGISTRY_BURST: u32 = 5;
const ORIGIN: &str = "examplia.gateway/exchange-log";

fn limited(kind: MockKind) -> MockConfig {
    let mut config = MockConfig::new(kind);
    config.limits.rate_per_sec = REGISTRY_RATE;
    config.limits.burst = REGISTRY_BURST;
    config
}

/// Both destinations paced a little under the registries' limit (network
/// jitter between admission and arrival), short timeouts so a killed
/// instance's leases run out within the test.
fn destinations(opencrvs: &RunningMock, fhir: &RunningMock) -> String {
    let auth = |m: &RunningMock| {
        format!(
            "auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}",
            m.token_url().unwrap()
        )
    };
    let common = "timeout_secs = 1\nretry = { initial_backoff_ms = 100, max_backoff_secs = 1, max_attempts = 1000 }\nlimits = { rate_per_second = 18, burst = 4, max_in_flight = 4 }";
    format!(
        "[destinations.opencrvs]\nkind = \"opencrvs\"\nurl = \"{}\"\n{}\n{}\n{common}\n\n\
         [destinations.fhir-r4]\nkind = \"fhir-r4\"\nurl = \"{}\"\n{}\n{common}\n",
        opencrvs.submit_url(),
        auth(opencrvs),
        common::example_locations_line(),
        fhir.submit_url(),
        auth(fhir)
    )
}

/// The config every instance runs: the store on PostgreSQL, one KEK and one
/// checkpoint key for all, checkpoints every second.
fn shared_config(dir: &Path, url: &str, destinations: &str) -> PathBuf {
    config_with(
        dir,
        destinations,
        &[
            ("birth-notification", "opencrvs"),
            ("birth-notification", "fhir-r4"),
        ],
    );
    let path = dir.join("gateway.toml");
    let kek = dir.join("kek.hex");
    std::fs::write(&kek, "cd".repeat(32)).unwrap();
    let key = dir.join("audit.key");
    let made = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["audit", "keygen", "--name", ORIGIN, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "[server]\n",
            &format!("[server]\ndatabase_url = {url:?}\n"),
            1,
        )
        .replace(
            "kek = \"generate\"",
            &format!("kek = \"file:{}\"\nkek_id = \"test\"", kek.display()),
        )
        .replace(
            "signing_key = \"generate\"",
            &format!("signing_key = \"file:{}\"", key.display()),
        )
        .replace(
            "checkpoint_interval_secs = 60",
            "checkpoint_interval_secs = 1",
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// The most submissions that arrived at `mock` within any 1 s.
fn busiest_second(mock: &RunningMock) -> usize {
    let at: Vec<Instant> = mock.submissions().iter().map(|a| a.at).collect();
    at.iter()
        .map(|start| {
            at.iter()
                .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn text(base: &str, path: &str, token: &str, post: bool) -> (u16, String) {
    let http = reqwest::Client::new();
    let url = format!("{base}{path}");
    let request = if post { http.post(url) } else { http.get(url) };
    let r = request.bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn kill(mut gateway: GatewayProcess) {
    gateway.child.kill().expect("SIGKILL");
    gateway.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database_survive_ten_sigkills() {
    let Some(schema) = pg_testing::PgSchema::create("three_instances_on_one_database").await else {
        return;
    };
    let started = Instant::now();
    let opencrvs = mocks::start(limited(MockKind::Opencrvs)).await.unwrap();
    let fhir = mocks::start(limited(MockKind::FhirR4)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path(), &schema.url(), &destinations(&opencrvs, &fhir));

    let mut instances: Vec<GatewayProcess> = (0..3)
        .map(|_| spawn_gateway(&config, None, "error"))
        .collect();
    let mut accepted = BTreeSet::new();
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let pushers: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, g)| {
                tokio::spawn(push_until(
                    g.base.clone(),
                    format!("{round}-{i}"),
                    stop.clone(),
                    Duration::from_millis(150),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(600 + 100 * (round as u64 % 5))).await;
        // One instance at a time, in turn: the checkpoint signer among them.
        let victim = round % 3;
        kill(instances.remove(victim));
        stop.store(true, Ordering::Relaxed);
        for p in pushers {
            accepted.extend(p.await.unwrap());
        }
        instances.insert(victim, spawn_gateway(&config, None, "error"));
    }
    assert!(
        accepted.len() >= 60,
        "too few records flowed: {}",
        accepted.len()
    );

    // Every acknowledged record reaches both registries (a killed
    // instance's leases run out first).
    let expected: BTreeSet<String> = accepted
        .iter()
        .map(|id| format!("registry-gateway:{id}:v1:birth-notification-to-opencrvs"))
        .collect();
    loop {
        let held: BTreeSet<String> = opencrvs.records().into_iter().map(|r| r.key).collect();
        let missing = expected.difference(&held).count();
        if missing == 0 && fhir.records().len() >= accepted.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "{missing} acknowledged records never reached OpenCRVS; FHIR holds {} of {}",
            fhir.records().len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // One exchange log: checkpoints verify, whichever instance signed.
    let mut signed = None;
    for gateway in &instances {
        let (status, note) = text(&gateway.base, "/v1/admin/audit/checkpoint", ADMIN, true).await;
        if status == 200 {
            signed = Some((gateway.base.clone(), note));
        }
    }
    let (base, note) = signed.expect("one instance signs");
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let (_, key) = text(&base, "/v1/audit/public-key", AUDITOR, false).await;
    let key_file = dir.path().join("public.key");
    std::fs::write(&key_file, key).unwrap();
    let mut verified = 0;
    while verified < size {
        let end = (verified + 1000).min(size);
        // Any instance serves the same log.
        let server = &instances[(verified / 1000) as usize % 3];
        let (status, bundle) = text(
            &server.base,
            &format!("/v1/audit/bundle?start={verified}&end={end}"),
            AUDITOR,
            false,
        )
        .await;
        assert_eq!(status, 200, "{bundle}");
        let file = dir.path().join(format!("bundle-{verified}.json"));
        std::fs::write(&file, bundle).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
            .args(["audit", "verify", "--bundle"])
            .arg(&file)
            .arg("--public-key")
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "entries {verified}..{end}: {out:?}");
        verified = end;
    }
    for g in instances {
        kill(g);
    }

    for mock in [&opencrvs, &fhir] {
        let twice: Vec<_> = registrations(mock)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(
            twice.is_empty(),
            "{} registered keys twice: {twice:?}",
            mock.kind()
        );
        let busiest = busiest_second(mock);
        let limit = (REGISTRY_RATE as usize) + REGISTRY_BURST as usize;
        assert!(
            busiest <= limit,
            "{}: {busiest} requests arrived within one second (limit {limit})",
            mock.kind()
        );
        eprintln!(
            "{}: busiest second held {busiest} requests (limit {limit})",
            mock.kind()
        );
    }
    eprintln!(
        "{} records acknowledged by 3 instances over {KILLS} SIGKILLs; OpenCRVS holds {}, FHIR {}; log of {size} entries verified; {:?}",
        accepted.len(),
        opencrvs.records().len(),
        fhir.records().len(),
        started.elapsed()
    );
    opencrvs.stop().await;
    fhir.stop().await;
}
