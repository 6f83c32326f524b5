//! The route context: what a mapping may know besides the record. Everything in
//! it derives from the record and the route, except `timestamp`, which the
//! caller injects; mappings never read the clock.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::locations::LocationList;
use crate::model::RecordId;
use std::sync::Arc;

/// Namespace of the gateway's UUIDv5 ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x5b0f_3e2a_8c1d_4f6e_9a7b_2c4d_6e8f_0a1b);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteContext {
    pub record_id: RecordId,
    pub record_version: i64,
    pub route: String,
    pub destination: String,
    pub timestamp: DateTime<Utc>,
    /// Which request this rendering is for: the delivery's claim count, new
    /// for every lease (1 for `translate`). Only per-request ids (X-Road's
    /// `xrd:id`) may depend on it.
    pub attempt: u32,
    /// Whom the record is about, per owning agency ([`crate::model::subject_key`]):
    /// the same for every version of one source record. None when the source
    /// gave no stable id.
    pub subject: Option<String>,
    /// The destination's location list as it is now (refreshed from the
    /// registry while the gateway runs); None when it keeps none.
    pub locations: Option<Arc<LocationList>>,
    /// The legal basis the route's policy decided on (`LEGAL_OBLIGATION`,
    /// `CONSENT`, `VITAL_INTEREST`): what a registry is told the exchange
    /// rests on, rather than what the record asserts. Set when rendering.
    pub legal_basis: Option<&'static str>,
}

/// The names `$ctx/...` and CEL's `ctx.` may use.
pub const CONTEXT_FIELDS: [&str; 12] = [
    "record_id",
    "record_version",
    "route",
    "destination",
    "message_id",
    "idempotency_key",
    "document_id",
    "record_key",
    "request_id",
    "timestamp",
    "attempt",
    "legal_basis",
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

    /// Stable across the versions of one source record on this route, and
    /// per owning agency (another agency's same source id gives another key):
    /// the id a registry that updates in place files the record under (FHIR
    /// `Bundle.id`, Primero `data.id`). Without a stable source id, per record.
    pub fn record_key(&self) -> Uuid {
        let owner = match &self.subject {
            Some(subject) => format!("subject/{subject}"),
            None => format!("record/{}", self.record_id),
        };
        Uuid::new_v5(
            &NAMESPACE,
            format!("{owner}/{}/record-key", self.route).as_bytes(),
        )
    }

    /// A UUIDv5 that, like [`RouteContext::record_key`], is the same for
    /// every version of one source record on this route (Primero subform
    /// rows' `unique_id`, which a correction's PATCH merges on).
    pub fn record_derived(&self, purpose: &str) -> Uuid {
        Uuid::new_v5(&self.record_key(), purpose.as_bytes())
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

    /// Every context field, as `$ctx/...` and CEL's `ctx` see them.
    pub fn to_value(&self) -> Value {
        self.to_value_of(&CONTEXT_FIELDS)
    }

    /// Only the fields named in `keys`: most are derived ids (a SHA-1 each),
    /// and a mapping reads a few of them.
    pub fn to_value_of(&self, keys: &[&str]) -> Value {
        Value::Object(
            keys.iter()
                .filter_map(|key| Some((key.to_string(), self.field(key)?)))
                .collect(),
        )
    }

    fn field(&self, key: &str) -> Option<Value> {
        Some(match key {
            "record_id" => self.record_id.to_string().into(),
            "record_version" => self.record_version.into(),
            "route" => self.route.clone().into(),
            "destination" => self.destination.clone().into(),
            "message_id" => self.message_id().to_string().into(),
            "idempotency_key" => self.idempotency_key().into(),
            "document_id" => self.document_id().to_string().into(),
            "record_key" => self.record_key().to_string().into(),
            "request_id" => self.request_id().to_string().into(),
            "attempt" => self.attempt.into(),
            "timestamp" => self
                .timestamp
                .to_rfc3339_opts(SecondsFormat::Secs, true)
                .into(),
            "legal_basis" => self.legal_basis.into(),
            _ => return None,
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
            subject: Some("s1".into()),
            locations: None,
            legal_basis: None,
        }
    }

    #[test]
    fn the_record_key_is_the_same_for_every_version_and_differs_by_subject_and_route() {
        assert_eq!(ctx(1, "a").record_key(), ctx(2, "a").record_key());
        assert_ne!(ctx(1, "a").record_key(), ctx(1, "b").record_key());
        let other = RouteContext {
            subject: Some("s2".into()),
            ..ctx(1, "a")
        };
        assert_ne!(ctx(1, "a").record_key(), other.record_key());
        let unkeyed = RouteContext {
            subject: None,
            locations: None,
            legal_basis: None,
            ..ctx(1, "a")
        };
        assert_ne!(unkeyed.record_key(), ctx(1, "a").record_key());
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

    #[test]
    fn a_subset_of_fields_reads_the_same_values_as_the_whole_context() {
        let c = ctx(2, "a");
        let all = c.to_value();
        let some = c.to_value_of(&["message_id", "legal_basis"]);
        assert_eq!(some.as_object().unwrap().len(), 2);
        assert_eq!(some["message_id"], all["message_id"]);
        assert_eq!(some["legal_basis"], all["legal_basis"]);
    }
}
