//! The front door: how agencies, auditors and operators reach the gateway.
//! TLS (and client certificates) or, only when the config says so, plain
//! HTTP; per-client limits; where `/metrics` is served.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Errors;

/// Requests per second and burst each client gets unless its `limits` say
/// otherwise (the example config writes them out for each agency).
pub const DEFAULT_CLIENT_RATE: f64 = 50.0;
pub const DEFAULT_CLIENT_BURST: u32 = 100;
pub const DEFAULT_CLIENT_CONCURRENT: u32 = 32;
/// Requests without valid credentials, per source address.
pub const DEFAULT_UNAUTHENTICATED_RATE: f64 = 10.0;
pub const DEFAULT_UNAUTHENTICATED_BURST: u32 = 20;
/// Time a client has to send a request's headers (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// `[server]` keys of the front door, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// CA bundle that signs the clients' certificates; set: certificates are asked for.
    pub client_ca_file: Option<String>,
    /// `required` (default when client_ca_file is set): no certificate, no handshake;
    /// `optional`: a client without one must then present a bearer token.
    pub client_auth: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientLimits {
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub max_body_bytes: Option<u64>,
}

/// How connections are served.
#[derive(Debug, Clone, PartialEq)]
pub enum Listener {
    Tls(TlsListen),
    /// Only with `plaintext_http = true`: loopback, a demo, or behind a
    /// reverse proxy that terminates TLS.
    Plaintext,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsListen {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_certs: Option<ClientCerts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientCerts {
    pub ca_file: PathBuf,
    pub required: bool,
}

/// One client's limits (or the defaults, or the unauthenticated ones).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLimits {
    pub rate_per_second: f64,
    pub burst: u32,
    pub max_concurrent: u32,
    pub max_body_bytes: usize,
}

/// An address range of reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub network: IpAddr,
    pub prefix: u8,
}

impl AddressRange {
    pub fn parse(text: &str) -> Option<AddressRange> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(AddressRange {
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n) as u128, self.prefix, 32)
                    == masked(u32::from(a) as u128, self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrontDoor {
    pub listener: Listener,
    /// Serve `/metrics` there, without a token (else: a token of role
    /// metrics or admin on the main address).
    pub metrics_listen: Option<SocketAddr>,
    pub trusted_proxies: Vec<AddressRange>,
    /// Every client's limits unless its own `limits` say otherwise.
    pub client_limits: ClientLimits,
    /// Per source address, for requests that carry no valid credentials.
    pub unauthenticated_limits: ClientLimits,
    pub header_read_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: u32,
}

/// The raw front-door keys of `[server]`.
pub struct RawFrontDoor {
    pub plaintext_http: Option<bool>,
    pub tls: Option<RawServerTls>,
    pub metrics_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub client_limits: Option<RawClientLimits>,
    pub unauthenticated_limits: Option<RawClientLimits>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<u32>,
}

pub(super) fn validate_front_door(
    raw: RawFrontDoor,
    listen: Option<SocketAddr>,
    max_body_bytes: usize,
    errors: &mut Errors,
) -> Option<FrontDoor> {
    let listener = validate_listener(raw.plaintext_http, raw.tls, listen, errors);
    let metrics_listen = match raw.metrics_listen {
        None => Some(None),
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(Some(addr)),
            Err(_) => {
                errors.push(
                    "server.metrics_listen",
                    "must be an IP address and port, e.g. 127.0.0.1:9464",
                );
                None
            }
        },
    };
    if let Some(Some(addr)) = metrics_listen
        && !addr.ip().is_loopback()
    {
        errors.warn(
            "server.metrics_listen",
            "metrics are served there without a token: keep it on a private network",
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.trusted_proxies.iter().enumerate() {
        match AddressRange::parse(text) {
            Some(range) => trusted_proxies.push(range),
            None => errors.push(
                format!("server.trusted_proxies[{i}]"),
                "must be an IP address or a range such as 10.0.0.0/8",
            ),
        }
    }
    let defaults = ClientLimits {
        rate_per_second: DEFAULT_CLIENT_RATE,
        burst: DEFAULT_CLIENT_BURST,
        max_concurrent: DEFAULT_CLIENT_CONCURRENT,
        max_body_bytes,
    };
    let client_limits = validate_limits(
        raw.client_limits.as_ref(),
        &defaults,
        "server.client_limits",
        errors,
    );
    let unauthenticated_limits = validate_limits(
        raw.unauthenticated_limits.as_ref(),
        &ClientLimits {
            rate_per_second: DEFAULT_UNAUTHENTICATED_RATE,
            burst: DEFAULT_UNAUTHENTICATED_BURST,
            max_concurrent: DEFAULT_CLIENT_CONCURRENT,
            max_body_bytes,
        },
        "server.unauthenticated_limits",
        errors,
    );
    let header_secs = raw
        .header_read_timeout_secs
        .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT.as_secs());
    if !(1..=300).contains(&header_secs) {
        errors.push(
            "server.header_read_timeout_secs",
            "must be between 1 and 300",
        );
    }
    let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if !(1..=100_000).contains(&max_connections) {
        errors.push("server.max_connections", "must be between 1 and 100000");
    }
    Some(FrontDoor {
        listener: listener?,
        metrics_listen: metrics_listen?,
        trusted_proxies,
        client_limits: client_limits?,
        unauthenticated_limits: unauthenticated_limits?,
        header_read_timeout: Duration::from_secs(header_secs),
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        max_connections,
    })
}

fn validate_listener(
    plaintext_http: Option<bool>,
    tls: Option<RawServerTls>,
    listen: Option<SocketAddr>,
    errors: &mut Errors,
) -> Option<Listener> {
    match (plaintext_http.unwrap_or(false), tls) {
        (true, Some(_)) => {
            errors.push(
                "server.plaintext_http",
                "set either [server.tls] or plaintext_http = true, not both",
            );
            None
        }
        (true, None) => {
            if listen.is_some_and(|a| !a.ip().is_loopback()) {
                errors.warn(
                    "server.plaintext_http",
                    "plain HTTP on an address other than loopback: only behind a reverse proxy that terminates TLS on the same host or private network",
                );
            }
            Some(Listener::Plaintext)
        }
        (false, None) => {
            errors.push(
                "server.tls",
                "the gateway serves HTTPS: give [server.tls] cert_file and key_file, or write plaintext_http = true (loopback, a demo, or behind a reverse proxy that terminates TLS)",
            );
            None
        }
        (false, Some(tls)) => validate_tls(tls, errors).map(Listener::Tls),
    }
}

fn validate_tls(tls: RawServerTls, errors: &mut Errors) -> Option<TlsListen> {
    let cert_file = tls.cert_file.map(PathBuf::from);
    let key_file = tls.key_file.map(PathBuf::from);
    if cert_file.is_none() {
        errors.push(
            "server.tls.cert_file",
            "is required: the certificate chain (PEM)",
        );
    }
    if key_file.is_none() {
        errors.push("server.tls.key_file", "is required: the private key (PEM)");
    }
    let required = match tls.client_auth.as_deref() {
        None | Some("required") => Some(true),
        Some("optional") => Some(false),
        Some(_) => {
            errors.push(
                "server.tls.client_auth",
                "must be \"required\" or \"optional\"",
            );
            None
        }
    };
    let client_certs = match (tls.client_ca_file, tls.client_auth.is_some()) {
        (Some(ca), _) => Some(ClientCerts {
            ca_file: PathBuf::from(ca),
            required: required?,
        }),
        (None, true) => {
            errors.push(
                "server.tls.client_auth",
                "needs client_ca_file: the CA that signs the clients' certificates",
            );
            return None;
        }
        (None, false) => None,
    };
    Some(TlsListen {
        cert_file: cert_file?,
        key_file: key_file?,
        client_certs,
    })
}

pub(super) fn validate_limits(
    raw: Option<&RawClientLimits>,
    defaults: &ClientLimits,
    path: &str,
    errors: &mut Errors,
) -> Option<ClientLimits> {
    let Some(raw) = raw else {
        return Some(*defaults);
    };
    let rate = raw.rate_per_second.unwrap_or(defaults.rate_per_second);
    let burst = raw.burst.unwrap_or(defaults.burst);
    let concurrent = raw.max_concurrent.unwrap_or(defaults.max_concurrent);
    let body = raw.max_body_bytes.unwrap_or(defaults.max_body_bytes as u64);
    let before = errors.errors.len();
    if !(rate.is_finite() && (0.001..=1_000_000.0).contains(&rate)) {
        errors.push(
            format!("{path}.rate_per_second"),
            "must be between 0.001 and 1000000",
        );
    }
    if !(1..=100_000).contains(&burst) {
        errors.push(format!("{path}.burst"), "must be between 1 and 100000");
    }
    if !(1..=100_000).contains(&concurrent) {
        errors.push(
            format!("{path}.max_concurrent"),
            "must be between 1 and 100000",
        );
    }
    if !(1024..=defaults.max_body_bytes as u64).contains(&body) {
        errors.push(
            format!("{path}.max_body_bytes"),
            format!(
                "must be between 1024 and server.max_body_bytes ({})",
                defaults.max_body_bytes
            ),
        );
    }
    (errors.errors.len() == before).then_some(ClientLimits {
        rate_per_second: rate,
        burst,
        max_concurrent: concurrent,
        max_body_bytes: body as usize,
    })
}

/// A client certificate's subject as the config writes it,
/// `C=EX, O=Agency, CN=intake`: the same attributes in any order (issuers
/// order them differently), spaces around `,` and `=` and the case of the
/// attribute names do not matter.
pub fn normalize_subject(subject: &str) -> String {
    let mut rdns: Vec<String> = subject
        .split(',')
        .map(|rdn| {
            let (k, v) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!("{}={}", k.trim().to_ascii_uppercase(), v.trim())
        })
        .collect();
    rdns.sort();
    rdns.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges_contain_what_their_prefix_covers() {
        let r = AddressRange::parse("10.1.0.0/16").unwrap();
        assert!(r.contains("10.1.200.3".parse().unwrap()));
        assert!(!r.contains("10.2.0.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let all = AddressRange::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one = AddressRange::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(AddressRange::parse("10.0.0.0/33").is_none());
        assert!(AddressRange::parse("ten").is_none());
    }

    #[test]
    fn subjects_compare_without_spacing() {
        assert_eq!(
            normalize_subject("c=EX,O = Agency ,  CN=intake"),
            normalize_subject("CN=intake, C=EX, O=Agency")
        );
        assert_ne!(
            normalize_subject("C=EX, CN=intake"),
            normalize_subject("C=EX, CN=intake, O=Agency")
        );
    }
}
