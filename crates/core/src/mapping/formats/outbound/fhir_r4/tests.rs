use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;
use crate::config::FhirWrite;
use crate::model::RecordId;

fn ctx() -> RouteContext {
    RouteContext {
        record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
        record_version: 1,
        route: "birth-notification-to-fhir-r4".into(),
        destination: "fhir-r4".into(),
        timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        attempt: 1,
        subject: Some("5d1b0c3e9a7f42e18c6d2b4a0f9e3c71".into()),
        locations: None,
        legal_basis: None,
    }
}

fn tree() -> Value {
    json!({
        "document": {
            "timestamp": "2026-10-22T09:12:05+02:00",
            "title": "Birth notification",
            "type": {"system": "http://opencrvs.org/doc-types", "code": "birth-notification", "display": "Birth notification"}
        },
        "author": {"identifier": {"system": "urn:examplia:master-facility-list", "value": "HF-040907"}},
        "child": {
            "given": "ሊያ", "family": "ሃብተ",
            "name_latin": {"given": "Liya", "family": "Habte"},
            "gender": "female", "birth_date": "2026-10-21",
            "birth_time": "23:48:00", "birth_time_offset": "+02:00",
            "birth_place": {"district": "EX0409012", "country": "EXA"}
        },
        "birth_order": 1,
        "plurality": 1,
        "mother": {
            "given": "ሰናይት", "family": "ሃብተ", "gender": "female",
            "nationality": {"system": "urn:icao:doc-9303:nationality", "code": "XXB"},
            "identifiers": [
                {"system": "urn:unhcr:progres:individual", "value": "EXA-26-0052217",
                 "type": {"text": "UNHCR individual number (proGres)"}, "assigner": "UNHCR"}
            ]
        },
        "father_absent": {"reason": "unavailable"},
        "informant": {"relationship": {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH", "text": "mother"}},
        "encounter": {"class": "IMP", "facility": {"system": "urn:examplia:master-facility-list", "value": "HF-040907"}},
        "birth_weight": {"value": 3.12, "unit": "kg"}
    })
}

fn bundle(tree: &Value) -> Value {
    serde_json::from_slice(&encode(tree, &ctx()).unwrap().bytes).unwrap()
}

fn resource<'a>(bundle: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == resource_type)
        .collect()
}

/// Every `reference` anywhere under `v`.
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

#[test]
fn the_catalogue_is_the_field_table() {
    let c = catalogue(Path::new("unused")).unwrap();
    assert_eq!(c.paths().count(), FIELDS.len());
    let p = |s: &str| crate::mapping::path::FieldPath::parse(s).unwrap();
    assert!(c.allows(&p("mother/identifiers/*/system")));
    assert!(!c.allows(&p("maternal_health_notes")));
}

#[test]
fn a_document_bundle_with_the_composition_first_and_resolving_references() {
    let b = bundle(&tree());
    assert_eq!(b["type"], "document");
    assert_eq!(b["identifier"]["system"], "urn:ietf:rfc:3986");
    assert_eq!(
        b["identifier"]["value"],
        format!("urn:uuid:{}", ctx().record_key())
    );
    assert_eq!(b["timestamp"], "2026-10-22T09:12:05+02:00");
    assert_eq!(b["meta"]["lastUpdated"], b["timestamp"]);
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
    let urls: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), entries.len(), "fullUrls are unique");
    for e in entries {
        assert!(e.get("request").is_none() && e.get("response").is_none());
        let id = e["resource"]["id"].as_str().unwrap();
        assert_eq!(e["fullUrl"], format!("urn:uuid:{id}"));
    }
    let mut refs = Vec::new();
    references(&b, &mut refs);
    assert!(refs.len() >= 10);
    for r in &refs {
        assert!(urls.contains(r.as_str()), "{r} does not resolve");
    }
}

#[test]
fn resources_carry_what_the_tree_says() {
    let b = bundle(&tree());
    let patients = resource(&b, "Patient");
    let child = patients[0];
    assert_eq!(child["birthDate"], "2026-10-21");
    assert_eq!(
        child["_birthDate"]["extension"][0]["valueDateTime"],
        "2026-10-21T23:48:00+02:00"
    );
    assert_eq!(child["name"][0]["given"], json!(["ሊያ"]));
    assert_eq!(child["name"][1]["given"], json!(["Liya"]));
    assert_eq!(child["multipleBirthInteger"], 1);
    let mother = patients[1];
    assert_eq!(
        mother["identifier"][0]["system"],
        "urn:unhcr:progres:individual"
    );
    let weight = &resource(&b, "Observation")[0]["valueQuantity"];
    assert_eq!(
        weight,
        &json!({"value": 3120, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"})
    );
    let composition = resource(&b, "Composition")[0];
    let father = &composition["section"][2];
    assert_eq!(father["emptyReason"]["coding"][0]["code"], "unavailable");
    assert!(father.get("entry").is_none());
    assert_eq!(resource(&b, "Encounter")[0]["class"]["code"], "IMP");
}

#[test]
fn same_tree_same_bytes() {
    let a = encode(&tree(), &ctx()).unwrap();
    let b = encode(&tree(), &ctx()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.content_type, "application/fhir+json");
    assert_eq!(a.extension, "json");
}

#[test]
fn errors_name_paths_and_never_values() {
    let mut t = tree();
    t["child"]["birth_date"] = json!("CANARY-date");
    let err = encode(&t, &ctx()).unwrap_err();
    assert!(err.to_string().contains("child/birth_date"));
    assert!(!err.to_string().contains("CANARY"));

    let mut t = tree();
    t["mother"]["identifiers"][0]["type"] =
        json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"});
    let err = encode(&t, &ctx()).unwrap_err();
    assert!(err.to_string().contains("UNHCR"), "{err}");

    let mut t = tree();
    t["father"] = json!({"given": "X"});
    assert!(encode(&t, &ctx()).is_err());

    let mut t = tree();
    t["document"].as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        encode(&t, &ctx()).unwrap_err(),
        EncodeError::Missing("document/timestamp".into())
    );

    let mut t = tree();
    t["child"]["birth_time"] = json!("23:48");
    assert!(encode(&t, &ctx()).is_err());
}

#[test]
fn odd_trees_are_errors_not_panics() {
    for t in [
        json!(null),
        json!([]),
        json!({"child": 3, "document": {"timestamp": "2026-10-22T09:12:05Z"}}),
        json!({"child": {"given": [1]}, "document": {"timestamp": "2026-10-22T09:12:05Z"}}),
        json!({"child": {"given": "A"}, "mother": {"identifiers": {"value": "x"}}, "document": {"timestamp": "2026-10-22T09:12:05Z"}}),
    ] {
        assert!(encode(&t, &ctx()).is_err(), "{t}");
    }
}

#[test]
fn xml_follows_the_fhir_rules() {
    let patient = json!({
        "resourceType": "Patient",
        "id": "p1",
        "gender": "female",
        "name": [{"given": ["A & B", "C\"<D>"], "family": "O'Neil", "use": "official"}],
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "2026-10-21T23:48:00+02:00"}]},
        "birthDate": "2026-10-21",
        "extension": [{"url": "http://x/ext", "valueString": "line\nbreak"}],
        "multipleBirthInteger": 2,
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">A &amp; <b>B</b></div>"}
    });
    let xml = to_xml(&patient).unwrap();
    assert_eq!(
        xml,
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"p1\"/>",
            "<text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">A &amp; <b>B</b></div></text>",
            "<extension url=\"http://x/ext\"><valueString value=\"line&#10;break\"/></extension>",
            "<name><use value=\"official\"/><family value=\"O'Neil\"/>",
            "<given value=\"A &amp; B\"/><given value=\"C&quot;&lt;D&gt;\"/></name>",
            "<gender value=\"female\"/>",
            "<birthDate value=\"2026-10-21\"><extension url=\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\">",
            "<valueDateTime value=\"2026-10-21T23:48:00+02:00\"/></extension></birthDate>",
            "<multipleBirthInteger value=\"2\"/></Patient>"
        )
    );
}

#[test]
fn xml_wraps_entry_resources_and_aligns_primitive_metadata() {
    let b = json!({
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "name": [{
            "given": ["A", null], "_given": [null, {"id": "g2", "extension": [{"url": "u", "valueCode": "x"}]}]
        }]}}]
    });
    let xml = to_xml(&b).unwrap();
    assert!(xml.contains(concat!(
        "<entry><fullUrl value=\"urn:uuid:1\"/><resource><Patient><name>",
        "<given value=\"A\"/><given id=\"g2\"><extension url=\"u\"><valueCode value=\"x\"/></extension></given>",
        "</name></Patient></resource></entry>"
    )), "{xml}");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"document\"/>"));
}

#[test]
fn xml_refuses_what_fhir_does_not_define_without_echoing_values() {
    let cases = [
        json!({"resourceType": "Patient", "bogus": "CANARY"}),
        json!({"resourceType": "Nope"}),
        json!({"resourceType": "Patient", "gender": ""}),
        json!({"resourceType": "Patient", "name": []}),
        json!({"resourceType": "Patient", "name": [{}]}),
        json!({"resourceType": "Patient", "name": [{"id": "only-an-id"}]}),
        json!({"resourceType": "Patient", "gender": ["CANARY"]}),
        json!({"resourceType": "Patient", "name": {"family": "CANARY"}}),
        json!({"resourceType": "Patient", "name": [{"given": "CANARY"}]}),
        json!({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [null, {"id": "x"}]}]}),
        json!({"resourceType": "Patient", "extension": [{"url": "http://x/no-value"}]}),
        json!({"resourceType": "Patient", "_gender": {"id": "only-an-id"}}),
        json!({"resourceType": "Patient", "gender": {"x": 1}}),
        json!({"resourceType": "Patient", "_gender": {"bogus": "CANARY"}}),
        json!({"resourceType": "Patient", "name": {"given": ["a"], "_given": [null, null]}}),
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>no namespace</div>"}}),
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">&CANARY;</div>"}}),
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><b></div>"}}),
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"/><div xmlns=\"http://www.w3.org/1999/xhtml\"/>"}}),
        json!("CANARY"),
    ];
    for c in cases {
        let err = to_xml(&c).unwrap_err().to_string();
        assert!(!err.contains("CANARY"), "{err}");
    }
    let mut deep = json!({"url": "u", "valueString": "x"});
    for _ in 0..200 {
        deep = json!({"url": "u", "extension": [deep]});
    }
    assert!(to_xml(&json!({"resourceType": "Patient", "extension": [deep]})).is_err());
}

#[test]
fn json_is_written_in_element_order_and_loses_nothing() {
    let bytes = encode(&tree(), &ctx()).unwrap().bytes;
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with("{\"resourceType\":\"Bundle\",\"meta\":{\"lastUpdated\":"),
        "{text}"
    );
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(at("\"identifier\":{\"system\"") < at("\"type\":\"document\""));
    assert!(
        at("\"type\":\"document\"") < at("\"timestamp\":")
            && at("\"timestamp\":") < at("\"entry\":")
    );
    assert!(
        at("\"entry\":[{\"fullUrl\":")
            < at("\"resource\":{\"resourceType\":\"Composition\",\"id\":")
    );
    assert!(
        at("\"birthDate\":") < at("\"_birthDate\":")
            && at("\"_birthDate\":") < at("\"multipleBirthInteger\":")
    );
    let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        reparsed,
        oracle::build(&tree(), &ctx(), FhirWrite::ConditionalCreate).unwrap()
    );
    let metadata = json!({"resourceType": "Patient", "name": [{"given": ["A", null], "_given": [null, {"id": "g"}]}]});
    assert_eq!(
        String::from_utf8(json::to_vec(&metadata).unwrap()).unwrap(),
        r#"{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"id":"g"}]}]}"#
    );
    assert!(json::to_vec(&json!({"resourceType": "Patient", "gender": ["x"]})).is_err());
    assert!(json::to_vec(&json!({"resourceType": "Patient", "bogus": 1})).is_err());
}

mod no_panic {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::super::{encode, json, to_xml};
    use super::ctx;

    /// Keys FHIR and the tree use, so that generated input goes deep.
    const KEYS: &[&str] = &[
        "resourceType",
        "id",
        "name",
        "given",
        "_given",
        "family",
        "gender",
        "extension",
        "url",
        "valueString",
        "text",
        "div",
        "status",
        "entry",
        "resource",
        "identifier",
        "system",
        "value",
        "type",
        "code",
        "child",
        "mother",
        "father",
        "birth_date",
        "birth_time",
        "document",
        "timestamp",
        "identifiers",
        "birth_weight",
        "unit",
        "plurality",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "Patient",
                "Bundle",
                "",
                " ",
                "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>",
                "2026-10-21",
                "kg",
                "23:48:00"
            ])
            .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kvs| {
                    Value::Object(
                        kvs.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn converters_and_encoder_return_errors_not_panics(v in value(), rt in prop::sample::select(vec!["Patient", "Bundle", "Observation"])) {
            let _ = encode(&v, &ctx());
            let _ = to_xml(&v);
            let _ = json::to_vec(&v);
            let mut resource = v.clone();
            if let Value::Object(m) = &mut resource {
                m.insert("resourceType".into(), json!(rt));
            }
            let _ = to_xml(&resource);
            let _ = json::to_vec(&resource);
        }
    }
}

fn birth_weight_of(tree: &Value) -> Value {
    resource(&bundle(tree), "Observation")
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == "8339-4")
        .cloned()
        .unwrap()
}

#[test]
fn the_birth_weight_is_a_vital_sign_taken_at_birth() {
    let o = birth_weight_of(&tree());
    assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
    assert_eq!(o["effectiveDateTime"], "2026-10-21T23:48:00+02:00");
    // Without a time of birth: the birth date (vs-1: precise to the day).
    let mut t = tree();
    t["child"].as_object_mut().unwrap().remove("birth_time");
    assert_eq!(birth_weight_of(&t)["effectiveDateTime"], "2026-10-21");
    // Born in an estimated year: the profile cannot be met, so not claimed.
    t["child"]["birth_date"] = json!("2026");
    let o = birth_weight_of(&t);
    assert!(
        o.get("category").is_none() && o.get("effectiveDateTime").is_none(),
        "{o}"
    );
    assert_eq!(o["valueQuantity"]["value"], 3120);
}

#[test]
fn the_document_type_has_its_coding_a_local_one_and_text() {
    let mut t = tree();
    t["document"]["type"] = json!({
        "system": "http://loinc.org", "code": "71230-7", "display": "Birth certificate",
        "text": "Birth notification",
        "local": {"system": "http://opencrvs.org/doc-types", "code": "birth-notification"}
    });
    let b = bundle(&t);
    let doc_type = &b["entry"][0]["resource"]["type"];
    assert_eq!(
        doc_type,
        &json!({"coding": [
            {"system": "http://loinc.org", "code": "71230-7", "display": "Birth certificate"},
            {"system": "http://opencrvs.org/doc-types", "code": "birth-notification"}
        ], "text": "Birth notification"})
    );
}

#[test]
fn a_put_document_carries_its_stable_id_and_a_correction_is_amended() {
    let with = |write, version| {
        let mut c = ctx();
        c.record_version = version;
        c.record_id = RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000002").unwrap();
        serde_json::from_slice::<Value>(&encode_with(&tree(), &c, write).unwrap().bytes).unwrap()
    };
    let first = with(FhirWrite::Put, 1);
    let corrected = with(FhirWrite::Put, 2);
    assert_eq!(first["id"], ctx().record_key().to_string());
    // Another submission and version of the same source record: the same document.
    assert_eq!(corrected["id"], first["id"]);
    assert_eq!(corrected["identifier"], first["identifier"]);
    assert_eq!(first["entry"][0]["resource"]["status"], "final");
    assert_eq!(corrected["entry"][0]["resource"]["status"], "amended");
    assert!(with(FhirWrite::ConditionalCreate, 1).get("id").is_none());
}

/// The encoder writes the document's bytes directly (`document.rs`); the
/// tree-building builder it replaced (`oracle.rs`) and the generic
/// element-order writer (`json.rs`) are its oracle: on trees made of every
/// path a mapping may write, with good values and, now and then, faulty ones,
/// both give the same bytes or the same error.
mod direct_writer_agrees_with_the_tree_writer {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Value, json};

    use super::super::{FIELDS, encode_with, json, oracle};
    use super::ctx;
    use crate::config::FhirWrite;

    /// Values a field may well have, by the last segment of its path.
    fn good(leaf: &str) -> Vec<Value> {
        let texts = || {
            vec![
                json!("Habte"),
                json!("ሊያ"),
                json!("O'Brien & \"Sons\" <x>"),
                json!("tab\there\nnewline \\ \u{1}"),
            ]
        };
        match leaf {
            "timestamp" => vec![
                json!("2026-10-22T09:12:05+02:00"),
                json!("2026-10-22T07:12:05.120Z"),
            ],
            "given" => vec![
                json!("Liya"),
                json!(["Liya", "Ana"]),
                json!(["ሊያ"]),
                json!("Zoë"),
            ],
            "gender" => vec![
                json!("female"),
                json!("male"),
                json!("other"),
                json!("unknown"),
            ],
            "birth_date" => vec![
                json!("2026-10-21"),
                json!("2026"),
                json!("2026-10"),
                json!("1990-02-28"),
            ],
            // Mostly full dates: a birth time needs one.
            "child_birth_date" => vec![
                json!("2026-10-21"),
                json!("2024-02-29"),
                json!("2026-10-01"),
                json!("2026"),
            ],
            "birth_time" => vec![json!("23:48:00"), json!("00:40:05.25")],
            "birth_time_offset" => vec![json!("+02:00"), json!("Z"), json!("-14:00")],
            "system" => vec![
                json!("urn:unhcr:progres:individual"),
                json!("http://loinc.org"),
                json!("urn:examplia:master-facility-list"),
            ],
            "code" => vec![json!("NI"), json!("MTH"), json!("XXB"), json!("71230-7")],
            "class" => vec![json!("IMP"), json!("HH"), json!("FLD"), json!("VR")],
            "reason" => vec![json!("unavailable"), json!("withheld"), json!("nilknown")],
            "unit" => vec![json!("g"), json!("kg")],
            "birth_order" | "plurality" => vec![json!(1), json!(2), json!(3)],
            "value" => vec![json!("EXA-26-0052217"), json!("HF-040907")],
            "weight" => vec![json!(3.12), json!(3120), json!(2.5), json!(4)],
            _ => texts(),
        }
    }

    /// Values a mapping should not produce: each breaks a check somewhere.
    fn faulty(leaf: &str) -> Vec<Value> {
        match leaf {
            "timestamp" => vec![json!("2026-10-22T09:12"), json!(5)],
            "given" => vec![json!(["A", 3]), json!([]), json!(" ")],
            "gender" => vec![json!("f"), json!(1)],
            "birth_date" | "child_birth_date" => vec![json!("2026-13-01"), json!("26")],
            "birth_time" => vec![json!("24:00:00")],
            "birth_time_offset" => vec![json!("+2:00")],
            "system" | "code" => vec![json!("has space"), json!("a  b"), json!("")],
            "value" | "weight" => vec![json!(""), json!(0), json!(-1.5), json!([1])],
            "birth_order" | "plurality" => vec![json!(0), json!("two"), json!(1.5)],
            _ => vec![json!(" "), json!(7), json!({"x": 1})],
        }
    }

    /// Sets `value` at `path`, making objects and arrays (padded with nulls) on the way.
    fn set(at: &mut Value, path: &[&str], value: Value) {
        *crate::mapping::formats::outbound::test_trees::slot(at, path) = value;
    }

    /// Every field path, list items twice.
    fn paths() -> Vec<String> {
        FIELDS
            .iter()
            .flat_map(|(path, _)| match path.split_once("/*/") {
                Some((list, rest)) => vec![format!("{list}/0/{rest}"), format!("{list}/1/{rest}")],
                None => vec![path.to_string()],
            })
            .collect()
    }

    /// The part of the tree a path belongs to: a list item, else its first segment.
    fn group(path: &str) -> &str {
        match path.find("/identifiers/") {
            Some(at) => &path[..at + "/identifiers/0".len()],
            None => path.split('/').next().unwrap(),
        }
    }

    /// A tree from one choice per path: left out, a good value or (rarely) a
    /// faulty one. Whole parts come and go together, and within a part the
    /// fields the encoder needs are seldom left out, so that most trees make
    /// a document.
    fn tree_of(paths: &[String], choices: &[u8]) -> Value {
        let mut tree = json!({});
        let mut groups: Vec<(&str, bool)> = Vec::new();
        for (path, &choice) in paths.iter().zip(choices) {
            let group = group(path);
            let present = match groups.iter().find(|(g, _)| *g == group) {
                Some((_, present)) => *present,
                None => {
                    let always = matches!(group, "document" | "child" | "author");
                    // A second identifier only after a first; no father_absent beside a father;
                    // plurality (about the mother) only with a mother.
                    let needs = |other: &str| groups.iter().any(|(g, p)| *g == other && *p);
                    let allowed = match group {
                        "mother/identifiers/0" => needs("mother"),
                        "father/identifiers/0" => needs("father"),
                        "mother/identifiers/1" => needs("mother/identifiers/0"),
                        "father/identifiers/1" => needs("father/identifiers/0"),
                        "father_absent" => !needs("father"),
                        "plurality" => needs("mother"),
                        _ => true,
                    };
                    let present = always || (allowed && choice % 3 != 0);
                    groups.push((group, present));
                    present
                }
            };
            if !present {
                continue;
            }
            let needed = matches!(
                path.as_str(),
                "document/timestamp"
                    | "document/title"
                    | "document/type/code"
                    | "document/type/system"
                    | "child/given"
                    | "author/name"
                    | "mother/nationality/code"
                    | "mother/nationality/system"
                    | "informant/relationship/text"
                    | "encounter/class"
                    | "birth_weight/value"
                    | "birth_weight/unit"
                    | "father_absent/reason"
                    | "child/birth_time_offset"
                    | "child/birth_date"
                    | "birth_order"
                    | "plurality"
            ) || path.ends_with("/system")
                || path.ends_with("identifiers/0/value")
                || path.ends_with("identifiers/1/value")
                || path.ends_with("/type/text");
            let leaf = match path.as_str() {
                "birth_weight/value" => "weight",
                "child/birth_date" => "child_birth_date",
                p => p.rsplit('/').next().unwrap(),
            };
            let value = match choice {
                c if c < if needed { 2 } else { 40 } => continue,
                c if c < 99 => {
                    let pool = good(leaf);
                    pool[usize::from(c) % pool.len()].clone()
                }
                c => {
                    let pool = faulty(leaf);
                    pool[usize::from(c) % pool.len()].clone()
                }
            };
            let segments: Vec<&str> = path.split('/').collect();
            set(&mut tree, &segments, value);
        }
        tree
    }

    #[test]
    fn same_bytes_or_same_error_on_arbitrary_trees() {
        let paths = paths();
        let written = Cell::new(0u32);
        let cases = 1024;
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let inputs = (
            prop::collection::vec(0u8..100, paths.len()),
            1i64..=2,
            any::<bool>(),
        );
        runner
            .run(&inputs, |(choices, version, put)| {
                let tree = tree_of(&paths, &choices);
                let mut c = ctx();
                c.record_version = version;
                let write = if put {
                    FhirWrite::Put
                } else {
                    FhirWrite::ConditionalCreate
                };
                let direct = encode_with(&tree, &c, write).map(|e| e.bytes);
                let through_tree =
                    oracle::build(&tree, &c, write).and_then(|document| json::to_vec(&document));
                if direct.is_ok() {
                    written.set(written.get() + 1);
                }
                let text = |r: &Result<Vec<u8>, crate::mapping::formats::EncodeError>| {
                    r.clone().map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                prop_assert_eq!(text(&direct), text(&through_tree), "tree: {}", tree);
                Ok(())
            })
            .unwrap();
        // The comparison means something only if many documents are written.
        assert!(
            written.get() > cases / 4,
            "only {} of {cases} trees made a document",
            written.get()
        );
    }
}
