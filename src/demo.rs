//! `registry-gateway demo`: the whole flow on one machine, no setup. Starts
//! the mock registries where the example config expects them, the gateway on
//! a fresh embedded store, pushes the sample records of `conformance/cases`
//! (every case expected to be accepted), shows them flow to receipts, then
//! keeps serving until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::{Config, ConfigErrors, Overrides};
use crate::mocks::{self, MockSetOptions, RunningMock};
use crate::server::{self, RunningGateway};
use crate::store::DeliveryCount;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub config: PathBuf,
    pub cases: PathBuf,
    pub listen: Option<String>,
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("the mock registries cannot start: {0} (is another demo or mock-registries running?)")]
    Mocks(#[from] mocks::StartError),
    #[error(transparent)]
    Gateway(#[from] server::StartError),
    #[error("cannot read the sample records in {path}: {message}")]
    Samples { path: PathBuf, message: String },
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running demo: mocks and gateway.
pub struct Demo {
    pub gateway: RunningGateway,
    pub mocks: Vec<RunningMock>,
    pub samples: Vec<Sample>,
}

/// One sample record: its source and bytes.
#[derive(Debug, Clone)]
pub struct Sample {
    pub case: String,
    pub source: String,
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
struct CaseFile {
    source: String,
    expect: String,
}

/// Every case of `dir` expected to be accepted, in name order.
pub fn samples(dir: &Path) -> Result<Vec<Sample>, DemoError> {
    let fail = |message: String| DemoError::Samples {
        path: dir.to_path_buf(),
        message,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for case in names {
        let text =
            std::fs::read_to_string(case.join("case.toml")).map_err(|e| fail(e.to_string()))?;
        let meta: CaseFile = toml::from_str(&text)
            .map_err(|e| fail(format!("{}: {}", case.display(), e.message())))?;
        if meta.expect != "accept" {
            continue;
        }
        let body = std::fs::read(case.join("input.json")).map_err(|e| fail(e.to_string()))?;
        out.push(Sample {
            case: case
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source: meta.source,
            body,
        });
    }
    Ok(out)
}

/// Start the mocks and the gateway on a fresh store.
pub async fn start(options: &DemoOptions) -> Result<Demo, DemoError> {
    let samples = samples(&options.cases)?;
    if options.data_dir.exists() {
        std::fs::remove_dir_all(&options.data_dir).map_err(|source| DemoError::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;
    }
    let config = Config::load(
        &options.config,
        &Overrides {
            listen: options.listen.clone(),
            data_dir: Some(options.data_dir.clone()),
            database_url: None,
        },
    )?;
    let mocks = mocks::start_set(&MockSetOptions {
        // The demo runs at any hour: Examplia's Sunday maintenance would hold it.
        no_maintenance: true,
        ..MockSetOptions::default()
    })
    .await?;
    let gateway = match server::start(config).await {
        Ok(g) => g,
        Err(e) => {
            for m in mocks {
                m.stop().await;
            }
            return Err(e.into());
        }
    };
    Ok(Demo {
        gateway,
        mocks,
        samples,
    })
}

/// Deliveries by status, summed per destination: `(destination, delivered, pending, dead, cancelled)`.
pub fn summarise(counts: &[DeliveryCount]) -> Vec<(String, [i64; 4])> {
    let mut out: Vec<(String, [i64; 4])> = Vec::new();
    for c in counts {
        let slot = match c.status.as_str() {
            "delivered" => 0,
            "pending" => 1,
            "dead" => 2,
            _ => 3,
        };
        match out.iter_mut().find(|(d, _)| *d == c.destination) {
            Some((_, n)) => n[slot] += c.count,
            None => {
                let mut n = [0; 4];
                n[slot] = c.count;
                out.push((c.destination.clone(), n));
            }
        }
    }
    out
}

/// Poll until nothing is pending or `limit` passes, calling `report` each second.
pub async fn wait_settled(
    gateway: &RunningGateway,
    limit: Duration,
    mut report: impl FnMut(&[(String, [i64; 4])]),
) -> Vec<(String, [i64; 4])> {
    let started = Instant::now();
    loop {
        let counts = gateway
            .store()
            .delivery_counts()
            .await
            .map(|c| summarise(&c))
            .unwrap_or_default();
        report(&counts);
        let pending: i64 = counts.iter().map(|(_, n)| n[1]).sum();
        if pending == 0 || started.elapsed() >= limit {
            return counts;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The demo agency's published trial token (deploy/gateway.example.toml).
pub const DEMO_AGENCY_TOKEN: &str = "demo-agency-token";

/// What the gateway answered for one sample.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub case: String,
    pub status: u16,
    pub id: Option<String>,
    /// Routes that will deliver / were denied by policy.
    pub delivering: usize,
    pub denied: usize,
}

/// Push every sample to the gateway at `base`, as the demo agency.
pub async fn push(base: &str, samples: &[Sample]) -> Vec<Pushed> {
    let http = reqwest::Client::new();
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let answer = http
            .post(format!("{base}/v1/sources/{}/records", s.source))
            .bearer_auth(DEMO_AGENCY_TOKEN)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("demo-{}", s.case))
            .body(s.body.clone())
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            ),
            Err(_) => (0, serde_json::Value::Null),
        };
        let routes = body["routes"].as_array().cloned().unwrap_or_default();
        let delivering = routes.iter().filter(|r| r["decision"] == "deliver").count();
        out.push(Pushed {
            case: s.case.clone(),
            status,
            id: body["id"].as_str().map(str::to_string),
            delivering,
            denied: routes.len() - delivering,
        });
    }
    out
}
