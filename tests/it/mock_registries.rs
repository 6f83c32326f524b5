//! The mock registries over real HTTP on 127.0.0.1:0: for each one, a valid
//! request is accepted with a receipt, a resend of the same key is a
//! duplicate (never a second registration), a malformed payload is refused
//! the registry's way, a missing or expired credential is refused, an
//! injected 503 carries Retry-After, the rate limit refuses the excess of a
//! burst, and arrivals record times and outcomes. Request bodies are written
//! by hand from ../shared/specs (FORMATS.md, examplia-civil-registry/).
//!
//! The Examplia tests need `xmllint` (Debian/Ubuntu: `apt-get install
//! libxml2-utils`): the mock validates against the published XSD with it, and
//! the tests use it as the oracle for the mock's own receipts and faults.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use registry_mocks as mocks;
use registry_mocks::{
    self, Clock, Endpoint, Fault, Limits, Locations, MockConfig, MockKind, Outcome, PrimeroAuth,
    RunningMock, XsdCheck,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A Monday, after every date in the hand-written requests.
const NOW: &str = "2026-10-22T08:00:00Z";

fn config(kind: MockKind) -> MockConfig {
    let mut config = MockConfig::new(kind);
    config.clock = Clock::manual(at(NOW));
    config.examplia.xsd = XsdCheck::Required;
    config
}

async fn start(config: MockConfig) -> RunningMock {
    if config.kind == MockKind::Examplia {
        require_xmllint();
    }
    mocks::start(config).await.expect("the mock starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

fn outcomes(mock: &RunningMock) -> Vec<Outcome> {
    mock.submissions().iter().map(|a| a.outcome).collect()
}

// --- OpenCRVS 2.x --------------------------------------------------------------

const OFFICE: &str = "f3da7778-161e-44a1-9e64-ab93dc1fe77f";

fn notify_body(transaction_id: &str) -> Value {
    json!({
        "eventType": "birth",
        "transactionId": transaction_id,
        "createdAtLocation": OFFICE,
        "declaration": {
            "child.name": {"firstname": "Chikondi", "surname": "Banda"},
            "child.gender": "female",
            "child.dob": "2025-03-01",
            "child.weightAtBirth": 3.15,
            "mother.name": {"firstname": "Grace", "surname": "Banda"},
            "father.detailsNotAvailable": true
        }
    })
}

async fn opencrvs_token(mock: &RunningMock) -> String {
    let url = format!(
        "{}?grant_type=client_credentials&client_id=registry-gateway&client_secret=mock-client-secret",
        mock.token_url().unwrap()
    );
    let response = http().post(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_of(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("expires_in").is_none(),
        "OpenCRVS sends no expires_in"
    );
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    token
}

async fn notify(mock: &RunningMock, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = http().post(mock.submit_url()).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn opencrvs_accepts_a_notification_with_a_tracking_id_and_replays_a_resend() {
    let mock = start(config(MockKind::Opencrvs)).await;
    let token = opencrvs_token(&mock).await;
    let key = "gw:canonical:7b1e3c1a-4f0d-4b8e-9a51-2d1f0c9e6a11:v1";

    let first = notify(&mock, Some(&token), &notify_body(key)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let event = json_of(first).await;
    let tracking = event["trackingId"].as_str().unwrap();
    assert_eq!(tracking.len(), 6);
    assert!(
        tracking
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert!(uuid::Uuid::try_parse(event["id"].as_str().unwrap()).is_ok());
    let notify_action = &event["actions"][1];
    assert_eq!(notify_action["type"], "NOTIFY");
    assert_eq!(notify_action["transactionId"], key);
    // v2.0.0 defaultRequestHandler: the NOTIFY is Requested, then the
    // country config's 200 adds an Accepted NOTIFY pointing at it.
    assert_eq!(notify_action["status"], "Requested");
    assert_eq!(event["actions"][2]["status"], "Accepted");
    assert_eq!(event["actions"][2]["originalActionId"], notify_action["id"]);

    // A resend with a changed declaration returns the same event: the
    // replay happens before validation.
    let mut changed = notify_body(key);
    changed["declaration"]["child.gender"] = json!("male");
    let again = notify(&mock, Some(&token), &changed).await;
    assert_eq!(again.status(), StatusCode::OK);
    let replay = json_of(again).await;
    assert_eq!(replay["id"], event["id"]);
    assert_eq!(replay["trackingId"], event["trackingId"]);
    assert_eq!(
        replay["actions"][1]["declaration"]["child.gender"],
        "female"
    );

    assert_eq!(mock.records().len(), 1, "one registration, not two");
    assert_eq!(outcomes(&mock), [Outcome::Accepted, Outcome::Duplicate]);
    let arrivals = mock.submissions();
    assert!(
        arrivals
            .iter()
            .all(|a| a.idempotency_key.as_deref() == Some(key))
    );
    assert_eq!(arrivals[0].reference.as_deref(), Some(tracking));
    assert_ne!(arrivals[0].body_sha256, arrivals[1].body_sha256);
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_refuses_malformed_notifications_with_400() {
    let mut config = config(MockKind::Opencrvs);
    config.opencrvs.locations = Some(Locations {
        offices: [OFFICE.to_string()].into(),
        ..Locations::default()
    });
    config.opencrvs.form = Some(
        [
            ("child.name", "NAME"),
            ("child.gender", "SELECT"),
            ("child.dob", "DATE"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let mock = start(config).await;
    let token = opencrvs_token(&mock).await;
    let valid = json!({"eventType": "birth", "transactionId": "t-1", "createdAtLocation": OFFICE,
                       "declaration": {"child.name": {"firstname": "A", "surname": "B"},
                                       "child.dob": "2025-03-01"}});

    let mut no_key = valid.clone();
    no_key.as_object_mut().unwrap().remove("transactionId");
    let mut bad_uuid = valid.clone();
    bad_uuid["createdAtLocation"] = json!("office-1");
    let mut unknown_event = valid.clone();
    unknown_event["eventType"] = json!("tennis-club-membership");
    let mut unknown_location = valid.clone();
    unknown_location["createdAtLocation"] = json!("0b8e0d6a-3a8e-4a39-9c5b-7f0e4c1d2a33");
    let mut unknown_field = valid.clone();
    unknown_field["declaration"]["child.favouriteColour"] = json!("blue");
    let mut bad_date = valid.clone();
    bad_date["declaration"]["child.dob"] = json!("01/03/2025");

    for (body, expected) in [
        (&no_key, "transactionId"),
        (&bad_uuid, "createdAtLocation"),
        (&unknown_event, "eventType"),
        (&unknown_location, "createdAtLocation"),
        (&unknown_field, "declaration"),
        (&bad_date, "declaration"),
    ] {
        let response = notify(&mock, Some(&token), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{expected}");
        let error = json_of(response).await;
        assert_eq!(error["code"], "BAD_REQUEST");
        if expected == "declaration" {
            // validateNotifyAction's list, JSON-encoded in `message`; the
            // real server echoes each value (the gateway must drop it).
            let list: Value = serde_json::from_str(error["message"].as_str().unwrap()).unwrap();
            assert!(
                list[0]["id"].as_str().unwrap().starts_with("child."),
                "{list}"
            );
            assert!(list[0].get("value").is_some(), "{list}");
        }
    }
    let not_json = http()
        .post(mock.submit_url())
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    assert!(mock.records().is_empty());
    assert!(outcomes(&mock).iter().all(|o| *o == Outcome::Rejected));
    let ok = notify(&mock, Some(&token), &valid).await;
    assert_eq!(ok.status(), StatusCode::OK, "the valid body is accepted");
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_tokens_expire_after_600_seconds_and_bad_clients_get_401() {
    let mock = start(config(MockKind::Opencrvs)).await;
    let base = mock.token_url().unwrap();
    let wrong = http()
        .post(format!(
            "{base}?grant_type=client_credentials&client_id=registry-gateway&client_secret=nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(wrong).await["error"], "invalid_client");
    let missing = http()
        .post(format!("{base}?grant_type=client_credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(missing).await["error"], "invalid_request");
    // Parameters may come in a form body too.
    let form = http()
        .post(&base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=registry-gateway&client_secret=mock-client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);

    let token = opencrvs_token(&mock).await;
    let none = notify(&mock, None, &notify_body("k-1")).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    mock.clock().advance(Duration::from_secs(599));
    assert_eq!(
        notify(&mock, Some(&token), &notify_body("k-1"))
            .await
            .status(),
        StatusCode::OK
    );
    mock.clock().advance(Duration::from_secs(1));
    let expired = notify(&mock, Some(&token), &notify_body("k-2")).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let fresh = opencrvs_token(&mock).await;
    assert_eq!(
        notify(&mock, Some(&fresh), &notify_body("k-2"))
            .await
            .status(),
        StatusCode::OK
    );

    let submissions = mock.submissions();
    assert_eq!(submissions[0].detail.as_deref(), Some("token_missing"));
    assert_eq!(submissions[2].detail.as_deref(), Some("token_expired"));
    let tokens = mock
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == Endpoint::Token)
        .count();
    assert_eq!(tokens, 5, "token requests are recorded too");
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_injected_503_carries_retry_after_then_it_recovers() {
    let mock = start(config(MockKind::Opencrvs)).await;
    let token = opencrvs_token(&mock).await;
    mock.faults().push(
        Fault::Status503 {
            retry_after: Some(Duration::from_secs(30)),
        }
        .times(2),
    );
    for _ in 0..2 {
        let response = notify(&mock, Some(&token), &notify_body("k")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "30");
    }
    assert_eq!(
        notify(&mock, Some(&token), &notify_body("k"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        outcomes(&mock),
        [Outcome::Fault, Outcome::Fault, Outcome::Accepted]
    );
    assert!(mock.faults().rules().is_empty(), "the rule ran out");
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_rate_limit_refuses_the_excess_of_a_burst_with_429() {
    let mut config = config(MockKind::Opencrvs);
    config.limits = Limits {
        rate_per_sec: 1.0,
        burst: 3,
        ..Limits::none()
    };
    let mock = start(config).await;
    let token = opencrvs_token(&mock).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = notify(&mock, Some(&token), &notify_body(&format!("k-{i}"))).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    mock.clock().advance(Duration::from_secs(1));
    assert_eq!(
        notify(&mock, Some(&token), &notify_body("k-5"))
            .await
            .status(),
        StatusCode::OK
    );
    let limited: Vec<_> = mock
        .submissions()
        .into_iter()
        .filter(|a| a.outcome == Outcome::Limited)
        .collect();
    assert_eq!(limited.len(), 2);
    assert!(limited.iter().all(|a| a.detail.as_deref() == Some("RATE")));
    mock.stop().await;
}

// --- OpenCRVS 1.x --------------------------------------------------------------

const ADMIN_AREA: &str = "0f7684a1-6a84-4c10-9ec1-8d5d8a5f3a01";
const FACILITY: &str = "4a1b9e2c-5d3f-4e6a-8b7c-9d0e1f2a3b4c";

fn v1_bundle(composition_id: &str) -> Value {
    json!({
        "resourceType": "Bundle", "type": "document",
        "meta": {"lastUpdated": "2026-10-19T09:30:00Z"},
        "entry": [
            {"fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000001",
             "resource": {"resourceType": "Composition",
                          "identifier": {"system": "urn:ietf:rfc:3986", "value": composition_id},
                          "type": {"coding": [{"system": "http://opencrvs.org/doc-types", "code": "birth-notification"}]},
                          "class": {"coding": [{"system": "http://opencrvs.org/doc-classes", "code": "crvs-document"}]},
                          "title": "Birth notification", "status": "preliminary",
                          "subject": {"reference": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000003"},
                          "date": "2026-10-19T09:30:00Z", "author": [],
                          "section": [{"code": {"coding": [{"system": "http://opencrvs.org/specs/sections", "code": "child-details"}]},
                                       "entry": [{"reference": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000003"}]}]}},
            {"fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000002",
             "resource": {"resourceType": "Task", "status": "draft", "intent": "unknown", "identifier": [],
                          "code": {"coding": [{"system": "http://opencrvs.org/specs/types", "code": "BIRTH"}]},
                          "focus": {"reference": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000001"},
                          "extension": [{"url": "http://opencrvs.org/specs/extension/regLastOffice",
                                         "valueReference": {"reference": format!("Location/{OFFICE}")}}]}},
            {"fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000003",
             "resource": {"resourceType": "Patient", "gender": "female", "birthDate": "2026-10-17",
                          "name": [{"use": "en", "given": ["Layan"], "family": "Al-Hassan"}]}},
            {"fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000004",
             "resource": {"resourceType": "Patient", "gender": "female",
                          "name": [{"use": "en", "given": ["Fatima"], "family": "Al-Khatib"}],
                          "address": [{"type": "PRIMARY_ADDRESS", "country": "EXA", "district": ADMIN_AREA}]}},
            {"fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-000000000005",
             "resource": {"resourceType": "Encounter",
                          "location": [{"location": {"reference": format!("Location/{FACILITY}")}}]}}
        ]
    })
}

fn v1_config() -> MockConfig {
    let mut config = config(MockKind::OpencrvsV1);
    config.opencrvs.locations = Some(Locations {
        offices: [OFFICE.to_string()].into(),
        facilities: [FACILITY.to_string()].into(),
        admin_areas: [(ADMIN_AREA.to_string(), None)].into(),
        ..Locations::default()
    });
    config
}

async fn v1_token(mock: &RunningMock) -> String {
    let url = format!(
        "{}?client_id=registry-gateway&client_secret=mock-client-secret&grant_type=client_credentials",
        mock.token_url().unwrap()
    );
    let response = http().post(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn opencrvs_v1_saves_the_bundle_with_a_tracking_id_and_flags_a_resend() {
    let mock = start(v1_config()).await;
    let token = v1_token(&mock).await;
    let bundle = v1_bundle("7d3f1c2e-8a4b-4c5d-9e6f-0a1b2c3d4e5f");
    let post = |body: Value, token: Option<String>| {
        let mut request = http().post(mock.submit_url()).json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };

    let saved = json_of(post(bundle.clone(), Some(token.clone())).await.unwrap()).await;
    let task = &saved["entry"][1]["resource"];
    let tracking = task["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "http://opencrvs.org/specs/id/birth-tracking-id")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        tracking.starts_with('B') && tracking.len() == 7,
        "{tracking}"
    );
    assert_eq!(task["businessStatus"]["coding"][0]["code"], "IN_PROGRESS");

    // 1.x honours no idempotency key: a resend is a second declaration,
    // saved and flagged by the duplicate check (workflow
    // eventNotificationHandler.ts), with its own ids.
    let response = post(bundle.clone(), Some(token.clone())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let duplicate = json_of(response).await;
    assert_eq!(duplicate["isPotentiallyDuplicate"], true);
    assert_ne!(duplicate["trackingId"], tracking.as_str());
    assert_ne!(
        duplicate["compositionId"],
        saved["entry"][0]["resource"]["id"]
    );
    assert_eq!(
        mock.records().len(),
        2,
        "the resend made a second declaration"
    );

    let unauthorised = post(bundle.clone(), None).await.unwrap();
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(unauthorised).await["error"], "Unauthorized");
    assert_eq!(
        outcomes(&mock),
        [Outcome::Accepted, Outcome::Duplicate, Outcome::Unauthorized]
    );
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_v1_applies_the_joi_and_task_rules_in_order() {
    let mock = start(v1_config()).await;
    let token = v1_token(&mock).await;
    let base = v1_bundle("c0ffee00-0000-4000-8000-000000000001");
    let mut not_task = base.clone();
    not_task["entry"][1]["resource"]["resourceType"] = json!("Observation");
    let mut no_last_updated = base.clone();
    no_last_updated["meta"] = json!({});
    let mut not_draft = base.clone();
    not_draft["entry"][1]["resource"]["status"] = json!("ready");
    let mut wrong_focus = base.clone();
    wrong_focus["entry"][1]["resource"]["focus"]["reference"] = json!("urn:uuid:other");
    let mut no_office = base.clone();
    no_office["entry"][1]["resource"]["extension"] = json!([]);
    let mut unknown_office = base.clone();
    unknown_office["entry"][1]["resource"]["extension"][0]["valueReference"]["reference"] =
        json!(format!("Location/{FACILITY}"));
    let mut no_patient = base.clone();
    no_patient["entry"].as_array_mut().unwrap().drain(2..4);
    let mut bad_hierarchy = base.clone();
    bad_hierarchy["entry"][3]["resource"]["address"][0]["district"] = json!(FACILITY);
    let mut no_encounter = base.clone();
    no_encounter["entry"].as_array_mut().unwrap().pop();

    for (body, status, rule) in [
        (not_task, 400, "joi"),
        (no_last_updated, 400, "joi"),
        (not_draft, 400, "task_status"),
        (wrong_focus, 400, "task_focus"),
        (no_office, 500, "reg_last_office"),
        (unknown_office, 500, "reg_last_office"),
        (no_patient, 500, "patient_missing"),
        (bad_hierarchy, 500, "address_location"),
        (no_encounter, 500, "encounter_missing"),
    ] {
        let response = http()
            .post(mock.submit_url())
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{rule}");
        let error = json_of(response).await;
        assert_eq!(error["statusCode"], status, "{rule}");
        assert!(error["message"].is_string());
        assert_eq!(
            mock.submissions().last().unwrap().detail.as_deref(),
            Some(rule)
        );
    }
    assert!(mock.records().is_empty());
    mock.stop().await;
}

// --- FHIR R4 exchange ------------------------------------------------------------

fn fhir_document(identifier: &str) -> Value {
    json!({"resourceType": "Bundle",
     "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{identifier}")},
     "type": "document", "timestamp": "2026-10-19T09:30:00Z",
     "entry": [
      {"fullUrl": "urn:uuid:5f0c0001-0000-4000-8000-000000000001", "resource": {"resourceType": "Composition", "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "71230-7"}]},
        "subject": {"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000002"},
        "encounter": {"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000005"},
        "date": "2026-10-19T09:30:00Z", "author": [{"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000005"}],
        "title": "Birth notification",
        "section": [{"title": "Child", "code": {"text": "child-details"},
                     "entry": [{"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000002"}]}]}},
      {"fullUrl": "urn:uuid:5f0c0001-0000-4000-8000-000000000002", "resource": {"resourceType": "Patient",
        "name": [{"use": "official", "family": "Banda", "given": ["Chikondi"]}],
        "gender": "female", "birthDate": "2026-10-17"}},
      {"fullUrl": "urn:uuid:5f0c0001-0000-4000-8000-000000000005", "resource": {"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000002"}}},
      {"fullUrl": "urn:uuid:5f0c0001-0000-4000-8000-000000000007", "resource": {"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8339-4"}]},
        "subject": {"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000002"},
        "encounter": {"reference": "urn:uuid:5f0c0001-0000-4000-8000-000000000005"},
        "valueQuantity": {"value": 3150, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}}}]})
}

async fn fhir_token(mock: &RunningMock) -> String {
    let response = http()
        .post(mock.token_url().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=registry-gateway&client_secret=mock-client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_of(response).await;
    assert_eq!(body["expires_in"], 300);
    body["access_token"].as_str().unwrap().to_string()
}

async fn post_fhir(mock: &RunningMock, token: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut request = http()
        .post(mock.submit_url())
        .header("content-type", "application/fhir+json")
        .body(body.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// R4 http.html#create and #ccreate: a plain create always creates (an
/// `Idempotency-Key` is not FHIR); `If-None-Exist` on the identifier finds
/// the stored one and answers it with 200, creating nothing.
#[tokio::test]
async fn fhir_exchange_creates_once_only_under_a_condition() {
    let mock = start(config(MockKind::FhirR4)).await;
    let token = fhir_token(&mock).await;
    let body = fhir_document("0d0c0000-0000-4000-8000-000000000001").to_string();
    let condition =
        "identifier=urn%3Aietf%3Arfc%3A3986%7Curn%3Auuid%3A0d0c0000-0000-4000-8000-000000000001";
    let conditional = || {
        http()
            .post(mock.submit_url())
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .header("If-None-Exist", condition)
            .body(body.clone())
    };

    let created = conditional().send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("Bundle/") && location.ends_with("/_history/1"),
        "{location}"
    );
    let stored = json_of(created).await;
    assert_eq!(stored["meta"]["versionId"], "1");

    let again = conditional().send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the condition finds the stored one"
    );
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    assert_eq!(json_of(again).await["id"], stored["id"]);
    assert_eq!(mock.records().len(), 1);

    let plain = post_fhir(&mock, Some(&token), body.as_bytes()).await;
    assert_eq!(
        plain.status(),
        StatusCode::CREATED,
        "a plain create does not look"
    );
    assert_ne!(json_of(plain).await["id"], stored["id"]);
    assert_eq!(mock.records().len(), 2);
    // Two documents now match: the condition is not selective enough.
    assert_eq!(
        conditional().send().await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        outcomes(&mock),
        [
            Outcome::Accepted,
            Outcome::Duplicate,
            Outcome::Accepted,
            Outcome::Rejected
        ]
    );
    mock.stop().await;
}

/// R4 http.html#update and #cond-update: a PUT to an id creates it (201) or
/// updates it (200, next version); the body's id must be the URL's.
#[tokio::test]
async fn fhir_exchange_updates_by_id_and_by_condition() {
    let mock = start(config(MockKind::FhirR4)).await;
    let token = fhir_token(&mock).await;
    let put = |url: String, body: Value| {
        http()
            .put(url)
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    let mut doc = fhir_document("0d0c0000-0000-4000-8000-000000000011");
    doc["id"] = json!("doc-11");
    let by_id = format!("{}/doc-11", mock.submit_url());
    assert_eq!(
        put(by_id.clone(), doc.clone()).await.unwrap().status(),
        StatusCode::CREATED
    );
    let updated = put(by_id.clone(), doc.clone()).await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.headers()["location"], "Bundle/doc-11/_history/2");
    let wrong = put(format!("{}/doc-12", mock.submit_url()), doc.clone())
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);

    let condition =
        "?identifier=urn%3Aietf%3Arfc%3A3986%7Curn%3Auuid%3A0d0c0000-0000-4000-8000-000000000011";
    let url = format!("{}{condition}", mock.submit_url());
    doc.as_object_mut().unwrap().remove("id");
    let by_condition = put(url.clone(), doc.clone()).await.unwrap();
    assert_eq!(by_condition.status(), StatusCode::OK);
    assert_eq!(
        by_condition.headers()["location"],
        "Bundle/doc-11/_history/3"
    );
    doc["id"] = json!("someone-else");
    assert_eq!(
        put(url, doc).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let unknown = http()
        .put(format!("{}?timestamp=2026", mock.submit_url()))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(fhir_document("0d0c0000-0000-4000-8000-000000000013").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mock.records().len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn fhir_exchange_refuses_broken_documents_with_an_operation_outcome() {
    let mock = start(config(MockKind::FhirR4)).await;
    let token = fhir_token(&mock).await;
    let mut no_identifier = fhir_document("0d0c0000-0000-4000-8000-000000000002");
    no_identifier.as_object_mut().unwrap().remove("identifier");
    let mut dangling = fhir_document("0d0c0000-0000-4000-8000-000000000003");
    dangling["entry"].as_array_mut().unwrap().remove(2);
    let mut no_status = fhir_document("0d0c0000-0000-4000-8000-000000000004");
    no_status["entry"][3]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("status");

    for (body, expression) in [
        (no_identifier, "Bundle.identifier"),
        (dangling, "Bundle.entry[0].resource.encounter.reference"),
        (no_status, "Bundle.entry[3].resource.status"),
    ] {
        let response = post_fhir(&mock, Some(&token), body.to_string().as_bytes()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{expression}"
        );
        let outcome = json_of(response).await;
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        let expressions: Vec<&Value> = outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["expression"].as_array().unwrap())
            .collect();
        assert!(
            expressions.contains(&&json!(expression)),
            "{expression} in {expressions:?}"
        );
    }
    let not_json = post_fhir(&mock, Some(&token), b"<Bundle/>").await;
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let no_token = post_fhir(&mock, None, b"{}").await;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert!(
        no_token.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    mock.clock().advance(Duration::from_secs(300));
    let body = fhir_document("0d0c0000-0000-4000-8000-000000000005").to_string();
    let expired = post_fhir(&mock, Some(&token), body.as_bytes()).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(mock.records().is_empty());
    mock.stop().await;
}

#[tokio::test]
async fn fhir_exchange_faults_and_limits_speak_operation_outcome() {
    let mut config = config(MockKind::FhirR4);
    config.limits = Limits {
        rate_per_sec: 2.0,
        burst: 2,
        ..Limits::none()
    };
    let mock = start(config).await;
    let token = fhir_token(&mock).await;
    mock.faults().push(Fault::Status503 {
        retry_after: Some(Duration::from_secs(12)),
    });
    let body =
        |n: u32| fhir_document(&format!("0d0c0000-0000-4000-8000-00000000010{n}")).to_string();
    let unavailable = post_fhir(&mock, Some(&token), body(0).as_bytes()).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.headers()["retry-after"], "12");
    assert_eq!(json_of(unavailable).await["issue"][0]["code"], "transient");
    assert_eq!(
        post_fhir(&mock, Some(&token), body(1).as_bytes())
            .await
            .status(),
        StatusCode::CREATED
    );
    let limited = post_fhir(&mock, Some(&token), body(2).as_bytes()).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(json_of(limited).await["issue"][0]["code"], "throttled");
    mock.stop().await;
}

// --- Primero v2 ------------------------------------------------------------------

fn case(id: &str) -> Value {
    json!({"data": {
        "id": id, "module_id": "primeromodule-cp",
        "name_first": "Amina", "name_last": "Yusuf", "sex": "female",
        "date_of_birth": "2013-05-02", "age": 11, "estimated": false,
        "registration_date": "2025-03-04", "protection_status": "unaccompanied",
        "consent_for_services": true, "disclosure_other_orgs": true,
        "family_details_section": [{"unique_id": "0d6c2f8e-7a43-4a8b-9d0e-3f1b2c4d5e6f", "relation": "mother"}]
    }})
}

const CASE_ID: &str = "7b1e3c1a-4f0d-4b8e-9a51-2d1f0c9e6a11";

fn primero_config(auth: PrimeroAuth) -> MockConfig {
    let mut config = config(MockKind::Primero);
    config.primero_auth = auth;
    config
}

fn basic(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.basic_auth("registry-gateway", Some("mock-password"))
}

/// The cookies of `Set-Cookie` headers as a `Cookie` header, and the CSRF token.
fn cookies_of(response: &reqwest::Response) -> (String, Option<String>) {
    let pairs: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let csrf = pairs
        .iter()
        .find_map(|c| c.strip_prefix("CSRF-TOKEN="))
        .map(str::to_string);
    (pairs.join("; "), csrf)
}

fn login_body() -> Value {
    json!({"user": {"user_name": "registry-gateway", "password": "mock-password"}})
}

#[tokio::test]
async fn primero_creates_a_case_with_204_and_answers_409_to_the_same_id() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    let post = |body: Value| basic(http().post(mock.submit_url())).json(&body).send();

    let created = post(case(CASE_ID)).await.unwrap();
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    assert!(created.bytes().await.unwrap().is_empty());
    let conflict = post(case(CASE_ID)).await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let error = json_of(conflict).await;
    assert_eq!(error["errors"][0]["status"], 409);
    assert_eq!(error["errors"][0]["resource"], "/api/v2/cases");
    assert_eq!(
        error["errors"][0]["message"],
        "Conflict: A record with this id already exists"
    );
    assert_eq!(mock.records().len(), 1);

    // Without a client id the case is created with 200 and its new id.
    let mut no_id = case(CASE_ID);
    no_id["data"].as_object_mut().unwrap().remove("id");
    let created = json_of(post(no_id).await.unwrap()).await;
    assert!(uuid::Uuid::try_parse(created["data"]["id"].as_str().unwrap()).is_ok());
    // The creator owns a case unless the request names an owner.
    assert_eq!(created["data"]["owned_by"], "registry-gateway");
    assert_eq!(
        outcomes(&mock),
        [Outcome::Accepted, Outcome::Duplicate, Outcome::Accepted]
    );
    assert_eq!(
        mock.submissions()[1].idempotency_key.as_deref(),
        Some(CASE_ID)
    );
    mock.stop().await;
}

#[tokio::test]
async fn primero_refuses_bad_values_with_their_pointers_and_drops_unknown_fields() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    let mut bad = case("not-a-uuid");
    bad["data"]["module_id"] = json!("primeromodule-xyz");
    bad["data"]["sex"] = json!("CANARY-SEX");
    bad["data"]["registration_date"] = json!("04/03/2025");
    bad["data"]["family_details_section"][0]["relation"] = json!("CANARY-REL");
    let response = basic(http().post(mock.submit_url()))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_of(response).await;
    assert_eq!(body["errors"][0]["message"], "Invalid Record JSON");
    assert_eq!(body["errors"][0]["status"], 422);
    assert_eq!(
        body["errors"][0]["detail"],
        json!([
            "/family_details_section/0/relation",
            "/id",
            "/module_id",
            "/registration_date",
            "/sex"
        ])
    );
    assert!(!body.to_string().contains("CANARY"), "no value echoed");
    assert!(!body.to_string().contains("04/03/2025"), "no value echoed");

    // v2.15 keeps what its forms know and drops the rest without a word: an
    // override reason is no field of Primero's (nor of Examplia's instance).
    let mut old = case(CASE_ID);
    old["data"]["consent_overridden"] = json!(true);
    old["data"]["consent_override_reason"] = json!("CANARY");
    let response = basic(http().post(mock.submit_url()))
        .json(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        mock.submissions()[1].detail.as_deref(),
        Some("dropped /consent_override_reason")
    );
    let stored = json_of(
        basic(http().get(format!("{}/{CASE_ID}", mock.submit_url())))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stored["data"]["consent_overridden"], true);
    assert!(stored["data"].get("consent_override_reason").is_none());

    let no_envelope = basic(http().post(mock.submit_url()))
        .json(&json!({"id": CASE_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_envelope.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mock.records().len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn primero_patch_merges_subform_rows_by_unique_id() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    let url = format!("{}/{CASE_ID}", mock.submit_url());
    let missing = basic(http().patch(&url))
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let created = basic(http().post(mock.submit_url()))
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    let row = "0d6c2f8e-7a43-4a8b-9d0e-3f1b2c4d5e6f";
    let new_row = "5e8f7a6b-1c2d-4e3f-9a0b-1c2d3e4f5a6b";
    let patch = json!({"data": {"age": 12, "family_details_section": [
        {"unique_id": row, "relation_name": "x"},
        {"unique_id": new_row, "relation": "father"}]}});
    let updated = basic(http().patch(&url)).json(&patch).send().await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let stored = json_of(basic(http().get(&url)).send().await.unwrap()).await;
    let rows = stored["data"]["family_details_section"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["relation"], "mother", "kept from the first version");
    assert_eq!(rows[0]["relation_name"], "x");
    assert_eq!(rows[1]["relation"], "father");
    assert_eq!(stored["data"]["age"], 12);
    assert_eq!(stored["data"]["name_first"], "Amina");
    // A bad value in a patch is refused like one in a create.
    let bad = basic(http().patch(&url))
        .json(&json!({"data": {"sex": "CANARY"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mock.records().len(), 1, "one case");
    mock.stop().await;
}

#[tokio::test]
async fn primero_v2_15_login_answers_no_token_and_is_itself_csrf_protected() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    // The pre-v2.11 flow: a bare login. Refused by CSRF protection, and no
    // JWT anywhere in any answer.
    let bare = http()
        .post(mock.token_url().unwrap())
        .json(&login_body())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    assert!(bare.headers().get("authorization").is_none());
    assert_eq!(
        json_of(bare).await["errors"][0]["message"],
        "Can't verify CSRF token authenticity."
    );

    let health = format!("{}/health/server?session=true", mock.base_url());
    let first = http().get(&health).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let (cookie, csrf) = cookies_of(&first);
    let csrf = csrf.unwrap();
    let login = http()
        .post(mock.token_url().unwrap())
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&login_body())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.headers().get("authorization").is_none());
    let (session_cookie, _) = cookies_of(&login);
    let session_cookie = session_cookie
        .split("; ")
        .find(|c| c.starts_with("_app_session="))
        .unwrap()
        .to_string();
    let body = json_of(login).await;
    assert_eq!(body["user_name"], "registry-gateway");
    assert!(body.get("group_permission").is_some() && body.get("id").is_some());
    assert!(body.get("token").is_none());

    let post = |csrf: Option<&str>, id: &str| {
        let mut request = http()
            .post(mock.submit_url())
            .header("cookie", session_cookie.clone())
            .json(&case(id));
        if let Some(t) = csrf {
            request = request.header("x-csrf-token", t.to_string());
        }
        request.send()
    };
    // The login renewed the token: the old one is refused with 403.
    assert_eq!(
        post(Some(&csrf), CASE_ID).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(None, CASE_ID).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let again = http()
        .get(&health)
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    let fresh = cookies_of(&again).1.unwrap();
    assert_ne!(fresh, csrf);
    assert_eq!(
        post(Some(&fresh), CASE_ID).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );

    // A second login (v2.12+) ends the first session.
    let other = http().get(&health).send().await.unwrap();
    let (other_cookie, other_csrf) = cookies_of(&other);
    let relogin = http()
        .post(mock.token_url().unwrap())
        .header("cookie", &other_cookie)
        .header("x-csrf-token", other_csrf.unwrap())
        .json(&login_body())
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), StatusCode::OK);
    let other_id = "9c2d7e4f-1a3b-4c5d-8e6f-7a8b9c0d1e2f";
    assert_eq!(
        post(Some(&fresh), other_id).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Basic needs neither session nor CSRF token.
    let ok = basic(http().post(mock.submit_url()))
        .json(&case(other_id))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    mock.stop().await;
}

#[tokio::test]
async fn primero_sessions_end_after_an_hour_idle() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    let health = format!("{}/health/server?session=true", mock.base_url());
    let (cookie, csrf) = cookies_of(&http().get(&health).send().await.unwrap());
    let login = http()
        .post(mock.token_url().unwrap())
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf.unwrap())
        .json(&login_body())
        .send()
        .await
        .unwrap();
    let session = cookies_of(&login).0;
    let session = session
        .split("; ")
        .find(|c| c.starts_with("_app_session="))
        .unwrap()
        .to_string();
    mock.clock().advance(Duration::from_secs(3600));
    let stale = http()
        .get(format!("{}/{CASE_ID}", mock.submit_url()))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    mock.stop().await;
}

#[tokio::test]
async fn primero_basic_and_idp_bearer_modes() {
    let basic = start(primero_config(PrimeroAuth::Native)).await;
    let ok = http()
        .post(basic.submit_url())
        .basic_auth("registry-gateway", Some("mock-password"))
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let wrong = http()
        .post(basic.submit_url())
        .basic_auth("registry-gateway", Some("nope"))
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    basic.stop().await;

    let idp = start(primero_config(PrimeroAuth::IdpBearer)).await;
    let response = http()
        .post(idp.token_url().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=registry-gateway&client_secret=mock-client-secret")
        .send()
        .await
        .unwrap();
    let token = json_of(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = http()
        .post(idp.submit_url())
        .bearer_auth(&token)
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    idp.stop().await;
}

#[tokio::test]
async fn primero_503_while_configuration_is_locked_carries_retry_after() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    mock.faults().push(Fault::Status503 {
        retry_after: Some(Duration::from_secs(120)),
    });
    let response = http()
        .post(mock.submit_url())
        .basic_auth("registry-gateway", Some("mock-password"))
        .json(&case(CASE_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "120");
    assert_eq!(json_of(response).await["errors"][0]["status"], 503);
    assert!(mock.records().is_empty(), "nothing stored on a fault");
    mock.stop().await;
}

// --- injected faults and the admin endpoints (shared by every mock) -----------

#[tokio::test]
async fn faults_reset_hang_and_delay_and_the_mock_keeps_serving() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    let post = |id: &str, timeout: Duration| {
        http()
            .post(mock.submit_url())
            .basic_auth("registry-gateway", Some("mock-password"))
            .timeout(timeout)
            .json(&case(id))
            .send()
    };
    let ids = [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003",
        "00000000-0000-4000-8000-000000000004",
    ];

    mock.faults().push(Fault::ConnectionReset);
    let reset = post(ids[0], Duration::from_secs(5)).await;
    assert!(reset.is_err(), "the connection was reset, not answered");

    mock.faults().push(Fault::Timeout.until_cleared());
    let hung = post(ids[1], Duration::from_millis(300)).await;
    assert!(hung.unwrap_err().is_timeout());
    mock.faults().clear();

    mock.faults()
        .push(Fault::Latency(Duration::from_millis(400)));
    let started = Instant::now();
    let slow = post(ids[2], Duration::from_secs(5)).await.unwrap();
    assert_eq!(slow.status(), StatusCode::NO_CONTENT);
    assert!(started.elapsed() >= Duration::from_millis(400));

    assert_eq!(
        post(ids[3], Duration::from_secs(5)).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let arrivals = mock.submissions();
    assert_eq!(arrivals[0].status, None);
    assert_eq!(arrivals[0].detail.as_deref(), Some("connection_reset"));
    assert_eq!(arrivals[1].status, None);
    assert_eq!(arrivals[1].detail.as_deref(), Some("timeout"));
    assert_eq!(
        outcomes(&mock),
        [
            Outcome::Fault,
            Outcome::Fault,
            Outcome::Accepted,
            Outcome::Accepted
        ]
    );
    // Neither the reset nor the hang stored anything.
    let keys: Vec<_> = mock.records().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, [ids[2], ids[3]]);
    mock.stop().await;
}

#[tokio::test]
async fn the_admin_endpoints_inject_faults_and_list_arrivals() {
    let mock = start(config(MockKind::Opencrvs)).await;
    let admin = |path: &str| format!("{}/_mock{path}", mock.base_url());
    let added = http()
        .post(admin("/faults"))
        .json(&json!({"fault": "status_500", "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let listed = json_of(http().get(admin("/faults")).send().await.unwrap()).await;
    assert_eq!(listed["rules"][0]["fault"], "status_500");
    assert_eq!(listed["rules"][0]["count"], 2);
    let bad = http()
        .post(admin("/faults"))
        .json(&json!({"fault": "latency"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let token = opencrvs_token(&mock).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = notify(&mock, Some(&token), &notify_body(&format!("k-{i}"))).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 200]);

    let arrivals = json_of(http().get(admin("/arrivals")).send().await.unwrap()).await;
    let arrivals = arrivals.as_array().unwrap();
    assert_eq!(
        arrivals.len(),
        4,
        "one token request and three notifications"
    );
    assert_eq!(arrivals[0]["endpoint"], "token");
    let submitted: Vec<_> = arrivals[1..]
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(submitted, ["fault", "fault", "accepted"]);
    assert_eq!(arrivals[3]["idempotency_key"], "k-2");
    assert!(
        arrivals
            .windows(2)
            .all(|w| w[0]["elapsed_ms"].as_f64() <= w[1]["elapsed_ms"].as_f64())
    );
    let records = json_of(http().get(admin("/records")).send().await.unwrap()).await;
    assert_eq!(records[0]["key"], "k-2");
    assert!(records[0].get("body").is_none(), "no bodies over HTTP");

    assert_eq!(
        http()
            .delete(admin("/arrivals"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(mock.arrivals().is_empty());
    mock.faults().push(Fault::Status500.until_cleared());
    assert_eq!(
        http()
            .delete(admin("/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(mock.faults().rules().is_empty());
    mock.stop().await;
}

#[tokio::test]
async fn arrivals_record_the_pace_of_a_paced_client() {
    let mock = start(primero_config(PrimeroAuth::Native)).await;
    for i in 0..4 {
        let response = http()
            .post(mock.submit_url())
            .basic_auth("registry-gateway", Some("mock-password"))
            .json(&case(&format!("00000000-0000-4000-8000-00000000010{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrivals = mock.submissions();
    assert_eq!(arrivals.len(), 4);
    for pair in arrivals.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(100), "gap {gap:?}");
        assert!(pair[1].seq > pair[0].seq);
    }
    mock.stop().await;
}

// --- Examplia CRVSO over X-Road ------------------------------------------------

fn require_xmllint() {
    let found = Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "xmllint is required by the Examplia mock tests: apt-get install libxml2-utils"
    );
}

const HEADER: &str = r#"<SOAP-ENV:Header>
    <xrd:client id:objectType="SUBSYSTEM">
      <id:xRoadInstance>EXA</id:xRoadInstance>
      <id:memberClass>ORG</id:memberClass>
      <id:memberCode>90000123</id:memberCode>
      <id:subsystemCode>registry-gateway</id:subsystemCode>
    </xrd:client>
    <xrd:service id:objectType="SERVICE">
      <id:xRoadInstance>EXA</id:xRoadInstance>
      <id:memberClass>GOV</id:memberClass>
      <id:memberCode>70000001</id:memberCode>
      <id:subsystemCode>crvs</id:subsystemCode>
      <id:serviceCode>submitBirthNotification</id:serviceCode>
      <id:serviceVersion>v1</id:serviceVersion>
    </xrd:service>
    <xrd:id>XRD-ID</xrd:id>
    <xrd:userId>UNHCR:registry-gateway</xrd:userId>
    <xrd:protocolVersion>4.0</xrd:protocolVersion>
  </SOAP-ENV:Header>"#;

/// The notification of examples 04/05.
const NOTIFICATION: &str = r#"<bn:BirthNotification>
        <bn:NotificationId>feee0a7b-26dc-419a-b4d6-8d8ae89c2f06</bn:NotificationId>
        <bn:SourceSystem>
          <bn:AgencyCode>UNHCR</bn:AgencyCode>
          <bn:SystemName>proGres</bn:SystemName>
          <bn:SystemVersion>4</bn:SystemVersion>
        </bn:SourceSystem>
        <bn:NotifiedAt>2026-10-19T10:05:12+03:00</bn:NotifiedAt>
        <bn:Child>
          <bn:Name>
            <bn:GivenNames script="Arab">ليان</bn:GivenNames>
            <bn:GivenNamesLatin>Layan</bn:GivenNamesLatin>
            <bn:FamilyName script="Arab">الحسن</bn:FamilyName>
            <bn:FamilyNameLatin>Al-Hassan</bn:FamilyNameLatin>
          </bn:Name>
          <bn:Sex>2</bn:Sex>
          <bn:DateOfBirth>2026-10-17</bn:DateOfBirth>
          <bn:PlaceOfBirth>
            <bn:Type>HEALTH_FACILITY</bn:Type>
            <bn:FacilityCode>HF-090214</bn:FacilityCode>
            <bn:AdminArea>EX0902014</bn:AdminArea>
            <bn:CountryOfBirth>EXA</bn:CountryOfBirth>
          </bn:PlaceOfBirth>
        </bn:Child>
        <bn:BirthType>SINGLE</bn:BirthType>
        <bn:BirthOrder>1</bn:BirthOrder>
        <bn:BirthWeightGrams>3100</bn:BirthWeightGrams>
        <bn:AttendantAtBirth>MIDWIFE</bn:AttendantAtBirth>
        <bn:Mother>
          <bn:Name>
            <bn:GivenNames script="Arab">فاطمة</bn:GivenNames>
            <bn:GivenNamesLatin>Fatima</bn:GivenNamesLatin>
            <bn:FamilyName script="Arab">الخطيب</bn:FamilyName>
            <bn:FamilyNameLatin>Al-Khatib</bn:FamilyNameLatin>
          </bn:Name>
          <bn:AgeYears>27</bn:AgeYears>
          <bn:Nationality>XXB</bn:Nationality>
          <bn:Identifiers>
            <bn:Identifier scheme="UNHCR_INDIVIDUAL">EXA-26-0041278</bn:Identifier>
            <bn:Identifier scheme="UNHCR_CASE">EXA-26C01954</bn:Identifier>
          </bn:Identifiers>
          <bn:ResidenceAdminArea>EX0902014</bn:ResidenceAdminArea>
        </bn:Mother>
        <bn:Father>
          <bn:Name>
            <bn:GivenNames script="Arab">عمر</bn:GivenNames>
            <bn:GivenNamesLatin>Omar</bn:GivenNamesLatin>
            <bn:FamilyName script="Arab">الحسن</bn:FamilyName>
            <bn:FamilyNameLatin>Al-Hassan</bn:FamilyNameLatin>
          </bn:Name>
          <bn:AgeYears>31</bn:AgeYears>
          <bn:Nationality>XXB</bn:Nationality>
          <bn:Identifiers>
            <bn:Identifier scheme="UNHCR_INDIVIDUAL">EXA-26-0041279</bn:Identifier>
          </bn:Identifiers>
          <bn:ResidenceAdminArea>EX0902014</bn:ResidenceAdminArea>
        </bn:Father>
        <bn:Informant>
          <bn:Relationship>MOTHER</bn:Relationship>
        </bn:Informant>
        <bn:LegalBasis>CONSENT</bn:LegalBasis>
        <bn:ConsentReference>UNHCR-EXA-CNS-118204</bn:ConsentReference>
        <bn:DisplacementStatus>REFUGEE</bn:DisplacementStatus>
      </bn:BirthNotification>"#;

const NOTIFICATION_ID: &str = "feee0a7b-26dc-419a-b4d6-8d8ae89c2f06";

/// Example 05 with this xrd:id and this notification.
fn soap(xrd_id: &str, notification: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
                   xmlns:xrd="http://x-road.eu/xsd/xroad.xsd"
                   xmlns:id="http://x-road.eu/xsd/identifiers"
                   xmlns:bn="urn:examplia:crvs:birth-notification:1">
  {}
  <SOAP-ENV:Body>
    <bn:submitBirthNotification>
      {notification}
    </bn:submitBirthNotification>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#,
        HEADER.replace("XRD-ID", xrd_id)
    )
}

fn with_id(notification: &str, id: &str) -> String {
    notification.replace(NOTIFICATION_ID, id)
}

async fn post_soap(mock: &RunningMock, body: String) -> (u16, Option<String>, String) {
    let response = http()
        .post(mock.submit_url())
        .header("content-type", "text/xml; charset=UTF-8")
        .header("soapaction", "\"\"")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml"),
        "SOAP answers are text/xml"
    );
    (status, retry_after, response.text().await.unwrap())
}

/// The text of the first element with this local name.
fn text_of<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let open = format!(":{local}>");
    let start = xml.find(&open).map(|i| i + open.len()).or_else(|| {
        let bare = format!("<{local}>");
        xml.find(&bare).map(|i| i + bare.len())
    })?;
    let end = start + xml[start..].find("</")?;
    Some(&xml[start..end])
}

fn all_texts<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    let open = format!(":{local}>");
    xml.match_indices(&open)
        .filter_map(|(i, _)| {
            let start = i + open.len();
            xml[start..].find("</").map(|end| &xml[start..start + end])
        })
        .collect()
}

/// Cut the element with this local name (and the `bn` declaration it
/// carries) out of a response and validate it with xmllint: the oracle.
fn assert_valid_against_xsd(xml: &str, local: &str) {
    let open = format!("<bn:{local} ");
    let close = format!("</bn:{local}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {local} in {xml}"));
    let end = xml.find(&close).unwrap() + close.len();
    let fragment = &xml[start..end];
    let xsd = std::env::temp_dir().join(format!("mock-test-{}-{local}.xsd", std::process::id()));
    std::fs::write(&xsd, mocks::EXAMPLIA_XSD).unwrap();
    let mut child = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(fragment.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{local} is not valid against the XSD: {}\n{fragment}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The response copies the request header unchanged, then adds requestHash.
fn assert_header_copied(request: &str, response: &str) {
    let start = request.find("<SOAP-ENV:Header>").unwrap() + "<SOAP-ENV:Header>".len();
    let end = request.find("</SOAP-ENV:Header>").unwrap();
    let copied = &request[start..end];
    let at = response
        .find(copied)
        .expect("the request header, unchanged and in order");
    assert!(response[at + copied.len()..].starts_with("<xrd:requestHash "));
    assert!(response.contains(r#"algorithmId="http://www.w3.org/2001/04/xmlenc#sha512""#));
}

#[tokio::test]
async fn examplia_accepts_example_05_with_a_receipt_and_copies_the_header() {
    let mock = start(config(MockKind::Examplia)).await;
    let request = soap("1e9cddfa-6f77-4c8c-be4d-964ba8af78f9", NOTIFICATION);
    let (status, _, xml) = post_soap(&mock, request.clone()).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(text_of(&xml, "Status"), Some("ACCEPTED"), "{xml}");
    assert_eq!(text_of(&xml, "NotificationId"), Some(NOTIFICATION_ID));
    assert_eq!(
        text_of(&xml, "RegistryReference"),
        Some("EXA-BN-2026-00000001")
    );
    assert_eq!(
        text_of(&xml, "ReceivedAt"),
        Some("2026-10-22T10:00:00.000+02:00")
    );
    assert_header_copied(&request, &xml);
    assert_valid_against_xsd(&xml, "submitBirthNotificationResponse");
    let arrival = &mock.submissions()[0];
    assert_eq!(arrival.outcome, Outcome::Accepted);
    assert_eq!(arrival.idempotency_key.as_deref(), Some(NOTIFICATION_ID));
    assert_eq!(arrival.reference.as_deref(), Some("EXA-BN-2026-00000001"));
    assert!(mock.stored_body(NOTIFICATION_ID).is_some());
    mock.stop().await;
}

#[tokio::test]
async fn examplia_answers_duplicate_for_the_same_content_and_a_fault_for_other_content() {
    let mock = start(config(MockKind::Examplia)).await;
    let (_, _, first) = post_soap(
        &mock,
        soap("1e9cddfa-6f77-4c8c-be4d-964ba8af78f9", NOTIFICATION),
    )
    .await;
    assert_eq!(text_of(&first, "Status"), Some("ACCEPTED"));

    // A retry: new xrd:id, other prefixes and whitespace, same content.
    mock.clock().advance(Duration::from_secs(90));
    let reformatted = NOTIFICATION
        .replace("bn:", "n:")
        .replace(
            "<n:BirthNotification>",
            r#"<n:BirthNotification xmlns:n="urn:examplia:crvs:birth-notification:1">"#,
        )
        .replace("\n        ", "");
    let (status, _, again) = post_soap(
        &mock,
        soap("2a0d4f7e-3b1c-4d5e-8f9a-0b1c2d3e4f5a", &reformatted),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(text_of(&again, "Status"), Some("DUPLICATE"));
    assert_eq!(
        text_of(&again, "RegistryReference"),
        text_of(&first, "RegistryReference")
    );
    assert_eq!(
        text_of(&again, "ReceivedAt"),
        text_of(&first, "ReceivedAt"),
        "the original time"
    );
    assert_valid_against_xsd(&again, "submitBirthNotificationResponse");

    let changed = NOTIFICATION.replace("<bn:BirthWeightGrams>3100", "<bn:BirthWeightGrams>3150");
    let (status, _, fault) = post_soap(
        &mock,
        soap("3b1e5a8f-4c2d-4e6f-9a0b-1c2d3e4f5a6b", &changed),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(text_of(&fault, "faultcode"), Some("Client.Duplicate"));
    assert_eq!(
        text_of(&fault, "RegistryReference"),
        Some("EXA-BN-2026-00000001")
    );
    assert_valid_against_xsd(&fault, "RegistryFault");

    assert_eq!(mock.records().len(), 1, "never a second record");
    assert_eq!(
        outcomes(&mock),
        [Outcome::Accepted, Outcome::Duplicate, Outcome::Conflict]
    );
    mock.stop().await;
}

#[tokio::test]
async fn examplia_refuses_what_the_xsd_refuses_with_client_schema_invalid() {
    let mock = start(config(MockKind::Examplia)).await;
    let id = "5b0e8c31-7d2a-4f69-b1e4-9a3c6d02f7e8";
    let base = with_id(NOTIFICATION, id);
    // One defect each, as in examples/invalid/.
    let cases = [
        (
            base.replace("2026-10-19T10:05:12+03:00", "2026-10-19T10:05:12"),
            "/BirthNotification/NotifiedAt",
        ),
        (
            base.replace("<bn:BirthWeightGrams>3100", "<bn:BirthWeightGrams>3.1"),
            "/BirthNotification/BirthWeightGrams",
        ),
        (
            base.replacen("<bn:Nationality>XXB", "<bn:Nationality>SY", 1),
            "/BirthNotification/Mother/Nationality",
        ),
        (
            base.replacen(
                "<bn:GivenNamesLatin>Fatima",
                "<bn:GivenNamesLatin>\u{200F}Fatima",
                1,
            ),
            "/BirthNotification/Mother/Name/GivenNamesLatin",
        ),
        (
            base.replace(
                r#"scheme="UNHCR_CASE">"#,
                r#"scheme="UNHCR_CASE" issuer="XX">"#,
            ),
            "/BirthNotification/Mother/Identifiers/Identifier[2]/@issuer",
        ),
        (
            base.replace(id, &id.to_uppercase()),
            "/BirthNotification/NotificationId",
        ),
    ];
    for (notification, path) in cases {
        let (status, _, xml) = post_soap(
            &mock,
            soap("0c5a7e2d-93f1-4b6e-a8d4-2e7f10b9c356", &notification),
        )
        .await;
        assert_eq!(status, 500, "{path}");
        assert_eq!(
            text_of(&xml, "faultcode"),
            Some("Client.SchemaInvalid"),
            "{path}: {xml}"
        );
        assert_eq!(text_of(&xml, "Code"), Some("SCHEMA_VIOLATION"));
        let paths = all_texts(&xml, "Path");
        assert!(paths.contains(&path), "{path} in {paths:?}");
        assert_valid_against_xsd(&xml, "RegistryFault");
        assert!(
            xml.contains("<xrd:requestHash "),
            "a registry fault copies the header"
        );
        for value in ["10:05:12<", "3.1<", ">SY<", "\u{200F}"] {
            assert!(
                !all_texts(&xml, "Message").iter().any(|m| m.contains(value)),
                "no value echoed"
            );
        }
    }
    let (_, _, xml) = post_soap(&mock, "<SOAP-ENV:Envelope".into()).await;
    assert_eq!(text_of(&xml, "faultcode"), Some("Client.SchemaInvalid"));
    assert!(
        !xml.contains("requestHash"),
        "an unreadable request has no header to copy"
    );
    let wrong_wrapper = soap("0c5a7e2d-93f1-4b6e-a8d4-2e7f10b9c356", NOTIFICATION)
        .replace("submitBirthNotification>", "notifyBirth>");
    let (_, _, xml) = post_soap(&mock, wrong_wrapper).await;
    assert_eq!(text_of(&xml, "faultcode"), Some("Client.SchemaInvalid"));
    assert!(mock.records().is_empty());
    mock.stop().await;
}

#[tokio::test]
async fn examplia_checks_the_x_road_header() {
    let mock = start(config(MockKind::Examplia)).await;
    let valid = soap("6d7e8f90-1a2b-4c3d-8e4f-5a6b7c8d9e0f", NOTIFICATION);
    for (request, faultcode) in [
        (
            valid.replace("<xrd:protocolVersion>4.0", "<xrd:protocolVersion>3.1"),
            "Client.InvalidProtocolVersion",
        ),
        (
            valid.replace("<id:memberCode>70000001", "<id:memberCode>70000002"),
            "Server.ServerProxy.UnknownService",
        ),
        (
            valid.replace("<xrd:userId>UNHCR:registry-gateway</xrd:userId>", ""),
            "Client.SchemaInvalid",
        ),
        (
            valid.replace("<xrd:id>6d7e8f90-1a2b-4c3d-8e4f-5a6b7c8d9e0f</xrd:id>", ""),
            "Client.MissingHeaderField",
        ),
    ] {
        let (status, _, xml) = post_soap(&mock, request).await;
        assert_eq!(status, 500);
        assert_eq!(text_of(&xml, "faultcode"), Some(faultcode), "{xml}");
    }
    // No text/xml: not a SOAP 1.1 request.
    let response = http()
        .post(mock.submit_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(mock.records().is_empty());
    mock.stop().await;
}

#[tokio::test]
async fn examplia_rejects_business_rule_breaches_without_reserving_the_id() {
    let mut config = config(MockKind::Examplia);
    config.examplia.agencies = Some(["UNHCR".to_string(), "MOH".to_string()].into());
    let mock = start(config).await;
    let id = "c7d41f0a-58e2-4b93-9f16-3a0d8e27b5c4";
    let future = with_id(NOTIFICATION, id)
        .replace("<bn:DateOfBirth>2026-10-17", "<bn:DateOfBirth>2026-10-23");
    let (status, _, xml) =
        post_soap(&mock, soap("7e8f9012-3a4b-4c5d-8e6f-7a8b9c0d1e2f", &future)).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&xml, "Status"), Some("REJECTED"));
    assert_eq!(text_of(&xml, "Code"), Some("DATE_IN_FUTURE"));
    assert_eq!(
        text_of(&xml, "Path"),
        Some("/BirthNotification/Child/DateOfBirth")
    );
    assert!(text_of(&xml, "RegistryReference").is_some());
    assert_valid_against_xsd(&xml, "submitBirthNotificationResponse");

    let corrected = with_id(NOTIFICATION, id);
    let (_, _, xml) = post_soap(
        &mock,
        soap("8f901234-5a6b-4c7d-8e9f-0a1b2c3d4e5f", &corrected),
    )
    .await;
    assert_eq!(
        text_of(&xml, "Status"),
        Some("ACCEPTED"),
        "a rejection does not reserve the id"
    );

    let other_agency = with_id(NOTIFICATION, "9a012345-6b7c-4d8e-9f0a-1b2c3d4e5f60")
        .replace("<bn:AgencyCode>UNHCR", "<bn:AgencyCode>NGO-X");
    let (status, _, xml) = post_soap(
        &mock,
        soap("9a012345-6b7c-4d8e-9f0a-1b2c3d4e5f61", &other_agency),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        text_of(&xml, "faultcode"),
        Some("Client.AgencyNotAuthorised")
    );
    assert_eq!(
        outcomes(&mock),
        [Outcome::Rejected, Outcome::Accepted, Outcome::Unauthorized]
    );
    mock.stop().await;
}

#[tokio::test]
async fn examplia_rate_limit_answers_server_rate_limited_beyond_a_burst_of_10() {
    let mock = start(config(MockKind::Examplia)).await;
    let mut faultcodes = Vec::new();
    for i in 0..12 {
        let id = format!("4f64db8f-a0c2-4f4c-bb64-14f9ecf8c3{i:02}");
        let (status, _, xml) = post_soap(&mock, soap(&id, &with_id(NOTIFICATION, &id))).await;
        if i >= 10 {
            assert_eq!(status, 500);
            assert_eq!(text_of(&xml, "LimitExceeded"), Some("RATE"));
            assert_eq!(text_of(&xml, "RetryAfterSeconds"), Some("1"));
            assert_eq!(text_of(&xml, "NotificationId"), Some(id.as_str()));
            assert_valid_against_xsd(&xml, "RegistryFault");
        }
        faultcodes.push(text_of(&xml, "faultcode").map(str::to_string));
    }
    assert!(faultcodes[..10].iter().all(Option::is_none));
    assert_eq!(faultcodes[10].as_deref(), Some("Server.RateLimited"));
    assert_eq!(faultcodes[11].as_deref(), Some("Server.RateLimited"));
    // 5 per second: 200 ms later there is one token again.
    mock.clock().advance(Duration::from_millis(200));
    let id = "4f64db8f-a0c2-4f4c-bb64-14f9ecf8c399";
    let (status, _, _) = post_soap(&mock, soap(id, &with_id(NOTIFICATION, id))).await;
    assert_eq!(status, 200);
    assert_eq!(mock.records().len(), 11);
    mock.stop().await;
}

#[tokio::test]
async fn examplia_caps_requests_in_flight_at_4() {
    let mock = start(config(MockKind::Examplia)).await;
    mock.faults()
        .push(Fault::Latency(Duration::from_millis(1500)).until_cleared());
    let requests = (0..6).map(|i| {
        let id = format!("1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c{i:02}");
        post_soap(&mock, soap(&id, &with_id(NOTIFICATION, &id)))
    });
    let answers = futures::future::join_all(requests).await;
    let limited: Vec<_> = answers
        .iter()
        .filter(|(_, _, xml)| text_of(xml, "LimitExceeded") == Some("CONCURRENCY"))
        .collect();
    assert_eq!(limited.len(), 2, "4 in flight, 2 refused");
    let accepted = answers
        .iter()
        .filter(|(_, _, xml)| text_of(xml, "Status") == Some("ACCEPTED"))
        .count();
    assert_eq!(accepted, 4);
    mock.stop().await;
}

#[tokio::test]
async fn examplia_maintenance_window_answers_503_with_retry_after() {
    let mut config = config(MockKind::Examplia);
    // Sunday 01:30 EXT.
    config.clock = Clock::manual(at("2026-10-24T23:30:00Z"));
    let mock = start(config).await;
    let request = soap("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", NOTIFICATION);
    let (status, retry_after, xml) = post_soap(&mock, request.clone()).await;
    assert_eq!(status, 503);
    assert_eq!(
        retry_after.as_deref(),
        Some("5400"),
        "seconds until 03:00 EXT"
    );
    assert_eq!(text_of(&xml, "faultcode"), Some("Server.Unavailable"));
    assert_eq!(text_of(&xml, "RetryAfterSeconds"), Some("5400"));
    assert_header_copied(&request, &xml);
    assert_valid_against_xsd(&xml, "RegistryFault");

    // An operator can lift the window (a demo on a Sunday night).
    mock.faults().push(Fault::Maintenance(false));
    let (status, _, xml) = post_soap(&mock, request).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(outcomes(&mock), [Outcome::Fault, Outcome::Accepted]);
    mock.stop().await;
}

#[tokio::test]
async fn examplia_injected_faults_are_soap_faults() {
    let mock = start(config(MockKind::Examplia)).await;
    mock.faults().push(Fault::Status503 {
        retry_after: Some(Duration::from_secs(60)),
    });
    mock.faults().push(Fault::Status500);
    let request = soap("0b1c2d3e-4f50-4a6b-8c7d-8e9f0a1b2c3d", NOTIFICATION);
    let (status, retry_after, xml) = post_soap(&mock, request.clone()).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("60")));
    assert_eq!(text_of(&xml, "faultcode"), Some("Server.Unavailable"));
    assert_eq!(text_of(&xml, "RetryAfterSeconds"), Some("60"));
    let (status, _, xml) = post_soap(&mock, request.clone()).await;
    assert_eq!(status, 500);
    assert_eq!(text_of(&xml, "faultcode"), Some("Server.InternalError"));
    assert_valid_against_xsd(&xml, "RegistryFault");
    // After an internal error, the same document is accepted.
    let (_, _, xml) = post_soap(&mock, request).await;
    assert_eq!(text_of(&xml, "Status"), Some("ACCEPTED"));
    mock.stop().await;
}

#[tokio::test]
async fn a_mock_set_starts_every_registry_and_describes_it() {
    let options = mocks::MockSetOptions {
        port_base: 0,
        xsd: XsdCheck::Off,
        ..mocks::MockSetOptions::default()
    };
    let set = mocks::start_set(&options).await.unwrap();
    assert_eq!(set.len(), 5);
    for mock in &set {
        let line = mock.describe();
        assert!(line.starts_with(mock.kind().as_str()), "{line}");
        assert!(line.contains(&mock.base_url()));
        let summary = json_of(
            http()
                .get(format!("{}/_mock", mock.base_url()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(summary["kind"], mock.kind().as_str());
    }
    for mock in set {
        mock.stop().await;
    }
}

// --- hostile input ----------------------------------------------------------------

/// Bodies no registry should choke on. A handler panic would surface as a
/// 500 with the arrival detail `mock_bug`.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let mut fhir_meta_string = fhir_document("0d0c0000-0000-4000-8000-0000000000ff");
    fhir_meta_string["meta"] = json!("x");
    let deep_json = "[".repeat(5000) + &"]".repeat(5000);
    let deep_xml = format!(
        r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>{}{}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        "<a>".repeat(5000),
        "</a>".repeat(5000)
    );
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>&b;</SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
    let mut bodies: Vec<Vec<u8>> = [
        "", "null", "[]", "\"x\"", "{}", "{\"data\":[]}",
        r#"{"data":{"id":5,"module_id":7,"age":-1,"date_of_birth":7,"x_section":"y","y_section":[1]}}"#,
        r#"{"eventType":"birth","transactionId":"t","createdAtLocation":"f3da7778-161e-44a1-9e64-ab93dc1fe77f","declaration":{"child.name":[]}}"#,
        r#"{"eventType":1,"transactionId":[],"createdAtLocation":null,"declaration":"x","keepAssignment":"y"}"#,
        r#"{"resourceType":"Bundle","type":"document","meta":{"lastUpdated":"2026-01-01"},"entry":[1,2,3]}"#,
        r#"{"resourceType":"Bundle","type":"document","meta":{"lastUpdated":"2026-01-01"},"entry":[{"fullUrl":"a","resource":{"resourceType":"Composition"}},{"fullUrl":"b","resource":{"resourceType":"Task","status":"draft","focus":{"reference":"a"},"extension":"x"}}]}"#,
        r#"{"resourceType":"Bundle","type":"document","identifier":{"system":1,"value":[]},"timestamp":5,"entry":{"x":1}}"#,
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Header/><SOAP-ENV:Body/></SOAP-ENV:Envelope>",
        laughs,
        &deep_xml,
        &deep_json,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    bodies.push(fhir_meta_string.to_string().into_bytes());
    bodies.push(
        soap("0d0c0000-0000-4000-8000-0000000000fe", NOTIFICATION)
            .replace("<bn:Sex>2", "<bn:Sex>\u{0}")
            .into_bytes(),
    );
    bodies.push((0u8..=255).cycle().take(4096).collect());
    bodies.push(vec![b'x'; 300 * 1024]);
    bodies
}

#[tokio::test]
async fn hostile_bodies_are_refused_never_a_crash() {
    for kind in MockKind::ALL {
        let mut config = config(kind);
        config.primero_auth = PrimeroAuth::Native;
        let mock = start(config).await;
        let token = match kind {
            MockKind::Opencrvs => Some(opencrvs_token(&mock).await),
            MockKind::OpencrvsV1 => Some(v1_token(&mock).await),
            MockKind::FhirR4 => Some(fhir_token(&mock).await),
            MockKind::Primero | MockKind::Examplia => None,
        };
        for (content_type, body) in hostile_bodies()
            .into_iter()
            .flat_map(|b| [("application/json", b.clone()), ("text/xml", b)])
        {
            let mut request = http()
                .post(mock.submit_url())
                .header("content-type", content_type)
                .body(body);
            request = match &token {
                Some(t) => request.bearer_auth(t),
                None => request.basic_auth("registry-gateway", Some("mock-password")),
            };
            // Any answer will do (without a form, OpenCRVS takes any declaration);
            // what must not happen is a crash.
            request.send().await.unwrap();
        }
        let bugs: Vec<_> = mock
            .submissions()
            .into_iter()
            .filter(|a| a.detail.as_deref() == Some("mock_bug"))
            .collect();
        assert!(
            bugs.is_empty(),
            "{kind}: a handler panicked on {} bodies",
            bugs.len()
        );
        mock.stop().await;
    }
}

// --- OpenCRVS fidelity (issue 10): each refusal shown with the old output ---

fn examplia_locations() -> Locations {
    Locations::from_fhir_file(&crate::common::repo_path(
        "deploy/locations/examplia-opencrvs.json",
    ))
    .unwrap()
}

#[tokio::test]
async fn opencrvs_v1_token_reads_the_query_only_and_a_form_body_is_unsupported_grant_type() {
    let mock = start(v1_config()).await;
    // The old gateway request: the credentials in a form body.
    let form = http()
        .post(mock.token_url().unwrap())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "registry-gateway"),
            ("client_secret", "mock-client-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(form).await["error"], "unsupported_grant_type");
    let token = v1_token(&mock).await;
    let payload = token.split('.').nth(1).unwrap();
    assert!(!payload.is_empty(), "a JWT whose exp gives the lifetime");
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_v1_refuses_a_task_without_identifier_a_location_entry_and_an_admin_area_birth() {
    let locations = examplia_locations();
    let office = locations.offices.iter().next().unwrap().clone();
    let area = locations.admin_areas.keys().next().unwrap().clone();
    let mut config = config(MockKind::OpencrvsV1);
    config.opencrvs.locations = Some(locations);
    let mock = start(config).await;
    let token = v1_token(&mock).await;
    let mut base = v1_bundle("c0ffee00-0000-4000-8000-0000000000aa");
    base["entry"][1]["resource"]["extension"][0]["valueReference"]["reference"] =
        json!(format!("Location/{office}"));
    base["entry"][3]["resource"]["address"] = json!([]);
    let encounter = base["entry"].as_array().unwrap().len() - 1;
    let set_place = |b: &mut Value, id: &str| {
        b["entry"][encounter]["resource"]["location"][0]["location"]["reference"] =
            json!(format!("Location/{id}"));
    };
    // The old gateway Task had no identifier: workflow's spread fails.
    let mut no_identifier = base.clone();
    set_place(&mut no_identifier, "78840a0e-2527-57a0-ae56-80d9243e4dde");
    no_identifier["entry"][1]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("identifier");
    // The old home birth: Encounter.location at a district.
    let mut at_district = base.clone();
    set_place(&mut at_district, &area);
    let mut location_entry = at_district.clone();
    location_entry["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:0c7a51f4-6c1e-4bd5-8d2a-0000000000ff",
        "resource": {"resourceType": "Location", "type": {"coding": [{"code": "PRIVATE_HOME"}]}}}));
    // A closed facility (status inactive in the list).
    let mut closed = base.clone();
    let inactive = examplia_locations().inactive.into_iter().next().unwrap();
    set_place(&mut closed, &inactive);
    for (body, status) in [
        (&no_identifier, 500),
        (&at_district, 400),
        (&location_entry, 400),
        (&closed, 500),
    ] {
        let response = http()
            .post(mock.submit_url())
            .bearer_auth(&token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{}",
            json_of(response).await
        );
    }
    let mut ok = base.clone();
    set_place(&mut ok, "78840a0e-2527-57a0-ae56-80d9243e4dde");
    let response = http()
        .post(mock.submit_url())
        .bearer_auth(&token)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.records().len(), 1);
    // The facility list, as 1.x serves it.
    let list = json_of(
        http()
            .get(format!(
                "{}/location?type=HEALTH_FACILITY&_count=0",
                mock.base_url()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["resourceType"], "Bundle");
    let entries = list["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 21);
    let id = &entries[0]["resource"]["identifier"][0];
    assert_eq!(id["system"], "http://opencrvs.org/specs/id/internal-id");
    assert!(
        id["value"]
            .as_str()
            .unwrap()
            .starts_with("HEALTH_FACILITY_")
    );
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_refuses_a_text_age_and_serves_its_location_table() {
    let locations = examplia_locations();
    let office = locations.offices.iter().next().unwrap().clone();
    let mut config = config(MockKind::Opencrvs);
    config.opencrvs.locations = Some(locations);
    let mock = start(config).await;
    let token = opencrvs_token(&mock).await;
    let mut body = notify_body("t-age");
    body["createdAtLocation"] = json!(office);
    // The old gateway output: mother.age as TEXT.
    let mut old = body.clone();
    old["declaration"]["mother.age"] = json!("24");
    let response = notify(&mock, Some(&token), &old).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = json_of(response).await;
    let list: Value = serde_json::from_str(error["message"].as_str().unwrap()).unwrap();
    assert_eq!(list[0]["id"], "mother.age");
    let mut new = body.clone();
    new["transactionId"] = json!("t-age-2");
    new["declaration"]["mother.age"] = json!({"age": 24, "asOfDateRef": "child.dob"});
    assert_eq!(
        notify(&mock, Some(&token), &new).await.status(),
        StatusCode::OK
    );

    let table = json_of(
        http()
            .get(format!("{}/api/events/locations", mock.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let table = table.as_array().unwrap();
    assert_eq!(table.len(), 48);
    assert!(table.iter().any(|l| l["locationType"] == "HEALTH_FACILITY"
        && l["externalId"] == "HF-010101"
        && l["administrativeAreaId"].is_string()));
    assert_eq!(
        table.iter().filter(|l| !l["validUntil"].is_null()).count(),
        1
    );
    mock.stop().await;
}

#[tokio::test]
async fn opencrvs_country_config_decides_the_notify_outcome() {
    for (confirmation, statuses) in [
        (mocks::Confirmation::Reject, vec!["Requested", "Rejected"]),
        (
            mocks::Confirmation::Defer { after: None },
            vec!["Requested"],
        ),
    ] {
        let mut config = config(MockKind::Opencrvs);
        config.opencrvs.confirmation = confirmation;
        let mock = start(config).await;
        let token = opencrvs_token(&mock).await;
        let event = json_of(notify(&mock, Some(&token), &notify_body("t-cc")).await).await;
        let notifies: Vec<&str> = event["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "NOTIFY")
            .map(|a| a["status"].as_str().unwrap())
            .collect();
        assert_eq!(notifies, statuses);
        mock.stop().await;
    }
}
