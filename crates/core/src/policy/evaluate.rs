//! `decide`: the first rule of the route's policy that holds lets the record
//! through; its `keep` list and the policy's redactions say what leaves.

use std::borrow::Cow;

use serde_json::Value;

use super::consent::{ConsentGiver, ConsentState, ConsentStatus};
use super::load::{Condition, ConsentRule, Policy, RedactionRule, Rule, Scalar, covers};
use super::redact::{self, escape, expand, lookup};
use super::{Action, Decision, Outcome, Redaction};
use crate::model::RecordType;

/// The decision, and when it delivers and `minimise` asks for it, the
/// minimised record: `record` with the decision's redactions performed (a
/// borrowed record stays borrowed when there were none). Without `minimise`
/// the redactions are not planned: the decision lists none.
pub(super) fn decide<'r>(
    policy: &Policy,
    route: &str,
    record_type: RecordType,
    record: Cow<'r, Value>,
    key: Option<&[u8]>,
    consent: Option<&ConsentState>,
    minimise: bool,
) -> (Decision, Option<Cow<'r, Value>>) {
    let deny = |reason: String| {
        let decision = Decision {
            route: route.to_string(),
            decision: Outcome::Deny,
            reason,
            legal_basis: None,
            rule: "deny-by-default".into(),
            policy_sha256: policy.sha256.clone(),
            redactions: Vec::new(),
        };
        (decision, None)
    };
    if record_type != policy.record_type || !record.is_object() {
        return deny("the record is not of the route's record type".into());
    }
    let needs_key = policy
        .redactions
        .iter()
        .any(|r| r.action == Action::Pseudonym);
    if needs_key && key.is_none() {
        return deny("the policy pseudonymises, and the destination has no pseudonym key".into());
    }
    // The latest consent decision replaces the record's consent fields when
    // it is about this route (see `decides_for`).
    let consent = consent.filter(|s| {
        policy
            .consent
            .as_ref()
            .is_some_and(|c| decides_for(policy, c, s))
    });
    let mut refusals = Vec::new();
    for rule in &policy.rules {
        match rule_holds(policy, rule, &record, consent) {
            Ok(()) => {
                let from = if rule.consent && consent.is_some() {
                    " (consent from the latest consent decision)"
                } else {
                    ""
                };
                let (redactions, minimised) = if minimise {
                    let (redactions, minimised) = plan(rule, &policy.redactions, record, key);
                    (redactions, Some(minimised))
                } else {
                    (Vec::new(), None)
                };
                let decision = Decision {
                    route: route.to_string(),
                    decision: Outcome::Deliver,
                    reason: format!("rule {} holds{from}", rule.name),
                    legal_basis: Some(rule.basis.as_str()),
                    rule: rule.name.clone(),
                    policy_sha256: policy.sha256.clone(),
                    redactions,
                };
                return (decision, minimised);
            }
            Err(why) => refusals.push(format!("rule {}: {why}", rule.name)),
        }
    }
    deny(format!("no rule holds ({})", refusals.join("; ")))
}

fn rule_holds(
    policy: &Policy,
    rule: &Rule,
    record: &Value,
    consent: Option<&ConsentState>,
) -> Result<(), String> {
    if rule.consent {
        match (&policy.consent, consent) {
            (Some(c), Some(state)) => decided_consent(policy, c, state, record)?,
            (Some(c), None) => valid_consent(c, record)?,
            (None, _) => return Err("no consent rule".into()),
        }
    }
    match rule.when.iter().find(|c| !holds(c, record)) {
        Some(c) => Err(format!("condition on {} does not hold", c.path)),
        None => Ok(()),
    }
}

/// Valid consent: not withdrawn, every required flag true, a recipient of the
/// route among those consented to, and given by someone who may consent.
fn valid_consent(c: &ConsentRule, record: &Value) -> Result<(), String> {
    if lookup(record, &c.withdrawn_field) == Some(&Value::Bool(true)) {
        return Err(format!("consent withdrawn ({})", c.withdrawn_field));
    }
    if let Some(flag) = c
        .required_true
        .iter()
        .find(|f| lookup(record, f) != Some(&Value::Bool(true)))
    {
        return Err(format!("{flag} is not true"));
    }
    let shared = lookup(record, &c.sharing_field)
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|v| {
                v.as_str()
                    .is_some_and(|s| c.recipients.iter().any(|r| r == s))
            })
        });
    if !shared {
        return Err(format!(
            "{} does not include a recipient of this route",
            c.sharing_field
        ));
    }
    let subject = lookup(record, &c.subject_field).and_then(Value::as_str);
    match subject {
        Some(s) if c.caregivers.iter().any(|g| g == s) => Ok(()),
        Some(s) if s == c.child => {
            let age = lookup(record, &c.age_field).and_then(Value::as_u64);
            if age.is_some_and(|a| a >= u64::from(c.child_from_age)) {
                Ok(())
            } else {
                Err(format!(
                    "{}: the child may consent only from age {} ({})",
                    c.subject_field, c.child_from_age, c.age_field
                ))
            }
        }
        _ => Err(format!("{}: not someone who may consent", c.subject_field)),
    }
}

/// Whether the latest consent decision settles consent on this route. A grant
/// always does: it lists everything now consented to, so what it leaves out is
/// not consented. A withdrawal may be partial (absent lists mean everything):
/// one about other purposes or recipients leaves the record's own consent.
fn decides_for(policy: &Policy, c: &ConsentRule, state: &ConsentState) -> bool {
    state.status == ConsentStatus::Granted
        || (state.covers_purpose(&policy.purpose)
            && state.covers_recipient(route_recipients(policy, c)))
}

/// The names a consent decision may use for this route's recipient: the
/// destination, or the policy's recipient words (`authorities`).
fn route_recipients<'a>(policy: &'a Policy, c: &'a ConsentRule) -> impl Iterator<Item = &'a str> {
    std::iter::once(policy.destination.as_str()).chain(c.recipients.iter().map(String::as_str))
}

/// Consent from the latest decision: a grant for this purpose and recipient,
/// given by a caregiver or by the child from the policy's age.
fn decided_consent(
    policy: &Policy,
    c: &ConsentRule,
    state: &ConsentState,
    record: &Value,
) -> Result<(), String> {
    if state.status == ConsentStatus::Withdrawn {
        return Err("consent withdrawn (the latest consent decision)".into());
    }
    if !state.covers_purpose(&policy.purpose) {
        return Err(format!(
            "the latest consent decision does not cover purpose {}",
            policy.purpose
        ));
    }
    if !state.covers_recipient(route_recipients(policy, c)) {
        return Err(
            "the latest consent decision names neither this destination nor a recipient of this route"
                .into(),
        );
    }
    match state.given_by {
        ConsentGiver::Caregiver => Ok(()),
        ConsentGiver::Child => {
            let age = state
                .child_age_years
                .map(u64::from)
                .or_else(|| lookup(record, &c.age_field).and_then(Value::as_u64));
            if age.is_some_and(|a| a >= u64::from(c.child_from_age)) {
                Ok(())
            } else {
                Err(format!(
                    "the latest consent decision was given by the child, who may consent only from age {}",
                    c.child_from_age
                ))
            }
        }
        ConsentGiver::Other => {
            Err("the latest consent decision was given by someone who may not consent".into())
        }
    }
}

/// Whether condition `c` holds for the value below `base`.
pub(super) fn holds(c: &Condition, base: &Value) -> bool {
    let Some(v) = lookup(base, &c.path) else {
        return false;
    };
    if let Some(is) = &c.is {
        return match is {
            Scalar::Bool(b) => v.as_bool() == Some(*b),
            Scalar::Int(i) => v.as_i64() == Some(*i),
            Scalar::Text(t) => v.as_str() == Some(t.as_str()),
        };
    }
    if let Some(item) = &c.contains {
        return v
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(item.as_str())));
    }
    if let Some(any) = &c.any_of {
        return v.as_str().is_some_and(|s| any.iter().any(|a| a == s));
    }
    false
}

/// Every change to make, in order, each at a pointer valid when it is made,
/// and the record once they are made (a borrowed one copied only if one is).
fn plan<'r>(
    rule: &Rule,
    rules: &[RedactionRule],
    mut work: Cow<'r, Value>,
    key: Option<&[u8]>,
) -> (Vec<Redaction>, Cow<'r, Value>) {
    let mut out = Vec::new();
    if let Some(keep) = &rule.keep {
        let reason = format!("not in the field set of rule {}", rule.name);
        let mut drops = Vec::new();
        outside_keep(&work, "", "", keep, &mut drops);
        for pointer in drops {
            let r = Redaction {
                pointer,
                action: Action::Drop,
                reason: reason.clone(),
            };
            redact::perform(work.to_mut(), &r, key);
            out.push(r);
        }
    }
    for rr in rules {
        let mut matched: Vec<String> = expand(&work, &rr.path)
            .into_iter()
            .filter(|p| {
                lookup(&work, p).is_some_and(|item| {
                    rr.when.iter().all(|c| holds(c, item))
                        && !rr.unless.iter().any(|c| holds(c, item))
                })
            })
            .collect();
        // Later array elements first, so earlier indices stay valid.
        matched.reverse();
        for pointer in matched {
            let r = Redaction {
                pointer,
                action: rr.action.clone(),
                reason: rr.reason.clone(),
            };
            redact::perform(work.to_mut(), &r, key);
            out.push(r);
        }
    }
    (out, work)
}

/// Pointers of the fields a `keep` list leaves out. `pattern` is the path with
/// array indices as `*`, which is how keep lists name paths.
fn outside_keep(
    value: &Value,
    pointer: &str,
    pattern: &str,
    keep: &[String],
    out: &mut Vec<String>,
) {
    let children: Vec<(String, String, &Value)> = match value {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let seg = escape(k);
                (format!("{pointer}/{seg}"), format!("{pattern}/{seg}"), v)
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| (format!("{pointer}/{i}"), format!("{pattern}/*"), v))
            .collect(),
        _ => return,
    };
    for (child_pointer, child_pattern, v) in children {
        if keep.iter().any(|k| covers(k, &child_pattern)) {
            continue;
        }
        let below = keep.iter().any(|k| covers(&child_pattern, k));
        if below && (v.is_object() || v.is_array()) {
            outside_keep(v, &child_pointer, &child_pattern, keep, out);
        } else {
            out.push(child_pointer);
        }
    }
}
