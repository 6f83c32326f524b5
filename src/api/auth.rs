//! The authenticated caller of a request. `gate` identifies it (bearer token
//! by its SHA-256, the only form in which the config holds tokens; client
//! certificate; or both) and puts it in the request's extensions; handlers
//! take it from there.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::problem::Problem;
use crate::config::ClientConfig;
use crate::model::Role;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub ClientConfig);

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        self.require_any(&[role])
    }

    pub fn require_any(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(Problem::forbidden(&format!(
                "this needs the {} role",
                names.join(" or ")
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(Problem::unauthorized)
    }
}
