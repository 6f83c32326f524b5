//! Places come from the registry's location list, not from a hand-kept one:
//! an unknown or closed facility denies that route at acceptance (the other
//! routes go on), the list is refreshed from the registry while the gateway
//! runs, and `config check` reports a code a mapping names that the list
//! does not hold.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use registry_mocks::{self as mocks, MockConfig, MockKind};
use serde_json::{Value, json};

use crate::common::{AGENCY, TestGateway, config_with, example_record, repo_path};

/// Examplia's published list (FHIR) in the 2.x `GET /api/events/locations` shape.
fn events_v2_list() -> Vec<Value> {
    let text =
        std::fs::read_to_string(repo_path("deploy/locations/examplia-opencrvs.json")).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["resource"];
            let code = r["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["value"].clone())
                .next()
                .unwrap();
            json!({
                "id": r["id"],
                "name": r["name"],
                "externalId": code,
                "administrativeAreaId": r["partOf"]["reference"]
                    .as_str()
                    .map(|p| p.trim_start_matches("Location/").to_string()),
                "validUntil": if r["status"] == "inactive" { json!("2026-11-01T00:00:00Z") } else { Value::Null },
                "locationType": r["type"][0]["coding"][0]["code"],
            })
        })
        .collect()
}

/// A registry location endpoint whose list the test changes.
async fn serve_locations(list: Arc<Mutex<Vec<Value>>>) -> String {
    let app = axum::Router::new()
        .route(
            "/api/events/locations",
            get(|State(list): State<Arc<Mutex<Vec<Value>>>>| async move {
                Json(Value::Array(list.lock().unwrap().clone()))
            }),
        )
        .with_state(list);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api/events/locations")
}

fn born_at(facility: &str, n: u32) -> Vec<u8> {
    let mut record = example_record("birth-notification");
    record["source_record_id"] = json!(format!("EMR-PLACE-{n:04}"));
    record["child"]["place_of_birth"]["facility_code"] = json!(facility);
    serde_json::to_vec(&record).unwrap()
}

/// The decision per route in a 202 answer.
async fn decisions(gateway: &TestGateway, body: Vec<u8>) -> Vec<(String, String, String)> {
    let answer = gateway.submit("canonical", Some(AGENCY), None, body).await;
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap().to_string(),
                r["decision"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn decision_for<'a>(
    decisions: &'a [(String, String, String)],
    destination: &str,
) -> &'a (String, String, String) {
    decisions.iter().find(|d| d.0 == destination).unwrap()
}

#[tokio::test]
async fn a_new_facility_resolves_after_a_refresh_without_a_restart_and_closed_or_unknown_ones_deny_only_their_route()
 {
    let registry = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let list = Arc::new(Mutex::new(events_v2_list()));
    let refresh_url = serve_locations(list.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let destinations = format!(
        "[destinations.opencrvs]\nkind = \"opencrvs\"\nurl = \"{}\"\n\
         auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}\n\
         locations = {{ file = {:?}, refresh_url = \"{refresh_url}\", refresh_secs = 1 }}\n\n\
         [destinations.fhir-r4]\nkind = \"fhir-r4\"\nurl = \"http://127.0.0.1:9/fhir/Bundle\"\n",
        registry.submit_url(),
        registry.token_url().unwrap(),
        repo_path("deploy/locations/examplia-opencrvs.json")
            .display()
            .to_string(),
    );
    let config = config_with(
        dir.path(),
        &destinations,
        &[
            ("birth-notification", "opencrvs"),
            ("birth-notification", "fhir-r4"),
        ],
    );
    let gateway = TestGateway::start_with(config, dir).await;

    // A facility the registry does not know: that route is denied, by code
    // and path, never by the facility's code; the health ministry still gets it.
    let first = decisions(&gateway, born_at("HF-090901", 1)).await;
    let (_, decision, reason) = decision_for(&first, "opencrvs");
    assert_eq!(decision, "deny");
    assert!(reason.starts_with("location_unknown: "), "{reason}");
    assert!(
        reason.contains("child/place_of_birth/facility_code"),
        "{reason}"
    );
    assert!(!reason.contains("HF-090901"), "{reason}");
    assert_eq!(decision_for(&first, "fhir-r4").1, "deliver");

    // A closed facility (HF-020410 is inactive in the published list).
    let closed = decisions(&gateway, born_at("HF-020410", 2)).await;
    let (_, decision, reason) = decision_for(&closed, "opencrvs");
    assert_eq!(decision, "deny");
    assert!(reason.starts_with("location_inactive: "), "{reason}");
    assert_eq!(decision_for(&closed, "fhir-r4").1, "deliver");

    // The registry opens the facility; the gateway learns it from the registry.
    list.lock().unwrap().push(json!({
        "id": "0d5a3c1e-7f00-4e55-9a0b-0000000a0901",
        "name": "New Clinic",
        "externalId": "HF-090901",
        "administrativeAreaId": "b3ff5cc8-e118-5ba2-ac10-8e70693fe102",
        "validUntil": null,
        "locationType": "HEALTH_FACILITY"
    }));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 10;
    loop {
        n += 1;
        let now = decisions(&gateway, born_at("HF-090901", n)).await;
        if decision_for(&now, "opencrvs").1 == "deliver" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new facility never resolved: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The record naming the new facility reaches the registry (the earlier
    // ones never had a delivery on that route).
    let deadline = Instant::now() + Duration::from_secs(20);
    while registry.records().is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the registry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_failed_or_empty_refresh_keeps_the_list() {
    let registry = mocks::start(MockConfig::new(MockKind::Opencrvs))
        .await
        .unwrap();
    let list = Arc::new(Mutex::new(Vec::new()));
    let refresh_url = serve_locations(list.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let destinations = format!(
        "[destinations.opencrvs]\nkind = \"opencrvs\"\nurl = \"{}\"\n\
         auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}\n\
         locations = {{ file = {:?}, refresh_url = \"{refresh_url}\", refresh_secs = 1 }}\n",
        registry.submit_url(),
        registry.token_url().unwrap(),
        repo_path("deploy/locations/examplia-opencrvs.json")
            .display()
            .to_string(),
    );
    let config = config_with(
        dir.path(),
        &destinations,
        &[("birth-notification", "opencrvs")],
    );
    let gateway = TestGateway::start_with(config, dir).await;
    // Several refreshes answer an empty list: a registry fault, not a country without places.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = decisions(&gateway, born_at("HF-010112", 1)).await;
    assert_eq!(decision_for(&after, "opencrvs").1, "deliver", "{after:?}");
    gateway.stop().await;
}

#[test]
fn config_check_reports_a_mapping_code_the_list_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    // The published list without the receiving office the mappings name.
    let mut bundle: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/locations/examplia-opencrvs.json")).unwrap(),
    )
    .unwrap();
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["resource"]["identifier"][0]["value"] != "CRVS-EX01-HQ");
    let list = dir.path().join("without-office.json");
    std::fs::write(&list, bundle.to_string()).unwrap();
    let example = std::fs::read_to_string(repo_path("deploy/gateway.example.toml")).unwrap();
    let config_text = example
        .replace(
            "mappings_dir = \"../mappings\"",
            &format!(
                "mappings_dir = {:?}",
                repo_path("mappings").display().to_string()
            ),
        )
        .replace(
            "policies_dir = \"../policies\"",
            &format!(
                "policies_dir = {:?}",
                repo_path("policies").display().to_string()
            ),
        )
        .replace(
            "file = \"locations/examplia-opencrvs.json\"",
            &format!("file = {:?}", list.display().to_string()),
        );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, config_text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for mapping in [
        "mappings/destinations/opencrvs/birth-notification.toml",
        "mappings/destinations/opencrvs-v1/birth-notification.toml",
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(mapping)
                && l.contains("CRVS-EX01-HQ")
                && l.contains("no office")),
            "{mapping} not reported:\n{stderr}"
        );
    }
    // The published list holds every code the example mappings name.
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["config", "check", "--config"])
        .arg(repo_path("deploy/gateway.example.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn the_deployed_list_is_the_registrys_published_one() {
    // deploy/locations/ ships Examplia's published list unchanged; when the
    // published copy beside the project changes, this copy must follow.
    let published = repo_path("../shared/specs/examplia-locations/locations.json");
    if !published.exists() {
        eprintln!("skipped: ../shared/specs is not beside this checkout");
        return;
    }
    assert_eq!(
        std::fs::read(published).unwrap(),
        std::fs::read(repo_path("deploy/locations/examplia-opencrvs.json")).unwrap(),
        "deploy/locations/examplia-opencrvs.json differs from the published list: copy it again"
    );
}
