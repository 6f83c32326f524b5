//! STUB: Primero v2 cases from webhooks and the API. Not built yet; loading this source fails with a clear
//! message until it is.

use std::path::Path;

use serde_json::Value;

use crate::mapping::Catalogue;
use crate::schema::Violation;

pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    Err("the primero source format is not built yet".into())
}

pub fn decode(_payload: &Value) -> Result<Value, Vec<Violation>> {
    Err(vec![Violation {
        pointer: String::new(),
        code: "unsupported_source",
        message: "this source format is not built yet".into(),
    }])
}
