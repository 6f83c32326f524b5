//! Primero's logins (FORMATS §4.1): `POST /api/v2/tokens` with
//! `{"user": {"user_name", "password"}}`. Older instances answer a JWT in the
//! `Authorization` response header; newer ones open a session (cookie) and
//! set a `CSRF-TOKEN` cookie that writes echo as `X-CSRF-Token`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Client;
use reqwest::header::{AUTHORIZATION, HeaderMap, SET_COOKIE};
use serde_json::json;

use crate::config::Secret;
use crate::delivery::transports::SendError;
use crate::delivery::transports::http_client::{Answer, send};
use crate::delivery::transports::oauth::login_refused;
use crate::delivery::transports::token_cache::{Fetched, TokenSource};

const CSRF_COOKIE: &str = "CSRF-TOKEN";

pub(super) struct Login {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The JWT comes back in the `Authorization` header.
    JwtHeader,
    /// A session cookie (kept by the client's jar) and a CSRF token.
    Session,
}

#[async_trait]
impl TokenSource for Login {
    async fn fetch(&self, client: &Client, now: DateTime<Utc>) -> Result<Fetched, SendError> {
        let body = json!({"user": {"user_name": self.user, "password": self.password.expose()}});
        let answer = send(client.post(&self.url).json(&body)).await?;
        if !answer.status.is_success() {
            return Err(login_refused("login", &answer, None, now));
        }
        let value = match self.mode {
            Mode::JwtHeader => {
                bearer(&answer.headers).ok_or_else(|| missing(&answer, "a JWT in Authorization"))?
            }
            // No CSRF cookie: the instance runs without CSRF protection.
            Mode::Session => cookie(&answer.headers, CSRF_COOKIE).unwrap_or_default(),
        };
        // A JWT's lifetime is read from its `exp`; a session's is unknown
        // (idle timeout): it is renewed when refused.
        Ok(Fetched {
            value,
            expires_in: None,
        })
    }
}

fn missing(answer: &Answer, what: &str) -> SendError {
    SendError::Permanent {
        reason: format!(
            "login: status {} without {what} (check the auth mode)",
            answer.status.as_u16()
        ),
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A cookie's value from the `Set-Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|v| {
        let pair = v.to_str().ok()?.split(';').next()?;
        let (k, value) = pair.split_once('=')?;
        (k.trim() == name).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn the_jwt_and_the_csrf_cookie_are_read_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("_primero_session=s1; path=/; HttpOnly"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("CSRF-TOKEN=t0k3n; path=/; SameSite=Lax"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc.def.ghi"));
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("t0k3n"));
        assert_eq!(cookie(&h, "missing"), None);
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic eDp5"));
        assert_eq!(bearer(&basic), None);
    }
}
