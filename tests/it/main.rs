//! The integration tests, one binary (one link, one process start): each module
//! starts what it needs itself (a gateway on 127.0.0.1:0, mock registries,
//! the external validators). The SIGKILL tests are binaries of their own
//! (tests/crash_recovery.rs, tests/delivery_crash.rs): they kill child processes
//! and take their time.

mod common;
mod conformance;
mod crvs_primero_formats;
mod delivery;
mod examplia_xsd;
mod external_validators;
mod fhir_r4_validators;
mod inbound_formats;
mod intake_api;
mod manifest_cli;
mod mock_registries;
mod openapi;
mod policy_canary;
mod policy_fhir_consent;
mod product;
mod registries_accept_gateway_output;
mod store_migrations;
mod translate_cli;
mod transports;
