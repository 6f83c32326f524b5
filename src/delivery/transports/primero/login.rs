//! Primero's session login (v2.11.0 and later: devise-jwt is gone, no login
//! answers a token). The login is itself CSRF-protected: first
//! `GET /health/server?session=true` for the `_app_session` and `CSRF-TOKEN`
//! cookies (Primero's own web client does this, app/controllers/
//! health_controller.rb), then `POST /api/v2/tokens` with
//! `{"user": {"user_name", "password"}}` and `X-CSRF-Token`. The login renews
//! the CSRF token (Devise `clean_up_csrf_token_on_authentication`), so the
//! health check is asked once more for the token writes echo. The cookies live
//! in the client's jar; the cached value is the CSRF token.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, Url};
use serde_json::json;

use crate::config::Secret;
use crate::delivery::transports::SendError;
use crate::delivery::transports::http_client::send;
use crate::delivery::transports::oauth::login_refused;
use crate::delivery::transports::token_cache::{Fetched, TokenSource};

const CSRF_COOKIE: &str = "CSRF-TOKEN";
const CSRF_HEADER: &str = "X-CSRF-Token";
/// Where Primero hands out a session's CSRF token.
const HEALTH_PATH: &str = "/health/server?session=true";

pub(super) struct Login {
    pub url: String,
    pub user: String,
    pub password: Secret,
}

impl Login {
    fn health_url(&self) -> Result<Url, SendError> {
        Url::parse(&self.url)
            .and_then(|u| u.join(HEALTH_PATH))
            .map_err(|_| SendError::Permanent {
                reason: "login: login_url is not a URL".into(),
            })
    }

    /// The CSRF token the session holds now.
    async fn csrf(&self, client: &Client, now: DateTime<Utc>) -> Result<String, SendError> {
        let answer = send(client.get(self.health_url()?)).await?;
        if !answer.status.is_success() {
            return Err(login_refused("csrf cookie", &answer, None, now));
        }
        // No cookie: the instance runs without CSRF protection.
        Ok(cookie(&answer.headers, CSRF_COOKIE).unwrap_or_default())
    }
}

#[async_trait]
impl TokenSource for Login {
    async fn fetch(&self, client: &Client, now: DateTime<Utc>) -> Result<Fetched, SendError> {
        let before = self.csrf(client, now).await?;
        let body = json!({"user": {"user_name": self.user, "password": self.password.expose()}});
        let mut request = client.post(&self.url).json(&body);
        if !before.is_empty() {
            request = request.header(CSRF_HEADER, &before);
        }
        let answer = send(request).await?;
        if !answer.status.is_success() {
            return Err(login_refused("login", &answer, None, now));
        }
        // A session's lifetime is unknown (idle timeout): renewed when refused.
        Ok(Fetched {
            value: self.csrf(client, now).await?,
            expires_in: None,
        })
    }
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
    fn the_csrf_cookie_is_read_from_set_cookie_headers() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("_app_session=s1; path=/; HttpOnly"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("CSRF-TOKEN=t0k3n; path=/; SameSite=Strict"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("t0k3n"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn the_health_check_is_beside_the_login() {
        let login = Login {
            url: "https://primero.example/api/v2/tokens".into(),
            user: "u".into(),
            password: Secret::new("p"),
        };
        assert_eq!(
            login.health_url().unwrap().as_str(),
            "https://primero.example/health/server?session=true"
        );
    }
}

/// Any Set-Cookie headers (#13): a CSRF token or none, never a panic.
#[cfg(test)]
mod tests_arbitrary {
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    use super::*;

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_set_cookie_headers_give_a_token_or_none(values in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "(CSRF-TOKEN|_app_session)?[=; ]{0,3}[ -~]{0,40}".prop_map(String::into_bytes),
        ], 0..8)) {
            let mut h = HeaderMap::new();
            for v in values {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.append(SET_COOKIE, v);
                }
            }
            let _ = cookie(&h, CSRF_COOKIE);
        }
    }
}
