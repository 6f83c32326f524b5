//! OpenCRVS (FORMATS §1, §2): a bearer token from client credentials, then
//! one POST of the JSON payload. 2.x answers the EventDocument (a replay of
//! the same `transactionId` answers the same event, indistinguishable from
//! the first answer); 1.x answers the saved record Bundle, or
//! `{compositionId, trackingId, isPotentiallyDuplicate}`.

mod receipt;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::{Client, Url};

use super::auth::{Auth, unauthorized};
use super::classify::status_error;
use super::http_client::{build_client, post_payload};
use super::{BuildError, Clock, Outbound, Receipt, SendError, Transport, url_of};
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
        Ok(Opencrvs {
            version,
            url: url_of(dest)?,
            client: build_client(dest, false)?,
            auth: Auth::standard(dest, clock.clone())?,
            clock,
        })
    }
}

#[async_trait]
impl Transport for Opencrvs {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        let request =
            || post_payload(&self.client, &self.url, outbound).header(ACCEPT, "application/json");
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
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
            Version::V2 => receipt::event_document(body.as_ref(), http_status),
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
