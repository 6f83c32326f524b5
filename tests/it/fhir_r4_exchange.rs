//! The FHIR R4 exchange (docs/registries.md, FHIR R4): the stricter mock
//! refuses what the gateway used to send, a resend is never a second
//! document, and a corrected record updates the document its first version
//! made, with either write mode (conditional create or PUT).

use std::sync::Arc;
use std::time::Duration;

use crate::common::{example_config_path, example_record, repo_path};
use registry_gateway::config::{AuthConfig, Config, FhirWrite, Overrides};
use registry_gateway::delivery::transports::{self, Outbound, ReceiptStatus, SendError};
use registry_gateway::mapping::formats::Encoded;
use registry_gateway::model::RecordId;
use registry_gateway::pipeline::Pipeline;
use registry_mocks::{self as mocks, Limits, MockConfig, MockKind, Outcome, RunningMock};
use serde_json::Value;

const ROUTE: &str = "birth-notification-to-fhir-r4";

fn pipeline(write: FhirWrite) -> Pipeline {
    let mut config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    config.destinations.get_mut("fhir-r4").unwrap().fhir_write = write;
    Pipeline::load(Arc::new(config)).unwrap_or_else(|e| panic!("{e}"))
}

/// The example birth notification at `version`, rendered for the route. A
/// version 2 corrects the child's Latin given name.
fn render(pipeline: &Pipeline, version: i64) -> Encoded {
    let mut record = example_record("birth-notification");
    record["record_version"] = version.into();
    if version > 1 {
        record["child"]["name"]["given_names_latin"] = "Lia".into();
    }
    let route = pipeline
        .config()
        .routes
        .iter()
        .find(|r| r.name == ROUTE)
        .unwrap();
    let source = &pipeline.config().sources["canonical"];
    let canonical = pipeline.canonicalize(source, &record).unwrap();
    // Each version is its own submission, with its own record id.
    let id = RecordId(uuid::Uuid::from_u128(0x5eed + version as u128));
    let subject = canonical.subject("demo-agency");
    let at = canonical.stated_time().unwrap();
    let ctx = pipeline.context(route, id, &canonical, at, 1, subject);
    pipeline
        .route(route, std::borrow::Cow::Borrowed(&canonical), &ctx)
        .rendered
        .expect("the policy lets the example through")
        .unwrap()
}

async fn start() -> RunningMock {
    let mut config = MockConfig::new(MockKind::FhirR4);
    config.limits = Limits::none();
    config.maintenance = None;
    mocks::start(config).await.unwrap()
}

fn transport(pipeline: &Pipeline, mock: &RunningMock) -> Arc<dyn transports::Transport> {
    let mut dest = pipeline.config().destinations["fhir-r4"].clone();
    dest.url = Some(mock.submit_url());
    dest.timeout = Duration::from_secs(10);
    if let AuthConfig::ClientCredentials {
        client_id,
        client_secret,
        ..
    } = dest.auth
    {
        dest.auth = AuthConfig::ClientCredentials {
            token_url: mock.token_url().unwrap(),
            client_id,
            client_secret,
        };
    }
    transports::build(&dest).unwrap_or_else(|e| panic!("{e}"))
}

/// What the worker hands the transport for `version` of the record.
fn outbound(encoded: &Encoded, version: i64) -> Outbound<'_> {
    Outbound {
        body: &encoded.bytes,
        content_type: encoded.content_type,
        idempotency_key: "registry-gateway:record:v1:birth-notification-to-fhir-r4",
        record_key: "record-key",
        record_version: version,
        prior: None,
    }
}

async fn token(mock: &RunningMock) -> String {
    crate::common::mock_token(mock, crate::common::CredentialsIn::Form).await
}

/// POST a Bundle as the gateway did before: a plain create with an
/// `Idempotency-Key` header, which no FHIR server honours.
async fn post_as_before(mock: &RunningMock, body: &[u8]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(mock.submit_url())
        .bearer_auth(token(mock).await)
        .header("content-type", "application/fhir+json")
        .header(
            "Idempotency-Key",
            "registry-gateway:record:v1:birth-notification-to-fhir-r4",
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn submissions(mock: &RunningMock) -> Vec<(String, Outcome, Option<u16>)> {
    mock.submissions()
        .into_iter()
        .map(|a| (a.method, a.outcome, a.status))
        .collect()
}

#[tokio::test]
async fn a_resend_with_only_an_idempotency_key_stores_a_second_document() {
    let mock = start().await;
    let payload = render(&pipeline(FhirWrite::ConditionalCreate), 1);
    // The answer to the first was lost; the old gateway sent the same again.
    for _ in 0..2 {
        let (status, _) = post_as_before(&mock, &payload.bytes).await;
        assert_eq!(status, 201);
    }
    let records = mock.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_ne!(records[0].reference, records[1].reference);
    mock.stop().await;
}

#[tokio::test]
async fn a_resend_by_conditional_create_is_recognised() {
    let pipeline = pipeline(FhirWrite::ConditionalCreate);
    let mock = start().await;
    let t = transport(&pipeline, &mock);
    let payload = render(&pipeline, 1);
    let first = t.send(&outbound(&payload, 1)).await.unwrap();
    let again = t.send(&outbound(&payload, 1)).await.unwrap();
    assert_eq!(
        (first.status, first.http_status),
        (ReceiptStatus::Accepted, 201)
    );
    assert_eq!(
        (again.status, again.http_status),
        (ReceiptStatus::Duplicate, 200)
    );
    assert_eq!(again.reference, first.reference);
    assert_eq!(mock.records().len(), 1);
    assert_eq!(
        submissions(&mock),
        [
            ("POST".into(), Outcome::Accepted, Some(201)),
            ("POST".into(), Outcome::Duplicate, Some(200)),
        ]
    );
    mock.stop().await;
}

#[tokio::test]
async fn a_correction_by_conditional_update_updates_the_same_document() {
    let pipeline = pipeline(FhirWrite::ConditionalCreate);
    let mock = start().await;
    let t = transport(&pipeline, &mock);
    let (v1, v2) = (render(&pipeline, 1), render(&pipeline, 2));
    let first = t.send(&outbound(&v1, 1)).await.unwrap();
    let corrected = t.send(&outbound(&v2, 2)).await.unwrap();
    // Resent after a lost answer: the same update again, still one document.
    let resent = t.send(&outbound(&v2, 2)).await.unwrap();
    assert_eq!(
        (corrected.status, corrected.http_status),
        (ReceiptStatus::Updated, 200)
    );
    assert_eq!(resent.status, ReceiptStatus::Updated);
    assert_eq!(corrected.reference, first.reference);
    assert_eq!(resent.reference, first.reference);
    assert_eq!(corrected.details["version_id"], "2");
    let records = mock.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let stored: Value =
        serde_json::from_slice(&mock.stored_body(&records[0].key).unwrap()).unwrap();
    assert_eq!(stored["entry"][0]["resource"]["status"], "amended");
    assert_eq!(
        submissions(&mock),
        [
            ("POST".into(), Outcome::Accepted, Some(201)),
            ("PUT".into(), Outcome::Updated, Some(200)),
            ("PUT".into(), Outcome::Updated, Some(200)),
        ]
    );
    mock.stop().await;
}

#[tokio::test]
async fn a_correction_whose_first_version_never_arrived_creates_the_document() {
    let pipeline = pipeline(FhirWrite::ConditionalCreate);
    let mock = start().await;
    let t = transport(&pipeline, &mock);
    let receipt = t.send(&outbound(&render(&pipeline, 2), 2)).await.unwrap();
    assert_eq!(
        (receipt.status, receipt.http_status),
        (ReceiptStatus::Accepted, 201)
    );
    assert_eq!(mock.records().len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn with_put_a_resend_and_a_correction_write_one_document() {
    let pipeline = pipeline(FhirWrite::Put);
    let mock = start().await;
    let t = transport(&pipeline, &mock);
    let (v1, v2) = (render(&pipeline, 1), render(&pipeline, 2));
    let id = serde_json::from_slice::<Value>(&v1.bytes).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = t.send(&outbound(&v1, 1)).await.unwrap();
    let again = t.send(&outbound(&v1, 1)).await.unwrap();
    let corrected = t.send(&outbound(&v2, 2)).await.unwrap();
    assert_eq!(
        (first.status, first.http_status),
        (ReceiptStatus::Accepted, 201)
    );
    assert_eq!(
        (again.status, again.http_status),
        (ReceiptStatus::Duplicate, 200)
    );
    assert_eq!(
        (corrected.status, corrected.http_status),
        (ReceiptStatus::Updated, 200)
    );
    for r in [&first, &again, &corrected] {
        assert_eq!(
            r.reference.as_deref(),
            Some(format!("Bundle/{id}").as_str())
        );
    }
    assert_eq!(mock.records().len(), 1);
    let paths: Vec<String> = mock.submissions().into_iter().map(|a| a.path).collect();
    assert_eq!(paths, vec![format!("/fhir/Bundle/{id}"); 3]);
    mock.stop().await;
}

#[tokio::test]
async fn a_condition_matching_two_documents_is_permanent() {
    let pipeline = pipeline(FhirWrite::ConditionalCreate);
    let mock = start().await;
    let payload = render(&pipeline, 1);
    // Two copies, as plain creates made them.
    for _ in 0..2 {
        post_as_before(&mock, &payload.bytes).await;
    }
    let e = transport(&pipeline, &mock)
        .send(&outbound(&payload, 1))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent {
            reason: "status 412: multiple-matches".into()
        }
    );
    assert_eq!(mock.records().len(), 2);
    mock.stop().await;
}

/// The Bundle the gateway sent before this exchange's rules were read
/// (conformance case 01, as it was): a local Composition.type and a birth
/// weight vital sign without effective[x].
#[tokio::test]
async fn the_old_document_is_refused() {
    let old = std::fs::read(repo_path("tests/fixtures/fhir-r4/before-issue-10.json")).unwrap();
    let mock = start().await;
    let (status, outcome) = post_as_before(&mock, &old).await;
    assert_eq!(status, 422, "{outcome}");
    let issues: Vec<String> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["code"].as_str().unwrap(),
                i["expression"][0].as_str().unwrap()
            )
        })
        .collect();
    let weight = old_birth_weight_entry(&old);
    assert_eq!(
        issues,
        [
            "code-invalid Bundle.entry[0].resource.type".to_string(),
            format!("required Bundle.entry[{weight}].resource.effective"),
        ]
    );
    assert!(mock.records().is_empty());
    mock.stop().await;
}

fn old_birth_weight_entry(bundle: &[u8]) -> usize {
    let bundle: Value = serde_json::from_slice(bundle).unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["resource"]["code"]["coding"][0]["code"] == "8339-4")
        .unwrap()
}

/// What the gateway sends now: a LOINC document type, a birth weight with its
/// effective time (the birth), and no UNHCR number.
#[test]
fn the_document_carries_loinc_type_effective_birth_weight_and_no_unhcr_number() {
    let payload = render(&pipeline(FhirWrite::ConditionalCreate), 1);
    let bundle: Value = serde_json::from_slice(&payload.bytes).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    let coding = &entries[0]["resource"]["type"]["coding"][0];
    assert_eq!(
        (coding["system"].as_str(), coding["code"].as_str()),
        (Some("http://loinc.org"), Some("71230-7"))
    );
    let weight = &entries[old_birth_weight_entry(&payload.bytes)]["resource"];
    assert_eq!(weight["effectiveDateTime"], "2026-10-21T23:48:00+02:00");
    assert!(bundle.get("id").is_none(), "conditional create sends no id");
    let text = String::from_utf8(payload.bytes.clone()).unwrap();
    assert!(!text.contains("urn:unhcr:progres"), "a UNHCR number left");
    let example = example_record("birth-notification");
    for id in example["mother"]["identifiers"].as_array().unwrap() {
        assert!(!text.contains(id["value"].as_str().unwrap()));
    }
}

/// The manifest says, field by field, that UNHCR numbers stay behind on this
/// route, and the route allows no displacement data at all.
#[test]
fn the_manifest_states_that_unhcr_numbers_do_not_reach_the_ministry() {
    let pipeline = pipeline(FhirWrite::ConditionalCreate);
    let manifest = registry_gateway::manifest::build(&pipeline);
    let route = manifest.routes.iter().find(|r| r.route == ROUTE).unwrap();
    let identifiers: Vec<_> = route
        .fields
        .iter()
        .filter(|f| {
            f.to.starts_with("mother/identifiers/") || f.to.starts_with("father/identifiers/")
        })
        .collect();
    assert!(identifiers.len() >= 10);
    for f in identifiers {
        assert_eq!(
            f.policy, "drop when /scheme is one of unhcr_individual, unhcr_case",
            "{}",
            f.to
        );
    }
    let policy = route.policy.as_ref().unwrap();
    let categories = serde_json::to_value(&policy.summary.categories).unwrap();
    assert_eq!(categories, serde_json::json!(["health"]));
}
