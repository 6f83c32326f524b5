//! The conformance suite: cases in `conformance/cases/<case>/` run through
//! `translate` and are compared with reviewed golden files, or with the
//! problems they must be refused for. Runs under `cargo test` and as
//! `registry-gateway conformance DIR`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pipeline::Pipeline;
use crate::translate::{TranslateError, translate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    description: String,
    source: String,
    expect: Expectation,
    #[serde(default)]
    problems: Vec<ExpectedProblem>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expectation {
    Accept,
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedProblem {
    pointer: String,
    code: String,
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub description: String,
    pub failures: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Run every case under `dir/cases` (or `dir` itself if it holds cases).
/// With `bless`, accepted cases' outputs are written as their new expectations.
pub fn run(pipeline: &Pipeline, dir: &Path, bless: bool) -> Result<Vec<CaseResult>, String> {
    let cases_dir = if dir.join("cases").is_dir() {
        dir.join("cases")
    } else {
        dir.to_path_buf()
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .map_err(|e| format!("{}: {e}", cases_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    cases.sort();
    Ok(cases
        .iter()
        .map(|case| run_case(pipeline, case, bless))
        .collect())
}

fn run_case(pipeline: &Pipeline, dir: &Path, bless: bool) -> CaseResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut result = CaseResult {
        name,
        description: String::new(),
        failures: Vec::new(),
    };
    let case: CaseFile = match std::fs::read_to_string(dir.join("case.toml"))
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            result.failures.push(format!("case.toml: {e}"));
            return result;
        }
    };
    result.description = case.description.clone();
    let input = ["input.json", "input.txt", "input.xml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file());
    let Some(input) = input.and_then(|p| std::fs::read(p).ok()) else {
        result
            .failures
            .push("no readable input.json or input.txt".into());
        return result;
    };
    let outcome = translate(pipeline, &case.source, &input, None);
    match (case.expect, outcome) {
        (Expectation::Accept, Ok(translation)) => {
            let produced: BTreeMap<String, Vec<u8>> = translation
                .files
                .into_iter()
                .map(|f| (f.name, f.bytes))
                .collect();
            compare_or_bless(
                &dir.join("expected"),
                &produced,
                bless,
                &mut result.failures,
            );
        }
        (Expectation::Accept, Err(e)) => {
            result
                .failures
                .push(format!("expected acceptance, got: {e}"));
            if let TranslateError::Invalid(violations) = e {
                for v in violations {
                    result
                        .failures
                        .push(format!("  {} {}: {}", v.pointer, v.code, v.message));
                }
            }
        }
        (Expectation::Reject, Ok(_)) => result
            .failures
            .push("expected a refusal, but the record was accepted".into()),
        (Expectation::Reject, Err(TranslateError::Invalid(violations))) => {
            for expected in &case.problems {
                let found = violations
                    .iter()
                    .any(|v| v.pointer == expected.pointer && v.code == expected.code);
                if !found {
                    let got: Vec<String> = violations
                        .iter()
                        .map(|v| format!("{} {}", v.pointer, v.code))
                        .collect();
                    result.failures.push(format!(
                        "expected problem {} {} not reported (got: {})",
                        expected.pointer,
                        expected.code,
                        got.join(", ")
                    ));
                }
            }
        }
        (Expectation::Reject, Err(e)) => result
            .failures
            .push(format!("refused for another reason: {e}")),
    }
    result
}

fn compare_or_bless(
    expected_dir: &Path,
    produced: &BTreeMap<String, Vec<u8>>,
    bless: bool,
    failures: &mut Vec<String>,
) {
    if bless {
        let _ = std::fs::remove_dir_all(expected_dir);
        if let Err(e) = std::fs::create_dir_all(expected_dir) {
            failures.push(format!("cannot create {}: {e}", expected_dir.display()));
            return;
        }
        for (name, bytes) in produced {
            if let Err(e) = std::fs::write(expected_dir.join(name), bytes) {
                failures.push(format!("cannot write {name}: {e}"));
            }
        }
        return;
    }
    let mut expected = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(expected_dir) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                expected.insert(e.file_name().to_string_lossy().into_owned(), bytes);
            }
        }
    }
    if expected.is_empty() {
        failures.push(
            "no expected/ outputs: run `registry-gateway conformance --bless` and review them"
                .into(),
        );
        return;
    }
    for (name, bytes) in produced {
        match expected.get(name) {
            None => failures.push(format!("{name}: produced but not expected")),
            Some(e) if e != bytes => failures.push(format!(
                "{name}: differs from expected/{name} (first difference at byte {})",
                first_difference(e, bytes)
            )),
            Some(_) => {}
        }
    }
    for name in expected.keys() {
        if !produced.contains_key(name) {
            failures.push(format!("{name}: expected but not produced"));
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}
