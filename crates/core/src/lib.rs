//! registry-gateway's pure core: what a record is, how it is checked, what may
//! be shared, and the bytes each registry gets. No network, no database, no
//! async runtime: files are read once at load time, then everything is a
//! function of its inputs (the clock is injected).
//!
//! Module map (ARCHITECTURE.md has the invariants):
//! - [`model`]: record types, roles, record ids, subject keys.
//! - [`schema`]: the canonical JSON Schemas (embedded), validation to JSON-pointer
//!   violations, and the sensitivity tags (`x-sensitivity`).
//! - [`config`]: `gateway.toml` -> raw structs -> `validate()` (every error) -> [`config::Config`].
//! - [`mapping`]: mapping files (paths, code lists, CEL), compiled once; `formats/inbound`
//!   decoders and `formats/outbound` encoders, one module per format.
//! - [`policy`]: sharing policies: legal bases, consent, field sets, redactions; the FHIR Consent.
//! - [`pipeline`]: a record's whole path without I/O: parse, decode, map, validate,
//!   decide, render; [`pipeline::Pipeline::load`] compiles all of the above.
//! - [`audit`]: exchange-log events, their canonical bytes and RFC 6962 leaf hashes.
//! - [`translate`], [`manifest`], [`conformance`]: the commands of the same name as functions.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod conformance;
pub mod locations;
pub mod manifest;
pub mod mapping;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod schema;
pub mod translate;
