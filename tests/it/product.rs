//! The product binary is the gateway alone: no mock registry, no demo.

use std::process::Command;

use crate::common::repo_path;

#[test]
fn help_lists_no_mock_or_demo_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).to_lowercase();
    for command in ["serve", "config", "translate", "manifest", "dead-letters"] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
    }
    for word in ["mock", "demo"] {
        assert!(!help.contains(word), "--help mentions {word}:\n{help}");
    }
}

#[test]
fn the_product_links_neither_the_mocks_nor_the_demo() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--prefix", "none", "--format", "{p}"])
        .args(["--package", "registry-gateway", "--edges", "normal,build"])
        .arg("--manifest-path")
        .arg(repo_path("Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.lines()
            .any(|l| l.starts_with("registry-gateway-core ")),
        "{tree}"
    );
    for member in ["registry-mocks ", "registry-gateway-demo "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(member)),
            "the product depends on {member}:\n{tree}"
        );
    }
}
