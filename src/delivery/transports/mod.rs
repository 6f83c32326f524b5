//! Transports: how bytes reach a registry. One folder per registry kind
//! (FORMATS.md): `opencrvs` (OAuth client credentials, JSON), `primero` (its
//! login modes), `xroad` (SOAP over X-Road, faults parsed), `http` (plain
//! HTTPS with an `Idempotency-Key` header). All outbound TLS is rustls, with
//! per-destination CA roots and an optional client certificate.
//!
//! A transport sends one rendered payload and classifies the answer by type,
//! never by message text: the worker decides what to do from the class alone.
//! Reasons carry codes, statuses and paths only, never a value from a record.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

/// One payload, rendered for its route, with its stable idempotency key.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    pub body: &'a [u8],
    pub content_type: &'static str,
    /// Stable per (record version, route): the same on every retry, new for a correction.
    pub idempotency_key: &'a str,
}

/// What the registry said it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReceiptStatus {
    /// Registered now.
    Accepted,
    /// Already registered under this idempotency key: the earlier registration stands.
    Duplicate,
}

/// The registry's receipt. Holds identifiers the registry issued, never record values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub status: ReceiptStatus,
    /// The registry's own reference: OpenCRVS tracking id, Primero case id,
    /// Examplia RegistryReference, FHIR `Bundle/<id>`.
    pub reference: Option<String>,
    pub http_status: u16,
    /// Other registry-issued identifiers (event id, received-at), by name.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
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
}

impl SendError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. }
            | SendError::RateLimited { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
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
}
