//! The canary property: for random records of each routed type, a unique
//! canary string is planted in every leaf the canonical schema lets hold one;
//! every route of the example config then runs through `pipeline.route`
//! (policy decision, redactions, mapping, encoder), and no canary of a field
//! outside the route's allow-list appears in the bytes it would send. The
//! allow-list is what the mapping names AND the policy lets through
//! unchanged: a dropped, masked or pseudonymised field never appears raw.
//!
//! Besides that derived allow-list, the example policies' own promises are
//! checked directly: no GBV row, no field outside the UASC minimal set under
//! that rule, no maternal health notes or MHPSS screening.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::common::records::birth_notification;
use crate::common::{example_config_path, repo_path};
use registry_gateway::config::{Config, Overrides, RouteConfig, Secret};
use registry_gateway::mapping::{Input, Mapping, MappingError};
use registry_gateway::model::{RecordId, RecordType};
use registry_gateway::pipeline::{
    Canonical, LoadError, Pipeline, RenderError, semantic_violations,
};
use registry_gateway::policy::{Outcome, hmac_sha256};

const PRIMERO: &str = "child-protection-case-to-primero";
const UASC_RULE: &str = "uasc-minimal-set-vital-interest";
const MINIMAL: [&str; 14] = [
    "record_type",
    "record_version",
    "source_record_id",
    "case_id_display",
    "name",
    "identifiers",
    "sex",
    "age_years",
    "date_of_birth",
    "estimated",
    "location_current",
    "protection_status",
    "urgent_protection_concern",
    "care_arrangement",
];
const CASES: u32 = 96;

// --- generated child-protection cases ------------------------------------------

fn consent() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["individual", "caregiver", "other"][..]),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        prop::sample::subsequence(vec!["family", "authorities", "unhcr", "others"], 0..4),
        prop::sample::subsequence(vec!["consent", "vital_interest", "legal_obligation"], 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(subject, (services, disclosure, overridden, withdrawn), sharing, basis, deny)| {
                let mut c = Map::new();
                c.insert("interview_subject".into(), json!(subject));
                c.insert("consent_for_services".into(), json!(services));
                c.insert("disclosure_other_orgs".into(), json!(disclosure));
                c.insert("consent_info_sharing".into(), json!(sharing));
                c.insert("legitimate_basis".into(), json!(basis));
                c.insert("consent_overridden".into(), json!(overridden));
                if overridden {
                    c.insert("override_reason".into(), json!("override reason"));
                }
                c.insert("consent_withdrawn".into(), json!(withdrawn));
                if withdrawn {
                    c.insert("consent_withdrawn_date".into(), json!("2026-10-12"));
                }
                if deny {
                    c.insert("disclosure_deny_details".into(), json!("deny details"));
                }
                Value::Object(c)
            },
        )
}

const CONCERNS: [&str; 5] = [
    "gbv_survivor",
    "migrant",
    "refugee",
    "disabled",
    "living_with_vulnerable_person",
];
const VIOLENCE: [&str; 4] = ["rape", "physical_assault", "forced_marriage", "non_gbv"];

prop_compose! {
    fn child_protection_case()(
        status in proptest::option::of(prop::sample::select(&["unaccompanied", "separated", "other"][..])),
        age in 0i64..18,
        consent in consent(),
        concerns in prop::sample::subsequence(CONCERNS.to_vec(), 0..5),
        details in proptest::collection::vec(prop::sample::select(CONCERNS.to_vec()), 0..4),
        incidents in proptest::collection::vec(proptest::option::of(prop::sample::select(VIOLENCE.to_vec())), 0..4),
        gbv in proptest::option::of(any::<bool>()),
        keep in proptest::collection::vec(prop::bool::weighted(0.8), 32),
    ) -> Value {
        let mut r = read("schemas/examples/child-protection-case.json");
        r["age_years"] = json!(age);
        r["consent"] = consent;
        r["protection_concerns"] = json!(concerns);
        r["protection_concern_details"] = Value::Array(details.iter().enumerate().map(|(i, t)| json!({
            "row_id": format!("row-{i}"), "concern_type": t, "period_identified": "registration",
            "details": "details", "intervention_needed": "follow_up",
            "action_taken": true, "action_taken_details": "action details",
        })).collect());
        r["incidents"] = Value::Array(incidents.iter().enumerate().map(|(i, t)| {
            let mut x = json!({"row_id": format!("inc-{i}"), "location": "EX0402", "description": "narrative"});
            if let Some(t) = t { x["violence_type"] = json!(t); }
            x
        }).collect());
        r["name"]["nickname"] = json!("nickname");
        let o = r.as_object_mut().unwrap();
        match status {
            Some(s) => { o.insert("protection_status".into(), json!(s)); }
            None => { o.remove("protection_status"); }
        }
        match gbv {
            Some(g) => { o.insert("gbv_survivor".into(), json!(g)); }
            None => { o.remove("gbv_survivor"); }
        }
        // Drop optional fields at random; record_type, record_version and sex are required.
        let optional: Vec<String> = o.keys()
            .filter(|k| !["record_type", "record_version", "sex"].contains(&k.as_str()))
            .cloned().collect();
        for (k, keep) in optional.iter().zip(keep) {
            if !keep { o.remove(k); }
        }
        r
    }
}

fn read(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_path(rel)).unwrap()).unwrap()
}

// --- planting canaries --------------------------------------------------------------

/// `KNRY0042Q`: fixed width, so no canary is part of another; its letters
/// are not hex digits, so no pseudonym can contain one.
fn canary(n: usize) -> String {
    format!("KNRY{n:04}Q")
}

fn leaves(v: &Value, pointer: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            leaves(
                c,
                format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| leaves(c, format!("{pointer}/{i}"), out)),
        Value::String(_) | Value::Number(_) => out.push((pointer, v.clone())),
        _ => {}
    }
}

fn under(pointer: &str, prefix: &str) -> bool {
    pointer == prefix
        || pointer
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// A record with canaries, and where each was planted.
struct Planted {
    record: Value,
    canaries: BTreeMap<String, String>,
    originals: BTreeMap<String, Value>,
}

impl Planted {
    /// Plant a canary in every string and number leaf, then put back the
    /// original wherever the schema (or a semantic rule) refuses a canary.
    fn new(pipeline: &Pipeline, rt: RecordType, record: &Value) -> Option<Planted> {
        let mut found = Vec::new();
        leaves(record, String::new(), &mut found);
        let mut planted = Planted {
            record: record.clone(),
            canaries: BTreeMap::new(),
            originals: BTreeMap::new(),
        };
        for (i, (pointer, original)) in found.into_iter().enumerate() {
            *planted.record.pointer_mut(&pointer)? = json!(canary(i));
            planted.canaries.insert(canary(i), pointer.clone());
            planted.originals.insert(pointer, original);
        }
        for _ in 0..6 {
            let mut violations = pipeline.schemas().validate(rt, &planted.record);
            violations.extend(semantic_violations(rt, &planted.record));
            if violations.is_empty() {
                return Some(planted);
            }
            for v in violations {
                planted.revert(|p| under(p, &v.pointer));
            }
        }
        None
    }

    fn revert(&mut self, hit: impl Fn(&str) -> bool) {
        let back: Vec<(String, String)> = self
            .canaries
            .iter()
            .filter(|(_, p)| hit(p))
            .map(|(c, p)| (c.clone(), p.clone()))
            .collect();
        for (c, p) in back {
            if let (Some(slot), Some(original)) =
                (self.record.pointer_mut(&p), self.originals.get(&p))
            {
                *slot = original.clone();
            }
            self.canaries.remove(&c);
        }
    }
}

/// Does pattern `/incidents/*` name `pointer` `/incidents/3/description`?
fn names(pattern: &str, pointer: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let ptr: Vec<&str> = pointer.split('/').collect();
    pat.len() <= ptr.len() && pat.iter().zip(&ptr).all(|(a, b)| a == b || *a == "*")
}

/// The record fields a mapping names: its inputs, and what its expressions
/// read from `record` (as pointer patterns).
fn named_fields(mapping: &Mapping) -> Vec<String> {
    let mut out = Vec::new();
    for rule in &mapping.rules {
        if let Input::Field(path) = &rule.input {
            out.push(format!("/{path}"));
        }
        if let Some(e) = &rule.expr {
            out.extend(expression_reads(&e.source));
        }
    }
    out
}

fn expression_reads(source: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    source
        .match_indices("record.")
        .map(|(at, _)| {
            let rest = &source[at + "record.".len()..];
            let path: String = rest.chars().take_while(|c| ident(*c)).collect();
            format!("/{}", path.trim_end_matches('.').replace('.', "/"))
        })
        .collect()
}

// --- the property ------------------------------------------------------------------

#[derive(Default, Debug)]
struct Tally {
    records: usize,
    skipped: usize,
    rendered: BTreeMap<String, usize>,
    canaries_sent: usize,
    gbv_canaries_checked: usize,
    minimal_set_outputs: usize,
    full_case_outputs: usize,
    transformed_seen: usize,
}

fn pipeline_with(policies_dir: Option<&Path>) -> Pipeline {
    pipeline_with_keys(policies_dir, &BTreeMap::new())
}

/// The example config, its policies from `policies_dir`, and pseudonym keys
/// set the way an operator sets them: `destinations.<name>.pseudonym_key`.
fn pipeline_with_keys(policies_dir: Option<&Path>, keys: &BTreeMap<&str, &[u8]>) -> Pipeline {
    let mut config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    if let Some(dir) = policies_dir {
        config.policies_dir = dir.to_path_buf();
    }
    for (destination, key) in keys {
        let key = String::from_utf8(key.to_vec()).expect("test keys are text");
        config
            .destinations
            .get_mut(*destination)
            .expect("a destination of the example config")
            .pseudonym_key = Some(Secret::new(key));
    }
    Pipeline::load(Arc::new(config)).unwrap()
}

/// Run `record` through every route of its type and check what leaves.
fn check_record(
    pipeline: &Pipeline,
    rt: RecordType,
    record: &Value,
    tally: &mut Tally,
    keys: &BTreeMap<&str, &[u8]>,
) -> Result<(), TestCaseError> {
    tally.records += 1;
    let Some(mut planted) = Planted::new(pipeline, rt, record) else {
        tally.skipped += 1;
        return Ok(());
    };
    let routes: Vec<&RouteConfig> = pipeline.config().routes_for(rt).collect();
    // A canary the mapping cannot code (a code list has no entry for it) is
    // put back, and every route runs again on the same record.
    let outputs = 'attempt: loop {
        let mut outputs = Vec::new();
        let canonical = Canonical {
            record_type: rt,
            record: planted.record.clone(),
        };
        for route in &routes {
            let timestamp = canonical
                .stated_time()
                .unwrap_or(chrono::DateTime::UNIX_EPOCH);
            let ctx = pipeline.context(
                route,
                RecordId(uuid::Uuid::from_u128(7)),
                &canonical,
                timestamp,
                1,
                canonical.subject("canary"),
            );
            let routed = pipeline.route(route, std::borrow::Cow::Borrowed(&canonical), &ctx);
            // A planted place code is not in the registry's location list:
            // the route is denied naming the path; plant no canary there.
            let unknown_place = (routed.decision.rule == "location-list")
                .then(|| place_path(&routed.decision.reason))
                .flatten();
            match (routed.rendered, unknown_place) {
                (_, Some(from))
                | (
                    Some(Err(RenderError::Mapping {
                        source: MappingError::NoCode { from, .. },
                        ..
                    })),
                    None,
                ) => {
                    let from = format!("/{from}");
                    let before = planted.canaries.len();
                    planted.revert(|p| names(&from, p));
                    prop_assert!(
                        planted.canaries.len() < before,
                        "{} refused a value that is no canary",
                        route.name
                    );
                    continue 'attempt;
                }
                (other, None) => outputs.push((*route, routed.decision, other)),
            }
        }
        break outputs;
    };

    for (route, decision, rendered) in outputs {
        let text = format!("{} {:?}", decision.reason, decision.redactions).to_lowercase();
        prop_assert!(
            !planted
                .canaries
                .keys()
                .any(|c| text.contains(&c.to_lowercase())),
            "{}: a decision carries a value",
            route.name
        );
        let Some(Ok(encoded)) = rendered else {
            continue;
        };
        prop_assert_eq!(decision.decision, Outcome::Deliver);
        *tally.rendered.entry(route.name.clone()).or_default() += 1;
        let bytes = String::from_utf8_lossy(&encoded.bytes).to_lowercase();
        let sent: Vec<(&String, &String)> = planted
            .canaries
            .iter()
            .filter(|(c, _)| bytes.contains(&c.to_lowercase()))
            .collect();
        tally.canaries_sent += sent.len();

        // The allow-list: canaries still in the minimised record, at a field the mapping names.
        let minimised = pipeline.policies().apply(&decision, &planted.record);
        let mut kept = Vec::new();
        leaves(&minimised, String::new(), &mut kept);
        let mapping = &pipeline.mappings().outbound[&route.name];
        let named = named_fields(mapping);
        let allowed: BTreeMap<String, String> = kept
            .into_iter()
            .filter_map(|(p, v)| Some((v.as_str()?.to_string(), p)))
            .filter(|(v, p)| planted.canaries.contains_key(v) && named.iter().any(|n| names(n, p)))
            .collect();
        for (c, origin) in &sent {
            prop_assert!(
                allowed.contains_key(*c),
                "{}: {origin} left, but the policy removed or transformed it, or the mapping does not name it (rule {})",
                route.name,
                decision.rule
            );
        }

        // The example policies' promises, checked without the policy engine.
        if route.name == PRIMERO {
            for (c, origin) in &planted.canaries {
                if gbv_row(&planted.record, origin) {
                    tally.gbv_canaries_checked += 1;
                    prop_assert!(!bytes.contains(&c.to_lowercase()), "GBV left: {origin}");
                }
            }
            if decision.rule == UASC_RULE {
                tally.minimal_set_outputs += 1;
                for (c, origin) in &sent {
                    let top = origin.split('/').nth(1).unwrap_or("");
                    prop_assert!(
                        MINIMAL.contains(&top),
                        "{origin} left with {c} under the minimal set"
                    );
                }
            } else {
                tally.full_case_outputs += 1;
            }
        }
        if rt == RecordType::BirthNotification {
            for (_, origin) in &sent {
                prop_assert!(
                    !under(origin, "/maternal_health_notes")
                        && !under(origin, "/mother_mhpss_screening"),
                    "{}: {origin} left",
                    route.name
                );
            }
        }
        // Transformed fields: their pseudonym or mask leaves, never the value.
        if let Some(key) = keys.get(route.destination.as_str()) {
            for (c, origin) in &planted.canaries {
                let Some(action) = decision
                    .redactions
                    .iter()
                    .find(|r| r.pointer == *origin && r.action.as_str() != "drop")
                    .map(|r| r.action.as_str())
                else {
                    continue;
                };
                prop_assert!(!bytes.contains(&c.to_lowercase()), "{origin} left raw");
                let replacement = match action {
                    "pseudonym" => hex::encode(hmac_sha256(key, c.as_bytes())),
                    _ => "redacted".to_string(),
                };
                if bytes.contains(&replacement) {
                    tally.transformed_seen += 1;
                }
            }
        }
    }
    Ok(())
}

/// Is `pointer` inside a GBV row: an incident not typed non_gbv, or a
/// concern-detail row of type gbv_survivor?
fn gbv_row(record: &Value, pointer: &str) -> bool {
    let parts: Vec<&str> = pointer.split('/').collect();
    let (Some(list), Some(index)) = (parts.get(1), parts.get(2)) else {
        return false;
    };
    let row = record.pointer(&format!("/{list}/{index}"));
    match *list {
        "incidents" => row.is_some_and(|r| r.get("violence_type") != Some(&json!("non_gbv"))),
        "protection_concern_details" => {
            row.is_some_and(|r| r.get("concern_type") == Some(&json!("gbv_survivor")))
        }
        _ => false,
    }
}

fn run<S: Strategy<Value = Value>>(
    pipeline: &Pipeline,
    rt: RecordType,
    strategy: S,
    keys: &BTreeMap<&str, &[u8]>,
) -> Tally {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: CASES,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    runner
        .run(&strategy, |record| {
            check_record(pipeline, rt, &record, &mut tally.borrow_mut(), keys)
        })
        .unwrap();
    let tally = tally.into_inner();
    eprintln!("{rt:?}: {tally:?}");
    // The property is worth something only if canaries were planted and records got through.
    assert!(tally.skipped * 10 <= tally.records, "{tally:?}");
    assert!(tally.canaries_sent > 0, "{tally:?}");
    for route in pipeline.config().routes_for(rt) {
        assert!(
            tally.rendered.get(&route.name).copied().unwrap_or(0) > 0,
            "{} never rendered: {tally:?}",
            route.name
        );
    }
    tally
}

#[test]
fn no_birth_notification_canary_outside_a_routes_allow_list_leaves() {
    let pipeline = pipeline_with(None);
    run(
        &pipeline,
        RecordType::BirthNotification,
        birth_notification(),
        &BTreeMap::new(),
    );
}

#[test]
fn no_case_canary_outside_the_allow_list_leaves_and_gbv_never_does() {
    let pipeline = pipeline_with(None);
    let tally = run(
        &pipeline,
        RecordType::ChildProtectionCase,
        child_protection_case(),
        &BTreeMap::new(),
    );
    assert!(tally.gbv_canaries_checked > 0, "{tally:?}");
    assert!(
        tally.minimal_set_outputs > 0 && tally.full_case_outputs > 0,
        "{tally:?}"
    );
}

/// The example policies neither mask nor pseudonymise: add both, to fields
/// the mappings send, and check that only the transformed value leaves.
#[test]
fn masked_and_pseudonymised_fields_never_leave_raw() {
    let dir = tempfile::tempdir().unwrap();
    let extra: [(&str, &str); 2] = [
        (
            PRIMERO,
            "/source_record_id\"\naction = \"pseudonym\"\nreason = \"test\"\n\n[[redactions]]\npath = \"/name/nickname\"\naction = \"mask\"\nreason = \"test\"\n\n[[redactions]]\npath = \"/care_arrangement/caregiver_name",
        ),
        (
            "birth-notification-to-opencrvs",
            "/mother/name/given_names\"\naction = \"pseudonym\"\nreason = \"test\"\n\n[[redactions]]\npath = \"/child/name/family_name",
        ),
    ];
    for entry in std::fs::read_dir(repo_path("policies")).unwrap().flatten() {
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        let route = entry
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if let Some((_, paths)) = extra.iter().find(|(r, _)| *r == route) {
            text.push_str(&format!(
                "\n[[redactions]]\npath = \"{paths}\"\naction = \"mask\"\nreason = \"test\"\n"
            ));
        }
        std::fs::write(dir.path().join(entry.file_name()), text).unwrap();
    }
    let keys: BTreeMap<&str, &[u8]> = [
        ("primero", &b"key-primero-0123456789"[..]),
        ("opencrvs", &b"key-opencrvs-0123456789"[..]),
    ]
    .into_iter()
    .collect();
    let pipeline = pipeline_with_keys(Some(dir.path()), &keys);
    let cases = run(
        &pipeline,
        RecordType::ChildProtectionCase,
        child_protection_case(),
        &keys,
    );
    let births = run(
        &pipeline,
        RecordType::BirthNotification,
        birth_notification(),
        &keys,
    );
    assert!(cases.transformed_seen > 0, "{cases:?}");
    assert!(births.transformed_seen > 0, "{births:?}");
}

/// The input path of a location-list denial: `<code>: line <n>: <path>: <why>`.
fn place_path(reason: &str) -> Option<String> {
    let mut parts = reason.split(": ");
    let _code = parts.next()?;
    parts.next()?.strip_prefix("line ")?;
    parts.next().map(str::to_string)
}

/// The load-time category check holds what a mapping's conditions and
/// computed values read of the record to the route's policy, not only its
/// `from` paths. Here the OpenCRVS policy no longer allows `health` and keeps
/// the birth weight out with a field set (not a drop): a rule that reads it
/// through `when` or `expr` refuses the mapping, naming file, line, path and
/// category; the same rule reading nothing sensitive loads.
#[test]
fn a_condition_or_expression_reading_a_category_the_policy_keeps_out_refuses_the_mapping() {
    let cases = [
        ("value = 3.2\nwhen = \"has(record.birth_weight)\"", true),
        (
            "expr = \"double(record.birth_weight.value) / 1000.0\"",
            true,
        ),
        ("value = 3.2\nwhen = \"has(record.child.sex)\"", false),
    ];
    for (rule, refused) in cases {
        let dir = mappings_with_weight_rule(rule);
        copy_tree(&repo_path("policies"), &dir.path().join("policies"));
        let policy = dir
            .path()
            .join("policies/birth-notification-to-opencrvs.toml");
        let text = std::fs::read_to_string(&policy).unwrap();
        let keep = "keep = [\"/record_type\", \"/record_version\", \"/source_record_id\", \"/notified_at\", \"/notifier\", \"/child\", \"/birth_type\", \"/birth_order\", \"/attendant_at_birth\", \"/mother\", \"/father\", \"/father_details_not_available\", \"/informant\", \"/legal_basis\", \"/multiple_birth_siblings\"]";
        let edited = text
            .replace(
                "categories = [\"health\", \"displacement\"]",
                "categories = [\"displacement\"]",
            )
            .replace(
                "basis = \"LEGAL_OBLIGATION\"\n",
                &format!("basis = \"LEGAL_OBLIGATION\"\n{keep}\n"),
            );
        assert_ne!(edited, text, "the policy's text moved");
        std::fs::write(&policy, edited).unwrap();

        let mut config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
        config.mappings_dir = dir.path().join("mappings");
        config.policies_dir = dir.path().join("policies");
        match Pipeline::load(Arc::new(config)) {
            Err(LoadError::Categories(errors)) if refused => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert!(
                    lines
                        .iter()
                        .any(|l| l.contains("opencrvs/birth-notification.toml:")
                            && l.contains("reads birth_weight")
                            && l.contains("health")
                            && l.contains("birth-notification-to-opencrvs")),
                    "{rule}: {lines:?}"
                );
            }
            Ok(_) if !refused => {}
            Ok(_) => panic!("{rule}: loaded"),
            Err(e) => panic!("{rule}: {e}"),
        }
    }
}

/// The manifest tells a data-protection officer which categories a rule
/// reads, its condition included: a constant sent only when the record holds
/// a birth weight tells the registry something of the child's health. Before,
/// only a rule's `from` counted; a condition on a tagged field went unlisted.
#[test]
fn the_manifest_lists_the_categories_a_rule_condition_reads() {
    let cases = [
        (
            "value = 3.2\nwhen = \"has(record.birth_weight)\"",
            vec!["health"],
        ),
        (
            "value = 3.2\nwhen = \"record.birth_weight.value > 0\"",
            vec!["health"],
        ),
        ("value = 3.2\nwhen = \"has(record.child.sex)\"", vec![]),
    ];
    for (rule, categories) in cases {
        let dir = mappings_with_weight_rule(rule);
        let mut config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
        config.mappings_dir = dir.path().join("mappings");
        let pipeline = Pipeline::load(Arc::new(config)).unwrap();
        let manifest = registry_gateway::manifest::build(&pipeline);
        let route = manifest
            .routes
            .iter()
            .find(|r| r.route == "birth-notification-to-opencrvs")
            .unwrap();
        let field = route
            .fields
            .iter()
            .find(|f| f.to == "declaration/child.weightAtBirth")
            .unwrap();
        let listed: Vec<&str> = field.sensitivity.iter().map(|s| s.as_str()).collect();
        assert_eq!(listed, categories, "{rule}");
        // What the policy does to the value: a constant carries no record data.
        assert_eq!(field.policy, "sent", "{rule}");
    }
}

/// A copy of the shipped mappings in a temporary folder (`mappings/`), the
/// OpenCRVS 2.x birth weight rule's input and expression replaced by `rule`.
fn mappings_with_weight_rule(rule: &str) -> tempfile::TempDir {
    let weight_rule = "from = \"birth_weight\"\nexpr = \"value.unit == 'g' ? double(value.value) / 1000.0 : double(value.value)\"";
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo_path("mappings"), &dir.path().join("mappings"));
    let mapping = dir
        .path()
        .join("mappings/destinations/opencrvs/birth-notification.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(text.contains(weight_rule), "the weight rule moved");
    std::fs::write(&mapping, text.replace(weight_rule, rule)).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
