//! A route's policy in plain terms, for the manifest: purpose, legal bases,
//! the consent rule, the rules, the redactions, and what happens to a field
//! a mapping reads.

use serde::Serialize;

use super::load::{Condition, Policy, RedactionRule, Scalar, covers};
use super::redact::age_band;
use super::{Action, Policies};
use crate::schema::Sensitivity;

#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub sha256: String,
    pub purpose: String,
    pub legal_bases: Vec<&'static str>,
    pub categories: Vec<Sensitivity>,
    pub consent: Option<ConsentSummary>,
    /// In order: the first that holds decides.
    pub rules: Vec<RuleSummary>,
    pub redactions: Vec<RedactionSummary>,
}

/// What valid consent is on a route.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentSummary {
    /// Recorded values of `subject_field` that may always consent.
    pub caregivers: Vec<String>,
    /// The value of `subject_field` for the child, who may consent from `child_from_age`.
    pub child: String,
    pub child_from_age: u32,
    pub subject_field: String,
    pub age_field: String,
    pub required_true: Vec<String>,
    pub sharing_field: String,
    /// At least one must be consented to, in the record or in a consent decision.
    pub recipients: Vec<String>,
    pub withdrawn_field: String,
    /// A consent decision must cover this purpose...
    pub purpose: String,
    /// ...and name this destination or one of `recipients`.
    pub destination: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub name: String,
    pub basis: &'static str,
    pub consent: bool,
    pub when: Vec<String>,
    /// Only these fields leave under this rule (`None`: the whole record).
    pub keep: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedactionSummary {
    pub path: String,
    pub action: String,
    pub when: Vec<String>,
    pub unless: Vec<String>,
    pub reason: String,
}

/// What the policy does to a field a mapping reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldPolicy {
    /// Redactions of the field, or of parts of it (`drop of /x when ...`).
    pub redactions: Vec<String>,
    /// Rules whose field set leaves it out (`not sent`) or keeps only part of it.
    pub limited_by_rules: Vec<String>,
}

impl FieldPolicy {
    /// `sent`, or what happens to the field, in one line.
    pub fn text(&self) -> String {
        if self.redactions.is_empty() && self.limited_by_rules.is_empty() {
            return "sent".into();
        }
        let mut parts = self.redactions.clone();
        parts.extend(self.limited_by_rules.iter().cloned());
        parts.join("; ")
    }
}

impl Policies {
    /// The policy of `route` in plain terms (`None`: the route has no policy).
    pub fn summary(&self, route: &str) -> Option<PolicySummary> {
        let p = self.routes.get(route)?;
        Some(PolicySummary {
            sha256: p.sha256.clone(),
            purpose: p.purpose.clone(),
            legal_bases: p.legal_bases.iter().map(|b| b.as_str()).collect(),
            categories: p.categories.clone(),
            consent: p.consent.as_ref().map(|c| ConsentSummary {
                caregivers: c.caregivers.clone(),
                child: c.child.clone(),
                child_from_age: c.child_from_age,
                subject_field: c.subject_field.clone(),
                age_field: c.age_field.clone(),
                required_true: c.required_true.clone(),
                sharing_field: c.sharing_field.clone(),
                recipients: c.recipients.clone(),
                withdrawn_field: c.withdrawn_field.clone(),
                purpose: p.purpose.clone(),
                destination: p.destination.clone(),
            }),
            rules: p
                .rules
                .iter()
                .map(|r| RuleSummary {
                    name: r.name.clone(),
                    basis: r.basis.as_str(),
                    consent: r.consent,
                    when: r.when.iter().map(condition).collect(),
                    keep: r.keep.clone(),
                })
                .collect(),
            redactions: p
                .redactions
                .iter()
                .map(|r| RedactionSummary {
                    path: r.path.clone(),
                    action: action(&r.action),
                    when: r.when.iter().map(condition).collect(),
                    unless: r.unless.iter().map(condition).collect(),
                    reason: r.reason.clone(),
                })
                .collect(),
        })
    }

    /// What `route`'s policy does to the field at `path` (`/incidents/*`)
    /// when a rule lets the record through.
    pub fn field_policy(&self, route: &str, path: &str) -> FieldPolicy {
        self.routes
            .get(route)
            .map(|p| field_policy(p, path))
            .unwrap_or_default()
    }
}

fn field_policy(p: &Policy, path: &str) -> FieldPolicy {
    let mut out = FieldPolicy::default();
    for r in &p.redactions {
        if covers(&r.path, path) {
            out.redactions
                .push(format!("{}{}", action(&r.action), conditions(r)));
        } else if covers(path, &r.path) {
            out.redactions.push(format!(
                "{} of {}{}",
                action(&r.action),
                r.path,
                conditions(r)
            ));
        }
    }
    for rule in &p.rules {
        let Some(keep) = &rule.keep else { continue };
        if keep.iter().any(|k| covers(k, path)) {
            continue;
        }
        if keep.iter().any(|k| covers(path, k)) {
            out.limited_by_rules
                .push(format!("only part of it under rule {}", rule.name));
        } else {
            out.limited_by_rules
                .push(format!("not sent under rule {}", rule.name));
        }
    }
    out
}

fn conditions(r: &RedactionRule) -> String {
    let mut s = String::new();
    for c in &r.when {
        s.push_str(&format!(" when {}", condition(c)));
    }
    for c in &r.unless {
        s.push_str(&format!(" unless {}", condition(c)));
    }
    s
}

/// `/protection_status is one of unaccompanied, separated`; the empty path is
/// the matched item itself.
fn condition(c: &Condition) -> String {
    let subject = if c.path.is_empty() {
        "the item".to_string()
    } else {
        c.path.clone()
    };
    if let Some(is) = &c.is {
        let v = match is {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(t) => t.clone(),
        };
        return format!("{subject} is {v}");
    }
    if let Some(item) = &c.contains {
        return format!("{subject} contains {item}");
    }
    if let Some(any) = &c.any_of {
        return format!("{subject} is one of {}", any.join(", "));
    }
    format!("{subject} (no test)")
}

fn action(a: &Action) -> String {
    match a {
        Action::AgeBand(bands) => {
            let mut labels: Vec<String> = Vec::new();
            if bands.first().is_some_and(|b| *b > 0) {
                labels.push(age_band(0, bands));
            }
            labels.extend(bands.iter().map(|b| age_band(u64::from(*b), bands)));
            format!("age_band ({})", labels.join(", "))
        }
        other => other.as_str().to_string(),
    }
}
