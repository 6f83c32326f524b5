//! The route context: what a mapping may know besides the record. Everything in
//! it derives from the record and the route, except `timestamp`, which the
//! caller injects; mappings never read the clock.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::model::RecordId;

/// Namespace of the gateway's UUIDv5 ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x5b0f_3e2a_8c1d_4f6e_9a7b_2c4d_6e8f_0a1b);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteContext {
    pub record_id: RecordId,
    pub record_version: i64,
    pub route: String,
    pub destination: String,
    pub timestamp: DateTime<Utc>,
    /// Which delivery attempt this rendering is for (1 for `translate`). Only
    /// per-request ids (X-Road's `xrd:id`) may depend on it.
    pub attempt: u32,
}

/// The names `$ctx/...` and CEL's `ctx.` may use.
pub const CONTEXT_FIELDS: [&str; 10] = [
    "record_id",
    "record_version",
    "route",
    "destination",
    "message_id",
    "idempotency_key",
    "document_id",
    "request_id",
    "timestamp",
    "attempt",
];

impl RouteContext {
    /// A stable id for this record version on this route: the registry's
    /// idempotency key where it wants a UUID (Examplia NotificationId, Primero id).
    pub fn message_id(&self) -> Uuid {
        self.derived("message")
    }

    /// Another stable id, for the document itself (FHIR Bundle.identifier).
    pub fn document_id(&self) -> Uuid {
        self.derived("document")
    }

    /// A UUIDv5 derived from the record, version, route and a purpose.
    pub fn derived(&self, purpose: &str) -> Uuid {
        Uuid::new_v5(
            &NAMESPACE,
            format!(
                "{}/v{}/{}/{purpose}",
                self.record_id, self.record_version, self.route
            )
            .as_bytes(),
        )
    }

    /// A per-request id that is new for every attempt yet reproducible
    /// (X-Road `xrd:id`: "a new UUID for every HTTP request").
    pub fn request_id(&self) -> Uuid {
        self.derived(&format!("request/{}", self.attempt))
    }

    /// The idempotency key for registries that take a string (OpenCRVS transactionId).
    pub fn idempotency_key(&self) -> String {
        format!(
            "registry-gateway:{}:v{}:{}",
            self.record_id, self.record_version, self.route
        )
    }

    pub fn to_value(&self) -> Value {
        json!({
            "record_id": self.record_id.to_string(),
            "record_version": self.record_version,
            "route": self.route,
            "destination": self.destination,
            "message_id": self.message_id().to_string(),
            "idempotency_key": self.idempotency_key(),
            "document_id": self.document_id().to_string(),
            "request_id": self.request_id().to_string(),
            "attempt": self.attempt,
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(version: i64, route: &str) -> RouteContext {
        RouteContext {
            record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
            record_version: version,
            route: route.into(),
            destination: "d".into(),
            timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            attempt: 1,
        }
    }

    #[test]
    fn ids_are_stable_and_differ_by_version_and_route() {
        assert_eq!(ctx(1, "a").message_id(), ctx(1, "a").message_id());
        assert_ne!(ctx(1, "a").message_id(), ctx(2, "a").message_id());
        assert_ne!(ctx(1, "a").message_id(), ctx(1, "b").message_id());
        assert_ne!(ctx(1, "a").message_id(), ctx(1, "a").document_id());
        assert_eq!(ctx(1, "a").message_id().get_version_num(), 5);
    }

    #[test]
    fn every_listed_field_is_in_the_value() {
        let v = ctx(1, "a").to_value();
        for f in CONTEXT_FIELDS {
            assert!(v.get(f).is_some(), "{f}");
        }
    }
}
