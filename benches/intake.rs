//! Intake throughput: schema validation plus a durable commit (WAL, synchronous=FULL).
//!
//! `submit/sequential` sends one record at a time, so every accept pays its own
//! fsync: the reference. `submit/concurrent-256` keeps 256 submissions in flight,
//! as many agencies would, and lets the store commit them in groups. The ratio
//! between the two is what group commit buys on this machine's disk.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_gateway::config::{Config, Overrides, SourceConfig};
use registry_gateway::intake::{Intake, Submission};
use registry_gateway::model::RecordType;
use registry_gateway::pipeline::Pipeline;
use registry_gateway::server::open_store;
use registry_gateway::telemetry::Metrics;
use serde_json::Value;

fn example(record_type: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/examples/{record_type}.json"));
    std::fs::read(path).unwrap()
}

/// One durable accept of `body`, as the HTTP handler would ask for it.
async fn submit_one(intake: Arc<Intake>, source: SourceConfig, body: Arc<Vec<u8>>) {
    intake
        .submit(Submission {
            client_id: "demo-agency",
            source: &source,
            idempotency_key: None,
            body: &body,
            request: None,
        })
        .await
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.example.toml"),
        &Overrides {
            data_dir: Some(data_dir.path().to_path_buf()),
            ..Overrides::default()
        },
    )
    .unwrap();
    let config = Arc::new(config);
    let pipeline = Arc::new(Pipeline::load(config.clone()).unwrap());
    let schemas = pipeline.schemas().clone();
    let metrics = Metrics::default();
    let store = runtime.block_on(open_store(&config, &metrics)).unwrap();
    let intake = Arc::new(Intake::new(pipeline, store.clone(), metrics));
    let body = Arc::new(example("birth-notification"));
    let source = config.sources["canonical"].clone();

    let mut validate = c.benchmark_group("validate");
    validate.throughput(Throughput::Elements(1));
    validate.bench_function("birth-notification", |b| {
        b.iter(|| {
            let parsed: Value = serde_json::from_slice(&body).unwrap();
            assert!(
                schemas
                    .validate(RecordType::BirthNotification, &parsed)
                    .is_empty()
            );
        })
    });
    validate.finish();

    let mut submit = c.benchmark_group("submit");
    submit.sample_size(20);
    submit.throughput(Throughput::Elements(1));
    submit.bench_function("sequential", |b| {
        b.to_async(&runtime)
            .iter(|| submit_one(intake.clone(), source.clone(), body.clone()))
    });
    const IN_FLIGHT: u64 = 256;
    submit.throughput(Throughput::Elements(IN_FLIGHT));
    submit.bench_function("concurrent-256", |b| {
        b.to_async(&runtime).iter(|| async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|_| tokio::spawn(submit_one(intake.clone(), source.clone(), body.clone())))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    submit.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
