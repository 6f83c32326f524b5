//! Sharing policy: may this record go to this route, on which legal basis, and
//! with what removed or transformed? Pure: no I/O after [`load`], no clock.
//!
//! One TOML file per route (`policies/<route>.toml`, see docs/policy.md). Deny
//! by default: a record is delivered only when a rule of its route's policy
//! matches, and then only minimised by [`Policies::apply`]. Reasons and errors
//! name paths and rules, never values.

mod consent;
mod describe;
mod evaluate;
mod fhir_consent;
mod load;
mod redact;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_consent;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::RecordType;
use crate::schema::Sensitivity;

pub use consent::{ConsentGiver, ConsentState, ConsentStatus};
pub use describe::{ConsentSummary, FieldPolicy, PolicySummary, RedactionSummary, RuleSummary};
pub use fhir_consent::{ConsentSubject, fhir_consent};
pub use load::{PolicyLoadError, load};
pub use redact::hmac_sha256;
/// A JSON pointer read without serde_json's copy of every segment.
pub(crate) use redact::lookup as json_pointer;

/// The lawful bases a rule may rely on (the words decisions use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalBasis {
    Consent,
    LegalObligation,
    VitalInterest,
    PublicTask,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 4] = [
        LegalBasis::Consent,
        LegalBasis::LegalObligation,
        LegalBasis::VitalInterest,
        LegalBasis::PublicTask,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "CONSENT",
            LegalBasis::LegalObligation => "LEGAL_OBLIGATION",
            LegalBasis::VitalInterest => "VITAL_INTEREST",
            LegalBasis::PublicTask => "PUBLIC_TASK",
        }
    }

    pub fn parse(s: &str) -> Option<LegalBasis> {
        LegalBasis::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// Serialised (in answers, `decisions.json` and the exchange log) as `deliver` / `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Deliver,
    Deny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deliver => "deliver",
            Outcome::Deny => "deny",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a redaction does to the value at its pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove the field (or the array element).
    Drop,
    /// Replace the value with a fixed marker.
    Mask,
    /// Replace the value with HMAC-SHA256(destination key, value), hex.
    Pseudonym,
    /// A `YYYY-MM-DD` date becomes `YYYY`.
    GeneraliseYear,
    /// A `YYYY-MM-DD` date becomes `YYYY-MM`.
    GeneraliseMonth,
    /// An integer age becomes its band (`10-14`, `18+`), from ascending lower bounds.
    AgeBand(Vec<u32>),
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Drop => "drop",
            Action::Mask => "mask",
            Action::Pseudonym => "pseudonym",
            Action::GeneraliseYear => "generalise_year",
            Action::GeneraliseMonth => "generalise_month",
            Action::AgeBand(_) => "age_band",
        }
    }
}

/// One change made to the record before it leaves: where (JSON pointer), what, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    pub pointer: String,
    pub action: Action,
    pub reason: String,
}

/// The outcome of [`Policies::decide`]; recorded with every exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: String,
    pub decision: Outcome,
    pub reason: String,
    pub legal_basis: Option<&'static str>,
    /// The rule that let the record through, or `deny-by-default`.
    pub rule: String,
    /// SHA-256 (hex) of the policy file's bytes.
    pub policy_sha256: String,
    /// In the order [`Policies::apply`] performs them.
    pub redactions: Vec<Redaction>,
}

/// Every route's policy, loaded and checked.
#[derive(Debug)]
pub struct Policies {
    routes: BTreeMap<String, load::Policy>,
    /// Per-destination keys for keyed pseudonyms; never in policy files.
    pseudonym_keys: BTreeMap<String, Vec<u8>>,
}

impl Policies {
    /// Give a destination its pseudonym key (from a secret store, not a file in git).
    pub fn set_pseudonym_key(&mut self, destination: &str, key: Vec<u8>) {
        self.pseudonym_keys.insert(destination.to_string(), key);
    }

    /// May `record` (of `record_type`) go through `route`, and minimised how?
    /// `record` is expected to be valid against its canonical schema (intake
    /// validates first); any other JSON is still handled without panicking.
    /// Consent is read from the record's own fields.
    pub fn decide(&self, route: &str, record_type: RecordType, record: &Value) -> Decision {
        self.decide_with_consent(route, record_type, record, None)
    }

    /// [`Policies::decide`], with the latest consent decision about the
    /// record's subject (consent API or consent record), which overrides the
    /// record's consent fields for the rules that rely on CONSENT: withdrawn,
    /// they fail; granted, consent counts when it covers the policy's purpose
    /// and the route's recipient and its giver may consent. Rules on other
    /// legal bases are not affected.
    pub fn decide_with_consent(
        &self,
        route: &str,
        record_type: RecordType,
        record: &Value,
        consent: Option<&ConsentState>,
    ) -> Decision {
        self.decide_minimised(route, record_type, Cow::Borrowed(record), consent)
            .0
    }

    /// [`Policies::decide_with_consent`], and when the decision delivers,
    /// the minimised record ([`Policies::apply`]) made along the way: a
    /// borrowed record is copied only when something is redacted, an owned
    /// one is redacted in place (the caller's last use of it).
    pub fn decide_minimised<'r>(
        &self,
        route: &str,
        record_type: RecordType,
        record: Cow<'r, Value>,
        consent: Option<&ConsentState>,
    ) -> (Decision, Option<Cow<'r, Value>>) {
        self.evaluate(route, record_type, record, consent, true)
    }

    /// [`Policies::decide_with_consent`] without planning the redactions:
    /// whether the record may go on `route`, by which rule and legal basis,
    /// with `redactions` left empty and the record never copied. What
    /// acceptance answers; the redactions are planned again before each send.
    pub fn verdict(
        &self,
        route: &str,
        record_type: RecordType,
        record: &Value,
        consent: Option<&ConsentState>,
    ) -> Decision {
        self.evaluate(route, record_type, Cow::Borrowed(record), consent, false)
            .0
    }

    fn evaluate<'r>(
        &self,
        route: &str,
        record_type: RecordType,
        record: Cow<'r, Value>,
        consent: Option<&ConsentState>,
        minimise: bool,
    ) -> (Decision, Option<Cow<'r, Value>>) {
        match self.routes.get(route) {
            Some(policy) => evaluate::decide(
                policy,
                route,
                record_type,
                record,
                self.pseudonym_keys
                    .get(&policy.destination)
                    .map(Vec::as_slice),
                consent,
                minimise,
            ),
            None => {
                let decision = Decision {
                    route: route.to_string(),
                    decision: Outcome::Deny,
                    reason: "no policy for this route".into(),
                    legal_basis: None,
                    rule: "deny-by-default".into(),
                    policy_sha256: String::new(),
                    redactions: Vec::new(),
                };
                (decision, None)
            }
        }
    }

    /// The minimised record a delivered decision allows (`null` when denied).
    /// Performs the decision's redactions, in order, on a copy of `record`.
    pub fn apply(&self, decision: &Decision, record: &Value) -> Value {
        if decision.decision == Outcome::Deny {
            return Value::Null;
        }
        let key = self
            .routes
            .get(&decision.route)
            .and_then(|p| self.pseudonym_keys.get(&p.destination))
            .map(Vec::as_slice);
        redact::apply(&decision.redactions, record, key)
    }

    /// The sensitivity categories the route may carry (none for an unknown route).
    pub fn allowed_categories(&self, route: &str) -> &[Sensitivity] {
        self.routes
            .get(route)
            .map(|p| p.categories.as_slice())
            .unwrap_or(&[])
    }

    /// Whether a mapping on `route` may read `path` (`/incidents/*`) tagged
    /// `category`: the category is allowed, or a drop redaction of the policy
    /// removes that path (or the items of it that carry the category).
    pub fn permits(&self, route: &str, path: &str, category: Sensitivity) -> bool {
        self.routes
            .get(route)
            .is_some_and(|p| p.categories.contains(&category) || p.drops(path))
    }

    /// The route names that have a policy.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}
