//! The HTTP client every transport uses: rustls only, the destination's CA
//! file instead of the built-in roots when given, an optional client
//! certificate (mutual TLS), the destination's timeout, no redirects (a
//! registry that redirects a submission is misconfigured, and a redirect
//! would carry credentials elsewhere). Answers are read whole, up to a cap.

use std::path::Path;

use reqwest::header::HeaderMap;
use reqwest::{Certificate, Client, Identity, RequestBuilder, StatusCode};

use super::classify::transport_error;
use super::{BuildError, Outbound, SendError};
use crate::config::DestinationConfig;

/// A POST of a rendered payload to `url`; each transport adds its own headers.
pub(super) fn post_payload(
    client: &Client,
    url: &reqwest::Url,
    outbound: &Outbound<'_>,
) -> RequestBuilder {
    client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, outbound.content_type)
        .body(outbound.body.to_vec())
}

/// Registries answer receipts and error lists; anything larger is not one.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// `cookies`: keep a cookie jar (Primero's session mode).
pub(super) fn build_client(dest: &DestinationConfig, cookies: bool) -> Result<Client, BuildError> {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(dest.timeout)
        .user_agent(concat!("registry-gateway/", env!("CARGO_PKG_VERSION")))
        .cookie_store(cookies);
    if let Some(ca_file) = &dest.tls.ca_file {
        builder = builder.tls_built_in_root_certs(false);
        for cert in read_ca_file(dest, ca_file)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some((cert_file, key_file)) = &dest.tls.client_identity {
        builder = builder.identity(read_identity(dest, cert_file, key_file)?);
    }
    builder
        .build()
        .map_err(|e| BuildError::new(dest, format!("cannot build the HTTP client: {e}")))
}

fn read_file(dest: &DestinationConfig, path: &Path, what: &str) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| {
        BuildError::new(
            dest,
            format!("tls.{what} {}: cannot read: {e}", path.display()),
        )
    })
}

fn read_ca_file(dest: &DestinationConfig, path: &Path) -> Result<Vec<Certificate>, BuildError> {
    let pem = read_file(dest, path, "ca_file")?;
    let invalid =
        |why: String| BuildError::new(dest, format!("tls.ca_file {}: {why}", path.display()));
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn read_identity(
    dest: &DestinationConfig,
    cert_file: &Path,
    key_file: &Path,
) -> Result<Identity, BuildError> {
    let mut pem = read_file(dest, key_file, "client_key_file")?;
    pem.push(b'\n');
    pem.extend(read_file(dest, cert_file, "client_cert_file")?);
    // The error names the files, never their content (the key is a secret).
    Identity::from_pem(&pem).map_err(|_| {
        BuildError::new(
            dest,
            format!(
                "tls.client_cert_file {} and client_key_file {}: not a PEM certificate chain and private key",
                cert_file.display(),
                key_file.display()
            ),
        )
    })
}

/// A registry's answer, read whole.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Whether the same request may go again when no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// The registry deduplicates on the request's key: a lost answer is retried.
    Safe,
    /// The registry honours no idempotency key: once the request may have
    /// been written, a lost answer is an unknown outcome, never a retry.
    Unsafe,
}

/// Send and read the answer; failing to get one is classified here.
pub(super) async fn send(request: RequestBuilder) -> Result<Answer, SendError> {
    send_as(request, Resend::Safe).await
}

/// [`send`], classifying a lost answer as `resend` says.
pub(super) async fn send_as(request: RequestBuilder, resend: Resend) -> Result<Answer, SendError> {
    let lost = |e: &reqwest::Error| match resend {
        // Refused before a byte was written: nothing can have arrived.
        Resend::Unsafe if !e.is_connect() && !e.is_builder() => outcome_unknown(transport_error(e)),
        _ => transport_error(e),
    };
    let mut response = request.send().await.map_err(|e| lost(&e))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| lost(&e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            // The outcome is unknown; a resend is answered as a duplicate.
            let unreadable = SendError::Retryable {
                reason: format!(
                    "status {}: answer over {MAX_ANSWER_BYTES} bytes",
                    status.as_u16()
                ),
                retry_after: None,
            };
            return Err(match resend {
                Resend::Safe => unreadable,
                Resend::Unsafe => outcome_unknown(unreadable),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The same reason, as an unknown outcome.
fn outcome_unknown(error: SendError) -> SendError {
    let reason = match error {
        SendError::Retryable { reason, .. }
        | SendError::RateLimited { reason, .. }
        | SendError::Permanent { reason }
        | SendError::OutcomeUnknown { reason }
        | SendError::NeedsRegistryProcess { reason, .. } => reason,
    };
    SendError::OutcomeUnknown {
        reason: format!("{reason} after the request was written"),
    }
}
