//! The integration tests, one binary (one link, one process start): each module
//! starts what it needs itself (a gateway on 127.0.0.1:0, mock registries,
//! the external validators). Binaries of their own: the SIGKILL tests
//! (tests/crash_recovery.rs, tests/delivery_crash.rs), which kill child
//! processes, and the delivery tests (tests/delivery.rs), which measure pace
//! and timing and so must not share the process with CPU-heavy tests.

mod audit_log;
mod common;
mod conformance;
mod console;
mod crvs_primero_formats;
mod deploy_files;
mod examplia_xsd;
mod external_validators;
mod fhir_r4_exchange;
mod fhir_r4_validators;
mod frontdoor;
mod hardening;
mod inbound_formats;
mod intake_api;
mod locations;
mod manifest_cli;
mod mock_registries;
mod openapi;
mod policy_canary;
mod policy_fhir_consent;
mod product;
mod registries_accept_gateway_output;
mod retention;
mod store_migrations;
mod translate_cli;
mod transports;
