//! Every case in conformance/ passes: accepted cases produce exactly their
//! reviewed golden outputs, refused cases are refused for the listed problems.

use std::sync::Arc;

use crate::common::*;
use registry_gateway::config::{Config, Overrides};

#[test]
fn every_conformance_case_passes() {
    let config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    let pipeline = registry_gateway::pipeline::Pipeline::load(Arc::new(config)).unwrap();
    let results =
        registry_gateway::conformance::run(&pipeline, &repo_path("conformance"), false).unwrap();
    assert!(
        results.len() >= 40,
        "only {} conformance cases",
        results.len()
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.failures.join("; ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
