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
    // The tree is the body: it is copied only to add the declaration
    // OpenCRVS requires when the mapping wrote no declaration field.
    let with_declaration;
    let body = if tree.get("declaration").is_some() {
        tree
    } else {
        let mut body = tree.clone();
        body["declaration"] = Value::Object(Default::default());
        with_declaration = body;
        &with_declaration
    };
    Ok(Encoded {
        bytes: {
            // A declaration is about a kilobyte: one buffer, not four doublings.
            let mut bytes = Vec::with_capacity(2048);
            serde_json::to_writer(&mut bytes, body).expect("a JSON tree serialises");
            bytes
        },
        extension: "json",
        content_type: "application/json",
    })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::model::RecordId;

    fn ctx() -> RouteContext {
        RouteContext {
            record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
            record_version: 1,
            route: "r".into(),
            destination: "d".into(),
            timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            attempt: 1,
            subject: None,
            locations: None,
            legal_basis: None,
        }
    }

    #[test]
    fn the_body_is_the_tree_with_a_declaration_always_present() {
        let tree = json!({"eventType": "v2.birth", "transactionId": "t", "createdAtLocation": "l",
            "declaration": {"child.dob": "2026-01-02"}, "keepAssignment": true});
        let bytes = encode(&tree, &ctx()).unwrap().bytes;
        assert_eq!(bytes, serde_json::to_vec(&tree).unwrap());
        let bare = json!({"eventType": "v2.birth", "transactionId": "t", "createdAtLocation": "l",
            "keepAssignment": true});
        let bytes = encode(&bare, &ctx()).unwrap().bytes;
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"createdAtLocation":"l","declaration":{},"eventType":"v2.birth","keepAssignment":true,"transactionId":"t"}"#
        );
    }
}
