//! STUB: OpenCRVS 1.x FHIR notification dialect. Not built yet; loading a route to this format fails with a
//! clear message until it is.

use std::path::Path;

use serde_json::Value;

use super::{EncodeError, Encoded};
use crate::mapping::{Catalogue, RouteContext};

pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    Err("the opencrvs-v1 format is not built yet".into())
}

pub fn encode(_tree: &Value, _ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    Err(EncodeError::Invalid {
        path: String::new(),
        reason: "the opencrvs-v1 format is not built yet".into(),
    })
}
