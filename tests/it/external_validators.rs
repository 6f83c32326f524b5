//! Every registry payload the gateway produces is checked by validators the
//! project did not write: the conformance suite's golden outputs, and a
//! property test's generated records rendered through every route.
//!
//! - examplia-crvs: `xmllint --schema` against the published XSD, on the SOAP
//!   body's payload element (`submitBirthNotification`);
//! - fhir-r4: the official R4 JSON Schema (npm) and Python fhir.resources 6.4.0
//!   (R4 4.0.1), JSON and its XML form;
//! - every route: no value of a field outside its mapping (planted canaries).
//!
//! CI installs the validators with `tools/install-oracles`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::common::records::{birth_notification, sample};
use crate::common::*;
use registry_gateway::config::{Config, Overrides};
use registry_gateway::mapping::formats::fhir_r4;
use registry_gateway::model::RecordId;
use registry_gateway::pipeline::{Canonical, Pipeline};
use serde_json::Value;

const INSTALL: &str = "bash tools/install-oracles";

fn pipeline() -> Pipeline {
    let config = Config::load(&example_config_path(), &Overrides::default()).unwrap();
    Pipeline::load(Arc::new(config)).unwrap()
}

/// The SOAP body's payload with the namespace it relies on declared on it.
fn soap_payload(envelope: &str) -> String {
    let start = envelope
        .find("<bn:submitBirthNotification>")
        .expect("a submitBirthNotification element");
    let end_tag = "</bn:submitBirthNotification>";
    let end = envelope.find(end_tag).expect("its end tag") + end_tag.len();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<bn:submitBirthNotification xmlns:bn=\"urn:examplia:crvs:birth-notification:1\">{}",
        &envelope[start + "<bn:submitBirthNotification>".len()..end]
    )
}

/// Documents to validate, written to one folder so each oracle runs once.
struct Batch {
    dir: tempfile::TempDir,
    examplia: Vec<PathBuf>,
    fhir: Vec<PathBuf>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            dir: tempfile::tempdir().unwrap(),
            examplia: Vec::new(),
            fhir: Vec::new(),
        }
    }

    fn add(&mut self, label: &str, route: &str, bytes: &[u8]) {
        let stem = format!("{label}--{route}");
        if route.ends_with("-to-examplia-crvs") {
            let path = self.dir.path().join(format!("{stem}.xml"));
            std::fs::write(&path, soap_payload(std::str::from_utf8(bytes).unwrap())).unwrap();
            self.examplia.push(path);
        } else if route.ends_with("-to-fhir-r4") {
            let json: Value = serde_json::from_slice(bytes).unwrap();
            let path = self.dir.path().join(format!("{stem}.json"));
            std::fs::write(&path, bytes).unwrap();
            std::fs::write(path.with_extension("xml"), fhir_r4::to_xml(&json).unwrap()).unwrap();
            self.fhir.push(path);
        }
    }

    fn validate(&self) {
        assert!(!self.examplia.is_empty() && !self.fhir.is_empty());
        let xsd = repo_path("schemas/registries/examplia-crvs/birth-notification-v1.xsd");
        let mut xmllint = vec!["--noout".into(), "--schema".into(), xsd];
        xmllint.extend(self.examplia.iter().cloned());
        run("xmllint", &xmllint, "apt-get install -y libxml2-utils");

        let tools = repo_path("tools/fhir-validate");
        let mut node = vec![tools.join("validate-schema.js")];
        node.extend(self.fhir.iter().cloned());
        run("node", &node, INSTALL);

        let python = std::env::var_os("FHIR_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| tools.join(".venv/bin/python"));
        let mut py = vec![tools.join("validate_resources.py")];
        py.extend(self.fhir.iter().cloned());
        run(python.to_str().unwrap(), &py, INSTALL);
    }
}

fn run(program: &str, args: &[PathBuf], install: &str) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}); install the oracles: {install}"));
    assert!(
        output.status.success(),
        "{program} refused gateway output:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn expected_outputs(case: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(case.join("expected")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let route = name
                .rsplit_once('.')
                .map(|(r, _)| r.to_string())
                .unwrap_or_default();
            (route, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn every_conformance_output_passes_the_external_validators() {
    let mut batch = Batch::new();
    let cases = repo_path("conformance/cases");
    let mut n = 0;
    for case in std::fs::read_dir(&cases).unwrap().flatten() {
        let label = case.file_name().to_string_lossy().into_owned();
        for (route, bytes) in expected_outputs(&case.path()) {
            batch.add(&label, &route, &bytes);
            n += 1;
        }
    }
    assert!(n > 100, "only {n} golden outputs found");
    batch.validate();
}

#[test]
fn generated_records_render_valid_output_on_every_route_and_leak_nothing() {
    let pipeline = pipeline();
    let records = sample(birth_notification(), 64);
    let mut batch = Batch::new();
    for (i, record) in records.into_iter().enumerate() {
        let violations = pipeline.schemas().validate(
            registry_gateway::model::RecordType::BirthNotification,
            &record,
        );
        assert!(
            violations.is_empty(),
            "generator made an invalid record: {violations:?}\n{record}"
        );
        let canonical = Canonical {
            record_type: registry_gateway::model::RecordType::BirthNotification,
            record,
        };
        let id = RecordId(uuid::Uuid::from_u128(i as u128 + 1));
        let timestamp = canonical.stated_time().unwrap();
        for route in pipeline.config().routes_for(canonical.record_type) {
            let ctx = pipeline.context(route, id, &canonical, timestamp, 1, None);
            // A route may refuse a record it cannot carry (OpenCRVS 1.x has no
            // place for a birth in transit), but what it renders must be valid.
            let Some(Ok(encoded)) = pipeline
                .route(route, std::borrow::Cow::Borrowed(&canonical), &ctx)
                .rendered
            else {
                continue;
            };
            let text = String::from_utf8(encoded.bytes.clone()).unwrap();
            assert!(
                !text.contains("CANARY-HEALTH-NOTE") && !text.contains("epds"),
                "{}: health data outside the mapping leaked",
                route.name
            );
            if encoded.extension == "json" {
                serde_json::from_slice::<Value>(&encoded.bytes).unwrap();
            }
            batch.add(&format!("gen{i:03}"), &route.name, &encoded.bytes);
        }
    }
    assert!(
        batch.examplia.len() >= 60,
        "{} Examplia outputs",
        batch.examplia.len()
    );
    assert!(batch.fhir.len() >= 60, "{} FHIR outputs", batch.fhir.len());
    batch.validate();
}
