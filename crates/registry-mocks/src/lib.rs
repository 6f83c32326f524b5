//! Mock registries that behave like the real ones: OpenCRVS 2.x, OpenCRVS 1.x,
//! a strict FHIR R4 exchange, a government Primero v2, and the Examplia CRVSO
//! birth-notification service over X-Road (../shared/specs/FORMATS.md,
//! ../shared/specs/examplia-civil-registry/README.md).
//!
//! Each mock is a real HTTP server. It checks authentication the way its
//! registry does (tokens that expire, so refresh paths get exercised), checks
//! payloads structurally as the registry would, deduplicates on the
//! registry's idempotency key, answers with realistic receipts, enforces its
//! limits (token bucket, concurrency cap, daily quota, maintenance window),
//! injects faults on demand and records every arrival with its time.
//!
//! Every request to a registry endpoint goes through the same pipeline, in
//! this order: maintenance window, concurrency cap, rate limit, daily quota,
//! injected fault, then the registry itself (auth, validation, idempotency).
//! Token endpoints skip the pipeline (OpenCRVS applies no limit to them).
//!
//! Operators and shell users reach the same controls over HTTP under
//! `/_mock/` (the full table is in `server.rs`): `GET /_mock/arrivals`,
//! `POST /_mock/faults`, `DELETE /_mock/faults`, `GET /_mock/records`.
//!
//! Mocks never log request bodies; arrivals hold ids, hashes, codes and
//! statuses only.

mod arrivals;
mod clock;
mod examplia;
mod examplia_rules;
mod faults;
mod fhir_r4;
mod limits;
mod opencrvs;
mod opencrvs_v1;
mod primero;
mod primero_instance;
mod records;
mod server;
mod token;
mod xml;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use arrivals::{Arrival, Endpoint, Outcome};
pub use clock::Clock;
pub use faults::{Fault, FaultRule, Faults};
pub use limits::{Limits, MaintenanceWindow};
pub use records::StoredRecord;

/// The published XSD of the Examplia service, unchanged
/// (`../shared/specs/examplia-civil-registry/birth-notification-v1.xsd`).
pub const EXAMPLIA_XSD: &str = include_str!("birth-notification-v1.xsd");

/// Which registry a mock imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MockKind {
    Opencrvs,
    OpencrvsV1,
    FhirR4,
    Primero,
    Examplia,
}

impl MockKind {
    pub const ALL: [MockKind; 5] = [
        MockKind::Opencrvs,
        MockKind::OpencrvsV1,
        MockKind::FhirR4,
        MockKind::Primero,
        MockKind::Examplia,
    ];

    /// The destination name of the sample deployment (deploy/gateway.example.toml).
    pub fn as_str(self) -> &'static str {
        match self {
            MockKind::Opencrvs => "opencrvs",
            MockKind::OpencrvsV1 => "opencrvs-v1",
            MockKind::FhirR4 => "fhir-r4",
            MockKind::Primero => "primero",
            MockKind::Examplia => "examplia-crvs",
        }
    }

    pub fn from_name(name: &str) -> Option<MockKind> {
        MockKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name || (name == "examplia" && *k == MockKind::Examplia))
    }

    /// The port the example config expects this mock on (`127.0.0.1:71xx`).
    pub fn demo_port(self) -> u16 {
        match self {
            MockKind::Opencrvs => 7101,
            MockKind::OpencrvsV1 => 7102,
            MockKind::FhirR4 => 7103,
            MockKind::Primero => 7104,
            MockKind::Examplia => 7105,
        }
    }

    /// Where submissions go (POST).
    pub fn submit_path(self) -> &'static str {
        match self {
            MockKind::Opencrvs => opencrvs::NOTIFY_PATH,
            MockKind::OpencrvsV1 => opencrvs_v1::NOTIFICATION_PATH,
            MockKind::FhirR4 => fhir_r4::BUNDLE_PATH,
            MockKind::Primero => primero::CASES_PATH,
            MockKind::Examplia => examplia::SERVICE_PATH,
        }
    }
}

impl std::fmt::Display for MockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Credentials the mock accepts and the lifetime of the tokens it issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// OAuth client credentials (OpenCRVS 2.x and 1.x, FHIR exchange, Primero `idp-bearer`).
    pub client_id: String,
    pub client_secret: String,
    /// A user account (Primero Basic or session).
    pub user: String,
    pub password: String,
    /// Token lifetime, or the idle timeout of a Primero session.
    pub token_lifetime: Duration,
}

impl Credentials {
    /// Published or documented defaults: OpenCRVS system tokens live 600 s,
    /// Primero tokens and sessions 1 h, the FHIR exchange's tokens 5 min.
    pub fn default_for(kind: MockKind) -> Credentials {
        let lifetime = match kind {
            MockKind::Opencrvs | MockKind::OpencrvsV1 => 600,
            MockKind::FhirR4 => 300,
            MockKind::Primero => 3600,
            MockKind::Examplia => 0,
        };
        Credentials {
            client_id: "registry-gateway".into(),
            client_secret: "mock-client-secret".into(),
            user: "registry-gateway".into(),
            password: "mock-password".into(),
            token_lifetime: Duration::from_secs(lifetime),
        }
    }
}

/// How the Primero mock authenticates, as Primero v2.15 does (devise-jwt was
/// removed in v2.11.0: no login answers a token any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimeroAuth {
    /// Primero's own accounts: HTTP Basic on any request (no session, no
    /// CSRF), or a session opened at `POST /api/v2/tokens` (CSRF-protected;
    /// writes echo the `CSRF-TOKEN` cookie as `X-CSRF-Token`).
    Native,
    /// A bearer JWT from an identity provider, which the mock also plays at `POST /idp/token`.
    IdpBearer,
}

impl PrimeroAuth {
    pub fn from_name(name: &str) -> Option<PrimeroAuth> {
        match name {
            "native" => Some(PrimeroAuth::Native),
            "idp-bearer" => Some(PrimeroAuth::IdpBearer),
            _ => None,
        }
    }
}

/// Whether the Examplia mock validates against the XSD with `xmllint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsdCheck {
    /// Validate when `xmllint` is on PATH; otherwise only the mock's own structural checks.
    Auto,
    /// Refuse to start without `xmllint`.
    Required,
    Off,
}

/// OpenCRVS locations (offices, health facilities, administrative areas), as
/// the registry's location service knows them. Without a list, any UUID is
/// taken to exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    /// `CRVS_OFFICE` locations.
    pub offices: BTreeSet<String>,
    /// `HEALTH_FACILITY` locations.
    pub facilities: BTreeSet<String>,
    /// `ADMIN_STRUCTURE` locations and their parent (`partOf`), None at the top.
    pub admin_areas: BTreeMap<String, Option<String>>,
    /// Locations with `status: inactive` (a closed facility): known, but no
    /// new event may name them.
    pub inactive: BTreeSet<String>,
    /// The FHIR R4 `Location` resources of the list, as loaded: what the
    /// mocks' location endpoints serve (empty for a hand-built list).
    pub resources: Vec<serde_json::Value>,
}

impl Locations {
    pub fn contains(&self, id: &str) -> bool {
        self.offices.contains(id)
            || self.facilities.contains(id)
            || self.admin_areas.contains_key(id)
    }

    /// Known and not inactive.
    pub fn is_active(&self, id: &str) -> bool {
        self.contains(id) && !self.inactive.contains(id)
    }

    /// Read a location list published as a FHIR R4 searchset Bundle of
    /// `Location`s (`../shared/specs/examplia-locations/locations.json`).
    pub fn from_fhir_file(path: &Path) -> Result<Locations, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let bundle: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Locations::from_fhir_bundle(&bundle).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The same, from the parsed Bundle.
    pub fn from_fhir_bundle(bundle: &serde_json::Value) -> Result<Locations, String> {
        let entries = bundle["entry"]
            .as_array()
            .ok_or("not a Bundle with entries")?;
        let mut out = Locations::default();
        for (i, entry) in entries.iter().enumerate() {
            let resource = &entry["resource"];
            let id = resource["id"]
                .as_str()
                .ok_or_else(|| format!("entry {i}: Location without an id"))?
                .to_string();
            let parent = resource["partOf"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Location/"))
                .map(str::to_string);
            match resource["type"][0]["coding"][0]["code"].as_str() {
                Some("CRVS_OFFICE") => {
                    out.offices.insert(id.clone());
                }
                Some("HEALTH_FACILITY") => {
                    out.facilities.insert(id.clone());
                }
                Some("ADMIN_STRUCTURE") => {
                    out.admin_areas.insert(id.clone(), parent);
                }
                _ => return Err(format!("entry {i}: unknown location type")),
            }
            if resource["status"] == "inactive" {
                out.inactive.insert(id);
            }
            out.resources.push(resource.clone());
        }
        Ok(out)
    }
}

/// Settings of the OpenCRVS mocks (2.x and 1.x).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpencrvsSettings {
    /// Event types configured in the country configuration (2.x `eventType`).
    pub event_types: BTreeSet<String>,
    pub locations: Option<Locations>,
    /// The country form: declaration field id -> field type (NAME, DATE, ...),
    /// as in the destination's `form.toml`. None accepts any key.
    pub form: Option<BTreeMap<String, String>>,
    /// The home country of 1.x address checks (`FAR` in Farajaland).
    pub home_country: String,
    /// What the country configuration's action confirmation API answers a
    /// 2.x NOTIFY (v2.0.0 `events/src/router/event/actions/index.ts`).
    pub confirmation: Confirmation,
    /// Plays the registrar: an accepted 2.x NOTIFY is registered at once (a
    /// `REGISTER` action, `Accepted`), so the event takes corrections.
    pub registrar_registers: bool,
}

/// The country configuration's answer to a NOTIFY: 200 accepts it, 202
/// leaves it requested (accepted later, asynchronously), 400 rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Accept,
    /// 202; the country config accepts it once `after` has passed on the
    /// mock clock (None: never), seen on the next read of the event.
    Defer {
        after: Option<Duration>,
    },
    Reject,
}

/// Farajaland v2.0.0-beta's birth form: field id -> FieldType.
const FARAJALAND_BIRTH_FORM: &str = include_str!("farajaland-v2.0.0-beta-birth-form.toml");

impl Default for OpencrvsSettings {
    fn default() -> Self {
        #[derive(serde::Deserialize)]
        struct FormFile {
            fields: BTreeMap<String, String>,
        }
        let form = toml::from_str::<FormFile>(FARAJALAND_BIRTH_FORM)
            .map(|f| f.fields)
            .ok();
        OpencrvsSettings {
            event_types: ["birth", "death"].iter().map(|s| s.to_string()).collect(),
            locations: None,
            form,
            home_country: "EXA".into(),
            confirmation: Confirmation::Accept,
            registrar_registers: false,
        }
    }
}

impl OpencrvsSettings {
    /// Read the declaration fields from a destination's `form.toml`
    /// (`[fields]` table: field id -> type), the file the 2.x mapping uses.
    pub fn with_form_file(mut self, path: &Path) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct FormFile {
            fields: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let form: FormFile =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        self.form = Some(form.fields);
        Ok(self)
    }
}

/// Settings of the Examplia mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampliaSettings {
    /// `EXA`, or `EXA-TEST` for the test instance.
    pub xroad_instance: String,
    pub xsd: XsdCheck,
    /// The XSD to validate against; None uses the embedded copy of the published one.
    pub xsd_path: Option<PathBuf>,
    /// Agency codes registered for the calling subsystem; None accepts any.
    pub agencies: Option<BTreeSet<String>>,
    /// Master Facility List; None accepts any well-formed code.
    pub facilities: Option<BTreeSet<String>>,
    /// Administrative Areas Register; None accepts any well-formed P-code.
    pub admin_areas: Option<BTreeSet<String>>,
}

impl Default for ExampliaSettings {
    fn default() -> Self {
        ExampliaSettings {
            xroad_instance: "EXA".into(),
            xsd: XsdCheck::Auto,
            xsd_path: None,
            agencies: None,
            facilities: None,
            admin_areas: None,
        }
    }
}

/// Everything a mock needs to start.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub kind: MockKind,
    /// `127.0.0.1:0` in tests.
    pub listen: SocketAddr,
    pub credentials: Credentials,
    pub limits: Limits,
    pub maintenance: Option<MaintenanceWindow>,
    /// The clock behind token expiry, rate refill, quotas and maintenance.
    pub clock: Clock,
    /// Seeds the receipts (tracking ids, references): the same seed and the
    /// same sequence of requests give the same receipts.
    pub seed: u64,
    pub opencrvs: OpencrvsSettings,
    pub primero_auth: PrimeroAuth,
    pub examplia: ExampliaSettings,
}

impl MockConfig {
    /// A mock on `127.0.0.1:0` with the registry's published limits and
    /// maintenance window (Examplia: 5/s, burst 10, 4 in flight, 20,000 a
    /// day, Sunday 01:00-03:00 EXT), and no limits where none is published.
    pub fn new(kind: MockKind) -> MockConfig {
        let examplia = kind == MockKind::Examplia;
        MockConfig {
            kind,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            credentials: Credentials::default_for(kind),
            limits: if examplia {
                Limits::examplia()
            } else {
                Limits::none()
            },
            maintenance: examplia.then(MaintenanceWindow::examplia),
            clock: Clock::system(),
            seed: 0,
            opencrvs: OpencrvsSettings::default(),
            primero_auth: PrimeroAuth::Native,
            examplia: ExampliaSettings::default(),
        }
    }

    /// The same, listening where the example config expects it (`127.0.0.1:71xx`).
    pub fn demo(kind: MockKind) -> MockConfig {
        let mut config = MockConfig::new(kind);
        config.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), kind.demo_port());
        config
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the examplia mock needs xmllint to validate against the XSD \
         (Debian/Ubuntu: apt-get install libxml2-utils)"
    )]
    XmllintMissing,
    #[error("cannot prepare the XSD for xmllint: {0}")]
    Xsd(std::io::Error),
}

/// A mock that is serving.
pub struct RunningMock {
    kind: MockKind,
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Start a mock registry.
pub async fn start(config: MockConfig) -> Result<RunningMock, StartError> {
    let kind = config.kind;
    let (stop, stopped) = watch::channel(false);
    let (addr, shared, task) = server::serve(config, stopped).await?;
    Ok(RunningMock {
        kind,
        addr,
        shared,
        stop,
        task,
    })
}

impl RunningMock {
    pub fn kind(&self) -> MockKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL submissions go to.
    pub fn submit_url(&self) -> String {
        format!("{}{}", self.base_url(), self.kind.submit_path())
    }

    /// The URL tokens (or Primero sessions) come from, if the registry has one.
    pub fn token_url(&self) -> Option<String> {
        self.shared
            .registry
            .token_path()
            .map(|p| format!("{}{p}", self.base_url()))
    }

    /// Inject faults: `mock.faults().push(Fault::Status500.times(3))`.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request that reached a registry or token endpoint, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.all()
    }

    /// Arrivals at the submission endpoint only.
    pub fn submissions(&self) -> Vec<Arrival> {
        self.shared
            .arrivals
            .all()
            .into_iter()
            .filter(|a| a.endpoint == Endpoint::Submit)
            .collect()
    }

    pub fn clear_arrivals(&self) {
        self.shared.arrivals.clear();
    }

    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// What the registry holds: one entry per idempotency key it registered.
    pub fn records(&self) -> Vec<StoredRecord> {
        self.shared.registry.records().list()
    }

    /// The bytes first registered under an idempotency key.
    pub fn stored_body(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.registry.records().body(key)
    }

    /// A one-line description: kind, address, endpoints and credentials.
    pub fn describe(&self) -> String {
        server::describe(self)
    }

    /// Stop accepting, answer what is in flight (hung requests are reset), stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Options of the `registry-mocks` binary and the demo.
#[derive(Debug, Clone)]
pub struct MockSetOptions {
    pub host: IpAddr,
    /// Port of the first kind in [`MockKind::ALL`] order; the others follow
    /// (7101 gives the ports of deploy/gateway.example.toml). 0 picks free ports.
    pub port_base: u16,
    pub kinds: Vec<MockKind>,
    pub primero_auth: PrimeroAuth,
    /// Ignore Examplia's Sunday maintenance window (a demo on a Sunday night).
    pub no_maintenance: bool,
    pub xsd: XsdCheck,
    /// The OpenCRVS mocks' location list (served, and checked in payloads).
    pub opencrvs_locations: Option<Locations>,
}

impl Default for MockSetOptions {
    fn default() -> Self {
        MockSetOptions {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_base: MockKind::Opencrvs.demo_port(),
            kinds: MockKind::ALL.to_vec(),
            primero_auth: PrimeroAuth::Native,
            no_maintenance: false,
            xsd: XsdCheck::Auto,
            opencrvs_locations: None,
        }
    }
}

/// Start several mocks at once (the `registry-mocks` binary, the demo).
/// On error, the mocks already started are stopped.
pub async fn start_set(options: &MockSetOptions) -> Result<Vec<RunningMock>, StartError> {
    let mut running = Vec::new();
    for kind in &options.kinds {
        let mut config = MockConfig::new(*kind);
        let index = MockKind::ALL.iter().position(|k| k == kind).unwrap_or(0) as u16;
        let port = if options.port_base == 0 {
            0
        } else {
            options.port_base.saturating_add(index)
        };
        config.listen = SocketAddr::new(options.host, port);
        config.primero_auth = options.primero_auth;
        config.examplia.xsd = options.xsd;
        config.opencrvs.locations = options.opencrvs_locations.clone();
        if options.no_maintenance {
            config.maintenance = None;
        }
        match start(config).await {
            Ok(mock) => running.push(mock),
            Err(e) => {
                for mock in running {
                    mock.stop().await;
                }
                return Err(e);
            }
        }
    }
    Ok(running)
}

/// Mutexes here guard plain data; a panic elsewhere must not wedge a mock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves on Ctrl-C or SIGTERM: how the mock binary and the demo stop.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
