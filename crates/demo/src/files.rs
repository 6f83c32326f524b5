//! The sample deployment, embedded: the example config, its mappings and
//! policies, and the sample records. Written into the demo's folder at start so
//! the gateway reads them exactly as an operator's files.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

static MAPPINGS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../mappings");
static POLICIES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../policies");
static LOCATIONS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../deploy/locations");
const EXAMPLE_CONFIG: &str = include_str!("../../../deploy/gateway.example.toml");

/// One sample record: the conformance case it comes from, its source, its bytes.
pub struct Sample {
    pub case: &'static str,
    pub source: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

/// Write `deploy/gateway.example.toml` (with the location lists it names),
/// `mappings/` and `policies/` under
/// `root` (the config names its folders relative to itself: `../mappings`).
/// Returns the config's path.
pub fn write_deployment(root: &Path) -> std::io::Result<PathBuf> {
    let deploy = root.join("deploy");
    std::fs::create_dir_all(&deploy)?;
    let config = deploy.join("gateway.example.toml");
    std::fs::write(&config, EXAMPLE_CONFIG)?;
    write_dir(&LOCATIONS, &deploy.join("locations"))?;
    write_dir(&MAPPINGS, &root.join("mappings"))?;
    write_dir(&POLICIES, &root.join("policies"))?;
    Ok(config)
}

fn write_dir(dir: &Dir<'_>, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    // `extract` keeps the paths relative to the embedded root.
    dir.extract(to)
}
