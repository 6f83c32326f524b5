//! `registry-mocks`: the five mock registries of the example deployment on the
//! ports `deploy/gateway.example.toml` points at, until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use registry_mocks::{MockKind, MockSetOptions, PrimeroAuth};

#[derive(Parser)]
#[command(
    name = "registry-mocks",
    version,
    about = "Mock registries: OpenCRVS 2.x and 1.x, FHIR exchange, Primero v2, Examplia over X-Road"
)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port of the first mock; the others follow (0 picks free ports).
    #[arg(long, default_value_t = 7101)]
    port_base: u16,
    /// Comma-separated subset, e.g. opencrvs,examplia-crvs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Primero login mode: native (Basic or session, as v2.15) or idp-bearer.
    #[arg(long, default_value = "native")]
    primero_auth: String,
    /// Ignore Examplia's Sunday maintenance window.
    #[arg(long)]
    no_maintenance: bool,
    /// The OpenCRVS mocks' location list, a FHIR Bundle of Locations (they
    /// serve it and check location ids against it).
    #[arg(long, default_value = "deploy/locations/examplia-opencrvs.json")]
    opencrvs_locations: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let kinds = if cli.only.is_empty() {
        MockKind::ALL.to_vec()
    } else {
        cli.only
            .iter()
            .map(|n| MockKind::from_name(n).with_context(|| format!("no mock registry named {n}")))
            .collect::<anyhow::Result<_>>()?
    };
    let options = MockSetOptions {
        host: cli.host,
        port_base: cli.port_base,
        kinds,
        primero_auth: PrimeroAuth::from_name(&cli.primero_auth)
            .with_context(|| format!("unknown Primero auth mode {}", cli.primero_auth))?,
        no_maintenance: cli.no_maintenance,
        opencrvs_locations: Some(
            registry_mocks::Locations::from_fhir_file(&cli.opencrvs_locations)
                .map_err(anyhow::Error::msg)?,
        ),
        ..MockSetOptions::default()
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = registry_mocks::start_set(&options).await?;
        for m in &running {
            println!("{}", m.describe());
        }
        println!(
            "admin: GET /_mock/arrivals | POST /_mock/faults | DELETE /_mock/faults | GET /_mock/records"
        );
        registry_mocks::stop_signal().await;
        for m in running {
            m.stop().await;
        }
        Ok(())
    })
}
