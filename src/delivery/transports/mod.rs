//! Transports: how bytes reach a registry. One folder per registry kind
//! (FORMATS.md): `opencrvs` (OAuth client credentials, JSON), `primero` (its
//! login modes), `xroad` (SOAP over X-Road, faults parsed), `http` (plain
//! HTTPS to a FHIR R4 exchange: conditional create or PUT). All outbound TLS is rustls, with
//! per-destination CA roots and an optional client certificate.
//!
//! A transport sends one rendered payload and classifies the answer by type,
//! never by message text: the worker decides what to do from the class alone.
//! Reasons carry codes, statuses and paths only, never a value from a record.

#[cfg(test)]
mod arbitrary;
mod auth;
mod classify;
mod http;
mod http_client;
mod oauth;
mod opencrvs;
mod primero;
mod token_cache;
mod xroad;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{DestinationConfig, DestinationKind};

pub use classify::retry_after;

/// One payload, rendered for its route, with its stable idempotency key.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    pub body: &'a [u8],
    pub content_type: &'static str,
    /// Stable per (record version, route): the same on every retry, new for a correction.
    pub idempotency_key: &'a str,
    /// Stable per (source record, route) across versions: what names "this
    /// child's record" at a registry that updates in place (FHIR `PUT`
    /// id, Primero `data.id`).
    pub record_key: &'a str,
    /// The record's version; above 1 it corrects an earlier one.
    pub record_version: i64,
    /// The receipt of the latest earlier version of this record on this route
    /// that the registry answered: a correction updates what it created.
    pub prior: Option<&'a Receipt>,
}

impl Outbound<'_> {
    /// A correction of a version the registry already holds: update, never create again.
    pub fn corrects(&self) -> Option<&Receipt> {
        self.prior.filter(|_| self.record_version > 1)
    }
}

/// What the registry said it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReceiptStatus {
    /// Registered now.
    Accepted,
    /// Already registered under this idempotency key: the earlier registration stands.
    Duplicate,
    /// The registry holds it but has not decided yet (OpenCRVS 2.x NOTIFY
    /// `Requested`): the worker checks again later with the same request.
    Requested,
    /// A correction was applied to what an earlier version created.
    Updated,
    /// A correction was filed for the registry to decide (OpenCRVS 2.x
    /// REQUEST_CORRECTION on a registered event).
    CorrectionRequested,
    /// The registry takes this change only through its own process; it
    /// holds the earlier version this receipt names (a `referred` delivery).
    Referred,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Accepted => "ACCEPTED",
            ReceiptStatus::Duplicate => "DUPLICATE",
            ReceiptStatus::Requested => "REQUESTED",
            ReceiptStatus::Updated => "UPDATED",
            ReceiptStatus::CorrectionRequested => "CORRECTION_REQUESTED",
            ReceiptStatus::Referred => "REFERRED",
        }
    }
}

/// The registry's receipt. Holds identifiers the registry issued, never record values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub status: ReceiptStatus,
    /// The registry's own reference: OpenCRVS tracking id, Primero case id,
    /// Examplia RegistryReference, FHIR `Bundle/<id>`.
    pub reference: Option<String>,
    pub http_status: u16,
    /// Other registry-issued identifiers (event id, received-at), by name.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Why a send failed, classified by what the worker does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: connect errors, timeouts, 408, 5xx. With the
    /// registry's Retry-After when it gave one (503).
    #[error("retryable: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The registry's limit was hit (429, X-Road `Server.RateLimited`): back
    /// off the whole destination for `retry_after` (or the backoff).
    #[error("rate limited: {reason}")]
    RateLimited {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Sending the same bytes again cannot succeed: other 4xx, schema refusals,
    /// credentials refused after a fresh login. The delivery becomes a dead letter.
    #[error("permanent: {reason}")]
    Permanent { reason: String },
    /// The request may have reached a registry that honours no idempotency
    /// key (a timeout or reset after it was written) and the registry offers
    /// no way to look it up: sending again could register the child twice.
    /// The delivery is parked for an operator.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// The registry takes this change only through its own process (a
    /// correction of an event it has not registered): nothing more is sent;
    /// `reference` is the registry's id of what it holds.
    #[error("needs the registry's own process: {reason}")]
    NeedsRegistryProcess {
        reason: String,
        reference: Option<String>,
    },
}

impl SendError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. }
            | SendError::RateLimited { retry_after, .. } => *retry_after,
            SendError::Permanent { .. }
            | SendError::OutcomeUnknown { .. }
            | SendError::NeedsRegistryProcess { .. } => None,
        }
    }
}

/// A transport could not be built from its destination's config.
#[derive(Debug, thiserror::Error)]
#[error("destination {destination}: {message}")]
pub struct BuildError {
    pub destination: String,
    pub message: String,
}

#[async_trait]
pub trait Transport: Send + Sync {
    /// Send one payload; on success, the registry's receipt. Handles its own
    /// authentication (token refresh before expiry and once on 401).
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError>;

    /// GET one of the registry's resources (its location list) with the
    /// transport's credentials; the body on a 2xx.
    async fn fetch(&self, url: &reqwest::Url) -> Result<Vec<u8>, SendError> {
        let _ = url;
        Err(SendError::Permanent {
            reason: "this registry kind serves no location list".into(),
        })
    }
}

/// The transports' "now": token lifetimes and Retry-After dates are read
/// against it. The system clock, or one a test moves (the mock registries').
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The transport of a destination, on the system clock.
pub fn build(dest: &DestinationConfig) -> Result<Arc<dyn Transport>, BuildError> {
    build_with_clock(dest, Clock::system())
}

/// The transport of a destination. The match has no wildcard: a new
/// destination kind does not compile until it has a transport.
pub fn build_with_clock(
    dest: &DestinationConfig,
    clock: Clock,
) -> Result<Arc<dyn Transport>, BuildError> {
    Ok(match dest.kind {
        DestinationKind::Opencrvs => {
            Arc::new(opencrvs::Opencrvs::new(dest, opencrvs::Version::V2, clock)?)
        }
        DestinationKind::OpencrvsV1 => {
            Arc::new(opencrvs::Opencrvs::new(dest, opencrvs::Version::V1, clock)?)
        }
        DestinationKind::FhirR4 => Arc::new(http::PlainHttps::new(dest, clock)?),
        DestinationKind::Primero => Arc::new(primero::Primero::new(dest, clock)?),
        DestinationKind::ExampliaCrvs => Arc::new(xroad::XRoad::new(dest, clock)?),
    })
}

impl BuildError {
    fn new(dest: &DestinationConfig, message: impl Into<String>) -> BuildError {
        BuildError {
            destination: dest.name.clone(),
            message: message.into(),
        }
    }
}

/// The destination's URL; every transport needs one.
fn url_of(dest: &DestinationConfig) -> Result<reqwest::Url, BuildError> {
    let text = dest
        .url
        .as_deref()
        .ok_or_else(|| BuildError::new(dest, "url is required to deliver"))?;
    let url = reqwest::Url::parse(text)
        .map_err(|e| BuildError::new(dest, format!("url is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        _ => Err(BuildError::new(dest, "url must be http:// or https://")),
    }
}

/// `url` followed by `segments` (after dropping its last segment when
/// `replace_last`), each percent-encoded: an id a registry issued names a
/// resource under the path it is put in, never another path (`../`).
fn url_with(url: &reqwest::Url, replace_last: bool, segments: &[&str]) -> Option<reqwest::Url> {
    let mut url = url.clone();
    {
        let mut path = url.path_segments_mut().ok()?;
        if replace_last {
            path.pop();
        }
        path.extend(segments);
    }
    Some(url)
}

#[cfg(test)]
mod url_with_tests {
    use super::url_with;

    #[test]
    fn ids_stay_under_the_path_they_are_put_in() {
        let notify = reqwest::Url::parse("https://crvs.example/api/events/events/notify").unwrap();
        assert_eq!(
            url_with(&notify, true, &["e1", "correction", "request"])
                .unwrap()
                .as_str(),
            "https://crvs.example/api/events/events/e1/correction/request"
        );
        let cases = reqwest::Url::parse("https://primero.example/api/v2/cases").unwrap();
        assert_eq!(
            url_with(&cases, false, &["../users"]).unwrap().as_str(),
            "https://primero.example/api/v2/cases/..%2Fusers"
        );
    }
}
