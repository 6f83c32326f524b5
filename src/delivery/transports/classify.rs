//! The answer classifier: an HTTP status and its headers, or a failure to get
//! an answer at all, become a [`SendError`] by type. Reasons name statuses,
//! error kinds and codes; the caller may add a registry's codes and paths.

use std::error::Error as _;
use std::io;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::SendError;

/// Longer waits are a registry's mistake; capping them keeps the worker's
/// timers from overflowing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means "now" (zero); anything else unreadable is None.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(SystemTime::from(now)).unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The `Retry-After` header of an answer, if readable.
pub(super) fn retry_after_header(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    retry_after(value, now)
}

/// A wait the registry stated in its body (X-Road `RetryAfterSeconds`).
pub(super) fn seconds(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_RETRY_AFTER)
}

/// A non-success status. `detail` is what the registry's body said, in codes
/// and paths (never its messages).
pub(super) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    now: DateTime<Utc>,
    detail: Option<String>,
) -> SendError {
    let reason = match detail {
        Some(d) if !d.is_empty() => format!("status {}: {d}", status.as_u16()),
        _ => format!("status {}", status.as_u16()),
    };
    let wait = || retry_after_header(headers, now);
    match status.as_u16() {
        429 => SendError::RateLimited {
            reason,
            retry_after: wait(),
        },
        408 | 500..=599 => SendError::Retryable {
            reason,
            retry_after: wait(),
        },
        300..=399 => SendError::Permanent {
            reason: format!("{reason} (redirects are not followed)"),
        },
        _ => SendError::Permanent { reason },
    }
}

/// A short identifier, safe to put in a reason: letters, digits and `_ . -`.
pub(super) fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A path or field name a registry reported (`/BirthNotification/Child/DateOfBirth`,
/// `Bundle.entry[0].resource`, `declaration.child.dob`): no spaces, quotes or
/// other characters that would let a value through.
pub(super) fn is_path(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'.' | b'-' | b'/' | b'[' | b']' | b'@' | b':')
        })
}

/// "a; b; c (+2 more)": the first few items of a registry's error list.
pub(super) fn listed(items: impl IntoIterator<Item = String>) -> Option<String> {
    const SHOWN: usize = 5;
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        return None;
    }
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!(" (+{} more)", items.len() - SHOWN));
    }
    Some(text)
}

/// "code at path", either part left out when it is not safe to show.
pub(super) fn code_at(code: Option<&str>, path: Option<&str>) -> Option<String> {
    let code = code.filter(|c| is_code(c));
    let path = path.filter(|p| is_path(p));
    match (code, path) {
        (Some(c), Some(p)) => Some(format!("{c} at {p}")),
        (Some(c), None) => Some(c.to_string()),
        (None, Some(p)) => Some(format!("at {p}")),
        (None, None) => None,
    }
}

/// The same class and wait, with another reason.
pub(super) fn reworded(error: SendError, reason: String) -> SendError {
    match error {
        SendError::Retryable { retry_after, .. } => SendError::Retryable {
            reason,
            retry_after,
        },
        SendError::RateLimited { retry_after, .. } => SendError::RateLimited {
            reason,
            retry_after,
        },
        SendError::Permanent { .. } => SendError::Permanent { reason },
        SendError::OutcomeUnknown { .. } => SendError::OutcomeUnknown { reason },
        SendError::NeedsRegistryProcess { reference, .. } => {
            SendError::NeedsRegistryProcess { reason, reference }
        }
    }
}

/// No answer: connect errors, timeouts, a connection closed mid-way. The
/// outcome is unknown, so the same bytes go again (the registry deduplicates).
pub(super) fn transport_error(error: &reqwest::Error) -> SendError {
    if error.is_builder() {
        return SendError::Permanent {
            reason: "the request could not be built".into(),
        };
    }
    let what = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect error"
    } else {
        "connection error"
    };
    let reason = match io_kind(error) {
        // The kind says refused, reset, timed out...: a code, not a message.
        Some(kind) => format!("{what} ({kind:?})"),
        None => what.to_string(),
    };
    SendError::Retryable {
        reason,
        retry_after: None,
    }
}

/// The I/O error kind behind a reqwest error, if any.
fn io_kind(error: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-10-19T08:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn classify(status: u16, retry: Option<&str>) -> SendError {
        status_error(
            StatusCode::from_u16(status).unwrap(),
            &headers(retry),
            now(),
            None,
        )
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now()), Some(Duration::ZERO));
        // IMF-fixdate, RFC 850 and asctime forms, 90 s after `now`.
        for date in [
            "Mon, 19 Oct 2026 08:01:30 GMT",
            "Monday, 19-Oct-26 08:01:30 GMT",
            "Mon Oct 19 08:01:30 2026",
        ] {
            assert_eq!(
                retry_after(date, now()),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        assert_eq!(
            retry_after("Sun, 18 Oct 2026 08:00:00 GMT", now()),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after("soon", now()), None);
        assert_eq!(retry_after("-5", now()), None);
        assert_eq!(retry_after("1.5", now()), None);
        assert_eq!(
            retry_after("99999999999", now()),
            Some(MAX_RETRY_AFTER),
            "capped"
        );
    }

    #[test]
    fn statuses_are_classified_by_what_the_worker_does() {
        assert_eq!(
            classify(503, Some("30")),
            SendError::Retryable {
                reason: "status 503".into(),
                retry_after: Some(Duration::from_secs(30))
            }
        );
        assert_eq!(
            classify(503, Some("Mon, 19 Oct 2026 08:00:45 GMT")).retry_after(),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            classify(429, Some("7")),
            SendError::RateLimited {
                reason: "status 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(429, None),
            SendError::RateLimited {
                reason: "status 429".into(),
                retry_after: None
            }
        );
        for retryable in [408, 500, 502, 504] {
            assert!(
                matches!(classify(retryable, None), SendError::Retryable { .. }),
                "{retryable}"
            );
        }
        for permanent in [400, 401, 403, 404, 409, 413, 415, 422] {
            assert!(
                matches!(classify(permanent, Some("5")), SendError::Permanent { .. }),
                "{permanent}"
            );
        }
        assert_eq!(
            classify(302, None),
            SendError::Permanent {
                reason: "status 302 (redirects are not followed)".into()
            }
        );
    }

    #[test]
    fn only_codes_and_paths_reach_a_reason() {
        assert_eq!(
            code_at(
                Some("DATE_IN_FUTURE"),
                Some("/BirthNotification/Child/DateOfBirth")
            ),
            Some("DATE_IN_FUTURE at /BirthNotification/Child/DateOfBirth".into())
        );
        assert_eq!(
            code_at(Some("bad code"), Some("a.b[0]")),
            Some("at a.b[0]".into())
        );
        assert_eq!(code_at(Some("x"), Some("name = 'Amina'")), Some("x".into()));
        assert_eq!(code_at(None, Some("Amina Yusuf")), None);
        let many = (0..7).map(|i| format!("c{i}"));
        assert_eq!(listed(many), Some("c0; c1; c2; c3; c4 (+2 more)".into()));
        assert_eq!(listed(Vec::new()), None);
    }

    #[test]
    fn the_detail_follows_the_status() {
        let e = status_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            now(),
            Some("invalid_type at transactionId".into()),
        );
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 400: invalid_type at transactionId".into()
            }
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_and_says_why() {
        // Bind then drop: the port is closed, so the connection is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        match transport_error(&error) {
            SendError::Retryable {
                reason,
                retry_after: None,
            } => assert_eq!(reason, "connect error (ConnectionRefused)"),
            other => panic!("{other:?}"),
        }
    }
}

/// Hostile Retry-After headers and statuses (#13): always a class and a
/// bounded wait, never a panic or an overflow.
#[cfg(test)]
mod tests_arbitrary {
    use proptest::prelude::*;

    use super::*;
    use crate::delivery::transports::arbitrary::{answer, retry_after_value, status, timed};

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_retry_after_is_a_bounded_wait_or_none(value in retry_after_value(), now_secs in -62_000_000_000i64..250_000_000_000) {
            let now = DateTime::from_timestamp(now_secs, 0).unwrap_or_default();
            let text = String::from_utf8_lossy(&value);
            let wait = timed("retry_after", || retry_after(&text, now))?;
            prop_assert!(wait.is_none_or(|w| w <= MAX_RETRY_AFTER));
        }

        #[test]
        fn any_status_and_header_is_classified(status in status(), value in proptest::option::of(retry_after_value())) {
            let a = answer(status, value, Vec::new());
            let e = status_error(a.status, &a.headers, Utc::now(), None);
            prop_assert!(e.retry_after().is_none_or(|w| w <= MAX_RETRY_AFTER));
            prop_assert!(e.to_string().contains(&a.status.as_u16().to_string()));
        }

        #[test]
        fn any_stated_seconds_are_capped(secs: u64) {
            prop_assert!(seconds(secs) <= MAX_RETRY_AFTER);
        }
    }
}
