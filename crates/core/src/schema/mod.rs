//! The canonical JSON Schemas (draft 2020-12) and what the gateway reads from them.
//!
//! Architecture invariant: no I/O and no panics on any record. The schemas are
//! compiled into the binary, so a deployed gateway cannot run with schemas other
//! than the ones it was tested with; remote `$ref` resolution is not compiled in
//! (`jsonschema` without its `resolve-http`/`resolve-file` features).
//!
//! Problems are reported by JSON pointer and rule, never with the offending value:
//! values are personal data and problems end up in logs and the audit log.

mod sensitivity;

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Serialize;
use serde_json::Value;

use crate::model::RecordType;
pub use sensitivity::{SensitiveField, Sensitivity};

/// The schema text of each record type, as shipped in `schemas/`.
pub fn schema_source(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::BirthNotification => {
            include_str!("../../../../schemas/birth-notification.schema.json")
        }
        RecordType::ChildProtectionCase => {
            include_str!("../../../../schemas/child-protection-case.schema.json")
        }
        RecordType::Consent => include_str!("../../../../schemas/consent.schema.json"),
    }
}

/// One reason a record is invalid: where (RFC 6901 pointer), which rule, and a
/// message that never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub code: &'static str,
    pub message: String,
}

/// At most this many problems are listed for one record, in the answer and in
/// the exchange log; past it, validation stops and one `too_many_problems`
/// entry says that more were found. A body of many small mistakes must not
/// grow into an answer, an audit row and a heap many times its size.
pub const MAX_PROBLEMS: usize = 100;

/// Add a problem unless the list is already past [`MAX_PROBLEMS`] (one more
/// than the cap is kept, so that [`cap_problems`] can tell there were more).
pub fn push_capped(violations: &mut Vec<Violation>, violation: Violation) {
    if violations.len() <= MAX_PROBLEMS {
        violations.push(violation);
    }
}

/// Cut a list to [`MAX_PROBLEMS`], ending it with a `too_many_problems` entry
/// when more were found.
pub fn cap_problems(mut violations: Vec<Violation>) -> Vec<Violation> {
    if violations.len() > MAX_PROBLEMS {
        violations.truncate(MAX_PROBLEMS);
        violations.push(Violation {
            pointer: String::new(),
            code: "too_many_problems",
            message: format!(
                "has more problems than the {MAX_PROBLEMS} listed; fix these and send it again"
            ),
        });
    }
    violations
}

/// A schema that does not compile or carries an unknown sensitivity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub record_type: RecordType,
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schemas/{}.schema.json: {}",
            self.record_type, self.message
        )
    }
}

struct Compiled {
    validator: jsonschema::Validator,
    sensitive_fields: Vec<SensitiveField>,
    paths: BTreeSet<String>,
}

/// Compiled validators and sensitivity tags for every record type.
pub struct SchemaRegistry {
    compiled: HashMap<RecordType, Compiled>,
}

impl SchemaRegistry {
    /// Compile every embedded schema, reporting every problem found.
    pub fn load() -> Result<SchemaRegistry, Vec<SchemaError>> {
        let mut compiled = HashMap::new();
        let mut errors = Vec::new();
        for record_type in RecordType::ALL {
            match compile(record_type, schema_source(record_type)) {
                Ok(c) => {
                    compiled.insert(record_type, c);
                }
                Err(mut es) => errors.append(&mut es),
            }
        }
        if errors.is_empty() {
            Ok(SchemaRegistry { compiled })
        } else {
            Err(errors)
        }
    }

    /// Every problem of `record` against its type's schema; empty when valid.
    pub fn validate(&self, record_type: RecordType, record: &Value) -> Vec<Violation> {
        let validator = &self.compiled[&record_type].validator;
        if validator.is_valid(record) {
            return Vec::new();
        }
        let mut violations = Vec::new();
        for error in validator.iter_errors(record) {
            describe(
                error.instance_path().as_str(),
                error.kind(),
                &mut violations,
            );
            // Stop validating once the list is past the cap: the rest would
            // not be listed anyway.
            if violations.len() > MAX_PROBLEMS {
                break;
            }
        }
        violations.sort_by(|a, b| a.pointer.cmp(&b.pointer).then(a.code.cmp(b.code)));
        violations.dedup();
        cap_problems(violations)
    }

    /// The fields of a record type that carry an `x-sensitivity` tag.
    pub fn sensitive_fields(&self, record_type: RecordType) -> &[SensitiveField] {
        &self.compiled[&record_type].sensitive_fields
    }

    /// Every field path a record of this type may hold (`mother/identifiers/*/value`):
    /// what a mapping may read from it, or write into it.
    pub fn field_paths(&self, record_type: RecordType) -> &BTreeSet<String> {
        &self.compiled[&record_type].paths
    }
}

fn compile(record_type: RecordType, source: &str) -> Result<Compiled, Vec<SchemaError>> {
    let error = |message: String| SchemaError {
        record_type,
        message,
    };
    let schema: Value =
        serde_json::from_str(source).map_err(|e| vec![error(format!("not valid JSON: {e}"))])?;
    let mut errors = Vec::new();
    // The canonical schemas' patterns are plain regular expressions (no
    // look-around, no back-references): the `regex` engine runs them in
    // linear time, faster than fancy-regex's wrapper.
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .map_err(|e| errors.push(error(format!("does not compile: {e}"))))
        .ok();
    let facts = sensitivity::collect(&schema)
        .map_err(|es| errors.extend(es.into_iter().map(error)))
        .ok();
    match (validator, facts) {
        (Some(validator), Some(facts)) if errors.is_empty() => Ok(Compiled {
            validator,
            sensitive_fields: facts.sensitive_fields,
            paths: facts.paths,
        }),
        _ => Err(errors),
    }
}

/// Escape one JSON-pointer segment (RFC 6901).
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Field names come from the input; past this length a name is not echoed.
const MAX_ECHOED_FIELD_NAME: usize = 64;

fn describe(pointer: &str, kind: &ValidationErrorKind, out: &mut Vec<Violation>) {
    let mut push = |pointer: String, code: &'static str, message: String| {
        out.push(Violation {
            pointer,
            code,
            message,
        })
    };
    use ValidationErrorKind as K;
    match kind {
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                if name.len() <= MAX_ECHOED_FIELD_NAME {
                    push(
                        format!("{pointer}/{}", escape_pointer_segment(name)),
                        "unknown_field",
                        "is not a field of this record type".into(),
                    );
                } else {
                    push(
                        pointer.into(),
                        "unknown_field",
                        "has a field that this record type does not define".into(),
                    );
                }
            }
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            push(
                format!("{pointer}/{}", escape_pointer_segment(name)),
                "required",
                "is required".into(),
            );
        }
        K::Type { kind } => push(
            pointer.into(),
            "type",
            format!("must be of type {}", type_names(kind)),
        ),
        K::Enum { options } => push(pointer.into(), "enum", enum_message(options)),
        K::Constant { expected_value } => push(
            pointer.into(),
            "const",
            format!("must be exactly {expected_value}"),
        ),
        K::Format { format } => push(
            pointer.into(),
            "format",
            format!("must be a valid {format}"),
        ),
        K::Pattern { pattern } => push(
            pointer.into(),
            "pattern",
            format!("must match the pattern {pattern}"),
        ),
        K::MaxLength { limit } => push(
            pointer.into(),
            "max_length",
            format!("must be at most {limit} characters"),
        ),
        K::MinLength { limit } => push(
            pointer.into(),
            "min_length",
            format!("must be at least {limit} characters"),
        ),
        K::MaxItems { limit } => push(
            pointer.into(),
            "max_items",
            format!("must have at most {limit} items"),
        ),
        K::MinItems { limit } => push(
            pointer.into(),
            "min_items",
            format!("must have at least {limit} items"),
        ),
        K::Maximum { limit } => push(
            pointer.into(),
            "maximum",
            format!("must be at most {limit}"),
        ),
        K::Minimum { limit } => push(
            pointer.into(),
            "minimum",
            format!("must be at least {limit}"),
        ),
        K::ExclusiveMaximum { limit } => push(
            pointer.into(),
            "maximum",
            format!("must be less than {limit}"),
        ),
        K::ExclusiveMinimum { limit } => push(
            pointer.into(),
            "minimum",
            format!("must be greater than {limit}"),
        ),
        K::OneOfNotValid { .. } | K::AnyOf { .. } => push(
            pointer.into(),
            "one_of",
            "does not match any of the allowed shapes (check which fields may appear together)"
                .into(),
        ),
        K::OneOfMultipleValid { .. } => push(
            pointer.into(),
            "one_of",
            "matches more than one of the allowed shapes: give exactly one of the alternatives"
                .into(),
        ),
        K::Not { .. } => push(
            pointer.into(),
            "not",
            "has a combination of fields that is not allowed".into(),
        ),
        K::UniqueItems => push(
            pointer.into(),
            "unique_items",
            "must not repeat items".into(),
        ),
        _ => push(pointer.into(), "invalid", "is not valid".into()),
    }
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// Allowed values come from the schema, not the record, so they may be listed,
/// unless there are too many to read.
fn enum_message(options: &Value) -> String {
    match options.as_array() {
        Some(values) if values.len() <= 12 => {
            let listed: Vec<String> = values.iter().map(Value::to_string).collect();
            format!("must be one of {}", listed.join(", "))
        }
        _ => "must be one of the values the schema allows".into(),
    }
}

#[cfg(test)]
mod tests;
