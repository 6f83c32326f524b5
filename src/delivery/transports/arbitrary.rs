//! What the transports' `tests_arbitrary` modules share: hostile registry
//! answers (JSON of any shape, with odd numbers and text), prose a registry
//! might write in a free-text field, and a time bound per case.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::http_client::Answer;

/// Per case: generous for a linear reader, short for a quadratic one.
pub const BOUND: Duration = Duration::from_secs(2);

/// Run `f`, failing the case when it takes longer than [`BOUND`].
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    prop_assert!(took < BOUND, "{what} took {took:?}");
    Ok(out)
}

/// Text that breaks assumptions.
pub fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("\u{0}".into()),
        Just("\u{202e}\u{feff}\u{200b}".into()),
        Just("e\u{301}\u{301}\u{301}".into()),
        Just("👨‍👩‍👧‍👦".into()),
        Just("../../x%2F".into()),
        Just("http://opencrvs.org/specs/id/birth-tracking-id".into()),
        (1usize..10_000).prop_map(|n| "A".repeat(n)),
    ]
}

/// A number as a registry may write it: any size, sign or kind.
pub fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        Just(json!(1e19)),
        Just(json!(1.8446744073709552e19)),
        Just(json!(1.7976931348623157e308)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(0.5)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX / 80 + 1)),
        Just(json!(u64::MAX / 100 + 1)),
        Just(json!("300")),
        Just(json!("1e19")),
    ]
}

pub fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        odd_number(),
        odd_string().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Any JSON value, a few levels deep, its keys sometimes the ones answers use.
pub fn hostile_value() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "id",
        "code",
        "message",
        "path",
        "issues",
        "errors",
        "detail",
        "data",
        "resourceType",
        "entry",
        "resource",
        "identifier",
        "system",
        "value",
        "actions",
        "type",
        "status",
        "transactionId",
        "originalActionId",
        "trackingId",
        "access_token",
        "expires_in",
        "error",
        "issue",
        "expression",
        "meta",
        "versionId",
    ];
    let key =
        prop_oneof![3 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => odd_string()];
    hostile_leaf().prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Words no reason may hold: prose a registry writes around a value.
pub fn prose() -> impl Strategy<Value = String> {
    "[A-Z][a-z]{5,9}( [A-Z][a-z]{5,9}){0,3}"
}

/// Any status, headers with any Retry-After, any body.
pub fn answer(status: u16, retry_after: Option<Vec<u8>>, body: Vec<u8>) -> Answer {
    let mut headers = HeaderMap::new();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        headers.insert(HeaderName::from_static("retry-after"), v);
    }
    Answer {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
        headers,
        body,
    }
}

/// Body bytes: arbitrary, or JSON of any shape, or JSON cut short.
pub fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        hostile_value().prop_map(|v| v.to_string().into_bytes()),
        (hostile_value(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let mut b = v.to_string().into_bytes();
            b.truncate(i.index(b.len() + 1));
            b
        }),
    ]
}

/// Retry-After values: numbers of any size, dates, junk.
pub fn retry_after_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        Just(b"99999999999999999999999999".to_vec()),
        Just(b"Fri, 31 Dec 9999 23:59:59 GMT".to_vec()),
        Just(b"Thu, 01 Jan 1970 00:00:00 GMT".to_vec()),
        Just(b"Mon, 19 Oct 2026 08:01:30 GMT".to_vec()),
        Just(b"1e19".to_vec()),
        Just(b" 12 ".to_vec()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// Any status a server could send (reqwest takes 100..=999).
pub fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(
            &[
                200u16, 201, 202, 204, 400, 401, 403, 404, 409, 412, 422, 429, 500, 503
            ][..]
        ),
        100u16..=999,
    ]
}
