//! Configuration: `gateway.toml` -> [`raw::RawConfig`] -> [`validate`] -> [`Config`].
//!
//! `serve` and `config check` both load through [`Config::load`], so what the
//! check accepts is exactly what the server runs with. Validation collects every
//! problem instead of stopping at the first.

pub mod audit;
pub mod destination;
pub mod frontdoor;
pub mod raw;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{RecordType, Role, route_name};
use raw::RawConfig;

pub use audit::{AuditConfig, AuditKey};
pub use destination::{
    AuthConfig, ClosedWindow, FhirWrite, LimitsConfig, RetryConfig, Secret, TlsConfig,
};
pub use frontdoor::{ClientLimits, FrontDoor, Listener, TlsListen};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAPPINGS_DIR: &str = "mappings";
pub const DEFAULT_POLICIES_DIR: &str = "policies";
pub const DEFAULT_DATA_DIR: &str = "registry-gateway-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_JSON_DEPTH: usize = 32;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Where mapping files and code lists live (resolved against the config file's folder).
    pub mappings_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub clients: Vec<ClientConfig>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub destinations: BTreeMap<String, DestinationConfig>,
    pub routes: Vec<RouteConfig>,
    /// How the exchange log is checkpointed; `None`: not signed.
    pub audit: Option<AuditConfig>,
    /// `[retention]`, when the file has one (`serve` refuses to start without it).
    pub retention: Option<RetentionConfig>,
    /// What loads but should change before real use (a secret written in
    /// the file itself): `config check` prints these, `serve` logs them.
    pub warnings: Vec<ConfigError>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub store: StoreLocation,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub request_timeout: Duration,
    pub log_format: LogFormat,
    /// TLS or plain HTTP, client limits, where metrics are served.
    pub front: FrontDoor,
}

/// Where records live: the embedded store in a data directory, or a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Embedded {
        data_dir: PathBuf,
    },
    /// PostgreSQL (`postgres://` or `postgresql://`), shared by instances.
    Postgres {
        url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub id: String,
    pub role: Role,
    /// SHA-256 of the bearer token; the token itself is never stored.
    pub token_sha256: Option<[u8; 32]>,
    /// The client's certificate, by SHA-256 of its DER bytes or by subject.
    /// With a token as well, both must match.
    pub cert: Option<CertMatch>,
    /// This client's own limits, else the server's `client_limits`.
    pub limits: ClientLimits,
}

/// How a client certificate names a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertMatch {
    Sha256([u8; 32]),
    /// Normalised by [`frontdoor::normalize_subject`].
    Subject(String),
}

/// The formats agencies push in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Canonical,
    Primero,
    FhirR4,
}

impl SourceFormat {
    const ALL: [SourceFormat; 3] = [
        SourceFormat::Canonical,
        SourceFormat::Primero,
        SourceFormat::FhirR4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Canonical => "canonical",
            SourceFormat::Primero => "primero",
            SourceFormat::FhirR4 => "fhir-r4",
        }
    }

    fn parse(s: &str) -> Option<SourceFormat> {
        SourceFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The registry kinds the gateway can deliver to. Adding one is a variant here,
/// a folder under `src/delivery/transports/` and one under `mappings/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    Opencrvs,
    OpencrvsV1,
    FhirR4,
    Primero,
    ExampliaCrvs,
}

impl DestinationKind {
    const ALL: [DestinationKind; 5] = [
        DestinationKind::Opencrvs,
        DestinationKind::OpencrvsV1,
        DestinationKind::FhirR4,
        DestinationKind::Primero,
        DestinationKind::ExampliaCrvs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Opencrvs => "opencrvs",
            DestinationKind::OpencrvsV1 => "opencrvs-v1",
            DestinationKind::FhirR4 => "fhir-r4",
            DestinationKind::Primero => "primero",
            DestinationKind::ExampliaCrvs => "examplia-crvs",
        }
    }

    fn parse(s: &str) -> Option<DestinationKind> {
        DestinationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub format: SourceFormat,
}

#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub kind: DestinationKind,
    pub url: Option<String>,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub retry: RetryConfig,
    pub tls: TlsConfig,
    pub timeout: Duration,
    /// HMAC key for `pseudonym` redactions on routes to this destination.
    pub pseudonym_key: Option<Secret>,
    /// The registry's location list, when its mappings name places.
    pub locations: Option<LocationsConfig>,
    /// fhir-r4: how documents are written (conditional create or PUT).
    pub fhir_write: FhirWrite,
}

/// Where a registry's location list comes from (`destinations.<name>.locations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationsConfig {
    /// Read at start-up; relative paths are resolved against the config file.
    pub file: PathBuf,
    /// Fetched every `refresh` when set; the registry's answer replaces the
    /// list without a restart (a failed fetch keeps the list it has).
    pub refresh_url: Option<String>,
    pub refresh: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// `<record-type>-to-<destination>`.
    pub name: String,
    pub record_type: RecordType,
    pub destination: String,
}

/// How long payloads are kept and the key-encryption keys that protect them.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub kek: KekSource,
    pub kek_id: String,
    /// Earlier KEKs by id, still used to unwrap.
    pub previous_keks: Vec<(String, Secret)>,
    /// A record's payload is purged this long after it was received, once
    /// every route is final.
    pub payload_days: u32,
    pub purge_interval: Duration,
}

/// Where the current KEK comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// `env:NAME` or `file:PATH`: 32 bytes as 64 hex digits.
    Secret(Secret),
    /// Made once and kept in the data directory (the demo).
    Generate,
}

pub const DEFAULT_PAYLOAD_DAYS: u64 = 30;
pub const DEFAULT_PURGE_INTERVAL_SECS: u64 = 3600;

/// One problem in a config file, located by its TOML path (`clients[2].role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found while loading a config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) in the configuration",
            self.file.display(),
            self.errors.len()
        )?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

impl Config {
    /// Read, parse and validate a config file. The one way config is loaded.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        let fail = |message: String| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                path: String::new(),
                message,
            }],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut raw: RawConfig = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        if let Some(listen) = &overrides.listen {
            raw.server.listen = Some(listen.clone());
        }
        if let Some(dir) = &overrides.data_dir {
            raw.server.data_dir = Some(dir.to_string_lossy().into_owned());
        }
        if let Some(url) = &overrides.database_url {
            raw.server.database_url = Some(url.clone());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = validate(raw).map_err(|errors| ConfigErrors {
            file: path.to_path_buf(),
            errors,
        })?;
        config.mappings_dir = base.join(&config.mappings_dir);
        if let Listener::Tls(tls) = &mut config.server.front.listener {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
            if let Some(c) = &mut tls.client_certs {
                c.ca_file = base.join(&c.ca_file);
            }
        }
        config.policies_dir = base.join(&config.policies_dir);
        for d in config.destinations.values_mut() {
            d.tls.ca_file = d.tls.ca_file.take().map(|f| base.join(f));
            if let Some(l) = &mut d.locations {
                l.file = base.join(&l.file);
            }
            d.tls.client_identity = d
                .tls
                .client_identity
                .take()
                .map(|(c, k)| (base.join(c), base.join(k)));
        }
        Ok(config)
    }
}

/// Turn raw config into [`Config`], or list every problem.
pub fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Errors::default();
    let mappings_dir = PathBuf::from(
        raw.mappings_dir
            .unwrap_or_else(|| DEFAULT_MAPPINGS_DIR.into()),
    );
    let policies_dir = PathBuf::from(
        raw.policies_dir
            .unwrap_or_else(|| DEFAULT_POLICIES_DIR.into()),
    );
    let server = validate_server(raw.server, &mut errors);
    let clients = validate_clients(raw.clients, server.as_ref(), &mut errors);
    let sources = validate_sources(raw.sources, &mut errors);
    let destinations = validate_destinations(raw.destinations, &mut errors);
    let routes = validate_routes(raw.routes, &destinations, &mut errors);
    let audit = raw.audit.and_then(|a| audit::validate(a, &mut errors));
    let retention = raw
        .retention
        .and_then(|r| validate_retention(r, &mut errors));
    if let (Some(server), Some(retention)) = (&server, &retention)
        && matches!(server.store, StoreLocation::Postgres { .. })
        && matches!(retention.kek, KekSource::Generate)
    {
        errors.push(
            "retention.kek",
            "\"generate\" keeps the KEK in one instance's data directory; instances sharing PostgreSQL need one KEK: \"env:NAME\" or \"file:PATH\"",
        );
    }
    match server {
        Some(server) if errors.errors.is_empty() => Ok(Config {
            server,
            mappings_dir,
            policies_dir,
            clients,
            sources,
            destinations,
            routes,
            audit,
            retention,
            warnings: errors.warnings,
        }),
        _ => Err(errors.errors),
    }
}

#[derive(Default)]
struct Errors {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn validate_server(raw: raw::RawServer, errors: &mut Errors) -> Option<ServerConfig> {
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        errors.push(
            "server.listen",
            "must be an IP address and port, e.g. 127.0.0.1:8080",
        )
    });
    let store = match raw.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Some(StoreLocation::Postgres { url })
        }
        Some(_) => {
            errors.push(
                "server.database_url",
                "must be a postgres:// URL (omit it to use the embedded store in data_dir)",
            );
            None
        }
        None => Some(StoreLocation::Embedded {
            data_dir: PathBuf::from(raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into())),
        }),
    };
    let max_body_bytes = bounded(
        raw.max_body_bytes,
        DEFAULT_MAX_BODY_BYTES as u64,
        1024..=64 * 1024 * 1024,
        "server.max_body_bytes",
        errors,
    );
    let max_json_depth = bounded(
        raw.max_json_depth,
        DEFAULT_MAX_JSON_DEPTH as u64,
        2..=128,
        "server.max_json_depth",
        errors,
    );
    let timeout_secs = bounded(
        raw.request_timeout_secs,
        DEFAULT_REQUEST_TIMEOUT.as_secs(),
        1..=600,
        "server.request_timeout_secs",
        errors,
    );
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        Some(_) => {
            errors.push("server.log_format", "must be \"text\" or \"json\"");
            None
        }
    };
    let front = frontdoor::validate_front_door(
        frontdoor::RawFrontDoor {
            plaintext_http: raw.plaintext_http,
            tls: raw.tls,
            metrics_listen: raw.metrics_listen,
            trusted_proxies: raw.trusted_proxies,
            client_limits: raw.client_limits,
            unauthenticated_limits: raw.unauthenticated_limits,
            header_read_timeout_secs: raw.header_read_timeout_secs,
            max_connections: raw.max_connections,
        },
        listen.ok(),
        max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES as u64) as usize,
        errors,
    );
    Some(ServerConfig {
        listen: listen.ok()?,
        store: store?,
        front: front?,
        max_body_bytes: max_body_bytes? as usize,
        max_json_depth: max_json_depth? as usize,
        request_timeout: Duration::from_secs(timeout_secs?),
        log_format: log_format?,
    })
}

fn bounded(
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    path: &str,
    errors: &mut Errors,
) -> Option<u64> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Some(v)
    } else {
        errors.push(
            path,
            format!("must be between {} and {}", range.start(), range.end()),
        );
        None
    }
}

fn validate_clients(
    raw: Vec<raw::RawClient>,
    server: Option<&ServerConfig>,
    errors: &mut Errors,
) -> Vec<ClientConfig> {
    let default_limits = server.map_or(
        ClientLimits {
            rate_per_second: frontdoor::DEFAULT_CLIENT_RATE,
            burst: frontdoor::DEFAULT_CLIENT_BURST,
            max_concurrent: frontdoor::DEFAULT_CLIENT_CONCURRENT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        },
        |s| s.front.client_limits,
    );
    let client_certs_asked = server
        .is_some_and(|s| matches!(&s.front.listener, Listener::Tls(t) if t.client_certs.is_some()));
    let mut clients = Vec::new();
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    let mut certs = HashSet::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("clients[{i}].{field}");
        if !is_name(&c.id) {
            errors.push(
                at("id"),
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            );
        } else if !ids.insert(c.id.clone()) {
            errors.push(at("id"), format!("client id {:?} is declared twice", c.id));
        }
        let role = Role::parse(&c.role);
        if role.is_none() {
            errors.push(
                at("role"),
                "must be one of agency, registry, auditor, admin, metrics",
            );
        }
        let token_sha256 = match c.token_sha256.as_deref().map(parse_sha256) {
            None => None,
            Some(None) => {
                errors.push(
                    at("token_sha256"),
                    "must be the SHA-256 of the token as 64 lower-case hex digits",
                );
                None
            }
            Some(Some(h)) => {
                if !hashes.insert(h) {
                    errors.push(
                        at("token_sha256"),
                        "another client has the same token; every client needs its own",
                    );
                }
                Some(h)
            }
        };
        let cert = match (c.cert_sha256.as_deref(), c.cert_subject.as_deref()) {
            (Some(_), Some(_)) => {
                errors.push(
                    at("cert_sha256"),
                    "name the certificate by cert_sha256 or by cert_subject, not both",
                );
                None
            }
            (Some(hex), None) => match parse_sha256(hex) {
                Some(h) => Some(CertMatch::Sha256(h)),
                None => {
                    errors.push(
                        at("cert_sha256"),
                        "must be the SHA-256 of the certificate (DER) as 64 lower-case hex digits",
                    );
                    None
                }
            },
            (None, Some(subject)) if subject.trim().is_empty() => {
                errors.push(at("cert_subject"), "must not be empty");
                None
            }
            (None, Some(subject)) => {
                Some(CertMatch::Subject(frontdoor::normalize_subject(subject)))
            }
            (None, None) => None,
        };
        if let Some(cert) = &cert {
            if !certs.insert(cert.clone()) {
                errors.push(
                    at(match cert {
                        CertMatch::Sha256(_) => "cert_sha256",
                        CertMatch::Subject(_) => "cert_subject",
                    }),
                    "another client has the same certificate; every client needs its own",
                );
            }
            if server.is_some() && !client_certs_asked {
                errors.push(
                    at("cert_sha256"),
                    "a client named by certificate needs server.tls.client_ca_file (certificates are asked for only then)",
                );
            }
        }
        if c.token_sha256.is_none()
            && cert.is_none()
            && c.cert_sha256.is_none()
            && c.cert_subject.is_none()
        {
            errors.push(
                at("token_sha256"),
                "a client needs token_sha256, a certificate (cert_sha256 or cert_subject), or both",
            );
        }
        let limits =
            frontdoor::validate_limits(c.limits.as_ref(), &default_limits, &at("limits"), errors);
        if let (Some(role), Some(limits)) = (role, limits)
            && (token_sha256.is_some() || cert.is_some())
        {
            clients.push(ClientConfig {
                id: c.id,
                role,
                token_sha256,
                cert,
                limits,
            });
        }
    }
    clients
}

fn validate_sources(
    raw: BTreeMap<String, raw::RawSource>,
    errors: &mut Errors,
) -> BTreeMap<String, SourceConfig> {
    let mut sources = BTreeMap::new();
    for (name, s) in raw {
        if !is_name(&name) {
            errors.push(
                format!("sources.{name}"),
                "a source name must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            );
        }
        match SourceFormat::parse(&s.format) {
            Some(format) => {
                sources.insert(name.clone(), SourceConfig { name, format });
            }
            None => errors.push(
                format!("sources.{name}.format"),
                "must be one of canonical, primero, fhir-r4",
            ),
        }
    }
    sources
}

fn validate_destinations(
    raw: BTreeMap<String, raw::RawDestination>,
    errors: &mut Errors,
) -> BTreeMap<String, DestinationConfig> {
    let mut destinations = BTreeMap::new();
    for (name, d) in raw {
        if !is_name(&name) {
            errors.push(
                format!("destinations.{name}"),
                "a destination name must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            );
        }
        if let Some(problem) = d.url.as_deref().and_then(destination::registry_url_problem) {
            errors.push(format!("destinations.{name}.url"), problem);
        }
        let at = format!("destinations.{name}");
        let auth = destination::validate_auth(d.auth, &at, errors);
        let limits = destination::validate_limits(d.limits, &at, errors);
        let retry = destination::validate_retry(d.retry, &at, errors);
        let tls = destination::validate_tls(d.tls, &at, errors);
        let pseudonym_key = destination::validate_pseudonym_key(d.pseudonym_key, &at, errors);
        let locations = d
            .locations
            .map(|l| destination::validate_locations(l, &at, errors));
        // A registry's answer is awaited at most ten minutes: beyond that a
        // lease would have to outlive hours, and a huge value overflows the
        // timer arithmetic.
        let timeout = bounded(
            d.timeout_secs,
            destination::DEFAULT_TIMEOUT.as_secs(),
            1..=600,
            &format!("{at}.timeout_secs"),
            errors,
        )
        .map_or(destination::DEFAULT_TIMEOUT, Duration::from_secs);
        let kind = DestinationKind::parse(&d.kind);
        let fhir_write = destination::validate_fhir_write(
            d.write,
            kind.is_none_or(|k| k == DestinationKind::FhirR4),
            &at,
            errors,
        );
        match (kind, auth) {
            (Some(kind), Some(auth)) => {
                destinations.insert(
                    name.clone(),
                    DestinationConfig {
                        name,
                        kind,
                        url: d.url,
                        auth,
                        limits,
                        retry,
                        tls,
                        timeout,
                        pseudonym_key,
                        fhir_write,
                        locations,
                    },
                );
            }
            (Some(_), None) => {}
            (None, _) => errors.push(
                format!("destinations.{name}.kind"),
                "must be one of opencrvs, opencrvs-v1, fhir-r4, primero, examplia-crvs",
            ),
        }
    }
    destinations
}

fn validate_routes(
    raw: Vec<raw::RawRoute>,
    destinations: &BTreeMap<String, DestinationConfig>,
    errors: &mut Errors,
) -> Vec<RouteConfig> {
    let mut routes: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let record_type = RecordType::parse(&r.record_type);
        if record_type.is_none() {
            errors.push(
                format!("routes[{i}].record_type"),
                "must be one of birth-notification, child-protection-case, consent",
            );
        }
        if !destinations.contains_key(&r.destination) {
            errors.push(
                format!("routes[{i}].destination"),
                format!("no destination named {:?} is declared", r.destination),
            );
        }
        let Some(record_type) = record_type else {
            continue;
        };
        let name = route_name(record_type, &r.destination);
        if routes.iter().any(|existing| existing.name == name) {
            errors.push(
                format!("routes[{i}]"),
                format!("route {name} is declared twice"),
            );
            continue;
        }
        routes.push(RouteConfig {
            name,
            record_type,
            destination: r.destination,
        });
    }
    routes
}

fn validate_retention(raw: raw::RawRetention, errors: &mut Errors) -> Option<RetentionConfig> {
    let kek = match raw.kek.as_deref() {
        None => {
            errors.push(
                "retention.kek",
                "is required: \"env:NAME\", \"file:PATH\" (32 bytes as 64 hex digits) or \"generate\"",
            );
            None
        }
        Some("generate") => Some(KekSource::Generate),
        Some(value) => kek_secret(value, "retention.kek", errors).map(KekSource::Secret),
    };
    let kek_id = match (raw.kek_id, &kek) {
        (Some(id), _) if is_name(&id) => Some(id),
        (Some(_), _) => {
            errors.push(
                "retention.kek_id",
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            );
            None
        }
        (None, Some(KekSource::Generate)) => Some("generated".to_string()),
        (None, _) => {
            errors.push(
                "retention.kek_id",
                "is required with a KEK from env or file",
            );
            None
        }
    };
    let mut ids: HashSet<String> = kek_id.iter().cloned().collect();
    let mut previous_keks = Vec::new();
    for (i, p) in raw.previous_keks.into_iter().enumerate() {
        let at = format!("retention.previous_keks[{i}]");
        if !is_name(&p.id) {
            errors.push(
                format!("{at}.id"),
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            );
        } else if !ids.insert(p.id.clone()) {
            errors.push(
                format!("{at}.id"),
                format!("KEK id {:?} is used twice", p.id),
            );
        }
        if let Some(secret) = kek_secret(&p.kek, &format!("{at}.kek"), errors) {
            previous_keks.push((p.id, secret));
        }
    }
    let payload_days = bounded(
        raw.payload_days,
        DEFAULT_PAYLOAD_DAYS,
        0..=36_500,
        "retention.payload_days",
        errors,
    );
    let purge_interval = bounded(
        raw.purge_interval_secs,
        DEFAULT_PURGE_INTERVAL_SECS,
        1..=86_400 * 7,
        "retention.purge_interval_secs",
        errors,
    );
    Some(RetentionConfig {
        kek: kek?,
        kek_id: kek_id?,
        previous_keks,
        payload_days: u32::try_from(payload_days?).ok()?,
        purge_interval: Duration::from_secs(purge_interval?),
    })
}

/// A KEK from `env:NAME` or `file:PATH`, checked to be 32 bytes in hex.
/// Written in the file itself it is refused: a KEK beside the data it
/// protects protects nothing.
fn kek_secret(value: &str, path: &str, errors: &mut Errors) -> Option<Secret> {
    if !value.starts_with("env:") && !value.starts_with("file:") {
        errors.push(
            path,
            "must be \"env:NAME\" or \"file:PATH\" (a KEK is never written in the config)",
        );
        return None;
    }
    let secret = destination::secret(Some(value.to_string()), path.to_string(), errors)?;
    let text = secret.expose().trim();
    if text.len() != 64 || hex::decode(text).is_err() {
        errors.push(path, "must hold 32 bytes written as 64 hex digits");
        return None;
    }
    Some(Secret::new(text))
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl Config {
    /// Each destination's pseudonym key, by destination name.
    pub fn pseudonym_keys(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.destinations.iter().filter_map(|(name, d)| {
            d.pseudonym_key
                .as_ref()
                .map(|k| (name.as_str(), k.expose().as_bytes()))
        })
    }

    /// The routes that deliver records of this type, in config order.
    pub fn routes_for(&self, record_type: RecordType) -> impl Iterator<Item = &RouteConfig> {
        self.routes
            .iter()
            .filter(move |r| r.record_type == record_type)
    }
}

#[cfg(test)]
mod tests;
