//! How a request proves who sends it, and the one retry after a refusal: a
//! refused cached credential is replaced (once, shared by concurrent sends)
//! and the request sent again; refused again, the credentials are wrong and
//! the failure is permanent.

use reqwest::{Client, RequestBuilder};

use super::http_client::{Answer, Resend, send_as};
use super::oauth::{ClientCredentials, CredentialsIn};
use super::token_cache::{Token, TokenCache};
use super::{BuildError, Clock, SendError};
use crate::config::{AuthConfig, DestinationConfig, Secret};

pub(super) enum Auth {
    /// Nothing at the HTTP level (X-Road: mutual TLS to the Security Server).
    None,
    /// HTTP Basic on every request: nothing to renew.
    Basic { user: String, password: Secret },
    /// `Authorization: Bearer` with a cached token (OAuth client credentials).
    Bearer(TokenCache),
    /// Primero's session: the cookie lives in the client's jar; the cached
    /// value is the CSRF token, echoed as `X-CSRF-Token`.
    Session(TokenCache),
}

impl Auth {
    /// The modes any HTTP registry may use: none, basic, client credentials
    /// in a form body.
    pub fn standard(dest: &DestinationConfig, clock: Clock) -> Result<Auth, BuildError> {
        Auth::standard_with(dest, clock, CredentialsIn::Form)
    }

    /// The same, with client credentials sent where the registry reads them.
    pub fn standard_with(
        dest: &DestinationConfig,
        clock: Clock,
        placement: CredentialsIn,
    ) -> Result<Auth, BuildError> {
        match &dest.auth {
            AuthConfig::None => Ok(Auth::None),
            AuthConfig::Basic { user, password } => Ok(Auth::Basic {
                user: user.clone(),
                password: password.clone(),
            }),
            AuthConfig::ClientCredentials {
                token_url,
                client_id,
                client_secret,
            } => Ok(Auth::Bearer(TokenCache::new(
                ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    placement,
                },
                clock,
            ))),
            AuthConfig::PrimeroSession { .. } => Err(BuildError::new(
                dest,
                format!(
                    "auth mode {} is a Primero login; a {} destination cannot use it",
                    mode_name(&dest.auth),
                    dest.kind.as_str()
                ),
            )),
        }
    }

    fn cache(&self) -> Option<&TokenCache> {
        match self {
            Auth::Bearer(cache) | Auth::Session(cache) => Some(cache),
            Auth::None | Auth::Basic { .. } => None,
        }
    }

    fn apply(&self, request: RequestBuilder, token: Option<&Token>) -> RequestBuilder {
        match (self, token) {
            (Auth::Basic { user, password }, _) => {
                request.basic_auth(user, Some(password.expose()))
            }
            (Auth::Bearer(_), Some(t)) => request.bearer_auth(&t.value),
            (Auth::Session(_), Some(t)) if !t.value.is_empty() => {
                request.header("X-CSRF-Token", &t.value)
            }
            _ => request,
        }
    }

    /// Send `request` with credentials. When `refused` says the answer refused
    /// them, renew a cached credential and send once more.
    pub async fn send(
        &self,
        client: &Client,
        request: impl Fn() -> RequestBuilder,
        refused: impl Fn(&Answer) -> bool,
    ) -> Result<Answer, SendError> {
        self.send_as(client, request, refused, Resend::Safe).await
    }

    /// [`Auth::send`], a lost answer classified as `resend` says. A refusal
    /// of the credentials is an answer: the request was not taken, so sending
    /// it once more with fresh ones is safe either way.
    pub async fn send_as(
        &self,
        client: &Client,
        request: impl Fn() -> RequestBuilder,
        refused: impl Fn(&Answer) -> bool,
        resend: Resend,
    ) -> Result<Answer, SendError> {
        let token = match self.cache() {
            Some(cache) => Some(cache.current(client).await?),
            None => None,
        };
        let send = |request| send_as(request, resend);
        let answer = send(self.apply(request(), token.as_ref())).await?;
        if !refused(&answer) {
            return Ok(answer);
        }
        let (Some(cache), Some(token)) = (self.cache(), token) else {
            return Err(credentials_refused(&answer, ""));
        };
        let fresh = cache.renew(client, &token).await?;
        let answer = send(self.apply(request(), Some(&fresh))).await?;
        if refused(&answer) {
            return Err(credentials_refused(&answer, " after a fresh login"));
        }
        Ok(answer)
    }
}

fn credentials_refused(answer: &Answer, when: &str) -> SendError {
    SendError::Permanent {
        reason: format!(
            "status {}: credentials refused{when}",
            answer.status.as_u16()
        ),
    }
}

/// A refusal of credentials in plain HTTP: 401.
pub(super) fn unauthorized(answer: &Answer) -> bool {
    answer.status == reqwest::StatusCode::UNAUTHORIZED
}

/// The config name of an auth mode, for errors.
pub(super) fn mode_name(auth: &AuthConfig) -> &'static str {
    match auth {
        AuthConfig::None => "none",
        AuthConfig::ClientCredentials { .. } => "client-credentials",
        AuthConfig::PrimeroSession { .. } => "session",
        AuthConfig::Basic { .. } => "basic",
    }
}
