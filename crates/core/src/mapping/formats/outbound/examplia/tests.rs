use std::collections::BTreeSet;

use chrono::DateTime;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Value, json};

use super::schema::{self, BIRTH_NOTIFICATION};
use super::*;
use crate::mapping::path::FieldPath;
use crate::model::RecordId;

fn ctx(attempt: u32) -> RouteContext {
    RouteContext {
        record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
        record_version: 1,
        route: "birth-notification-to-examplia-crvs".into(),
        destination: "examplia-crvs".into(),
        timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        attempt,
        subject: None,
        locations: None,
        legal_basis: None,
    }
}

fn header() -> Value {
    json!({
        "client": {
            "xRoadInstance": "EXA", "memberClass": "ORG",
            "memberCode": "90000123", "subsystemCode": "registry-gateway"
        },
        "service": {"xRoadInstance": "EXA"},
        "userId": "UNHCR:registry-gateway"
    })
}

/// A complete notification (the content of the spec's example 04, shortened).
fn notification() -> Value {
    json!({
        "NotificationId": "feee0a7b-26dc-419a-b4d6-8d8ae89c2f06",
        "SourceSystem": {"AgencyCode": "UNHCR", "SystemName": "proGres", "SystemVersion": "4"},
        "NotifiedAt": "2026-10-19T10:05:12+03:00",
        "Child": {
            "Name": {
                "GivenNames": {"$text": "ليان", "@script": "Arab"},
                "GivenNamesLatin": "Layan"
            },
            "Sex": "2",
            "DateOfBirth": "2026-10-17",
            "PlaceOfBirth": {"Type": "HEALTH_FACILITY", "FacilityCode": "HF-090214",
                             "AdminArea": "EX0902014", "CountryOfBirth": "EXA"}
        },
        "BirthType": "SINGLE",
        "BirthOrder": 1,
        "BirthWeightGrams": 3100,
        "AttendantAtBirth": "MIDWIFE",
        "Mother": {
            "Name": {"GivenNames": {"$text": "فاطمة", "@script": "Arab"}},
            "AgeYears": 27,
            "Nationality": "XXB",
            "Identifiers": {"Identifier": [
                {"$text": "EXA-26-0041278", "@scheme": "UNHCR_INDIVIDUAL"},
                {"$text": "EXA-26C01954", "@scheme": "UNHCR_CASE"}
            ]}
        },
        "FatherDetailsNotAvailable": {"Reason": "NOT_RECORDED"},
        "Informant": {"Relationship": "MOTHER"},
        "LegalBasis": "CONSENT",
        "ConsentReference": "UNHCR-EXA-CNS-118204"
    })
}

fn tree() -> Value {
    json!({"Header": header(), "BirthNotification": notification()})
}

fn encoded(tree: &Value) -> String {
    String::from_utf8(encode(tree, &ctx(1)).unwrap().bytes).unwrap()
}

fn error(tree: &Value) -> EncodeError {
    encode(tree, &ctx(1)).unwrap_err()
}

/// Local names of the elements directly inside the first element named `parent`.
fn children_of(xml: &str, parent: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut depth = 0usize;
    let mut inside: Option<usize> = None;
    let mut names = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                depth += 1;
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if inside.is_some_and(|d| depth == d + 1) {
                    names.push(name.clone());
                }
                if inside.is_none() && name == parent {
                    inside = Some(depth);
                }
            }
            Event::End(_) => {
                if inside == Some(depth) {
                    return names;
                }
                depth -= 1;
            }
            Event::Eof => return names,
            _ => {}
        }
    }
}

/// Rebuild an object with its keys inserted in reverse, recursively.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

#[test]
fn the_catalogue_is_derived_from_the_xsd_table() {
    let catalogue = catalogue(Path::new("unused")).unwrap();
    let allows = |p: &str| catalogue.allows(&FieldPath::parse(p).unwrap());
    for path in [
        "Header/client/xRoadInstance",
        "Header/client/subsystemCode",
        "Header/service/xRoadInstance",
        "Header/userId",
        "Header/issue",
        "BirthNotification/NotificationId",
        "BirthNotification/Child/Name/GivenNames/@script",
        "BirthNotification/Child/Name/GivenNames/$text",
        "BirthNotification/Child/EstimatedAgeMonths/@reason",
        "BirthNotification/Mother/Identifiers/Identifier/*/@scheme",
        "BirthNotification/Mother/Identifiers/Identifier/*/$text",
        "BirthNotification/Father/Identifiers/Identifier/*/@schemeLabel",
        "BirthNotification/MultipleBirthSiblings/NotificationId/*",
        "BirthNotification/FatherDetailsNotAvailable/Reason",
        "BirthNotification/Informant/Name/FamilyNameLatin",
        "BirthNotification/DisplacementStatus",
    ] {
        assert!(allows(path), "{path}");
    }
    for path in [
        "Header/service/memberCode",
        "Header/requestHash",
        "Header/protocolVersion",
        "BirthNotification/Child/Name/GivenNames",
        "BirthNotification/Mother/Identifiers/Identifier/*",
        "BirthNotification/Mother/Religion",
        "BirthNotification/Child/Sex/@script",
        "Body/BirthNotification/NotificationId",
    ] {
        assert!(!allows(path), "{path}");
    }
}

#[test]
fn elements_follow_xsd_order_whatever_the_key_order() {
    let xml = encoded(&tree());
    assert_eq!(encoded(&reversed(&tree())), xml);
    let expected: Vec<&str> = BIRTH_NOTIFICATION
        .iter()
        .map(|e| e.name)
        .filter(|n| notification().get(n).is_some())
        .collect();
    assert_eq!(children_of(&xml, "BirthNotification"), expected);
    assert_eq!(
        children_of(&xml, "PlaceOfBirth"),
        ["Type", "FacilityCode", "AdminArea", "CountryOfBirth"]
    );
    assert_eq!(children_of(&xml, "Name"), ["GivenNames", "GivenNamesLatin"]);
}

#[test]
fn the_envelope_follows_x_road_4_0() {
    let xml = encoded(&tree());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SOAP-ENV:Envelope"));
    assert_eq!(children_of(&xml, "Envelope"), ["Header", "Body"]);
    assert_eq!(
        children_of(&xml, "Header"),
        ["client", "service", "id", "userId", "protocolVersion"]
    );
    assert_eq!(
        children_of(&xml, "service"),
        [
            "xRoadInstance",
            "memberClass",
            "memberCode",
            "subsystemCode",
            "serviceCode",
            "serviceVersion"
        ]
    );
    assert!(xml.contains("<xrd:client id:objectType=\"SUBSYSTEM\">"));
    assert!(xml.contains("<xrd:service id:objectType=\"SERVICE\">"));
    assert!(xml.contains(&format!("<xrd:id>{}</xrd:id>", ctx(1).request_id())));
    assert!(xml.contains("<xrd:protocolVersion>4.0</xrd:protocolVersion>"));
    assert!(!xml.contains("requestHash"));
    assert_eq!(children_of(&xml, "Body"), ["submitBirthNotification"]);
    assert_eq!(
        children_of(&xml, "submitBirthNotification"),
        ["BirthNotification"]
    );
    let mut with_issue = tree();
    with_issue["Header"]["issue"] = json!("CASE-1");
    assert_eq!(
        children_of(&encoded(&with_issue), "Header"),
        [
            "client",
            "service",
            "id",
            "userId",
            "issue",
            "protocolVersion"
        ]
    );
}

#[test]
fn xrd_id_is_new_per_attempt_and_everything_else_stays() {
    let first = encode(&tree(), &ctx(1)).unwrap();
    let again = encode(&tree(), &ctx(1)).unwrap();
    let second = encode(&tree(), &ctx(2)).unwrap();
    assert_eq!(first, again);
    assert_ne!(first.bytes, second.bytes);
    let strip = |e: &Encoded, c: &RouteContext| {
        String::from_utf8(e.bytes.clone())
            .unwrap()
            .replace(&c.request_id().to_string(), "ID")
    };
    assert_eq!(strip(&first, &ctx(1)), strip(&second, &ctx(2)));
    assert_eq!(first.extension, "xml");
    assert_eq!(first.content_type, "text/xml; charset=UTF-8");
}

#[test]
fn text_and_attributes_are_escaped() {
    let mut t = tree();
    t["BirthNotification"]["Child"]["Name"]["GivenNames"] =
        json!({"$text": "O'Brien & <Sons> \"Jr\"", "@script": "a\"b'c&d<e>f\ng\th\ri"});
    let xml = encoded(&t);
    assert!(xml.contains(
        "<bn:GivenNames script=\"a&quot;b&apos;c&amp;d&lt;e&gt;f&#10;g&#9;h&#13;i\">\
         O&apos;Brien &amp; &lt;Sons&gt; &quot;Jr&quot;</bn:GivenNames>"
    ));
    let mut reader = Reader::from_str(&xml);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) if e.local_name().as_ref() == b"GivenNames" => {
                let text = reader.read_text(e.name()).unwrap();
                assert_eq!(
                    quick_xml::escape::unescape(&text).unwrap(),
                    "O'Brien & <Sons> \"Jr\""
                );
                break;
            }
            Event::Eof => panic!("no GivenNames"),
            _ => {}
        }
    }
}

#[test]
fn names_in_any_script_are_written_as_given() {
    for (script, given) in [
        ("Arab", "ليان"),
        ("Cyrl", "Мирослава"),
        ("Beng", "আয়েশা"),
        ("Latn", "Zoë"),
    ] {
        let mut t = tree();
        t["BirthNotification"]["Child"]["Name"]["GivenNames"] =
            json!({"$text": given, "@script": script});
        let xml = encoded(&t);
        assert!(
            xml.contains(&format!(
                "<bn:GivenNames script=\"{script}\">{given}</bn:GivenNames>"
            )),
            "{script}"
        );
    }
}

#[test]
fn no_empty_element_is_written() {
    let mut t = tree();
    t["BirthNotification"]["ConsentReference"] = json!("");
    t["BirthNotification"]["MultipleBirthSiblings"] = json!({"NotificationId": []});
    t["BirthNotification"]["Child"]["Name"]["FamilyName"] = json!({});
    let xml = encoded(&t);
    assert!(!xml.contains("ConsentReference"));
    assert!(!xml.contains("MultipleBirthSiblings"));
    assert!(!xml.contains("FamilyName"));
    assert!(!xml.contains("/>"));
    assert!(!xml.contains("></"));
}

#[test]
fn repeated_elements_are_written_in_list_order() {
    let mut t = tree();
    t["BirthNotification"]["BirthType"] = json!("TWIN");
    t["BirthNotification"]["MultipleBirthSiblings"] = json!({"NotificationId": [
        "4f64db8f-a0c2-4f4c-bb64-14f9ecf8c348"
    ]});
    let xml = encoded(&t);
    assert!(xml.contains(
        "<bn:MultipleBirthSiblings>\n          <bn:NotificationId>4f64db8f-a0c2-4f4c-bb64-14f9ecf8c348</bn:NotificationId>"
    ));
    assert!(xml.find("EXA-26-0041278").unwrap() < xml.find("EXA-26C01954").unwrap());
    assert!(xml.contains("<bn:Identifier scheme=\"UNHCR_CASE\">EXA-26C01954</bn:Identifier>"));
}

/// An expected error path, and how to break the tree to get it.
type Case = (&'static str, fn(&mut Value));

#[test]
fn missing_required_parts_are_errors_naming_the_path() {
    let cases: [Case; 8] = [
        ("BirthNotification/NotificationId", |t| {
            t["BirthNotification"]
                .as_object_mut()
                .unwrap()
                .remove("NotificationId");
        }),
        ("Header/userId", |t| {
            t["Header"].as_object_mut().unwrap().remove("userId");
        }),
        ("Header/client/memberCode", |t| {
            t["Header"]["client"]
                .as_object_mut()
                .unwrap()
                .remove("memberCode");
        }),
        ("Header/service", |t| {
            t["Header"].as_object_mut().unwrap().remove("service");
        }),
        ("Header", |t| {
            t.as_object_mut().unwrap().remove("Header");
        }),
        (
            "BirthNotification/(Father|FatherDetailsNotAvailable)",
            |t| {
                t["BirthNotification"]
                    .as_object_mut()
                    .unwrap()
                    .remove("FatherDetailsNotAvailable");
            },
        ),
        ("BirthNotification/Mother/(DateOfBirth|AgeYears)", |t| {
            t["BirthNotification"]["Mother"]
                .as_object_mut()
                .unwrap()
                .remove("AgeYears");
        }),
        (
            "BirthNotification/Mother/Identifiers/Identifier/1/@scheme",
            |t| {
                t["BirthNotification"]["Mother"]["Identifiers"]["Identifier"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("@scheme");
            },
        ),
    ];
    for (path, break_it) in cases {
        let mut t = tree();
        break_it(&mut t);
        assert_eq!(error(&t), EncodeError::Missing(path.into()), "{path}");
    }
}

#[test]
fn a_tree_the_format_cannot_carry_is_refused_by_path_without_values() {
    const CANARY: &str = "CANARY-Amina";
    let cases: [Case; 10] = [
        ("BirthNotification/Mother/Religion", |t| {
            t["BirthNotification"]["Mother"]["Religion"] = json!(CANARY);
        }),
        ("Body", |t| t["Body"] = json!(CANARY)),
        ("BirthNotification/Child/Sex", |t| {
            t["BirthNotification"]["Child"]["Sex"] = json!({"x": CANARY});
        }),
        ("BirthNotification/Child/Name/GivenNames/@lang", |t| {
            t["BirthNotification"]["Child"]["Name"]["GivenNames"]["@lang"] = json!(CANARY);
        }),
        ("BirthNotification", |t| {
            t["BirthNotification"]["Father"] =
                json!({"Name": {"GivenNames": CANARY}, "Nationality": "EXA"});
        }),
        ("BirthNotification/Child/Name/GivenNames/$text", |t| {
            t["BirthNotification"]["Child"]["Name"]["GivenNames"]["$text"] =
                json!("Zo\u{65}\u{301} CANARY");
        }),
        ("BirthNotification/Child/Name/GivenNamesLatin", |t| {
            t["BirthNotification"]["Child"]["Name"]["GivenNamesLatin"] = json!("CANARY\u{7}");
        }),
        ("BirthNotification/BirthWeightGrams", |t| {
            t["BirthNotification"]["BirthWeightGrams"] = json!(3.25);
        }),
        ("BirthNotification/Child/TimeOfBirth", |t| {
            let child = t["BirthNotification"]["Child"].as_object_mut().unwrap();
            child.remove("DateOfBirth");
            child.insert("TimeOfBirth".into(), json!("06:42:00"));
            child.insert(
                "EstimatedYearOfBirth".into(),
                json!({"$text": 2026, "@reason": "BORN_IN_TRANSIT"}),
            );
        }),
        ("BirthNotification/Mother/Identifiers/Identifier", |t| {
            t["BirthNotification"]["Mother"]["Identifiers"]["Identifier"] =
                json!(vec![json!({"$text": CANARY, "@scheme": "OTHER"}); 6]);
        }),
    ];
    for (path, break_it) in cases {
        let mut t = tree();
        break_it(&mut t);
        let err = error(&t);
        assert!(
            matches!(&err, EncodeError::Invalid { path: p, .. } if p == path),
            "{path}: {err:?}"
        );
        assert!(!err.to_string().contains("CANARY"), "{err}");
    }
}

mod properties {
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let key = prop_oneof![
                Just("$text".to_string()),
                Just("@script".to_string()),
                Just("GivenNames".to_string()),
                ".{0,6}",
            ];
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(key, inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const PLACES: [&[&str]; 8] = [
        &["Header"],
        &["Header", "client", "memberCode"],
        &["BirthNotification", "Child"],
        &["BirthNotification", "Child", "Name", "GivenNames"],
        &["BirthNotification", "Mother", "Identifiers", "Identifier"],
        &["BirthNotification", "MultipleBirthSiblings"],
        &["BirthNotification", "BirthOrder"],
        &["BirthNotification", "Unknown"],
    ];

    /// Reads the whole document; any error means it is not well-formed.
    fn well_formed(bytes: &[u8]) -> bool {
        let mut reader = Reader::from_reader(bytes);
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Eof) => return true,
                Ok(_) => buf.clear(),
                Err(_) => return false,
            }
        }
    }

    proptest! {
        #[test]
        fn any_tree_encodes_to_well_formed_xml_or_an_error(place in 0..PLACES.len(), value in json()) {
            let mut t = tree();
            let mut target = &mut t;
            for key in PLACES[place] {
                target = &mut target[*key];
            }
            *target = value;
            if let Ok(encoded) = encode(&t, &ctx(1)) {
                prop_assert!(well_formed(&encoded.bytes));
            }
        }

        #[test]
        fn any_text_is_refused_or_arrives_unchanged(text in any::<String>(), attribute in any::<String>()) {
            let mut t = tree();
            t["BirthNotification"]["Child"]["Name"]["GivenNames"] =
                json!({"$text": text, "@script": attribute});
            let Ok(encoded) = encode(&t, &ctx(1)) else { return Ok(()) };
            let xml = String::from_utf8(encoded.bytes).unwrap();
            let mut reader = Reader::from_str(&xml);
            loop {
                match reader.read_event().unwrap() {
                    Event::Start(e) if e.local_name().as_ref() == b"GivenNames" => {
                        // An empty attribute is no attribute: nothing is written empty.
                        match e.try_get_attribute("script").unwrap() {
                            Some(script) => prop_assert_eq!(
                                script.unescape_value().unwrap(),
                                attribute.as_str()
                            ),
                            None => prop_assert!(attribute.is_empty()),
                        }
                        let raw = reader.read_text(e.name()).unwrap();
                        prop_assert_eq!(quick_xml::escape::unescape(&raw).unwrap(), text.as_str());
                        break;
                    }
                    Event::Eof => prop_assert!(false, "no GivenNames"),
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn tables_fit_the_presence_mask() {
    fn check(name: &str, table: &[schema::Element]) {
        // `document::children` records presence in a u64, by position, and the
        // presence rules find siblings by name.
        assert!(table.len() <= 64, "{name}: {} elements", table.len());
        let names: BTreeSet<&str> = table.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), table.len(), "{name}: a name twice");
        for element in table {
            if let schema::Content::Children(children) = element.content {
                check(element.name, children);
            }
        }
    }
    check("Header", schema::HEADER);
    check("BirthNotification", BIRTH_NOTIFICATION);
}

mod one_walk_agrees_with_the_node_tree {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::super::oracle;
    use super::*;

    /// Every place a mapping may write (list items twice), the elements and
    /// lists above them, and a few keys the format does not have.
    fn places() -> Vec<String> {
        let mut paths = Vec::new();
        schema::paths("Header", schema::HEADER, &mut paths);
        schema::paths("BirthNotification", BIRTH_NOTIFICATION, &mut paths);
        let mut places = BTreeSet::new();
        for path in paths {
            for item in ["0", "1"] {
                let path = path.replace('*', item);
                let segments: Vec<&str> = path.split('/').collect();
                for n in 1..=segments.len() {
                    places.insert(segments[..n].join("/"));
                }
            }
        }
        places.extend(
            [
                "Body",
                "BirthNotification/Unknown",
                "Header/client/memberName",
                "BirthNotification/Child/Name/GivenNames/@lang",
            ]
            .map(String::from),
        );
        places.into_iter().collect()
    }

    /// What a place may be given: nothing (the key removed), good values and
    /// faulty ones.
    fn values() -> Vec<Option<Value>> {
        [
            Value::Null,
            json!(""),
            json!("Habte"),
            json!("ليان"),
            json!("O'Brien & <Sons> \"Jr\"\r\n\t"),
            json!(2026),
            json!(3100),
            json!(-4),
            json!(3.25),
            json!(true),
            json!("Zo\u{65}\u{301}"),
            json!("bell\u{7}"),
            json!(["4f64db8f-a0c2-4f4c-bb64-14f9ecf8c348", ""]),
            json!([]),
            json!([
                {"$text": "EXA-1", "@scheme": "UNHCR_CASE", "@issuer": "UNHCR"},
                {"$text": "EXA-2", "@scheme": "OTHER", "@schemeLabel": "a\"b"}
            ]),
            json!({"$text": "Layan", "@script": "Latn"}),
            json!({"$text": 2026, "@reason": "BORN_IN_TRANSIT"}),
            json!({"$text": "x"}),
            json!({"@script": "Arab"}),
            json!({"Reason": "NOT_RECORDED"}),
            json!({"Name": {"FamilyName": "Habte"}, "Nationality": "EXA"}),
            json!({}),
            json!({"x": "y"}),
        ]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect()
    }

    /// Sets `value` at `path` (or removes the key), making objects and arrays
    /// (padded with nulls) on the way.
    fn set(at: &mut Value, path: &[&str], value: Option<Value>) {
        use crate::mapping::formats::outbound::test_trees::slot;
        match (path.split_last(), value) {
            (Some((last, parent)), None) => {
                if let Value::Object(map) = slot(at, parent) {
                    map.remove(*last);
                }
            }
            (_, value) => *slot(at, path) = value.unwrap_or(Value::Null),
        }
    }

    #[test]
    fn same_bytes_or_same_error_on_arbitrary_trees() {
        let places = places();
        let values = values();
        let written = Cell::new(0u32);
        let cases = 2048;
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let inputs = (
            prop::collection::vec((0..places.len(), 0..values.len()), 0..4),
            1u32..=2,
            any::<bool>(),
        );
        runner
            .run(&inputs, |(changes, attempt, with_father)| {
                let mut t = tree();
                if with_father {
                    let notification = t["BirthNotification"].as_object_mut().unwrap();
                    notification.remove("FatherDetailsNotAvailable");
                    notification.insert(
                        "Father".into(),
                        json!({"Name": {"GivenNames": "Tesfay"}, "Nationality": "EXA",
                               "Identifiers": {"Identifier": [{"$text": "E-3", "@scheme": "NID"}]}}),
                    );
                }
                for (place, value) in changes {
                    let segments: Vec<&str> = places[place].split('/').collect();
                    set(&mut t, &segments, values[value].clone());
                }
                let one_walk = encode(&t, &ctx(attempt));
                if one_walk.is_ok() {
                    written.set(written.get() + 1);
                }
                let text = |r: Result<Encoded, EncodeError>| {
                    r.map(|e| (String::from_utf8_lossy(&e.bytes).into_owned(), e.extension))
                };
                prop_assert_eq!(
                    text(one_walk),
                    text(oracle::encode(&t, &ctx(attempt))),
                    "tree: {}",
                    t
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
