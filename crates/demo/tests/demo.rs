//! The demo binary, copied alone into an empty folder and run from there,
//! brings every sample to a receipt through the real gateway binary (found on
//! PATH, as after an install).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of the gateway binary beside the demo's. `cargo test --workspace`
/// (the README's test command) builds both in the same run, so it is fresh;
/// run alone (`-p registry-gateway-demo`), the gateway is built here first.
fn gateway_bin_dir() -> PathBuf {
    let demo = Path::new(env!("CARGO_BIN_EXE_registry-gateway-demo"));
    let dir = demo.parent().unwrap().to_path_buf();
    if !dir.join("registry-gateway").is_file() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--package",
                "registry-gateway",
                "--bin",
                "registry-gateway",
            ])
            .arg("--manifest-path")
            .arg(&workspace)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building registry-gateway failed");
    }
    assert!(
        dir.join("registry-gateway").is_file(),
        "no gateway binary in {}",
        dir.display()
    );
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_demo_copied_to_an_empty_folder_brings_every_sample_to_a_receipt() {
    let bin_dir = gateway_bin_dir();
    let folder = tempfile::tempdir().unwrap();
    let demo = folder.path().join("registry-gateway-demo");
    std::fs::copy(env!("CARGO_BIN_EXE_registry-gateway-demo"), &demo).unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let output = Command::new(&demo)
        .current_dir(folder.path())
        .env("PATH", path)
        .env_remove("REGISTRY_GATEWAY_BIN")
        .env_remove("CARGO")
        .env_remove("CARGO_MANIFEST_DIR")
        .args(["--exit-when-done", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary: "))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    // Every conformance case expected to be accepted is a sample.
    let accepted_cases =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/cases"))
            .unwrap()
            .filter(|e| {
                let toml = e.as_ref().unwrap().path().join("case.toml");
                std::fs::read_to_string(toml).is_ok_and(|t| t.contains("expect = \"accept\""))
            })
            .count();
    assert!(
        summary.starts_with(&format!(
            "summary: {accepted_cases} of {accepted_cases} samples accepted;"
        )),
        "{summary}"
    );
    assert!(summary.contains(" 0 deliveries pending"), "{summary}");
    // The console's address and the tokens to try it with.
    let console = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("http://") && l.contains("/console/"))
        .unwrap_or_else(|| panic!("no console address:\n{stdout}"));
    assert!(console.contains("127.0.0.1:"), "{console}");
    for token in [
        "demo-admin-token",
        "demo-auditor-token",
        "demo-agency-token",
    ] {
        assert!(
            stdout.contains(&format!("      {token}")),
            "{token} not offered:\n{stdout}"
        );
    }
    // The demo wrote its deployment and store into the folder it ran in.
    let data = folder.path().join("registry-gateway-demo-data");
    assert!(data.join("deploy/gateway.example.toml").is_file());
    assert!(data.join("mappings").is_dir() && data.join("policies").is_dir());
    assert!(data.join("store").is_dir());
}
