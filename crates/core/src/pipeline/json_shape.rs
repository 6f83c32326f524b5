//! A pre-parse guard on a payload's shape: how deep it nests and how wide its
//! arrays and objects are, read off the bytes before any value is built.
//!
//! A birth document or a case nests a few levels and has arrays of a few
//! items and objects of at most a few hundred fields; a 1 MiB body can hold
//! 300,000 array items or 70,000 keys, and a validator that reports each of
//! them (the JSON Schema validator collects an array's item errors eagerly)
//! turns that into gigabytes. Refused here, such a payload costs one linear
//! scan and no allocation beyond one frame per open bracket: the parsed tree
//! of a hostile body is never built.

use crate::schema::{Violation, escape_pointer_segment};

/// More items than any array of a record or source payload holds (a FHIR
/// document holds at most 1000 entries, see `fhir_r4::bundle::MAX_ENTRIES`).
pub const MAX_ARRAY_ITEMS: usize = 1000;

/// More keys than any object holds (a Primero case of a large instance has a
/// few hundred fields).
pub const MAX_OBJECT_KEYS: usize = 2000;

/// Why a payload's shape is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeError {
    /// More than the configured number of nested arrays/objects.
    TooDeep,
    /// An array or object wider than its bound, as a violation at its pointer.
    TooWide(Violation),
}

/// One open array or object.
struct Frame {
    object: bool,
    /// Commas seen at this level: members so far, less one.
    commas: usize,
    /// In an object: the next string at this level is a key.
    want_key: bool,
    /// In an object: where the current member's key (quotes included) is.
    key: (usize, usize),
}

/// The first shape problem of `bytes` read as JSON, in document order.
/// Brackets and commas inside strings do not count. Malformed input is left
/// to the parser, except that it may be refused here first (a run of commas
/// counts as items). Members are counted as written: an object that repeats
/// a key counts each repeat.
pub fn check_shape(bytes: &[u8], max_depth: usize) -> Result<(), ShapeError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                // An unterminated string: nothing after it counts.
                let Some(end) = string_end(bytes, at + 1) else {
                    return Ok(());
                };
                if let Some(top) = frames.last_mut().filter(|f| f.object && f.want_key) {
                    top.want_key = false;
                    top.key = (at, end);
                }
                at = end;
                continue;
            }
            b'[' | b'{' => {
                if frames.len() >= max_depth {
                    return Err(ShapeError::TooDeep);
                }
                frames.push(Frame {
                    object: b == b'{',
                    commas: 0,
                    want_key: b == b'{',
                    key: (0, 0),
                });
            }
            b']' | b'}' => {
                frames.pop();
            }
            b',' => {
                if let Some(top) = frames.last_mut() {
                    top.commas += 1;
                    top.want_key = top.object;
                    let bound = if top.object {
                        MAX_OBJECT_KEYS
                    } else {
                        MAX_ARRAY_ITEMS
                    };
                    // The comma opens member `commas + 1`.
                    if top.commas >= bound {
                        return Err(ShapeError::TooWide(too_wide(bytes, &frames)));
                    }
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The violation for the innermost frame, named by the pointer the frames
/// below it spell out. Only a refused payload pays for it.
fn too_wide(bytes: &[u8], frames: &[Frame]) -> Violation {
    let (wide, path) = frames.split_last().expect("a frame is open");
    let mut pointer = String::new();
    for frame in path {
        pointer.push('/');
        if frame.object {
            let (start, end) = frame.key;
            let key = serde_json::from_slice::<String>(&bytes[start..end])
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes[start..end]).into_owned());
            pointer.push_str(&escape_pointer_segment(&key));
        } else {
            pointer.push_str(&frame.commas.to_string());
        }
    }
    if wide.object {
        Violation {
            pointer,
            code: "too_many_keys",
            message: format!("holds more than {MAX_OBJECT_KEYS} keys"),
        }
    } else {
        Violation {
            pointer,
            code: "too_many_items",
            message: format!("holds more than {MAX_ARRAY_ITEMS} items"),
        }
    }
}

/// The position just past the quote closing the string whose content starts
/// at `from`. Most of a record's bytes are inside strings: they are skipped
/// by memchr rather than read one by one.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let rest = bytes.get(from..)?;
        let found = from + memchr::memchr2(b'"', b'\\', rest)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // A backslash escapes the byte after it.
        from = found + 2;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn depth_refused(bytes: &[u8], max: usize) -> bool {
        check_shape(bytes, max) == Err(ShapeError::TooDeep)
    }

    fn wide(value: &Value) -> Option<(String, &'static str)> {
        match check_shape(&serde_json::to_vec(value).unwrap(), 64) {
            Err(ShapeError::TooWide(v)) => Some((v.pointer, v.code)),
            Err(ShapeError::TooDeep) => panic!("not deep"),
            Ok(()) => None,
        }
    }

    #[test]
    fn counts_nesting_outside_strings_only() {
        assert!(!depth_refused(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(depth_refused(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!depth_refused(br#"{"a":"[[[[[[{{{{"}"#, 1));
        assert!(!depth_refused(br#"{"a":"\"[[[["}"#, 1));
        assert!(depth_refused(&[b'['; 10_000], 64));
    }

    #[test]
    fn wide_arrays_and_objects_are_named_by_pointer() {
        assert_eq!(wide(&json!({"a": [1, 2, 3], "b": {"c": 1}})), None);
        assert_eq!(
            wide(&json!({"a": {"b": vec![0; MAX_ARRAY_ITEMS + 1]}})),
            Some(("/a/b".into(), "too_many_items"))
        );
        assert_eq!(wide(&json!(vec![0; MAX_ARRAY_ITEMS])), None);
        let keys: serde_json::Map<String, Value> = (0..=MAX_OBJECT_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        assert_eq!(
            wide(&json!([{"z": 1}, { "x/y": Value::Object(keys) }])),
            Some(("/1/x~1y".into(), "too_many_keys"))
        );
        // Keys are read as JSON strings: escapes and commas inside count for nothing.
        let wide_under = json!({"a,\"b\u{e9}": {"c": vec![json!("x,y"); MAX_ARRAY_ITEMS + 1]}});
        assert_eq!(
            wide(&wide_under),
            Some(("/a,\"b\u{e9}/c".into(), "too_many_items"))
        );
    }

    /// What the guard stands for: the tree's own widths, walked after parsing.
    fn widest(value: &Value) -> bool {
        match value {
            Value::Array(items) => items.len() > MAX_ARRAY_ITEMS || items.iter().any(widest),
            Value::Object(map) => map.len() > MAX_OBJECT_KEYS || map.values().any(widest),
            _ => false,
        }
    }

    /// The byte-by-byte depth scan the fast one must agree with.
    fn deeper_than(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    /// JSON values some of whose arrays and objects sit around the bounds.
    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!(null)),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z,\\[\\]{}\"\\\\/~]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 8, 4, |inner| {
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
                        let mut map: serde_json::Map<String, Value> = members.into_iter().collect();
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

        #[test]
        fn agrees_with_a_byte_by_byte_depth_scan(
            bytes in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\ab".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            prop_assert_eq!(depth_refused(&bytes, max), deeper_than(&bytes, max));
        }

        #[test]
        fn agrees_with_the_real_nesting_depth(depth in 0usize..200, max in 1usize..100) {
            prop_assert_eq!(depth_refused(nested(depth).as_bytes(), max), depth > max);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..10) {
            let _ = check_shape(&bytes, max);
        }
    }
}
