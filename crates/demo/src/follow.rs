//! The demo agency's side, over the gateway's HTTP API only: push the samples,
//! watch the delivery counts, read the receipts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::files::Sample;

/// The example config's published trial tokens (README: replace them).
pub const AGENCY_TOKEN: &str = "demo-agency-token";
pub const ADMIN_TOKEN: &str = "demo-admin-token";

/// The tokens the demo prints for the console, with what each shows.
pub const CONSOLE_TOKENS: &[(&str, &str)] = &[
    (
        ADMIN_TOKEN,
        "operator: destinations, dead letters and replay, record status",
    ),
    (
        "demo-auditor-token",
        "auditor: checkpoint, log, record history with proofs, manifest",
    ),
    (AGENCY_TOKEN, "agency: its own records' status"),
];

/// What the gateway answered for one sample.
pub struct Pushed {
    pub case: &'static str,
    pub status: u16,
    pub id: Option<String>,
    pub delivering: usize,
    pub denied: usize,
}

pub async fn push(http: &reqwest::Client, base: &str, samples: &[Sample]) -> Vec<Pushed> {
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let answer = http
            .post(format!("{base}/v1/sources/{}/records", s.source))
            .bearer_auth(AGENCY_TOKEN)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("demo-{}", s.case))
            .body(s.body)
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            ),
            Err(_) => (0, Value::Null),
        };
        let routes = body["routes"].as_array().cloned().unwrap_or_default();
        let delivering = routes.iter().filter(|r| r["decision"] == "deliver").count();
        out.push(Pushed {
            case: s.case,
            status,
            id: body["id"].as_str().map(str::to_string),
            delivering,
            denied: routes.len() - delivering,
        });
    }
    out
}

/// Deliveries of one destination by status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub delivered: i64,
    pub pending: i64,
    pub dead: i64,
    pub other: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.delivered + self.pending + self.dead + self.other
    }
}

#[derive(Deserialize)]
struct DeliveryCount {
    destination: String,
    status: String,
    count: i64,
}

/// `GET /v1/admin/deliveries`, summed per destination.
pub async fn counts(
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<BTreeMap<String, Counts>> {
    #[derive(Deserialize)]
    struct Answer {
        deliveries: Vec<DeliveryCount>,
    }
    let answer: Answer = http
        .get(format!("{base}/v1/admin/deliveries"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    for c in answer.deliveries {
        let n = out.entry(c.destination).or_default();
        match c.status.as_str() {
            "delivered" => n.delivered += c.count,
            "pending" => n.pending += c.count,
            "dead" => n.dead += c.count,
            _ => n.other += c.count,
        }
    }
    Ok(out)
}

/// Poll until nothing is pending or `limit` passes, reporting each second.
pub async fn wait_settled(
    http: &reqwest::Client,
    base: &str,
    limit: Duration,
) -> anyhow::Result<BTreeMap<String, Counts>> {
    let started = Instant::now();
    loop {
        let counts = counts(http, base).await?;
        let line: Vec<String> = counts
            .iter()
            .map(|(d, n)| {
                let dead = if n.dead > 0 {
                    format!(" ({} dead)", n.dead)
                } else {
                    String::new()
                };
                format!("{d} {}/{}{dead}", n.delivered, n.total())
            })
            .collect();
        println!("delivered: {}", line.join(" | "));
        let pending: i64 = counts.values().map(|n| n.pending).sum();
        if pending == 0 || started.elapsed() >= limit {
            return Ok(counts);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One route of a record's status: `(route, status, registry reference)`.
pub type RouteReceipt = (String, String, Option<String>);

/// `GET /v1/records/{id}` as the agency that pushed it.
pub async fn receipts(
    http: &reqwest::Client,
    base: &str,
    id: &str,
) -> anyhow::Result<Vec<RouteReceipt>> {
    let status: Value = http
        .get(format!("{base}/v1/records/{id}"))
        .bearer_auth(AGENCY_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(status["routes"]
        .as_array()
        .map(|routes| {
            routes
                .iter()
                .map(|r| {
                    (
                        r["route"].as_str().unwrap_or_default().to_string(),
                        r["status"].as_str().unwrap_or_default().to_string(),
                        r["receipt"]["reference"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
