//! OpenCRVS 2.x event notification (FORMATS.md §1.2).

use super::*;

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
    assert_eq!(
        d["mother.age"],
        json!({"age": 24, "asOfDateRef": "child.dob"})
    );
    // XXB (refugee) is no ISO 3166 country: OpenCRVS would show it blank.
    assert!(d.get("mother.nationality").is_none(), "{d}");
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
    assert_eq!(
        d["father.age"],
        json!({"age": 34, "asOfDateRef": "child.dob"})
    );
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
        err.to_string()
            .contains("no facility with this code is in the registry's location list"),
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
