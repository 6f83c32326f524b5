//! Examplia CRVSO: canonical birth notifications mapped by
//! `mappings/destinations/examplia-crvs/birth-notification.toml`, encoded as
//! SOAP over X-Road 4.0, and judged by xmllint against the registry's own XSD
//! (the oracle: the gateway's code never decides whether its output is valid).
//!
//! Needs xmllint (Debian: `apt-get install -y libxml2-utils`) and the spec
//! beside the repository (`../shared/specs/examplia-civil-registry/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::DateTime;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Reader, Writer};
use registry_gateway::config::DestinationKind;
use registry_gateway::mapping::formats::{Encoded, examplia};
use registry_gateway::mapping::{Catalogue, Mapping, RouteContext, Side, codelist, load_file};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::schema::SchemaRegistry;
use serde_json::{Value, json};

const XSD: &str = "schemas/registries/examplia-crvs/birth-notification-v1.xsd";
const BN: &str = "urn:examplia:crvs:birth-notification:1";
const INSTALL: &str = "apt-get install -y libxml2-utils";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn spec(relative: &str) -> PathBuf {
    let dir = repo("../shared/specs/examplia-civil-registry");
    assert!(
        dir.is_dir(),
        "the Examplia spec is expected at {} (shared/ beside the repository)",
        dir.display()
    );
    dir.join(relative)
}

/// xmllint's exit status and messages. Exit 3 is "not valid against the schema".
fn xmllint(args: &[&str], file: &Path) -> (i32, String) {
    let output = match Command::new("xmllint").args(args).arg(file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("xmllint is not installed; install it with: {INSTALL}")
        }
        Err(e) => panic!("cannot run xmllint: {e}"),
    };
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn schema_check(file: &Path) -> (i32, String) {
    xmllint(&["--noout", "--schema", repo(XSD).to_str().unwrap()], file)
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The `BirthNotification` element of an envelope as a document of its own,
/// with its namespace declared on it. Events are copied as read, so the text
/// stays byte for byte as the encoder escaped it.
fn extract_notification(envelope: &str) -> Vec<u8> {
    let mut reader = Reader::from_str(envelope);
    let mut writer = Writer::new(Vec::new());
    writer
        .write_event(Event::Decl(quick_xml::events::BytesDecl::new(
            "1.0",
            Some("UTF-8"),
            None,
        )))
        .unwrap();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().unwrap();
        match &event {
            Event::Start(e) if depth == 0 && e.local_name().as_ref() == b"BirthNotification" => {
                let mut root =
                    BytesStart::new(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                root.extend_attributes(e.attributes().map(Result::unwrap));
                let prefix = e.name().prefix().map(|p| p.as_ref().to_vec());
                let key = match &prefix {
                    Some(p) => format!("xmlns:{}", String::from_utf8(p.clone()).unwrap()),
                    None => "xmlns".to_string(),
                };
                root.push_attribute((key.as_str(), BN));
                writer.write_event(Event::Start(root)).unwrap();
                depth = 1;
                continue;
            }
            Event::Eof => panic!("no BirthNotification in the envelope"),
            _ => {}
        }
        if depth == 0 {
            continue;
        }
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            _ => {}
        }
        writer.write_event(event).unwrap();
        if depth == 0 {
            return writer.into_inner();
        }
    }
}

/// A document's content as the registry compares it (README §6): namespaces
/// resolved, attributes sorted, whitespace between elements ignored. One line
/// per start tag, text and end tag, below the first element named `root`.
fn content(xml: &str, root: &str) -> Vec<String> {
    let mut reader = NsReader::from_str(xml);
    let mut lines = Vec::new();
    let mut text = String::new();
    let mut depth = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().unwrap();
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8(n.as_ref().to_vec()).unwrap(),
            _ => String::new(),
        };
        let flush = |text: &mut String, lines: &mut Vec<String>| {
            let t = quick_xml::escape::unescape(text.trim())
                .unwrap()
                .into_owned();
            if !t.is_empty() {
                lines.push(format!("text {t}"));
            }
            text.clear();
        };
        match event {
            Event::Start(e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if depth == 0 && local != root {
                    continue;
                }
                flush(&mut text, &mut lines);
                depth += 1;
                let mut attributes: Vec<String> = e
                    .attributes()
                    .map(Result::unwrap)
                    .filter(|a| !a.key.as_ref().starts_with(b"xmlns"))
                    .map(|a| {
                        let (ns, local) = reader.resolve_attribute(a.key);
                        let ns = match ns {
                            ResolveResult::Bound(n) => {
                                format!("{{{}}}", String::from_utf8_lossy(n.as_ref()))
                            }
                            _ => String::new(),
                        };
                        let local = String::from_utf8_lossy(local.as_ref()).into_owned();
                        format!("{ns}{local}={}", a.unescape_value().unwrap())
                    })
                    .collect();
                attributes.sort();
                lines.push(format!("start {{{ns}}}{local} {}", attributes.join(" ")));
            }
            Event::Text(e) if depth > 0 => text.push_str(std::str::from_utf8(&e).unwrap()),
            Event::GeneralRef(e) if depth > 0 => {
                text.push_str(&format!("&{};", std::str::from_utf8(&e).unwrap()));
            }
            Event::End(_) if depth > 0 => {
                flush(&mut text, &mut lines);
                lines.push("end".into());
                depth -= 1;
                if depth == 0 {
                    return lines;
                }
            }
            Event::Eof => return lines,
            _ => {}
        }
    }
}

/// The texts of every element with this local name, in document order.
fn texts(xml: &str, local: &str) -> Vec<String> {
    let lines = content(xml, "Envelope");
    let mut out = Vec::new();
    for pair in lines.windows(2) {
        if pair[0].starts_with("start ") && pair[0].contains(&format!("}}{local} ")) {
            out.push(pair[1].strip_prefix("text ").unwrap_or("").to_string());
        }
    }
    out
}

struct Gateway {
    schemas: SchemaRegistry,
    mapping: Mapping,
}

impl Gateway {
    fn load() -> Gateway {
        let schemas = SchemaRegistry::load().unwrap();
        let source = Catalogue::new(
            schemas
                .field_paths(RecordType::BirthNotification)
                .iter()
                .cloned(),
        );
        let target = examplia::catalogue(&repo("mappings/destinations/examplia-crvs")).unwrap();
        let codelists: BTreeMap<String, Arc<codelist::CodeList>> =
            codelist::load_dir(&repo("mappings/codelists"))
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect();
        let mapping = load_file(
            &repo("mappings/destinations/examplia-crvs/birth-notification.toml"),
            (
                Side::Canonical(RecordType::BirthNotification),
                Side::Destination(DestinationKind::ExampliaCrvs),
            ),
            &source,
            &target,
            &codelists,
        )
        .unwrap_or_else(|errors| {
            panic!(
                "{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        Gateway { schemas, mapping }
    }

    /// Validate, map and encode one canonical record for one delivery attempt.
    fn send(&self, name: &str, record: &Value, attempt: u32) -> (RouteContext, Encoded) {
        let violations = self.schemas.validate(RecordType::BirthNotification, record);
        assert!(
            violations.is_empty(),
            "{name}: not a valid canonical record: {violations:?}"
        );
        let ctx = context(name, attempt);
        let tree = self
            .mapping
            .apply(record, &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let encoded = examplia::encode(&tree, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
        (ctx, encoded)
    }
}

fn context(name: &str, attempt: u32) -> RouteContext {
    // A distinct, stable record id per fixture.
    let n = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    RouteContext {
        record_id: RecordId::parse(&format!("0192f0c2-7b1e-7c3a-9f00-{:012x}", n % (1 << 48)))
            .unwrap(),
        record_version: 1,
        route: "birth-notification-to-examplia-crvs".into(),
        destination: "examplia-crvs".into(),
        timestamp: DateTime::from_timestamp(1_792_000_000, 0).unwrap(),
        attempt,
        subject: None,
        locations: None,
    }
}

fn base() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo("schemas/examples/birth-notification.json")).unwrap(),
    )
    .unwrap()
}

fn with(changes: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut record = base();
    changes(record.as_object_mut().unwrap());
    record
}

fn latin(given: &str, family: &str) -> Value {
    json!({"given_names": given, "family_name": family, "script": "Latn"})
}

/// The canonical form of the spec's example 04 (Arabic names, refugee mother).
fn example_04() -> Value {
    json!({
        "record_type": "birth-notification",
        "record_version": 1,
        "notified_at": "2026-10-19T10:05:12+03:00",
        "notifier": {"agency_code": "UNHCR", "system_name": "proGres", "system_version": "4"},
        "child": {
            "name": {"given_names": "ليان", "family_name": "الحسن", "script": "Arab",
                     "given_names_latin": "Layan", "family_name_latin": "Al-Hassan"},
            "sex": "female",
            "date_of_birth": "2026-10-17",
            "place_of_birth": {"type": "health_facility", "facility_code": "HF-090214",
                               "admin_area": "EX0902014", "country": "EXA"}
        },
        "birth_type": "single",
        "birth_order": 1,
        "birth_weight": {"value": 3100, "unit": "g"},
        "attendant_at_birth": "midwife",
        "mother": {
            "name": {"given_names": "فاطمة", "family_name": "الخطيب", "script": "Arab",
                     "given_names_latin": "Fatima", "family_name_latin": "Al-Khatib"},
            "age_years": 27,
            "nationality": "XXB",
            "identifiers": [{"scheme": "unhcr_individual", "value": "EXA-26-0041278"},
                            {"scheme": "unhcr_case", "value": "EXA-26C01954"}],
            "residence_admin_area": "EX0902014",
            "displacement_status": "refugee"
        },
        "father": {
            "name": {"given_names": "عمر", "family_name": "الحسن", "script": "Arab",
                     "given_names_latin": "Omar", "family_name_latin": "Al-Hassan"},
            "age_years": 31,
            "nationality": "XXB",
            "identifiers": [{"scheme": "unhcr_individual", "value": "EXA-26-0041279"}],
            "residence_admin_area": "EX0902014"
        },
        "informant": {"relationship": "mother"},
        "legal_basis": "consent",
        "consent_reference": "UNHCR-EXA-CNS-118204"
    })
}

/// Varied canonical birth notifications: (name, record).
fn fixtures() -> Vec<(&'static str, Value)> {
    let mut twin_1 = with(|r| {
        r.insert("birth_type".into(), json!("twin"));
        r.insert("birth_order".into(), json!(1));
        r.insert(
            "multiple_birth_siblings".into(),
            json!([{"source_record_id": "emr-twin-2"}]),
        );
        r["child"]["time_of_birth"] = json!("23:58:00");
    });
    let twin_2 = {
        let mut r = twin_1.clone();
        r["birth_order"] = json!(2);
        r["multiple_birth_siblings"] = json!([{"source_record_id": "emr-twin-1"}]);
        r["child"]["date_of_birth"] = json!("2026-10-22");
        r["child"]["time_of_birth"] = json!("00:09:00");
        r["child"]["name"]["given_names"] = json!("ሳራ");
        r["child"]["name"]["given_names_latin"] = json!("Sara");
        r
    };
    twin_1["source_record_id"] = json!("emr-twin-1");
    vec![
        ("base-ethiopic-refugee-mother", base()),
        (
            "father-known-with-passport",
            with(|r| {
                r.remove("father_details_not_available");
                r.insert("father".into(), json!({
                "name": latin("Jonas Peter", "Vantberg"),
                "date_of_birth": "1991-02-03",
                "nationality": "DNK",
                "identifiers": [{"scheme": "passport", "value": "208345561", "issuer": "DNK"}],
                "residence_admin_area": "EX0307012"
            }));
                r["mother"] = json!({
                    "name": latin("Sofia Elena", "Vantberg"),
                    "date_of_birth": "1994-05-17",
                    "nationality": "EXA",
                    "identifiers": [{"scheme": "national_id", "value": "9405173023", "issuer": "EXA"}],
                    "residence_admin_area": "EX0307012",
                    "displacement_status": "host_community"
                });
                r["child"]["name"] = latin("Lena Marie", "Vantberg");
            }),
        ),
        (
            "father-not-recorded-no-legal-basis-no-attendant",
            with(|r| {
                r["father_details_not_available"] = json!({"reason": "not_recorded"});
                r.remove("legal_basis");
                r.remove("attendant_at_birth");
                r["informant"] = json!({
                    "relationship": "health_worker",
                    "name": latin("Marta", "Oduya"),
                    "contact_phone": "+292215550147"
                });
            }),
        ),
        (
            "estimated-year-born-in-transit-unnamed",
            with(|r| {
                let child = r["child"].as_object_mut().unwrap();
                child.remove("name");
                child.remove("date_of_birth");
                child.remove("time_of_birth");
                child.insert("estimated_year_of_birth".into(), json!(2026));
                child.insert("estimate_reason".into(), json!("born_in_transit"));
                child.insert(
                    "place_of_birth".into(),
                    json!({
                        "type": "in_transit",
                        "description": "Born on a truck between the border post and the settlement"
                    }),
                );
                r["mother"]["identifiers"] = json!([
                    {"scheme": "other", "value": "FCN-0042/7", "scheme_label": "Family Counting Number"}
                ]);
                r["mother"]["nationality"] = json!("XXA");
                r["mother"]["displacement_status"] = json!("stateless");
            }),
        ),
        (
            "estimated-age-undocumented-home-birth",
            with(|r| {
                let child = r["child"].as_object_mut().unwrap();
                child.remove("date_of_birth");
                child.remove("time_of_birth");
                child.insert("estimated_age_months".into(), json!(7));
                child.insert("estimate_reason".into(), json!("undocumented_birth"));
                child.insert(
                    "place_of_birth".into(),
                    json!({
                        "type": "home", "admin_area": "EX0512", "country": "EXA"
                    }),
                );
                r["attendant_at_birth"] = json!("traditional_birth_attendant");
            }),
        ),
        ("twins-first-born", twin_1),
        ("twins-second-born", twin_2),
        (
            "birth-weight-in-kilograms",
            with(|r| {
                r["birth_weight"] = json!({"value": 3.25, "unit": "kg"});
            }),
        ),
        (
            "birth-weight-rounding",
            with(|r| {
                r["birth_weight"] = json!({"value": 1.005, "unit": "kg"});
            }),
        ),
        (
            "birth-weight-implausible-is-left-out",
            with(|r| {
                r["birth_weight"] = json!({"value": 9.5, "unit": "kg"});
            }),
        ),
        (
            "cyrillic-names-consent",
            with(|r| {
                r["child"]["name"] = json!({"given_names": "Мирослава", "family_name": "Коваленко",
                "script": "Cyrl", "given_names_latin": "Myroslava", "family_name_latin": "Kovalenko"});
                r["mother"]["name"] = json!({"given_names": "Олена", "family_name": "Коваленко",
                "script": "Cyrl", "given_names_latin": "Olena", "family_name_latin": "Kovalenko"});
                r["mother"]["nationality"] = json!("UKR");
                r["mother"]["identifiers"] =
                    json!([{"scheme": "passport", "value": "FX204518", "issuer": "UKR"}]);
                r["legal_basis"] = json!("consent");
                r.insert("consent_reference".into(), json!("PRIMERO-CNS-2026-004417"));
            }),
        ),
        ("arabic-names-example-04", example_04()),
        (
            "bengali-names-stateless-mother",
            with(|r| {
                r["child"]["name"] = json!({"given_names": "আয়েশা", "family_name": "বেগম",
                "script": "Beng", "given_names_latin": "Ayesha", "family_name_latin": "Begum"});
                r["mother"]["name"] = json!({"given_names": "রোকেয়া", "script": "Beng",
                "given_names_latin": "Rokeya"});
                r["mother"]["nationality"] = json!("XXA");
            }),
        ),
        (
            "apostrophe-ampersand-angle-brackets",
            with(|r| {
                r["child"]["name"] = json!({"given_names": "D'Arcy <Jo>", "family_name": "O'Brien & \"Sons\"",
                "script": "Latn"});
                r["mother"]["name"] = json!({"given_names": "Ngozi", "family_name": "Adébáyọ̀",
                "script": "Latn", "family_name_latin": "Adébáyọ̀"});
                r["mother"]["nationality"] = json!("NGA");
                r["mother"]["displacement_status"] = json!("foreign_national");
                r["mother"]["identifiers"] = json!([]);
            }),
        ),
        (
            "home-birth-informant-father",
            with(|r| {
                r["child"]["place_of_birth"] = json!({
                    "type": "home", "admin_area": "EX0409012", "country": "EXA",
                    "description": "Family compound, block C"
                });
                r["attendant_at_birth"] = json!("relative_or_friend");
                r.remove("birth_weight");
                r.remove("father_details_not_available");
                r.insert("father".into(), json!({
                "name": {"given_names": "ኪዳነ", "script": "Ethi", "given_names_latin": "Kidane"},
                "nationality": "ERI",
                "identifiers": [{"scheme": "unhcr_individual", "value": "EXA-26-0052218"}]
            }));
                r["informant"] = json!({"relationship": "father", "name": {"given_names": "ኪዳነ"}});
                r["legal_basis"] = json!("vital_interest");
            }),
        ),
    ]
}

#[test]
fn the_oracle_accepts_the_specs_valid_examples_and_refuses_its_invalid_ones() {
    assert_eq!(
        std::fs::read(repo(XSD)).unwrap(),
        std::fs::read(spec("birth-notification-v1.xsd")).unwrap(),
        "{XSD} must be an unchanged copy of the published XSD"
    );
    assert_eq!(
        std::fs::read(repo(
            "schemas/registries/examplia-crvs/birth-notification-v1.wsdl"
        ))
        .unwrap(),
        std::fs::read(spec("birth-notification-v1.wsdl")).unwrap(),
    );
    for name in [
        "01-full-latin-facility-birth.xml",
        "02-cyrillic-estimated-dob-father-not-available.xml",
        "03a-twins-first-born.xml",
        "03b-twins-second-born.xml",
        "04-arabic-refugee-mother.xml",
    ] {
        let (code, messages) = schema_check(&spec(&format!("examples/{name}")));
        assert_eq!(code, 0, "{name}: {messages}");
    }
    let mut invalid: Vec<PathBuf> = std::fs::read_dir(spec("examples/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    invalid.sort();
    assert!(invalid.len() >= 6);
    for path in invalid {
        let (code, messages) = schema_check(&path);
        assert_eq!(
            code,
            3,
            "{} must fail validation: {messages}",
            path.display()
        );
    }
    // The extraction the tests below use, on the spec's own request.
    let dir = tempfile::tempdir().unwrap();
    let request = std::fs::read_to_string(spec("examples/05-soap-request.xml")).unwrap();
    let body = write_temp(dir.path(), "05-body.xml", &extract_notification(&request));
    let (code, messages) = schema_check(&body);
    assert_eq!(code, 0, "{messages}");
    assert_eq!(
        content(
            &String::from_utf8(std::fs::read(&body).unwrap()).unwrap(),
            "BirthNotification"
        ),
        content(&request, "BirthNotification")
    );
}

#[test]
fn varied_notifications_are_valid_against_the_registry_xsd() {
    let gateway = Gateway::load();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    assert!(fixtures.len() >= 8);
    for (name, record) in &fixtures {
        let (_, encoded) = gateway.send(name, record, 1);
        let envelope = write_temp(dir.path(), &format!("{name}.envelope.xml"), &encoded.bytes);
        let (code, messages) = xmllint(&["--noout"], &envelope);
        assert_eq!(code, 0, "{name}: envelope not well-formed: {messages}");
        let text = String::from_utf8(encoded.bytes).unwrap();
        let body = write_temp(
            dir.path(),
            &format!("{name}.xml"),
            &extract_notification(&text),
        );
        let (code, messages) = schema_check(&body);
        assert_eq!(code, 0, "{name}: {messages}");
    }
}

#[test]
fn the_example_04_record_becomes_the_specs_request_05() {
    let (ctx, encoded) = Gateway::load().send("example-04", &example_04(), 1);
    let ours = String::from_utf8(encoded.bytes)
        .unwrap()
        .replace(
            &ctx.message_id().to_string(),
            "feee0a7b-26dc-419a-b4d6-8d8ae89c2f06",
        )
        .replace(
            &ctx.request_id().to_string(),
            "1e9cddfa-6f77-4c8c-be4d-964ba8af78f9",
        );
    let spec_request = std::fs::read_to_string(spec("examples/05-soap-request.xml")).unwrap();
    assert_eq!(
        content(&ours, "Envelope"),
        content(&spec_request, "Envelope")
    );
}

#[test]
fn the_envelope_keeps_x_road_rules_across_attempts() {
    let gateway = Gateway::load();
    let record = base();
    let (ctx_1, first) = gateway.send("base", &record, 1);
    let (_, first_again) = gateway.send("base", &record, 1);
    let (ctx_2, second) = gateway.send("base", &record, 2);
    assert_eq!(first.bytes, first_again.bytes, "same input, same bytes");
    assert_eq!(first.content_type, "text/xml; charset=UTF-8");
    assert_eq!(first.extension, "xml");
    let first = String::from_utf8(first.bytes).unwrap();
    let second = String::from_utf8(second.bytes).unwrap();

    let header: Vec<String> = content(&first, "Header")
        .into_iter()
        .filter(|l| l.starts_with("start {http://x-road.eu/xsd/xroad.xsd}"))
        .collect();
    assert_eq!(
        header,
        [
            "start {http://x-road.eu/xsd/xroad.xsd}client {http://x-road.eu/xsd/identifiers}objectType=SUBSYSTEM",
            "start {http://x-road.eu/xsd/xroad.xsd}service {http://x-road.eu/xsd/identifiers}objectType=SERVICE",
            "start {http://x-road.eu/xsd/xroad.xsd}id ",
            "start {http://x-road.eu/xsd/xroad.xsd}userId ",
            "start {http://x-road.eu/xsd/xroad.xsd}protocolVersion ",
        ]
    );
    assert_eq!(texts(&first, "xRoadInstance"), ["EXA", "EXA"]);
    assert_eq!(texts(&first, "memberCode"), ["90000123", "70000001"]);
    assert_eq!(texts(&first, "serviceCode"), ["submitBirthNotification"]);
    assert_eq!(texts(&first, "userId"), ["UNHCR:registry-gateway"]);
    assert_eq!(texts(&first, "protocolVersion"), ["4.0"]);
    assert!(!first.contains("requestHash"));

    let ids = |xml: &str| texts(xml, "id");
    assert_eq!(ids(&first), [ctx_1.request_id().to_string()]);
    assert_eq!(ids(&second), [ctx_2.request_id().to_string()]);
    assert_ne!(ids(&first), ids(&second), "xrd:id is new for every attempt");
    let notification_ids = |xml: &str| texts(xml, "NotificationId");
    assert_eq!(notification_ids(&first), [ctx_1.message_id().to_string()]);
    assert_eq!(notification_ids(&first), notification_ids(&second));
    assert_eq!(
        content(&first, "BirthNotification"),
        content(&second, "BirthNotification"),
        "a retry resends the same document"
    );
}

#[test]
fn mapped_content_follows_the_registrys_rules() {
    let gateway = Gateway::load();
    let sent: BTreeMap<&str, String> = fixtures()
        .iter()
        .map(|(name, record)| {
            let (_, encoded) = gateway.send(name, record, 1);
            (*name, String::from_utf8(encoded.bytes).unwrap())
        })
        .collect();
    let get = |name: &str, element: &str| texts(&sent[name], element);

    // Health data never leaves for a civil registry.
    for xml in sent.values() {
        assert!(!xml.contains("anaemia") && !xml.contains("epds"));
        assert!(
            !xml.contains("MultipleBirthSiblings"),
            "no usable sibling NotificationIds"
        );
    }
    let base = &sent["base-ethiopic-refugee-mother"];
    assert!(base.contains("<bn:GivenNames script=\"Ethi\">ሊያ</bn:GivenNames>"));
    assert_eq!(
        get("base-ethiopic-refugee-mother", "BirthWeightGrams"),
        ["3120"]
    );
    assert_eq!(get("base-ethiopic-refugee-mother", "Sex"), ["2"]);
    assert_eq!(get("base-ethiopic-refugee-mother", "Reason"), ["SEPARATED"]);
    assert_eq!(
        get("base-ethiopic-refugee-mother", "DisplacementStatus"),
        ["REFUGEE"]
    );
    assert!(
        base.contains("<bn:Identifier scheme=\"UNHCR_INDIVIDUAL\">EXA-26-0052217</bn:Identifier>")
    );
    assert!(base.contains("<bn:Identifier scheme=\"UNHCR_CASE\">EXA-26C02388</bn:Identifier>"));
    assert!(!base.contains("NATIONAL_ID") && !base.contains("PASSPORT"));
    assert_eq!(
        get("base-ethiopic-refugee-mother", "ContactPhone"),
        ["+292445550163"]
    );

    let passport = &sent["father-known-with-passport"];
    assert!(
        passport.contains(
            "<bn:Identifier scheme=\"PASSPORT\" issuer=\"DNK\">208345561</bn:Identifier>"
        )
    );
    assert!(passport.contains(
        "<bn:Identifier scheme=\"NATIONAL_ID\" issuer=\"EXA\">9405173023</bn:Identifier>"
    ));
    assert_eq!(
        get("father-known-with-passport", "DisplacementStatus"),
        ["HOST_COMMUNITY"]
    );

    assert_eq!(
        get("father-not-recorded-no-legal-basis-no-attendant", "Reason"),
        ["NOT_RECORDED"]
    );
    assert_eq!(
        get(
            "father-not-recorded-no-legal-basis-no-attendant",
            "LegalBasis"
        ),
        ["LEGAL_OBLIGATION"]
    );
    assert_eq!(
        get(
            "father-not-recorded-no-legal-basis-no-attendant",
            "AttendantAtBirth"
        ),
        ["UNKNOWN"]
    );
    assert_eq!(
        get(
            "father-not-recorded-no-legal-basis-no-attendant",
            "FamilyName"
        ),
        ["ሃብተ", "ሃብተ", "Oduya"]
    );

    let transit = &sent["estimated-year-born-in-transit-unnamed"];
    assert!(transit.contains(
        "<bn:EstimatedYearOfBirth reason=\"BORN_IN_TRANSIT\">2026</bn:EstimatedYearOfBirth>"
    ));
    assert!(!transit.contains("DateOfBirth>2026-10-21") && !transit.contains("CountryOfBirth"));
    assert!(transit.contains("<bn:Identifier scheme=\"OTHER\" schemeLabel=\"Family Counting Number\">FCN-0042/7</bn:Identifier>"));
    assert!(sent["estimated-age-undocumented-home-birth"].contains(
        "<bn:EstimatedAgeMonths reason=\"UNDOCUMENTED_BIRTH\">7</bn:EstimatedAgeMonths>"
    ));

    assert_eq!(get("twins-first-born", "BirthOrder"), ["1"]);
    assert_eq!(get("twins-second-born", "BirthOrder"), ["2"]);
    assert_eq!(get("twins-second-born", "BirthType"), ["TWIN"]);
    assert_eq!(get("twins-second-born", "TimeOfBirth"), ["00:09:00"]);

    assert_eq!(
        get("birth-weight-in-kilograms", "BirthWeightGrams"),
        ["3250"]
    );
    assert_eq!(get("birth-weight-rounding", "BirthWeightGrams"), ["1005"]);
    assert!(get("birth-weight-implausible-is-left-out", "BirthWeightGrams").is_empty());

    assert_eq!(
        get("cyrillic-names-consent", "GivenNames"),
        ["Мирослава", "Олена"]
    );
    assert_eq!(
        get("cyrillic-names-consent", "FamilyNameLatin"),
        ["Kovalenko", "Kovalenko"]
    );
    assert_eq!(get("cyrillic-names-consent", "LegalBasis"), ["CONSENT"]);
    assert_eq!(
        get("cyrillic-names-consent", "ConsentReference"),
        ["PRIMERO-CNS-2026-004417"]
    );
    assert_eq!(
        get("bengali-names-stateless-mother", "GivenNames"),
        ["আয়েশা", "রোকেয়া"]
    );
    assert!(sent["bengali-names-stateless-mother"].contains("script=\"Beng\">আয়েশা<"));

    let escaped = &sent["apostrophe-ampersand-angle-brackets"];
    assert!(escaped.contains(">D&apos;Arcy &lt;Jo&gt;</bn:GivenNames>"));
    assert!(escaped.contains(">O&apos;Brien &amp; &quot;Sons&quot;</bn:FamilyName>"));
    assert_eq!(
        get("apostrophe-ampersand-angle-brackets", "GivenNames")[0],
        "D'Arcy <Jo>"
    );
    assert_eq!(
        get("apostrophe-ampersand-angle-brackets", "FamilyNameLatin"),
        ["Adébáyọ̀"]
    );
    assert!(
        !escaped.contains("DisplacementStatus"),
        "foreign_national has no Examplia code"
    );
    assert!(!escaped.contains("Identifiers"));

    let home = &sent["home-birth-informant-father"];
    assert_eq!(get("home-birth-informant-father", "Type"), ["HOME"]);
    assert_eq!(
        get("home-birth-informant-father", "Relationship"),
        ["FATHER"]
    );
    assert_eq!(
        get("home-birth-informant-father", "GivenNames").len(),
        3,
        "child, mother, father; not the informant"
    );
    assert_eq!(
        get("home-birth-informant-father", "LegalBasis"),
        ["VITAL_INTEREST"]
    );
    assert!(
        home.contains("<bn:Identifier scheme=\"UNHCR_INDIVIDUAL\">EXA-26-0052218</bn:Identifier>")
    );
    assert!(!home.contains("BirthWeightGrams"));
}
