//! The forms and lookups of one Primero instance, and what Primero v2.15.2
//! does with a record's `data` against them.
//!
//! Primero first passes `data` through Rails strong parameters built from the
//! role's writeable fields (`record_params` in
//! app/controllers/api/v2/concerns/record.rb, `strong_params` in
//! app/services/json_validator_service.rb): a key no field names, or a value
//! of the wrong shape (a list for a scalar field, a scalar for a list), is
//! silently dropped, not refused (Primero's own spec: "does not write in a
//! subform summary fields", spec/requests/api/v2/children_controller_spec.rb).
//! What remains is validated against the JSON schema of
//! app/services/record_json_validator_service.rb, with lookup values checked
//! since v2.15.0 (app/services/permitted_field_values_service.rb): a failure
//! is 422 "Invalid Record JSON" with the failing JSON pointers.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Examplia's instance (seed forms of v2.15.2 plus Examplia's additions).
pub(crate) const EXAMPLIA: &str = include_str!("primero-examplia-instance.toml");

/// `PermittedFieldService::UUID_REGEX`: lowercase hex only.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups.iter().zip(lengths).all(|(g, n)| {
            g.len() == n
                && g.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    multi: bool,
    lookup: Option<String>,
    #[allow(dead_code)]
    source: Option<String>,
    options: Option<Vec<String>>,
    /// A date_field with `date_include_time`.
    #[serde(default)]
    time: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Additions {
    #[serde(default)]
    fields: BTreeMap<String, FieldSpec>,
    #[serde(default)]
    lookups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    release: String,
    modules: Vec<String>,
    fields: BTreeMap<String, FieldSpec>,
    subforms: BTreeMap<String, BTreeMap<String, FieldSpec>>,
    lookups: BTreeMap<String, Vec<String>>,
    examplia: Additions,
}

#[derive(Debug)]
pub(crate) struct Instance {
    modules: Vec<String>,
    fields: BTreeMap<String, FieldSpec>,
    subforms: BTreeMap<String, BTreeMap<String, FieldSpec>>,
    lookups: BTreeMap<String, Vec<String>>,
}

/// What Primero made of a record's `data`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Checked {
    /// What strong parameters kept.
    pub kept: Map<String, Value>,
    /// Pointers of what strong parameters dropped without a word.
    pub dropped: Vec<String>,
    /// Pointers the JSON schema refused (422 when not empty).
    pub invalid: Vec<String>,
}

impl Instance {
    pub fn parse(text: &str) -> Result<Instance, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut fields = file.fields;
        fields.extend(file.examplia.fields);
        let mut lookups = file.lookups;
        for (id, values) in file.examplia.lookups {
            lookups.entry(id).or_default().extend(values);
        }
        Ok(Instance {
            modules: file.modules,
            fields,
            subforms: file.subforms,
            lookups,
        })
    }

    pub fn examplia() -> Instance {
        Instance::parse(EXAMPLIA).expect("the embedded Examplia instance parses")
    }

    /// Strong parameters, then the schema. `update` is a PATCH: `id` is not
    /// writeable (`permitted_fields_schema(update)` drops it).
    pub fn check(&self, data: &Map<String, Value>, update: bool) -> Checked {
        let mut out = Checked::default();
        // Without a module no form field is writeable (`filter_writeable_fields`
        // joins on the module): only the core fields stay.
        let module = update || data.get("module_id").is_some_and(Value::is_string);
        for (key, value) in data {
            let pointer = format!("/{key}");
            match self.core(key, value, update) {
                Some(true) => {
                    out.kept.insert(key.clone(), value.clone());
                    continue;
                }
                Some(false) => {
                    out.kept.insert(key.clone(), value.clone());
                    out.invalid.push(pointer);
                    continue;
                }
                None => {}
            }
            let Some(spec) = self.fields.get(key).filter(|_| module) else {
                out.dropped.push(pointer);
                continue;
            };
            if spec.kind == "subform" {
                match self.subform(key, value, &pointer, &mut out) {
                    Some(rows) => {
                        out.kept.insert(key.clone(), rows);
                    }
                    None => out.dropped.push(pointer),
                }
                continue;
            }
            if !permitted_shape(spec, value) {
                out.dropped.push(pointer);
                continue;
            }
            self.value(spec, value, &pointer, &mut out.invalid);
            out.kept.insert(key.clone(), value.clone());
        }
        out
    }

    /// `PERMITTED_CORE_FIELDS_SCHEMA` (the ones a case create uses):
    /// Some(valid) for a core field, None for any other key.
    fn core(&self, key: &str, value: &Value, update: bool) -> Option<bool> {
        match key {
            "id" if !update => Some(value.as_str().is_some_and(is_uuid)),
            "module_id" => Some(
                value
                    .as_str()
                    .is_some_and(|m| self.modules.iter().any(|x| x == m)),
            ),
            "owned_by" => Some(value.is_string()),
            "record_state" => Some(value.is_boolean()),
            _ => None,
        }
    }

    /// A subform's rows as strong parameters keep them, schema errors noted.
    fn subform(
        &self,
        name: &str,
        value: &Value,
        pointer: &str,
        out: &mut Checked,
    ) -> Option<Value> {
        let fields = self.subforms.get(name)?;
        if value.is_null() {
            return Some(Value::Null);
        }
        let rows = value.as_array()?;
        let mut kept = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let Some(row) = row.as_object() else {
                // permit() keeps hashes only.
                continue;
            };
            let mut kept_row = Map::new();
            for (key, v) in row {
                let at = format!("{pointer}/{i}/{key}");
                match (key.as_str(), fields.get(key)) {
                    ("unique_id", _) => {
                        if !v.as_str().is_some_and(is_uuid) {
                            out.invalid.push(at);
                        }
                    }
                    ("_destroy", _) => {
                        if !(v.is_boolean() || v.is_null()) {
                            out.invalid.push(at);
                        }
                    }
                    (_, Some(spec)) if permitted_shape(spec, v) => {
                        self.value(spec, v, &at, &mut out.invalid)
                    }
                    _ => {
                        out.dropped.push(at);
                        continue;
                    }
                }
                kept_row.insert(key.clone(), v.clone());
            }
            kept.push(Value::Object(kept_row));
        }
        Some(Value::Array(kept))
    }

    /// The schema of one field (`build_schema`), pointers of what fails.
    fn value(&self, spec: &FieldSpec, value: &Value, pointer: &str, invalid: &mut Vec<String>) {
        let ok = match spec.kind.as_str() {
            "text_field" | "textarea" => value.is_string() || value.is_null(),
            "tick_box" => value.is_boolean(),
            "numeric_field" => {
                value.is_null() || value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            "date_field" => {
                value.is_null() || value.as_str().is_some_and(|s| date_ok(s, spec.time))
            }
            "select_box" if spec.multi => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        if !item.as_str().is_some_and(|s| self.allowed(spec, s)) {
                            invalid.push(format!("{pointer}/{i}"));
                        }
                    }
                }
                true
            }
            "select_box" => {
                value.is_null() || value.as_str().is_some_and(|s| self.allowed(spec, s))
            }
            "radio_button" => {
                value.is_null()
                    || value.as_str().is_some_and(|s| self.allowed(spec, s))
                    || (value.is_boolean() && self.boolean_options(spec))
            }
            _ => true,
        };
        if !ok {
            invalid.push(pointer.to_string());
        }
    }

    /// The field's option ids, or None when Primero does not check them
    /// (`Field#options?`: a lookup or option strings; Location and Agency are not).
    fn options<'a>(&'a self, spec: &'a FieldSpec) -> Option<&'a [String]> {
        if let Some(id) = &spec.lookup {
            // A lookup the instance lacks has no values: nothing is allowed.
            return Some(self.lookups.get(id).map(Vec::as_slice).unwrap_or(&[]));
        }
        spec.options.as_deref()
    }

    fn allowed(&self, spec: &FieldSpec, value: &str) -> bool {
        self.options(spec)
            .is_none_or(|ids| ids.iter().any(|id| id == value))
    }

    /// `radio_field_schema`: booleans only when the options are true/false.
    fn boolean_options(&self, spec: &FieldSpec) -> bool {
        self.options(spec)
            .is_some_and(|ids| ids.iter().all(|id| id == "true" || id == "false"))
    }

    #[cfg(test)]
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// What `permit` keeps: scalars for scalar fields, a list of scalars for a
/// multi-select.
fn permitted_shape(spec: &FieldSpec, value: &Value) -> bool {
    let scalar = |v: &Value| !(v.is_array() || v.is_object());
    if spec.kind == "select_box" && spec.multi {
        value
            .as_array()
            .is_some_and(|items| items.iter().all(scalar))
    } else {
        scalar(value)
    }
}

/// json_schemer's `date` (RFC 3339 full-date) and `date-time` formats.
fn date_ok(s: &str, time: bool) -> bool {
    if time {
        DateTime::parse_from_rfc3339(s).is_ok()
    } else {
        s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(data: Value) -> Checked {
        Instance::examplia().check(data.as_object().unwrap(), false)
    }

    #[test]
    fn the_embedded_instance_has_the_seed_fields_and_examplia_s_own() {
        let i = Instance::examplia();
        for f in [
            "name_first",
            "sex",
            "consent_for_services",
            "consent_overridden",
        ] {
            assert!(i.has_field(f), "{f}");
        }
        // Primero keeps no reason for an override, and neither does Examplia.
        assert!(!i.has_field("consent_override_reason"));
    }

    #[test]
    fn unknown_fields_and_wrong_shapes_are_dropped_silently() {
        let c = check(json!({
            "module_id": "primeromodule-cp",
            "name_first": "x",
            "consent_override_reason": "x",
            "ethnicity": "arab",
            "family_details_section": [{"unique_id": "0d6c2f8e-7a43-4a8b-9d0e-3f1b2c4d5e6f",
                                         "relation": "mother", "relation_hobby": "x"}]
        }));
        assert!(c.invalid.is_empty(), "{:?}", c.invalid);
        assert_eq!(
            c.dropped,
            [
                "/consent_override_reason",
                "/ethnicity",
                "/family_details_section/0/relation_hobby"
            ]
        );
        assert!(!c.kept.contains_key("consent_override_reason"));
        assert_eq!(c.kept["family_details_section"][0]["relation"], "mother");
    }

    #[test]
    fn lookup_values_types_and_formats_are_refused_by_pointer() {
        let c = check(json!({
            "module_id": "primeromodule-xx",
            "sex": "unknown",
            "nationality": ["syria", "atlantis"],
            "consent_for_tracing": true,
            "consent_reporting": "maybe",
            "consent_overridden": null,
            "age": "9",
            "date_of_birth": "2015-13-01",
            "interview_subject": "child",
            "notes_section": [{"unique_id": "NOT-A-UUID", "note_date": "2026-10-01"}]
        }));
        assert_eq!(
            c.invalid,
            [
                "/age",
                "/consent_overridden",
                "/consent_reporting",
                "/date_of_birth",
                "/interview_subject",
                "/module_id",
                "/nationality/1",
                "/notes_section/0/note_date",
                "/notes_section/0/unique_id",
                "/sex"
            ]
        );
        let fine = check(json!({
            "module_id": "primeromodule-cp",
            "sex": "other",
            "legitimate_basis": ["vital_interest"],
            "location_current": "EX0402",
            "notes_section": [{"unique_id": "0d6c2f8e-7a43-4a8b-9d0e-3f1b2c4d5e6f",
                               "note_date": "2026-10-01T00:00:00Z"}]
        }));
        assert!(
            fine.invalid.is_empty() && fine.dropped.is_empty(),
            "{fine:?}"
        );
    }
}
