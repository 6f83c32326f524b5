//! OpenCRVS 1.x /notification in OpenCRVS's FHIR dialect (FORMATS.md §2).

use super::*;

/// The Joi and Task rules of OpenCRVS 1.9's /notification (FORMATS.md §2).
fn assert_opencrvs_v1_rules(bundle: &Value) {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "document");
    let last_updated = bundle["meta"]["lastUpdated"].as_str().unwrap();
    assert!(DateTime::parse_from_rfc3339(last_updated).is_ok());
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
    assert_eq!(entries[1]["resource"]["resourceType"], "Task");
    for e in &entries[2..] {
        let kind = e["resource"]["resourceType"].as_str().unwrap();
        assert!(
            ["Patient", "RelatedPerson", "Encounter", "Observation"].contains(&kind),
            "{kind} after the Task"
        );
    }
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    let mut unique = urls.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), urls.len(), "fullUrls are unique");
    let task = &entries[1]["resource"];
    assert_eq!(task["status"], "draft");
    assert_eq!(task["intent"], "unknown");
    assert_eq!(task["focus"]["reference"], entries[0]["fullUrl"]);
    assert_eq!(
        task["code"]["coding"][0],
        json!({"system": "http://opencrvs.org/specs/types", "code": "BIRTH"})
    );
    let office = task["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["url"] == "http://opencrvs.org/specs/extension/regLastOffice")
        .expect("regLastOffice");
    assert_eq!(
        office["valueReference"]["reference"],
        format!("Location/{RECEIVING_OFFICE}")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["resource"]["resourceType"] == "Patient")
    );
    let encounters: Vec<&Value> = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Encounter")
        .collect();
    assert_eq!(encounters.len(), 1);
    assert!(
        encounters[0]["resource"]["location"][0]["location"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Location/")
    );
    for section in entries[0]["resource"]["section"].as_array().unwrap() {
        assert!(urls.contains(&section["entry"][0]["reference"].as_str().unwrap()));
    }
}

fn resource<'b>(bundle: &'b Value, kind: &str, index: usize) -> &'b Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .nth(index)
        .unwrap_or_else(|| panic!("no {kind} #{index}"))
}

fn observation<'b>(bundle: &'b Value, loinc: &str) -> Option<&'b Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Observation" && r["code"]["coding"][0]["code"] == loinc)
}

#[test]
fn opencrvs_v1_facility_birth_from_the_example_record() {
    let record = birth(example("birth-notification"));
    let (bytes, bundle) = render(OPENCRVS_V1, BIRTH, &record, 1);
    assert_opencrvs_v1_rules(&bundle);
    assert_eq!(bundle["meta"]["lastUpdated"], "2026-10-22T09:12:05+02:00");
    let child = resource(&bundle, "Patient", 0);
    assert_eq!(child["name"][0]["given"], json!(["ሊያ"]));
    assert_eq!(child["birthDate"], "2026-10-21");
    assert!(child.get("multipleBirthInteger").is_none());
    let mother = resource(&bundle, "Patient", 1);
    assert!(
        mother.get("identifier").is_none(),
        "UNHCR numbers are not sent"
    );
    assert_eq!(
        mother["address"][0]["district"],
        "0ed90d7f-be4f-5576-9180-1ca48fd17756"
    );
    assert_eq!(
        mother["address"][0]["state"],
        "06ea0ea3-a801-5162-9027-1ba43d450bd5"
    );
    let father = resource(&bundle, "Patient", 2);
    assert_eq!(father["active"], false);
    assert_eq!(
        father["extension"][0]["valueString"],
        "Father separated from the family"
    );
    assert_eq!(
        resource(&bundle, "Encounter", 0)["location"][0]["location"]["reference"],
        "Location/a20b462e-1087-55f4-9a5f-c0d6431ec523"
    );
    assert_eq!(
        observation(&bundle, "3141-9").unwrap()["valueQuantity"]["value"],
        3.12
    );
    assert_eq!(
        observation(&bundle, "57722-1").unwrap()["valueQuantity"]["value"],
        "SINGLE"
    );
    assert_eq!(
        observation(&bundle, "73764-3").unwrap()["valueString"],
        "MIDWIFE"
    );
    let related = resource(&bundle, "RelatedPerson", 0);
    assert_eq!(related["relationship"]["coding"][0]["code"], "MOTHER");
    let text = String::from_utf8(bytes).unwrap();
    for never in ["EXA-26-0052217", "anaemia", "epds", "refugee"] {
        assert!(!text.contains(never), "{never} reached OpenCRVS");
    }
}

#[test]
fn opencrvs_v1_twin_with_father() {
    let (_, bundle) = render(OPENCRVS_V1, BIRTH, &twin_with_father(), 1);
    assert_opencrvs_v1_rules(&bundle);
    let child = resource(&bundle, "Patient", 0);
    assert_eq!(child["multipleBirthInteger"], 2);
    assert_eq!(child["name"][0]["family"], "الشيخ'&<علي>");
    let mother = resource(&bundle, "Patient", 1);
    let ids = mother["identifier"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0]["type"]["coding"][0]["code"], "PASSPORT");
    assert_eq!(ids[1]["type"]["coding"][0]["code"], "NATIONAL_ID");
    assert_eq!(ids[1]["value"], "4532015112");
    let father = resource(&bundle, "Patient", 2);
    assert_eq!(father["active"], true);
    assert_eq!(father["extension"][1]["valueInteger"], 34);
    let related = resource(&bundle, "RelatedPerson", 0);
    assert_eq!(related["relationship"]["coding"][0]["code"], "FATHER");
    let father_url = bundle["entry"][4]["fullUrl"].as_str().unwrap();
    assert_eq!(bundle["entry"][4]["resource"], *father);
    assert_eq!(related["patient"]["reference"], father_url);
    assert_eq!(
        observation(&bundle, "57722-1").unwrap()["valueQuantity"]["value"],
        "TWIN"
    );
    assert_eq!(
        observation(&bundle, "3141-9").unwrap()["valueQuantity"]["value"],
        2.45
    );
}

#[test]
fn opencrvs_v1_has_no_place_for_a_home_birth() {
    // 1.x's /notification takes only a HEALTH_FACILITY it holds as the place
    // of birth (v1.9.15 eventNotificationHandler.ts); the route's policy
    // denies other births at acceptance (conformance case 15), and the
    // mapping alone never invents a location for them.
    let target = target(OPENCRVS_V1);
    let mapping = mapping(OPENCRVS_V1, BIRTH, &target);
    let ctx = ctx(OPENCRVS_V1, BIRTH, 5);
    let tree = mapping.apply(&home_birth_father_unknown(), &ctx).unwrap();
    let err = formats::encode(OPENCRVS_V1, &tree, &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "encounter/location_id is required by the format but the mapping produced none"
    );
}

#[test]
fn opencrvs_v1_refuses_a_birth_without_a_known_location_by_path() {
    let target = target(OPENCRVS_V1);
    let mapping = mapping(OPENCRVS_V1, BIRTH, &target);
    let ctx = ctx(OPENCRVS_V1, BIRTH, 1);
    let tree = mapping.apply(&born_in_transit(), &ctx).unwrap();
    let err = formats::encode(OPENCRVS_V1, &tree, &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "encounter/location_id is required by the format but the mapping produced none"
    );
}

#[test]
fn opencrvs_v1_bytes_are_deterministic_and_ids_follow_the_version() {
    let record = twin_with_father();
    let (a, bundle_a) = render(OPENCRVS_V1, BIRTH, &record, 5);
    let (b, _) = render(OPENCRVS_V1, BIRTH, &record, 5);
    assert_eq!(a, b);
    let mut v6 = record.clone();
    v6["record_version"] = json!(6);
    let (_, bundle_b) = render(OPENCRVS_V1, BIRTH, &v6, 6);
    assert_ne!(
        bundle_a["entry"][0]["fullUrl"],
        bundle_b["entry"][0]["fullUrl"]
    );
}

// ---------------------------------------------- OpenCRVS 1.x against STU3
//
// The dialect is STU3-shaped, so fhir.resources' STU3 models (an oracle we
// did not write) check every element name, type and cardinality. The one
// documented departure it must report is the plurality code sent as a string
// quantity value (FORMATS.md §2); anything else is a bug.

/// Interpreter with `fhir.resources` 8.x (STU3 models); see STU3_INSTALL.
const STU3_PYTHON_VAR: &str = "FHIR_STU3_PYTHON";
const STU3_INSTALL: &str = "apt-get install -y python3-venv && python3 -m venv /opt/fhir-stu3 && \
     /opt/fhir-stu3/bin/pip install 'fhir.resources==8.3.0' && export FHIR_STU3_PYTHON=/opt/fhir-stu3/bin/python";

const STU3_CHECK: &str = r#"
import json, sys
try:
    from pydantic import ValidationError
    from fhir.resources.STU3 import get_fhir_model_class
except ImportError as e:
    print("fhir.resources 8.x with STU3 models is not installed:", e, file=sys.stderr)
    sys.exit(3)
bundle = json.load(open(sys.argv[1], encoding="utf-8"))
try:
    get_fhir_model_class("Bundle").model_validate(bundle)
    problems = []
except ValidationError as e:
    problems = [{"loc": list(err["loc"]), "type": err["type"]} for err in e.errors()]
print(json.dumps(problems))
"#;

fn stu3_problems(bundle: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stu3_check.py");
    let input = dir.path().join("bundle.json");
    std::fs::write(&script, STU3_CHECK).unwrap();
    std::fs::write(&input, serde_json::to_vec(bundle).unwrap()).unwrap();
    let python = std::env::var(STU3_PYTHON_VAR).unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&input)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); install the oracle: {STU3_INSTALL}")
        });
    assert!(
        out.status.success(),
        "the STU3 oracle did not run ({}); install it: {STU3_INSTALL}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn opencrvs_v1_bundles_are_stu3_but_for_the_documented_plurality_string() {
    for (record, version) in [
        (birth(example("birth-notification")), 1),
        (twin_with_father(), 1),
        // 1.x takes facility births only (a correction, version 5).
        (birth(example("birth-notification")), 5),
    ] {
        let (_, bundle) = render(OPENCRVS_V1, BIRTH, &record, version);
        let entries = bundle["entry"].as_array().unwrap();
        let plurality = entries
            .iter()
            .position(|e| e["resource"]["code"]["coding"][0]["code"] == "57722-1")
            .unwrap();
        let expected = json!({
            "loc": ["entry", plurality, "resource", "valueQuantity", "value"],
            "type": "value_error"
        });
        assert_eq!(stu3_problems(&bundle), vec![expected]);
    }
}

#[test]
fn the_stu3_oracle_sees_a_broken_bundle() {
    let (_, mut bundle) = render(OPENCRVS_V1, BIRTH, &twin_with_father(), 1);
    bundle["entry"][2]["resource"]["name"][0]["family"] = json!(["as before 1.7"]);
    bundle["entry"][1]["resource"]["focus"] = json!("not a reference");
    let locs: Vec<Value> = stu3_problems(&bundle)
        .into_iter()
        .map(|p| p["loc"].clone())
        .collect();
    assert!(
        locs.contains(&json!(["entry", 2, "resource", "name", 0, "family"])),
        "{locs:?}"
    );
    assert!(
        locs.contains(&json!(["entry", 1, "resource", "focus"])),
        "{locs:?}"
    );
}
