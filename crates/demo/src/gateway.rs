//! The real `registry-gateway serve`, run as a child process the way an
//! operator runs it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

const BINARY: &str = "registry-gateway";

/// Where the gateway binary is: `--gateway`, then `$REGISTRY_GATEWAY_BIN`,
/// then beside this program (built first when run through `cargo run`), then
/// on `PATH`.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("REGISTRY_GATEWAY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BINARY)));
    if let Some(sibling) = &sibling
        && build_when_under_cargo()?
    {
        return Ok(sibling.clone());
    }
    if let Some(sibling) = sibling.filter(|s| s.is_file()) {
        return Ok(sibling);
    }
    if let Some(on_path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(BINARY))
            .find(|p| p.is_file())
    }) {
        return Ok(on_path);
    }
    bail!(
        "cannot find the {BINARY} binary: put it beside this program or on PATH, \
         or name it with --gateway or REGISTRY_GATEWAY_BIN"
    )
}

/// Under `cargo run` (cargo sets CARGO and CARGO_MANIFEST_DIR for the program
/// it runs), build the gateway binary in the same profile, so that the one
/// beside this program is never stale. False when not run by cargo.
fn build_when_under_cargo() -> anyhow::Result<bool> {
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(false);
    };
    let workspace = Path::new(&manifest_dir).join("../../Cargo.toml");
    if !workspace.is_file() {
        return Ok(false);
    }
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "--package", BINARY, "--bin", BINARY])
        .arg("--manifest-path")
        .arg(&workspace);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build
        .status()
        .context("cannot run cargo to build the gateway")?;
    if !status.success() {
        bail!("building {BINARY} failed ({status})");
    }
    Ok(true)
}

/// A running gateway child process.
pub struct Gateway {
    child: Child,
    pub base: String,
}

impl Gateway {
    /// Start `serve` and wait until `/readyz` answers 200.
    pub async fn start(
        binary: &Path,
        config: &Path,
        data_dir: &Path,
        listen: &str,
    ) -> anyhow::Result<Gateway> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // The demo prints its own progress; the gateway's warnings still show.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut gateway = Gateway {
            child,
            base: format!("http://{listen}"),
        };
        gateway.wait_ready(Duration::from_secs(60)).await?;
        Ok(gateway)
    }

    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the gateway exited before it was ready ({status})");
            }
            let ready = http
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!("the gateway did not become ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (the gateway drains and closes its store), SIGKILL after 15 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("the gateway stopped with {status}");
                }
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the gateway did not stop within 15 s of SIGTERM; killed");
            }
        }
        Ok(())
    }
}
