use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;
use crate::mapping::formats::EncodeError;
use crate::mapping::path::FieldPath;
use crate::model::RecordId;

const OFFICE: &str = "cf1a580d-e405-5d49-93d8-20b7cc249525";
const FACILITY: &str = "a20b462e-1087-55f4-9a5f-c0d6431ec523";
const STATE: &str = "06ea0ea3-a801-5162-9027-1ba43d450bd5";
const DISTRICT: &str = "0ed90d7f-be4f-5576-9180-1ca48fd17756";

fn ctx(version: i64) -> RouteContext {
    RouteContext {
        record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
        record_version: version,
        route: "birth-notification-to-opencrvs-v1".into(),
        destination: "opencrvs-v1".into(),
        timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        attempt: 1,
        subject: None,
        locations: None,
        legal_basis: None,
    }
}

fn minimal() -> Value {
    json!({
        "bundle": {"last_updated": "2026-10-22T09:12:05+02:00"},
        "task": {"office_id": OFFICE},
        "child": {"gender": "female"},
        "encounter": {"location_id": FACILITY}
    })
}

fn full() -> Value {
    json!({
        "bundle": {"last_updated": "2026-10-22T09:12:05+02:00"},
        "task": {
            "office_id": OFFICE,
            "office_location_id": DISTRICT,
            "contact": {"relationship": "MOTHER", "phone": "+292445550163"}
        },
        "child": {"name": {"given": "Liya", "family": "Habte"}, "gender": "female",
                  "birth_date": "2026-10-21", "multiple_birth_order": 2},
        "mother": {"name": {"given": "Senait", "family": "Habte"}, "age_years": 24,
                   "nationality": "ERI",
                   "identifiers": [{"type": "NATIONAL_ID", "value": "1234567890"}],
                   "address": {"country": "EXA", "state": STATE, "district": DISTRICT}},
        "father": {"details_not_available": {"reason": "Father unknown"}},
        "informant": {"relationship": "MOTHER"},
        "encounter": {"location_id": FACILITY},
        "observations": {"body_weight_kg": 3.12, "birth_plurality": "TWIN",
                         "attendant_at_birth": "MIDWIFE"}
    })
}

fn bundle(tree: &Value) -> Value {
    let encoded = encode(tree, &ctx(1)).unwrap();
    assert_eq!(encoded.content_type, "application/json");
    serde_json::from_slice(&encoded.bytes).unwrap()
}

fn resources<'b>(bundle: &'b Value, kind: &str) -> Vec<&'b Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn url_of<'b>(bundle: &'b Value, resource: &Value) -> &'b str {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| &e["resource"] == resource)
        .and_then(|e| e["fullUrl"].as_str())
        .unwrap()
}

/// The Joi and Task rules of OpenCRVS 1.9's /notification (FORMATS.md §2).
pub(crate) fn assert_opencrvs_v1_rules(bundle: &Value) {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "document");
    let last_updated = bundle["meta"]["lastUpdated"].as_str().unwrap();
    assert!(DateTime::parse_from_rfc3339(last_updated).is_ok());
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
    assert_eq!(entries[1]["resource"]["resourceType"], "Task");
    let allowed = ["Patient", "RelatedPerson", "Encounter", "Observation"];
    for e in &entries[2..] {
        let kind = e["resource"]["resourceType"].as_str().unwrap();
        assert!(
            allowed.contains(&kind),
            "{kind} is not allowed after the Task"
        );
    }
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert!(urls.iter().all(|u| !u.is_empty()));
    let unique: BTreeSet<&&str> = urls.iter().collect();
    assert_eq!(unique.len(), urls.len(), "every fullUrl is unique");
    let task = &entries[1]["resource"];
    assert_eq!(task["status"], "draft");
    assert_eq!(task["intent"], "unknown");
    assert_eq!(task["focus"]["reference"], entries[0]["fullUrl"]);
    assert_eq!(task["code"]["coding"][0]["code"], "BIRTH");
    let office = task["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["url"] == "http://opencrvs.org/specs/extension/regLastOffice")
        .expect("regLastOffice");
    let reference = office["valueReference"]["reference"].as_str().unwrap();
    assert!(reference.starts_with("Location/") && reference.len() > "Location/".len());
    assert!(
        !resources(bundle, "Patient").is_empty(),
        "at least one Patient"
    );
    let encounters = resources(bundle, "Encounter");
    assert_eq!(encounters.len(), 1);
    assert!(encounters[0]["location"][0]["location"]["reference"].is_string());
    // Every reference inside the document resolves to one of its entries.
    let composition = &entries[0]["resource"];
    for section in composition["section"].as_array().unwrap() {
        for entry in section["entry"].as_array().unwrap() {
            assert!(urls.contains(&entry["reference"].as_str().unwrap()));
        }
    }
    for observation in resources(bundle, "Observation") {
        assert!(urls.contains(&observation["context"]["reference"].as_str().unwrap()));
    }
    for related in resources(bundle, "RelatedPerson") {
        if let Some(patient) = related["patient"]["reference"].as_str() {
            assert!(urls.contains(&patient));
        }
    }
}

#[test]
fn a_minimal_tree_makes_a_valid_notification() {
    let b = bundle(&minimal());
    assert_opencrvs_v1_rules(&b);
    assert_eq!(b["entry"].as_array().unwrap().len(), 4);
    let composition = &b["entry"][0]["resource"];
    assert_eq!(
        composition["type"]["coding"][0],
        json!({"system": "http://opencrvs.org/doc-types", "code": "birth-notification"})
    );
    let codes: Vec<&str> = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["child-details", "birth-encounter"]);
    assert_eq!(
        b["entry"][1]["resource"]["extension"],
        json!([{"url": "http://opencrvs.org/specs/extension/regLastOffice",
                "valueReference": {"reference": format!("Location/{OFFICE}")}}])
    );
}

#[test]
fn a_full_tree_fills_every_resource_in_the_dialect() {
    let b = bundle(&full());
    assert_opencrvs_v1_rules(&b);
    let patients = resources(&b, "Patient");
    assert_eq!(patients.len(), 3, "child, mother, father not available");
    let child = patients[0];
    assert_eq!(
        child["name"],
        json!([{"use": "en", "given": ["Liya"], "family": "Habte"}])
    );
    assert_eq!(child["multipleBirthInteger"], 2);
    let mother = patients[1];
    assert_eq!(
        mother["identifier"][0]["type"]["coding"][0],
        json!({"system": "http://opencrvs.org/specs/identifier-type", "code": "NATIONAL_ID"})
    );
    assert_eq!(
        mother["address"],
        json!([{"type": "PRIMARY_ADDRESS", "country": "EXA", "state": STATE, "district": DISTRICT}])
    );
    let extensions = mother["extension"].as_array().unwrap();
    assert_eq!(
        extensions[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "ERI"
    );
    assert_eq!(extensions[1]["valueInteger"], 24);
    let father = patients[2];
    assert_eq!(father["active"], false);
    assert_eq!(father["extension"][0]["valueString"], "Father unknown");
    let related = resources(&b, "RelatedPerson")[0];
    assert_eq!(related["relationship"]["coding"][0]["code"], "MOTHER");
    assert_eq!(related["patient"]["reference"], url_of(&b, mother));
    let observations = resources(&b, "Observation");
    let by_code = |code: &str| {
        observations
            .iter()
            .find(|o| o["code"]["coding"][0]["code"] == code)
            .copied()
            .unwrap()
    };
    assert_eq!(
        by_code("3141-9")["valueQuantity"],
        json!({"value": 3.12, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"})
    );
    assert_eq!(by_code("57722-1")["valueQuantity"]["value"], "TWIN");
    assert_eq!(by_code("73764-3")["valueString"], "MIDWIFE");
    let task = &b["entry"][1]["resource"];
    let urls: Vec<&str> = task["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["url"].as_str().unwrap())
        .collect();
    assert!(urls.contains(&"http://opencrvs.org/specs/extension/regLastLocation"));
    assert!(urls.contains(&"http://opencrvs.org/specs/extension/contact-person-phone-number"));
}

#[test]
fn a_named_informant_who_is_not_a_parent_gets_a_patient_of_their_own() {
    let mut tree = minimal();
    tree["informant"] = json!({"relationship": "OTHER", "name": {"given": "Amal"}});
    let b = bundle(&tree);
    assert_opencrvs_v1_rules(&b);
    let patients = resources(&b, "Patient");
    assert_eq!(patients.len(), 2);
    let related = resources(&b, "RelatedPerson")[0];
    assert_eq!(related["patient"]["reference"], url_of(&b, patients[1]));
    assert_eq!(patients[1]["name"][0]["given"], json!(["Amal"]));
}

#[test]
fn the_same_tree_gives_the_same_bytes_and_ids_follow_the_version() {
    let a = encode(&full(), &ctx(1)).unwrap();
    let b = encode(&full(), &ctx(1)).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let c = encode(&full(), &ctx(2)).unwrap();
    let first: Value = serde_json::from_slice(&a.bytes).unwrap();
    let second: Value = serde_json::from_slice(&c.bytes).unwrap();
    assert_ne!(first["entry"][0]["fullUrl"], second["entry"][0]["fullUrl"]);
}

#[test]
fn what_opencrvs_requires_is_refused_by_path_when_missing_or_wrong() {
    let cases: Vec<(Value, EncodeError)> = vec![
        (
            json!({"task": {"office_id": OFFICE}, "encounter": {"location_id": FACILITY}}),
            EncodeError::Missing("bundle/last_updated".into()),
        ),
        (
            {
                let mut t = minimal();
                t["task"] = json!({});
                t
            },
            EncodeError::Missing("task/office_id".into()),
        ),
        (
            {
                let mut t = minimal();
                t["encounter"] = json!({});
                t
            },
            EncodeError::Missing("encounter/location_id".into()),
        ),
        (
            {
                let mut t = minimal();
                t["mother"] = json!({"address": {"country": "EXA", "district": DISTRICT}});
                t
            },
            EncodeError::Missing("mother/address/state".into()),
        ),
        (
            {
                let mut t = minimal();
                t["informant"] = json!({"name": {"given": "CANARY"}});
                t
            },
            EncodeError::Missing("informant/relationship".into()),
        ),
    ];
    for (tree, expected) in cases {
        assert_eq!(encode(&tree, &ctx(1)).unwrap_err(), expected);
    }
    for (path, tree) in [
        (
            "bundle/last_updated",
            json!({"bundle": {"last_updated": "CANARY"}}),
        ),
        ("task/office_id", json!({"task": {"office_id": "CANARY"}})),
        ("child/birth_date", json!({"child": {"birth_date": 7}})),
        (
            "mother/identifiers/0/value",
            json!({"mother": {"identifiers": [{"type": "NATIONAL_ID"}]}}),
        ),
        (
            "observations/body_weight_kg",
            json!({"observations": {"body_weight_kg": 3120}}),
        ),
        (
            "father/details_not_available",
            json!({"father": {"name": {"given": "CANARY"},
            "details_not_available": {"reason": "CANARY"}}}),
        ),
    ] {
        let mut t = minimal();
        merge(&mut t, tree);
        let err = encode(&t, &ctx(1)).unwrap_err();
        let named = match &err {
            EncodeError::Missing(p) => p.clone(),
            EncodeError::Invalid { path, .. } => path.clone(),
        };
        assert_eq!(named, path, "{err}");
        assert!(!err.to_string().contains("CANARY"));
    }
    assert!(encode(&json!([1]), &ctx(1)).is_err());
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

#[test]
fn the_catalogue_is_the_logical_tree() {
    let c = catalogue(Path::new("unused")).unwrap();
    let allows = |p: &str| c.allows(&FieldPath::parse(p).unwrap());
    for p in [
        "task/office_id",
        "mother/identifiers/*/type",
        "father/details_not_available/reason",
        "child/multiple_birth_order",
        "observations/birth_plurality",
    ] {
        assert!(allows(p), "{p}");
    }
    for p in [
        "mother/multiple_birth_order",
        "entry",
        "child/religion",
        "informant/gender",
    ] {
        assert!(!allows(p), "{p}");
    }
}

mod no_panic {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::super::oracle;
    use super::*;

    /// Keys of the logical tree plus a stranger, so random trees hit the
    /// paths the encoder reads with values of every type.
    const KEYS: [&str; 20] = [
        "bundle",
        "last_updated",
        "task",
        "office_id",
        "contact",
        "child",
        "mother",
        "father",
        "name",
        "given",
        "identifiers",
        "type",
        "value",
        "address",
        "state",
        "district",
        "details_not_available",
        "informant",
        "encounter",
        "location_id",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(json!(OFFICE)),
            Just(json!("2026-10-22T09:12:05+02:00")),
            ".{0,8}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), inner), 0..6)
                    .prop_map(|kv| Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>()
                    )),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_tree_encodes_or_is_refused_without_panicking(t in tree()) {
            // ... and as the former encoder did.
            prop_assert_eq!(encode(&t, &ctx(1)).map(|e| e.bytes), oracle::encode(&t, &ctx(1)));
        }

        #[test]
        fn any_value_under_a_valid_tree_encodes_or_is_refused(v in tree(), key in proptest::sample::select(KEYS.to_vec())) {
            let mut t = full();
            t["mother"][key] = v.clone();
            t["task"][key] = v;
            prop_assert_eq!(encode(&t, &ctx(1)).map(|e| e.bytes), oracle::encode(&t, &ctx(1)));
        }
    }
}

/// The struct writer against the former `Value` tree builder (`oracle/`):
/// same bytes or same error, on trees made of every path the catalogue has.
mod struct_writer_agrees_with_the_value_tree {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::super::{OTHER_PATHS, PERSON, oracle};
    use super::*;

    /// Values a field may well have, by its last segment.
    fn good(leaf: &str) -> Vec<Value> {
        match leaf {
            "last_updated" => vec![
                json!("2026-10-22T09:12:05+02:00"),
                json!("2026-10-22T07:12:05.120Z"),
            ],
            "office_id" | "office_location_id" | "location_id" => {
                vec![json!(OFFICE), json!(FACILITY), json!(DISTRICT)]
            }
            "state" => vec![json!(STATE)],
            "district" => vec![json!(DISTRICT)],
            "relationship" => vec![json!("MOTHER"), json!("FATHER"), json!("GRANDMOTHER")],
            "gender" => vec![json!("female"), json!("male")],
            "age_years" | "multiple_birth_order" => vec![json!(0), json!(2), json!(24)],
            "body_weight_kg" => vec![json!(3.12), json!(3), json!(10), json!(0.5)],
            "country" | "nationality" => vec![json!("ERI"), json!("EXA")],
            _ => vec![
                json!("Liya"),
                json!("ሊያ"),
                json!("O'Brien & \"Sons\" <x>"),
                json!("tab\there\nnewline \\ \u{1}"),
            ],
        }
    }

    /// Values a mapping should not produce: each breaks a check somewhere.
    fn faulty() -> Vec<Value> {
        vec![
            json!(" "),
            json!(""),
            json!(7),
            json!(-1),
            json!(11.5),
            json!("not-a-uuid"),
            json!("2026-10-22"),
            json!({"x": 1}),
            json!([1]),
        ]
    }

    /// Sets `value` at `path`, making objects and arrays (padded with nulls) on the way.
    fn set(at: &mut Value, path: &[&str], value: Value) {
        *crate::mapping::formats::outbound::test_trees::slot(at, path) = value;
    }

    /// Every path of the logical tree, list items twice.
    fn paths() -> Vec<String> {
        ["child", "mother", "father"]
            .into_iter()
            .flat_map(|role| PERSON.iter().map(move |f| format!("{role}/{f}")))
            .chain(OTHER_PATHS.iter().map(|p| p.to_string()))
            .flat_map(|path| match path.split_once("/*/") {
                Some((list, rest)) => vec![format!("{list}/0/{rest}"), format!("{list}/1/{rest}")],
                None => vec![path],
            })
            .collect()
    }

    /// The part of the tree a path belongs to: a person, a list item, the
    /// absent father, else its first segment.
    fn group(path: &str) -> &str {
        if let Some(at) = path.find("/identifiers/") {
            return &path[..at + "/identifiers/0".len()];
        }
        if path.starts_with("father/details_not_available") {
            return "father/details_not_available";
        }
        path.split('/').next().unwrap()
    }

    /// A tree from one choice per path: left out, a good value or (rarely) a
    /// faulty one; whole parts come and go together.
    fn tree_of(paths: &[String], choices: &[u8]) -> Value {
        let mut tree = json!({});
        let mut groups: Vec<(&str, bool)> = Vec::new();
        for (path, &choice) in paths.iter().zip(choices) {
            let group = group(path);
            let present = match groups.iter().find(|(g, _)| *g == group) {
                Some((_, present)) => *present,
                None => {
                    let always = matches!(group, "bundle" | "task" | "encounter");
                    // No absent father beside a father, a second identifier
                    // only after a first (now and then both, to see the error).
                    let needs = |other: &str| groups.iter().any(|(g, p)| *g == other && *p);
                    let allowed = match group {
                        "father/details_not_available" => !needs("father") || choice == 1,
                        "child/identifiers/1" => needs("child/identifiers/0"),
                        "mother/identifiers/1" => needs("mother/identifiers/0"),
                        "father/identifiers/1" => needs("father/identifiers/0"),
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
                "bundle/last_updated" | "task/office_id" | "encounter/location_id"
            ) || path.ends_with("identifiers/0/type")
                || path == "informant/relationship"
                || path.ends_with("identifiers/0/value")
                || path.ends_with("identifiers/1/type")
                || path.ends_with("identifiers/1/value")
                || path.ends_with("address/country")
                || path.ends_with("address/state");
            let leaf = path.rsplit('/').next().unwrap();
            let value = match choice {
                c if c < if needed { 1 } else { 35 } => continue,
                c if c < 99 => {
                    let pool = good(leaf);
                    pool[usize::from(c) % pool.len()].clone()
                }
                c => {
                    let pool = faulty();
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
        let inputs = (prop::collection::vec(0u8..100, paths.len()), 1i64..=2);
        runner
            .run(&inputs, |(choices, version)| {
                let tree = tree_of(&paths, &choices);
                let structs = encode(&tree, &ctx(version)).map(|e| e.bytes);
                if structs.is_ok() {
                    written.set(written.get() + 1);
                }
                let text = |r: Result<Vec<u8>, EncodeError>| {
                    r.map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                prop_assert_eq!(
                    text(structs),
                    text(oracle::encode(&tree, &ctx(version))),
                    "tree: {}",
                    tree
                );
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
