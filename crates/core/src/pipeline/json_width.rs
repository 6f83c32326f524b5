//! A bound on how wide a parsed payload may be, checked before anything
//! validates or decodes it. A birth document or a case has arrays of a few
//! items and objects of at most a few hundred fields; a 1 MiB body can hold
//! 300,000 array items or 70,000 keys, and a validator that reports each of
//! them (the JSON Schema validator collects an array's item errors eagerly)
//! turns that into gigabytes. Refused here, such a payload costs one walk.

use serde_json::Value;

use crate::schema::{Violation, escape_pointer_segment};

/// More items than any array of a record or source payload holds (a FHIR
/// document holds at most 1000 entries, see `fhir_r4::bundle::MAX_ENTRIES`).
pub const MAX_ARRAY_ITEMS: usize = 1000;

/// More keys than any object holds (a Primero case of a large instance has a
/// few hundred fields).
pub const MAX_OBJECT_KEYS: usize = 2000;

/// The first array or object wider than its bound, as a violation at its
/// pointer; `None` when the whole value is within bounds.
pub fn too_wide(value: &Value) -> Option<Violation> {
    // Every payload takes this walk: it holds references only, and the
    // pointer is spelled out only for the value refused.
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(items) if items.len() > MAX_ARRAY_ITEMS => {
                return Some(Violation {
                    pointer: pointer_to(value, node),
                    code: "too_many_items",
                    message: format!("holds more than {MAX_ARRAY_ITEMS} items"),
                });
            }
            Value::Object(map) if map.len() > MAX_OBJECT_KEYS => {
                return Some(Violation {
                    pointer: pointer_to(value, node),
                    code: "too_many_keys",
                    message: format!("holds more than {MAX_OBJECT_KEYS} keys"),
                });
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    None
}

/// The JSON pointer of `target`, a value inside `root`.
fn pointer_to(root: &Value, target: &Value) -> String {
    let mut stack = vec![(String::new(), root)];
    while let Some((pointer, node)) = stack.pop() {
        if std::ptr::eq(node, target) {
            return pointer;
        }
        match node {
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (format!("{pointer}/{i}"), item)),
            ),
            Value::Object(map) => stack.extend(
                map.iter()
                    .map(|(k, v)| (format!("{pointer}/{}", escape_pointer_segment(k)), v)),
            ),
            _ => {}
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wide_arrays_and_objects_are_named_by_pointer() {
        assert!(too_wide(&json!({"a": [1, 2, 3], "b": {"c": 1}})).is_none());
        let wide = json!({"a": {"b": vec![0; MAX_ARRAY_ITEMS + 1]}});
        let v = too_wide(&wide).unwrap();
        assert_eq!((v.pointer.as_str(), v.code), ("/a/b", "too_many_items"));
        assert!(too_wide(&json!(vec![0; MAX_ARRAY_ITEMS])).is_none());
        let keys: serde_json::Map<String, Value> = (0..=MAX_OBJECT_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let v = too_wide(&json!([{ "x/y": Value::Object(keys) }])).unwrap();
        assert_eq!((v.pointer.as_str(), v.code), ("/0/x~1y", "too_many_keys"));
    }
}
