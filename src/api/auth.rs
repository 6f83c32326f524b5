//! Bearer-token authentication. Tokens are compared by their SHA-256, the only
//! form in which the config holds them.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::Problem;
use crate::config::ClientConfig;
use crate::model::Role;

/// Clients by the SHA-256 of their token.
pub struct Clients(HashMap<[u8; 32], ClientConfig>);

impl Clients {
    pub fn new(clients: &[ClientConfig]) -> Clients {
        Clients(
            clients
                .iter()
                .map(|c| (c.token_sha256, c.clone()))
                .collect(),
        )
    }

    fn by_token(&self, token: &str) -> Option<&ClientConfig> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.get(&hash)
    }
}

/// The authenticated caller of a request.
pub struct Caller(pub ClientConfig);

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.0.role == role {
            Ok(())
        } else {
            Err(Problem::forbidden(&format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(Problem::unauthorized)?;
        state
            .clients
            .by_token(token)
            .cloned()
            .map(Caller)
            .ok_or_else(Problem::unauthorized)
    }
}
