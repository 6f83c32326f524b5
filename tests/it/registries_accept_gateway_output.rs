//! The conformance suite's golden outputs, sent to the mock registries: what
//! the gateway produces is what each registry, as specified, accepts. (The
//! mocks were written from the registries' specifications, not from our
//! encoders, so agreement here is a real cross-check.)

use crate::common::*;
use registry_mocks::{self as mocks, Limits, MockConfig, MockKind};
use serde_json::Value;

fn golden(route_file: &str) -> Vec<(String, Vec<u8>)> {
    golden_at_least(route_file, 20)
}

fn golden_at_least(route_file: &str, min: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for case in std::fs::read_dir(repo_path("conformance/cases"))
        .unwrap()
        .flatten()
    {
        let path = case.path().join("expected").join(route_file);
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((case.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    out.sort();
    assert!(out.len() >= min, "only {} golden {route_file}", out.len());
    out
}

async fn start(kind: MockKind) -> mocks::RunningMock {
    let mut config = MockConfig::new(kind);
    config.limits = Limits::none();
    config.maintenance = None;
    // OpenCRVS checks every location id against its own list.
    if matches!(kind, MockKind::Opencrvs | MockKind::OpencrvsV1) {
        config.opencrvs.locations = Some(
            mocks::Locations::from_fhir_file(&crate::common::repo_path(
                "deploy/locations/examplia-opencrvs.json",
            ))
            .unwrap(),
        );
    }
    mocks::start(config).await.unwrap()
}

#[tokio::test]
async fn examplia_accepts_every_golden_notification_and_sees_resends_as_duplicates() {
    let mock = start(MockKind::Examplia).await;
    let http = reqwest::Client::new();
    for (case, body) in golden("birth-notification-to-examplia-crvs.xml") {
        for expected in ["ACCEPTED", "DUPLICATE"] {
            let response = http
                .post(mock.submit_url())
                .header("content-type", "text/xml; charset=UTF-8")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let text = response.text().await.unwrap();
            assert!(
                text.contains(&format!("<Status>{expected}</Status>"))
                    || text.contains(&format!(":Status>{expected}</")),
                "{case}: expected {expected}, got {text}"
            );
        }
    }
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_accepts_every_golden_notify_once() {
    let mock = start(MockKind::Opencrvs).await;
    let http = reqwest::Client::new();
    let token = mock_token(&mock, CredentialsIn::Query).await;
    for (case, body) in golden("birth-notification-to-opencrvs.json") {
        let mut tracking = Vec::new();
        for _ in 0..2 {
            let response = http
                .post(mock.submit_url())
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let event: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{case}: {event}");
            tracking.push(event["trackingId"].clone());
        }
        assert_eq!(
            tracking[0], tracking[1],
            "{case}: a resend registered twice"
        );
    }
    mock.stop().await;
}

/// Every golden FHIR document, written as the example config writes it:
/// conditional create on its identifier (stored once, a resend matched), or,
/// for a corrected version (`amended`), conditional update of the document
/// its first version made.
#[tokio::test]
async fn the_fhir_exchange_accepts_every_golden_document_once() {
    let mock = start(MockKind::FhirR4).await;
    let http = reqwest::Client::new();
    let token = mock_token(&mock, CredentialsIn::Form).await;
    let goldens = golden("birth-notification-to-fhir-r4.json");
    let mut corrections = 0;
    for (case, body) in &goldens {
        let bundle: Value = serde_json::from_slice(body).unwrap();
        let identifier = format!(
            "{}|{}",
            bundle["identifier"]["system"].as_str().unwrap(),
            bundle["identifier"]["value"].as_str().unwrap()
        );
        let mut condition = reqwest::Url::parse("search:").unwrap();
        condition
            .query_pairs_mut()
            .append_pair("identifier", &identifier);
        let query = condition.query().unwrap();
        let correction = bundle["entry"][0]["resource"]["status"] == "amended";
        let mut answers = Vec::new();
        for _ in 0..2 {
            let request = if correction {
                http.put(format!("{}?{query}", mock.submit_url()))
            } else {
                http.post(mock.submit_url()).header("If-None-Exist", query)
            };
            let response = request
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let stored: Value = response.json().await.unwrap();
            answers.push((status, stored["id"].clone()));
        }
        // A correction updates its first version's document, sent before it.
        let first = if correction { 200 } else { 201 };
        assert_eq!(answers[0].0, first, "{case}: {answers:?}");
        assert_eq!(answers[1], (200, answers[0].1.clone()), "{case}");
        corrections += usize::from(correction);
    }
    assert!(corrections > 0, "no golden corrects an earlier one");
    assert_eq!(mock.records().len(), goldens.len() - corrections);
    mock.stop().await;
}

/// Primero v2.15 keeps what its forms know and drops the rest silently, so
/// "accepted" is not enough: nothing may be dropped, and a resend is a 409.
#[tokio::test]
async fn primero_accepts_every_golden_case_drops_nothing_and_sees_resends_as_conflicts() {
    let mock = start(MockKind::Primero).await;
    let http = reqwest::Client::new();
    let cases = golden_at_least("child-protection-case-to-primero.json", 12);
    for (case, body) in &cases {
        for expected in [204, 409] {
            let response = http
                .post(mock.submit_url())
                .basic_auth("registry-gateway", Some("mock-password"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(status, expected, "{case}: {text}");
        }
    }
    for arrival in mock.submissions() {
        assert!(
            arrival.detail.is_none(),
            "{}: {:?}",
            arrival.seq,
            arrival.detail
        );
    }
    assert_eq!(mock.records().len(), cases.len());
    mock.stop().await;
}

/// Every golden 1.x notification is taken by the 1.x mock (entries,
/// Task.identifier, a known active facility). 1.x honours no idempotency key,
/// so each is sent once: the gateway never resends blindly.
#[tokio::test]
async fn opencrvs_v1_accepts_every_golden_notification() {
    let mock = start(MockKind::OpencrvsV1).await;
    let http = reqwest::Client::new();
    let token = mock_token(&mock, CredentialsIn::Query).await;
    let goldens = golden_at_least("birth-notification-to-opencrvs-v1.json", 10);
    for (case, body) in &goldens {
        let response = http
            .post(mock.submit_url())
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{case}: {text}");
    }
    assert_eq!(mock.records().len(), goldens.len());
    mock.stop().await;
}
