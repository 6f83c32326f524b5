//! Intake throughput: schema validation plus a durable commit (WAL, synchronous=FULL).
//!
//! `submit/sequential` sends one record at a time, so every accept pays its own
//! fsync: the reference. `submit/concurrent-256` keeps 256 submissions in flight,
//! as many agencies would, and lets the store commit them in groups. The ratio
//! between the two is what group commit buys on this machine's disk.
//!
//! `store/accept-concurrent-256` commits, 256 at a time, exactly what intake
//! commits for the example birth notification (the record sealed, one
//! delivery per delivering route, the accepted event with its route
//! decisions, a subject), made once beforehand with another subject each
//! time: the durable write alone, with no HTTP, parse, validation or policy.
//! Beside `submit/concurrent-256` it says how much of intake is the store
//! (docs/perf, "Tenth session: what bounds the ratio"). Its `without-subject` and
//! `one-delivery` variants commit less than intake does, to size what a
//! change of the schema could buy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_gateway::audit::{AuditEvent, AuditKind};
use registry_gateway::config::{Config, Overrides, SourceConfig};
use registry_gateway::intake::{Intake, RouteOutcome, Submission};
use registry_gateway::model::{RecordId, RecordType, subject_key};
use registry_gateway::pipeline::Pipeline;
use registry_gateway::server::open_store;
use registry_gateway::store::NewRecord;
use registry_gateway::telemetry::Metrics;
use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// What intake hands the store for the example birth notification, its
/// routes decided by intake itself (its id, and its subject when it has one,
/// are set for each copy).
fn accepted_record(intake: &Intake, source: &SourceConfig, body: &[u8]) -> NewRecord {
    let payload: Value = serde_json::from_slice(body).unwrap();
    let canonical = intake.pipeline().canonicalize(source, &payload).unwrap();
    let id = RecordId::new();
    let received_at = Utc::now();
    let (routes, deliveries) = intake.decide(&canonical, None, &[]);
    let mut audit = AuditEvent::new(
        AuditKind::RecordAccepted,
        received_at,
        "demo-agency",
        "canonical",
    );
    audit.body_sha256 = Some(hex::encode(Sha256::digest(body)));
    audit.record_id = Some(id.to_string());
    audit.record_type = Some(canonical.record_type);
    audit.routes = routes.iter().map(RouteOutcome::audit_decision).collect();
    NewRecord {
        id,
        client_id: "demo-agency".to_string(),
        source: "canonical".to_string(),
        record_type: canonical.record_type,
        received_at,
        idempotency_key: None,
        request_sha256: Sha256::digest(body).into(),
        canonical: serde_json::to_vec(&canonical.record).unwrap(),
        deliveries,
        audit,
        subject: None,
        consent: None,
    }
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

    let mut accept = c.benchmark_group("store");
    accept.sample_size(20);
    accept.throughput(Throughput::Elements(IN_FLIGHT));
    let template = accepted_record(&intake, &source, &body);
    assert!(!template.deliveries.is_empty(), "the example delivers");
    let people = AtomicU64::new(1);
    // What intake commits, then what the store would commit without the
    // subject index's random page a record, or with one delivery a record:
    // what a change of schema could buy (not what intake does).
    type Vary = fn(&mut NewRecord);
    let variants: [(&str, Vary); 3] = [
        ("as-intake", |_| {}),
        ("without-subject", |r| r.subject = None),
        ("one-delivery", |r| r.deliveries.truncate(1)),
    ];
    for (name, vary) in variants {
        accept.bench_function(format!("accept-concurrent-256/{name}"), |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    (0..IN_FLIGHT)
                        .map(|_| {
                            let n = people.fetch_add(1, Ordering::Relaxed);
                            let mut record = template.clone();
                            record.id = RecordId::new();
                            record.audit.record_id = Some(record.id.to_string());
                            record.subject = Some(subject_key(
                                "demo-agency",
                                "birth-notification",
                                &n.to_string(),
                            ));
                            vary(&mut record);
                            record
                        })
                        .collect::<Vec<_>>()
                },
                |records| {
                    let store = store.clone();
                    async move {
                        let tasks: Vec<_> = records
                            .into_iter()
                            .map(|record| {
                                let store = store.clone();
                                tokio::spawn(async move { store.accept(record).await.unwrap() })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    accept.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
