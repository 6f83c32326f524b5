//! Primero v2 (CPIMS+) cases, as its API and webhooks carry them:
//! `{"data": {...}}` with Primero field names (../shared/specs/FORMATS.md §4).
//!
//! `decode` keeps the fields it knows, checks their JSON types, and drops the
//! rest: instances add their own fields and subforms, and what no mapping can
//! name never enters the tree. A known field with the wrong type is a
//! violation at `/data/<field>` (or `/data/<subform>/<row>/<field>`).
//!
//! Normalisation stays small and format-level: yes/no fields become booleans
//! (Primero's `lookup-yes-no` ids are the strings `"true"`/`"false"`), empty
//! strings and nulls are absent, date-times kept as dates take the date as
//! written. Lookup values (`non-gbv`, `stateless_person`, country words) are
//! left to the mapping's code lists, since lookups are instance data.

mod fields;

use std::path::Path;

use serde_json::{Map, Value};

use fields::{CARE_ARRANGEMENTS, FIELDS, IDENTIFIER_FIELDS, Kind};

use crate::mapping::Catalogue;
use crate::schema::{Violation, escape_pointer_segment, push_capped};

/// What an inbound mapping from `primero` may read: every known field (a
/// list also as `field/*`, a subform as `subform/*/field`), plus the two
/// groups the decoder assembles: `identifiers/*` and `current_care_arrangement`.
pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    let mut paths = Vec::new();
    for (name, kind) in FIELDS {
        push_paths(&mut paths, name, *kind);
    }
    for path in [
        "identifiers",
        "identifiers/*",
        "identifiers/*/field",
        "identifiers/*/value",
        "identifiers/*/type",
        "current_care_arrangement",
        "current_care_arrangement/type",
        "current_care_arrangement/caregiver_name",
        "current_care_arrangement/caregiver_relationship",
    ] {
        paths.push(path.to_string());
    }
    Ok(Catalogue::new(paths))
}

fn push_paths(paths: &mut Vec<String>, name: &str, kind: Kind) {
    paths.push(name.to_string());
    match kind {
        Kind::TextList => paths.push(format!("{name}/*")),
        Kind::Subform(row) => {
            paths.push(format!("{name}/*"));
            for (field, kind) in row {
                push_paths(paths, &format!("{name}/*/{field}"), *kind);
            }
        }
        _ => {}
    }
}

/// Decode a Primero case payload into the tree the inbound mapping reads, or
/// every problem found, each by pointer into the payload.
pub fn decode(payload: &Value) -> Result<Value, Vec<Violation>> {
    let mut violations = Vec::new();
    let data = match payload {
        Value::Object(envelope) => match envelope.get("data") {
            Some(Value::Object(data)) => data,
            None | Some(Value::Null) => {
                return Err(vec![violation(
                    "/data".into(),
                    "required",
                    "a Primero case comes as {\"data\": {...}}",
                )]);
            }
            Some(_) => return Err(vec![violation("/data".into(), "type", "must be an object")]),
        },
        _ => {
            return Err(vec![violation(
                String::new(),
                "type",
                "must be a JSON object {\"data\": {...}}",
            )]);
        }
    };
    let mut tree = read_fields(data, FIELDS, "/data", &mut violations);
    let identifiers = identifiers(&tree);
    if !identifiers.is_empty() {
        tree.insert("identifiers".into(), Value::Array(identifiers));
    }
    if let Some(current) = current_care_arrangement(&tree) {
        tree.insert("current_care_arrangement".into(), Value::Object(current));
    }
    if violations.is_empty() {
        Ok(Value::Object(tree))
    } else {
        Err(violations)
    }
}

fn violation(pointer: String, code: &'static str, message: &str) -> Violation {
    Violation {
        pointer,
        code,
        message: message.to_string(),
    }
}

/// The known fields of one object (the case, or a subform row), normalised.
fn read_fields(
    object: &Map<String, Value>,
    known: &[(&str, Kind)],
    base: &str,
    violations: &mut Vec<Violation>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, kind) in known {
        let Some(value) = object.get(*name) else {
            continue;
        };
        let pointer = format!("{base}/{}", escape_pointer_segment(name));
        match read_value(value, *kind, &pointer, violations) {
            Ok(Some(v)) => {
                out.insert(name.to_string(), v);
            }
            Ok(None) => {}
            Err(v) => push_capped(violations, v),
        }
    }
    out
}

/// One known field: `Ok(None)` when it holds no value (null, "", []).
fn read_value(
    value: &Value,
    kind: Kind,
    pointer: &str,
    violations: &mut Vec<Violation>,
) -> Result<Option<Value>, Violation> {
    let wrong =
        |expected: &str| violation(pointer.to_string(), "type", &format!("must be {expected}"));
    if value.is_null() || value.as_str() == Some("") {
        return Ok(None);
    }
    match kind {
        Kind::Text | Kind::Date => match value {
            Value::String(_) => Ok(Some(value.clone())),
            _ => Err(wrong("a string")),
        },
        Kind::Integer => match value {
            Value::Number(n) => integral(n)
                .map(|i| Some(Value::from(i)))
                .ok_or_else(|| wrong("an integer")),
            _ => Err(wrong("an integer")),
        },
        Kind::YesNo => match value {
            Value::Bool(b) => Ok(Some(Value::Bool(*b))),
            Value::String(s) if s == "true" => Ok(Some(Value::Bool(true))),
            Value::String(s) if s == "false" => Ok(Some(Value::Bool(false))),
            _ => Err(wrong("a boolean or the string \"true\" or \"false\"")),
        },
        Kind::DateOfDateTime => match value {
            Value::String(s) => date_as_written(s)
                .map(|d| Some(Value::String(d)))
                .ok_or_else(|| {
                    violation(
                        pointer.to_string(),
                        "format",
                        "must be a date (YYYY-MM-DD) or an RFC 3339 date-time",
                    )
                }),
            _ => Err(wrong("a string")),
        },
        Kind::TextList => match value {
            Value::Array(items) => {
                if let Some(i) = items.iter().position(|v| !v.is_string()) {
                    return Err(violation(
                        format!("{pointer}/{i}"),
                        "type",
                        "must be a string",
                    ));
                }
                Ok((!items.is_empty()).then(|| value.clone()))
            }
            _ => Err(wrong("an array of strings")),
        },
        Kind::Subform(row_fields) => match value {
            Value::Array(rows) => {
                let mut out = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    let row_pointer = format!("{pointer}/{i}");
                    match row {
                        Value::Object(row) => {
                            out.push(Value::Object(read_fields(
                                row,
                                row_fields,
                                &row_pointer,
                                violations,
                            )));
                        }
                        _ => push_capped(
                            violations,
                            violation(row_pointer, "type", "must be an object (a subform row)"),
                        ),
                    }
                }
                Ok((!out.is_empty()).then_some(Value::Array(out)))
            }
            _ => Err(wrong("an array of subform rows")),
        },
    }
}

/// An integer, including one written as a float without a fraction (`11.0`).
fn integral(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
}

/// The date of a date or a date-time, as written: no offset is applied, the
/// same rule as everywhere else (a local date is never shifted).
fn date_as_written(text: &str) -> Option<String> {
    let date = text.get(..10)?;
    let shape_ok = date.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    if !shape_ok {
        return None;
    }
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    if text.len() == 10 || chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        Some(date.to_string())
    } else {
        None
    }
}

/// Primero keeps each identity number in its own field; the canonical record
/// keeps a list. One item per filled field, in a fixed order, named by field
/// so that a code list gives its scheme.
fn identifiers(tree: &Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for field in IDENTIFIER_FIELDS {
        let Some(value) = tree.get(*field) else {
            continue;
        };
        let mut item = Map::new();
        item.insert("field".into(), Value::String(field.to_string()));
        item.insert("value".into(), value.clone());
        if *field == "other_id_no"
            && let Some(kind) = tree.get("other_id_type")
        {
            item.insert("type".into(), kind.clone());
        }
        out.push(Value::Object(item));
    }
    out
}

/// The current care arrangement: the subform row that started last (rows
/// without a start date count as oldest; on a tie, the later row), else
/// Primero's own `current_*` summary fields.
fn current_care_arrangement(tree: &Map<String, Value>) -> Option<Map<String, Value>> {
    let rows = tree.get(CARE_ARRANGEMENTS).and_then(Value::as_array);
    let latest = rows
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .fold(None, |best: Option<&Map<String, Value>>, row| {
            let started = |r: &Map<String, Value>| {
                r.get("care_arrangement_started_date")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            match best {
                Some(b) if started(b) > started(row) => Some(b),
                _ => Some(row),
            }
        });
    let mut out = Map::new();
    let pick = |from: &Map<String, Value>, key: &str| from.get(key).cloned();
    let parts = match latest {
        Some(row) => [
            ("type", pick(row, "care_arrangements_type")),
            ("caregiver_name", pick(row, "name_caregiver")),
            (
                "caregiver_relationship",
                pick(row, "relationship_caregiver"),
            ),
        ],
        None => [
            ("type", pick(tree, "current_care_arrangements_type")),
            ("caregiver_name", pick(tree, "current_name_caregiver")),
            ("caregiver_relationship", None),
        ],
    };
    for (key, value) in parts {
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests;
