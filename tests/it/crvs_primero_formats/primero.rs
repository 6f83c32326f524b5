//! Primero v2 case creation (FORMATS.md §4).

use super::*;

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
    assert_eq!(data["id"], ctx(PRIMERO, CASE, 3).record_key().to_string());
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
    // Primero v2.15's concern rows have a type, a period and details only.
    assert!(details[0].get("concern_action_taken_already").is_none());
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
    // No field holds a reason on a Primero case: the override travels alone.
    assert!(!data.contains_key("consent_override_reason"));
    assert_eq!(data["legitimate_basis"], json!(["vital_interest"]));
    assert_eq!(data["consent_withdrawn_date"], "2026-10-21");
}

#[test]
fn primero_bytes_are_deterministic_and_the_id_is_the_same_for_every_version() {
    let record = case(example("child-protection-case"));
    let (a, body_a) = render(PRIMERO, CASE, &record, 3);
    let (b, _) = render(PRIMERO, CASE, &record, 3);
    assert_eq!(a, b, "same input, same bytes");
    let mut v4 = record.clone();
    v4["record_version"] = json!(4);
    let (_, body_b) = render(PRIMERO, CASE, &v4, 4);
    // A correction PATCHes the same case: the id is the record key.
    assert_eq!(body_a["data"]["id"], body_b["data"]["id"]);
    assert_eq!(
        body_b["data"]["id"],
        ctx(PRIMERO, CASE, 4).record_key().to_string()
    );
}
