//! OAuth 2 client credentials (RFC 6749 §4.4): a POST of grant_type,
//! client_id and client_secret, in a form body (RFC 6749, OpenCRVS 2.x, the
//! FHIR exchange, identity providers) or in the query string (OpenCRVS 1.x's
//! auth service reads `request.query` only and answers a form body with 400
//! `unsupported_grant_type`). OpenCRVS answers without `expires_in` (the
//! lifetime is the JWT's `exp`), the others with it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Client;
use serde_json::Value;

use super::SendError;
use super::classify::{is_code, reworded, status_error};
use super::http_client::{Answer, send};
use super::token_cache::{Fetched, TokenSource};
use crate::config::Secret;

pub(super) struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub placement: CredentialsIn,
}

/// Where the token request carries its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CredentialsIn {
    /// `application/x-www-form-urlencoded` body (RFC 6749 §4.4.2).
    Form,
    /// The query string of an empty POST (OpenCRVS 1.x).
    Query,
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, client: &Client, now: DateTime<Utc>) -> Result<Fetched, SendError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let request = client.post(&self.token_url);
        let request = match self.placement {
            CredentialsIn::Form => request.form(&form),
            CredentialsIn::Query => request.query(&form),
        };
        let answer = send(request).await?;
        token_from(&answer, now)
    }
}

/// The access token of a token endpoint's answer.
fn token_from(answer: &Answer, now: DateTime<Utc>) -> Result<Fetched, SendError> {
    if !answer.status.is_success() {
        return Err(login_refused(
            "token endpoint",
            answer,
            oauth_error_code(answer),
            now,
        ));
    }
    let body = answer.json().unwrap_or_default();
    let Some(token) = body.get("access_token").and_then(Value::as_str) else {
        return Err(SendError::Permanent {
            reason: format!(
                "token endpoint: status {} without an access_token",
                answer.status.as_u16()
            ),
        });
    };
    Ok(Fetched {
        value: token.to_string(),
        expires_in: body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    })
}

/// The OAuth `error` code (`invalid_client`, ...), when it looks like one.
fn oauth_error_code(answer: &Answer) -> Option<String> {
    let body = answer.json()?;
    let code = body.get("error")?.as_str()?;
    is_code(code).then(|| code.to_string())
}

/// A login or token request that failed. Refused credentials (400, 401, 403)
/// are permanent: sending again cannot help until they are fixed; limits and
/// outages are classified as for any request.
pub(super) fn login_refused(
    what: &str,
    answer: &Answer,
    code: Option<String>,
    now: DateTime<Utc>,
) -> SendError {
    let detail = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let reason = format!("{what}: status {}{detail}", answer.status.as_u16());
    if matches!(answer.status.as_u16(), 400 | 401 | 403) {
        return SendError::Permanent {
            reason: format!("{reason}: credentials refused"),
        };
    }
    reworded(
        status_error(answer.status, &answer.headers, now, None),
        reason,
    )
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn token_from_now(answer: &Answer) -> Result<Fetched, SendError> {
        token_from(answer, Utc::now())
    }

    #[test]
    fn tokens_are_read_with_or_without_expires_in() {
        let t = token_from_now(&answer(
            200,
            r#"{"access_token":"abc","token_type":"Bearer"}"#,
        ))
        .unwrap();
        assert_eq!((t.value.as_str(), t.expires_in), ("abc", None));
        let t = token_from_now(&answer(200, r#"{"access_token":"abc","expires_in":300}"#)).unwrap();
        assert_eq!(t.expires_in, Some(Duration::from_secs(300)));
    }

    #[test]
    fn token_endpoint_failures_are_classified() {
        let refused = token_from_now(&answer(
            401,
            r#"{"error":"invalid_client","error_description":"Invalid client id or secret"}"#,
        ));
        assert_eq!(
            refused.err(),
            Some(SendError::Permanent {
                reason: "token endpoint: status 401 (invalid_client): credentials refused".into()
            })
        );
        let down = token_from_now(&answer(503, "")).err().unwrap();
        assert_eq!(
            down,
            SendError::Retryable {
                reason: "token endpoint: status 503".into(),
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert!(matches!(
            token_from_now(&answer(429, "")),
            Err(SendError::RateLimited { .. })
        ));
        assert!(matches!(
            token_from_now(&answer(200, "<html>")),
            Err(SendError::Permanent { .. })
        ));
        // A description (free text) never reaches the reason; an odd "code" neither.
        let odd = token_from_now(&answer(400, r#"{"error":"secret was hunter2 !"}"#))
            .err()
            .unwrap();
        assert!(!odd.to_string().contains("hunter2"), "{odd}");
    }
}

/// Hostile token answers (#13 finding 4): a token answer of any shape, with
/// any number as `expires_in` or as a JWT's `iat`/`exp`, never panics and
/// never overflows, neither when read nor in the cache's renewal arithmetic,
/// however far the clock then moves.
#[cfg(test)]
mod tests_arbitrary {
    use std::sync::{Arc, Mutex};

    use base64::Engine as _;
    use chrono::TimeDelta;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::delivery::transports::Clock;
    use crate::delivery::transports::arbitrary::{
        answer, body, hostile_value, odd_number, status, timed,
    };
    use crate::delivery::transports::token_cache::TokenCache;

    /// A token endpoint that gives the same answer every time.
    struct Answers(Answer);

    #[async_trait]
    impl TokenSource for Answers {
        async fn fetch(&self, _client: &Client, now: DateTime<Utc>) -> Result<Fetched, SendError> {
            token_from(&self.0, now)
        }
    }

    fn jwt(claims: &Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            engine.encode(br#"{"alg":"HS256"}"#),
            engine.encode(claims.to_string())
        )
    }

    /// A token answer: the access token plain or a JWT with hostile claims,
    /// `expires_in` any number (or text), other members anything.
    fn token_answer() -> impl Strategy<Value = Vec<u8>> {
        let claim = prop_oneof![odd_number(), hostile_value()];
        let token = prop_oneof![
            Just(json!("opaque")),
            (claim.clone(), claim)
                .prop_map(|(iat, exp)| json!(jwt(&json!({"iat": iat, "exp": exp})))),
            odd_number().prop_map(|exp| json!(jwt(&json!({"exp": exp})))),
            hostile_value(),
        ];
        let expires_in = prop_oneof![
            Just(None),
            odd_number().prop_map(Some),
            hostile_value().prop_map(Some)
        ];
        (token, expires_in, hostile_value()).prop_map(|(token, expires_in, extra)| {
            let mut body = json!({"access_token": token, "token_type": "Bearer", "extra": extra});
            if let Some(e) = expires_in {
                body["expires_in"] = e;
            }
            body.to_string().into_bytes()
        })
    }

    fn client() -> &'static Client {
        static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
        CLIENT.get_or_init(Client::new)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_token_answer_is_a_token_or_a_typed_error(status in status(), body in prop_oneof![body(), token_answer()]) {
            let a = answer(status, None, body);
            timed("token_from", || { let _ = token_from(&a, Utc::now()); })?;
        }

        /// The cache takes the answer, and keeps working (or renewing) with
        /// the clock moved by any amount, however absurd the lifetime.
        #[test]
        fn a_hostile_token_answer_never_overflows_the_cache(body in token_answer(), start in -8_000_000_000i64..8_000_000_000, moves in prop::collection::vec(any::<i64>(), 1..4)) {
            let a = answer(200, None, body);
            let time = Arc::new(Mutex::new(DateTime::from_timestamp(start, 0).unwrap_or_default()));
            let clock_time = time.clone();
            let cache = TokenCache::new(Answers(a), Clock::from_fn(move || *clock_time.lock().unwrap()));
            let rt = runtime();
            let first = rt.block_on(cache.current(client()));
            for step in moves {
                let mut t = time.lock().unwrap();
                // Any move the calendar can hold: seconds of either sign.
                *t = t.checked_add_signed(TimeDelta::seconds(step % 9_000_000_000_000)).unwrap_or(*t);
                drop(t);
                let again = rt.block_on(cache.current(client()));
                prop_assert_eq!(again.is_ok(), first.is_ok());
                if let Ok(token) = &again {
                    let _ = rt.block_on(cache.renew(client(), token));
                }
            }
        }
    }
}
