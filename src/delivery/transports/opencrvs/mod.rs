//! OpenCRVS (FORMATS §1, §2, docs/registries.md): a bearer token from client
//! credentials, then one POST of the JSON payload. 2.x answers the
//! EventDocument (a replay of the same `transactionId` answers the same
//! event, indistinguishable from the first answer); 1.x answers the saved
//! record Bundle, or `{compositionId, trackingId, isPotentiallyDuplicate}`.
//!
//! 1.x honours no idempotency key: an answer lost after the request was
//! written is an unknown outcome (parked), never a blind resend.
//! Corrections: 2.x takes a correction request only for a REGISTERED event
//! (v2.0.0 `throwConflictIfActionNotAllowed`); otherwise, and always on 1.x
//! (a system client has no correction API), the change goes through the
//! registry's own process, with the tracking id.

mod receipt;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::{Client, Url};

use super::auth::{Auth, unauthorized};
use super::classify::status_error;
use super::http_client::{Resend, build_client, post_payload};
use super::oauth::CredentialsIn;
use super::{BuildError, Clock, Outbound, Receipt, SendError, Transport, url_of, url_with};
use crate::config::DestinationConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// 2.x: `POST /api/events/events/notify`.
    V2,
    /// 1.x: FHIR-shaped `POST /notification`.
    V1,
}

pub(crate) struct Opencrvs {
    version: Version,
    url: Url,
    client: Client,
    auth: Auth,
    clock: Clock,
}

impl Opencrvs {
    pub fn new(
        dest: &DestinationConfig,
        version: Version,
        clock: Clock,
    ) -> Result<Opencrvs, BuildError> {
        // 1.x's auth service reads the client credentials from the query
        // only; 2.x reads a form body first, then the query.
        let placement = match version {
            Version::V1 => CredentialsIn::Query,
            Version::V2 => CredentialsIn::Form,
        };
        Ok(Opencrvs {
            version,
            url: url_of(dest)?,
            client: build_client(dest, false)?,
            auth: Auth::standard_with(dest, clock.clone(), placement)?,
            clock,
        })
    }
}

/// The `transactionId` of the payload we sent (the idempotency key the
/// mapping put there).
fn sent_transaction_id(outbound: &Outbound<'_>) -> String {
    serde_json::from_slice::<serde_json::Value>(outbound.body)
        .ok()
        .and_then(|b| b["transactionId"].as_str().map(str::to_string))
        .unwrap_or_else(|| outbound.idempotency_key.to_string())
}

impl Opencrvs {
    /// A correction of what `prior` registered.
    async fn correct(
        &self,
        outbound: &Outbound<'_>,
        prior: &Receipt,
    ) -> Result<Receipt, SendError> {
        let referred = |reason: &str| SendError::NeedsRegistryProcess {
            reason: reason.to_string(),
            reference: prior.reference.clone(),
        };
        if self.version == Version::V1 {
            return Err(referred(
                "OpenCRVS 1.x gives a system client no way to correct a record: the registrar corrects it",
            ));
        }
        let Some(event_id) = prior.details.get("event_id").and_then(|v| v.as_str()) else {
            return Err(referred("the first version's receipt holds no event id"));
        };
        let event = self.event(event_id).await?;
        if !receipt::is_registered(&event) {
            return Err(referred(
                "the event is not registered yet, and OpenCRVS corrects only registered events: the registrar applies the change",
            ));
        }
        let url = url_with(&self.url, true, &[event_id, "correction", "request"])
            .ok_or_else(|| referred("the event id does not make a URL"))?;
        let declaration = serde_json::from_slice::<serde_json::Value>(outbound.body)
            .ok()
            .map(|b| b["declaration"].clone())
            .unwrap_or_default();
        let body = serde_json::json!({
            "transactionId": outbound.idempotency_key,
            "declaration": declaration,
            "annotation": {},
        });
        let request = || {
            self.client
                .post(url.clone())
                .header(ACCEPT, "application/json")
                .json(&body)
        };
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
        if !answer.status.is_success() {
            let detail = answer.json().as_ref().and_then(receipt::error_detail);
            return Err(status_error(
                answer.status,
                &answer.headers,
                self.clock.now(),
                detail,
            ));
        }
        Ok(receipt::correction_requested(prior, answer.status.as_u16()))
    }

    /// 2.x `GET /api/events/events/{eventId}`.
    async fn event(&self, event_id: &str) -> Result<serde_json::Value, SendError> {
        let url = url_with(&self.url, true, &[event_id]).ok_or_else(|| SendError::Permanent {
            reason: "the event id does not make a URL".into(),
        })?;
        let bytes = self.fetch(&url).await?;
        serde_json::from_slice(&bytes).map_err(|_| SendError::Retryable {
            reason: "the event is not JSON".into(),
            retry_after: None,
        })
    }
}

#[async_trait]
impl Transport for Opencrvs {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        if let Some(prior) = outbound.corrects() {
            return self.correct(outbound, prior).await;
        }
        let request =
            || post_payload(&self.client, &self.url, outbound).header(ACCEPT, "application/json");
        let resend = match self.version {
            Version::V2 => Resend::Safe,
            Version::V1 => Resend::Unsafe,
        };
        let answer = self
            .auth
            .send_as(&self.client, request, unauthorized, resend)
            .await?;
        let body = answer.json();
        if !answer.status.is_success() {
            let detail = body.as_ref().and_then(receipt::error_detail);
            return Err(status_error(
                answer.status,
                &answer.headers,
                self.clock.now(),
                detail,
            ));
        }
        let http_status = answer.status.as_u16();
        match self.version {
            Version::V2 => {
                receipt::event_document(body.as_ref(), http_status, &sent_transaction_id(outbound))
            }
            Version::V1 => receipt::notification(body.as_ref(), http_status),
        }
    }

    /// 2.x `GET /api/events/locations`, 1.x `GET /location?_count=0`.
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, SendError> {
        let request = || {
            self.client
                .get(url.clone())
                .header(ACCEPT, "application/json")
        };
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
        if !answer.status.is_success() {
            return Err(status_error(
                answer.status,
                &answer.headers,
                self.clock.now(),
                None,
            ));
        }
        Ok(answer.body)
    }
}
