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
    let token: Value = http
        .post(mock.token_url().unwrap())
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", "registry-gateway"),
            ("client_secret", "mock-client-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
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
