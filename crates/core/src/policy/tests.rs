use std::borrow::Cow;
use std::path::PathBuf;

use sha2::Digest;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::config::{Config, Overrides, RouteConfig};
use crate::schema::SchemaRegistry;

pub(super) const PRIMERO: &str = "child-protection-case-to-primero";
pub(super) const CPC: RecordType = RecordType::ChildProtectionCase;
pub(super) const BN: RecordType = RecordType::BirthNotification;

pub(super) fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

pub(super) fn example_routes() -> Vec<RouteConfig> {
    let path = root().join("deploy/gateway.example.toml");
    Config::load(&path, &Overrides::default())
        .expect("example config loads")
        .routes
}

pub(super) fn policies() -> Policies {
    load(
        &root().join("policies"),
        &example_routes(),
        &SchemaRegistry::load().unwrap(),
    )
    .expect("example policies load")
}

pub(super) fn read(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub(super) fn case(dir_prefix: &str) -> Value {
    let dirs = std::fs::read_dir(root().join("conformance/cases")).unwrap();
    let dir = dirs
        .map(|d| d.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(dir_prefix)
        })
        .expect("conformance case exists");
    read(&format!(
        "{}/input.json",
        dir.strip_prefix(root()).unwrap().display()
    ))
}

pub(super) fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

/// Whether any GBV-sensitive value is left in a canonical case.
pub(super) fn has_gbv(v: &Value) -> bool {
    v.get("gbv_survivor").is_some()
        || v["protection_concerns"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "gbv_survivor"))
        || v["protection_concern_details"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["concern_type"] == "gbv_survivor"))
        || v["incidents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["violence_type"] != "non_gbv"))
}

pub(super) const MINIMAL: [&str; 14] = [
    "age_years",
    "care_arrangement",
    "case_id_display",
    "date_of_birth",
    "estimated",
    "identifiers",
    "location_current",
    "name",
    "protection_status",
    "record_type",
    "record_version",
    "sex",
    "source_record_id",
    "urgent_protection_concern",
];

#[test]
fn every_example_route_has_a_policy_and_the_hash_is_of_the_file() {
    let p = policies();
    assert_eq!(p.routes().count(), example_routes().len());
    let bytes = std::fs::read(root().join("policies").join(format!("{PRIMERO}.toml"))).unwrap();
    let d = p.decide(PRIMERO, CPC, &case("26"));
    assert_eq!(d.policy_sha256, hex::encode(sha2::Sha256::digest(&bytes)));
}

#[test]
fn consented_case_goes_in_full_without_gbv_and_each_removal_is_listed() {
    let p = policies();
    let record = case("26");
    assert!(has_gbv(&record), "fixture carries GBV data");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.decision, Outcome::Deliver, "{}", d.reason);
    assert_eq!(d.legal_basis, Some("CONSENT"));
    assert_eq!(d.rule, "full-case-with-consent");
    let out = p.apply(&d, &record);
    assert!(!has_gbv(&out));
    // Full case: the protection data other than GBV is still there.
    assert!(out.get("family_details").is_some() && out.get("notes").is_some());
    assert_eq!(
        out["protection_concerns"],
        json!(["living_with_vulnerable_person"])
    );
    let pointers: Vec<&str> = d.redactions.iter().map(|r| r.pointer.as_str()).collect();
    assert!(pointers.contains(&"/protection_concerns/1"), "{pointers:?}");
    assert!(
        pointers
            .iter()
            .any(|p| p.starts_with("/protection_concern_details/"))
    );
    assert!(pointers.iter().any(|p| p.starts_with("/incidents/")));
    assert!(d.redactions.iter().all(|r| r.action == Action::Drop));
}

#[test]
fn schema_example_loses_only_its_gbv_rows() {
    let p = policies();
    let record = read("schemas/examples/child-protection-case.json");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.decision, Outcome::Deliver, "{}", d.reason);
    let out = p.apply(&d, &record);
    assert!(!has_gbv(&out));
    let kept = out["incidents"].as_array().map_or(0, Vec::len);
    let before = record["incidents"].as_array().unwrap();
    let non_gbv = before
        .iter()
        .filter(|i| i["violence_type"] == "non_gbv")
        .count();
    assert_eq!(kept, non_gbv);
}

#[test]
fn unaccompanied_child_without_consent_gets_only_the_minimal_set() {
    let p = policies();
    let record = case("27");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.decision, Outcome::Deliver, "{}", d.reason);
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
    assert_eq!(d.rule, "uasc-minimal-set-vital-interest");
    let out = p.apply(&d, &record);
    assert!(
        keys(&out).iter().all(|k| MINIMAL.contains(k)),
        "{:?}",
        keys(&out)
    );
    assert!(out.get("consent").is_none() && out.get("protection_concerns").is_none());
    assert_eq!(out["name"], record["name"]);
    // Every dropped top-level field is listed as a redaction.
    for k in keys(&record) {
        if !MINIMAL.contains(&k) {
            assert!(
                d.redactions.iter().any(|r| r.pointer == format!("/{k}")),
                "{k}"
            );
        }
    }
}

#[test]
fn overridden_consent_with_vital_interest_sends_the_full_case() {
    let p = policies();
    let record = case("28");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.decision, Outcome::Deliver);
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
    assert_eq!(d.rule, "full-case-consent-overridden-vital-interest");
    let out = p.apply(&d, &record);
    assert_eq!(out["protection_concerns"], record["protection_concerns"]);
}

#[test]
fn overridden_consent_without_vital_interest_is_not_enough() {
    let p = policies();
    let mut record = case("28");
    record["consent"]["legitimate_basis"] = json!(["public_task"]);
    record.as_object_mut().unwrap().remove("protection_status");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(
        d.reason.contains("/consent/legitimate_basis"),
        "{}",
        d.reason
    );
}

#[test]
fn a_child_of_16_consents_for_herself() {
    let p = policies();
    let d = p.decide(PRIMERO, CPC, &case("29"));
    assert_eq!(d.legal_basis, Some("CONSENT"), "{}", d.reason);
}

#[test]
fn child_consent_threshold_is_15() {
    let p = policies();
    let mut record = case("29");
    record["age_years"] = json!(15);
    assert_eq!(p.decide(PRIMERO, CPC, &record).legal_basis, Some("CONSENT"));
    record["age_years"] = json!(14);
    record.as_object_mut().unwrap().remove("protection_status");
    assert_eq!(p.decide(PRIMERO, CPC, &record).decision, Outcome::Deny);
}

#[test]
fn withdrawn_consent_falls_back_to_the_minimal_set() {
    let p = policies();
    let record = case("30");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.rule, "uasc-minimal-set-vital-interest", "{}", d.reason);
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
    let mut not_uasc = record.clone();
    not_uasc
        .as_object_mut()
        .unwrap()
        .remove("protection_status");
    let d = p.decide(PRIMERO, CPC, &not_uasc);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(d.reason.contains("consent withdrawn"), "{}", d.reason);
    assert!(p.apply(&d, &not_uasc).is_null());
}

#[test]
fn under_15_individual_is_no_consent() {
    let p = policies();
    let record = case("31");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(d.rule, "uasc-minimal-set-vital-interest");
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
    let mut not_uasc = record.clone();
    not_uasc
        .as_object_mut()
        .unwrap()
        .remove("protection_status");
    let d = p.decide(PRIMERO, CPC, &not_uasc);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(d.reason.contains("from age 15"), "{}", d.reason);
}

#[test]
fn no_sharing_with_authorities_is_no_consent() {
    let p = policies();
    let mut record = case("29");
    record["consent"]["consent_info_sharing"] = json!(["family", "unhcr"]);
    assert_ne!(p.decide(PRIMERO, CPC, &record).legal_basis, Some("CONSENT"));
}

#[test]
fn reasons_never_carry_values() {
    let p = policies();
    for prefix in ["26", "27", "28", "29", "30", "31"] {
        let mut record = case(prefix);
        record.as_object_mut().unwrap().remove("protection_status");
        let d = p.decide(PRIMERO, CPC, &record);
        let text = format!("{} {:?}", d.reason, d.redactions);
        let given = record["name"]["given_names"].as_str().unwrap_or("\u{0}");
        assert!(!text.contains(given), "{text}");
    }
}

#[test]
fn birth_notifications_go_on_legal_obligation_minimised() {
    let p = policies();
    let mut record = read("schemas/examples/birth-notification.json");
    record["maternal_health_notes"] = json!("notes");
    record["mother_mhpss_screening"] = json!({"instrument": "epds"});
    for route in example_routes().iter().filter(|r| r.record_type == BN) {
        let d = p.decide(&route.name, BN, &record);
        assert_eq!(d.decision, Outcome::Deliver, "{}", route.name);
        assert_eq!(d.legal_basis, Some("LEGAL_OBLIGATION"));
        let out = p.apply(&d, &record);
        assert!(out.get("maternal_health_notes").is_none());
        assert!(out.get("mother_mhpss_screening").is_none());
        assert_eq!(out.get("birth_weight"), record.get("birth_weight"));
        assert_eq!(out["child"], record["child"]);
        assert!(
            !p.allowed_categories(&route.name)
                .contains(&Sensitivity::Gbv)
        );
    }
}

#[test]
fn unknown_route_and_wrong_record_type_are_denied() {
    let p = policies();
    assert_eq!(
        p.decide("nowhere", CPC, &case("29")).decision,
        Outcome::Deny
    );
    let d = p.decide(PRIMERO, BN, &case("29"));
    assert_eq!(d.decision, Outcome::Deny);
    assert!(p.allowed_categories("nowhere").is_empty());
}

#[test]
fn permits_reflects_categories_and_drops() {
    let p = policies();
    assert!(p.permits(PRIMERO, "/incidents/*", Sensitivity::Gbv));
    assert!(p.permits(PRIMERO, "/ethnicity", Sensitivity::Ethnicity));
    assert!(!p.permits(PRIMERO, "/some/other", Sensitivity::Gbv));
    let bn = "birth-notification-to-opencrvs";
    assert!(!p.permits(bn, "/birth_weight", Sensitivity::Mhpss));
    assert!(p.permits(bn, "/mother_mhpss_screening", Sensitivity::Mhpss));
}

// --- loading errors -------------------------------------------------------

fn load_one(text: &str) -> Result<load::Policy, Vec<String>> {
    let route = RouteConfig {
        name: PRIMERO.into(),
        record_type: CPC,
        destination: "primero".into(),
    };
    let schemas = SchemaRegistry::load().unwrap();
    load::parse("p.toml", text, &route, &schemas)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

fn primero_text() -> String {
    std::fs::read_to_string(root().join("policies").join(format!("{PRIMERO}.toml"))).unwrap()
}

#[test]
fn unknown_category_and_basis_are_errors_with_lines() {
    let text = primero_text()
        .replace("\"religion\"]", "\"religon\"]")
        .replace("basis = \"CONSENT\"", "basis = \"CONSNET\"");
    let errors = load_one(&text).unwrap_err();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "p.toml:{}: unknown sensitivity",
            line_of("religon")
        ))),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(
            |e| e.starts_with(&format!("p.toml:{}:", line_of("CONSNET")))
                && e.contains("unknown legal basis")
        ),
        "{errors:?}"
    );
}

#[test]
fn a_gbv_field_left_undropped_is_a_load_error() {
    let text = primero_text().replace("path = \"/gbv_survivor\"", "path = \"/nothing\"");
    let errors = load_one(&text).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/gbv_survivor") && e.contains("gbv")),
        "{errors:?}"
    );
}

#[test]
fn a_route_without_a_policy_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let errors = load(
        dir.path(),
        &example_routes(),
        &SchemaRegistry::load().unwrap(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), example_routes().len());
    assert!(errors[0].to_string().contains("needs a policy file"));
}

#[test]
fn syntax_errors_carry_the_line() {
    let errors = load_one("route = \"x\"\n\npurpose = = 1\n").unwrap_err();
    assert!(errors[0].starts_with("p.toml:3:"), "{errors:?}");
}

// --- redactions -----------------------------------------------------------

#[test]
fn hmac_matches_rfc_4231_test_case_2() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block is hashed first.
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn transforming_redactions_and_pseudonym_key() {
    let text = primero_text().replace(
        "# Redactions, on whichever",
        "[[redactions]]\npath = \"/date_of_birth\"\naction = \"generalise_year\"\nreason = \"r\"\n\n\
         [[redactions]]\npath = \"/registration_date\"\naction = \"generalise_month\"\nreason = \"r\"\n\n\
         [[redactions]]\npath = \"/age_years\"\naction = \"age_band\"\nbands = [0, 5, 10, 15, 18]\nreason = \"r\"\n\n\
         [[redactions]]\npath = \"/source_record_id\"\naction = \"pseudonym\"\nreason = \"r\"\n\n\
         [[redactions]]\npath = \"/case_id_display\"\naction = \"mask\"\nreason = \"r\"\n\n# Redactions, on whichever",
    );
    let policy = load_one(&text).expect("policy loads");
    let mut p = Policies {
        routes: [(PRIMERO.to_string(), policy)].into_iter().collect(),
        pseudonym_keys: Default::default(),
    };
    let record = case("29");
    assert_eq!(
        p.decide(PRIMERO, CPC, &record).decision,
        Outcome::Deny,
        "no key, no delivery"
    );
    p.set_pseudonym_key("primero", b"k".to_vec());
    let d = p.decide(PRIMERO, CPC, &record);
    let out = p.apply(&d, &record);
    assert_eq!(
        out["date_of_birth"],
        json!(record["date_of_birth"].as_str().unwrap()[..4])
    );
    assert_eq!(
        out["registration_date"],
        json!(record["registration_date"].as_str().unwrap()[..7])
    );
    assert_eq!(out["age_years"], json!("15-17"));
    assert_eq!(out["case_id_display"], json!(redact::MASK));
    let id = record["source_record_id"].as_str().unwrap();
    assert_eq!(
        out["source_record_id"],
        json!(hex::encode(hmac_sha256(b"k", id.as_bytes())))
    );
}

#[test]
fn age_bands() {
    let b = [5, 10, 18];
    assert_eq!(redact::age_band(3, &b), "0-4");
    assert_eq!(redact::age_band(10, &b), "10-17");
    assert_eq!(redact::age_band(40, &b), "18+");
}

#[test]
fn apply_is_deterministic() {
    let p = policies();
    let record = case("26");
    let d = p.decide(PRIMERO, CPC, &record);
    assert_eq!(p.apply(&d, &record), p.apply(&d, &record));
    assert_eq!(d, p.decide(PRIMERO, CPC, &record));
}

// --- properties -----------------------------------------------------------

fn flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
}

fn consent_strategy() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("individual"), Just("caregiver"), Just("other")],
        (flag(), flag(), flag(), flag()),
        proptest::sample::subsequence(vec!["family", "authorities", "unhcr", "others"], 0..4),
        proptest::sample::subsequence(vec!["legal_obligation", "consent", "vital_interest"], 0..3),
        0u64..25,
    )
        .prop_map(
            |(subject, (services, disclosure, overridden, withdrawn), sharing, basis, age)| {
                let mut c = serde_json::Map::new();
                c.insert("interview_subject".into(), json!(subject));
                for (k, v) in [
                    ("consent_for_services", services),
                    ("disclosure_other_orgs", disclosure),
                    ("consent_overridden", overridden),
                    ("consent_withdrawn", withdrawn),
                ] {
                    if let Some(v) = v {
                        c.insert(k.into(), json!(v));
                    }
                }
                c.insert("consent_info_sharing".into(), json!(sharing));
                c.insert("legitimate_basis".into(), json!(basis));
                json!({"consent": c, "age_years": age})
            },
        )
}

fn valid_consent(c: &Value, age: u64) -> bool {
    c["consent_withdrawn"] != json!(true)
        && c["consent_for_services"] == json!(true)
        && c["disclosure_other_orgs"] == json!(true)
        && c["consent_info_sharing"]
            .as_array()
            .unwrap()
            .contains(&json!("authorities"))
        && (c["interview_subject"] == "caregiver"
            || (c["interview_subject"] == "individual" && age >= 15))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn full_case_needs_valid_consent_or_a_vital_interest_override(
        generated in consent_strategy(),
        base in prop_oneof![Just("26"), Just("27"), Just("28"), Just("29"), Just("30"), Just("31")],
        uasc in any::<bool>(),
    ) {
        let p = policies();
        let mut record = case(base);
        record["consent"] = generated["consent"].clone();
        record["age_years"] = generated["age_years"].clone();
        if !uasc {
            record.as_object_mut().unwrap().remove("protection_status");
        }
        let d = p.decide(PRIMERO, CPC, &record);
        let out = p.apply(&d, &record);
        let age = generated["age_years"].as_u64().unwrap();
        let c = &generated["consent"];
        let overridden = c["consent_overridden"] == json!(true)
            && c["legitimate_basis"].as_array().unwrap().contains(&json!("vital_interest"));
        if d.decision == Outcome::Deliver && !keys(&out).iter().all(|k| MINIMAL.contains(k)) {
            prop_assert!(valid_consent(c, age) || overridden, "{}", d.rule);
        }
        if d.legal_basis == Some("CONSENT") {
            prop_assert!(valid_consent(c, age));
        }
        if !uasc && !valid_consent(c, age) && !overridden {
            prop_assert_eq!(d.decision, Outcome::Deny);
        }
        prop_assert!(!has_gbv(&out));
    }

    /// `verdict` (acceptance) decides as `decide` does, on every route and
    /// whatever the consent fields say; it only leaves the redactions out.
    #[test]
    fn a_verdict_is_the_decision_without_its_redactions(
        generated in consent_strategy(),
        base in prop_oneof![Just("26"), Just("27"), Just("29"), Just("31"), Just("birth")],
        drop_status in any::<bool>(),
    ) {
        let p = policies();
        let (mut record, record_type) = match base {
            "birth" => (read("schemas/examples/birth-notification.json"), BN),
            case_dir => (case(case_dir), CPC),
        };
        record["consent"] = generated["consent"].clone();
        record["age_years"] = generated["age_years"].clone();
        if drop_status {
            record.as_object_mut().unwrap().remove("protection_status");
        }
        for route in example_routes() {
            let decided = p.decide(&route.name, record_type, &record);
            let verdict = p.verdict(&route.name, record_type, &record, None);
            prop_assert_eq!(verdict, Decision { redactions: Vec::new(), ..decided });
        }
    }

    #[test]
    fn no_gbv_survives_apply_on_any_route(
        concerns in proptest::sample::subsequence(vec!["gbv_survivor", "migrant", "refugee", "other"], 0..4),
        types in proptest::collection::vec(
            prop_oneof![Just(None), Just(Some("rape")), Just(Some("non_gbv")), Just(Some("forced_marriage"))], 0..5),
        rows in proptest::collection::vec(prop_oneof![Just("gbv_survivor"), Just("migrant")], 0..5),
        gbv_flag in any::<bool>(),
    ) {
        let p = policies();
        let mut record = case("26");
        record["protection_concerns"] = json!(concerns);
        record["incidents"] = Value::Array(types.iter().map(|t| match t {
            Some(t) => json!({"violence_type": t, "location": "EX01"}),
            None => json!({"location": "EX01"}),
        }).collect());
        record["protection_concern_details"] =
            Value::Array(rows.iter().map(|r| json!({"concern_type": r})).collect());
        record["gbv_survivor"] = json!(gbv_flag);
        for route in example_routes() {
            let d = p.decide(&route.name, CPC, &record);
            prop_assert!(!has_gbv(&p.apply(&d, &record)), "{}", route.name);
        }
        let d = p.decide(PRIMERO, CPC, &record);
        let gbv_items = concerns.iter().filter(|c| **c == "gbv_survivor").count()
            + types.iter().filter(|t| **t != Some("non_gbv")).count()
            + rows.iter().filter(|r| **r == "gbv_survivor").count()
            + 1;
        prop_assert_eq!(d.redactions.len(), gbv_items);
    }
}

pub(super) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        "[a-z_~/]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("consent".to_string()),
                    Just("incidents".to_string()),
                    Just("protection_concerns".to_string()),
                    Just("protection_status".to_string()),
                    "[a-z_~/]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_json_is_decided_and_applied_without_panic(record in any_json()) {
        let p = policies();
        for route in example_routes() {
            let d = p.decide(&route.name, route.record_type, &record);
            let out = p.apply(&d, &record);
            prop_assert!(d.decision == Outcome::Deny || out.is_object());
            // Only the case schema has GBV fields (records are validated first).
            if route.record_type == CPC {
                prop_assert!(!has_gbv(&out));
            }
        }
    }
}

// --- the policy in plain terms (manifest) ----------------------------------

#[test]
fn summary_states_purpose_bases_consent_rules_and_redactions() {
    let s = policies().summary(PRIMERO).unwrap();
    assert_eq!(s.purpose, "case_management");
    assert_eq!(s.legal_bases, ["CONSENT", "VITAL_INTEREST"]);
    assert!(!s.categories.contains(&Sensitivity::Gbv));
    let c = s.consent.unwrap();
    assert_eq!((c.child.as_str(), c.child_from_age), ("individual", 15));
    assert_eq!(c.caregivers, ["caregiver"]);
    assert_eq!(
        (c.destination.as_str(), c.purpose.as_str()),
        ("primero", "case_management")
    );
    let names: Vec<&str> = s.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "full-case-with-consent",
            "full-case-consent-overridden-vital-interest",
            "uasc-minimal-set-vital-interest"
        ]
    );
    assert_eq!(
        s.rules[2].when,
        ["/protection_status is one of unaccompanied, separated"]
    );
    assert_eq!(s.rules[2].keep.as_ref().map(Vec::len), Some(MINIMAL.len()));
    assert_eq!(s.redactions[3].unless, ["/violence_type is non_gbv"]);
    assert!(policies().summary("nowhere").is_none());
}

#[test]
fn field_policy_says_sent_or_what_happens() {
    let p = policies();
    assert_eq!(p.field_policy(PRIMERO, "/name/given_names").text(), "sent");
    assert_eq!(
        p.field_policy(PRIMERO, "/care_arrangement/type").text(),
        "sent"
    );
    assert_eq!(
        p.field_policy(PRIMERO, "/notes/*/text").text(),
        "not sent under rule uasc-minimal-set-vital-interest"
    );
    let incidents = p.field_policy(PRIMERO, "/incidents/*");
    assert_eq!(
        incidents.redactions,
        ["drop unless /violence_type is non_gbv"]
    );
    assert_eq!(
        p.field_policy(PRIMERO, "/gbv_survivor").redactions,
        ["drop"]
    );
    // Reading a whole object: the parts the policy removes are named.
    let whole = p.field_policy(PRIMERO, "");
    assert!(
        whole
            .redactions
            .iter()
            .any(|r| r == "drop of /gbv_survivor"),
        "{whole:?}"
    );
    assert!(whole.limited_by_rules[0].starts_with("only part of it under rule"));
    let bn = "birth-notification-to-opencrvs";
    assert_eq!(p.field_policy(bn, "/child/name").text(), "sent");
    assert_eq!(p.field_policy(bn, "/maternal_health_notes").text(), "drop");
}

#[test]
fn summary_describes_transforming_actions() {
    let text = primero_text().replace(
        "# Redactions, on whichever",
        "[[redactions]]\npath = \"/age_years\"\naction = \"age_band\"\nbands = [5, 10, 18]\nreason = \"r\"\n\n# Redactions, on whichever",
    );
    let policy = load_one(&text).expect("policy loads");
    let p = Policies {
        routes: [(PRIMERO.to_string(), policy)].into_iter().collect(),
        pseudonym_keys: Default::default(),
    };
    assert_eq!(
        p.field_policy(PRIMERO, "/age_years").redactions,
        ["age_band (0-4, 5-9, 10-17, 18+)"]
    );
}

/// The minimised record `decide_minimised` makes on the way is what `apply`
/// makes from the decision, and it is a copy only when something was redacted.
#[test]
fn the_minimised_record_is_made_once_and_copied_only_when_redacted() {
    let policies = policies();
    let route = "birth-notification-to-opencrvs";
    let with_notes = read("schemas/examples/birth-notification.json");
    assert!(with_notes.get("maternal_health_notes").is_some());
    let (decision, minimised) =
        policies.decide_minimised(route, BN, Cow::Borrowed(&with_notes), None);
    let minimised = minimised.expect("the example delivers");
    assert!(matches!(minimised, Cow::Owned(_)));
    assert_eq!(*minimised, policies.apply(&decision, &with_notes));
    assert!(minimised.get("maternal_health_notes").is_none());
    // Owned, the record is redacted in place: the same decision and record.
    let (in_place, moved) =
        policies.decide_minimised(route, BN, Cow::Owned(with_notes.clone()), None);
    assert_eq!(in_place, decision);
    assert_eq!(moved.as_deref(), Some(&*minimised));

    let mut without = with_notes.clone();
    let fields = without.as_object_mut().unwrap();
    fields.remove("maternal_health_notes");
    fields.remove("mother_mhpss_screening");
    let (decision, minimised) = policies.decide_minimised(route, BN, Cow::Borrowed(&without), None);
    assert!(decision.redactions.is_empty());
    assert!(matches!(minimised, Some(Cow::Borrowed(_))));
}
