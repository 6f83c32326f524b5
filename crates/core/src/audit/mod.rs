//! The exchange log's events: what happened, to which record, decided by which
//! rule, with hashes; never a field's value.
//!
//! Architecture invariant: pure. Events are turned into canonical bytes here and
//! hashed here; storing them is the store's job, appending only. The leaf hash
//! follows RFC 6962 (`SHA-256(0x00 || bytes)`) so that the later Merkle log can
//! be built over the same sequence without rewriting a single event.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::model::RecordType;

pub mod bundle;
pub mod checkpoint;
pub mod merkle;
use crate::policy::Outcome;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditKind {
    #[serde(rename = "record.accepted")]
    RecordAccepted,
    #[serde(rename = "record.rejected")]
    RecordRejected,
    #[serde(rename = "record.idempotency_conflict")]
    IdempotencyConflict,
    /// A registry took the record (or already had it).
    #[serde(rename = "delivery.delivered")]
    DeliveryDelivered,
    /// An attempt failed; another is scheduled.
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
    /// No more attempts: the delivery is a dead letter.
    #[serde(rename = "delivery.dead")]
    DeliveryDead,
    /// The policy, re-checked before sending, no longer lets it go.
    #[serde(rename = "delivery.cancelled")]
    DeliveryCancelled,
    /// An operator made a dead letter due again.
    #[serde(rename = "delivery.replayed")]
    DeliveryReplayed,
    /// The registry holds the record but has not decided: checked again later.
    #[serde(rename = "delivery.awaiting")]
    DeliveryAwaiting,
    /// The outcome of an attempt is unknown at a registry without
    /// idempotency: parked for an operator.
    #[serde(rename = "delivery.parked")]
    DeliveryParked,
    /// The registry takes this change only through its own process.
    #[serde(rename = "delivery.referred")]
    DeliveryReferred,
    /// A consent decision granting sharing was recorded (a consent record).
    #[serde(rename = "consent.granted")]
    ConsentGranted,
    /// A consent decision withdrawing sharing was recorded.
    #[serde(rename = "consent.withdrawn")]
    ConsentWithdrawn,
    /// The record's data key was destroyed (retention period over, or the
    /// owning agency asked for erasure): its payload is unrecoverable.
    #[serde(rename = "record.purged")]
    RecordPurged,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::RecordAccepted => "record.accepted",
            AuditKind::RecordRejected => "record.rejected",
            AuditKind::IdempotencyConflict => "record.idempotency_conflict",
            AuditKind::DeliveryDelivered => "delivery.delivered",
            AuditKind::DeliveryFailed => "delivery.failed",
            AuditKind::DeliveryDead => "delivery.dead",
            AuditKind::DeliveryCancelled => "delivery.cancelled",
            AuditKind::DeliveryReplayed => "delivery.replayed",
            AuditKind::DeliveryAwaiting => "delivery.awaiting",
            AuditKind::DeliveryParked => "delivery.parked",
            AuditKind::DeliveryReferred => "delivery.referred",
            AuditKind::ConsentGranted => "consent.granted",
            AuditKind::ConsentWithdrawn => "consent.withdrawn",
            AuditKind::RecordPurged => "record.purged",
        }
    }
}

/// Why a delivery attempt did not end in a receipt, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A transient failure (network, 5xx, store): tried again later.
    Retryable,
    /// The registry's rate limit: the destination backs off.
    RateLimited,
    /// The registry refused the record for good.
    Permanent,
    /// The policy, re-checked before sending, no longer lets it go.
    Policy,
    /// The record could not be turned into the registry's format.
    Render,
    /// The request may have been registered: a person must settle it.
    OutcomeUnknown,
    /// The registry takes the change only through its own process.
    RegistryProcess,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Policy => "policy",
            ErrorClass::Render => "render",
            ErrorClass::OutcomeUnknown => "outcome_unknown",
            ErrorClass::RegistryProcess => "registry_process",
        }
    }
}

/// The decision for one route, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDecision {
    pub route: String,
    pub destination: String,
    /// `deliver` or `deny`.
    pub decision: Outcome,
    /// The legal basis the policy names for sharing on this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// The policy rule that decided, and the SHA-256 of the policy file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
}

/// One delivery attempt, as the log records it: ids, classes and hashes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryAudit {
    pub route: String,
    pub destination: String,
    pub delivery_id: i64,
    pub attempt: i64,
    /// SHA-256 (hex) of the exact bytes sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// The idempotency key the registry saw (derived from ids, no personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// ACCEPTED or DUPLICATE, and SHA-256 (hex) of the registry's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_sha256: Option<String>,
    /// retryable, rate_limited, permanent, policy, render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// Codes, statuses, paths and rule names only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy rule and policy hash of the decision re-checked before sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
}

impl DeliveryAudit {
    /// The delivery and attempt, with nothing yet known about the outcome.
    pub fn new(route: &str, destination: &str, delivery_id: i64, attempt: i64) -> DeliveryAudit {
        DeliveryAudit {
            route: route.to_string(),
            destination: destination.to_string(),
            delivery_id,
            attempt,
            payload_sha256: None,
            idempotency_key: None,
            receipt_status: None,
            receipt_sha256: None,
            error_class: None,
            reason: None,
            rule: None,
            policy_sha256: None,
        }
    }
}

/// A problem, by place and rule only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemRef {
    pub pointer: String,
    pub code: &'static str,
}

/// One event of the exchange log. Field order is the canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub version: u8,
    pub at: String,
    pub kind: AuditKind,
    pub client: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_type: Option<RecordType>,
    /// SHA-256 of the request body as received, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteDecision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryAudit>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, at: DateTime<Utc>, client: &str, source: &str) -> AuditEvent {
        AuditEvent {
            version: 1,
            at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind,
            client: client.to_string(),
            source: source.to_string(),
            record_id: None,
            record_type: None,
            body_sha256: None,
            routes: Vec::new(),
            problems: Vec::new(),
            delivery: None,
        }
    }

    /// The bytes that are stored and hashed: compact JSON in field order.
    /// Deterministic because every field is a string, integer or list of them.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an audit event always serialises")
    }
}

/// RFC 6962 leaf hash of an event's canonical bytes.
pub fn leaf_hash(canonical_bytes: &[u8]) -> [u8; 32] {
    merkle::leaf_hash(canonical_bytes)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sha2::{Digest, Sha256};

    use super::*;

    fn sample() -> AuditEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let mut e = AuditEvent::new(AuditKind::RecordRejected, at, "demo-agency", "canonical");
        e.problems.push(ProblemRef {
            pointer: "/child/sex".into(),
            code: "enum",
        });
        e
    }

    #[test]
    fn canonical_bytes_are_stable() {
        assert_eq!(
            String::from_utf8(sample().canonical_bytes()).unwrap(),
            r#"{"version":1,"at":"2026-11-25T10:00:00.000Z","kind":"record.rejected","client":"demo-agency","source":"canonical","problems":[{"pointer":"/child/sex","code":"enum"}]}"#
        );
    }

    #[test]
    fn typed_fields_keep_their_logged_names() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let mut e = AuditEvent::new(AuditKind::DeliveryDead, at, "demo-agency", "delivery");
        e.record_type = Some(RecordType::ChildProtectionCase);
        e.routes.push(RouteDecision {
            route: "r".into(),
            destination: "d".into(),
            decision: Outcome::Deny,
            legal_basis: None,
            rule: None,
            policy_sha256: None,
        });
        let mut d = DeliveryAudit::new("r", "d", 7, 2);
        d.error_class = Some(ErrorClass::RateLimited);
        e.delivery = Some(d);
        assert_eq!(
            String::from_utf8(e.canonical_bytes()).unwrap(),
            r#"{"version":1,"at":"2026-11-25T10:00:00.000Z","kind":"delivery.dead","client":"demo-agency","source":"delivery","record_type":"child-protection-case","routes":[{"route":"r","destination":"d","decision":"deny"}],"delivery":{"route":"r","destination":"d","delivery_id":7,"attempt":2,"error_class":"rate_limited"}}"#
        );
        for class in [
            ErrorClass::Retryable,
            ErrorClass::RateLimited,
            ErrorClass::Permanent,
            ErrorClass::Policy,
            ErrorClass::Render,
        ] {
            assert_eq!(
                serde_json::to_string(&class).unwrap(),
                format!("\"{}\"", class.as_str())
            );
        }
    }

    #[test]
    fn leaf_hash_is_domain_separated() {
        let bytes = sample().canonical_bytes();
        let plain: [u8; 32] = Sha256::digest(&bytes).into();
        assert_ne!(leaf_hash(&bytes), plain);
        // Known answer: RFC 6962 leaf hash of the empty string.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
