//! registry-gateway: an interoperability gateway between humanitarian agencies
//! and the registries of a State. This crate is the running gateway; the pure
//! core (records, mapping, policy, pipeline) is `registry-gateway-core`,
//! re-exported here under the same module names.
//!
//! Module map (see ARCHITECTURE.md for the invariants each one keeps):
//! - [`store`]: the [`store::Store`] trait and its embedded SQLite backend (group commit,
//!   leases, migrations).
//! - [`intake`]: what happens to a submitted record, independent of HTTP: pipeline,
//!   policy decision, one durable commit.
//! - [`delivery`]: one worker per destination: leases, pace, breaker, backoff, and
//!   `delivery::transports` (one folder per registry kind).
//! - [`api`]: the HTTP surface (axum): auth, problem details, records, consent,
//!   admin, health, metrics, OpenAPI.
//! - [`bulk_translate`]: `translate --jsonl`, one record per line through one route,
//!   in order, on every core.
//! - [`console`]: the web console's page and assets, embedded in the binary
//!   (served by `api`, reading only through it).
//! - [`telemetry`]: logging and Prometheus metrics.
//! - [`server`]: wiring: config -> pipeline -> store -> router and workers ->
//!   listener, graceful shutdown.
#![forbid(unsafe_code)]

pub use registry_gateway_core::{
    audit, config, conformance, locations, manifest, mapping, model, pipeline, policy, schema,
    translate,
};

pub mod api;
pub mod bulk_translate;
pub mod checkpoints;
pub mod console;
pub mod delivery;
pub mod frontdoor;
pub mod intake;
pub mod retention;
pub mod server;
pub mod store;
pub mod telemetry;
