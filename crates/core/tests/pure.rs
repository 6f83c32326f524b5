//! The core stays pure: none of the server crates may enter its dependency
//! tree, whoever adds them and however indirectly. Runs `cargo tree` on this
//! crate over every edge kind (normal, build, dev).

use std::process::Command;

const SERVER_CRATES: [&str; 5] = ["tokio", "sqlx", "axum", "hyper", "reqwest"];

#[test]
fn the_core_depends_on_none_of_the_server_crates() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--prefix",
            "none",
            "--edges",
            "normal,build,dev",
        ])
        .args(["--format", "{p}", "--manifest-path", manifest])
        .output()
        .expect("cargo tree runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo tree failed: {stderr}");
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"registry-gateway-core") && crates.contains(&"serde_json"),
        "cargo tree listed something else:\n{tree}"
    );
    let found: Vec<&&str> = SERVER_CRATES
        .iter()
        .filter(|name| {
            crates
                .iter()
                .any(|c| c == *name || c.starts_with(&format!("{name}-")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "the core must not depend on {found:?} (see crates/core/Cargo.toml):\n{tree}"
    );
}
