//! registry-gateway: an interoperability gateway between humanitarian agencies
//! and the registries of a State.
//!
//! Module map (see ARCHITECTURE.md for the invariants each one keeps):
//! - [`config`]: `gateway.toml` -> raw structs -> `validate()` (every error) -> [`config::Config`].
//! - [`model`]: record types, roles, clients, record ids: the shared vocabulary.
//! - [`schema`]: the canonical JSON Schemas (embedded), validation to JSON-pointer problems,
//!   and the sensitivity tags (`x-sensitivity`) read from them. No I/O.
//! - [`audit`]: exchange-log events, their canonical bytes and leaf hashes. No I/O.
//! - [`store`]: the [`store::Store`] trait and its embedded SQLite backend (group commit).
//! - [`intake`]: what happens to a submitted record, independent of HTTP.
//! - [`api`]: the HTTP surface (axum): auth, problem details, routes, health, metrics.
//! - [`telemetry`]: logging and Prometheus metrics.
//! - [`server`]: wiring: config -> store -> router -> listener, graceful shutdown.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod config;
pub mod conformance;
pub mod delivery;
pub mod intake;
pub mod manifest;
pub mod mapping;
pub mod mocks;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod schema;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod translate;
