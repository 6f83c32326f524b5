//! `gateway.toml` exactly as written. Strings stay strings here; `validate()`
//! turns them into typed values and reports every problem at once.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Folder of mapping files, relative to the config file.
    pub mappings_dir: Option<String>,
    /// Folder of sharing policies (one file per route), relative to the config file.
    pub policies_dir: Option<String>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub destinations: BTreeMap<String, RawDestination>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// How long payloads are kept, and the key that protects them at rest.
    pub retention: Option<RawRetention>,
    /// The exchange log's checkpoints; without it the log is not signed.
    pub audit: Option<RawAudit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// `file:PATH`, `env:NAME` (a signed-note private key line) or `generate`.
    pub signing_key: Option<String>,
    pub origin: Option<String>,
    pub key_name: Option<String>,
    pub checkpoint_interval_secs: Option<u64>,
    pub max_unsigned_secs: Option<u64>,
}

/// `[retention]`: payload encryption keys and the purge schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// The key-encryption key: `env:NAME`, `file:PATH` (32 bytes as 64 hex
    /// digits) or `generate` (kept in the data directory; demo only).
    pub kek: Option<String>,
    /// The id stored beside every data key this KEK wraps.
    pub kek_id: Option<String>,
    /// Earlier KEKs, still used to unwrap data keys wrapped under their id.
    #[serde(default)]
    pub previous_keks: Vec<RawPreviousKek>,
    /// Days a payload is kept once every route of its record is final (default 30).
    pub payload_days: Option<u64>,
    /// How often the purge runs (default 3600).
    pub purge_interval_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreviousKek {
    pub id: String,
    pub kek: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub database_url: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_json_depth: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub log_format: Option<String>,
    /// Serve plain HTTP (no `[server.tls]`): loopback, a demo, or behind a
    /// reverse proxy that terminates TLS. Never implied.
    pub plaintext_http: Option<bool>,
    pub tls: Option<super::frontdoor::RawServerTls>,
    /// Serve `/metrics` on this address, without a token.
    pub metrics_listen: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client's address.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Every client's limits unless its own `limits` say otherwise.
    pub client_limits: Option<super::frontdoor::RawClientLimits>,
    /// Per source address, for requests without valid credentials.
    pub unauthenticated_limits: Option<super::frontdoor::RawClientLimits>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub id: String,
    pub role: String,
    /// SHA-256 of the bearer token (64 hex digits).
    pub token_sha256: Option<String>,
    /// SHA-256 of the client's certificate (DER), 64 hex digits.
    pub cert_sha256: Option<String>,
    /// The client certificate's subject, `C=EX, O=Agency, CN=intake`.
    pub cert_subject: Option<String>,
    pub limits: Option<super::frontdoor::RawClientLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub format: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub kind: String,
    pub url: Option<String>,
    pub auth: Option<RawAuth>,
    pub limits: Option<RawLimits>,
    pub retry: Option<RawRetry>,
    pub tls: Option<RawTls>,
    /// Whole-request timeout, connect included.
    pub timeout_secs: Option<u64>,
    /// HMAC key of the route's `pseudonym` redactions (`env:NAME`).
    pub pseudonym_key: Option<String>,
    /// The registry's location list (file, and where to refresh it from).
    pub locations: Option<RawLocations>,
    /// fhir-r4 only: how a document is written so that a resend never makes
    /// a second one, `conditional-create` (default) or `put`.
    pub write: Option<String>,
}

/// Where a registry's location list comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocations {
    /// The list as last published, read at start-up (relative to the config file).
    pub file: String,
    /// The registry's location endpoint, fetched on a schedule.
    pub refresh_url: Option<String>,
    /// How often to fetch it (default 3600).
    pub refresh_secs: Option<u64>,
}

/// How the gateway authenticates to a registry. Secrets may be written as
/// `env:NAME` to read them from the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// none, client-credentials, session, basic, idp-bearer.
    pub mode: String,
    /// OAuth token endpoint (client-credentials, idp-bearer).
    pub token_url: Option<String>,
    /// Primero login endpoint (session).
    pub login_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// A registry's published limits, which the gateway never exceeds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub rate_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub daily_quota: Option<u32>,
    /// UTC offset of the registry's calendar day, for the quota (`+02:00`).
    pub day_utc_offset: Option<String>,
    #[serde(default)]
    pub closed: Vec<RawWindow>,
}

/// A weekly window during which nothing is sent (maintenance).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// mon..sun; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`, local to `utc_offset`.
    pub from: String,
    pub to: String,
    pub utc_offset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_secs: Option<u64>,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: Option<u32>,
    /// How long the breaker stays open before one probe is let through.
    pub breaker_cooldown_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the CA roots this registry's certificate must chain to;
    /// replaces the built-in web roots for this destination.
    pub ca_file: Option<String>,
    /// PEM certificate chain and private key for mutual TLS.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub record_type: String,
    pub destination: String,
}
