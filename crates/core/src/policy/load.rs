//! Policy files: TOML as written -> checked [`Policy`]. Every problem is
//! reported, with file:line where the TOML parser gives a position.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{Action, LegalBasis, Policies};
use crate::config::RouteConfig;
use crate::model::RecordType;
use crate::schema::{SchemaRegistry, Sensitivity};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    route: Spanned<String>,
    purpose: String,
    legal_bases: Vec<Spanned<String>>,
    categories: Vec<Spanned<String>>,
    consent: Option<RawConsent>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    redactions: Vec<RawRedaction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    required_true: Vec<String>,
    sharing_field: String,
    recipients: Vec<String>,
    withdrawn_field: String,
    subject_field: String,
    caregivers: Vec<String>,
    child: String,
    child_from_age: u32,
    age_field: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    basis: Spanned<String>,
    #[serde(default)]
    consent: bool,
    #[serde(default)]
    when: Vec<Condition>,
    keep: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedaction {
    path: String,
    action: Spanned<String>,
    reason: String,
    #[serde(default)]
    when: Vec<Condition>,
    #[serde(default)]
    unless: Vec<Condition>,
    bands: Option<Vec<u32>>,
}

/// A test on the value at `path` (a JSON pointer, relative to the record or,
/// in a redaction, to the matched item; `""` is the item itself). Exactly one
/// of `is`, `contains`, `any_of`. A missing value never matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Condition {
    pub path: String,
    pub is: Option<Scalar>,
    pub contains: Option<String>,
    pub any_of: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Bool(bool),
    Int(i64),
    Text(String),
}

#[derive(Debug)]
pub(super) struct ConsentRule {
    pub required_true: Vec<String>,
    pub sharing_field: String,
    pub recipients: Vec<String>,
    pub withdrawn_field: String,
    pub subject_field: String,
    pub caregivers: Vec<String>,
    pub child: String,
    pub child_from_age: u32,
    pub age_field: String,
}

#[derive(Debug)]
pub(super) struct Rule {
    pub name: String,
    pub basis: LegalBasis,
    pub consent: bool,
    pub when: Vec<Condition>,
    /// `None`: the whole record (less redactions); `Some`: only these paths.
    pub keep: Option<Vec<String>>,
}

#[derive(Debug)]
pub(super) struct RedactionRule {
    pub path: String,
    pub action: Action,
    pub reason: String,
    pub when: Vec<Condition>,
    pub unless: Vec<Condition>,
}

#[derive(Debug)]
pub(super) struct Policy {
    pub purpose: String,
    pub legal_bases: Vec<LegalBasis>,
    pub record_type: RecordType,
    pub destination: String,
    pub sha256: String,
    pub categories: Vec<Sensitivity>,
    pub consent: Option<ConsentRule>,
    pub rules: Vec<Rule>,
    pub redactions: Vec<RedactionRule>,
}

impl Policy {
    /// Whether a drop redaction removes `path` or something above it.
    pub fn drops(&self, path: &str) -> bool {
        self.redactions
            .iter()
            .any(|r| r.action == Action::Drop && covers(&r.path, path))
    }
}

/// `prefix` is `path` or an ancestor of it (pointer segments, `*` matches `*`).
pub(super) fn covers(prefix: &str, path: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// One problem of a policy file, located by file and line where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyLoadError(pub String);

/// Load `<dir>/<route>.toml` for every route; every problem of every file.
pub fn load(dir: &Path, routes: &[RouteConfig]) -> Result<Policies, Vec<PolicyLoadError>> {
    load_messages(dir, routes).map_err(|errors| errors.into_iter().map(PolicyLoadError).collect())
}

fn load_messages(dir: &Path, routes: &[RouteConfig]) -> Result<Policies, Vec<String>> {
    let schemas = SchemaRegistry::load().map_err(|es| {
        es.iter()
            .map(|e| format!("schemas: {e:?}"))
            .collect::<Vec<_>>()
    })?;
    let mut errors = Vec::new();
    let mut policies = BTreeMap::new();
    for route in routes {
        let path = dir.join(format!("{}.toml", route.name));
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!(
                    "{file}: route {} needs a policy file: {e}",
                    route.name
                ));
                continue;
            }
        };
        match parse(&file, &text, route, &schemas) {
            Ok(p) => {
                policies.insert(route.name.clone(), p);
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    if errors.is_empty() {
        Ok(Policies {
            routes: policies,
            pseudonym_keys: BTreeMap::new(),
        })
    } else {
        Err(errors)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// Parse and check one policy file against its route and the canonical schema.
pub(super) fn parse(
    file: &str,
    text: &str,
    route: &RouteConfig,
    schemas: &SchemaRegistry,
) -> Result<Policy, Vec<String>> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        vec![format!("{file}:{line}: {}", e.message())]
    })?;
    let mut errors = Vec::new();
    let at = |span: std::ops::Range<usize>| format!("{file}:{}", line_of(text, span.start));
    if raw.route.get_ref() != &route.name {
        errors.push(format!(
            "{}: route must be {} (the file's name)",
            at(raw.route.span()),
            route.name
        ));
    }
    if raw.purpose.is_empty() {
        errors.push(format!("{file}: purpose must not be empty"));
    }
    let categories = parse_categories(&raw.categories, &at, &mut errors);
    let bases: Vec<LegalBasis> = raw
        .legal_bases
        .iter()
        .filter_map(|b| {
            LegalBasis::parse(b.get_ref()).or_else(|| {
                errors.push(format!("{}: unknown legal basis", at(b.span())));
                None
            })
        })
        .collect();
    let rules = parse_rules(
        raw.rules,
        &bases,
        raw.consent.is_some(),
        &at,
        file,
        &mut errors,
    );
    let redactions = parse_redactions(raw.redactions, &at, file, &mut errors);
    let consent = raw.consent.map(|c| ConsentRule {
        required_true: c.required_true,
        sharing_field: c.sharing_field,
        recipients: c.recipients,
        withdrawn_field: c.withdrawn_field,
        subject_field: c.subject_field,
        caregivers: c.caregivers,
        child: c.child,
        child_from_age: c.child_from_age,
        age_field: c.age_field,
    });
    let policy = Policy {
        purpose: raw.purpose,
        legal_bases: bases,
        record_type: route.record_type,
        destination: route.destination.clone(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        categories,
        consent,
        rules,
        redactions,
    };
    check_categories_covered(&policy, file, schemas, &mut errors);
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

fn parse_categories(
    raw: &[Spanned<String>],
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    errors: &mut Vec<String>,
) -> Vec<Sensitivity> {
    let mut out = Vec::new();
    for c in raw {
        match Sensitivity::parse(c.get_ref()) {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => errors.push(format!("{}: category listed twice", at(c.span()))),
            None => errors.push(format!(
                "{}: unknown sensitivity category (one of {})",
                at(c.span()),
                Sensitivity::ALL.map(Sensitivity::as_str).join(", ")
            )),
        }
    }
    out
}

fn parse_rules(
    raw: Vec<RawRule>,
    bases: &[LegalBasis],
    has_consent: bool,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    file: &str,
    errors: &mut Vec<String>,
) -> Vec<Rule> {
    if raw.is_empty() {
        errors.push(format!("{file}: a policy needs at least one [[rules]]"));
    }
    let mut rules = Vec::new();
    for r in raw {
        let where_ = at(r.basis.span());
        check_conditions(&r.when, &where_, errors);
        let Some(basis) = LegalBasis::parse(r.basis.get_ref()) else {
            errors.push(format!("{where_}: rule {}: unknown legal basis", r.name));
            continue;
        };
        if !bases.contains(&basis) {
            errors.push(format!(
                "{where_}: rule {}: basis {} is not among the policy's legal_bases",
                r.name,
                basis.as_str()
            ));
        }
        if (basis == LegalBasis::Consent) != r.consent {
            errors.push(format!(
                "{where_}: rule {}: consent = true goes with basis CONSENT, and only with it",
                r.name
            ));
        }
        if r.consent && !has_consent {
            errors.push(format!(
                "{where_}: rule {} needs a [consent] section",
                r.name
            ));
        }
        rules.push(Rule {
            name: r.name,
            basis,
            consent: r.consent,
            when: r.when,
            keep: r.keep,
        });
    }
    rules
}

fn parse_redactions(
    raw: Vec<RawRedaction>,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    file: &str,
    errors: &mut Vec<String>,
) -> Vec<RedactionRule> {
    let mut out = Vec::new();
    for r in raw {
        let where_ = at(r.action.span());
        check_conditions(&r.when, &where_, errors);
        check_conditions(&r.unless, &where_, errors);
        if !r.path.starts_with('/') {
            errors.push(format!(
                "{where_}: redaction path must be a JSON pointer (/...)"
            ));
        }
        if r.reason.is_empty() {
            errors.push(format!("{file}: redaction of {} needs a reason", r.path));
        }
        let action = match (r.action.get_ref().as_str(), r.bands) {
            ("drop", None) => Action::Drop,
            ("mask", None) => Action::Mask,
            ("pseudonym", None) => Action::Pseudonym,
            ("generalise_year", None) => Action::GeneraliseYear,
            ("generalise_month", None) => Action::GeneraliseMonth,
            ("age_band", Some(b)) if !b.is_empty() && b.windows(2).all(|w| w[0] < w[1]) => {
                Action::AgeBand(b)
            }
            ("age_band", _) => {
                errors.push(format!(
                    "{where_}: age_band needs bands, ascending lower bounds"
                ));
                continue;
            }
            _ => {
                errors.push(format!(
                    "{where_}: unknown action (drop, mask, pseudonym, generalise_year, generalise_month, age_band with bands)"
                ));
                continue;
            }
        };
        out.push(RedactionRule {
            path: r.path,
            action,
            reason: r.reason,
            when: r.when,
            unless: r.unless,
        });
    }
    out
}

fn check_conditions(conditions: &[Condition], where_: &str, errors: &mut Vec<String>) {
    for c in conditions {
        let set = [c.is.is_some(), c.contains.is_some(), c.any_of.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            errors.push(format!(
                "{where_}: condition on {} needs exactly one of is, contains, any_of",
                c.path
            ));
        }
        if !(c.path.is_empty() || c.path.starts_with('/')) {
            errors.push(format!("{where_}: condition path must be a JSON pointer"));
        }
    }
}

/// Deny by default at load time too: a field tagged with a category the route
/// does not allow must be dropped by a redaction, or left out of every
/// rule's `keep` list.
fn check_categories_covered(
    policy: &Policy,
    file: &str,
    schemas: &SchemaRegistry,
    errors: &mut Vec<String>,
) {
    for field in schemas.sensitive_fields(policy.record_type) {
        if policy.categories.contains(&field.category) || policy.drops(&field.path) {
            continue;
        }
        for rule in &policy.rules {
            let kept = rule.keep.as_ref().is_none_or(|keep| {
                keep.iter()
                    .any(|k| covers(k, &field.path) || covers(&field.path, k))
            });
            if kept {
                errors.push(format!(
                    "{file}: rule {} lets {} (category {}) through, but the route does not allow {}; drop it or leave it out of keep",
                    rule.name,
                    field.path,
                    field.category.as_str(),
                    field.category.as_str()
                ));
            }
        }
    }
}
