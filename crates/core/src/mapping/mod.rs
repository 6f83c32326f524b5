//! Mappings: declarative files that say, field by field, what each registry
//! receives and where it comes from. Hub and spoke: every source maps into a
//! canonical record, every registry format maps out of one.
//!
//! A mapping file is read once at start-up and compiled: paths are split into
//! segments (a plain path is a direct lookup), code lists are resolved, CEL
//! expressions are parsed. Every `from` must exist in the source's catalogue and
//! every `to` in the target's, or loading fails naming the file and line.
//!
//! Architecture invariant: no I/O after loading, no clock, no randomness. The
//! same record and route context give the same output, byte for byte. Errors
//! name paths, rules and lines, never a value.

pub mod codelist;
mod context;
mod expr;
pub mod formats;
mod load;
mod native;
mod output;
pub mod path;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::locations::{Lookup, Unresolved};
use codelist::CodeList;
pub use context::RouteContext;
use expr::{Expr, Scope};
pub use load::{LoadError, Mappings, load, load_file};
use path::{FieldPath, compact};

/// Which vocabulary a side of a mapping speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Canonical(crate::model::RecordType),
    Source(crate::config::SourceFormat),
    Destination(crate::config::DestinationKind),
}

/// The paths a side allows (`*` for array elements; an entry ending in `/**`
/// allows everything beneath it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    paths: BTreeSet<String>,
}

impl Catalogue {
    pub fn new(paths: impl IntoIterator<Item = String>) -> Catalogue {
        Catalogue {
            paths: paths.into_iter().collect(),
        }
    }

    pub fn allows(&self, path: &FieldPath) -> bool {
        let text = path.to_string();
        if self.paths.contains(&text) {
            return true;
        }
        self.paths.iter().any(|p| {
            p.strip_suffix("/**").is_some_and(|prefix| {
                text.starts_with(prefix) && text[prefix.len()..].starts_with('/')
            })
        })
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }
}

/// Where a rule's input comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A field of the input record.
    Field(FieldPath),
    /// A field of the route context (`$ctx/message_id`).
    Context(String),
    /// A constant written in the mapping file.
    Constant(Value),
    /// Nothing: the rule's expression computes the value from `record`/`ctx`.
    Computed,
}

/// One line of a mapping: `to` <- input, through an expression and/or a code list.
#[derive(Debug)]
pub struct Rule {
    pub line: usize,
    pub to: FieldPath,
    pub input: Input,
    pub expr: Option<Expr>,
    pub codelist: Option<Arc<CodeList>>,
    /// Resolve the value (a place's code) to the registry's location id
    /// through the route's location list.
    pub location: Option<Lookup>,
    pub when: Option<Expr>,
    /// Where a run keeps the answer of `when`: rules whose conditions read
    /// the same share a slot.
    when_slot: usize,
    /// Where a run keeps the value it writes, when the mapping has an
    /// [`output::OutputPlan`].
    output_slot: usize,
    pub required: bool,
    pub note: Option<String>,
}

/// A compiled mapping file.
#[derive(Debug)]
pub struct Mapping {
    pub file: PathBuf,
    pub description: String,
    pub source: Side,
    pub target: Side,
    pub rules: Vec<Rule>,
    uses_record: bool,
    uses_expressions: bool,
    /// Distinct `when` conditions (see `Rule::when_slot`).
    conditions: usize,
    /// The route context fields the rules read (`$ctx/...`, CEL's `ctx`).
    context_fields: Vec<&'static str>,
    /// The output's layout, when every rule writes one fixed path and none
    /// lies inside another.
    output: Option<output::OutputPlan>,
}

/// Why a record could not be mapped. Carries rule lines and paths only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("line {line}: required input {from} is missing (for {to})")]
    MissingRequired {
        line: usize,
        from: String,
        to: String,
    },
    #[error("line {line}: code list {codelist} has no code for the value of {from}")]
    NoCode {
        line: usize,
        codelist: String,
        from: String,
    },
    /// A place the record names is unknown or closed in the registry's list:
    /// the route is denied for this record, the others go on.
    #[error("line {line}: {from}: {unresolved}")]
    Location {
        line: usize,
        from: String,
        unresolved: Unresolved,
    },
    #[error("line {line}: {from}: the route has no location list loaded")]
    NoLocationList { line: usize, from: String },
    #[error("line {line}: expression failed for {to}")]
    Expression { line: usize, to: String },
    #[error("line {line}: cannot write {to}: {reason}")]
    Write {
        line: usize,
        to: String,
        reason: String,
    },
}

/// Which rules a run applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    All,
    /// Only those that resolve a place through the location list.
    Places,
}

/// A value an inbound mapping left out because its code list does not know
/// it (an instance's own lookup value) in a field the mapping does not
/// require: the record goes on without it. Names the path, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub line: usize,
    /// The input path, with the array positions of this value.
    pub from: String,
    pub codelist: String,
}

impl Mapping {
    /// Map one record. The output holds exactly what the rules wrote.
    pub fn apply(&self, input: &Value, ctx: &RouteContext) -> Result<Value, MappingError> {
        self.apply_inner(input, ctx, None, Rules::All)
    }

    /// The first place `input` names that the route's location list does
    /// not resolve, found by running only the rules that look places up:
    /// what acceptance checks, without rendering the whole record.
    pub fn unresolved_place(&self, input: &Value, ctx: &RouteContext) -> Option<MappingError> {
        match self.apply_inner(input, ctx, None, Rules::Places) {
            Err(error @ MappingError::Location { .. }) => Some(error),
            _ => None,
        }
    }

    /// Map one record from an agency: a value a code list does not know, in
    /// a field the mapping does not require, is left out and reported rather
    /// than refusing the whole record (instances add their own lookup values).
    pub fn apply_leaving_out_unknown_codes(
        &self,
        input: &Value,
        ctx: &RouteContext,
    ) -> Result<(Value, Vec<LeftOut>), MappingError> {
        let mut left_out = Vec::new();
        let out = self.apply_inner(input, ctx, Some(&mut left_out), Rules::All)?;
        Ok((out, left_out))
    }

    fn apply_inner(
        &self,
        input: &Value,
        ctx: &RouteContext,
        mut left_out: Option<&mut Vec<LeftOut>>,
        rules: Rules,
    ) -> Result<Value, MappingError> {
        let ctx_json = ctx.to_value_of(&self.context_fields);
        // Converted once per run; a mapping without expressions skips CEL entirely.
        let scope = if self.uses_expressions {
            let record = self.uses_record.then_some(input);
            Some(
                Scope::new(record, &ctx_json).map_err(|_| MappingError::Expression {
                    line: 0,
                    to: String::new(),
                })?,
            )
        } else {
            None
        };
        // Conditions repeat across rules (a place's type, a parent's
        // presence): each distinct one is evaluated once a run.
        let mut held: Vec<Option<bool>> = vec![None; self.conditions];
        let mut out = Value::Object(Map::new());
        let mut slots = self.output.as_ref().map(output::OutputPlan::slots);
        // One buffer for every rule's inputs, which are read in place; a
        // value is copied only when written.
        let mut inputs: Vec<(Vec<usize>, &Value)> = Vec::new();
        let rules = self
            .rules
            .iter()
            .filter(|r| rules == Rules::All || r.location.is_some());
        for rule in rules {
            let expression_failed = || MappingError::Expression {
                line: rule.line,
                to: rule.to.to_string(),
            };
            if let (Some(when), Some(scope)) = (&rule.when, &scope) {
                let holds = match held[rule.when_slot] {
                    Some(holds) => holds,
                    None => {
                        let holds = when.holds(scope).map_err(|_| expression_failed())?;
                        held[rule.when_slot] = Some(holds);
                        holds
                    }
                };
                if !holds {
                    continue;
                }
            }
            inputs.clear();
            match &rule.input {
                Input::Field(path) => path.select_to(input, &mut inputs),
                Input::Context(key) => inputs.extend(ctx_json.get(key).map(|v| (Vec::new(), v))),
                Input::Constant(v) => inputs.push((Vec::new(), v)),
                Input::Computed => inputs.push((Vec::new(), &Value::Null)),
            }
            if inputs.is_empty() && rule.required {
                return Err(MappingError::MissingRequired {
                    line: rule.line,
                    from: rule.input_name(),
                    to: rule.to.to_string(),
                });
            }
            let mut written = false;
            for (indices, value) in inputs.drain(..) {
                let mut value = match (&rule.expr, &scope) {
                    (Some(e), Some(scope)) => {
                        let input = (!value.is_null()).then_some(value);
                        Cow::Owned(e.eval(scope, input).map_err(|_| expression_failed())?)
                    }
                    _ => Cow::Borrowed(value),
                };
                if value.is_null() {
                    continue;
                }
                if let Some(list) = &rule.codelist {
                    match (list.lookup(&value), left_out.as_deref_mut()) {
                        (Some(code), _) => value = Cow::Owned(code),
                        (None, Some(left_out)) if !rule.required => {
                            left_out.push(LeftOut {
                                line: rule.line,
                                from: rule.input_at(&indices),
                                codelist: list.name.clone(),
                            });
                            continue;
                        }
                        (None, _) => {
                            return Err(MappingError::NoCode {
                                line: rule.line,
                                codelist: list.name.clone(),
                                from: rule.input_name(),
                            });
                        }
                    }
                }
                if let Some(lookup) = rule.location {
                    value = Cow::Owned(rule.resolve_location(lookup, &value, ctx)?);
                }
                let mut value = value.into_owned();
                normalize_text(&mut value);
                match &mut slots {
                    Some(slots) => slots[rule.output_slot] = Some(value),
                    None => rule.to.set(&mut out, &indices, value).map_err(|reason| {
                        MappingError::Write {
                            line: rule.line,
                            to: rule.to.to_string(),
                            reason,
                        }
                    })?,
                }
                written = true;
            }
            if !written && rule.required {
                return Err(MappingError::MissingRequired {
                    line: rule.line,
                    from: rule.input_name(),
                    to: rule.to.to_string(),
                });
            }
        }
        if let (Some(plan), Some(slots)) = (&self.output, &mut slots) {
            out = plan.build(slots);
        }
        compact(&mut out);
        Ok(out)
    }
}

impl Rule {
    /// What of the record the value this rule writes is made from, as
    /// pointers (`/child/sex`; `""` for the whole record): its input, and
    /// what its computed value selects of `record` (its `value` is the
    /// input).
    pub fn value_reads(&self) -> BTreeSet<String> {
        let input = match &self.input {
            Input::Field(path) => Some(format!("/{path}")),
            Input::Context(_) | Input::Constant(_) | Input::Computed => None,
        };
        input
            .into_iter()
            .chain(
                self.expr
                    .iter()
                    .flat_map(Expr::record_reads)
                    .map(str::to_string),
            )
            .collect()
    }

    /// Everything this rule reads of the record: [`Rule::value_reads`] and
    /// what its condition selects. What the category check and the
    /// manifest's sensitivity hold a rule to.
    pub fn record_reads(&self) -> BTreeSet<String> {
        let mut reads = self.value_reads();
        reads.extend(
            self.when
                .iter()
                .flat_map(Expr::record_reads)
                .map(str::to_string),
        );
        reads
    }

    /// The registry's id for the place code `value`.
    fn resolve_location(
        &self,
        lookup: Lookup,
        value: &Value,
        ctx: &RouteContext,
    ) -> Result<Value, MappingError> {
        let list = ctx
            .locations
            .as_deref()
            .ok_or_else(|| MappingError::NoLocationList {
                line: self.line,
                from: self.input_name(),
            })?;
        let code = match value {
            Value::String(s) => s.clone(),
            // A code written as a number still names a place.
            other => other.to_string(),
        };
        list.resolve(lookup, &code)
            .map(Value::from)
            .map_err(|unresolved| MappingError::Location {
                line: self.line,
                from: self.input_name(),
                unresolved,
            })
    }

    /// The input path with `*` replaced by the positions of one value.
    fn input_at(&self, indices: &[usize]) -> String {
        let mut positions = indices.iter();
        self.input_name()
            .split('/')
            .map(|segment| match segment {
                "*" => positions
                    .next()
                    .map_or_else(|| segment.to_string(), usize::to_string),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// How the manifest and errors name this rule's input.
    pub fn input_name(&self) -> String {
        match &self.input {
            Input::Field(p) => p.to_string(),
            Input::Context(k) => format!("$ctx/{k}"),
            Input::Constant(_) => "(constant)".into(),
            Input::Computed => "(computed)".into(),
        }
    }
}

/// Text leaves in Unicode NFC: registries store names exactly as sent.
fn normalize_text(value: &mut Value) {
    match value {
        // ASCII is NFC, and checked a word at a time: most values are codes,
        // dates and ids.
        Value::String(s) if !s.is_ascii() && is_nfc_quick(s.chars()) != IsNormalized::Yes => {
            *s = s.nfc().collect();
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_text),
        Value::Object(map) => map.values_mut().for_each(normalize_text),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
