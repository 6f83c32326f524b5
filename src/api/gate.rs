//! Who is calling, and may they call now: identifies the client of each
//! request (bearer token, client certificate, or both) and holds it to its
//! limits (rate and burst, concurrent requests, body size) before any handler
//! runs. Requests without valid credentials are limited per source address.
//!
//! One client's flood fills only its own bucket: every client has its own
//! GCRA limiter and semaphore, so another client's answers do not wait.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::auth::Caller;
use super::problem::Problem;
use crate::config::frontdoor::{AddressRange, normalize_subject};
use crate::config::{CertMatch, ClientConfig, ClientLimits, Config};

/// The client certificate a connection presented (verified by the TLS
/// layer against `client_ca_file`), as a request extension.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    pub sha256: [u8; 32],
    /// Normalised (`C=EX, O=Agency, CN=intake`); None if it cannot be parsed.
    pub subject: Option<String>,
}

impl PeerCertificate {
    pub fn from_der(der: &[u8]) -> PeerCertificate {
        let subject = x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, cert)| normalize_subject(&cert.subject().to_string()));
        PeerCertificate {
            sha256: Sha256::digest(der).into(),
            subject,
        }
    }
}

struct Slot {
    client: ClientConfig,
    rate: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    max_body_bytes: usize,
}

/// Every client's limiter and the source addresses' one, built at start.
pub struct Gate {
    by_token: HashMap<[u8; 32], Arc<Slot>>,
    by_cert: HashMap<CertMatch, Arc<Slot>>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: Vec<AddressRange>,
}

/// How often the per-address table is swept of idle addresses.
const SWEEP_AT_ADDRESSES: usize = 10_000;

fn quota(limits: &ClientLimits) -> Quota {
    // Validated: 0.001..=1e6 per second, burst 1..=100000.
    let period = Duration::from_secs_f64(1.0 / limits.rate_per_second);
    let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

enum Identity {
    Client(Arc<Slot>),
    /// No credentials at all.
    Anonymous,
    /// Credentials that name nobody (or a token without its certificate).
    Refused,
}

impl Gate {
    pub fn new(config: &Config) -> Gate {
        let mut by_token = HashMap::new();
        let mut by_cert = HashMap::new();
        for client in &config.clients {
            let slot = Arc::new(Slot {
                rate: RateLimiter::direct(quota(&client.limits)),
                in_flight: Arc::new(Semaphore::new(client.limits.max_concurrent as usize)),
                max_body_bytes: client.limits.max_body_bytes,
                client: client.clone(),
            });
            if let Some(hash) = client.token_sha256 {
                by_token.insert(hash, slot.clone());
            }
            if let Some(cert) = &client.cert {
                by_cert.insert(cert.clone(), slot);
            }
        }
        Gate {
            by_token,
            by_cert,
            anonymous: RateLimiter::keyed(quota(&config.server.front.unauthenticated_limits)),
            trusted_proxies: config.server.front.trusted_proxies.clone(),
        }
    }

    fn identify(&self, request: &Request) -> Identity {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .map(str::trim)
            });
        let cert = request.extensions().get::<PeerCertificate>();
        match token {
            Some(None) => Identity::Refused,
            Some(Some(token)) => {
                let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                match self.by_token.get(&hash) {
                    Some(slot) if cert_matches(&slot.client, cert) => {
                        Identity::Client(slot.clone())
                    }
                    _ => Identity::Refused,
                }
            }
            None => match cert.and_then(|c| self.by_certificate(c)) {
                // A client that also has a token must show it.
                Some(slot) if slot.client.token_sha256.is_none() => Identity::Client(slot.clone()),
                Some(_) => Identity::Refused,
                None if cert.is_some() => Identity::Refused,
                None => Identity::Anonymous,
            },
        }
    }

    fn by_certificate(&self, cert: &PeerCertificate) -> Option<&Arc<Slot>> {
        self.by_cert
            .get(&CertMatch::Sha256(cert.sha256))
            .or_else(|| {
                cert.subject
                    .as_ref()
                    .and_then(|s| self.by_cert.get(&CertMatch::Subject(s.clone())))
            })
    }

    /// The address a request comes from: the connection's, or, from a
    /// trusted proxy, the nearest untrusted address in `X-Forwarded-For`.
    fn source_address(&self, request: &Request) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|a| !self.trusted(*a))
                .unwrap_or(peer),
        )
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(ip))
    }
}

fn cert_matches(client: &ClientConfig, cert: Option<&PeerCertificate>) -> bool {
    match (&client.cert, cert) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(CertMatch::Sha256(h)), Some(c)) => *h == c.sha256,
        (Some(CertMatch::Subject(s)), Some(c)) => c.subject.as_deref() == Some(s.as_str()),
    }
}

fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Probes are never limited: a load balancer must see a busy gateway as alive.
fn is_probe(request: &Request) -> bool {
    matches!(request.uri().path(), "/healthz" | "/readyz")
}

/// The console's page and assets are fetched without a token (a browser
/// sends none for them) and are the same embedded bytes for everyone, as
/// cheap as a probe: a page load (six files, and again on each reload) must
/// not spend the per-address allowance of requests without credentials, or
/// an office behind one address could not open the console. The front
/// door's connection cap and header timeouts still bound them, and the data
/// the page shows comes from the API, under the caller's own limits.
fn is_console_asset(request: &Request) -> bool {
    request.method() == axum::http::Method::GET && request.uri().path().starts_with("/console/")
}

pub async fn gate(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    if is_probe(&request) || is_console_asset(&request) {
        return next.run(request).await;
    }
    match gate.identify(&request) {
        Identity::Client(slot) => {
            if let Err(not_until) = slot.rate.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Problem::too_many_requests(
                    "over this client's request rate (limits.rate_per_second and burst)",
                    retry_after(wait).max(1),
                )
                .into_response();
            }
            let Ok(_permit) = slot.in_flight.clone().try_acquire_owned() else {
                return Problem::too_many_requests(
                    "over this client's concurrent requests (limits.max_concurrent)",
                    1,
                )
                .into_response();
            };
            let limited = slot.max_body_bytes;
            if super::announces_more_than(&request, limited) {
                return Problem::too_large().into_response();
            }
            request.extensions_mut().insert(Caller(slot.client.clone()));
            let request =
                request.map(|body| Body::new(http_body_util::Limited::new(body, limited)));
            next.run(request).await
        }
        Identity::Anonymous | Identity::Refused => {
            if let Some(ip) = gate.source_address(&request) {
                if gate.anonymous.len() > SWEEP_AT_ADDRESSES {
                    gate.anonymous.retain_recent();
                }
                if let Err(not_until) = gate.anonymous.check_key(&ip) {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return Problem::too_many_requests(
                        "over the rate of requests without valid credentials from this address",
                        retry_after(wait).max(1),
                    )
                    .into_response();
                }
            }
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_rounded_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_secs(2)), 2);
        assert_eq!(retry_after(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn a_quota_allows_its_burst_then_refuses() {
        let limits = ClientLimits {
            rate_per_second: 0.001,
            burst: 3,
            max_concurrent: 1,
            max_body_bytes: 1024,
        };
        let limiter = RateLimiter::direct(quota(&limits));
        assert!((0..3).all(|_| limiter.check().is_ok()));
        assert!(limiter.check().is_err());
    }
}
