//! The shared vocabulary: record types, roles, and ids.
//!
//! Closed enums on purpose: adding a record type or a role is a compile error at
//! every place that must decide what to do with it.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The canonical record types. Each has a JSON Schema in `schemas/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordType {
    BirthNotification,
    ChildProtectionCase,
    Consent,
}

impl RecordType {
    pub const ALL: [RecordType; 3] = [
        RecordType::BirthNotification,
        RecordType::ChildProtectionCase,
        RecordType::Consent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::BirthNotification => "birth-notification",
            RecordType::ChildProtectionCase => "child-protection-case",
            RecordType::Consent => "consent",
        }
    }

    pub fn parse(s: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one delivery stands. Stored, and shown by the status and admin
/// APIs, as its lowercase name (`pending`, `awaiting`, `delivered`,
/// `parked`, `referred`, `dead`, `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Due now or later (leased or not).
    Pending,
    /// The registry holds it but has not decided (OpenCRVS 2.x NOTIFY
    /// `Requested`): checked again later by resending the same idempotent request.
    Awaiting,
    /// A registry took it (or already had it).
    Delivered,
    /// Needs a person before anything more is sent: the outcome of an attempt
    /// at a registry that honours no idempotency key is unknown. Later
    /// versions of the same record wait.
    Parked,
    /// Ended: the registry takes this change only through its own process
    /// (a correction of an event it has not registered); its reference is in
    /// the receipt. Nothing more is sent.
    Referred,
    /// Will not be retried until an operator replays it.
    Dead,
    /// The policy, re-checked before sending, no longer lets it go.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::Awaiting,
        DeliveryState::Delivered,
        DeliveryState::Parked,
        DeliveryState::Referred,
        DeliveryState::Dead,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Awaiting => "awaiting",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Parked => "parked",
            DeliveryState::Referred => "referred",
            DeliveryState::Dead => "dead",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// Nothing more will happen to it without an operator: its record's
    /// payload may be purged. Pending, awaiting and parked deliveries still
    /// need the payload (a parked one may be replayed once a person checked).
    pub fn is_final(self) -> bool {
        match self {
            DeliveryState::Delivered
            | DeliveryState::Referred
            | DeliveryState::Dead
            | DeliveryState::Cancelled => true,
            DeliveryState::Pending | DeliveryState::Awaiting | DeliveryState::Parked => false,
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client may do. Decided once at authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pushes records and reads the status of its own records.
    Agency,
    /// A registry calling back (receipts); reads nothing else.
    Registry,
    /// Reads the exchange log and any record's status (which holds no personal data).
    Auditor,
    /// Operates the gateway.
    Admin,
    /// Reads `/metrics` (a Prometheus scraper); nothing else.
    Metrics,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agency,
        Role::Registry,
        Role::Auditor,
        Role::Admin,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agency => "agency",
            Role::Registry => "registry",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The gateway's own id for an accepted record. UUIDv7, so ids sort by arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub Uuid);

impl RecordId {
    pub fn new() -> RecordId {
        RecordId(Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Option<RecordId> {
        Uuid::parse_str(s).ok().map(RecordId)
    }
}

impl Default for RecordId {
    fn default() -> Self {
        RecordId::new()
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Name a route as DESIGN.md requires: `<record-type>-to-<destination>`.
pub fn route_name(record_type: RecordType, destination: &str) -> String {
    format!("{}-to-{}", record_type.as_str(), destination)
}

/// The key naming the person a record is about, for one owning agency: a
/// hash of (client, record type, the source's stable id), so it carries no
/// personal data and two agencies' records never share a subject.
pub fn subject_key(client_id: &str, record_type: &str, source_record_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [client_id, record_type, source_record_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_round_trip_through_their_names() {
        for t in RecordType::ALL {
            assert_eq!(RecordType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(RecordType::parse("birth_notification"), None);
    }

    #[test]
    fn delivery_states_round_trip_through_their_names() {
        for d in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(d.as_str()), Some(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
        }
        assert_eq!(DeliveryState::parse("Pending"), None);
    }

    #[test]
    fn roles_round_trip_and_reject_unknown_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Admin"), None);
    }

    #[test]
    fn route_names_follow_the_design() {
        assert_eq!(
            route_name(RecordType::BirthNotification, "examplia-crvs"),
            "birth-notification-to-examplia-crvs"
        );
    }

    #[test]
    fn record_ids_sort_by_creation() {
        let a = RecordId::new();
        let b = RecordId::new();
        assert!(a < b);
        assert_eq!(RecordId::parse(&a.to_string()), Some(a));
    }
}
