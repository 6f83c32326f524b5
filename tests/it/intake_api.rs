//! The intake API against a real server on 127.0.0.1:0 and a real embedded store.

use crate::common::*;
use serde_json::{Value, json};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_valid_record_is_accepted_and_its_status_lists_every_route() {
    let gw = TestGateway::start().await;
    let record = example_record("birth-notification");
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&record))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let accepted = json_of(response).await;
    let id = accepted["id"].as_str().unwrap();
    assert_eq!(accepted["status_url"], format!("/v1/records/{id}"));
    assert_eq!(location, accepted["status_url"]);

    let status = gw.get(&location, Some(AGENCY)).await;
    assert_eq!(status.status(), 200);
    let status = json_of(status).await;
    assert_eq!(status["id"], id);
    assert_eq!(status["record_type"], "birth-notification");
    let mut routes: Vec<&str> = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "birth-notification-to-examplia-crvs",
            "birth-notification-to-fhir-r4",
            "birth-notification-to-opencrvs",
            "birth-notification-to-opencrvs-v1",
        ]
    );
    assert!(
        status["routes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "pending")
    );
    let dir = gw.stop().await;
    assert_eq!(count_rows(dir.path(), "records", "").await, 1);
    assert_eq!(count_rows(dir.path(), "deliveries", "").await, 4);
}

#[tokio::test]
async fn an_invalid_record_gets_422_listing_every_violation_by_pointer() {
    let gw = TestGateway::start().await;
    let mut record = example_record("birth-notification");
    let canary = "Fatima-CANARY-Hassan";
    record["record_version"] = json!(canary);
    record["child"]["sex"] = json!(7);
    record.as_object_mut().unwrap().remove("notified_at");
    record["mother"]["favourite_colour"] = json!(canary);
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&record))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(canary),
        "a problem must not echo values: {text}"
    );
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], 422);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in [
        "/record_version",
        "/child/sex",
        "/notified_at",
        "/mother/favourite_colour",
    ] {
        assert!(
            pointers.contains(&expected),
            "{expected} missing: {pointers:?}"
        );
    }
    let dir = gw.stop().await;
    assert_eq!(count_rows(dir.path(), "records", "").await, 0);
    // The rejection is in the exchange log, by pointer and code only.
    assert_eq!(
        count_rows(dir.path(), "audit_log", "WHERE kind = 'record.rejected'").await,
        1
    );
    assert_eq!(
        count_rows(
            dir.path(),
            "audit_log",
            &format!("WHERE CAST(event AS TEXT) LIKE '%{canary}%'")
        )
        .await,
        0
    );
}

#[tokio::test]
async fn malformed_and_hostile_json_is_refused_with_a_problem() {
    let gw = TestGateway::start().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"record_type\": ".to_vec(), "malformed_json"),
        ([b'['; 5000].to_vec(), "max_depth"),
        (b"[]".to_vec(), "record_type"),
        (
            br#"{"record_type":"death-notification"}"#.to_vec(),
            "record_type",
        ),
        (vec![0xff, 0xfe, 0x00], "malformed_json"),
    ];
    for (payload, code) in cases {
        let response = gw.submit("canonical", Some(AGENCY), None, payload).await;
        assert_eq!(response.status(), 422);
        let problem = json_of(response).await;
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_id_and_stores_one_row() {
    let gw = TestGateway::start().await;
    let payload = body(&example_record("birth-notification"));
    let first = gw
        .submit("canonical", Some(AGENCY), Some("visit-42"), payload.clone())
        .await;
    assert_eq!(first.status(), 202);
    let first_id = json_of(first).await["id"].clone();
    let again = gw
        .submit("canonical", Some(AGENCY), Some("visit-42"), payload.clone())
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(again).await["id"], first_id);
    // Keys belong to a client: another agency's identical key is a new record.
    let other = gw
        .submit("canonical", Some(AGENCY_2), Some("visit-42"), payload)
        .await;
    assert_eq!(other.status(), 202);
    assert_ne!(json_of(other).await["id"], first_id);
    let dir = gw.stop().await;
    assert_eq!(
        count_rows(dir.path(), "records", "WHERE client_id = 'demo-agency'").await,
        1
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_409() {
    let gw = TestGateway::start().await;
    let record = example_record("birth-notification");
    let mut changed = record.clone();
    changed["record_version"] = json!(2);
    let first = gw
        .submit("canonical", Some(AGENCY), Some("k-1"), body(&record))
        .await;
    assert_eq!(first.status(), 202);
    let conflict = gw
        .submit("canonical", Some(AGENCY), Some("k-1"), body(&changed))
        .await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        json_of(conflict).await["type"],
        "urn:registry-gateway:problem:idempotency-conflict"
    );
    let dir = gw.stop().await;
    assert_eq!(count_rows(dir.path(), "records", "").await, 1);
    assert_eq!(
        count_rows(
            dir.path(),
            "audit_log",
            "WHERE kind = 'record.idempotency_conflict'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let gw = TestGateway::start().await;
    let payload = body(&example_record("birth-notification"));
    for token in [None, Some("demo-agency-token-wrong"), Some("")] {
        let response = gw.submit("canonical", token, None, payload.clone()).await;
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(
        gw.get("/v1/records/00000000-0000-0000-0000-000000000000", None)
            .await
            .status(),
        401
    );
    gw.stop().await;
}

#[tokio::test]
async fn roles_limit_what_a_client_may_do() {
    let gw = TestGateway::start().await;
    let payload = body(&example_record("birth-notification"));
    // Only agencies submit.
    for token in [AUDITOR, ADMIN] {
        let response = gw
            .submit("canonical", Some(token), None, payload.clone())
            .await;
        assert_eq!(response.status(), 403);
    }
    let response = gw.submit("canonical", Some(AGENCY), None, payload).await;
    let status_url = json_of(response).await["status_url"]
        .as_str()
        .unwrap()
        .to_string();
    // Auditors and admins read any status (it holds no personal data).
    for token in [AUDITOR, ADMIN] {
        assert_eq!(gw.get(&status_url, Some(token)).await.status(), 200);
    }
    gw.stop().await;
}

#[tokio::test]
async fn another_agencys_record_is_not_found_rather_than_forbidden() {
    let gw = TestGateway::start().await;
    let response = gw
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            body(&example_record("child-protection-case")),
        )
        .await;
    assert_eq!(response.status(), 202);
    let status_url = json_of(response).await["status_url"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign = gw.get(&status_url, Some(AGENCY_2)).await;
    let missing = gw
        .get(
            "/v1/records/0190d4c0-0000-7000-8000-000000000000",
            Some(AGENCY_2),
        )
        .await;
    assert_eq!(foreign.status(), 404);
    assert_eq!(missing.status(), 404);
    // Indistinguishable: same body for "someone else's" and "does not exist".
    assert_eq!(foreign.text().await.unwrap(), missing.text().await.unwrap());
    gw.stop().await;
}

#[tokio::test]
async fn a_body_over_the_cap_gets_413_and_nothing_is_stored() {
    let gw = TestGateway::start().await;
    let mut record = example_record("birth-notification");
    record["padding"] = json!("x".repeat(1024 * 1024 + 1));
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&record))
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let dir = gw.stop().await;
    assert_eq!(count_rows(dir.path(), "records", "").await, 0);
}

#[tokio::test]
async fn unknown_sources_and_paths_are_problems() {
    let gw = TestGateway::start().await;
    let payload = body(&example_record("birth-notification"));
    let response = gw.submit("fax", Some(AGENCY), None, payload).await;
    assert_eq!(response.status(), 404);
    let response = gw.get("/v2/nothing", Some(AGENCY)).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    gw.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.get("/healthz", None).await.status(), 200);
    assert_eq!(gw.get("/readyz", None).await.status(), 200);
    let payload = body(&example_record("consent"));
    assert_eq!(
        gw.submit("canonical", Some(AGENCY), None, payload)
            .await
            .status(),
        202
    );
    let metrics = gw
        .get("/metrics", Some("demo-admin-token"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "gateway_records_accepted_total{source=\"canonical\",record_type=\"consent\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_store_commit_seconds_bucket"));
    let openapi: Value = gw.get("/openapi.json", None).await.json().await.unwrap();
    for path in [
        "/v1/sources/{source}/records",
        "/v1/records/{id}",
        "/readyz",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_bad_idempotency_key_is_a_400() {
    let gw = TestGateway::start().await;
    let payload = body(&example_record("birth-notification"));
    let response = gw
        .submit("canonical", Some(AGENCY), Some(&"k".repeat(300)), payload)
        .await;
    assert_eq!(response.status(), 400);
    gw.stop().await;
}

#[tokio::test]
async fn primero_and_fhir_sources_are_mapped_to_canonical_records_at_intake() {
    let gw = TestGateway::start().await;
    for (source, file, route) in [
        (
            "primero",
            "tests/data/inbound/primero-case-separated-consented.json",
            "child-protection-case-to-primero",
        ),
        (
            "fhir-r4",
            "tests/data/inbound/fhir-r4-birth-notification-facility.json",
            "birth-notification-to-examplia-crvs",
        ),
    ] {
        let payload = std::fs::read(repo_path(file)).unwrap();
        let response = gw.submit(source, Some(AGENCY), None, payload).await;
        assert_eq!(response.status(), 202, "{source}");
        let url = json_of(response).await["status_url"]
            .as_str()
            .unwrap()
            .to_string();
        let status = json_of(gw.get(&url, Some(AGENCY)).await).await;
        assert_eq!(status["source"], source);
        assert!(
            status["routes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["route"] == route),
            "{status}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_source_payload_of_the_wrong_shape_is_refused_with_pointers_into_it() {
    let gw = TestGateway::start().await;
    let mut case: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "tests/data/inbound/primero-case-separated-consented.json",
        ))
        .unwrap(),
    )
    .unwrap();
    case["data"]["age"] = json!("eleven");
    let response = gw.submit("primero", Some(AGENCY), None, body(&case)).await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(!text.contains("eleven"), "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/data/age");

    let mut bundle: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "tests/data/inbound/fhir-r4-birth-notification-facility.json",
        ))
        .unwrap(),
    )
    .unwrap();
    bundle["type"] = json!("collection");
    let response = gw
        .submit("fhir-r4", Some(AGENCY), None, body(&bundle))
        .await;
    assert_eq!(response.status(), 422);
    let problem = json_of(response).await;
    assert!(
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["pointer"] == "/type" && e["code"] == "not_a_document"),
        "{problem}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_policy_decides_at_acceptance_and_a_denied_route_gets_no_delivery() {
    let gw = TestGateway::start().await;
    let mut case = example_record("child-protection-case");
    case["protection_status"] = json!("other");
    case["consent"]["consent_for_services"] = json!(false);
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&case))
        .await;
    assert_eq!(response.status(), 202);
    let accepted = json_of(response).await;
    let route = &accepted["routes"][0];
    assert_eq!(route["route"], "child-protection-case-to-primero");
    assert_eq!(route["decision"], "deny");
    assert!(route["legal_basis"].is_null());
    let status = json_of(
        gw.get(accepted["status_url"].as_str().unwrap(), Some(AGENCY))
            .await,
    )
    .await;
    assert_eq!(
        status["routes"],
        json!([]),
        "a denied route is never queued"
    );

    let unaccompanied: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "conformance/cases/27-cpc-unaccompanied-no-consent/input.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&unaccompanied))
        .await;
    let accepted = json_of(response).await;
    assert_eq!(accepted["routes"][0]["decision"], "deliver");
    assert_eq!(accepted["routes"][0]["legal_basis"], "VITAL_INTEREST");
    let dir = gw.stop().await;
    // The exchange log names the rule and the policy's hash for each route.
    assert_eq!(
        count_rows(
            dir.path(),
            "audit_log",
            // The accepted event; a delivery attempt racing the stop names it too.
            "WHERE kind = 'record.accepted' AND CAST(event AS TEXT) LIKE '%uasc-minimal-set-vital-interest%'"
        )
        .await,
        1
    );
}

/// An instance's own lookup value, in a field the route can do without, is
/// left out and reported by pointer and rule; the child's case is accepted
/// (EXAMPLIA-DEPLOYMENT.md, Examplia's Primero instance).
#[tokio::test]
async fn an_instances_own_lookup_value_is_left_out_and_reported_not_refused() {
    let gw = TestGateway::start().await;
    let mut case: Value = serde_json::from_slice(
        &std::fs::read(repo_path(
            "tests/data/inbound/primero-case-separated-consented.json",
        ))
        .unwrap(),
    )
    .unwrap();
    case["data"]["displacement_status"] = json!("returnee_awaiting_documents");
    let response = gw.submit("primero", Some(AGENCY), None, body(&case)).await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("returnee_awaiting_documents"), "{text}");
    let accepted: Value = serde_json::from_str(&text).unwrap();
    assert!(accepted["id"].is_string(), "{text}");
    let route = &accepted["routes"][0];
    assert_eq!(
        route["left_out"],
        json!([{"pointer": "/data/displacement_status", "rule": "unknown-lookup-value"}]),
        "{text}"
    );
    // A known value is carried and nothing is reported.
    case["data"]["displacement_status"] = json!("refugee");
    case["data"]["id"] = json!("2c9354bb-b3e7-55f5-9a7f-9671e69d41b7");
    let accepted = json_of(gw.submit("primero", Some(AGENCY), None, body(&case)).await).await;
    assert!(
        accepted["routes"][0].get("left_out").is_none(),
        "{accepted}"
    );
    gw.stop().await;
}

/// A consent POST retried with the same Idempotency-Key and body is the same
/// request, though the gateway fills `decided_at` each time (#13, finding 6);
/// the same key with another body is still a conflict.
#[tokio::test]
async fn a_retried_consent_post_is_a_replay_not_a_conflict() {
    let gw = TestGateway::start().await;
    let record = gw
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            body(&example_record("child-protection-case")),
        )
        .await;
    assert_eq!(record.status(), 202);
    let id = json_of(record).await["id"].as_str().unwrap().to_string();
    let post = |decision: Value| {
        gw.http
            .post(gw.url(&format!("/v1/records/{id}/consent")))
            .bearer_auth(AGENCY)
            .header("Idempotency-Key", "withdrawal-1")
            .json(&decision)
            .send()
    };
    let decision = json!({"status": "withdrawn", "given_by": "caregiver"});
    let first = post(decision.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first = json_of(first).await;
    // decided_at has whole seconds: the retry comes in another second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = post(decision).await.unwrap();
    assert_eq!(again.status(), 202, "a retry was refused");
    assert_eq!(json_of(again).await["id"], first["id"]);
    let other = post(json!({"status": "withdrawn", "given_by": "caregiver", "reference": "CNS-2"}))
        .await
        .unwrap();
    assert_eq!(other.status(), 409);
    gw.stop().await;
}
