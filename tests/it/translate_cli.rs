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
