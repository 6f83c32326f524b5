//! Property tests over every parser of the core (issue #13): arbitrary bytes
//! and structure-aware hostile inputs (near-valid JSON, nesting up to the
//! guard, huge numbers, odd unicode, duplicate keys, a wrong type at every
//! pointer of a real input, storms of array items) reach JSON intake for
//! each source format, config, mapping and policy files, and location lists.
//! Each must answer a value or a typed error, never panic, within a bound
//! generous enough not to flake yet low enough that a quadratic blow-up fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as Cases;
use registry_gateway_core::config::raw::RawConfig;
use registry_gateway_core::config::{Config, Overrides, validate};
use registry_gateway_core::locations::{LocationList, Lookup};
use registry_gateway_core::pipeline::Pipeline;
use serde_json::{Map, Value, json};

/// Per case. A linear parser takes milliseconds on these inputs.
const BOUND: Duration = Duration::from_secs(2);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_config_path() -> PathBuf {
    repo().join("deploy/gateway.example.toml")
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
        Pipeline::load(Arc::new(config)).unwrap()
    })
}

/// Run `f`, failing the case when it takes longer than [`BOUND`].
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    prop_assert!(took < BOUND, "{what} took {took:?}");
    Ok(out)
}

// ---------------------------------------------------------------- inputs

/// (source name, payload) of every conformance case whose input is JSON.
fn real_inputs() -> &'static [(String, Value)] {
    static INPUTS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let mut out = Vec::new();
        let mut dirs: Vec<_> = std::fs::read_dir(repo().join("conformance/cases"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let case: toml::Table =
                toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap()).unwrap();
            let source = case["source"].as_str().unwrap().to_string();
            let Ok(bytes) = std::fs::read(dir.join("input.json")) else {
                continue;
            };
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                out.push((source, value));
            }
        }
        assert!(out.len() >= 40, "only {} inputs", out.len());
        out
    })
}

/// Text that breaks assumptions: controls, bidi overrides, BOMs, lone
/// combining marks, astral characters, path tricks, very long runs.
fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("\u{0}".into()),
        Just("\u{202e}gpj.exe\u{202c}".into()),
        Just("\u{feff}\u{200b}\u{2028}\u{2029}".into()),
        Just("e\u{301}\u{301}\u{301}\u{301}".into()),
        Just("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👨‍👩‍👧‍👦".into()),
        Just("../../etc/passwd%00".into()),
        Just("2026-02-30".into()),
        Just("9999-12-31T23:59:59.999999999+14:00".into()),
        Just("-0001-01-01".into()),
        (1usize..20_000).prop_map(|n| "a".repeat(n)),
        (1usize..2_000).prop_map(|n| "ß\u{301}".repeat(n)),
    ]
}

fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        Just(json!(1.7976931348623157e308)),
        Just(json!(-0.0)),
        Just(json!(5e-324)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        odd_string().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Any JSON value, at most a few levels deep.
fn hostile_value() -> impl Strategy<Value = Value> {
    hostile_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(odd_string(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `depth` arrays/objects around a leaf: nesting right up to the guard.
fn nested(depth: usize, objects: bool, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| {
        if objects {
            json!({ "a": inner })
        } else {
            json!([inner])
        }
    })
}

/// Every JSON pointer in `value`, root first.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match value {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}/{i}"), out);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(v, format!("{at}/{key}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// A change to a real input, applied to its text.
#[derive(Debug, Clone)]
enum Edit {
    /// The value at a pointer replaced (a wrong type, an odd value).
    Replace(Index, Value),
    /// The value at a pointer written as this raw text (numbers JSON allows
    /// but no machine type holds, or broken syntax).
    Raw(Index, &'static str),
    /// The value at a pointer removed.
    Remove(Index),
    /// An object at a pointer given a key twice (the second one hostile).
    Duplicate(Index, Value),
    /// An array at a pointer filled with copies of its first item (reference
    /// and subform storms), up to the width guard.
    Widen(Index, usize),
    /// The value at a pointer nested `depth` levels down.
    Deepen(Index, usize, bool),
    /// The text cut short or one byte changed (near-valid JSON).
    Cut(Index),
    Flip(Index, u8),
}

const RAW: &[&str] = &[
    "1e400",
    "-1e400",
    "1E-400",
    "123456789012345678901234567890123456789",
    "-0",
    "0.0000000000000000000000000000001",
    "18446744073709551616",
    "-9223372036854775809",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"\\u0000\"",
    "[",
    "{\"a\":}",
    "tru",
    "NaN",
    "Infinity",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), hostile_value()).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => (any::<Index>(), prop::sample::select(RAW)).prop_map(|(i, r)| Edit::Raw(i, r)),
        1 => any::<Index>().prop_map(Edit::Remove),
        2 => (any::<Index>(), hostile_value()).prop_map(|(i, v)| Edit::Duplicate(i, v)),
        1 => (any::<Index>(), 1usize..=1000).prop_map(|(i, n)| Edit::Widen(i, n)),
        1 => (any::<Index>(), 1usize..=28, any::<bool>()).prop_map(|(i, d, o)| Edit::Deepen(i, d, o)),
        1 => any::<Index>().prop_map(Edit::Cut),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
    ]
}

/// `value` as JSON text, with `raw` written in place of the value at `at`
/// and `dup` added as a second copy of the first key of the object at `at`.
fn write(
    value: &Value,
    here: &str,
    at: &str,
    raw: Option<&str>,
    dup: Option<&Value>,
    out: &mut String,
) {
    if here == at
        && let Some(raw) = raw
    {
        out.push_str(raw);
        return;
    }
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, &format!("{here}/{i}"), at, raw, dup, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (n, (k, v)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                let key = k.replace('~', "~0").replace('/', "~1");
                write(v, &format!("{here}/{key}"), at, raw, dup, out);
            }
            if here == at
                && let (Some(dup), Some(first)) = (dup, map.keys().next())
            {
                out.push(',');
                out.push_str(&Value::from(first.as_str()).to_string());
                out.push(':');
                out.push_str(&dup.to_string());
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes of `input` after `edit`.
fn apply(input: &Value, edit: &Edit) -> Vec<u8> {
    let all = pointers(input);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    let mut value = input.clone();
    let text = |v: &Value, at: &str, raw: Option<&str>, dup: Option<&Value>| {
        let mut out = String::new();
        write(v, "", at, raw, dup, &mut out);
        out.into_bytes()
    };
    match edit {
        Edit::Replace(i, v) => {
            let at = pick(i);
            text(input, &at, Some(&v.to_string()), None)
        }
        Edit::Raw(i, raw) => text(input, &pick(i), Some(raw), None),
        Edit::Remove(i) => {
            let at = pick(i);
            if let Some((parent, last)) = at.rsplit_once('/')
                && let Some(p) = value.pointer_mut(parent)
            {
                match p {
                    Value::Object(m) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(a) => {
                        if let Ok(n) = last.parse::<usize>()
                            && n < a.len()
                        {
                            a.remove(n);
                        }
                    }
                    _ => {}
                }
            }
            value.to_string().into_bytes()
        }
        Edit::Duplicate(i, v) => {
            // The nearest object at or above the pointer.
            let mut at = pick(i);
            while !matches!(input.pointer(&at), Some(Value::Object(_))) && !at.is_empty() {
                at = at
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
            }
            text(input, &at, None, Some(v))
        }
        Edit::Widen(i, n) => {
            let arrays: Vec<&String> = all
                .iter()
                .filter(|p| matches!(input.pointer(p), Some(Value::Array(a)) if !a.is_empty()))
                .collect();
            if let Some(at) = arrays.get(i.index(arrays.len().max(1)))
                && let Some(Value::Array(a)) = value.pointer_mut(at)
            {
                let first = a[0].clone();
                a.resize(*n, first);
            }
            value.to_string().into_bytes()
        }
        Edit::Deepen(i, depth, objects) => {
            let at = pick(i);
            let leaf = input.pointer(&at).cloned().unwrap_or_default();
            text(
                input,
                &at,
                Some(&nested(*depth, *objects, leaf).to_string()),
                None,
            )
        }
        Edit::Cut(i) => {
            let mut bytes = input.to_string().into_bytes();
            bytes.truncate(i.index(bytes.len() + 1));
            bytes
        }
        Edit::Flip(i, b) => {
            let mut bytes = input.to_string().into_bytes();
            if !bytes.is_empty() {
                let n = i.index(bytes.len());
                bytes[n] = *b;
            }
            bytes
        }
    }
}

/// JSON intake as a request sees it: the guards and the parse, then
/// decoding, mapping and validation for `source`.
fn intake(source: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let pipeline = pipeline();
    let source = &pipeline.config().sources[source];
    timed("parse and canonicalize", || {
        if let Ok(value) = pipeline.parse_json(bytes) {
            let _ = pipeline.canonicalize_reporting(source, &value);
        }
    })
}

const SOURCES: &[&str] = &["canonical", "primero", "fhir-r4"];

proptest! {
    #![proptest_config(Cases::with_cases(256))]

    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let pipeline = pipeline();
        timed("parse_json", || { let _ = pipeline.parse_json(&bytes); })?;
    }

    #[test]
    fn any_json_value_reaches_each_source(value in hostile_value(), source in prop::sample::select(SOURCES)) {
        intake(source, value.to_string().as_bytes())?;
    }
}

proptest! {
    #![proptest_config(Cases::with_cases(192))]

    /// Real inputs (every conformance case) with one hostile edit, sent as
    /// the source they were written for and as the others.
    #[test]
    fn every_real_input_with_one_hostile_edit(case in any::<Index>(), edit in edit(), other in prop::sample::select(SOURCES), as_other in proptest::bool::weighted(0.2)) {
        let inputs = real_inputs();
        let (source, input) = &inputs[case.index(inputs.len())];
        let bytes = apply(input, &edit);
        intake(if as_other { other } else { source }, &bytes)?;
    }
}

proptest! {
    #![proptest_config(Cases::with_cases(32))]

    /// Nesting right up to the guard, as wide as the width guard lets each
    /// level be, at the root of each source's payload.
    #[test]
    fn nesting_and_width_up_to_the_guards(depth in 1usize..=32, width in 1usize..=1000, objects: bool, source in prop::sample::select(SOURCES)) {
        let inner = nested(depth.saturating_sub(2), objects, json!("x"));
        let payload = json!({"resourceType": "Bundle", "record_type": "birth-notification", "data": vec![inner; width]});
        intake(source, payload.to_string().as_bytes())?;
    }
}

// ---------------------------------------------------------------- config

fn example_config_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| std::fs::read_to_string(example_config_path()).unwrap())
}

fn hostile_toml() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        Just(toml::Value::Integer(i64::MAX)),
        Just(toml::Value::Integer(i64::MIN)),
        Just(toml::Value::Integer(0)),
        Just(toml::Value::Integer(-1)),
        any::<f64>().prop_map(toml::Value::Float),
        Just(toml::Value::Float(f64::NAN)),
        Just(toml::Value::Float(f64::INFINITY)),
        Just(toml::Value::Float(1e-300)),
        any::<bool>().prop_map(toml::Value::Boolean),
        odd_string().prop_map(toml::Value::String),
        Just(toml::Value::String("env:".into())),
        Just(toml::Value::String(
            "env:NO_SUCH_VARIABLE_IN_THIS_TEST".into()
        )),
        Just(toml::Value::String("file:/dev/null".into())),
        Just(toml::Value::String("http://[::1".into())),
        Just(toml::Value::String(
            "https://user:pw@example.org:99999/".into()
        )),
        Just(toml::Value::String("0.0.0.0:0".into())),
        Just(toml::Value::Array(vec![])),
        Just(toml::Value::Table(toml::Table::new())),
        Just(
            "1979-05-27T07:32:00Z"
                .parse::<toml::value::Datetime>()
                .unwrap()
        )
        .prop_map(toml::Value::Datetime),
    ]
}

/// Every path to a leaf (or an empty container) of a TOML document.
fn toml_leaves(value: &toml::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        toml::Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                let mut p = at.clone();
                p.push(k.clone());
                toml_leaves(v, p, out);
            }
        }
        toml::Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                let mut p = at.clone();
                p.push(i.to_string());
                toml_leaves(v, p, out);
            }
        }
        _ => out.push(at),
    }
}

fn toml_at<'a>(value: &'a mut toml::Value, path: &[String]) -> Option<&'a mut toml::Value> {
    path.iter().try_fold(value, |v, seg| match v {
        toml::Value::Table(t) => t.get_mut(seg),
        toml::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// `text` (a TOML document) with the leaf `pick` chooses replaced by `with`,
/// or, when `add` is set, a key of that name added beside it.
fn toml_edit(text: &str, pick: &Index, with: toml::Value, add: Option<&str>) -> String {
    let mut doc: toml::Value = toml::from_str(text).unwrap();
    let mut leaves = Vec::new();
    toml_leaves(&doc, Vec::new(), &mut leaves);
    let path = &leaves[pick.index(leaves.len())];
    match add {
        Some(key) => {
            let parent = &path[..path.len().saturating_sub(1)];
            if let Some(toml::Value::Table(t)) = toml_at(&mut doc, parent) {
                t.insert(key.to_string(), with);
            }
        }
        None => {
            if let Some(v) = toml_at(&mut doc, path) {
                *v = with;
            }
        }
    }
    toml::to_string(&doc).unwrap_or_default()
}

fn config_from_text(text: &str) {
    if let Ok(raw) = toml::from_str::<RawConfig>(text) {
        let _ = validate(raw);
    }
}

proptest! {
    #![proptest_config(Cases::with_cases(256))]

    #[test]
    fn any_text_is_a_config_or_its_errors(text in prop_oneof![any::<String>(), "[a-z_.\\[\\]=\" 0-9\n{},:-]{0,400}"]) {
        timed("config", || config_from_text(&text))?;
    }

    /// The example config with one leaf of the wrong type, an odd value or
    /// an absurd number, or an unknown key beside it.
    #[test]
    fn the_example_config_with_one_hostile_value(pick in any::<Index>(), with in hostile_toml(), add in proptest::option::weighted(0.15, "[a-z_]{1,12}")) {
        let text = toml_edit(example_config_text(), &pick, with, add.as_deref());
        timed("config", || config_from_text(&text))?;
    }

    /// The same through `Config::load`, the one way a file is read.
    #[test]
    fn a_hostile_config_file_loads_or_lists_its_errors(pick in any::<Index>(), with in hostile_toml(), cut in proptest::option::weighted(0.2, any::<Index>())) {
        let mut text = toml_edit(example_config_text(), &pick, with, None);
        if let Some(cut) = cut {
            let mut n = cut.index(text.len() + 1);
            while !text.is_char_boundary(n) { n -= 1; }
            text.truncate(n);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, &text).unwrap();
        timed("Config::load", || { let _ = Config::load(&file, &Overrides::default()); })?;
    }
}

// ---------------------------------------------------------------- mapping and policy files

/// A copy of the repository's mappings and policies, and the example config
/// pointing at it, with only `route` kept.
struct Files {
    dir: tempfile::TempDir,
    config: Config,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn files(route: usize) -> Files {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("mappings"), &dir.path().join("mappings"));
    copy_dir(&repo().join("policies"), &dir.path().join("policies"));
    let mut config = pipeline().config().as_ref().clone();
    config.mappings_dir = dir.path().join("mappings");
    config.policies_dir = dir.path().join("policies");
    let kept = config.routes[route % config.routes.len()].clone();
    config.routes = vec![kept];
    Files { dir, config }
}

/// Hostile text in a mapping rule: CEL and paths that nest, run long or
/// name nothing.
fn hostile_rule_text() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        hostile_toml(),
        (1usize..=200).prop_map(|n| toml::Value::String(format!(
            "{}1{}",
            "(".repeat(n),
            ")".repeat(n)
        ))),
        (1usize..=200).prop_map(|n| toml::Value::String(format!("{}1", "-".repeat(n)))),
        (1usize..=200).prop_map(|n| toml::Value::String(vec!["a"; n].join("."))),
        (1usize..=500).prop_map(|n| toml::Value::String(format!("[{}]", vec!["1"; n].join(",")))),
        Just(toml::Value::String("child.*.*.*.*".into())),
        Just(toml::Value::String("size(".into())),
        Just(toml::Value::String("'\\u{110000}'".into())),
    ]
}

fn mapping_files(config: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for route in &config.routes {
        out.push(
            config
                .mappings_dir
                .join("destinations")
                .join(&route.destination)
                .join(format!("{}.toml", route.record_type)),
        );
    }
    let codelists = config.mappings_dir.join("codelists");
    let mut lists: Vec<_> = std::fs::read_dir(codelists)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    lists.sort();
    out.extend(lists.into_iter().take(3));
    out
}

proptest! {
    #![proptest_config(Cases::with_cases(48))]

    /// A mapping or code-list file with one hostile value (or arbitrary
    /// text), loaded with everything else the route needs.
    #[test]
    fn a_hostile_mapping_file_loads_or_lists_its_errors(route in 0usize..8, file in any::<Index>(), pick in any::<Index>(), with in hostile_rule_text(), text in proptest::option::weighted(0.2, any::<String>())) {
        let files = files(route);
        let targets = mapping_files(&files.config);
        let target = &targets[file.index(targets.len())];
        let edited = match text {
            Some(t) => t,
            None => toml_edit(&std::fs::read_to_string(target).unwrap(), &pick, with, None),
        };
        std::fs::write(target, edited).unwrap();
        let schemas = pipeline().schemas().clone();
        timed("mapping::load", || { let _ = registry_gateway_core::mapping::load(&files.config, &schemas); })?;
        drop(files.dir);
    }

    /// A policy file with one hostile value, an unknown key, or arbitrary text.
    #[test]
    fn a_hostile_policy_file_loads_or_lists_its_errors(route in 0usize..8, pick in any::<Index>(), with in hostile_toml(), add in proptest::option::weighted(0.15, "[a-z_]{1,12}"), text in proptest::option::weighted(0.2, any::<String>())) {
        let files = files(route);
        let route = &files.config.routes[0];
        let target = files.config.policies_dir.join(format!("{}.toml", route.name));
        let edited = match text {
            Some(t) => t,
            None => toml_edit(&std::fs::read_to_string(&target).unwrap(), &pick, with, add.as_deref()),
        };
        std::fs::write(&target, edited).unwrap();
        let schemas = pipeline().schemas().clone();
        timed("policy::load", || {
            let _ = registry_gateway_core::policy::load(&files.config.policies_dir, &files.config.routes, &schemas);
        })?;
    }
}

// ---------------------------------------------------------------- location lists

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-10-19T08:00:00Z")
        .unwrap()
        .to_utc()
}

fn real_locations() -> &'static Value {
    static LIST: OnceLock<Value> = OnceLock::new();
    LIST.get_or_init(|| {
        serde_json::from_slice(
            &std::fs::read(repo().join("deploy/locations/examplia-opencrvs.json")).unwrap(),
        )
        .unwrap()
    })
}

/// A FHIR Bundle of Locations built from hostile parts: types, codes,
/// statuses, and `partOf` chains that may loop.
fn hostile_fhir_locations() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(
        &[
            "ADMIN_STRUCTURE",
            "CRVS_OFFICE",
            "HEALTH_FACILITY",
            "OTHER",
            "",
        ][..],
    );
    let entry = (
        0usize..50,
        kind,
        any::<bool>(),
        0usize..50,
        odd_string(),
        hostile_leaf(),
        any::<bool>(),
    );
    prop::collection::vec(entry, 0..300).prop_map(|entries| {
        let items: Vec<Value> = entries
            .into_iter()
            .map(|(id, kind, stu3, parent, code, odd, inactive)| {
                let kind_coding = json!({"coding": [{"code": kind}]});
                json!({"resource": {
                    "resourceType": "Location",
                    "id": id.to_string(),
                    "type": if stu3 { kind_coding } else { json!([kind_coding]) },
                    "identifier": [{"value": code}, {"value": format!("{kind}_{id}")}, {"value": odd}],
                    "partOf": {"reference": format!("Location/{parent}")},
                    "status": if inactive { "inactive" } else { "active" },
                }})
            })
            .collect();
        json!({"resourceType": "Bundle", "entry": items})
    })
}

fn locations_and_lookups(bytes: &[u8], codes: &[String]) -> Result<(), TestCaseError> {
    timed("location list", || {
        if let Ok(list) = LocationList::parse(bytes, now()) {
            for code in codes {
                for lookup in Lookup::ALL {
                    let _ = list.resolve(lookup, code);
                }
            }
        }
    })
}

proptest! {
    #![proptest_config(Cases::with_cases(256))]

    #[test]
    fn any_bytes_are_a_location_list_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..1024), code in odd_string()) {
        locations_and_lookups(&bytes, &[code])?;
    }

    #[test]
    fn the_real_location_list_with_one_hostile_edit(edit in edit(), code in odd_string()) {
        let bytes = apply(real_locations(), &edit);
        locations_and_lookups(&bytes, &[code, "EX0101".into(), "EX010101".into()])?;
    }

    #[test]
    fn hostile_location_bundles_and_lookups(bundle in hostile_fhir_locations(), codes in prop::collection::vec(prop_oneof![(0usize..50).prop_map(|n| n.to_string()), odd_string()], 0..20)) {
        locations_and_lookups(bundle.to_string().as_bytes(), &codes)?;
    }
}

// ---------------------------------------------------------------- the harness reaches the parsers

/// The unedited inputs are accepted or refused as their cases expect, so an
/// edit is what changes the outcome, not a harness that never reaches a decoder.
#[test]
fn unedited_inputs_reach_each_decoder() {
    let pipeline = pipeline();
    let mut accepted = std::collections::BTreeMap::<&str, usize>::new();
    for (source, input) in real_inputs() {
        let config = &pipeline.config().sources[source.as_str()];
        if pipeline.canonicalize(config, input).is_ok() {
            *accepted.entry(source.as_str()).or_default() += 1;
        }
    }
    for source in SOURCES {
        assert!(
            accepted.get(source).copied().unwrap_or(0) >= 3,
            "{source}: {accepted:?}"
        );
    }
}

/// The unedited copies load, so an edit is what a loader refuses.
#[test]
fn unedited_mapping_and_policy_files_load() {
    let schemas = pipeline().schemas().clone();
    for route in 0..pipeline().config().routes.len() {
        let files = files(route);
        assert!(registry_gateway_core::mapping::load(&files.config, &schemas).is_ok());
        assert!(
            registry_gateway_core::policy::load(
                &files.config.policies_dir,
                &files.config.routes,
                &schemas
            )
            .is_ok()
        );
    }
}
