//! OpenCRVS 2.x event notification: `POST /api/events/events/notify` with
//! `{eventType, transactionId, createdAtLocation, declaration}`
//! (../shared/specs/FORMATS.md §1.2). Declaration keys and option values belong
//! to the country's configuration, so the catalogue comes from `form.toml` in
//! the destination's mapping folder, not from code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{EncodeError, Encoded};
use crate::mapping::{Catalogue, RouteContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[allow(dead_code)]
    description: String,
    /// Declaration field id -> field type (NAME, ADDRESS, DATE, TEXT, NUMBER, SELECT, ...).
    fields: BTreeMap<String, String>,
}

/// Sub-keys of OpenCRVS's composite values (`CompositeFieldValue.ts`).
fn composite_parts(field_type: &str) -> &'static [&'static str] {
    match field_type {
        "NAME" => &["firstname", "surname", "middlename"],
        "ADDRESS" => &[
            "country",
            "addressType",
            "administrativeArea",
            "streetLevelDetails/**",
        ],
        "AGE" => &["age", "asOfDateRef"],
        _ => &[],
    }
}

const ENVELOPE: [&str; 5] = [
    "eventType",
    "transactionId",
    "createdAtLocation",
    "keepAssignment",
    "annotation/**",
];

pub fn catalogue(folder: &Path) -> Result<Catalogue, String> {
    let file = folder.join("form.toml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("{}: cannot read the country form: {e}", file.display()))?;
    let form: Form =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
    let mut paths: Vec<String> = ENVELOPE.iter().map(|s| s.to_string()).collect();
    for (id, field_type) in &form.fields {
        let parts = composite_parts(field_type);
        if parts.is_empty() {
            paths.push(format!("declaration/{id}"));
        } else {
            paths.extend(parts.iter().map(|p| format!("declaration/{id}/{p}")));
        }
    }
    Ok(Catalogue::new(paths))
}

pub fn encode(tree: &Value, _ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    for required in ["eventType", "transactionId", "createdAtLocation"] {
        if !tree.get(required).is_some_and(Value::is_string) {
            return Err(EncodeError::Missing(required.into()));
        }
    }
    let mut body = tree.clone();
    if body.get("declaration").is_none() {
        body["declaration"] = Value::Object(Default::default());
    }
    Ok(Encoded {
        bytes: serde_json::to_vec(&body).expect("a JSON tree serialises"),
        extension: "json",
        content_type: "application/json",
    })
}
