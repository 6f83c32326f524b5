//! The delivery engine against the mock registries, over real HTTP: pace,
//! Retry-After, outage and recovery, dead letters and replay, token renewal,
//! receipts in the status. Each test runs its own mocks and gateway on
//! 127.0.0.1:0.

#[path = "it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, AGENCY, TestGateway, config_with, example_record, opencrvs_destination};
use registry_mocks as mocks;
use registry_mocks::{
    self, Endpoint, Fault, MockConfig, MockKind, OpencrvsSettings, Outcome, RunningMock,
};
use serde_json::{Value, json};

async fn gateway_for(mock: &RunningMock, extra: &str) -> TestGateway {
    gateway_with(
        &opencrvs_destination(mock, extra),
        ("birth-notification", "opencrvs"),
    )
    .await
}

/// The example birth notification as the `n`th child: a distinct source id,
/// so every record is its own subject and its own registration.
fn birth(n: usize) -> Vec<u8> {
    let mut record = example_record("birth-notification");
    record["source_record_id"] = json!(format!("EMR-TEST-{n:05}"));
    serde_json::to_vec(&record).unwrap()
}

/// Version `version` of the first child's record (a correction resends it).
fn first_child(version: i64) -> Vec<u8> {
    let mut record = serde_json::from_slice::<Value>(&birth(0)).unwrap();
    record["record_version"] = json!(version);
    serde_json::to_vec(&record).unwrap()
}

/// Submit `count` records, 16 at a time; returns their ids.
async fn push(gateway: &TestGateway, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let answers = futures::future::join_all(
            chunk
                .iter()
                .map(|n| gateway.submit("canonical", Some(AGENCY), None, birth(*n))),
        )
        .await;
        for a in answers {
            assert_eq!(a.status(), 202);
            let body: Value = a.json().await.unwrap();
            ids.push(body["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

fn registered(mock: &RunningMock) -> Vec<mocks::Arrival> {
    mock.submissions()
        .into_iter()
        .filter(|a| a.outcome == Outcome::Accepted)
        .collect()
}

/// A gateway with one destination (TOML) and one route to it, data in a fresh folder.
async fn gateway_with(destination: &str, route: (&str, &str)) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), destination, &[route]);
    TestGateway::start_with(config, dir).await
}

/// Wait until `done` holds, or fail after `limit`.
async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn route_status(gateway: &TestGateway, id: &str) -> Value {
    let status: Value = gateway
        .get(&format!("/v1/records/{id}"), Some(AGENCY))
        .await
        .json()
        .await
        .unwrap();
    status["routes"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_records_at_twenty_per_second_with_burst_five() {
    let mock = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let gateway = gateway_for(
        &mock,
        "limits = { rate_per_second = 20, burst = 5, max_in_flight = 4 }",
    )
    .await;
    push(&gateway, 200).await;
    wait_for(Duration::from_secs(60), "200 registrations", || {
        registered(&mock).len() >= 200
    })
    .await;
    let arrivals = mock.submissions();
    assert_eq!(arrivals.len(), 200, "no request beyond the 200 needed");
    assert_eq!(mock.records().len(), 200, "each child registered once");
    let first = arrivals[0].at;
    let span = arrivals[199].at - first;
    // GCRA: the burst goes at once, the other 195 at 20/s: 9.75 s.
    assert!(
        span >= Duration::from_millis(9_000) && span <= Duration::from_secs(14),
        "200 records took {span:?}"
    );
    let worst = arrivals
        .iter()
        .map(|a| {
            arrivals
                .iter()
                .filter(|b| b.at >= a.at && b.at < a.at + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(worst <= 25, "a 1-second window held {worst} arrivals");
    gateway.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_before_retry_after_expires() {
    let mock = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    mock.faults().push(Fault::Status503 {
        retry_after: Some(Duration::from_secs(3)),
    });
    let gateway = gateway_for(&mock, "limits = { max_in_flight = 1 }").await;
    push(&gateway, 5).await;
    wait_for(Duration::from_secs(30), "5 registrations", || {
        registered(&mock).len() >= 5
    })
    .await;
    let arrivals = mock.submissions();
    let refused = arrivals
        .iter()
        .position(|a| a.outcome == Outcome::Fault)
        .expect("the injected 503 was answered");
    let after = &arrivals[refused + 1..];
    assert!(!after.is_empty());
    for a in after {
        assert!(
            a.at - arrivals[refused].at >= Duration::from_secs(3),
            "a request left {:?} after a 503 with Retry-After: 3",
            a.at - arrivals[refused].at
        );
    }
    assert_eq!(mock.records().len(), 5);
    gateway.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_for_a_while_gets_everything_once_it_is_back() {
    let mock = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    mock.faults().push(Fault::ConnectionReset.until_cleared());
    let gateway = gateway_for(
        &mock,
        "retry = { initial_backoff_ms = 100, max_backoff_secs = 1, breaker_failures = 3, breaker_cooldown_secs = 1, max_attempts = 100 }",
    )
    .await;
    let ids = push(&gateway, 20).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during_outage = mock.submissions().len();
    // The breaker holds the destination: a few probes, not 20 records retried in a loop.
    assert!(
        during_outage >= 3,
        "the outage was probed ({during_outage})"
    );
    assert!(
        during_outage <= 20,
        "{during_outage} requests hit a registry that was down for 4 s"
    );
    // Records wait through the outage and say why. Which of them the breaker's
    // probes have tried by now is timing (a claimed record can be released
    // untried while the breaker is open), so look for the first one tried.
    let started = Instant::now();
    let tried = 'tried: loop {
        for id in &ids {
            let route = route_status(&gateway, id).await;
            assert_eq!(route["status"], "pending", "{id} during the outage");
            if !route["last_error"].is_null() {
                break 'tried route;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no record shows an error after the outage was probed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        tried["last_error"]
            .as_str()
            .unwrap()
            .starts_with("retryable"),
        "{tried}"
    );
    mock.faults().clear();
    wait_for(Duration::from_secs(30), "20 registrations", || {
        registered(&mock).len() >= 20
    })
    .await;
    assert_eq!(mock.records().len(), 20);
    for id in &ids {
        let route = route_status(&gateway, id).await;
        for _ in 0..50 {
            if route["status"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let route = route_status(&gateway, &ids[19]).await;
    assert_eq!(route["status"], "delivered");
    assert!(route["receipt"]["reference"].is_string(), "{route}");
    gateway.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_a_dead_letter_and_replays_after_a_fix() {
    // The registry has no birth event configured: every notification is a 400.
    let mut broken = MockConfig::new(MockKind::Opencrvs);
    broken.opencrvs = OpencrvsSettings {
        event_types: ["death".to_string()].into_iter().collect(),
        ..OpencrvsSettings::default()
    };
    let mock = mocks::start(broken).await.unwrap();
    let addr = mock.addr();
    let gateway = gateway_for(&mock, "").await;
    // Three versions of one child's record: they must reach the registry in order.
    let mut ids = Vec::new();
    for version in 1..=3 {
        let answer = gateway
            .submit("canonical", Some(AGENCY), None, first_child(version))
            .await;
        assert_eq!(answer.status(), 202);
        let body: Value = answer.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let admin = |path: &str| {
        gateway
            .http
            .get(gateway.url(path))
            .bearer_auth(ADMIN)
            .send()
    };
    let started = Instant::now();
    let dead = loop {
        let body: Value = admin("/v1/admin/dead-letters")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["dead_letters"].as_array().unwrap().len() == 3 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letters: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        mock.submissions().len(),
        3,
        "a permanent refusal is not retried"
    );
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["destination"], "opencrvs");
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .starts_with("permanent"),
        "{letter}"
    );
    assert_eq!(route_status(&gateway, &ids[0]).await["status"], "dead");

    // The registry is fixed (birth configured) and restarted where it was.
    mock.stop().await;
    let mut fixed = MockConfig::new(MockKind::Opencrvs);
    fixed.listen = addr;
    let mock = mocks::start(fixed).await.unwrap();
    let agency_replay = gateway
        .http
        .post(gateway.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(AGENCY)
        .json(&json!({"destination": "opencrvs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(agency_replay.status(), 403, "only an admin replays");
    let replay: Value = gateway
        .http
        .post(gateway.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({"destination": "opencrvs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["replayed"].as_array().unwrap().len(), 3);
    // Replayed in their original order: version 1 registers the child;
    // versions 2 and 3 correct it, and an event not registered yet takes no
    // correction from a system client, so they are referred to the
    // registrar with its tracking id: never a second event.
    let first = wait_for_status(&gateway, &ids[0], "delivered").await;
    for later in &ids[1..] {
        let referred = wait_for_status(&gateway, later, "referred").await;
        assert_eq!(
            referred["receipt"]["reference"],
            first["receipt"]["reference"]
        );
        assert_eq!(
            referred["receipt"]["details"]["event_id"],
            first["receipt"]["details"]["event_id"]
        );
    }
    let order: Vec<String> = mock.records().iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        order,
        [format!(
            "registry-gateway:{}:v1:birth-notification-to-opencrvs",
            ids[0]
        )]
    );
    gateway.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_renewed_before_it_expires() {
    let mut config = MockConfig::new(MockKind::Opencrvs);
    config.credentials.token_lifetime = Duration::from_secs(2);
    let mock = mocks::start(config).await.unwrap();
    let gateway = gateway_for(
        &mock,
        "limits = { rate_per_second = 2, burst = 1, max_in_flight = 1 }",
    )
    .await;
    push(&gateway, 10).await;
    wait_for(Duration::from_secs(30), "10 registrations", || {
        registered(&mock).len() >= 10
    })
    .await;
    let arrivals = mock.arrivals();
    let tokens = arrivals
        .iter()
        .filter(|a| a.endpoint == Endpoint::Token)
        .count();
    assert!(
        tokens >= 2,
        "a 2-second token over ~5 s of sending is renewed ({tokens} issued)"
    );
    let refused = arrivals
        .iter()
        .filter(|a| a.endpoint == Endpoint::Submit && a.outcome == Outcome::Unauthorized)
        .count();
    assert_eq!(refused, 0, "renewal happens before expiry, not after a 401");
    gateway.stop().await;
    mock.stop().await;
}

/// A Primero destination named `primero` pointing at `mock` (HTTP Basic).
fn primero_destination(mock: &RunningMock) -> String {
    format!(
        "[destinations.primero]\nkind = \"primero\"\nurl = \"{}\"\n\
         auth = {{ mode = \"basic\", user = \"registry-gateway\", password = \"mock-password\" }}\n\
         retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1, breaker_cooldown_secs = 1 }}\n",
        mock.submit_url(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_after_acceptance_cancels_what_has_not_left() {
    let mock = mocks::start(MockConfig::new(MockKind::Primero))
        .await
        .unwrap();
    // The registry is down, so the case waits in the gateway.
    mock.faults()
        .push(Fault::Status503 { retry_after: None }.until_cleared());
    let gateway = gateway_with(
        &primero_destination(&mock),
        ("child-protection-case", "primero"),
    )
    .await;
    // A consented case of a child who is neither unaccompanied nor separated:
    // it goes on CONSENT alone.
    let path = common::repo_path("conformance/cases/34-primero-separated-consented/input.json");
    let mut case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    case["data"]["protection_status"] = json!("other");
    let answer = gateway
        .submit(
            "primero",
            Some(AGENCY),
            None,
            serde_json::to_vec(&case).unwrap(),
        )
        .await;
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["routes"][0]["decision"], "deliver", "{answer}");
    assert_eq!(answer["routes"][0]["legal_basis"], "CONSENT", "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();

    // Another agency cannot withdraw for this child.
    let foreign = gateway
        .http
        .post(gateway.url(&format!("/v1/records/{id}/consent")))
        .bearer_auth(common::AGENCY_2)
        .json(&json!({"status": "withdrawn", "given_by": "caregiver"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let withdrawn = gateway
        .http
        .post(gateway.url(&format!("/v1/records/{id}/consent")))
        .bearer_auth(AGENCY)
        .json(&json!({"status": "withdrawn", "given_by": "caregiver"}))
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 202);

    // The consent decision reads back as an R4 Consent, naming no one.
    let fhir = gateway
        .get(&format!("/v1/records/{id}/consent"), Some(AGENCY))
        .await;
    assert_eq!(fhir.status(), 200);
    let fhir: Value = fhir.json().await.unwrap();
    assert_eq!(fhir["resourceType"], "Consent");
    assert_eq!(
        fhir["patient"]["identifier"]["system"],
        "urn:registry-gateway:subject"
    );

    mock.faults().clear();
    let started = Instant::now();
    let route = loop {
        let route = route_status(&gateway, &id).await;
        if route["status"] == "cancelled" {
            break route;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not cancelled: {route}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        route["last_error"].as_str().unwrap().contains("withdrawn"),
        "{route}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        mock.records().is_empty(),
        "nothing reached the registry after the withdrawal"
    );
    gateway.stop().await;
    mock.stop().await;
}

/// X-Road: `xrd:id` is new for every HTTP request (examplia-civil-registry
/// README, header rules). A rate-limited request gives its attempt back, yet
/// it was a request: the one after it must not reuse its `xrd:id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_a_rate_limited_one_has_a_new_xroad_id() {
    let mock = mocks::start(MockConfig::new(MockKind::Examplia))
        .await
        .unwrap();
    mock.faults().push(
        Fault::Status429 {
            retry_after: Duration::from_millis(300),
        }
        .times(1),
    );
    let gateway = gateway_with(
        &format!(
            "[destinations.examplia-crvs]\nkind = \"examplia-crvs\"\nurl = \"{}\"\n\
             retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1 }}\n",
            mock.submit_url()
        ),
        ("birth-notification", "examplia-crvs"),
    )
    .await;
    let answer = gateway
        .submit("canonical", Some(AGENCY), None, birth(1))
        .await;
    assert_eq!(answer.status(), 202);
    wait_for(Duration::from_secs(20), "the registration", || {
        !registered(&mock).is_empty()
    })
    .await;
    let arrivals = mock.submissions();
    assert_eq!(
        arrivals.len(),
        2,
        "one rate-limited request, then one accepted"
    );
    assert_eq!(
        arrivals[0].detail.as_deref(),
        Some("Server.RateLimited"),
        "{arrivals:?}"
    );
    // Same NotificationId and content: only the header's xrd:id may differ,
    // and it must.
    assert_eq!(arrivals[0].idempotency_key, arrivals[1].idempotency_key);
    assert_ne!(
        arrivals[0].body_sha256, arrivals[1].body_sha256,
        "the second request reused the first one's xrd:id"
    );
    gateway.stop().await;
}

// --- issue 10: outcomes at registries without idempotency, and corrections ---

/// An OpenCRVS 1.x destination named `opencrvs-v1` pointing at `mock`.
async fn v1_gateway_for(mock: &RunningMock) -> TestGateway {
    let destination = format!(
        "[destinations.opencrvs-v1]\nkind = \"opencrvs-v1\"\nurl = \"{}\"\n\
         auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}\n{}\n\
         retry = {{ initial_backoff_ms = 100, max_backoff_secs = 1 }}\n",
        mock.submit_url(),
        mock.token_url().unwrap(),
        common::example_locations_line()
    );
    gateway_with(&destination, ("birth-notification", "opencrvs-v1")).await
}

async fn status_of(gateway: &TestGateway, id: &str) -> Value {
    gateway
        .get(&format!("/v1/records/{id}"), Some(AGENCY))
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_for_status(gateway: &TestGateway, id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let route = route_status(gateway, id).await;
        if route["status"] == status {
            return route;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never {status}: {}",
            status_of(gateway, id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit_one(gateway: &TestGateway, body: Vec<u8>) -> String {
    let answer = gateway.submit("canonical", Some(AGENCY), None, body).await;
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// OpenCRVS 1.x honours no idempotency key: a resend after a lost answer is
/// a second declaration. The gateway parks such a delivery for an operator
/// and sends nothing more until the operator replays it by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_at_opencrvs_1x_is_parked_not_resent() {
    let mock = mocks::start(MockConfig::new(MockKind::OpencrvsV1))
        .await
        .unwrap();
    mock.faults().push(Fault::ConnectionReset.times(1));
    let gateway = v1_gateway_for(&mock).await;
    let id = submit_one(&gateway, birth(1)).await;
    let parked = wait_for_status(&gateway, &id, "parked").await;
    assert!(
        parked["last_error"]
            .as_str()
            .unwrap()
            .starts_with("outcome unknown"),
        "{parked}"
    );
    // Nothing more is sent, however long it waits.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mock.submissions().len(), 1, "a parked delivery was resent");
    let listed: Value = gateway
        .get("/v1/admin/parked?destination=opencrvs-v1", Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    let letters = listed["parked"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    // A bulk replay of the destination leaves it alone.
    let bulk: Value = gateway
        .http
        .post(gateway.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({"destination": "opencrvs-v1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bulk["replayed"], json!([]), "{bulk}");
    // The operator found no declaration at the registry: replay it by id.
    let delivery = letters[0]["delivery_id"].clone();
    let replayed = gateway
        .http
        .post(gateway.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({"ids": [delivery]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    wait_for_status(&gateway, &id, "delivered").await;
    assert_eq!(mock.records().len(), 1);
    gateway.stop().await;
}

/// OpenCRVS 2.x: a NOTIFY the country configuration has not decided is held
/// (`awaiting`), then checked again with the same transactionId until it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_notify_awaits_and_is_checked_again() {
    let mut config = MockConfig::new(MockKind::Opencrvs);
    config.opencrvs.confirmation = mocks::Confirmation::Defer {
        after: Some(Duration::from_millis(1500)),
    };
    let mock = mocks::start(config).await.unwrap();
    let gateway = gateway_for(
        &mock,
        "retry = { initial_backoff_ms = 100, max_backoff_secs = 1 }",
    )
    .await;
    let id = submit_one(&gateway, birth(1)).await;
    let awaiting = wait_for_status(&gateway, &id, "awaiting").await;
    assert_eq!(awaiting["receipt"]["status"], "REQUESTED", "{awaiting}");
    let delivered = wait_for_status(&gateway, &id, "delivered").await;
    assert_eq!(delivered["receipt"]["status"], "ACCEPTED", "{delivered}");
    assert_eq!(mock.records().len(), 1, "one event, checked again");
    gateway.stop().await;
}

/// A corrected record never makes a second event: on a registered 2.x event
/// it files a correction request; on one not registered yet it ends as
/// `referred` with the tracking id, for the registrar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_at_opencrvs_2x_requests_a_correction_or_is_referred() {
    for registered in [true, false] {
        let mut config = MockConfig::new(MockKind::Opencrvs);
        config.opencrvs.registrar_registers = registered;
        let mock = mocks::start(config).await.unwrap();
        let gateway = gateway_for(&mock, "").await;
        let first = submit_one(&gateway, first_child(1)).await;
        let delivered = wait_for_status(&gateway, &first, "delivered").await;
        let tracking = delivered["receipt"]["reference"].clone();
        let second = submit_one(&gateway, first_child(2)).await;
        let outcome = if registered {
            let route = wait_for_status(&gateway, &second, "delivered").await;
            assert_eq!(
                route["receipt"]["status"], "CORRECTION_REQUESTED",
                "{route}"
            );
            route
        } else {
            let route = wait_for_status(&gateway, &second, "referred").await;
            assert!(
                route["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("not registered"),
                "{route}"
            );
            route
        };
        assert_eq!(outcome["receipt"]["reference"], tracking, "{outcome}");
        assert_eq!(mock.records().len(), 1, "a correction made a second event");
        gateway.stop().await;
    }
}

/// OpenCRVS 1.x gives a system client no correction: a corrected record is
/// referred to the registrar with the tracking id, never declared again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_at_opencrvs_1x_is_referred() {
    let mock = mocks::start(MockConfig::new(MockKind::OpencrvsV1))
        .await
        .unwrap();
    let gateway = v1_gateway_for(&mock).await;
    let first = submit_one(&gateway, first_child(1)).await;
    let delivered = wait_for_status(&gateway, &first, "delivered").await;
    let second = submit_one(&gateway, first_child(2)).await;
    let referred = wait_for_status(&gateway, &second, "referred").await;
    assert_eq!(
        referred["receipt"]["reference"],
        delivered["receipt"]["reference"]
    );
    assert_eq!(mock.records().len(), 1);
    gateway.stop().await;
}

/// Primero: a corrected case PATCHes the case its first version created,
/// rows merged by their stable unique_id; never a second case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_at_primero_patches_the_first_versions_case() {
    let mock = mocks::start(MockConfig::new(MockKind::Primero))
        .await
        .unwrap();
    let gateway = gateway_with(
        &primero_destination(&mock),
        ("child-protection-case", "primero"),
    )
    .await;
    let version = |v: i64| {
        let mut case = example_record("child-protection-case");
        case["record_version"] = json!(v);
        if v > 1 {
            case["risk_level"] = json!("high");
        }
        serde_json::to_vec(&case).unwrap()
    };
    let first = submit_one(&gateway, version(1)).await;
    let created = wait_for_status(&gateway, &first, "delivered").await;
    assert_eq!(created["receipt"]["status"], "ACCEPTED", "{created}");
    let second = submit_one(&gateway, version(2)).await;
    let updated = wait_for_status(&gateway, &second, "delivered").await;
    assert_eq!(updated["receipt"]["status"], "UPDATED", "{updated}");
    assert_eq!(
        updated["receipt"]["reference"],
        created["receipt"]["reference"]
    );
    assert_eq!(mock.records().len(), 1, "a correction made a second case");
    let methods: Vec<String> = mock
        .submissions()
        .iter()
        .map(|a| a.method.clone())
        .collect();
    assert_eq!(methods, ["POST", "PATCH"], "{methods:?}");
    gateway.stop().await;
}

/// Examplia's service takes no amendment of an accepted notification
/// (README, receipts and idempotency, rule 5), and a second NotificationId
/// would notify the birth twice: a corrected record is referred to the
/// registrar with the RegistryReference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_at_examplia_is_referred_to_the_registrar() {
    let mock = mocks::start(MockConfig::new(MockKind::Examplia))
        .await
        .unwrap();
    let gateway = gateway_with(
        &format!(
            "[destinations.examplia-crvs]\nkind = \"examplia-crvs\"\nurl = \"{}\"\n",
            mock.submit_url()
        ),
        ("birth-notification", "examplia-crvs"),
    )
    .await;
    let first = submit_one(&gateway, first_child(1)).await;
    let delivered = wait_for_status(&gateway, &first, "delivered").await;
    let second = submit_one(&gateway, first_child(2)).await;
    let referred = wait_for_status(&gateway, &second, "referred").await;
    assert_eq!(
        referred["receipt"]["reference"],
        delivered["receipt"]["reference"]
    );
    assert_eq!(mock.submissions().len(), 1, "the correction was sent");
    gateway.stop().await;
}
