//! `registry-gateway translate` as a user runs it: exit codes, files, determinism.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

fn translate(source: &str, input: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["translate", "--config"])
        .arg(example_config_path())
        .args(["--source", source, "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_valid_birth_notification_gives_one_file_per_route_and_decisions() {
    let out = tempfile::tempdir().unwrap();
    let input = repo_path("schemas/examples/birth-notification.json");
    let run = translate("canonical", &input, out.path());
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let names: Vec<String> = files_of(out.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "birth-notification-to-examplia-crvs.xml",
            "birth-notification-to-fhir-r4.json",
            "birth-notification-to-opencrvs-v1.json",
            "birth-notification-to-opencrvs.json",
            "decisions.json",
        ]
    );
    let decisions: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("decisions.json")).unwrap()).unwrap();
    for d in decisions.as_array().unwrap() {
        for key in [
            "route",
            "destination",
            "decision",
            "reason",
            "legal_basis",
            "redactions",
        ] {
            assert!(d.get(key).is_some(), "{key} missing in {d}");
        }
        assert!(["deliver", "deny"].contains(&d["decision"].as_str().unwrap()));
    }
}

#[test]
fn translate_is_byte_for_byte_deterministic() {
    for (source, input) in [
        (
            "canonical",
            repo_path("schemas/examples/birth-notification.json"),
        ),
        (
            "canonical",
            repo_path("schemas/examples/child-protection-case.json"),
        ),
    ] {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(translate(source, &input, a.path()).status.code(), Some(0));
        assert_eq!(translate(source, &input, b.path()).status.code(), Some(0));
        assert_eq!(files_of(a.path()), files_of(b.path()));
    }
}

#[test]
fn an_invalid_record_exits_2_and_lists_every_problem_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = example_record("birth-notification");
    record["child"]["sex"] = Value::from("CANARY-not-a-sex");
    record["mother"]["nationality"] = Value::from(42);
    let input = dir.path().join("bad.json");
    std::fs::write(&input, serde_json::to_vec(&record).unwrap()).unwrap();
    let run = translate("canonical", &input, &dir.path().join("out"));
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("/child/sex"), "{stderr}");
    assert!(stderr.contains("/mother/nationality"), "{stderr}");
    assert!(!stderr.contains("CANARY"), "{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing is written for an invalid record"
    );
}

/// `translate --jsonl` over `lines`: (exit code, stdout lines, stderr).
fn translate_jsonl(
    source: &str,
    route: &str,
    lines: &[Vec<u8>],
) -> (Option<i32>, Vec<String>, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["translate", "--config"])
        .arg(example_config_path())
        .args([
            "--source",
            source,
            "--route",
            route,
            "--jsonl",
            "--threads",
            "2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join(&b'\n');
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let run = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    let outputs = stdout.split_terminator('\n').map(str::to_string).collect();
    (
        run.status.code(),
        outputs,
        String::from_utf8(run.stderr).unwrap(),
    )
}

/// Every JSON conformance input of `source`, one line each.
fn conformance_lines(source: &str) -> Vec<Vec<u8>> {
    let mut cases: Vec<_> = std::fs::read_dir(repo_path("conformance/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|dir| dir.join("input.json").is_file())
        .filter(|dir| {
            let case: toml::Value =
                toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap()).unwrap();
            case["source"].as_str() == Some(source)
        })
        .collect();
    cases.sort();
    cases
        .iter()
        .map(|dir| {
            // A line break in JSON is whitespace between tokens (never inside
            // a string): a space in its place keeps the meaning, even of the
            // hostile inputs too deep to parse.
            let mut bytes = std::fs::read(dir.join("input.json")).unwrap();
            for b in &mut bytes {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
            bytes
        })
        .collect()
}

#[test]
fn jsonl_gives_each_record_the_bytes_translate_writes_for_it_line_by_line() {
    let config = registry_gateway::config::Config::load(
        &example_config_path(),
        &registry_gateway::config::Overrides::default(),
    )
    .unwrap();
    let pipeline = registry_gateway::pipeline::Pipeline::load(std::sync::Arc::new(config)).unwrap();
    let routes: Vec<String> = pipeline
        .config()
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let (mut delivered, mut refused) = (0, 0);
    for source in ["canonical", "primero", "fhir-r4"] {
        let lines = conformance_lines(source);
        assert!(lines.len() >= 5, "{source}: {} cases", lines.len());
        // What `translate --input/--out` writes for each line on its own.
        let single: Vec<_> = lines
            .iter()
            .map(|l| registry_gateway::translate::translate(&pipeline, source, l, None))
            .collect();
        let any_invalid = single.iter().any(Result::is_err);
        for route in &routes {
            let (code, outputs, stderr) = translate_jsonl(source, route, &lines);
            assert_eq!(
                code,
                Some(if any_invalid { 2 } else { 0 }),
                "{source} {route}: {stderr}"
            );
            assert_eq!(
                outputs.len(),
                lines.len(),
                "{source} {route}: one output line per input line"
            );
            for (i, (expected, line)) in single.iter().zip(&outputs).enumerate() {
                let n = i + 1;
                let file = expected.as_ref().ok().and_then(|t| {
                    t.files
                        .iter()
                        .find(|f| f.name.starts_with(&format!("{route}.")))
                });
                match (expected, file) {
                    (Ok(_), Some(file)) => {
                        let bytes = if file.name.ends_with(".json") {
                            line.as_bytes().to_vec()
                        } else {
                            serde_json::from_str::<String>(line).unwrap().into_bytes()
                        };
                        assert!(
                            bytes == file.bytes,
                            "{source} {route} line {n}: not the bytes translate writes"
                        );
                        delivered += 1;
                    }
                    (Ok(_), None) => {
                        assert!(line.is_empty(), "{source} {route} line {n}");
                        assert!(
                            stderr.contains(&format!("line {n}: {route} denied: [")),
                            "{source} {route} line {n}: {stderr}"
                        );
                    }
                    (Err(_), _) => {
                        assert!(line.is_empty(), "{source} {route} line {n}");
                        assert!(
                            stderr.contains(&format!("line {n}: invalid: ")),
                            "{source} {route} line {n}: {stderr}"
                        );
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(
        delivered >= 100 && refused >= 20,
        "{delivered} outputs, {refused} refusals compared"
    );
}

#[test]
fn jsonl_reports_bad_lines_by_number_and_pointer_never_by_value() {
    let good = serde_json::to_vec(&example_record("birth-notification")).unwrap();
    let mut bad = example_record("birth-notification");
    bad["child"]["sex"] = Value::from("CANARY-not-a-sex");
    let bad = serde_json::to_vec(&bad).unwrap();
    let not_json = b"{\"CANARY\": ".to_vec();
    let lines = [good.clone(), bad, not_json, good];
    let (code, outputs, stderr) =
        translate_jsonl("canonical", "birth-notification-to-opencrvs", &lines);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(outputs.len(), 4);
    assert!(!outputs[0].is_empty() && !outputs[3].is_empty());
    assert_eq!(
        outputs[0], outputs[3],
        "the same record gives the same bytes"
    );
    assert!(outputs[1].is_empty() && outputs[2].is_empty());
    assert!(stderr.contains("line 2: invalid: /child/sex ["), "{stderr}");
    assert!(stderr.contains("line 3: invalid: "), "{stderr}");
    assert!(
        !stderr.contains("line 1:") && !stderr.contains("line 4:"),
        "{stderr}"
    );
    assert!(!stderr.contains("CANARY"), "{stderr}");
    assert!(stderr.contains("2 of 4 line(s) invalid"), "{stderr}");
}
