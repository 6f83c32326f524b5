//! A destination's delivery settings: authentication, published limits,
//! retry policy and TLS. Validated here, every problem reported.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, NaiveTime, Weekday};

use super::Errors;
use super::raw::{RawAuth, RawLimits, RawRetry, RawTls, RawWindow};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A secret from the config file or the environment. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How the gateway proves who it is to a registry (FORMATS.md §1.1, §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Nothing at the HTTP level (X-Road: the Security Server authenticates).
    None,
    /// OAuth 2 client credentials: OpenCRVS, the FHIR exchange, Primero behind
    /// an identity provider (`idp-bearer`).
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
    },
    /// Primero v2.11+: `POST /api/v2/tokens` (itself CSRF-protected) opens a
    /// session cookie; writes echo the CSRF token. A login ends the account's
    /// other sessions (v2.12+).
    PrimeroSession {
        login_url: String,
        user: String,
        password: Secret,
    },
    /// HTTP Basic on every request.
    Basic { user: String, password: Secret },
}

/// How a FHIR R4 destination writes a document Bundle (R4 http.html), so that
/// a resend after a lost answer never stores a second copy and a corrected
/// record updates the document its first version made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FhirWrite {
    /// First version: `POST Bundle` with `If-None-Exist: identifier=<system>|<value>`
    /// (#ccreate); a correction: `PUT Bundle?identifier=<system>|<value>` (#cond-update).
    #[default]
    ConditionalCreate,
    /// `PUT Bundle/<id>` with the document's stable id (#update, update as create).
    Put,
}

impl FhirWrite {
    pub fn as_str(self) -> &'static str {
        match self {
            FhirWrite::ConditionalCreate => "conditional-create",
            FhirWrite::Put => "put",
        }
    }
}

/// `write` of a destination: only fhir-r4 destinations take one.
pub(super) fn validate_fhir_write(
    value: Option<String>,
    fhir: bool,
    at: &str,
    errors: &mut Errors,
) -> FhirWrite {
    let Some(value) = value else {
        return FhirWrite::default();
    };
    let path = format!("{at}.write");
    if !fhir {
        errors.push(path, "is only used by fhir-r4 destinations");
        return FhirWrite::default();
    }
    match value.as_str() {
        "conditional-create" => FhirWrite::ConditionalCreate,
        "put" => FhirWrite::Put,
        _ => {
            errors.push(path, "must be conditional-create or put");
            FhirWrite::default()
        }
    }
}

/// A registry's limits. `None` fields are unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub rate_per_second: Option<f64>,
    pub burst: u32,
    pub max_in_flight: u32,
    pub daily_quota: Option<u32>,
    pub day_offset: FixedOffset,
    pub closed: Vec<ClosedWindow>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_per_second: None,
            burst: 1,
            max_in_flight: 4,
            daily_quota: None,
            day_offset: utc(),
            closed: Vec::new(),
        }
    }
}

/// A weekly window when the registry is closed: nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// Empty: every day.
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    pub to: NaiveTime,
    pub offset: FixedOffset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 12,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    /// Certificate chain and key (PEM) for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// How often a location list is fetched when the config does not say.
pub const DEFAULT_LOCATIONS_REFRESH: Duration = Duration::from_secs(3600);

pub(super) fn validate_locations(
    raw: super::raw::RawLocations,
    at: &str,
    errors: &mut Errors,
) -> super::LocationsConfig {
    if raw.file.trim().is_empty() {
        errors.push(format!("{at}.locations.file"), "must name a file");
    }
    if let Some(problem) = raw.refresh_url.as_deref().and_then(registry_url_problem) {
        errors.push(format!("{at}.locations.refresh_url"), problem);
    }
    let refresh = super::bounded(
        raw.refresh_secs,
        DEFAULT_LOCATIONS_REFRESH.as_secs(),
        1..=30 * 86_400,
        &format!("{at}.locations.refresh_secs"),
        errors,
    )
    .map_or(DEFAULT_LOCATIONS_REFRESH, Duration::from_secs);
    super::LocationsConfig {
        file: PathBuf::from(raw.file),
        refresh_url: raw.refresh_url,
        refresh,
    }
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

/// A destination's pseudonym key (`pseudonym_key`, usually `env:NAME`): the
/// HMAC key of the route's `pseudonym` redactions. Without one, a route whose
/// policy pseudonymises a field is denied ("no pseudonym key").
pub(super) fn validate_pseudonym_key(
    value: Option<String>,
    at: &str,
    errors: &mut Errors,
) -> Option<Secret> {
    let path = format!("{at}.pseudonym_key");
    let key = secret(Some(value?), path.clone(), errors)?;
    if key.expose().len() < 16 {
        errors.push(path, "must be at least 16 bytes (use a random key)");
        return None;
    }
    Some(key)
}

/// Read a secret written as `env:NAME`, `file:PATH` (relative to the working
/// directory, like `data_dir`; one trailing newline is not part of it) or
/// literally. A literal secret loads, with a warning: config files are
/// copied, committed and shown, so it belongs in the environment or a file
/// only its service can read.
pub(super) fn secret(value: Option<String>, path: String, errors: &mut Errors) -> Option<Secret> {
    let Some(value) = value else {
        errors.push(path, "is required for this auth mode");
        return None;
    };
    if let Some(name) = value.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                errors.push(
                    path,
                    format!("environment variable {name} is not set or empty"),
                );
                None
            }
        };
    }
    if let Some(file) = value.strip_prefix("file:") {
        return match std::fs::read_to_string(file) {
            Ok(text) if !text.trim_end_matches(['\r', '\n']).is_empty() => {
                Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
            }
            Ok(_) => {
                errors.push(path, format!("file {file} is empty"));
                None
            }
            Err(e) => {
                errors.push(path, format!("file {file} cannot be read ({})", e.kind()));
                None
            }
        };
    }
    errors.warn(
        path,
        "is written in the config file; prefer \"env:NAME\" or \"file:PATH\"",
    );
    Some(Secret(value))
}

/// What is wrong with a registry URL (its location, token or login URL),
/// if anything: credentials and children's data never travel in clear text,
/// so `http://` is for a registry on this machine only (the demo, tests).
pub(super) fn registry_url_problem(url: &str) -> Option<&'static str> {
    if url.starts_with("https://") {
        return None;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Some("must be an https:// URL (http:// only for a loopback address)");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then_some(
        "must be an https:// URL: http:// would send credentials and records in clear text (allowed only for a loopback address)",
    )
}

fn url(value: Option<String>, path: String, errors: &mut Errors) -> Option<String> {
    match value {
        Some(u) => match registry_url_problem(&u) {
            None => Some(u),
            Some(problem) => {
                errors.push(path, problem);
                None
            }
        },
        None => {
            errors.push(path, "is required for this auth mode");
            None
        }
    }
}

fn required(value: Option<String>, path: String, errors: &mut Errors) -> Option<String> {
    if value.is_none() {
        errors.push(path, "is required for this auth mode");
    }
    value
}

pub(super) fn validate_auth(
    raw: Option<RawAuth>,
    at: &str,
    errors: &mut Errors,
) -> Option<AuthConfig> {
    let Some(raw) = raw else {
        return Some(AuthConfig::None);
    };
    let p = |field: &str| format!("{at}.auth.{field}");
    let mut unused = |field: &str, present: bool| {
        if present {
            errors.push(p(field), format!("is not used by auth mode {:?}", raw.mode));
        }
    };
    match raw.mode.as_str() {
        "none" => {
            unused("token_url", raw.token_url.is_some());
            unused("login_url", raw.login_url.is_some());
            unused("client_id", raw.client_id.is_some());
            unused("user", raw.user.is_some());
            Some(AuthConfig::None)
        }
        "client-credentials" | "idp-bearer" => {
            unused("login_url", raw.login_url.is_some());
            unused("user", raw.user.is_some());
            unused("password", raw.password.is_some());
            let token_url = url(raw.token_url, p("token_url"), errors);
            let client_id = required(raw.client_id, p("client_id"), errors);
            let client_secret = secret(raw.client_secret, p("client_secret"), errors);
            Some(AuthConfig::ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
            })
        }
        "jwt-header" => {
            // devise-jwt left Primero in v2.11.0: no login answers a token.
            errors.push(
                p("mode"),
                "jwt-header: Primero removed its JWT login in v2.11.0; use basic (or session)",
            );
            None
        }
        "session" => {
            unused("token_url", raw.token_url.is_some());
            unused("client_id", raw.client_id.is_some());
            unused("client_secret", raw.client_secret.is_some());
            let login_url = url(raw.login_url, p("login_url"), errors);
            let user = required(raw.user, p("user"), errors);
            let password = secret(raw.password, p("password"), errors);
            let (login_url, user, password) = (login_url?, user?, password?);
            Some(AuthConfig::PrimeroSession {
                login_url,
                user,
                password,
            })
        }
        "basic" => {
            unused("token_url", raw.token_url.is_some());
            unused("login_url", raw.login_url.is_some());
            unused("client_id", raw.client_id.is_some());
            unused("client_secret", raw.client_secret.is_some());
            let user = required(raw.user, p("user"), errors);
            let password = secret(raw.password, p("password"), errors);
            Some(AuthConfig::Basic {
                user: user?,
                password: password?,
            })
        }
        _ => {
            errors.push(
                p("mode"),
                "must be one of none, client-credentials, session, basic, idp-bearer",
            );
            None
        }
    }
}

fn offset(value: Option<&str>, path: String, errors: &mut Errors) -> FixedOffset {
    let Some(text) = value else {
        return utc();
    };
    match chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{text}")) {
        Ok(t) => *t.offset(),
        Err(_) => {
            errors.push(path, "must be a UTC offset such as +02:00 or Z");
            utc()
        }
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    match name {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

fn window(raw: RawWindow, at: String, errors: &mut Errors) -> Option<ClosedWindow> {
    let mut days = Vec::new();
    for (i, d) in raw.days.iter().enumerate() {
        match weekday(d) {
            Some(day) => days.push(day),
            None => errors.push(format!("{at}.days[{i}]"), "must be one of mon..sun"),
        }
    }
    let time = |text: &str, field: &str, errors: &mut Errors| {
        let parsed = NaiveTime::parse_from_str(text, "%H:%M").ok();
        if parsed.is_none() {
            errors.push(format!("{at}.{field}"), "must be a time HH:MM");
        }
        parsed
    };
    let from = time(&raw.from, "from", errors);
    let to = time(&raw.to, "to", errors);
    let offset = offset(
        raw.utc_offset.as_deref(),
        format!("{at}.utc_offset"),
        errors,
    );
    let (from, to) = (from?, to?);
    if from >= to {
        errors.push(
            format!("{at}.to"),
            "must be later than from (split a window that crosses midnight in two)",
        );
        return None;
    }
    Some(ClosedWindow {
        days,
        from,
        to,
        offset,
    })
}

pub(super) fn validate_limits(
    raw: Option<RawLimits>,
    at: &str,
    errors: &mut Errors,
) -> LimitsConfig {
    let Some(raw) = raw else {
        return LimitsConfig::default();
    };
    let p = |field: &str| format!("{at}.limits.{field}");
    let mut limits = LimitsConfig::default();
    if let Some(rate) = raw.rate_per_second {
        // Below one request in a thousand seconds the GCRA period times the
        // burst leaves the timer's range; a registry that slow is paced by
        // daily_quota instead.
        if rate.is_finite() && (0.001..=1_000_000.0).contains(&rate) {
            limits.rate_per_second = Some(rate);
        } else {
            errors.push(
                p("rate_per_second"),
                "must be between 0.001 and 1000000 (use daily_quota for rarer requests)",
            );
        }
    }
    match raw.burst {
        Some(0) => errors.push(p("burst"), "must be at least 1"),
        Some(b) if b > 100_000 => errors.push(p("burst"), "must be at most 100000"),
        Some(b) => limits.burst = b,
        None => {}
    }
    if raw.burst.is_some() && raw.rate_per_second.is_none() {
        errors.push(p("burst"), "needs rate_per_second");
    }
    match raw.max_in_flight {
        Some(0) => errors.push(p("max_in_flight"), "must be at least 1"),
        Some(n) if n > 1024 => errors.push(p("max_in_flight"), "must be at most 1024"),
        Some(n) => limits.max_in_flight = n,
        None => {}
    }
    match raw.daily_quota {
        Some(0) => errors.push(p("daily_quota"), "must be at least 1"),
        q => limits.daily_quota = q,
    }
    limits.day_offset = offset(raw.day_utc_offset.as_deref(), p("day_utc_offset"), errors);
    limits.closed = raw
        .closed
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| window(w, p(&format!("closed[{i}]")), errors))
        .collect();
    limits
}

pub(super) fn validate_retry(raw: Option<RawRetry>, at: &str, errors: &mut Errors) -> RetryConfig {
    let mut retry = RetryConfig::default();
    let Some(raw) = raw else {
        return retry;
    };
    let p = |field: &str| format!("{at}.retry.{field}");
    match raw.max_attempts {
        Some(0) => errors.push(p("max_attempts"), "must be at least 1"),
        Some(n) => retry.max_attempts = n,
        None => {}
    }
    // Waits are bounded to a day: past that a delivery is better dead-lettered
    // for an operator, and huge values overflow the timer arithmetic.
    if let Some(ms) = raw.initial_backoff_ms {
        if let Some(ms) =
            super::bounded(Some(ms), 0, 1..=3_600_000, &p("initial_backoff_ms"), errors)
        {
            retry.initial_backoff = Duration::from_millis(ms);
        }
    }
    if let Some(s) = raw.max_backoff_secs {
        if let Some(s) = super::bounded(Some(s), 0, 1..=86_400, &p("max_backoff_secs"), errors) {
            retry.max_backoff = Duration::from_secs(s);
        }
    }
    if retry.max_backoff < retry.initial_backoff {
        errors.push(
            p("max_backoff_secs"),
            "must not be below initial_backoff_ms",
        );
    }
    match raw.breaker_failures {
        Some(0) => errors.push(p("breaker_failures"), "must be at least 1"),
        Some(n) => retry.breaker_failures = n,
        None => {}
    }
    if let Some(s) = raw.breaker_cooldown_secs {
        if let Some(s) = super::bounded(Some(s), 0, 1..=86_400, &p("breaker_cooldown_secs"), errors)
        {
            retry.breaker_cooldown = Duration::from_secs(s);
        }
    }
    retry
}

pub(super) fn validate_tls(raw: Option<RawTls>, at: &str, errors: &mut Errors) -> TlsConfig {
    let Some(raw) = raw else {
        return TlsConfig::default();
    };
    let identity = match (raw.client_cert_file, raw.client_key_file) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(_), None) => {
            errors.push(
                format!("{at}.tls.client_key_file"),
                "is required with client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            errors.push(
                format!("{at}.tls.client_cert_file"),
                "is required with client_key_file",
            );
            None
        }
    };
    TlsConfig {
        ca_file: raw.ca_file.map(PathBuf::from),
        client_identity: identity,
    }
}

#[cfg(test)]
mod url_tests {
    use super::registry_url_problem;

    #[test]
    fn cleartext_registry_urls_are_for_loopback_only() {
        for ok in [
            "https://crvs.gov.example/api",
            "http://127.0.0.1:7101/api/events/events/notify",
            "http://localhost/x",
            "http://[::1]:8080/x",
            "http://127.8.9.10/x",
        ] {
            assert_eq!(registry_url_problem(ok), None, "{ok}");
        }
        for refused in [
            "http://crvs.gov.example/api",
            "http://10.0.0.5:7101/x",
            "http://127.0.0.1.evil.example/x",
            "http://user@crvs.gov.example/x",
            "ftp://127.0.0.1/x",
            "crvs.gov.example",
        ] {
            assert!(registry_url_problem(refused).is_some(), "{refused}");
        }
    }
}
