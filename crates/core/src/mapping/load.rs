//! Reading mapping files: `mappings/destinations/<destination>/<record-type>.toml`
//! for each route, `mappings/sources/<source>/<record-type>.toml` for each
//! non-canonical source, code lists in `mappings/codelists/`. Every problem in
//! every file is collected, each with its file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::codelist::{self, CodeList, toml_to_json};
use super::context::CONTEXT_FIELDS;
use super::expr::Expr;
use super::output::OutputPlan;
use super::path::FieldPath;
use super::{Catalogue, Input, Mapping, Rule, Side, formats};
use crate::config::{Config, SourceFormat};
use crate::locations::Lookup;
use crate::model::RecordType;
use crate::schema::SchemaRegistry;

/// A problem in a mapping file, by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

/// Every mapping a config needs, compiled.
#[derive(Debug, Default)]
pub struct Mappings {
    /// By route name.
    pub outbound: BTreeMap<String, Mapping>,
    /// By (source name, record type).
    pub inbound: BTreeMap<(String, RecordType), Mapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    description: String,
    source: Spanned<String>,
    target: Spanned<String>,
    #[serde(default)]
    fields: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    to: Spanned<String>,
    from: Option<Spanned<String>>,
    value: Option<toml::Value>,
    expr: Option<Spanned<String>>,
    codelist: Option<Spanned<String>>,
    location: Option<Spanned<String>>,
    when: Option<Spanned<String>>,
    #[serde(default)]
    required: bool,
    note: Option<String>,
}

/// Load and compile every mapping `config` needs.
pub fn load(config: &Config, schemas: &SchemaRegistry) -> Result<Mappings, Vec<LoadError>> {
    let root = &config.mappings_dir;
    let mut errors = Vec::new();
    let codelists_dir = root.join("codelists");
    let codelists: BTreeMap<String, Arc<CodeList>> = match codelist::load_dir(&codelists_dir) {
        Ok(lists) => lists.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        Err(es) => {
            errors.extend(es.into_iter().map(|message| LoadError {
                file: codelists_dir.clone(),
                line: 0,
                message,
            }));
            BTreeMap::new()
        }
    };
    let mut mappings = Mappings::default();
    for route in &config.routes {
        let destination = &config.destinations[&route.destination];
        let folder = root.join("destinations").join(&destination.name);
        let file = folder.join(format!("{}.toml", route.record_type));
        let Some(target) = folder_result(
            formats::destination_catalogue(destination.kind, &folder),
            &folder,
            &mut errors,
        ) else {
            continue;
        };
        let source = canonical_catalogue(schemas, route.record_type);
        let sides = (
            Side::Canonical(route.record_type),
            Side::Destination(destination.kind),
        );
        match load_file(&file, sides, &source, &target, &codelists) {
            Ok(m) => {
                if destination.locations.is_none()
                    && let Some(rule) = m.rules.iter().find(|r| r.location.is_some())
                {
                    errors.push(LoadError {
                        file: file.clone(),
                        line: rule.line,
                        message: format!(
                            "location lookups need the registry's location list: set destinations.{}.locations",
                            destination.name
                        ),
                    });
                }
                mappings.outbound.insert(route.name.clone(), m);
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    for source in config.sources.values() {
        if source.format == SourceFormat::Canonical {
            continue;
        }
        let folder = root.join("sources").join(&source.name);
        let Some(catalogue) = folder_result(
            formats::source_catalogue(source.format, &folder),
            &folder,
            &mut errors,
        ) else {
            continue;
        };
        let mut found = false;
        for record_type in RecordType::ALL {
            let file = folder.join(format!("{record_type}.toml"));
            if !file.exists() {
                continue;
            }
            found = true;
            let target = canonical_catalogue(schemas, record_type);
            let sides = (Side::Source(source.format), Side::Canonical(record_type));
            match load_file(&file, sides, &catalogue, &target, &codelists) {
                Ok(m) => {
                    mappings
                        .inbound
                        .insert((source.name.clone(), record_type), m);
                }
                Err(mut es) => errors.append(&mut es),
            }
        }
        if !found {
            errors.push(LoadError {
                file: folder,
                line: 0,
                message: format!(
                    "source {} has no mapping (expected <record-type>.toml here)",
                    source.name
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(mappings)
    } else {
        Err(errors)
    }
}

/// A catalogue, or its problem recorded against the mapping folder.
fn folder_result(
    result: Result<Catalogue, String>,
    folder: &Path,
    errors: &mut Vec<LoadError>,
) -> Option<Catalogue> {
    result
        .map_err(|message| {
            errors.push(LoadError {
                file: folder.to_path_buf(),
                line: 0,
                message,
            })
        })
        .ok()
}

fn canonical_catalogue(schemas: &SchemaRegistry, record_type: RecordType) -> Catalogue {
    Catalogue::new(schemas.field_paths(record_type).iter().cloned())
}

fn side_name(side: Side) -> String {
    match side {
        Side::Canonical(t) => format!("canonical:{t}"),
        Side::Source(f) => f.as_str().to_string(),
        Side::Destination(k) => k.as_str().to_string(),
    }
}

/// Compile one mapping file against the catalogues of its two sides.
pub fn load_file(
    file: &Path,
    (source_side, target_side): (Side, Side),
    source: &Catalogue,
    target: &Catalogue,
    codelists: &BTreeMap<String, Arc<CodeList>>,
) -> Result<Mapping, Vec<LoadError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![LoadError {
            file: file.to_path_buf(),
            line: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawMapping = toml::from_str(&text).map_err(|e| {
        vec![LoadError {
            file: file.to_path_buf(),
            line: e.span().map(|s| line_of(s.start)).unwrap_or(0),
            message: e.message().to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let mut err = |line: usize, message: String| {
        errors.push(LoadError {
            file: file.to_path_buf(),
            line,
            message,
        })
    };
    for (declared, expected, what) in [
        (&raw.source, side_name(source_side), "source"),
        (&raw.target, side_name(target_side), "target"),
    ] {
        if *declared.get_ref() != expected {
            err(
                line_of(declared.span().start),
                format!("{what} must be {expected:?} for this file's place"),
            );
        }
    }
    let mut rules = Vec::new();
    for spanned in raw.fields {
        let line = line_of(spanned.span().start);
        let raw_rule = spanned.into_inner();
        match compile_rule(raw_rule, line, source, target, codelists) {
            Ok(rule) => rules.push(rule),
            Err(messages) => {
                for (l, m) in messages {
                    err(l, m);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let uses_record = rules
        .iter()
        .flat_map(|r| r.expr.iter().chain(r.when.iter()))
        .any(Expr::uses_record);
    let uses_expressions = rules.iter().any(|r| r.expr.is_some() || r.when.is_some());
    let context_fields = context_fields(&rules);
    let conditions = share_condition_slots(&mut rules);
    let output = OutputPlan::new(rules.iter().map(|r| &r.to)).map(|(plan, slots)| {
        for (rule, slot) in rules.iter_mut().zip(slots) {
            rule.output_slot = slot;
        }
        plan
    });
    Ok(Mapping {
        file: file.to_path_buf(),
        description: raw.description,
        source: source_side,
        target: target_side,
        rules,
        uses_record,
        uses_expressions,
        conditions,
        context_fields,
        output,
    })
}

/// Give rules whose `when` is the same expression the same slot; returns
/// the number of slots.
fn share_condition_slots(rules: &mut [Rule]) -> usize {
    let mut slots: BTreeMap<String, usize> = BTreeMap::new();
    for rule in rules {
        if let Some(when) = &rule.when {
            let next = slots.len();
            rule.when_slot = *slots.entry(when.source.clone()).or_insert(next);
        }
    }
    slots.len()
}

/// The route context fields a mapping's rules read: all of them when an
/// expression reads `ctx`, else those its `$ctx/...` inputs name.
fn context_fields(rules: &[Rule]) -> Vec<&'static str> {
    let expressions_read_ctx = rules
        .iter()
        .flat_map(|r| r.expr.iter().chain(r.when.iter()))
        .any(Expr::uses_ctx);
    CONTEXT_FIELDS
        .into_iter()
        .filter(|field| {
            expressions_read_ctx
                || rules
                    .iter()
                    .any(|r| matches!(&r.input, Input::Context(key) if key == field))
        })
        .collect()
}

fn compile_rule(
    raw: RawRule,
    line: usize,
    source: &Catalogue,
    target: &Catalogue,
    codelists: &BTreeMap<String, Arc<CodeList>>,
) -> Result<Rule, Vec<(usize, String)>> {
    let mut errors = Vec::new();
    let to = match FieldPath::parse(raw.to.get_ref()) {
        Ok(p) if target.allows(&p) => Some(p),
        Ok(p) => {
            errors.push((line, format!("to = {p:?}: the target has no such field")));
            None
        }
        Err(e) => {
            errors.push((line, format!("to: {e}")));
            None
        }
    };
    let input = match (raw.from, raw.value, &raw.expr) {
        (Some(from), None, _) => {
            let text = from.into_inner();
            if let Some(key) = text.strip_prefix("$ctx/") {
                if CONTEXT_FIELDS.contains(&key) {
                    Some(Input::Context(key.to_string()))
                } else {
                    errors.push((
                        line,
                        format!(
                            "from = {text:?}: the route context has {}",
                            CONTEXT_FIELDS.join(", ")
                        ),
                    ));
                    None
                }
            } else {
                match FieldPath::parse(&text) {
                    Ok(p) if source.allows(&p) => Some(Input::Field(p)),
                    Ok(p) => {
                        errors.push((line, format!("from = {p:?}: the source has no such field")));
                        None
                    }
                    Err(e) => {
                        errors.push((line, format!("from: {e}")));
                        None
                    }
                }
            }
        }
        (None, Some(value), _) => Some(Input::Constant(toml_to_json(value))),
        (None, None, Some(_)) => Some(Input::Computed),
        (None, None, None) => {
            errors.push((line, "a field needs from, value or expr".into()));
            None
        }
        (Some(_), Some(_), _) => {
            errors.push((line, "a field takes from or value, not both".into()));
            None
        }
    };
    if let (Some(to), Some(input)) = (&to, &input) {
        let from_wildcards = match input {
            Input::Field(p) => p.wildcards(),
            _ => 0,
        };
        if to.wildcards() != from_wildcards {
            errors.push((
                line,
                format!(
                    "to has {} '*' but its input has {from_wildcards}: they must match one for one",
                    to.wildcards()
                ),
            ));
        }
    }
    let compile = |e: Option<Spanned<String>>, what: &str, errors: &mut Vec<(usize, String)>| {
        e.and_then(|s| match Expr::compile(s.get_ref()) {
            Ok(x) => Some(x),
            Err(m) => {
                errors.push((line, format!("{what}: {m}")));
                None
            }
        })
    };
    let expr = compile(raw.expr, "expr", &mut errors);
    let when = compile(raw.when, "when", &mut errors);
    let codelist = raw.codelist.and_then(|name| {
        let found = codelists.get(name.get_ref()).cloned();
        if found.is_none() {
            errors.push((
                line,
                format!(
                    "codelist {:?}: no such file in mappings/codelists/",
                    name.get_ref()
                ),
            ));
        }
        found
    });
    let location = raw.location.and_then(|name| {
        let found = Lookup::parse(name.get_ref());
        if found.is_none() {
            errors.push((
                line,
                format!(
                    "location {:?}: must be one of {}",
                    name.get_ref(),
                    Lookup::ALL.map(Lookup::as_str).join(", ")
                ),
            ));
        }
        found
    });
    if codelist.is_some() && location.is_some() {
        errors.push((
            line,
            "a field takes a codelist or a location lookup, not both".into(),
        ));
    }
    match (to, input) {
        (Some(to), Some(input)) if errors.is_empty() => Ok(Rule {
            line,
            to,
            input,
            expr,
            codelist,
            location,
            when,
            when_slot: 0,
            output_slot: 0,
            required: raw.required,
            note: raw.note,
        }),
        _ => Err(errors),
    }
}
