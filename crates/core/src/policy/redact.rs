//! Performing redactions on a canonical record, and the keyed pseudonym.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{Action, Redaction};

/// What a masked value becomes.
pub const MASK: &str = "REDACTED";

/// HMAC-SHA256 (RFC 2104): the keyed pseudonym, so two registries with
/// different keys cannot link their records.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `record` with every redaction performed, in order.
pub(super) fn apply(redactions: &[Redaction], record: &Value, key: Option<&[u8]>) -> Value {
    let mut out = record.clone();
    for r in redactions {
        perform(&mut out, r, key);
    }
    out
}

/// Perform one redaction; a pointer that no longer resolves is a no-op.
/// Without a key, a pseudonym degrades to a mask (never to the clear value).
pub(super) fn perform(record: &mut Value, r: &Redaction, key: Option<&[u8]>) {
    if r.action == Action::Drop {
        remove(record, &r.pointer);
        return;
    }
    let Some(v) = lookup_mut(record, &r.pointer) else {
        return;
    };
    *v = transform(v, &r.action, key);
}

fn transform(v: &Value, action: &Action, key: Option<&[u8]>) -> Value {
    let mask = Value::String(MASK.into());
    match action {
        Action::Drop | Action::Mask => mask,
        Action::Pseudonym => match key {
            Some(k) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Value::String(hex::encode(hmac_sha256(k, text.as_bytes())))
            }
            None => mask,
        },
        Action::GeneraliseYear => date_prefix(v, 4).unwrap_or(mask),
        Action::GeneraliseMonth => date_prefix(v, 7).unwrap_or(mask),
        Action::AgeBand(bands) => v
            .as_u64()
            .map(|age| Value::String(age_band(age, bands)))
            .unwrap_or(mask),
    }
}

fn date_prefix(v: &Value, len: usize) -> Option<Value> {
    let s = v.as_str()?;
    let ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    ok.then(|| Value::String(s[..len].to_string()))
}

/// The band of `age`: `lo-hi` between two bounds, `lo+` from the last one,
/// `0-hi` below the first.
pub(super) fn age_band(age: u64, bands: &[u32]) -> String {
    let bounds: Vec<u64> = bands.iter().map(|b| u64::from(*b)).collect();
    match bounds.iter().rposition(|b| *b <= age) {
        None => format!("0-{}", bounds.first().map_or(0, |b| b.saturating_sub(1))),
        Some(i) if i + 1 == bounds.len() => format!("{}+", bounds[i]),
        Some(i) => format!("{}-{}", bounds[i], bounds[i + 1] - 1),
    }
}

fn remove(record: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let Some(container) = lookup_mut(record, parent) else {
        return;
    };
    match container {
        Value::Object(m) => {
            m.remove(&*unescaped(last));
        }
        Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

pub(super) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// [`Value::pointer`] without its copies: serde_json unescapes every segment
/// into two new strings, and a policy reads several pointers per record and
/// route.
pub(crate) fn lookup<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(value, |target, token| match target {
            Value::Object(map) => map.get(&*unescaped(token)),
            Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
            _ => None,
        })
}

/// [`Value::pointer_mut`], as [`lookup`].
fn lookup_mut<'v>(value: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(value, |target, token| match target {
            Value::Object(map) => map.get_mut(&*unescaped(token)),
            Value::Array(list) => array_index(token).and_then(move |i| list.get_mut(i)),
            _ => None,
        })
}

/// A pointer segment unescaped, copied only when it holds a `~`.
fn unescaped(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(unescape(token))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index as RFC 6901 (and serde_json) reads it: no sign, no
/// leading zero. (A segment with `~` is never an index: no unescaping.)
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// Concrete pointers in `value` matching `pattern` (`*`: any index or key).
pub(super) fn expand(value: &Value, pattern: &str) -> Vec<String> {
    let segments: Vec<&str> = pattern.split('/').skip(1).collect();
    let mut out = Vec::new();
    expand_at(value, &mut String::new(), &segments, &mut out);
    out
}

/// Pointers beneath `pointer`, which is built in place (one buffer for the
/// whole walk; a string per pointer found).
fn expand_at(value: &Value, pointer: &mut String, rest: &[&str], out: &mut Vec<String>) {
    let Some((first, tail)) = rest.split_first() else {
        out.push(pointer.clone());
        return;
    };
    let at = pointer.len();
    let mut below = |pointer: &mut String, segment: &dyn std::fmt::Display, v: &Value| {
        use std::fmt::Write;
        let _ = write!(pointer, "/{segment}");
        expand_at(v, pointer, tail, out);
        pointer.truncate(at);
    };
    match (value, *first) {
        (Value::Array(a), "*") => {
            for (i, v) in a.iter().enumerate() {
                below(pointer, &i, v);
            }
        }
        (Value::Object(m), "*") => {
            for (k, v) in m {
                below(pointer, &escape(k), v);
            }
        }
        (Value::Object(m), seg) => {
            if let Some(v) = m.get(&*unescaped(seg)) {
                below(pointer, &seg, v);
            }
        }
        (Value::Array(a), seg) => {
            if let Some(v) = seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                below(pointer, &seg, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{lookup, lookup_mut};

    /// Segments that exercise escapes, indices (signed, zero-padded) and misses.
    fn segment() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a", "b", "a~1b", "a/b", "~0", "~", "~01", "0", "1", "01", "+1", "-1", "2", "x", "",
        ])
        .prop_map(str::to_string)
    }

    fn document() -> Value {
        json!({
            "a": {"b": [1, {"a/b": true, "~": "t"}, [2, 3]], "~0": null},
            "a/b": "slash", "~": {"0": "tilde"}, "": {"": 5},
            "x": [[{"a": "deep"}], "y"]
        })
    }

    /// The former walk, which formatted a new pointer at every step.
    fn former_expand_at(value: &Value, pointer: &str, rest: &[&str], out: &mut Vec<String>) {
        let Some((first, tail)) = rest.split_first() else {
            out.push(pointer.to_string());
            return;
        };
        match (value, *first) {
            (Value::Array(a), "*") => {
                for (i, v) in a.iter().enumerate() {
                    former_expand_at(v, &format!("{pointer}/{i}"), tail, out);
                }
            }
            (Value::Object(m), "*") => {
                for (k, v) in m {
                    former_expand_at(v, &format!("{pointer}/{}", super::escape(k)), tail, out);
                }
            }
            (Value::Object(m), seg) => {
                if let Some(v) = m.get(&super::unescape(seg)) {
                    former_expand_at(v, &format!("{pointer}/{seg}"), tail, out);
                }
            }
            (Value::Array(a), seg) => {
                if let Some(v) = seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    former_expand_at(v, &format!("{pointer}/{seg}"), tail, out);
                }
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Redaction paths expand to the same pointers, in the same order.
        #[test]
        fn expand_finds_what_the_former_walk_found(
            segments in prop::collection::vec(
                prop::sample::select(vec!["*", "a", "b", "a~1b", "~0", "0", "1", "01", "x", ""]), 0..5),
        ) {
            let pattern: String = segments.iter().map(|s| format!("/{s}")).collect();
            let doc = json!({
                "a": {"b": [1, {"a/b": true, "~": "t"}, [2, 3]], "~0": null, "x": [{"a": 1}, {"b": 2}]},
                "a/b": [{"a": 1}], "~": {"0": "tilde"}, "": {"": 5},
                "x": [[{"a": "deep"}], "y"], "b": {"*": 1, "1": [4, 5]}
            });
            let mut former = Vec::new();
            let parts: Vec<&str> = pattern.split('/').skip(1).collect();
            former_expand_at(&doc, "", &parts, &mut former);
            prop_assert_eq!(super::expand(&doc, &pattern), former);
        }

        /// The policy's pointer lookups find exactly what serde_json's do.
        #[test]
        fn lookup_agrees_with_serde_json_pointer(
            segments in prop::collection::vec(segment(), 0..5),
            slash in any::<bool>(),
        ) {
            let joined = segments.join("/");
            let pointer = if slash { format!("/{joined}") } else { joined };
            let mut doc = document();
            prop_assert_eq!(lookup(&doc, &pointer), doc.pointer(&pointer));
            let expected = doc.pointer(&pointer).cloned();
            prop_assert_eq!(lookup_mut(&mut doc, &pointer).map(|v| v.clone()), expected);
        }
    }
}
