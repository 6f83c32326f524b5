//! Map a stream of canonical records (JSON Lines on stdin) through one route,
//! writing one registry payload per line to stdout. The Rust side of
//! `bench/jq-compare.sh`, which runs the same mapping written in jq.
//!
//! cargo run --release --example map_jsonl -- deploy/gateway.example.toml birth-notification-to-opencrvs < records.jsonl

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use registry_gateway::config::{Config, Overrides};
use registry_gateway::model::RecordId;
use registry_gateway::pipeline::Canonical;
use registry_gateway::pipeline::Pipeline;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, route] = args.as_slice() else {
        anyhow::bail!("usage: map_jsonl CONFIG ROUTE < records.jsonl");
    };
    let config = Config::load(Path::new(config), &Overrides::default())?;
    let pipeline = Pipeline::load(Arc::new(config))?;
    let route = pipeline
        .config()
        .routes
        .iter()
        .find(|r| &r.name == route)
        .ok_or_else(|| anyhow::anyhow!("no route {route}"))?
        .clone();
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    for line in stdin.lines() {
        let line = line?;
        let record: serde_json::Value = serde_json::from_str(&line)?;
        let canonical = Canonical {
            record_type: route.record_type,
            record,
        };
        let id = RecordId(uuid::Uuid::from_u128(u128::from(n)));
        let timestamp = canonical.stated_time().unwrap_or_default();
        let ctx = pipeline.context(&route, id, &canonical, timestamp, 1, None);
        let encoded = pipeline.render(&route, &canonical, &ctx)?;
        out.write_all(&encoded.bytes)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    eprintln!("{n} records mapped");
    Ok(())
}
