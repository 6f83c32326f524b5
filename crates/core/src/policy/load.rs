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
/// Displays as `file:line: problem`, or `file: problem` without a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyLoadError {
    /// The policy file as named in the configuration (`schemas` when the
    /// canonical schemas themselves do not load).
    pub file: String,
    /// 1-based; `Some(0)` when the TOML parser gave no position for a syntax error.
    pub line: Option<usize>,
    pub problem: PolicyProblem,
}

impl std::fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

/// What is wrong with a policy file. Names rules, paths and categories from
/// the policy and the schema only, never a value of a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// A configured route has no readable `<route>.toml`.
    #[error("route {route} needs a policy file: {reason}")]
    MissingFile { route: String, reason: String },
    /// The file is not valid TOML or does not have the policy's shape.
    #[error("{0}")]
    Syntax(String),
    #[error("route must be {expected} (the file's name)")]
    WrongRoute { expected: String },
    #[error("purpose must not be empty")]
    EmptyPurpose,
    #[error("category listed twice")]
    CategoryTwice,
    #[error("unknown sensitivity category (one of {})", Sensitivity::ALL.map(Sensitivity::as_str).join(", "))]
    UnknownCategory,
    /// In `legal_bases` (no rule) or in a rule's `basis`.
    #[error("{}unknown legal basis", .rule.as_ref().map(|r| format!("rule {r}: ")).unwrap_or_default())]
    UnknownLegalBasis { rule: Option<String> },
    #[error("a policy needs at least one [[rules]]")]
    NoRules,
    #[error("rule {rule}: basis {} is not among the policy's legal_bases", .basis.as_str())]
    BasisNotListed { rule: String, basis: LegalBasis },
    #[error("rule {rule}: consent = true goes with basis CONSENT, and only with it")]
    ConsentFlagMismatch { rule: String },
    #[error("rule {rule} needs a [consent] section")]
    NoConsentSection { rule: String },
    #[error("redaction path must be a JSON pointer (/...)")]
    RedactionPathNotPointer,
    #[error("redaction of {path} needs a reason")]
    RedactionWithoutReason { path: String },
    #[error("age_band needs bands, ascending lower bounds")]
    AgeBandWithoutBands,
    #[error(
        "unknown action (drop, mask, pseudonym, generalise_year, generalise_month, age_band with bands)"
    )]
    UnknownAction,
    #[error("condition on {path} needs exactly one of is, contains, any_of")]
    ConditionNeedsOneTest { path: String },
    #[error("condition path must be a JSON pointer")]
    ConditionPathNotPointer,
    /// Deny by default: a field of a category the route does not allow is kept.
    #[error(
        "rule {rule} lets {path} (category {}) through, but the route does not allow {}; drop it or leave it out of keep",
        .category.as_str(),
        .category.as_str()
    )]
    CategoryNotAllowed {
        rule: String,
        path: String,
        category: Sensitivity,
    },
}

/// Load `<dir>/<route>.toml` for every route; every problem of every file.
pub fn load(
    dir: &Path,
    routes: &[RouteConfig],
    schemas: &SchemaRegistry,
) -> Result<Policies, Vec<PolicyLoadError>> {
    let mut errors = Vec::new();
    let mut policies = BTreeMap::new();
    for route in routes {
        let path = dir.join(format!("{}.toml", route.name));
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(PolicyLoadError {
                    file,
                    line: None,
                    problem: PolicyProblem::MissingFile {
                        route: route.name.clone(),
                        reason: e.to_string(),
                    },
                });
                continue;
            }
        };
        match parse(&file, &text, route, schemas) {
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

/// Where problems of one file are found: builds located errors.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    /// A problem at a position of the file.
    fn at(&self, span: std::ops::Range<usize>, problem: PolicyProblem) -> PolicyLoadError {
        PolicyLoadError {
            file: self.file.to_string(),
            line: Some(line_of(self.text, span.start)),
            problem,
        }
    }

    /// A problem of the file as a whole (no line).
    fn file(&self, problem: PolicyProblem) -> PolicyLoadError {
        PolicyLoadError {
            file: self.file.to_string(),
            line: None,
            problem,
        }
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
) -> Result<Policy, Vec<PolicyLoadError>> {
    let loc = Locator { file, text };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        // Line 0: the parser gave no position (printed as such, as before).
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        vec![PolicyLoadError {
            file: file.to_string(),
            line: Some(line),
            problem: PolicyProblem::Syntax(e.message().to_string()),
        }]
    })?;
    let mut errors = Vec::new();
    if raw.route.get_ref() != &route.name {
        errors.push(loc.at(
            raw.route.span(),
            PolicyProblem::WrongRoute {
                expected: route.name.clone(),
            },
        ));
    }
    if raw.purpose.is_empty() {
        errors.push(loc.file(PolicyProblem::EmptyPurpose));
    }
    let categories = parse_categories(&raw.categories, &loc, &mut errors);
    let bases: Vec<LegalBasis> = raw
        .legal_bases
        .iter()
        .filter_map(|b| {
            LegalBasis::parse(b.get_ref()).or_else(|| {
                errors.push(loc.at(b.span(), PolicyProblem::UnknownLegalBasis { rule: None }));
                None
            })
        })
        .collect();
    let rules = parse_rules(raw.rules, &bases, raw.consent.is_some(), &loc, &mut errors);
    let redactions = parse_redactions(raw.redactions, &loc, &mut errors);
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
    check_categories_covered(&policy, &loc, schemas, &mut errors);
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

fn parse_categories(
    raw: &[Spanned<String>],
    loc: &Locator<'_>,
    errors: &mut Vec<PolicyLoadError>,
) -> Vec<Sensitivity> {
    let mut out = Vec::new();
    for c in raw {
        match Sensitivity::parse(c.get_ref()) {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => errors.push(loc.at(c.span(), PolicyProblem::CategoryTwice)),
            None => errors.push(loc.at(c.span(), PolicyProblem::UnknownCategory)),
        }
    }
    out
}

fn parse_rules(
    raw: Vec<RawRule>,
    bases: &[LegalBasis],
    has_consent: bool,
    loc: &Locator<'_>,
    errors: &mut Vec<PolicyLoadError>,
) -> Vec<Rule> {
    if raw.is_empty() {
        errors.push(loc.file(PolicyProblem::NoRules));
    }
    let mut rules = Vec::new();
    for r in raw {
        let span = r.basis.span();
        check_conditions(&r.when, loc, &span, errors);
        let Some(basis) = LegalBasis::parse(r.basis.get_ref()) else {
            errors.push(loc.at(
                span,
                PolicyProblem::UnknownLegalBasis { rule: Some(r.name) },
            ));
            continue;
        };
        if !bases.contains(&basis) {
            errors.push(loc.at(
                span.clone(),
                PolicyProblem::BasisNotListed {
                    rule: r.name.clone(),
                    basis,
                },
            ));
        }
        if (basis == LegalBasis::Consent) != r.consent {
            errors.push(loc.at(
                span.clone(),
                PolicyProblem::ConsentFlagMismatch {
                    rule: r.name.clone(),
                },
            ));
        }
        if r.consent && !has_consent {
            errors.push(loc.at(
                span.clone(),
                PolicyProblem::NoConsentSection {
                    rule: r.name.clone(),
                },
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
    loc: &Locator<'_>,
    errors: &mut Vec<PolicyLoadError>,
) -> Vec<RedactionRule> {
    let mut out = Vec::new();
    for r in raw {
        let span = r.action.span();
        check_conditions(&r.when, loc, &span, errors);
        check_conditions(&r.unless, loc, &span, errors);
        if !r.path.starts_with('/') {
            errors.push(loc.at(span.clone(), PolicyProblem::RedactionPathNotPointer));
        }
        if r.reason.is_empty() {
            errors.push(loc.file(PolicyProblem::RedactionWithoutReason {
                path: r.path.clone(),
            }));
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
                errors.push(loc.at(span, PolicyProblem::AgeBandWithoutBands));
                continue;
            }
            _ => {
                errors.push(loc.at(span, PolicyProblem::UnknownAction));
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

/// Conditions are located at the line of their rule's basis or redaction's action.
fn check_conditions(
    conditions: &[Condition],
    loc: &Locator<'_>,
    span: &std::ops::Range<usize>,
    errors: &mut Vec<PolicyLoadError>,
) {
    for c in conditions {
        let set = [c.is.is_some(), c.contains.is_some(), c.any_of.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            errors.push(loc.at(
                span.clone(),
                PolicyProblem::ConditionNeedsOneTest {
                    path: c.path.clone(),
                },
            ));
        }
        if !(c.path.is_empty() || c.path.starts_with('/')) {
            errors.push(loc.at(span.clone(), PolicyProblem::ConditionPathNotPointer));
        }
    }
}

/// Deny by default at load time too: a field tagged with a category the route
/// does not allow must be dropped by a redaction, or left out of every
/// rule's `keep` list.
fn check_categories_covered(
    policy: &Policy,
    loc: &Locator<'_>,
    schemas: &SchemaRegistry,
    errors: &mut Vec<PolicyLoadError>,
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
                errors.push(loc.file(PolicyProblem::CategoryNotAllowed {
                    rule: rule.name.clone(),
                    path: field.path.clone(),
                    category: field.category,
                }));
            }
        }
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;

    fn at(line: usize, problem: PolicyProblem) -> String {
        PolicyLoadError {
            file: "p.toml".into(),
            line: Some(line),
            problem,
        }
        .to_string()
    }

    fn whole(problem: PolicyProblem) -> String {
        PolicyLoadError {
            file: "p.toml".into(),
            line: None,
            problem,
        }
        .to_string()
    }

    /// The typed errors print what the string errors they replaced printed.
    #[test]
    fn located_problems_print_as_before() {
        assert_eq!(
            at(4, PolicyProblem::UnknownLegalBasis { rule: None }),
            "p.toml:4: unknown legal basis"
        );
        assert_eq!(
            at(
                9,
                PolicyProblem::UnknownLegalBasis {
                    rule: Some("r1".into())
                }
            ),
            "p.toml:9: rule r1: unknown legal basis"
        );
        assert_eq!(
            at(
                9,
                PolicyProblem::BasisNotListed {
                    rule: "r1".into(),
                    basis: LegalBasis::Consent
                }
            ),
            "p.toml:9: rule r1: basis CONSENT is not among the policy's legal_bases"
        );
        assert_eq!(
            at(9, PolicyProblem::NoConsentSection { rule: "r1".into() }),
            "p.toml:9: rule r1 needs a [consent] section"
        );
        assert_eq!(
            at(2, PolicyProblem::CategoryTwice),
            "p.toml:2: category listed twice"
        );
        assert!(
            at(2, PolicyProblem::UnknownCategory)
                .starts_with("p.toml:2: unknown sensitivity category (one of ")
        );
        assert_eq!(
            at(0, PolicyProblem::Syntax("expected a value".into())),
            "p.toml:0: expected a value"
        );
        assert_eq!(
            whole(PolicyProblem::EmptyPurpose),
            "p.toml: purpose must not be empty"
        );
        assert_eq!(
            whole(PolicyProblem::MissingFile {
                route: "r".into(),
                reason: "gone".into()
            }),
            "p.toml: route r needs a policy file: gone"
        );
        assert_eq!(
            whole(PolicyProblem::CategoryNotAllowed {
                rule: "r1".into(),
                path: "/gbv_survivor".into(),
                category: Sensitivity::Gbv
            }),
            "p.toml: rule r1 lets /gbv_survivor (category gbv) through, but the route does not allow gbv; drop it or leave it out of keep"
        );
    }
}
