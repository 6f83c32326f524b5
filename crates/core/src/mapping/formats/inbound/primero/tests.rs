use serde_json::json;

use super::*;
use crate::mapping::path::FieldPath;

const SEPARATED: &str =
    include_str!("../../../../../../../tests/data/inbound/primero-case-separated-consented.json");
const FULL: &str =
    include_str!("../../../../../../../tests/data/inbound/primero-case-full-withdrawn.json");

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

fn data(fields: Value) -> Value {
    json!({ "data": fields })
}

#[test]
fn the_catalogue_covers_every_path_the_decoder_writes() {
    let catalogue = catalogue(Path::new("unused")).unwrap();
    let mut all = Vec::new();
    for text in [SEPARATED, FULL] {
        paths(
            &decode(&serde_json::from_str(text).unwrap()).unwrap(),
            "",
            &mut all,
        );
    }
    assert!(all.len() > 40, "{all:?}");
    for p in all {
        assert!(
            catalogue.allows(&FieldPath::parse(&p).unwrap()),
            "{p} is not in the catalogue"
        );
    }
}

#[test]
fn unknown_fields_are_dropped_and_known_ones_kept() {
    let tree = decode(&data(
        json!({"name_first": "A", "owned_by": "u", "custom": {"x": 1}}),
    ))
    .unwrap();
    assert_eq!(tree, json!({"name_first": "A"}));
}

#[test]
fn yes_no_fields_take_booleans_and_their_lookup_strings() {
    for (given, read) in [
        (json!(true), true),
        (json!("true"), true),
        (json!(false), false),
        (json!("false"), false),
    ] {
        let tree = decode(&data(json!({"consent_for_tracing": given}))).unwrap();
        assert_eq!(tree["consent_for_tracing"], read);
    }
    for bad in [json!("yes"), json!(1), json!("True"), json!(["true"])] {
        let v = decode(&data(json!({"consent_for_tracing": bad}))).unwrap_err();
        assert_eq!(v[0].pointer, "/data/consent_for_tracing");
    }
}

#[test]
fn nulls_and_empty_values_are_absent() {
    let tree = decode(&data(json!({
        "name_middle": null, "name_last": "", "nationality": [], "age": null, "family_details_section": []
    })))
    .unwrap();
    assert_eq!(tree, json!({}));
}

#[test]
fn integers_may_be_written_as_whole_floats() {
    assert_eq!(decode(&data(json!({"age": 11.0}))).unwrap()["age"], 11);
    let v = decode(&data(json!({"age": 11.5}))).unwrap_err();
    assert_eq!((v[0].pointer.as_str(), v[0].code), ("/data/age", "type"));
}

#[test]
fn dates_of_date_times_are_taken_as_written() {
    assert_eq!(date_as_written("2026-10-05"), Some("2026-10-05".into()));
    assert_eq!(
        date_as_written("2026-10-05T00:30:00+02:00"),
        Some("2026-10-05".into())
    );
    assert_eq!(
        date_as_written("2026-10-05T23:30:00.000Z"),
        Some("2026-10-05".into())
    );
    for bad in [
        "2026-10-5",
        "+202-10-05",
        "2026-02-30",
        "2026-10-05T25:00:00Z",
        "2026-10-05x",
        "é",
        "",
    ] {
        assert_eq!(date_as_written(bad), None, "{bad}");
    }
}

#[test]
fn identity_numbers_become_one_list_in_a_fixed_order() {
    let tree = decode(&data(json!({
        "other_id_no": "X-1", "other_id_type": "School card", "unhcr_id_no": "C-2", "national_id_no": "7992739875"
    })))
    .unwrap();
    assert_eq!(
        tree["identifiers"],
        json!([
            {"field": "national_id_no", "value": "7992739875"},
            {"field": "unhcr_id_no", "value": "C-2"},
            {"field": "other_id_no", "value": "X-1", "type": "School card"}
        ])
    );
}

#[test]
fn the_current_care_arrangement_is_the_latest_row_or_primeros_summary() {
    let rows = json!([
        {"care_arrangements_type": "foster_care", "care_arrangement_started_date": "2026-03-01"},
        {"care_arrangements_type": "parent_s", "care_arrangement_started_date": "2025-01-01"},
        {"care_arrangements_type": "kafala"}
    ]);
    let tree = decode(&data(json!({"care_arrangements_section": rows}))).unwrap();
    assert_eq!(
        tree["current_care_arrangement"],
        json!({"type": "foster_care"})
    );
    let tree = decode(&data(
        json!({"current_care_arrangements_type": "kafala", "current_name_caregiver": "B"}),
    ))
    .unwrap();
    assert_eq!(
        tree["current_care_arrangement"],
        json!({"type": "kafala", "caregiver_name": "B"})
    );
}

#[test]
fn subform_rows_that_are_not_objects_are_violations() {
    let v = decode(&data(
        json!({"services_section": [{"service_type": "x"}, "row"]}),
    ))
    .unwrap_err();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].pointer, "/data/services_section/1");
}
