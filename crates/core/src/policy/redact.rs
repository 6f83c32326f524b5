//! Performing redactions on a canonical record, and the keyed pseudonym.

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
    let Some(v) = record.pointer_mut(&r.pointer) else {
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
    let Some(container) = record.pointer_mut(parent) else {
        return;
    };
    match container {
        Value::Object(m) => {
            m.remove(&unescape(last));
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

/// Concrete pointers in `value` matching `pattern` (`*`: any index or key).
pub(super) fn expand(value: &Value, pattern: &str) -> Vec<String> {
    let segments: Vec<&str> = pattern.split('/').skip(1).collect();
    let mut out = Vec::new();
    expand_at(value, "", &segments, &mut out);
    out
}

fn expand_at(value: &Value, pointer: &str, rest: &[&str], out: &mut Vec<String>) {
    let Some((first, tail)) = rest.split_first() else {
        out.push(pointer.to_string());
        return;
    };
    match (value, *first) {
        (Value::Array(a), "*") => {
            for (i, v) in a.iter().enumerate() {
                expand_at(v, &format!("{pointer}/{i}"), tail, out);
            }
        }
        (Value::Object(m), "*") => {
            for (k, v) in m {
                expand_at(v, &format!("{pointer}/{}", escape(k)), tail, out);
            }
        }
        (Value::Object(m), seg) => {
            if let Some(v) = m.get(&unescape(seg)) {
                expand_at(v, &format!("{pointer}/{seg}"), tail, out);
            }
        }
        (Value::Array(a), seg) => {
            if let Some(v) = seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                expand_at(v, &format!("{pointer}/{seg}"), tail, out);
            }
        }
        _ => {}
    }
}
