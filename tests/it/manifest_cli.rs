//! `registry-gateway manifest`: the data-sharing statement a data-protection
//! officer reads, generated from the loaded mappings.

use std::process::Command;
use std::sync::Arc;

use crate::common::*;
use registry_gateway::config::{Config, Overrides};
use registry_gateway::manifest::{build, policies_markdown};
use registry_gateway::pipeline::Pipeline;
use serde_json::{Value, json};

fn manifest(format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["manifest", "--config"])
        .arg(example_config_path())
        .args(["--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_json_manifest_lists_every_route_and_where_each_field_comes_from() {
    let manifest: Value = serde_json::from_str(&manifest("json")).unwrap();
    let routes = manifest["routes"].as_array().unwrap();
    let names: Vec<&str> = routes
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "birth-notification-to-opencrvs",
            "birth-notification-to-opencrvs-v1",
            "birth-notification-to-fhir-r4",
            "birth-notification-to-examplia-crvs",
            "child-protection-case-to-primero",
        ]
    );
    let examplia = &routes[3];
    let fields = examplia["fields"].as_array().unwrap();
    let weight = fields
        .iter()
        .find(|f| f["to"] == "BirthNotification/BirthWeightGrams")
        .expect("birth weight is sent to Examplia");
    assert_eq!(weight["from"], "birth_weight");
    assert_eq!(weight["sensitivity"], serde_json::json!(["health"]));
    assert!(!weight["transform"].as_array().unwrap().is_empty());
    // Health notes and MHPSS screening are read by no birth-notification route.
    for route in &routes[..4] {
        for f in route["fields"].as_array().unwrap() {
            let from = f["from"].as_str().unwrap();
            assert!(
                !from.starts_with("maternal_health_notes") && !from.starts_with("mother_mhpss"),
                "{} reads {from}",
                route["route"]
            );
        }
    }
}

#[test]
fn the_json_manifest_states_each_routes_policy_and_what_it_does_to_each_field() {
    let manifest: Value = serde_json::from_str(&manifest("json")).unwrap();
    let routes = manifest["routes"].as_array().unwrap();
    for route in routes {
        let policy = &route["policy"];
        assert_eq!(
            policy["file"],
            format!("policies/{}.toml", route["route"].as_str().unwrap())
        );
        assert_eq!(policy["sha256"].as_str().unwrap().len(), 64);
        for f in route["fields"].as_array().unwrap() {
            assert!(!f["policy"].as_str().unwrap().is_empty(), "{f}");
        }
    }
    let bn = &routes[0]["policy"];
    assert_eq!(bn["purpose"], "birth_registration");
    assert_eq!(bn["legal_bases"], json!(["LEGAL_OBLIGATION"]));
    assert!(bn["consent"].is_null());
    let drops: Vec<&str> = bn["redactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(drops, ["/maternal_health_notes", "/mother_mhpss_screening"]);

    let primero = &routes[4];
    let policy = &primero["policy"];
    assert_eq!(policy["purpose"], "case_management");
    assert_eq!(policy["legal_bases"], json!(["CONSENT", "VITAL_INTEREST"]));
    assert_eq!(policy["consent"]["child_from_age"], 15);
    assert_eq!(policy["consent"]["caregivers"], json!(["caregiver"]));
    assert_eq!(policy["consent"]["recipients"], json!(["authorities"]));
    assert_eq!(policy["rules"][2]["basis"], "VITAL_INTEREST");
    assert!(policy["rules"][2]["keep"].as_array().unwrap().len() > 5);
    let field = |to: &str| {
        primero["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["to"] == to)
            .unwrap_or_else(|| panic!("{to} is sent to primero"))["policy"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("data/name_first"), "sent");
    assert_eq!(
        field("data/incident_details/*/incident_location"),
        "drop unless /violence_type is non_gbv; not sent under rule uasc-minimal-set-vital-interest"
    );
    assert_eq!(
        field("data/notes_section/*/note_text"),
        "not sent under rule uasc-minimal-set-vital-interest"
    );
}

#[test]
fn the_markdown_manifest_is_readable() {
    let md = manifest("md");
    assert!(md.starts_with("# Data-sharing manifest"));
    assert!(md.contains("## child-protection-case-to-primero"));
    assert!(md.contains("| `BirthNotification/NotificationId` | `$ctx/message_id` |"));
    assert!(md.contains("- purpose: `case_management`"));
    assert!(md.contains("or by the child (`individual`) from age 15"));
    assert!(md.contains("1. `birth-registration-legal-obligation` on `LEGAL_OBLIGATION`: always"));
    assert!(md.contains("| `/gbv_survivor` | drop |  | GBV data never leaves at case level |"));
}

#[test]
fn the_published_manifest_of_the_example_config_is_not_stale() {
    let published = std::fs::read_to_string(repo_path("docs/manifest.md")).unwrap();
    assert!(
        published == manifest("md"),
        "docs/manifest.md is stale: run `registry-gateway manifest --config deploy/gateway.example.toml --format md > docs/manifest.md`"
    );
}

const BEGIN: &str = "<!-- generated: example policies begin -->\n";
const END: &str = "<!-- generated: example policies end -->";

#[test]
fn the_example_policies_in_docs_policy_md_are_not_stale() {
    let config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    let pipeline = Pipeline::load(Arc::new(config)).unwrap();
    let generated = policies_markdown(&build(&pipeline));
    assert!(generated.contains("### child-protection-case-to-primero"));
    let path = repo_path("docs/policy.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/policy.md lacks the generated-section markers");
    };
    let current = &doc[start + BEGIN.len()..end];
    if current == generated {
        return;
    }
    if std::env::var_os("REGISTRY_GATEWAY_BLESS_DOCS").is_some() {
        let fresh = format!("{}{generated}{}", &doc[..start + BEGIN.len()], &doc[end..]);
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    panic!(
        "docs/policy.md is stale: run `REGISTRY_GATEWAY_BLESS_DOCS=1 cargo test --test it manifest_cli` and review the diff"
    );
}
