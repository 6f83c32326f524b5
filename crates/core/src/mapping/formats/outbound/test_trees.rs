//! What the encoders' property tests share: building arbitrary mapped trees.

use serde_json::{Map, Value};

/// The place at `path` in `at` (a segment that is a number indexes an
/// array), making objects and arrays, padded with nulls, on the way.
pub fn slot<'v>(at: &'v mut Value, path: &[&str]) -> &'v mut Value {
    let Some((first, rest)) = path.split_first() else {
        return at;
    };
    let next = match first.parse::<usize>() {
        Ok(i) => {
            if !at.is_array() {
                *at = Value::Array(Vec::new());
            }
            let items = at.as_array_mut().expect("made an array above");
            if items.len() <= i {
                items.resize(i + 1, Value::Null);
            }
            &mut items[i]
        }
        Err(_) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            at.as_object_mut()
                .expect("made an object above")
                .entry(first.to_string())
                .or_insert(Value::Null)
        }
    };
    slot(next, rest)
}
