use serde_json::json;

use super::*;
use crate::mapping::path::FieldPath;

const FACILITY: &str = include_str!(
    "../../../../../../../tests/data/inbound/fhir-r4-birth-notification-facility.json"
);
const HOME: &str = include_str!(
    "../../../../../../../tests/data/inbound/fhir-r4-birth-notification-home-no-father.json"
);

fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Every path of a tree, arrays as `*`, as a mapping would name them.
fn paths(value: &Value, base: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if base.is_empty() {
            k.to_string()
        } else {
            format!("{base}/{k}")
        }
    };
    match value {
        Value::Object(m) => m.iter().for_each(|(k, v)| paths(v, &join(k), out)),
        Value::Array(a) => a.iter().for_each(|v| paths(v, &join("*"), out)),
        _ => out.push(base.to_string()),
    }
}

#[test]
fn the_catalogue_covers_every_path_the_decoder_writes() {
    let catalogue = catalogue(Path::new("unused")).unwrap();
    let mut all = Vec::new();
    for text in [FACILITY, HOME] {
        paths(&decode(&doc(text)).unwrap(), "", &mut all);
    }
    assert!(all.len() > 30, "{all:?}");
    for p in all {
        assert!(
            catalogue.allows(&FieldPath::parse(&p).unwrap()),
            "{p} is not in the catalogue"
        );
    }
    assert!(catalogue.allows(&FieldPath::parse("mother/identifiers/*").unwrap()));
    assert!(!catalogue.allows(&FieldPath::parse("observations").unwrap()));
}

#[test]
fn fhir_dates_are_read_by_precision_and_checked() {
    assert_eq!(FhirDate::parse("2026"), Some(FhirDate::Year(2026)));
    assert_eq!(FhirDate::parse("2026-09"), Some(FhirDate::YearMonth(2026)));
    assert_eq!(
        FhirDate::parse("2026-09-02"),
        Some(FhirDate::Full("2026-09-02".into()))
    );
    for bad in [
        "2026-13",
        "2026-02-30",
        "+2026",
        "２０２６",
        "2026-9-02",
        "26",
        "2026-09-02T10:00:00Z",
        "",
    ] {
        assert_eq!(FhirDate::parse(bad), None, "{bad}");
    }
}

#[test]
fn birth_times_keep_their_local_date_and_time() {
    assert_eq!(
        local_date_time("2026-09-03T00:40:00+02:00"),
        Some(("2026-09-03".into(), "00:40:00".into()))
    );
    assert_eq!(
        local_date_time("2026-09-02T23:59:59.250-05:00"),
        Some(("2026-09-02".into(), "23:59:59".into()))
    );
    for bad in [
        "2026-09-03",
        "2026-09-03T00:40+02:00",
        "2026-09-03T00:40:00",
        "2026-09-03 00:40:00Z",
        "é",
    ] {
        assert_eq!(local_date_time(bad), None, "{bad}");
    }
}

#[test]
fn grams_and_kilograms_are_kept_and_other_mass_units_become_grams() {
    let n = |v: Value| match v {
        Value::Number(n) => n,
        _ => unreachable!(),
    };
    assert_eq!(mass(&n(json!(3150)), "g"), Some((json!(3150), "g")));
    assert_eq!(mass(&n(json!(3.15)), "kg"), Some((json!(3.15), "kg")));
    assert_eq!(mass(&n(json!(7)), "[lb_av]"), Some((json!(3175.147), "g")));
    assert_eq!(mass(&n(json!(3150000)), "mg"), Some((json!(3150.0), "g")));
    assert_eq!(mass(&n(json!(7)), "lb"), None);
}

#[test]
fn a_mother_who_is_her_own_informant_is_mth() {
    let mut bundle = doc(HOME);
    let mother = bundle["entry"][2]["fullUrl"].clone();
    bundle["entry"][0]["resource"]["section"][2]["entry"][0]["reference"] = mother;
    let tree = decode(&bundle).unwrap();
    assert_eq!(tree["informant"], json!({"relationship": "MTH"}));
}

#[test]
fn a_latin_name_comes_from_an_abc_representation() {
    let mut bundle = doc(HOME);
    bundle["entry"][1]["resource"]["name"] = json!([
        {"use": "official", "family": "ባራካ", "given": ["ኪቶ"]},
        {"use": "official", "family": "Baraka", "given": ["Kito", "Amani"],
         "extension": [{"url": EXT_NAME_REPRESENTATION, "valueCode": "ABC"}]}
    ]);
    let tree = decode(&bundle).unwrap();
    assert_eq!(
        tree["child"]["name"],
        json!({"given_names": "ኪቶ", "family_name": "ባራካ", "given_names_latin": "Kito Amani", "family_name_latin": "Baraka"})
    );
}

#[test]
fn a_device_author_names_the_system_and_a_location_reference_the_facility() {
    let mut bundle = doc(FACILITY);
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.push(json!({"fullUrl": "urn:uuid:dev", "resource": {"resourceType": "Device",
        "deviceName": [{"name": "Maternity EMR", "type": "user-friendly-name"}], "version": [{"value": "5.2.1"}]}}));
    entries.push(
        json!({"fullUrl": "urn:uuid:loc", "resource": {"resourceType": "Location",
        "identifier": [{"system": "urn:examplia:master-facility-list", "value": "HF-010101"}]}}),
    );
    bundle["entry"][0]["resource"]["author"] = json!([{"reference": "urn:uuid:dev"}]);
    bundle["entry"][5]["resource"]["location"][0]["location"] =
        json!({"reference": "urn:uuid:loc"});
    let tree = decode(&bundle).unwrap();
    assert_eq!(
        tree["author"],
        json!({"system_name": "Maternity EMR", "system_version": "5.2.1"})
    );
    assert_eq!(tree["encounter"]["facility_code"], "HF-010101");
}

#[test]
fn plurality_must_be_a_value_integer() {
    let mut bundle = doc(FACILITY);
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .push(json!({"fullUrl": "urn:uuid:plu", "resource": {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "57722-1"}]},
        "valueQuantity": {"value": "SINGLE"}}}));
    let v = decode(&bundle).unwrap_err();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].pointer, "/entry/7/resource/valueInteger");
}

#[test]
fn cancelled_weights_and_weights_of_others_are_skipped() {
    let mut bundle = doc(FACILITY);
    bundle["entry"][6]["resource"]["status"] = json!("entered-in-error");
    assert!(decode(&bundle).unwrap().get("birth_weight").is_none());
    let mut bundle = doc(FACILITY);
    bundle["entry"][6]["resource"]["subject"]["reference"] = bundle["entry"][2]["fullUrl"].clone();
    assert!(decode(&bundle).unwrap().get("birth_weight").is_none());
}

#[test]
fn a_subject_given_by_identifier_only_is_refused() {
    let mut bundle = doc(HOME);
    bundle["entry"][0]["resource"]["subject"] = json!({"identifier": {"value": "CANARY-1"}});
    let v = decode(&bundle).unwrap_err();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].pointer.as_str(), v[0].code),
        ("/entry/0/resource/subject/reference", "required")
    );
    assert!(!v[0].message.contains("CANARY"));
}

#[test]
fn an_element_read_twice_is_reported_once() {
    let mut bundle = doc(HOME);
    bundle["timestamp"] = json!(20260821);
    let v = decode(&bundle).unwrap_err();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].pointer.as_str(), v[0].code), ("/timestamp", "type"));
}

/// A bundle past `MAX_ENTRIES` is refused before any entry is read, and
/// references resolve through the index as a scan in entry order would: by
/// fullUrl first, then the earlier of a fullUrl tail and a type/id match.
#[test]
fn bundles_are_bounded_and_references_resolve_by_index() {
    let mut big = doc(FACILITY);
    let entries = big["entry"].as_array_mut().unwrap();
    while entries.len() <= bundle::MAX_ENTRIES {
        entries.push(json!({"fullUrl": format!("urn:uuid:{}", entries.len()), "resource": {"resourceType": "Basic"}}));
    }
    let problems = decode(&big).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].code, "too_many_entries");

    let payload = json!({"resourceType": "Bundle", "type": "document", "timestamp": "2026-01-01T00:00:00Z", "entry": [
        {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition"}},
        {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "7"}},
        {"fullUrl": "https://moh.example/fhir/Patient/7", "resource": {"resourceType": "Patient", "id": "8"}},
        {"fullUrl": "Patient/9", "resource": {"resourceType": "Patient", "id": "10"}}
    ]});
    let mut reader = read::Reader::default();
    let bundle = bundle::open(&payload, &mut reader).unwrap();
    let found = |reference: &str| bundle.resolve(reference).map(|(i, _)| i);
    assert_eq!(found("urn:uuid:p1"), Some(1));
    assert_eq!(found("Patient/7"), Some(1), "type/id of an earlier entry");
    assert_eq!(found("Patient/8"), Some(2));
    assert_eq!(found("Patient/9"), Some(3), "an exact fullUrl");
    assert_eq!(found("Patient/10"), Some(3));
    assert_eq!(found("Patient/x/y"), None);
    assert_eq!(found("Observation/7"), None);
}
