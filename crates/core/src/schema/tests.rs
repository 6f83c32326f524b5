use serde_json::{Value, json};

use super::*;

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap_or_else(|e| panic!("schemas must compile: {e:?}"))
}

fn example(record_type: RecordType) -> Value {
    let path = format!(
        "{}/schemas/examples/{}.json",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.."),
        record_type
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_record_type_has_a_valid_example() {
    let registry = registry();
    for t in RecordType::ALL {
        let record = example(t);
        assert_eq!(record["record_type"], t.as_str());
        assert_eq!(registry.validate(t, &record), [], "example of {t}");
    }
}

/// A consent naming a source id without the record's type would apply to
/// nobody: a withdrawal silently lost (#13, finding 5).
#[test]
fn a_consent_by_source_id_needs_the_record_type() {
    let registry = registry();
    let mut consent = example(RecordType::Consent);
    assert_eq!(registry.validate(RecordType::Consent, &consent), []);
    consent["subject"]
        .as_object_mut()
        .unwrap()
        .remove("record_type");
    let violations = registry.validate(RecordType::Consent, &consent);
    assert!(
        violations.iter().any(|v| v.pointer == "/subject"),
        "{violations:?}"
    );
    // A gateway record id needs no type.
    consent["subject"] = json!({"record_id": "0192f0c2-7b1e-7c3a-9f00-000000000001"});
    assert_eq!(registry.validate(RecordType::Consent, &consent), []);
}

#[test]
fn every_violation_is_reported_with_its_pointer() {
    let registry = registry();
    let mut record = example(RecordType::BirthNotification);
    record["record_version"] = json!("one");
    record["child"]["sex"] = json!(42);
    record.as_object_mut().unwrap().remove("notified_at");
    record["unexpected_field"] = json!(true);
    let violations = registry.validate(RecordType::BirthNotification, &record);
    let found: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.pointer.as_str(), v.code))
        .collect();
    for expected in [
        ("/record_version", "type"),
        ("/child/sex", "type"),
        ("/notified_at", "required"),
        ("/unexpected_field", "unknown_field"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
}

#[test]
fn violations_never_repeat_the_value_that_was_sent() {
    let registry = registry();
    let canary = "CANARY-Zainab-al-Rashid-0042";
    for t in RecordType::ALL {
        let mut record = example(t);
        // Put the canary where strings are not allowed and where values are constrained.
        record["record_version"] = json!(canary);
        record["record_type"] = json!(canary);
        let violations = registry.validate(t, &record);
        assert!(!violations.is_empty());
        for v in violations {
            assert!(!v.message.contains(canary), "{v:?}");
            assert!(!v.pointer.contains(canary), "{v:?}");
        }
    }
}

#[test]
fn a_record_that_is_not_an_object_is_invalid_not_a_panic() {
    let registry = registry();
    for value in [json!(null), json!([]), json!("x"), json!(1.5)] {
        for t in RecordType::ALL {
            assert!(!registry.validate(t, &value).is_empty());
        }
    }
}

#[test]
fn sensitive_fields_are_tagged_in_the_schemas() {
    let registry = registry();
    let case = registry.sensitive_fields(RecordType::ChildProtectionCase);
    for category in [
        Sensitivity::Gbv,
        Sensitivity::Protection,
        Sensitivity::Ethnicity,
        Sensitivity::Religion,
        Sensitivity::Mhpss,
        Sensitivity::Health,
    ] {
        assert!(
            case.iter().any(|f| f.category == category),
            "child-protection-case has no {category:?} field"
        );
    }
    let birth = registry.sensitive_fields(RecordType::BirthNotification);
    assert!(
        birth
            .iter()
            .any(|f| f.category == Sensitivity::Health && f.path.contains("birth_weight"))
    );
}

#[test]
fn schemas_declare_the_categories_the_gateway_knows() {
    for t in RecordType::ALL {
        let schema: Value = serde_json::from_str(schema_source(t)).unwrap();
        let declared: Vec<&str> = schema["x-sensitivity-categories"]
            .as_array()
            .unwrap_or_else(|| panic!("{t} lists no x-sensitivity-categories"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for name in &declared {
            assert!(Sensitivity::parse(name).is_some(), "{t}: unknown {name}");
        }
    }
}

#[test]
fn remote_references_are_not_resolved() {
    let schema = json!({"$ref": "https://example.org/never-fetched.json"});
    assert!(jsonschema::draft202012::options().build(&schema).is_err());
}
