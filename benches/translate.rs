//! Translation throughput per route on one core: the route's policy, the
//! outbound mapping and the encoder for one record, as `translate` and the
//! delivery workers run them.
//! `canonicalize` (parse + validation) is measured beside it as the reference:
//! translation should never be what limits the gateway. `decide-routes` is
//! what acceptance decides for a record: the policy of every route of its
//! type, and the place checks of the routes with a location list.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

// As the binary runs (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use registry_gateway::config::{Config, Overrides};
use registry_gateway::model::RecordId;
use registry_gateway::pipeline::Pipeline;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(
        &root.join("deploy/gateway.example.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let pipeline = Pipeline::load(Arc::new(config)).unwrap();
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    for example in ["birth-notification", "child-protection-case"] {
        let bytes = std::fs::read(root.join(format!("schemas/examples/{example}.json"))).unwrap();
        let source = pipeline.config().sources["canonical"].clone();
        let payload = pipeline.parse_json(&bytes).unwrap();
        let canonical = pipeline.canonicalize(&source, &payload).unwrap();
        group.bench_function(format!("canonicalize/{example}"), |b| {
            b.iter(|| pipeline.canonicalize(&source, &payload).unwrap())
        });
        group.bench_function(format!("decide-routes/{example}"), |b| {
            b.iter(|| pipeline.decide_routes(&canonical, None))
        });
        let timestamp = canonical.stated_time().unwrap();
        for route in pipeline.config().routes_for(canonical.record_type) {
            let ctx = pipeline.context(route, RecordId::new(), &canonical, timestamp, 1, None);
            let render = || {
                pipeline
                    .route(route, std::borrow::Cow::Borrowed(&canonical), &ctx)
                    .rendered
                    .unwrap()
                    .unwrap()
            };
            render();
            group.bench_function(&route.name, |b| b.iter(render));
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
