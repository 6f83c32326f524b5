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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub id: String,
    pub role: String,
    pub token_sha256: String,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub record_type: String,
    pub destination: String,
}
