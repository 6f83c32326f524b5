//! Shared by the integration tests: a real gateway on 127.0.0.1:0 with the
//! example config and a fresh embedded store.
#![allow(dead_code)]

pub mod records;

use std::path::{Path, PathBuf};

use registry_gateway::config::{Config, Overrides};
use registry_gateway::server::{self, RunningGateway};
use serde_json::Value;
use tempfile::TempDir;

pub const AGENCY: &str = "demo-agency-token";
pub const AGENCY_2: &str = "demo-agency-2-token";
pub const AUDITOR: &str = "demo-auditor-token";
pub const ADMIN: &str = "demo-admin-token";

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn example_config_path() -> PathBuf {
    repo_path("deploy/gateway.example.toml")
}

/// Examplia's OpenCRVS location list, as the example config loads it.
pub fn example_locations() -> std::sync::Arc<registry_gateway::locations::LocationList> {
    let bytes = std::fs::read(repo_path("deploy/locations/examplia-opencrvs.json")).unwrap();
    std::sync::Arc::new(
        registry_gateway::locations::LocationList::parse(&bytes, chrono::Utc::now()).unwrap(),
    )
}

/// The `locations = {...}` line a test destination of an OpenCRVS kind needs.
pub fn example_locations_line() -> String {
    format!(
        "locations = {{ file = {:?} }}",
        repo_path("deploy/locations/examplia-opencrvs.json")
            .display()
            .to_string()
    )
}

/// An OpenCRVS 2.x destination named `opencrvs` at `mock` (the mocks'
/// published test client, Examplia's location list), with extra TOML lines.
pub fn opencrvs_destination(mock: &registry_mocks::RunningMock, extra: &str) -> String {
    format!(
        "[destinations.opencrvs]\nkind = \"opencrvs\"\nurl = \"{}\"\n\
         auth = {{ mode = \"client-credentials\", token_url = \"{}\", client_id = \"registry-gateway\", client_secret = \"mock-client-secret\" }}\n{}\n{extra}\n",
        mock.submit_url(),
        mock.token_url().unwrap(),
        example_locations_line()
    )
}

/// Where a mock registry's token endpoint reads the client credentials.
pub enum CredentialsIn {
    /// The query string (OpenCRVS 1.x reads nowhere else; 2.x also reads it).
    Query,
    /// A form body (OAuth's own placement; the FHIR exchange).
    Form,
}

/// A bearer token from a mock registry, for the mocks' published test client.
pub async fn mock_token(mock: &registry_mocks::RunningMock, placement: CredentialsIn) -> String {
    let credentials = [
        ("grant_type", "client_credentials"),
        ("client_id", "registry-gateway"),
        ("client_secret", "mock-client-secret"),
    ];
    let request = reqwest::Client::new().post(mock.token_url().unwrap());
    let request = match placement {
        CredentialsIn::Query => request.query(&credentials),
        CredentialsIn::Form => request.form(&credentials),
    };
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

/// `KNRY0042Q`: fixed width, so no canary is part of another.
pub fn canary(n: usize) -> String {
    format!("KNRY{n:04}Q")
}

/// Every string and number leaf of `v`, by JSON pointer (where to plant canaries).
pub fn leaves(v: &Value, pointer: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| leaves(v, format!("{pointer}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, format!("{pointer}/{i}"), out)),
        Value::String(_) | Value::Number(_) => out.push(pointer),
        _ => {}
    }
}

/// `record` with a canary in each field in turn, each with its own source
/// id (unless the canary is in it): (JSON pointer, canary, record).
pub fn with_canaries(record: &Value) -> Vec<(String, String, Value)> {
    let mut pointers = Vec::new();
    leaves(record, String::new(), &mut pointers);
    pointers
        .into_iter()
        .enumerate()
        .map(|(n, pointer)| {
            let mut r = record.clone();
            *r.pointer_mut(&pointer).unwrap() = serde_json::json!(canary(n));
            if pointer != "/source_record_id" {
                r["source_record_id"] =
                    serde_json::json!(format!("urn:uuid:00000000-0000-4000-8000-{n:012}"));
            }
            (pointer, canary(n), r)
        })
        .collect()
}

pub fn example_record(record_type: &str) -> Value {
    let path = repo_path(&format!("schemas/examples/{record_type}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub struct TestGateway {
    pub base: String,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    gateway: Option<RunningGateway>,
}

/// A config like the example one (same clients, mappings and policies) but
/// with the given destinations (TOML) and routes `(record type, destination)`.
pub fn config_with(data_dir: &Path, destinations: &str, routes: &[(&str, &str)]) -> Config {
    let example = std::fs::read_to_string(example_config_path()).unwrap();
    let head = &example[..example.find("# --- destinations").unwrap()];
    let head = head
        .replace(
            "mappings_dir = \"../mappings\"",
            &format!(
                "mappings_dir = {:?}",
                repo_path("mappings").display().to_string()
            ),
        )
        .replace(
            "policies_dir = \"../policies\"",
            &format!(
                "policies_dir = {:?}",
                repo_path("policies").display().to_string()
            ),
        )
        .replace(
            "data_dir = \"registry-gateway-data\"",
            &format!(
                "data_dir = {:?}",
                data_dir.join("store").display().to_string()
            ),
        );
    let mut text = format!("{head}\n{destinations}\n");
    for (record_type, destination) in routes {
        text.push_str(&format!(
            "[[routes]]\nrecord_type = \"{record_type}\"\ndestination = \"{destination}\"\n\n"
        ));
    }
    // The example's [retention] (a generated KEK kept in the data dir).
    text.push_str(&example[example.find("# --- retention").unwrap()..]);
    let path = data_dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let mut config = Config::load(
        &path,
        &Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.join("store")),
            database_url: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    without_client_limits(&mut config);
    config
}

/// A copy of the example config in `dir` (paths made absolute) with the
/// per-client limits lifted, for tests that run the binary and push many
/// records (the limits themselves are `tests/it/frontdoor.rs`'s).
pub fn example_config_without_limits(dir: &Path) -> PathBuf {
    let deploy = repo_path("deploy");
    let text = std::fs::read_to_string(example_config_path())
        .unwrap()
        .replace("\"../mappings\"", &format!("{:?}", repo_path("mappings")))
        .replace("\"../policies\"", &format!("{:?}", repo_path("policies")))
        .replace(
            "file = \"locations/",
            &format!("file = \"{}/locations/", deploy.display()),
        )
        .replace(
            "limits = { rate_per_second = 50, burst = 100 }",
            "limits = { rate_per_second = 1000000, burst = 100000, max_concurrent = 100000 }",
        )
        .replace(
            "client_limits = { rate_per_second = 50, burst = 100, max_concurrent = 32 }",
            "client_limits = { rate_per_second = 1000000, burst = 100000, max_concurrent = 100000 }",
        );
    let path = dir.join("gateway-unlimited.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The example's per-client limits (50 requests/s, burst 100) lifted: tests
/// that push many records are about something else. `tests/it/frontdoor.rs`
/// tests the limits themselves.
pub fn without_client_limits(config: &mut Config) {
    let unlimited = registry_gateway::config::ClientLimits {
        rate_per_second: 1_000_000.0,
        burst: 100_000,
        max_concurrent: 100_000,
        max_body_bytes: config.server.max_body_bytes,
    };
    config.server.front.client_limits = unlimited;
    config.server.front.unauthenticated_limits = unlimited;
    for client in &mut config.clients {
        client.limits = unlimited;
    }
}

impl TestGateway {
    /// A gateway on `config` (from [`config_with`]), data in `data_dir`.
    pub async fn start_with(config: Config, data_dir: TempDir) -> TestGateway {
        let gateway = server::start(config).await.unwrap();
        TestGateway {
            base: format!("http://{}", gateway.local_addr),
            http: reqwest::Client::new(),
            data_dir,
            gateway: Some(gateway),
        }
    }

    pub async fn start() -> TestGateway {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(
            &example_config_path(),
            &Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(data_dir.path().to_path_buf()),
                database_url: None,
            },
        )
        .unwrap();
        without_client_limits(&mut config);
        let gateway = server::start(config).await.unwrap();
        TestGateway {
            base: format!("http://{}", gateway.local_addr),
            http: reqwest::Client::new(),
            data_dir,
            gateway: Some(gateway),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn submit(
        &self,
        source: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/v1/sources/{source}/records")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn stop(mut self) -> TempDir {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await.unwrap();
        }
        self.data_dir
    }
}

/// The gateway binary, serving `config` on a free port (with `--data-dir`
/// when given); the address comes from its first line on stdout.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub base: String,
}

pub fn spawn_gateway(config: &Path, data_dir: Option<&Path>, log: &str) -> GatewayProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-gateway"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"]);
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    let mut child = command
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the gateway binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("registry-gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    GatewayProcess { child, base }
}

/// Count rows of a table in the embedded store of `data_dir`, read-only.
pub async fn count_rows(data_dir: &Path, table: &str, filter: &str) -> i64 {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", data_dir.join("gateway.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table} {filter}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}
