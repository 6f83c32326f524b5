//! At-least-once delivery through crashes: while records flow, the gateway
//! process is killed with SIGKILL at random moments and restarted on the same
//! store. At the end every accepted record has reached every registry of its
//! routes, and no registry registered an idempotency key twice.

#[path = "it/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{config_with, push_until, registrations, spawn_gateway};
use rand::{Rng, SeedableRng};
use registry_mocks::{self as mocks, MockConfig, MockKind, Outcome, RunningMock};

const KILLS: usize = 6;

fn destinations(opencrvs: &RunningMock, fhir: &RunningMock) -> String {
    let auth = |m: &RunningMock| {
        format!(
            "auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}",
            m.token_url().unwrap()
        )
    };
    let retry = "retry = { initial_backoff_ms = 100, max_backoff_secs = 1, max_attempts = 1000 }\nlimits = { max_in_flight = 8 }";
    format!(
        "[destinations.opencrvs]\nkind = \"opencrvs\"\nurl = \"{}\"\n{}\n{}\n{retry}\n\n\
         [destinations.fhir-r4]\nkind = \"fhir-r4\"\nurl = \"{}\"\n{}\n{retry}\n",
        opencrvs.submit_url(),
        auth(opencrvs),
        common::example_locations_line(),
        fhir.submit_url(),
        auth(fhir)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let seed: u64 = rand::random();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let opencrvs = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let fhir = mocks::start(MockConfig::new(MockKind::FhirR4))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    config_with(
        dir.path(),
        &destinations(&opencrvs, &fhir),
        &[
            ("birth-notification", "opencrvs"),
            ("birth-notification", "fhir-r4"),
        ],
    );
    let config_path = dir.path().join("gateway.toml");

    // Slow answers keep requests on the wire when the process dies, so that
    // restarts resend deliveries the registry may already have.
    opencrvs
        .faults()
        .push(mocks::Fault::Latency(Duration::from_millis(150)).until_cleared());
    let mut accepted = BTreeSet::new();
    for round in 0..KILLS {
        let mut gateway = spawn_gateway(&config_path, None, "error");
        let stop = Arc::new(AtomicBool::new(false));
        let pushers: Vec<_> = (0..2)
            .map(|w| {
                tokio::spawn(push_until(
                    gateway.base.clone(),
                    format!("{}", round * 10 + w),
                    stop.clone(),
                    Duration::from_millis(30),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        gateway.child.kill().expect("SIGKILL");
        gateway.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for p in pushers {
            accepted.extend(p.await.unwrap());
        }
    }
    assert!(
        accepted.len() >= 50,
        "too few records flowed: {}",
        accepted.len()
    );

    // The last restart runs to the end: everything accepted must arrive.
    opencrvs.faults().clear();
    let mut gateway = spawn_gateway(&config_path, None, "error");
    let started = Instant::now();
    let expected_keys: BTreeSet<String> = accepted
        .iter()
        .map(|id| format!("registry-gateway:{id}:v1:birth-notification-to-opencrvs"))
        .collect();
    loop {
        let at_opencrvs: BTreeSet<String> = opencrvs.records().into_iter().map(|r| r.key).collect();
        let missing = expected_keys.difference(&at_opencrvs).count();
        if missing == 0 && fhir.records().len() >= accepted.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{missing} accepted records never reached OpenCRVS; FHIR holds {} of {}",
            fhir.records().len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let stragglers (records stored but not acknowledged before a kill) finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();

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
        // Every registration the registry answered is one of its records (it
        // may hold a few more: registered while the gateway died, unanswered).
        let held: BTreeSet<String> = mock.records().into_iter().map(|r| r.key).collect();
        let answered: BTreeSet<String> = registrations(mock).into_keys().collect();
        assert!(
            answered.is_subset(&held),
            "{}: a registration was answered but not kept",
            mock.kind()
        );
    }
    let mut sends: BTreeMap<String, usize> = BTreeMap::new();
    for a in opencrvs.submissions() {
        *sends
            .entry(a.idempotency_key.unwrap_or_default())
            .or_insert(0) += 1;
    }
    let resent = sends.values().filter(|n| **n > 1).count();
    let resends = opencrvs
        .submissions()
        .iter()
        .filter(|a| a.outcome == Outcome::Duplicate)
        .count();
    // Reported, not asserted: whether a kill lands while a request is on the
    // wire is chance (in runs here: 0 to 6 keys resent per run).
    eprintln!("{resent} keys were sent to OpenCRVS more than once (interrupted by a kill)");
    eprintln!(
        "{} records accepted over {KILLS} SIGKILLs; OpenCRVS holds {}, FHIR {}; {resends} resends answered as duplicates",
        accepted.len(),
        opencrvs.records().len(),
        fhir.records().len()
    );
    opencrvs.stop().await;
    fhir.stop().await;
}
