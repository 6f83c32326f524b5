use proptest::prelude::*;
use serde_json::{Value, json};

use super::oracle::check_shape;
use super::*;

/// The verdict as a comparable value: the tree, or the shape problem, or
/// that the text is malformed.
#[derive(Debug, PartialEq)]
enum Verdict {
    Parsed(Value),
    Refused(ShapeError),
    Malformed,
}

fn verdict(text: &str, max_depth: usize) -> Verdict {
    match parse_bounded(text, max_depth) {
        Ok(value) => Verdict::Parsed(value),
        Err(ParseError::Shape(shape)) => Verdict::Refused(shape),
        Err(ParseError::Malformed(_)) => Verdict::Malformed,
    }
}

/// What the former guard and serde_json's own parse decided together.
fn former_verdict(text: &str, max_depth: usize) -> Verdict {
    match check_shape(text.as_bytes(), max_depth) {
        Err(shape) => Verdict::Refused(shape),
        Ok(()) => match serde_json::from_str(text) {
            Ok(value) => Verdict::Parsed(value),
            Err(_) => Verdict::Malformed,
        },
    }
}

fn wide(value: &Value) -> Option<(String, &'static str)> {
    match verdict(&serde_json::to_string(value).unwrap(), 64) {
        Verdict::Refused(ShapeError::TooWide(v)) => Some((v.pointer, v.code)),
        Verdict::Parsed(parsed) => {
            assert_eq!(&parsed, value);
            None
        }
        other => panic!("{other:?}"),
    }
}

fn nested(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

#[test]
fn counts_nesting_outside_strings_only() {
    let deep = |text: &str, max| verdict(text, max) == Verdict::Refused(ShapeError::TooDeep);
    assert!(!deep(r#"{"a":[1,{"b":2}]}"#, 3));
    assert!(deep(r#"{"a":[1,{"b":2}]}"#, 2));
    assert!(!deep(r#"{"a":"[[[[[[{{{{"}"#, 1));
    assert!(!deep(r#"{"a":"\"[[[["}"#, 1));
    // Unclosed: refused where the bound is passed, before the end is missed.
    assert!(deep(&"[".repeat(10_000), 64));
}

#[test]
fn wide_arrays_and_objects_are_named_by_pointer() {
    assert_eq!(wide(&json!({"a": [1, 2, 3], "b": {"c": 1}})), None);
    assert_eq!(
        wide(&json!({"a": {"b": vec![0; MAX_ARRAY_ITEMS + 1]}})),
        Some(("/a/b".into(), "too_many_items"))
    );
    assert_eq!(wide(&json!(vec![0; MAX_ARRAY_ITEMS])), None);
    let keys: Map<String, Value> = (0..=MAX_OBJECT_KEYS)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    assert_eq!(
        wide(&json!([{"z": 1}, { "x/y": Value::Object(keys) }])),
        Some(("/1/x~1y".into(), "too_many_keys"))
    );
    let wide_under = json!({"a,\"b\u{e9}": {"c": vec![json!("x,y"); MAX_ARRAY_ITEMS + 1]}});
    assert_eq!(
        wide(&wide_under),
        Some(("/a,\"b\u{e9}/c".into(), "too_many_items"))
    );
}

#[test]
fn the_member_past_a_bound_is_not_read() {
    // Were the 1001st item parsed, this would be malformed or too deep.
    let items = vec!["0"; MAX_ARRAY_ITEMS].join(",");
    for past in ["x", "[[[[[[[[[[", "\"unterminated"] {
        let text = format!(r#"{{"a":[{items},{past}"#);
        match verdict(&text, 4) {
            Verdict::Refused(ShapeError::TooWide(v)) => {
                assert_eq!((v.pointer.as_str(), v.code), ("/a", "too_many_items"))
            }
            other => panic!("{past}: {other:?}"),
        }
    }
    let keys: Vec<String> = (0..MAX_OBJECT_KEYS)
        .map(|i| format!(r#""k{i}":0"#))
        .collect();
    let text = format!("{{{},\"last\":[[[[[[", keys.join(","));
    assert!(matches!(
        verdict(&text, 3),
        Verdict::Refused(ShapeError::TooWide(v)) if v.code == "too_many_keys" && v.pointer.is_empty()
    ));
}

#[test]
fn a_repeated_key_keeps_its_last_value_as_serde_json_does() {
    let text = r#"{"b":1,"a":{"x":1},"b":[2],"a":null}"#;
    assert_eq!(
        verdict(text, 8),
        Verdict::Parsed(serde_json::from_str(text).unwrap())
    );
    assert_eq!(
        verdict(text, 8),
        Verdict::Parsed(json!({"a": null, "b": [2]}))
    );
}

#[test]
fn malformed_text_is_reported_where_serde_json_reports_it() {
    for text in [
        "",
        "{",
        "[1,]",
        r#"{"a" 1}"#,
        "[1] 2",
        "nul",
        r#""\x""#,
        "[1e999999]",
    ] {
        let ours = match parse_bounded(text, 8) {
            Err(ParseError::Malformed(e)) => (e.line(), e.column()),
            other => panic!("{text}: {other:?}"),
        };
        let theirs = serde_json::from_str::<Value>(text).unwrap_err();
        assert_eq!(ours, (theirs.line(), theirs.column()), "{text}");
    }
    // Bytes that are not UTF-8 too.
    let bytes = b"{\"a\":\"\xff\"}";
    let ours = match parse_bounded_bytes(bytes, 8) {
        Err(ParseError::Malformed(e)) => (e.line(), e.column()),
        other => panic!("{other:?}"),
    };
    let theirs = serde_json::from_slice::<Value>(bytes).unwrap_err();
    assert_eq!(ours, (theirs.line(), theirs.column()));
}

/// What the bounds stand for: the tree's own widths, walked after parsing.
fn widest(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.len() > MAX_ARRAY_ITEMS || items.iter().any(widest),
        Value::Object(map) => map.len() > MAX_OBJECT_KEYS || map.values().any(widest),
        _ => false,
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z,\\[\\]{}\"\\\\/~\u{e9}\u{1F600}\n]{0,6}".prop_map(Value::String),
    ]
}

/// JSON values some of whose arrays and objects sit around the bounds.
fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 8, 4, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..4), 0usize..4).prop_map(|(items, pad)| {
                let mut items = items;
                // 0: as drawn; 1-3: one under MAX_ARRAY_ITEMS, at it, one over.
                if pad > 0 {
                    items.resize(MAX_ARRAY_ITEMS - 2 + pad, json!(0));
                }
                Value::Array(items)
            }),
            (
                prop::collection::vec(("[a-z/~,\"]{1,4}", inner), 0..4),
                0usize..4
            )
                .prop_map(|(members, pad)| {
                    let mut map: Map<String, Value> = members.into_iter().collect();
                    if pad > 0 {
                        for i in 0..MAX_OBJECT_KEYS - 2 + pad {
                            map.insert(format!("pad{i}"), json!(i));
                        }
                    }
                    Value::Object(map)
                }),
        ]
    })
}

/// Small trees, with text that repeats keys and varies its spacing.
fn small_text() -> impl Strategy<Value = String> {
    let leaf = leaf().prop_map(|v| v.to_string());
    leaf.prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec(("[ab]", inner), 0..4).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!(" \"{k}\" : {v} "))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn refuses_exactly_the_trees_wider_than_the_bounds(value in tree()) {
        let verdict = wide(&value);
        prop_assert_eq!(verdict.is_some(), widest(&value));
        if let Some((pointer, code)) = verdict {
            // The pointer names an array or object over its bound.
            let node = value.pointer(&pointer).expect("the pointer resolves");
            match code {
                "too_many_items" => prop_assert!(node.as_array().unwrap().len() > MAX_ARRAY_ITEMS),
                _ => prop_assert!(node.as_object().unwrap().len() > MAX_OBJECT_KEYS),
            }
        }
    }

    /// Width and depth together, in document order: as the former guard
    /// followed by serde_json decided, tree for tree.
    #[test]
    fn decides_as_the_former_guard_and_parse(value in tree(), max in 1usize..6) {
        let text = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(verdict(&text, max), former_verdict(&text, max));
    }

    #[test]
    fn builds_what_serde_json_builds(text in small_text()) {
        prop_assert_eq!(verdict(&text, 64), former_verdict(&text, 64));
    }

    #[test]
    fn agrees_with_the_real_nesting_depth(depth in 0usize..200, max in 1usize..100) {
        let refused = verdict(&nested(depth), max) == Verdict::Refused(ShapeError::TooDeep);
        prop_assert_eq!(refused, depth > max);
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..10) {
        let _ = parse_bounded_bytes(&bytes, max);
    }
}
