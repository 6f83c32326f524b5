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
