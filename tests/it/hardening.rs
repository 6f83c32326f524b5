//! #13's numbered findings, each against a real server on 127.0.0.1:0: every
//! test here failed before its fix.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Finding 1: 300k bad array items made a 61 MB answer and a 32 MB audit
/// row. An array of more than 1000 items is refused with one problem before
/// validation; below that, the answer and the audit event list at most 100
/// problems, then one `too_many_problems`.
#[tokio::test]
async fn problems_are_capped_in_the_answer_and_the_audit_event() {
    let gw = TestGateway::start().await;
    let mut record = example_record("birth-notification");
    record["mother"]["identifiers"] = Value::Array(vec![json!(1); 300_000]);
    let response = gw
        .submit("canonical", Some(AGENCY), None, body(&record))
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/mother/identifiers");
    assert_eq!(problem["errors"][0]["code"], "too_many_items");

    // Every item is of the wrong type: one problem each.
    record["mother"]["identifiers"] = Value::Array(vec![json!(1); 1000]);
    let sent = body(&record);
    let started = Instant::now();
    let response = gw
        .submit("canonical", Some(AGENCY), None, sent.clone())
        .await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(
        text.len() < 32 * 1024,
        "the answer is {} bytes for a {} byte body",
        text.len(),
        sent.len()
    );
    let problem: Value = serde_json::from_str(&text).unwrap();
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 101, "100 problems and the marker");
    assert_eq!(errors[100]["code"], "too_many_problems");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let dir = gw.stop().await;
    let longest = max_audit_event_bytes(dir.path()).await;
    assert!(longest < 16 * 1024, "an audit event of {longest} bytes");
}

async fn max_audit_event_bytes(data_dir: &std::path::Path) -> i64 {
    use sqlx::{Connection, Row};
    let url = format!("sqlite://{}?mode=ro", data_dir.join("gateway.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT MAX(LENGTH(event)) AS n FROM audit_log")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n")
}

/// Finding 2: a bundle of thousands of entries and references took a worker
/// thread for over a second. Entries past 1000 are refused at once, and a
/// bundle just under the cap, every Observation referring to the child, is
/// decoded off the async runtime while /healthz stays fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_reference_storms_are_bounded_and_do_not_stall_health_checks() {
    let gw = TestGateway::start().await;
    let too_many = fhir_storm(1_500);
    let response = gw
        .submit("fhir-r4", Some(AGENCY), None, body(&too_many))
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    // The payload's width bound meets it first; the decoder has its own.
    assert_eq!(problem["errors"][0]["pointer"], "/entry", "{problem}");
    assert!(
        ["too_many_items", "too_many_entries"]
            .contains(&problem["errors"][0]["code"].as_str().unwrap()),
        "{problem}"
    );

    let storm = body(&fhir_storm(990));
    let mut health = Vec::new();
    let answers = {
        let submits: Vec<_> = (0..4)
            .map(|_| gw.submit("fhir-r4", Some(AGENCY), None, storm.clone()))
            .collect();
        let all = futures::future::join_all(submits);
        tokio::pin!(all);
        loop {
            tokio::select! {
                answers = &mut all => break answers,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    let started = Instant::now();
                    let ok = gw.get("/healthz", None).await.status() == 200;
                    health.push((ok, started.elapsed()));
                }
            }
        }
    };
    for answer in answers {
        assert!(
            [202, 422].contains(&answer.status().as_u16()),
            "{}",
            answer.status()
        );
    }
    let slowest = health.iter().map(|(_, d)| *d).max().unwrap_or_default();
    assert!(health.iter().all(|(ok, _)| *ok));
    assert!(
        slowest < Duration::from_millis(250),
        "/healthz took {slowest:?} while bundles were decoded"
    );
    gw.stop().await;
}

/// A FHIR document from the example: its Composition, then `observations`
/// birth-weight Observations, each referring to the child.
fn fhir_storm(observations: usize) -> Value {
    let mut bundle: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path(
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
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8339-4"}]},
                "subject": {"reference": child},
                "focus": [{"reference": child}],
                "valueQuantity": {"value": 3100, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
            }
        }));
    }
    bundle
}

/// Finding 7: the consent in force is the one decided last, not the one that
/// arrived last: a grant decided before a withdrawal, arriving after it,
/// does not undo it; a grant decided after it does.
#[tokio::test]
async fn an_older_grant_arriving_late_does_not_override_a_newer_withdrawal() {
    let gw = TestGateway::start().await;
    let case = gw
        .submit(
            "canonical",
            Some(AGENCY),
            None,
            body(&example_record("child-protection-case")),
        )
        .await;
    assert_eq!(case.status(), 202);
    let id = case.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let decide = |status: &str, at: &str| {
        gw.http
            .post(gw.url(&format!("/v1/records/{id}/consent")))
            .bearer_auth(AGENCY)
            .json(&json!({
                "status": status, "given_by": "caregiver", "decided_at": at,
                "purposes": ["case_management"], "recipients": ["primero"]
            }))
            .send()
    };
    let in_force = || async {
        let answer = gw
            .get(&format!("/v1/records/{id}/consent"), Some(AGENCY))
            .await;
        assert_eq!(answer.status(), 200);
        let consent: Value = answer.json().await.unwrap();
        consent["status"].as_str().unwrap().to_string()
    };
    assert_eq!(
        decide("withdrawn", "2026-11-02T10:00:00Z")
            .await
            .unwrap()
            .status(),
        202
    );
    let withdrawn = in_force().await;
    assert_eq!(
        decide("granted", "2026-11-01T10:00:00+01:00")
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(in_force().await, withdrawn, "an older grant took over");
    assert_eq!(
        decide("granted", "2026-11-02T10:00:01Z")
            .await
            .unwrap()
            .status(),
        202
    );
    assert_ne!(in_force().await, withdrawn, "a newer grant did not");
    gw.stop().await;
}

/// Finding 8: 40k ids gave a misleading 503 (the store's parameter limit).
/// Too many ids is a 422 naming the cap; an over-size body and a wrong
/// method are problem+json like every other error.
#[tokio::test]
async fn replay_caps_its_ids_and_every_error_is_problem_json() {
    let gw = TestGateway::start().await;
    let ids: Vec<i64> = (1..=40_000).collect();
    let answer = gw
        .http
        .post(gw.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({ "ids": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "urn:registry-gateway:problem:too-many-ids");

    let within: Vec<i64> = (1..=1000).collect();
    let answer = gw
        .http
        .post(gw.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .json(&json!({ "ids": within }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "1000 unknown ids replay nothing");

    let huge = vec![b' '; 2 * 1024 * 1024];
    let too_large = gw
        .http
        .post(gw.url("/v1/admin/dead-letters/replay"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        too_large.headers()["content-type"],
        "application/problem+json"
    );
    let wrong_method = gw
        .http
        .delete(gw.url("/v1/admin/deliveries"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );
    assert!(wrong_method.headers().contains_key("allow"));
    gw.stop().await;
}

/// Finding 9: a text/plain or XML body was accepted. JSON routes answer 415
/// (problem+json) for any other type and for a compressed body; a Primero
/// source also takes the form type its webhooks send.
#[tokio::test]
async fn json_routes_refuse_other_media_types() {
    let gw = TestGateway::start().await;
    let record = body(&example_record("birth-notification"));
    let post = |source: &str, content_type: Option<&str>, encoding: Option<&str>| {
        let mut request = gw
            .http
            .post(gw.url(&format!("/v1/sources/{source}/records")))
            .bearer_auth(AGENCY)
            .body(record.clone());
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        if let Some(e) = encoding {
            request = request.header("content-encoding", e);
        }
        request.send()
    };
    for refused in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let answer = post("canonical", Some(refused), None).await.unwrap();
        assert_eq!(answer.status(), 415, "{refused}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    let gzip = post("canonical", Some("application/json"), Some("gzip"))
        .await
        .unwrap();
    assert_eq!(gzip.status(), 415, "a compressed body is not read");
    for taken in ["application/json", "application/json; charset=utf-8"] {
        assert_eq!(
            post("canonical", Some(taken), None).await.unwrap().status(),
            202
        );
    }
    assert_eq!(post("canonical", None, None).await.unwrap().status(), 202);
    let form = post("canonical", Some("application/x-www-form-urlencoded"), None)
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // Primero's webhook: the form type with a JSON body is read as JSON (it
    // is judged by the Primero decoder, not refused for its type).
    let primero = post("primero", Some("application/x-www-form-urlencoded"), None)
        .await
        .unwrap();
    assert_ne!(primero.status(), 415);
    let consent = gw
        .http
        .post(gw.url(&format!("/v1/records/{}/consent", uuid::Uuid::now_v7())))
        .bearer_auth(AGENCY)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 415);
    gw.stop().await;
}
