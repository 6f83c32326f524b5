//! `x-sensitivity` tags: which canonical fields are special-category data.
//!
//! The policy work relies on this list to refuse, at load time, a mapping that
//! would send a category to a route whose policy does not allow it.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use serde_json::Value;

/// Categories of sensitive data. A tag outside this list is a schema error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Gbv,
    Health,
    Mhpss,
    Ethnicity,
    Religion,
    Protection,
    Displacement,
}

impl Sensitivity {
    pub const ALL: [Sensitivity; 7] = [
        Sensitivity::Gbv,
        Sensitivity::Health,
        Sensitivity::Mhpss,
        Sensitivity::Ethnicity,
        Sensitivity::Religion,
        Sensitivity::Protection,
        Sensitivity::Displacement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Gbv => "gbv",
            Sensitivity::Health => "health",
            Sensitivity::Mhpss => "mhpss",
            Sensitivity::Ethnicity => "ethnicity",
            Sensitivity::Religion => "religion",
            Sensitivity::Protection => "protection",
            Sensitivity::Displacement => "displacement",
        }
    }

    pub fn parse(s: &str) -> Option<Sensitivity> {
        Sensitivity::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A tagged field: its path in a record (`*` stands for any array index) and
/// its category. A tag on an object or array covers everything beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SensitiveField {
    pub path: String,
    pub category: Sensitivity,
}

impl SensitiveField {
    /// Does reading `pointer` (`/mother/identifiers/*/value`) read this field's data?
    pub fn covers(&self, pointer: &str) -> bool {
        pointer == self.path
            || pointer
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Does reading `pointer` read any of this field's data: the field, a
    /// part of it, or an object that holds it (`""`: the whole record)?
    pub fn read_by(&self, pointer: &str) -> bool {
        self.covers(pointer)
            || self
                .path
                .strip_prefix(pointer)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a walk over a schema learns: its tagged fields and every field path
/// (`mother/identifiers/*/value`) a record of it may hold.
#[derive(Debug)]
pub(super) struct SchemaFacts {
    pub sensitive_fields: Vec<SensitiveField>,
    pub paths: BTreeSet<String>,
}

/// Walk a schema, following local `$ref`s and combinators.
pub(super) fn collect(schema: &Value) -> Result<SchemaFacts, Vec<String>> {
    let mut walk = Walk {
        root: schema,
        found: HashSet::new(),
        paths: BTreeSet::new(),
        errors: Vec::new(),
        refs_in_progress: Vec::new(),
    };
    walk.node(schema, "");
    if walk.errors.is_empty() {
        let mut fields: Vec<_> = walk.found.into_iter().collect();
        fields.sort();
        Ok(SchemaFacts {
            sensitive_fields: fields,
            paths: walk.paths,
        })
    } else {
        Err(walk.errors)
    }
}

struct Walk<'a> {
    root: &'a Value,
    found: HashSet<SensitiveField>,
    paths: BTreeSet<String>,
    errors: Vec<String>,
    refs_in_progress: Vec<String>,
}

impl<'a> Walk<'a> {
    fn node(&mut self, schema: &'a Value, path: &str) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        if let Some(field_path) = path.strip_prefix('/') {
            self.paths.insert(field_path.to_string());
        }
        if let Some(tag) = obj.get("x-sensitivity") {
            match tag.as_str().and_then(Sensitivity::parse) {
                Some(category) => {
                    self.found.insert(SensitiveField {
                        path: if path.is_empty() {
                            "/".into()
                        } else {
                            path.into()
                        },
                        category,
                    });
                }
                None => self.errors.push(format!(
                    "x-sensitivity at {} must be one of {}",
                    if path.is_empty() { "/" } else { path },
                    Sensitivity::ALL.map(Sensitivity::as_str).join(", ")
                )),
            }
        }
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            self.reference(reference, path);
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let child = format!("{path}/{}", super::escape_pointer_segment(name));
                self.node(sub, &child);
            }
        }
        for key in ["items", "additionalProperties", "contains"] {
            if let Some(sub) = obj.get(key) {
                self.node(sub, &format!("{path}/*"));
            }
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                for sub in branches {
                    self.node(sub, path);
                }
            }
        }
        for key in ["if", "then", "else", "not"] {
            if let Some(sub) = obj.get(key) {
                self.node(sub, path);
            }
        }
    }

    fn reference(&mut self, reference: &str, path: &str) {
        let Some(pointer) = reference.strip_prefix('#') else {
            self.errors.push(format!(
                "$ref at {path} is not local to the schema; only #/... references are allowed"
            ));
            return;
        };
        // A recursive definition would loop forever; one level of it is enough.
        if self.refs_in_progress.iter().any(|r| r == reference) {
            return;
        }
        match self.root.pointer(pointer) {
            Some(target) => {
                self.refs_in_progress.push(reference.to_string());
                self.node(target, path);
                self.refs_in_progress.pop();
            }
            None => self
                .errors
                .push(format!("$ref {reference} at {path} points nowhere")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tags_are_found_through_refs_arrays_and_combinators() {
        let schema = json!({
            "$defs": {"person": {"type": "object", "properties": {
                "religion": {"type": "string", "x-sensitivity": "religion"}}}},
            "properties": {
                "mother": {"$ref": "#/$defs/person"},
                "concerns": {"type": "array", "x-sensitivity": "protection",
                    "items": {"type": "string"}},
                "incidents": {"type": "array", "items": {"type": "object", "properties": {
                    "narrative": {"type": "string", "x-sensitivity": "gbv"}}}},
                "health": {"oneOf": [{"properties": {"hiv": {"x-sensitivity": "health"}}}]}
            }
        });
        let facts = collect(&schema).unwrap();
        assert!(facts.paths.contains("incidents/*/narrative"));
        assert!(facts.paths.contains("mother/religion"));
        let fields = facts.sensitive_fields;
        let listed: Vec<_> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.category.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("/concerns", "protection"),
                ("/health/hiv", "health"),
                ("/incidents/*/narrative", "gbv"),
                ("/mother/religion", "religion"),
            ]
        );
    }

    #[test]
    fn unknown_tags_and_remote_refs_are_errors() {
        let schema = json!({"properties": {
            "a": {"x-sensitivity": "secret"},
            "b": {"$ref": "https://example.org/schema.json"},
            "c": {"$ref": "#/$defs/missing"}
        }});
        let errors = collect(&schema).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn a_field_covers_itself_and_what_is_beneath_it_only() {
        let f = SensitiveField {
            path: "/mother".into(),
            category: Sensitivity::Displacement,
        };
        assert!(f.covers("/mother"));
        assert!(f.covers("/mother/identifiers/*/value"));
        assert!(!f.covers("/mother_mhpss_screening"));
        assert!(!f.covers("/child"));
    }

    #[test]
    fn recursive_definitions_terminate() {
        let schema = json!({"$defs": {"node": {"properties": {
            "child": {"$ref": "#/$defs/node"},
            "note": {"x-sensitivity": "mhpss"}}}},
            "$ref": "#/$defs/node"});
        let fields = collect(&schema).unwrap().sensitive_fields;
        assert!(fields.iter().any(|f| f.path == "/note"));
    }
}
