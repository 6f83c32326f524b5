//! A consent decision as an R4 FHIR Consent resource, for registries and
//! auditors that read FHIR. It names the record by identifier, never by name.

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use super::Decision;
use super::consent::{ConsentGiver, ConsentState, ConsentStatus};

/// Code systems of the gateway's own words (the policy files' vocabulary).
pub const LEGAL_BASIS_SYSTEM: &str = "urn:registry-gateway:legal-basis";
pub const PURPOSE_SYSTEM: &str = "urn:registry-gateway:purpose";
pub const DESTINATION_SYSTEM: &str = "urn:registry-gateway:destination";
pub const CONSENT_REFERENCE_SYSTEM: &str = "urn:registry-gateway:consent-reference";

/// The record the consent is about, as an identifier (`system` a URI, such as
/// `urn:registry-gateway:record-id`; `value` an id): never a name.
#[derive(Debug, Clone, Copy)]
pub struct ConsentSubject<'a> {
    pub system: &'a str,
    pub value: &'a str,
}

/// `consent` as an R4 Consent. With `decision`, `policyRule` is the legal
/// basis it relied on and `policy` names the policy file's version; without
/// one (or when it was denied) the basis is CONSENT, the decision's own.
pub fn fhir_consent(
    consent: &ConsentState,
    subject: ConsentSubject<'_>,
    decision: Option<&Decision>,
) -> Value {
    let patient = json!({
        "type": "Patient",
        "identifier": {"system": subject.system, "value": subject.value},
    });
    let basis = decision.and_then(|d| d.legal_basis).unwrap_or("CONSENT");
    let mut out = Map::new();
    out.insert("resourceType".into(), json!("Consent"));
    if let Some(reference) = &consent.reference {
        out.insert(
            "identifier".into(),
            json!([{"system": CONSENT_REFERENCE_SYSTEM, "value": reference}]),
        );
    }
    out.insert("status".into(), json!(status(consent.status)));
    out.insert(
        "scope".into(),
        json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy",
            "display": "Privacy Consent"
        }]}),
    );
    out.insert(
        "category".into(),
        json!([{"coding": [{
            "system": "http://loinc.org",
            "code": "59284-0",
            "display": "Patient Consent"
        }]}]),
    );
    out.insert(
        "dateTime".into(),
        json!(
            consent
                .decided_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    );
    out.insert(
        "performer".into(),
        json!([performer(consent.given_by, &patient)]),
    );
    out.insert("patient".into(), patient);
    if let Some(d) = decision.filter(|d| !d.policy_sha256.is_empty()) {
        out.insert(
            "policy".into(),
            json!([{"uri": format!("urn:registry-gateway:policy:{}:sha256:{}", d.route, d.policy_sha256)}]),
        );
    }
    out.insert(
        "policyRule".into(),
        json!({"coding": [{"system": LEGAL_BASIS_SYSTEM, "code": basis}]}),
    );
    out.insert("provision".into(), provision(consent));
    Value::Object(out)
}

fn status(s: ConsentStatus) -> &'static str {
    match s {
        ConsentStatus::Granted => "active",
        ConsentStatus::Withdrawn => "inactive",
    }
}

/// Who decided, by role only: the child is the patient; a caregiver is a
/// related person, not named.
fn performer(given_by: ConsentGiver, patient: &Value) -> Value {
    match given_by {
        ConsentGiver::Child => patient.clone(),
        ConsentGiver::Caregiver => json!({"type": "RelatedPerson", "display": "caregiver"}),
        ConsentGiver::Other => json!({"display": "other"}),
    }
}

/// Permit (granted) or deny (withdrawn) disclosure to the recipients, for the
/// purposes; a withdrawal without lists denies every purpose and recipient.
fn provision(consent: &ConsentState) -> Value {
    let mut p = Map::new();
    let kind = match consent.status {
        ConsentStatus::Granted => "permit",
        ConsentStatus::Withdrawn => "deny",
    };
    p.insert("type".into(), json!(kind));
    if !consent.recipients.is_empty() {
        let actors: Vec<Value> = consent
            .recipients
            .iter()
            .map(|r| {
                json!({
                    "role": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP",
                        "display": "information recipient"
                    }]},
                    "reference": {"identifier": {"system": DESTINATION_SYSTEM, "value": r}}
                })
            })
            .collect();
        p.insert("actor".into(), Value::Array(actors));
    }
    p.insert(
        "action".into(),
        json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
            "code": "disclose",
            "display": "Disclose"
        }]}]),
    );
    if !consent.purposes.is_empty() {
        let purposes: Vec<Value> = consent
            .purposes
            .iter()
            .map(|c| json!({"system": PURPOSE_SYSTEM, "code": c}))
            .collect();
        p.insert("purpose".into(), Value::Array(purposes));
    }
    Value::Object(p)
}
