//! Canonical records through the shipped mapping files and encoders of three
//! destinations: OpenCRVS 2.x (`opencrvs`), the OpenCRVS 1.x FHIR dialect
//! (`opencrvs-v1`) and Primero v2 case creation (`primero`).
//!
//! Each test maps and encodes a varied record and asserts the registry's
//! rules on the bytes that would be sent (FORMATS.md §1.2, §2, §4).

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

// ---------------------------------------------------------------- Primero v2

const PRIMERO: DestinationKind = DestinationKind::Primero;
const CASE: RecordType = RecordType::ChildProtectionCase;

fn case(record: Value) -> Value {
    validated(CASE, record)
}

#[test]
fn primero_separated_child_with_consent_carries_the_full_case_without_gbv() {
    let record = case(example("child-protection-case"));
    let (_, body) = render(PRIMERO, CASE, &record, 3);
    let data = &body["data"];
    assert_eq!(data["id"], ctx(PRIMERO, CASE, 3).message_id().to_string());
    assert_eq!(data["module_id"], "primeromodule-cp");
    assert_eq!(data["name_first"], "Amira");
    assert_eq!(data["name_last"], "Tavoush");
    assert_eq!(data["sex"], "female");
    assert_eq!(data["age"], 14);
    assert_eq!(data["estimated"], false);
    assert_eq!(data["nationality"], json!(["syria"]));
    assert_eq!(data["protection_status"], "separated");
    assert_eq!(data["urgent_protection_concern"], "true");
    assert_eq!(data["displacement_status"], "refugee");
    assert_eq!(data["unhcr_individual_no"], "EXA-26-0049130");
    assert!(
        data.get("national_id_no").is_none(),
        "a UNHCR number is never a national id"
    );
    assert_eq!(data["other_id_type"], "Ration card");
    assert_eq!(data["other_id_no"], "RC-118745");
    // GBV never leaves at case level.
    assert_eq!(
        data["protection_concerns"],
        json!(["living_with_vulnerable_person"])
    );
    let details = data["protection_concern_detail_subform_section"]
        .as_array()
        .unwrap();
    assert_eq!(details.len(), 1);
    assert_eq!(
        details[0]["protection_concern_type"],
        "living_with_vulnerable_person"
    );
    assert_eq!(
        details[0]["unique_id"],
        "3b8f1c62-7d4e-5a90-9c13-e2f6a4b70d15"
    );
    assert_eq!(details[0]["concern_action_taken_already"], true);
    let incidents = data["incident_details"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["cp_incident_violence_type"], "non-gbv");
    assert_eq!(incidents[0]["incident_location"], "EX0402");
    let text = String::from_utf8(serde_json::to_vec(&body).unwrap()).unwrap();
    for gbv in [
        "gbv_survivor",
        "Disclosed an assault",
        "sexual_assault",
        "Assaulted by",
    ] {
        assert!(!text.contains(gbv), "{gbv} left at case level");
    }
    // The rest of the case.
    let care = data["care_arrangements_section"].as_array().unwrap();
    assert_eq!(care.len(), 1);
    assert_eq!(
        care[0]["care_arrangements_type"],
        "kinship_care_extended_family"
    );
    assert_eq!(care[0]["relationship_caregiver"], "aunt");
    let family = data["family_details_section"].as_array().unwrap();
    assert_eq!(family.len(), 2);
    assert_eq!(family[0]["relation_is_caregiver"], true);
    assert_eq!(family[0]["relation_nationality"], json!(["syria"]));
    assert_eq!(family[1]["relation_is_alive"], "unknown");
    assert_eq!(data["tracing_status"], "tracing_in_progress");
    assert_eq!(
        data["notes_section"][0]["note_subject"],
        "Registration interview"
    );
    let services = data["services_section"].as_array().unwrap();
    assert_eq!(services[0]["service_implemented"], "implemented");
    assert_eq!(services[1]["service_implemented"], "not_implemented");
    assert_eq!(data["consent_for_services"], true);
    assert_eq!(data["consent_for_tracing"], "true");
    assert_eq!(
        data["consent_info_sharing"],
        json!(["family", "authorities", "unhcr"])
    );
    assert_eq!(data["legitimate_basis"], json!(["consent"]));
}

#[test]
fn primero_unaccompanied_child_without_consent_fields() {
    let record = case(json!({
        "record_type": "child-protection-case",
        "record_version": 1,
        "source_record_id": "18e92f3e-431f-5245-bea9-f59b5e8a1ff3",
        "name": {"given_names": "Yonas", "family_name": "Tesfaye"},
        "sex": "male",
        "age_years": 16,
        "date_of_birth": "2010-01-01",
        "estimated": true,
        "nationality": ["ERI", "XXA"],
        "location_current": "EX0101",
        "displacement_status": "asylum_seeker",
        "protection_status": "unaccompanied",
        "urgent_protection_concern": true,
        "care_arrangement": {"type": "residential_care", "caregiver_name": "Port Meridian reception centre"}
    }));
    let (_, body) = render(PRIMERO, CASE, &record, 1);
    let data = body["data"].as_object().unwrap();
    assert_eq!(data["protection_status"], "unaccompanied");
    assert_eq!(data["displacement_status"], "asylum_seeker");
    assert_eq!(
        data["nationality"],
        json!(["eritrea"]),
        "XXA is not a country"
    );
    assert_eq!(data["estimated"], true);
    assert_eq!(data["cpims_id"], "18e92f3e-431f-5245-bea9-f59b5e8a1ff3");
    let care = data["care_arrangements_section"].as_array().unwrap();
    assert_eq!(care[0]["name_caregiver"], "Port Meridian reception centre");
    assert!(care[0]["unique_id"].is_string());
    for absent in [
        "consent_for_services",
        "disclosure_other_orgs",
        "consent_info_sharing",
        "legitimate_basis",
        "family_details_section",
        "incident_details",
    ] {
        assert!(!data.contains_key(absent), "{absent}");
    }
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "age",
            "care_arrangements_section",
            "cpims_id",
            "date_of_birth",
            "displacement_status",
            "estimated",
            "id",
            "location_current",
            "module_id",
            "name_first",
            "name_last",
            "nationality",
            "protection_status",
            "sex",
            "urgent_protection_concern"
        ],
        "exactly what the record holds, nothing the mapping does not name"
    );
}

#[test]
fn primero_maps_canonical_words_back_to_primero_lookups() {
    let record = case(json!({
        "record_type": "child-protection-case",
        "record_version": 2,
        "name": {"given_names": "Олександр", "family_name": "Коваль", "nickname": "Саша"},
        "sex": "unknown",
        "age_years": 9,
        "nationality": ["UKR"],
        "identifiers": [
            {"scheme": "national_id", "value": "1234567890", "issuer": "UKR"},
            {"scheme": "passport", "value": "FX123456", "issuer": "UKR"},
            {"scheme": "unhcr_case", "value": "EXA-26C00001"}
        ],
        "displacement_status": "host_community",
        "protection_status": "other",
        "care_arrangement": {"type": "parents"},
        "incidents": [
            {"row_id": "i-1", "violence_type": "physical_assault", "description": "CANARY narrative"},
            {"row_id": "i-2", "description": "CANARY no type is GBV-sensitive"}
        ],
        "protection_concerns": ["gbv_survivor"],
        "gbv_survivor": true,
        "consent": {
            "interview_subject": "individual",
            "consent_for_services": false,
            "consent_reporting": false,
            "consent_overridden": true,
            "override_reason": "Imminent risk to life",
            "legitimate_basis": ["vital_interest"],
            "consent_withdrawn": true,
            "consent_withdrawn_date": "2026-10-21"
        }
    }));
    let (bytes, body) = render(PRIMERO, CASE, &record, 2);
    let data = body["data"].as_object().unwrap();
    assert_eq!(data["name_first"], "Олександр");
    assert_eq!(data["name_nickname"], "Саша");
    assert!(!data.contains_key("sex"), "Primero has no code for unknown");
    assert!(
        !data.contains_key("protection_status"),
        "other is not a UASC status"
    );
    assert_eq!(data["displacement_status"], "resident");
    assert_eq!(
        data["care_arrangements_section"][0]["care_arrangements_type"],
        "parent_s"
    );
    assert_eq!(data["national_id_no"], "1234567890");
    assert_eq!(data["unhcr_id_no"], "EXA-26C00001");
    assert_eq!(data["other_id_type"], "Passport (UKR)");
    assert_eq!(data["other_id_no"], "FX123456");
    assert!(!data.contains_key("incident_details"));
    assert!(!data.contains_key("protection_concerns"));
    assert!(!data.contains_key("gbv_survivor"));
    assert!(!String::from_utf8(bytes).unwrap().contains("CANARY"));
    assert_eq!(data["consent_reporting"], "false");
    assert_eq!(data["consent_overridden"], true);
    assert_eq!(data["consent_override_reason"], "Imminent risk to life");
    assert_eq!(data["legitimate_basis"], json!(["vital_interest"]));
    assert_eq!(data["consent_withdrawn_date"], "2026-10-21");
}

#[test]
fn primero_bytes_are_deterministic_and_the_id_follows_the_version() {
    let record = case(example("child-protection-case"));
    let (a, body_a) = render(PRIMERO, CASE, &record, 3);
    let (b, _) = render(PRIMERO, CASE, &record, 3);
    assert_eq!(a, b, "same input, same bytes");
    let mut v4 = record.clone();
    v4["record_version"] = json!(4);
    let (_, body_b) = render(PRIMERO, CASE, &v4, 4);
    assert_ne!(body_a["data"]["id"], body_b["data"]["id"]);
    assert_eq!(
        body_b["data"]["id"],
        ctx(PRIMERO, CASE, 4).message_id().to_string()
    );
}

// ------------------------------------------------------------- OpenCRVS 2.x

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

/// Declaration field ids of Examplia's form (form.toml).
fn form_field_ids() -> Vec<String> {
    let text = std::fs::read_to_string(repo("mappings/destinations/opencrvs/form.toml")).unwrap();
    let form: toml::Table = toml::from_str(&text).unwrap();
    form["fields"].as_table().unwrap().keys().cloned().collect()
}

fn assert_keys_in_form(body: &Value) {
    let ids = form_field_ids();
    for key in body["declaration"].as_object().unwrap().keys() {
        assert!(ids.contains(key), "{key} is not in form.toml");
    }
}

#[test]
fn opencrvs_facility_birth_from_the_example_record() {
    let record = birth(example("birth-notification"));
    let (bytes, body) = render(OPENCRVS, BIRTH, &record, 1);
    assert_keys_in_form(&body);
    assert_eq!(body["eventType"], "birth");
    assert_eq!(body["createdAtLocation"], RECEIVING_OFFICE);
    assert_eq!(
        body["transactionId"],
        ctx(OPENCRVS, BIRTH, 1).idempotency_key()
    );
    let d = &body["declaration"];
    assert_eq!(
        d["child.name"],
        json!({"firstname": "ሊያ", "surname": "ሃብተ"})
    );
    assert_eq!(d["child.gender"], "female");
    assert_eq!(d["child.dob"], "2026-10-21");
    assert_eq!(d["child.placeOfBirth"], "HEALTH_FACILITY");
    assert_eq!(
        d["child.birthLocation"],
        "a20b462e-1087-55f4-9a5f-c0d6431ec523"
    );
    assert_eq!(d["child.birthType"], "SINGLE");
    assert_eq!(d["child.attendantAtBirth"], "MIDWIFE");
    assert_eq!(d["child.weightAtBirth"], 3.12, "grams become kilograms");
    assert_eq!(d["informant.relation"], "MOTHER");
    assert_eq!(d["informant.phoneNo"], "+292445550163");
    assert_eq!(d["mother.dobUnknown"], true);
    assert_eq!(d["mother.age"], "24");
    assert_eq!(d["mother.nationality"], "XXB");
    assert_eq!(
        d["mother.idType"], "NONE",
        "UNHCR numbers are not ids OpenCRVS takes"
    );
    assert_eq!(
        d["mother.address"],
        json!({"country": "EXA", "addressType": "DOMESTIC",
               "administrativeArea": "0ed90d7f-be4f-5576-9180-1ca48fd17756"})
    );
    assert_eq!(d["father.detailsNotAvailable"], true);
    assert_eq!(d["father.reason"], "Father separated from the family");
    let text = String::from_utf8(bytes).unwrap();
    for never in [
        "EXA-26-0052217",
        "EXA-26C02388",
        "anaemia",
        "epds",
        "refugee",
    ] {
        assert!(!text.contains(never), "{never} reached OpenCRVS");
    }
}

#[test]
fn opencrvs_twin_with_father_keeps_arabic_names_and_ids_exactly() {
    let (_, body) = render(OPENCRVS, BIRTH, &twin_with_father(), 1);
    assert_keys_in_form(&body);
    let d = &body["declaration"];
    assert_eq!(d["child.name"]["surname"], "الشيخ'&<علي>");
    assert_eq!(d["child.name"]["firstname"], "نور الهدى");
    assert_eq!(d["child.birthType"], "TWIN");
    assert_eq!(d["child.weightAtBirth"], 2.45);
    assert_eq!(d["child.attendantAtBirth"], "PHYSICIAN");
    assert_eq!(
        d["child.birthLocation"],
        "78840a0e-2527-57a0-ae56-80d9243e4dde"
    );
    assert_eq!(d["mother.dob"], "1995-04-12");
    assert!(d.get("mother.dobUnknown").is_none());
    assert_eq!(
        d["mother.idType"], "NATIONAL_ID",
        "a national id wins over a passport"
    );
    assert_eq!(d["mother.nid"], "4532015112");
    assert!(d.get("mother.passport").is_none());
    assert_eq!(d["father.detailsNotAvailable"], false);
    assert_eq!(d["father.name"]["firstname"], "عمر");
    assert_eq!(d["father.age"], "34");
    assert_eq!(d["father.dobUnknown"], true);
    assert_eq!(d["father.nid"], "7992739871");
    assert_eq!(d["father.addressSameAs"], "YES");
    assert!(d.get("father.address").is_none());
    assert!(d.get("father.reason").is_none());
    assert_eq!(d["informant.relation"], "FATHER");
    assert_eq!(d["informant.email"], "omar@example.org");
    assert!(d.get("informant.other.relation").is_none());
}

#[test]
fn opencrvs_home_birth_with_father_unknown() {
    let (bytes, body) = render(OPENCRVS, BIRTH, &home_birth_father_unknown(), 5);
    assert_keys_in_form(&body);
    let d = &body["declaration"];
    assert_eq!(d["child.name"]["firstname"], "Мар'яна");
    assert_eq!(
        d["child.gender"], "unknown",
        "the form has no option for other"
    );
    assert_eq!(d["child.placeOfBirth"], "PRIVATE_HOME");
    assert!(d.get("child.birthLocation").is_none());
    assert_eq!(
        d["child.birthLocation.privateHome"],
        json!({"country": "EXA", "addressType": "DOMESTIC",
               "administrativeArea": "cda1d4e3-e4e9-58fa-8f54-2df3324ef270"})
    );
    assert_eq!(d["child.weightAtBirth"], 3.48);
    assert_eq!(d["child.attendantAtBirth"], "TRADITIONAL_BIRTH_ATTENDANT");
    assert_eq!(
        d["mother.name"]["firstname"], "\u{419}осипа",
        "names leave in NFC, whatever form they came in"
    );
    assert_eq!(d["mother.idType"], "PASSPORT");
    assert_eq!(d["mother.passport"], "FX998877");
    assert!(
        d.get("mother.nid").is_none(),
        "a UNHCR number is never a national id"
    );
    assert_eq!(d["informant.relation"], "OTHER");
    assert_eq!(d["informant.other.relation"], "Other family member");
    assert_eq!(
        d["informant.name"],
        json!({"firstname": "Ганна", "surname": "Коваль"})
    );
    assert_eq!(d["father.detailsNotAvailable"], true);
    assert_eq!(d["father.reason"], "Father unknown to the informant");
    let text = String::from_utf8(bytes).unwrap();
    for never in ["CANARY", "EXA-26-0061234", "epds", "refugee", "block C"] {
        assert!(!text.contains(never), "{never} reached OpenCRVS");
    }
}

#[test]
fn opencrvs_birth_in_transit_has_no_date_and_no_address() {
    let (_, body) = render(OPENCRVS, BIRTH, &born_in_transit(), 1);
    assert_keys_in_form(&body);
    let d = body["declaration"].as_object().unwrap();
    assert_eq!(d["child.placeOfBirth"], "OTHER");
    for absent in [
        "child.dob",
        "child.birthLocation",
        "child.birthLocation.other",
        "child.attendantAtBirth",
        "child.weightAtBirth",
        "child.name",
    ] {
        assert!(!d.contains_key(absent), "{absent}");
    }
    assert_eq!(d["mother.name"], json!({"firstname": "Amina"}));
    assert_eq!(d["mother.idType"], "NONE");
    assert_eq!(
        d["father.reason"],
        "Father's details withheld by the informant"
    );
}

#[test]
fn opencrvs_transaction_id_is_deterministic_and_follows_the_version() {
    let record = twin_with_father();
    let (a, body_a) = render(OPENCRVS, BIRTH, &record, 1);
    let (b, _) = render(OPENCRVS, BIRTH, &record, 1);
    assert_eq!(a, b, "same input, same bytes");
    let mut v2 = record.clone();
    v2["record_version"] = json!(2);
    let (_, body_b) = render(OPENCRVS, BIRTH, &v2, 2);
    assert_ne!(body_a["transactionId"], body_b["transactionId"]);
    assert_eq!(
        body_b["transactionId"],
        ctx(OPENCRVS, BIRTH, 2).idempotency_key()
    );
    assert_eq!(body_a["declaration"], body_b["declaration"]);
}

#[test]
fn a_declaration_key_missing_from_the_form_fails_to_load_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("opencrvs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(
        repo("mappings/destinations/opencrvs/form.toml"),
        folder.join("form.toml"),
    )
    .unwrap();
    let shipped = std::fs::read_to_string(repo(
        "mappings/destinations/opencrvs/birth-notification.toml",
    ))
    .unwrap();
    let extra = "\n[[fields]]\nto = \"declaration/child.favouriteColour\"\nfrom = \"child/sex\"\n\
                 \n[[fields]]\nto = \"declaration/child.name/nickname\"\nfrom = \"child/name/given_names\"\n";
    let file = folder.join("birth-notification.toml");
    std::fs::write(&file, format!("{shipped}{extra}")).unwrap();
    let first_new_line = shipped.lines().count() + 2;
    let errors = load_file(
        &file,
        (Side::Canonical(BIRTH), Side::Destination(OPENCRVS)),
        &canonical(BIRTH),
        &opencrvs::catalogue(&folder).unwrap(),
        &codelists(),
    )
    .unwrap_err();
    let found: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 2, "{found:?}");
    assert_eq!(errors[0].line, first_new_line, "{found:?}");
    assert!(errors[0].message.contains("child.favouriteColour"));
    assert!(errors[1].message.contains("nickname"));
    assert!(
        errors
            .iter()
            .all(|e| e.message.contains("target has no such field"))
    );
}

// ------------------------------------------------------------- OpenCRVS 1.x

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
fn opencrvs_v1_home_birth_is_placed_in_its_district() {
    let (_, bundle) = render(OPENCRVS_V1, BIRTH, &home_birth_father_unknown(), 5);
    assert_opencrvs_v1_rules(&bundle);
    assert_eq!(
        resource(&bundle, "Encounter", 0)["location"][0]["location"]["reference"],
        "Location/cda1d4e3-e4e9-58fa-8f54-2df3324ef270"
    );
    assert_eq!(resource(&bundle, "Patient", 0)["gender"], "unknown");
    let informant = resource(&bundle, "Patient", 3);
    assert_eq!(informant["name"][0]["given"], json!(["Ганна"]));
    assert_eq!(
        observation(&bundle, "3141-9").unwrap()["valueQuantity"]["value"],
        3.48
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
    let record = home_birth_father_unknown();
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
        (home_birth_father_unknown(), 5),
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

#[test]
fn examplia_place_rules_are_mapping_errors_that_name_the_rule_not_the_value() {
    let target = target(OPENCRVS);
    let mapping = mapping(OPENCRVS, BIRTH, &target);
    let ctx = ctx(OPENCRVS, BIRTH, 1);
    let mut no_facility = twin_with_father();
    no_facility["child"]["place_of_birth"]
        .as_object_mut()
        .unwrap()
        .remove("facility_code");
    let err = mapping
        .apply(&validated(BIRTH, no_facility), &ctx)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required input child/place_of_birth/facility_code is missing"),
        "{err}"
    );
    let mut unknown_facility = twin_with_father();
    unknown_facility["child"]["place_of_birth"]["facility_code"] = json!("HF-CANARY9");
    let err = mapping
        .apply(&validated(BIRTH, unknown_facility), &ctx)
        .unwrap_err();
    assert!(
        err.to_string().contains("opencrvs-health-facility"),
        "{err}"
    );
    assert!(!err.to_string().contains("CANARY"));
    let mut home_without_area = home_birth_father_unknown();
    home_without_area["child"]["place_of_birth"]
        .as_object_mut()
        .unwrap()
        .remove("admin_area");
    let err = mapping
        .apply(&validated(BIRTH, home_without_area), &ctx)
        .unwrap_err();
    assert!(
        err.to_string().contains("child/place_of_birth/admin_area"),
        "{err}"
    );
}
