//! The transports against the mock registries on 127.0.0.1:0: payloads
//! rendered by the real pipeline from the example config, receipts read from
//! real answers, authentication renewed before expiry and after refusals,
//! faults classified by type; and mutual TLS against a small rustls server.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::common::{example_config_path, example_record};
use chrono::{DateTime, Utc};
use registry_gateway::config::{
    AuthConfig, Config, DestinationConfig, Overrides, RouteConfig, Secret,
};
use registry_gateway::delivery::transports::{
    self, Clock, Outbound, Receipt, ReceiptStatus, SendError, Transport,
};
use registry_gateway::mapping::formats::Encoded;
use registry_gateway::model::RecordId;
use registry_gateway::pipeline::Pipeline;
use registry_mocks as mocks;
use registry_mocks::{
    self, Endpoint, Fault, Limits, MockConfig, MockKind, Outcome, PrimeroAuth, RunningMock,
};
use serde_json::Value;

// --- payloads, rendered as the delivery workers will render them -------------

static PIPELINE: LazyLock<Pipeline> = LazyLock::new(|| {
    let config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    Pipeline::load(Arc::new(config)).unwrap_or_else(|e| panic!("{e}"))
});

fn route(name: &str) -> &'static RouteConfig {
    PIPELINE
        .config()
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name}"))
}

/// The example record of the route's type, rendered for the route.
fn render(route_name: &str) -> Encoded {
    render_record(
        route_name,
        &example_record(&route(route_name).record_type.to_string()),
    )
}

fn render_record(route_name: &str, record: &Value) -> Encoded {
    let route = route(route_name);
    let source = &PIPELINE.config().sources["canonical"];
    let canonical = PIPELINE.canonicalize(source, record).unwrap();
    let id = RecordId(uuid::Uuid::from_u128(0x5eed));
    let at = canonical.stated_time().unwrap();
    let ctx = PIPELINE.context(route, id, &canonical, at, 1, None);
    let routed = PIPELINE.route(route, std::borrow::Cow::Borrowed(&canonical), &ctx);
    routed
        .rendered
        .unwrap_or_else(|| panic!("{route_name}: the policy denies the example record"))
        .unwrap()
}

fn outbound<'a>(encoded: &'a Encoded, key: &'a str) -> Outbound<'a> {
    Outbound {
        body: &encoded.bytes,
        content_type: encoded.content_type,
        idempotency_key: key,
        record_key: key,
        record_version: 1,
        prior: None,
    }
}

// --- mocks and destinations ---------------------------------------------------

async fn start(kind: MockKind, setup: impl FnOnce(&mut MockConfig)) -> RunningMock {
    let mut config = MockConfig::new(kind);
    config.limits = Limits::none();
    config.maintenance = None;
    setup(&mut config);
    mocks::start(config).await.unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A clock the test moves by hand, for the mock and (when shared) the transport.
fn manual_clock() -> mocks::Clock {
    mocks::Clock::manual(at("2026-10-23T08:00:00Z"))
}

/// The example config's destination, pointed at `mock`.
fn destination(name: &str, mock: &RunningMock) -> DestinationConfig {
    let mut dest = PIPELINE.config().destinations[name].clone();
    dest.url = Some(mock.submit_url());
    dest.timeout = Duration::from_secs(10);
    dest.auth = match dest.auth {
        AuthConfig::ClientCredentials {
            client_id,
            client_secret,
            ..
        } => AuthConfig::ClientCredentials {
            token_url: mock.token_url().unwrap(),
            client_id,
            client_secret,
        },
        AuthConfig::PrimeroSession { user, password, .. } => AuthConfig::PrimeroSession {
            login_url: mock.token_url().unwrap(),
            user,
            password,
        },
        other => other,
    };
    dest
}

fn transport(dest: &DestinationConfig) -> Arc<dyn Transport> {
    transports::build(dest).unwrap_or_else(|e| panic!("{e}"))
}

/// A transport whose clock is the mock's.
fn transport_on(dest: &DestinationConfig, mock: &RunningMock) -> Arc<dyn Transport> {
    let clock = mock.clock().clone();
    transports::build_with_clock(dest, Clock::from_fn(move || clock.now())).unwrap()
}

fn arrivals_at(mock: &RunningMock, endpoint: Endpoint) -> Vec<mocks::Arrival> {
    mock.arrivals()
        .into_iter()
        .filter(|a| a.endpoint == endpoint)
        .collect()
}

fn outcomes(mock: &RunningMock, endpoint: Endpoint) -> Vec<Outcome> {
    arrivals_at(mock, endpoint)
        .iter()
        .map(|a| a.outcome)
        .collect()
}

fn retryable(e: &SendError) -> bool {
    matches!(e, SendError::Retryable { .. })
}

/// Send, then resend the same bytes: the registry keeps one record, and the
/// second receipt is a duplicate or names the same registration.
async fn delivers_once(kind: MockKind, name: &str, route: &str) -> (Receipt, Receipt, RunningMock) {
    let mock = start(kind, |_| {}).await;
    let t = transport(&destination(name, &mock));
    let payload = render(route);
    let first = t.send(&outbound(&payload, "key-1")).await.unwrap();
    let second = t.send(&outbound(&payload, "key-1")).await.unwrap();
    assert_eq!(first.status, ReceiptStatus::Accepted, "{name}: {first:?}");
    assert!(first.reference.is_some(), "{name}: {first:?}");
    assert_eq!(second.reference, first.reference, "{name}: {second:?}");
    let records = mock.records();
    assert_eq!(records.len(), 1, "{name}: the registry holds {records:?}");
    assert_eq!(
        Some(&records[0].reference),
        first.reference.as_ref(),
        "{name}"
    );
    (first, second, mock)
}

// --- every kind delivers and gets its receipt --------------------------------

#[tokio::test]
async fn opencrvs_delivers_and_a_resend_names_the_same_event() {
    let (first, second, _mock) = delivers_once(
        MockKind::Opencrvs,
        "opencrvs",
        "birth-notification-to-opencrvs",
    )
    .await;
    assert_eq!(first.http_status, 200);
    assert!(first.details["event_id"].is_string(), "{first:?}");
    // OpenCRVS 2.x replays the event: the same ids, no way to tell it is a replay.
    assert_eq!(second.details, first.details);
}

#[tokio::test]
async fn opencrvs_v1_delivers_and_a_blind_resend_makes_a_second_declaration() {
    // 1.x honours no idempotency key (v1.9.15 workflow
    // eventNotificationHandler.ts saves every notification): sending the same
    // bytes again, as a retry after a lost answer would, is a second
    // declaration, only flagged as a potential duplicate. Hence an attempt
    // whose outcome is unknown must not be resent blindly.
    let mock = start(MockKind::OpencrvsV1, |_| {}).await;
    let t = transport(&destination("opencrvs-v1", &mock));
    let payload = render("birth-notification-to-opencrvs-v1");
    let first = t.send(&outbound(&payload, "key-1")).await.unwrap();
    let second = t.send(&outbound(&payload, "key-1")).await.unwrap();
    assert_eq!(first.status, ReceiptStatus::Accepted, "{first:?}");
    assert!(first.reference.as_deref().unwrap().starts_with('B'));
    assert_eq!(second.details["potentially_duplicate"], true);
    assert_ne!(second.reference, first.reference);
    assert_eq!(mock.records().len(), 2, "two declarations of one birth");
}

#[tokio::test]
async fn fhir_r4_delivers_a_bundle_and_a_resend_is_a_duplicate() {
    let (first, second, _mock) =
        delivers_once(MockKind::FhirR4, "fhir-r4", "birth-notification-to-fhir-r4").await;
    assert_eq!(first.http_status, 201);
    assert!(first.reference.as_deref().unwrap().starts_with("Bundle/"));
    assert_eq!(second.status, ReceiptStatus::Duplicate);
    assert_eq!(second.http_status, 200);
}

#[tokio::test]
async fn examplia_delivers_and_a_resend_is_a_duplicate_with_the_original_receipt() {
    let (first, second, _mock) = delivers_once(
        MockKind::Examplia,
        "examplia-crvs",
        "birth-notification-to-examplia-crvs",
    )
    .await;
    assert!(first.reference.as_deref().unwrap().starts_with("EXA-BN-"));
    assert_eq!(second.status, ReceiptStatus::Duplicate);
    assert_eq!(second.details["received_at"], first.details["received_at"]);
    assert!(first.details["received_at"].is_string());
}

/// The gateway's Primero login modes; `basic` and `session` both speak to a
/// native (Devise) v2.15 instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrimeroLogin {
    Basic,
    Session,
    IdpBearer,
}

fn primero_auth(mode: PrimeroLogin, mock: &RunningMock) -> AuthConfig {
    let login_url = mock.token_url();
    let (user, password) = ("registry-gateway".to_string(), Secret::new("mock-password"));
    match mode {
        PrimeroLogin::Session => AuthConfig::PrimeroSession {
            login_url: login_url.unwrap(),
            user,
            password,
        },
        PrimeroLogin::Basic => AuthConfig::Basic { user, password },
        PrimeroLogin::IdpBearer => AuthConfig::ClientCredentials {
            token_url: login_url.unwrap(),
            client_id: "registry-gateway".into(),
            client_secret: Secret::new("mock-client-secret"),
        },
    }
}

async fn primero(
    mode: PrimeroLogin,
    clock: Option<mocks::Clock>,
) -> (RunningMock, DestinationConfig) {
    let mock = start(MockKind::Primero, |c| {
        c.primero_auth = if mode == PrimeroLogin::IdpBearer {
            PrimeroAuth::IdpBearer
        } else {
            PrimeroAuth::Native
        };
        if let Some(clock) = clock {
            c.clock = clock;
        }
    })
    .await;
    let mut dest = PIPELINE.config().destinations["primero"].clone();
    dest.url = Some(mock.submit_url());
    dest.auth = primero_auth(mode, &mock);
    (mock, dest)
}

/// Logins proper (`POST` to the token endpoint), not the CSRF cookie fetches.
fn logins(mock: &RunningMock) -> usize {
    arrivals_at(mock, Endpoint::Token)
        .iter()
        .filter(|a| a.method == "POST")
        .count()
}

#[tokio::test]
async fn primero_delivers_in_each_login_mode_and_a_resend_is_a_duplicate() {
    let payload = render("child-protection-case-to-primero");
    let ours: Value = serde_json::from_slice(&payload.bytes).unwrap();
    let case_id = ours["data"]["id"].as_str().unwrap();
    for mode in [
        PrimeroLogin::Session,
        PrimeroLogin::Basic,
        PrimeroLogin::IdpBearer,
    ] {
        let (mock, dest) = primero(mode, None).await;
        let t = transport(&dest);
        let first = t.send(&outbound(&payload, "k")).await.unwrap();
        assert_eq!(
            (first.status, first.http_status, first.reference.as_deref()),
            (ReceiptStatus::Accepted, 204, Some(case_id)),
            "{mode:?}"
        );
        let second = t.send(&outbound(&payload, "k")).await.unwrap();
        assert_eq!(
            (
                second.status,
                second.http_status,
                second.reference.as_deref()
            ),
            (ReceiptStatus::Duplicate, 409, Some(case_id)),
            "{mode:?}"
        );
        assert_eq!(mock.records().len(), 1, "{mode:?}");
        let expected = if mode == PrimeroLogin::Basic { 0 } else { 1 };
        assert_eq!(
            logins(&mock),
            expected,
            "{mode:?}: one login serves both sends"
        );
        assert!(
            !outcomes(&mock, Endpoint::Submit).contains(&Outcome::Unauthorized),
            "{mode:?}"
        );
        // Nothing the gateway sent was dropped as unknown to the instance.
        assert!(
            arrivals_at(&mock, Endpoint::Submit).iter().all(|a| !a
                .detail
                .as_deref()
                .unwrap_or_default()
                .starts_with("dropped")),
            "{mode:?}"
        );
        mock.stop().await;
    }
}

#[tokio::test]
async fn primero_logs_in_again_when_its_session_has_expired() {
    let payload = render("child-protection-case-to-primero");
    for mode in [PrimeroLogin::Session, PrimeroLogin::IdpBearer] {
        let clock = manual_clock();
        let (mock, dest) = primero(mode, Some(clock.clone())).await;
        // The transport's own clock does not move: only the registry sees the expiry.
        let t = transport(&dest);
        t.send(&outbound(&payload, "k")).await.unwrap();
        clock.advance(Duration::from_secs(3601));
        let again = t.send(&outbound(&payload, "k")).await.unwrap();
        assert_eq!(again.status, ReceiptStatus::Duplicate, "{mode:?}");
        assert_eq!(
            outcomes(&mock, Endpoint::Submit),
            [Outcome::Accepted, Outcome::Unauthorized, Outcome::Duplicate],
            "{mode:?}"
        );
        assert_eq!(logins(&mock), 2, "{mode:?}");
        mock.stop().await;
    }
}

// --- tokens -------------------------------------------------------------------

#[tokio::test]
async fn the_opencrvs_token_is_renewed_before_it_expires() {
    let mock = start(MockKind::Opencrvs, |c| c.clock = manual_clock()).await;
    let t = transport_on(&destination("opencrvs", &mock), &mock);
    let payload = render("birth-notification-to-opencrvs");
    t.send(&outbound(&payload, "k")).await.unwrap();
    mock.clock().advance(Duration::from_secs(300));
    t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(
        arrivals_at(&mock, Endpoint::Token).len(),
        1,
        "cached at 50 %"
    );
    // 600 s tokens: renewed from 480 s on, before the registry would refuse them.
    mock.clock().advance(Duration::from_secs(190));
    t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(
        arrivals_at(&mock, Endpoint::Token).len(),
        2,
        "renewed at 82 %"
    );
    assert_eq!(
        outcomes(&mock, Endpoint::Submit),
        [Outcome::Accepted, Outcome::Duplicate, Outcome::Duplicate],
        "no send was refused"
    );
}

#[tokio::test]
async fn a_401_gets_a_new_token_and_one_resend() {
    let mock = start(MockKind::Opencrvs, |c| c.clock = manual_clock()).await;
    // The transport believes its token is fresh; the registry has moved on.
    let t = transport(&destination("opencrvs", &mock));
    let payload = render("birth-notification-to-opencrvs");
    let first = t.send(&outbound(&payload, "k")).await.unwrap();
    mock.clock().advance(Duration::from_secs(601));
    let second = t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(second.reference, first.reference);
    assert_eq!(
        outcomes(&mock, Endpoint::Submit),
        [Outcome::Accepted, Outcome::Unauthorized, Outcome::Duplicate]
    );
    assert_eq!(arrivals_at(&mock, Endpoint::Token).len(), 2);
}

#[tokio::test]
async fn concurrent_sends_share_one_token_request() {
    let mock = start(MockKind::FhirR4, |_| {}).await;
    let t = transport(&destination("fhir-r4", &mock));
    let payload = render("birth-notification-to-fhir-r4");
    let message = outbound(&payload, "k");
    let sends = (0..8).map(|_| t.send(&message));
    let receipts: Vec<Receipt> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(arrivals_at(&mock, Endpoint::Token).len(), 1);
    let references: BTreeSet<_> = receipts.iter().map(|r| r.reference.clone()).collect();
    assert_eq!(references.len(), 1, "{references:?}");
    assert_eq!(mock.records().len(), 1);
}

#[tokio::test]
async fn credentials_refused_after_a_fresh_token_are_permanent() {
    // Tokens that expire the moment they are issued: every send is refused.
    let mock = start(MockKind::Opencrvs, |c| {
        c.clock = manual_clock();
        c.credentials.token_lifetime = Duration::ZERO;
    })
    .await;
    let t = transport(&destination("opencrvs", &mock));
    let e = t
        .send(&outbound(&render("birth-notification-to-opencrvs"), "k"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent {
            reason: "status 401: credentials refused after a fresh login".into()
        }
    );
    assert_eq!(arrivals_at(&mock, Endpoint::Token).len(), 2);
    assert_eq!(
        arrivals_at(&mock, Endpoint::Submit).len(),
        2,
        "one resend only"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_permanent_and_nothing_is_submitted() {
    let mock = start(MockKind::Opencrvs, |_| {}).await;
    let mut dest = destination("opencrvs", &mock);
    if let AuthConfig::ClientCredentials { client_secret, .. } = &mut dest.auth {
        *client_secret = Secret::new("wrong");
    }
    let e = transport(&dest)
        .send(&outbound(&render("birth-notification-to-opencrvs"), "k"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent {
            reason: "token endpoint: status 401 (invalid_client): credentials refused".into()
        }
    );
    assert!(!e.to_string().contains("wrong"));
    assert!(arrivals_at(&mock, Endpoint::Submit).is_empty());
}

// --- faults -------------------------------------------------------------------

#[tokio::test]
async fn a_503_with_retry_after_is_retryable_with_that_wait() {
    let mock = start(MockKind::FhirR4, |_| {}).await;
    let t = transport(&destination("fhir-r4", &mock));
    let payload = render("birth-notification-to-fhir-r4");
    mock.faults().push(Fault::Status503 {
        retry_after: Some(Duration::from_secs(7)),
    });
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Retryable {
            reason: "status 503: transient".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
    // The outage over, the same bytes go through.
    let r = t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(r.status, ReceiptStatus::Accepted);
}

#[tokio::test]
async fn a_429_is_rate_limited_and_a_500_retryable() {
    let mock = start(MockKind::Opencrvs, |_| {}).await;
    let t = transport(&destination("opencrvs", &mock));
    let payload = render("birth-notification-to-opencrvs");
    mock.faults().push(Fault::Status429 {
        retry_after: Duration::from_secs(4),
    });
    mock.faults().push(Fault::Status500);
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert_eq!(
        e,
        SendError::RateLimited {
            reason: "status 429".into(),
            retry_after: Some(Duration::from_secs(4))
        }
    );
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Retryable {
            reason: "status 500".into(),
            retry_after: None
        }
    );
    assert!(mock.records().is_empty());
}

#[tokio::test]
async fn a_400_is_permanent_and_names_paths_not_values() {
    let mock = start(MockKind::Opencrvs, |_| {}).await;
    let t = transport(&destination("opencrvs", &mock));
    let payload = render("birth-notification-to-opencrvs");
    let mut body: Value = serde_json::from_slice(&payload.bytes).unwrap();
    body["createdAtLocation"] = Value::String("Amina's house".into());
    let broken = Encoded {
        bytes: serde_json::to_vec(&body).unwrap(),
        ..payload
    };
    let e = t.send(&outbound(&broken, "k")).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent {
            reason: "status 400: BAD_REQUEST: invalid_string at createdAtLocation".into()
        }
    );
}

#[tokio::test]
async fn a_reset_connection_and_a_timeout_are_retryable() {
    let mock = start(MockKind::Opencrvs, |_| {}).await;
    let mut dest = destination("opencrvs", &mock);
    dest.timeout = Duration::from_millis(500);
    let t = transport(&dest);
    let payload = render("birth-notification-to-opencrvs");
    mock.faults().push(Fault::ConnectionReset);
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert!(retryable(&e), "{e:?}");
    mock.faults().push(Fault::Timeout);
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert!(retryable(&e), "{e:?}");
    assert!(e.to_string().contains("timeout"), "{e}");
    // Nothing was stored; the next attempt registers the record.
    assert!(mock.records().is_empty());
    t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(mock.records().len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let mock = start(MockKind::FhirR4, |_| {}).await;
    let dest = destination("fhir-r4", &mock);
    mock.stop().await;
    let e = transport(&dest)
        .send(&outbound(&render("birth-notification-to-fhir-r4"), "k"))
        .await
        .unwrap_err();
    assert!(retryable(&e), "{e:?}");
}

// --- X-Road faults and receipts -----------------------------------------------

#[tokio::test]
async fn examplia_rate_limited_fault_carries_its_retry_after_seconds() {
    let mock = start(MockKind::Examplia, |_| {}).await;
    let t = transport(&destination("examplia-crvs", &mock));
    let payload = render("birth-notification-to-examplia-crvs");
    mock.faults().push(Fault::Status429 {
        retry_after: Duration::from_secs(3),
    });
    match t.send(&outbound(&payload, "k")).await.unwrap_err() {
        SendError::RateLimited {
            reason,
            retry_after,
        } => {
            assert!(
                reason.starts_with("status 500: Server.RateLimited RATE"),
                "{reason}"
            );
            assert_eq!(retry_after, Some(Duration::from_secs(3)));
        }
        other => panic!("{other:?}"),
    }
    // The fault reserved nothing: the same document is accepted next.
    let r = t.send(&outbound(&payload, "k")).await.unwrap();
    assert_eq!(r.status, ReceiptStatus::Accepted);
}

#[tokio::test]
async fn examplia_maintenance_and_internal_errors_are_retryable() {
    let mock = start(MockKind::Examplia, |_| {}).await;
    let t = transport(&destination("examplia-crvs", &mock));
    let payload = render("birth-notification-to-examplia-crvs");
    mock.faults().push(Fault::Maintenance(true));
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert!(retryable(&e), "{e:?}");
    assert!(e.to_string().contains("Server.Unavailable"), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    mock.faults().clear();
    mock.faults().push(Fault::Status500);
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    assert!(
        retryable(&e) && e.to_string().contains("Server.InternalError"),
        "{e:?}"
    );
}

#[tokio::test]
async fn examplia_rejected_receipt_is_permanent_with_codes_and_paths_only() {
    // The registry's clock in 2020: every date of the 2026 record is in its future.
    let mock = start(MockKind::Examplia, |c| {
        c.clock = mocks::Clock::manual(at("2020-01-01T00:00:00Z"));
    })
    .await;
    let t = transport(&destination("examplia-crvs", &mock));
    let record = example_record("birth-notification");
    let payload = render("birth-notification-to-examplia-crvs");
    let e = t.send(&outbound(&payload, "k")).await.unwrap_err();
    let SendError::Permanent { reason } = &e else {
        panic!("{e:?}");
    };
    assert!(
        reason.starts_with("status 200: REJECTED (EXA-BN-"),
        "{reason}"
    );
    assert!(
        reason.contains("DATE_IN_FUTURE at /BirthNotification/Child/DateOfBirth"),
        "{reason}"
    );
    let birth_date = record["child"]["date_of_birth"].as_str().unwrap();
    assert!(!reason.contains(birth_date), "{reason}");
    assert!(mock.records().is_empty());
}

// --- build --------------------------------------------------------------------

#[test]
fn build_refuses_what_a_transport_cannot_do() {
    let dests = &PIPELINE.config().destinations;
    let mut no_url = dests["fhir-r4"].clone();
    no_url.url = None;
    let mut wrong_login = dests["opencrvs"].clone();
    wrong_login.auth = AuthConfig::PrimeroSession {
        login_url: "http://127.0.0.1:1/api/v2/tokens".into(),
        user: "u".into(),
        password: Secret::new("p"),
    };
    let mut xroad_with_auth = dests["examplia-crvs"].clone();
    xroad_with_auth.auth = AuthConfig::Basic {
        user: "u".into(),
        password: Secret::new("p"),
    };
    let mut missing_ca = dests["fhir-r4"].clone();
    missing_ca.tls.ca_file = Some("/nonexistent/ca.pem".into());
    for (dest, expected) in [
        (no_url, "url is required"),
        (wrong_login, "auth mode session is a Primero login"),
        (xroad_with_auth, "auth mode basic cannot cross X-Road"),
        (missing_ca, "tls.ca_file /nonexistent/ca.pem: cannot read"),
    ] {
        let e = transports::build(&dest).err().unwrap();
        assert!(e.to_string().contains(expected), "{e}");
        assert!(!e.to_string().contains("mock-"), "no secret in {e}");
    }
    for dest in dests.values() {
        transports::build(dest).unwrap_or_else(|e| panic!("{e}"));
    }
}

// --- mutual TLS -----------------------------------------------------------------

mod tls {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::PathBuf;
    use std::sync::Mutex;

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, SanType,
    };
    use registry_gateway::config::TlsConfig;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::server::WebPkiClientVerifier;
    use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

    use super::*;

    struct Ca(CertifiedIssuer<'static, KeyPair>);

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
        }

        /// A leaf certificate and its key, signed by this CA.
        fn issue(
            &self,
            name: &str,
            purpose: ExtendedKeyUsagePurpose,
        ) -> (rcgen::Certificate, KeyPair) {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap();
            (params.signed_by(&key, &*self.0).unwrap(), key)
        }
    }

    /// An HTTPS server that requires a client certificate from `client_ca`
    /// and answers like a FHIR server, keeping the Idempotency-Key it saw.
    struct Server {
        addr: SocketAddr,
        keys: Arc<Mutex<Vec<String>>>,
    }

    async fn serve(server_ca: &Ca, client_ca: &Ca) -> Server {
        let (cert, key) = server_ca.issue("registry", ExtendedKeyUsagePurpose::ServerAuth);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(client_ca.0.der().clone()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = keys.clone();
        let app = Router::new().route(
            "/fhir/Bundle",
            post(move |headers: HeaderMap| async move {
                // What makes a FHIR create safe to resend (an Idempotency-Key is not FHIR).
                let key = headers.get("if-none-exist").and_then(|v| v.to_str().ok());
                seen.lock()
                    .unwrap()
                    .push(key.unwrap_or_default().to_string());
                (
                    StatusCode::CREATED,
                    [(header::LOCATION, "Bundle/b-1/_history/1")],
                )
            }),
        );
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { addr, keys }
    }

    struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = tokio_rustls::server::TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, addr)) = self.tcp.accept().await else {
                    continue;
                };
                // A client without an acceptable certificate ends here.
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn write(&self, name: &str, pem: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        }
    }

    fn destination(addr: SocketAddr, tls: TlsConfig) -> DestinationConfig {
        let mut dest = PIPELINE.config().destinations["fhir-r4"].clone();
        dest.url = Some(format!("https://{addr}/fhir/Bundle"));
        dest.auth = AuthConfig::None;
        dest.timeout = Duration::from_secs(5);
        dest.tls = tls;
        dest
    }

    #[tokio::test]
    async fn https_with_our_ca_and_a_client_certificate() {
        let (ca, rogue) = (Ca::new("Examplia test CA"), Ca::new("someone else"));
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        let ca_file = files.write("ca.pem", &ca.0.pem());
        let (client_cert, client_key) =
            ca.issue("registry-gateway", ExtendedKeyUsagePurpose::ClientAuth);
        let identity = (
            files.write("client.pem", &client_cert.pem()),
            files.write("client.key", &client_key.serialize_pem()),
        );
        let server = serve(&ca, &ca).await;
        let payload = render("birth-notification-to-fhir-r4");

        let mutual = destination(
            server.addr,
            TlsConfig {
                ca_file: Some(ca_file.clone()),
                client_identity: Some(identity.clone()),
            },
        );
        let r = transport(&mutual)
            .send(&outbound(&payload, "gw:record-1:v1:fhir-r4"))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.reference.as_deref()),
            (ReceiptStatus::Accepted, Some("Bundle/b-1"))
        );
        let bundle: Value = serde_json::from_slice(&payload.bytes).unwrap();
        let condition = format!(
            "identifier=urn%3Aietf%3Arfc%3A3986%7C{}",
            bundle["identifier"]["value"]
                .as_str()
                .unwrap()
                .replace(':', "%3A")
        );
        assert_eq!(*server.keys.lock().unwrap(), [condition]);

        // Without the client certificate the server refuses the handshake.
        let anonymous = destination(
            server.addr,
            TlsConfig {
                ca_file: Some(ca_file.clone()),
                client_identity: None,
            },
        );
        let e = transport(&anonymous)
            .send(&outbound(&payload, "k"))
            .await
            .unwrap_err();
        assert!(retryable(&e), "{e:?}");

        // A server whose certificate is not from the configured CA is not trusted.
        let impostor = serve(&rogue, &ca).await;
        let e = transport(&destination(
            impostor.addr,
            TlsConfig {
                ca_file: Some(ca_file),
                client_identity: Some(identity),
            },
        ))
        .send(&outbound(&payload, "k"))
        .await
        .unwrap_err();
        assert!(retryable(&e), "{e:?}");
        assert!(impostor.keys.lock().unwrap().is_empty());
        assert_eq!(server.keys.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_key_that_is_not_pem_is_a_build_error_that_shows_no_key() {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        let ca = Ca::new("ca");
        let cert = files.write("c.pem", &ca.0.pem());
        let key = files.write("c.key", "SECRET-KEY-MATERIAL");
        let dest = destination(
            "127.0.0.1:1".parse().unwrap(),
            TlsConfig {
                ca_file: None,
                client_identity: Some((cert, key)),
            },
        );
        let e = transports::build(&dest).err().unwrap().to_string();
        assert!(
            e.contains("not a PEM certificate chain and private key"),
            "{e}"
        );
        assert!(!e.contains("SECRET"), "{e}");
    }
}
