//! Canonical records through the shipped mapping files and encoders of three
//! destinations: OpenCRVS 2.x (`opencrvs`), the OpenCRVS 1.x FHIR dialect
//! (`opencrvs-v1`) and Primero v2 case creation (`primero`).
//!
//! Each test maps and encodes a varied record and asserts the registry's
//! rules on the bytes that would be sent (FORMATS.md §1.2, §2, §4). This
//! file holds the helpers and the birth notifications both OpenCRVS formats
//! take; the tests of each format are in `crvs_primero_formats/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::DateTime;
use registry_gateway::config::DestinationKind;
use registry_gateway::mapping::codelist::{self, CodeList};
use registry_gateway::mapping::formats::{self, opencrvs, opencrvs_v1, primero};
use registry_gateway::mapping::{Catalogue, Mapping, RouteContext, Side, load_file};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::schema::SchemaRegistry;
use serde_json::{Value, json};

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn codelists() -> BTreeMap<String, Arc<CodeList>> {
    codelist::load_dir(&repo("mappings/codelists"))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, Arc::new(v)))
        .collect()
}

fn canonical(record_type: RecordType) -> Catalogue {
    let schemas = SchemaRegistry::load().unwrap();
    Catalogue::new(schemas.field_paths(record_type).iter().cloned())
}

/// Compile `mappings/destinations/<destination>/<record-type>.toml`.
fn mapping(kind: DestinationKind, record_type: RecordType, target: &Catalogue) -> Mapping {
    let file = repo(&format!(
        "mappings/destinations/{}/{record_type}.toml",
        kind.as_str()
    ));
    load_file(
        &file,
        (Side::Canonical(record_type), Side::Destination(kind)),
        &canonical(record_type),
        target,
        &codelists(),
    )
    .unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{} does not load:\n{}", file.display(), lines.join("\n"))
    })
}

/// The destination's catalogue, from its module (formats::destination_catalogue
/// dispatches to the same functions once the lead wires them).
fn target(kind: DestinationKind) -> Catalogue {
    let folder = repo(&format!("mappings/destinations/{}", kind.as_str()));
    match kind {
        DestinationKind::Opencrvs => opencrvs::catalogue(&folder),
        DestinationKind::OpencrvsV1 => opencrvs_v1::catalogue(&folder),
        DestinationKind::Primero => primero::catalogue(&folder),
        other => panic!("{} is not tested here", other.as_str()),
    }
    .unwrap()
}

fn ctx(kind: DestinationKind, record_type: RecordType, version: i64) -> RouteContext {
    RouteContext {
        record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-00000000c0de").unwrap(),
        record_version: version,
        route: format!("{record_type}-to-{}", kind.as_str()),
        destination: kind.as_str().into(),
        timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        attempt: 1,
        subject: None,
        locations: Some(crate::common::example_locations()),
    }
}

/// A record must be valid canonical input before it is mapped.
fn validated(record_type: RecordType, record: Value) -> Value {
    let schemas = SchemaRegistry::load().unwrap();
    let violations = schemas.validate(record_type, &record);
    assert!(
        violations.is_empty(),
        "test record is not a valid {record_type}: {violations:?}"
    );
    record
}

fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("schemas/examples/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Map and encode; returns the bytes and the parsed body.
fn render(
    kind: DestinationKind,
    record_type: RecordType,
    record: &Value,
    version: i64,
) -> (Vec<u8>, Value) {
    let target = target(kind);
    let mapping = mapping(kind, record_type, &target);
    let ctx = ctx(kind, record_type, version);
    let tree = mapping.apply(record, &ctx).expect("the record maps");
    let encoded = formats::encode(kind, &tree, &ctx).expect("the tree encodes");
    assert_eq!(encoded.extension, "json");
    let body = serde_json::from_slice(&encoded.bytes).unwrap();
    (encoded.bytes, body)
}

#[path = "crvs_primero_formats/opencrvs_v1.rs"]
mod opencrvs_1x;
#[path = "crvs_primero_formats/opencrvs.rs"]
mod opencrvs_2x;
#[path = "crvs_primero_formats/primero.rs"]
mod primero_v2;

// ------------------------------- birth notifications used by both OpenCRVS formats

const OPENCRVS: DestinationKind = DestinationKind::Opencrvs;
const OPENCRVS_V1: DestinationKind = DestinationKind::OpencrvsV1;
const BIRTH: RecordType = RecordType::BirthNotification;

const RECEIVING_OFFICE: &str = "cf1a580d-e405-5d49-93d8-20b7cc249525";

fn birth(record: Value) -> Value {
    validated(BIRTH, record)
}

/// Twins, father given with a national id, weight in kg, Arabic names with
/// an apostrophe, an ampersand and angle brackets.
fn twin_with_father() -> Value {
    birth(json!({
        "record_type": "birth-notification",
        "record_version": 1,
        "source_record_id": "urn:uuid:7d1b0f0e-2c55-5b8a-9d3e-4f6a1c2b3d4e",
        "notified_at": "2026-11-02T07:40:00+02:00",
        "notifier": {"agency_code": "MOH", "system_name": "Capital General EMR", "facility_code": "HF-010101"},
        "child": {
            "name": {"given_names": "نور الهدى", "family_name": "الشيخ'&<علي>", "script": "Arab"},
            "sex": "female",
            "date_of_birth": "2026-11-01",
            "time_of_birth": "00:40:00",
            "place_of_birth": {"type": "health_facility", "facility_code": "HF-010101", "admin_area": "EX0101", "country": "EXA"}
        },
        "birth_type": "twin",
        "birth_order": 2,
        "multiple_birth_siblings": [{"source_record_id": "urn:uuid:7d1b0f0e-2c55-5b8a-9d3e-4f6a1c2b3d4f"}],
        "birth_weight": {"value": 2.45, "unit": "kg"},
        "attendant_at_birth": "doctor",
        "mother": {
            "name": {"given_names": "فاطمة", "family_name": "الشيخ"},
            "date_of_birth": "1995-04-12",
            "nationality": "EXA",
            "identifiers": [
                {"scheme": "passport", "value": "P1234567", "issuer": "EXA"},
                {"scheme": "national_id", "value": "4532015112", "issuer": "EXA"}
            ],
            "residence_admin_area": "EX0101003"
        },
        "father": {
            "name": {"given_names": "عمر", "family_name": "الشيخ"},
            "age_years": 34,
            "nationality": "EXA",
            "identifiers": [{"scheme": "national_id", "value": "7992739871", "issuer": "EXA"}],
            "residence_admin_area": "EX0101003"
        },
        "informant": {"relationship": "father", "contact_email": "omar@example.org"},
        "legal_basis": "legal_obligation"
    }))
}

/// A home birth, father unknown, Cyrillic names with an apostrophe and one
/// in decomposed form (NFD), a mother with a passport and a UNHCR number, a
/// grandmother informing.
fn home_birth_father_unknown() -> Value {
    birth(json!({
        "record_type": "birth-notification",
        "record_version": 5,
        "notified_at": "2026-09-30T18:05:00+02:00",
        "notifier": {"agency_code": "UNHCR", "system_name": "Blue Dot Desk App"},
        "child": {
            "name": {"given_names": "Мар'яна", "family_name": "Коваль", "script": "Cyrl"},
            "sex": "other",
            "date_of_birth": "2026-09-28",
            "place_of_birth": {"type": "home", "admin_area": "EX0203", "country": "EXA", "description": "Family shelter, block C"}
        },
        "birth_type": "single",
        "birth_order": 1,
        "birth_weight": {"value": 3480, "unit": "g"},
        "attendant_at_birth": "traditional_birth_attendant",
        "mother": {
            "name": {"given_names": "\u{418}\u{306}осипа", "family_name": "Коваль"},
            "age_years": 19,
            "nationality": "UKR",
            "identifiers": [
                {"scheme": "unhcr_individual", "value": "EXA-26-0061234"},
                {"scheme": "passport", "value": "FX998877", "issuer": "UKR"}
            ],
            "residence_admin_area": "EX0203",
            "displacement_status": "refugee"
        },
        "father_details_not_available": {"reason": "unknown_to_informant"},
        "informant": {
            "relationship": "other_family",
            "name": {"given_names": "Ганна", "family_name": "Коваль"},
            "contact_phone": "+292445550901"
        },
        "maternal_health_notes": "CANARY clinical note",
        "mother_mhpss_screening": {"instrument": "epds", "score": 14, "positive": true}
    }))
}

/// Born in transit, age estimated, no country known.
fn born_in_transit() -> Value {
    birth(json!({
        "record_type": "birth-notification",
        "record_version": 1,
        "notified_at": "2026-08-14T11:00:00Z",
        "notifier": {"agency_code": "UNICEF", "system_name": "Blue Dot Desk App"},
        "child": {
            "sex": "male",
            "estimated_age_months": 2,
            "estimate_reason": "born_in_transit",
            "place_of_birth": {"type": "in_transit", "description": "On the road north of the border"}
        },
        "birth_type": "single",
        "birth_order": 1,
        "attendant_at_birth": "unknown",
        "mother": {
            "name": {"given_names": "Amina"},
            "age_years": 22,
            "nationality": "XXA",
            "identifiers": [{"scheme": "unhcr_case", "value": "EXA-26C04411"}]
        },
        "father_details_not_available": {"reason": "withheld"},
        "informant": {"relationship": "mother"}
    }))
}
