//! Logs and metrics. Both carry ids, codes and counts, never a field's value.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global tracing subscriber. `RUST_LOG` overrides the default level.
pub fn init_logging(format: LogFormat) {
    init_logging_at(format, "info");
}

/// The same, with another default level (the demo prints its own progress).
pub fn init_logging_at(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests start several servers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
    pub record_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub destination: String,
    /// delivered, duplicate, retry, rate_limited, dead, cancelled.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// expired (retention period over) or erased (the owning agency asked).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
}

/// Metrics of the group-committing store.
#[derive(Clone)]
pub struct StoreMetrics {
    pub commit_group_size: Histogram,
    pub commit_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commit_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_125, 2.0, 14)),
        }
    }
}

/// Every metric the gateway exposes on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub records_accepted: Family<SourceLabels, Counter>,
    pub records_replayed: Family<SourceLabels, Counter>,
    pub records_rejected: Family<RejectLabels, Counter>,
    pub http_responses: Family<ResponseLabels, Counter>,
    pub store: StoreMetrics,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub delivery_seconds: Family<DestinationLabels, Histogram>,
    pub records_purged: Family<PurgeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let records_accepted = Family::<SourceLabels, Counter>::default();
        let records_replayed = Family::<SourceLabels, Counter>::default();
        let records_rejected = Family::<RejectLabels, Counter>::default();
        let http_responses = Family::<ResponseLabels, Counter>::default();
        let store = StoreMetrics::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let delivery_seconds = Family::<DestinationLabels, Histogram>::new_with_constructor(
            delivery_histogram as fn() -> Histogram,
        );
        registry.register(
            "deliveries",
            "Delivery attempts by destination and outcome",
            deliveries.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time from sending a request to a registry to its answer",
            delivery_seconds.clone(),
        );
        registry.register(
            "records_accepted",
            "Records accepted and durably committed",
            records_accepted.clone(),
        );
        registry.register(
            "records_replayed",
            "Submissions answered from an earlier identical request (Idempotency-Key)",
            records_replayed.clone(),
        );
        registry.register(
            "records_rejected",
            "Submissions refused, by reason",
            records_rejected.clone(),
        );
        let records_purged = Family::<PurgeLabels, Counter>::default();
        registry.register(
            "records_purged",
            "Records whose payload was purged (data key destroyed), by reason",
            records_purged.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses by status code",
            http_responses.clone(),
        );
        registry.register(
            "store_commit_group_size",
            "Requests committed per store transaction",
            store.commit_group_size.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time to commit one group durably",
            store.commit_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            records_accepted,
            records_replayed,
            records_rejected,
            http_responses,
            store,
            deliveries,
            delivery_seconds,
            records_purged,
        }
    }
}

fn delivery_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
