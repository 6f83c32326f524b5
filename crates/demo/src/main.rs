//! `registry-gateway-demo` (`cargo demo` in the repository): the whole flow on
//! one machine, no setup. Starts the mock registries on the ports the example
//! config expects (127.0.0.1:7101-7105), runs the real `registry-gateway serve`
//! on a fresh embedded store, pushes the sample records (the accepted
//! conformance cases, embedded), follows them to the registries' receipts over
//! the gateway's own API, then keeps serving until Ctrl-C.

mod files;
mod follow;
mod gateway;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use registry_mocks::MockSetOptions;

use crate::gateway::Gateway;

#[derive(Parser)]
#[command(
    name = "registry-gateway-demo",
    version,
    about = "Mock registries, the gateway, and sample records followed to their receipts"
)]
struct Cli {
    /// Folder for the demo's config files and store; emptied at start.
    #[arg(long, default_value = "registry-gateway-demo-data")]
    data_dir: PathBuf,
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The registry-gateway binary (default: $REGISTRY_GATEWAY_BIN, beside this program, or on PATH).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Stop once every sample has settled instead of serving; exit 0 only if
    /// every sample was accepted, nothing is pending, and every record with a
    /// route has at least one registry's receipt (dead letters are listed).
    #[arg(long)]
    exit_when_done: bool,
    /// How long to wait for deliveries to settle.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false): the demo ran, but not every sample reached a receipt.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let binary = gateway::locate(cli.gateway.as_deref())?;
    if cli.data_dir.exists() {
        std::fs::remove_dir_all(&cli.data_dir)
            .with_context(|| format!("cannot empty {}", cli.data_dir.display()))?;
    }
    let config = files::write_deployment(&cli.data_dir).with_context(|| {
        format!(
            "cannot write the sample deployment to {}",
            cli.data_dir.display()
        )
    })?;
    // The OpenCRVS mocks know Examplia's places, as the gateway does.
    let locations = config
        .parent()
        .map(|deploy| deploy.join("locations/examplia-opencrvs.json"))
        .and_then(|file| registry_mocks::Locations::from_fhir_file(&file).ok());
    let mocks = registry_mocks::start_set(&MockSetOptions {
        // The demo runs at any hour: Examplia's Sunday maintenance would hold it.
        no_maintenance: true,
        opencrvs_locations: locations,
        ..MockSetOptions::default()
    })
    .await
    .context("the mock registries cannot start (is another demo or registry-mocks running?)")?;
    let result = with_gateway(&cli, &binary, &config).await;
    for m in mocks {
        m.stop().await;
    }
    result
}

async fn with_gateway(
    cli: &Cli,
    binary: &std::path::Path,
    config: &std::path::Path,
) -> anyhow::Result<bool> {
    let store = cli.data_dir.join("store");
    let gateway = Gateway::start(binary, config, &store, &cli.listen).await?;
    println!("gateway binary: {}", binary.display());
    println!(
        "mock registries on 127.0.0.1:7101-7105 (OpenCRVS 2.x, OpenCRVS 1.x, FHIR R4, Primero, Examplia X-Road)"
    );
    let outcome = follow_samples(cli, &gateway.base).await;
    if outcome.is_ok() && !cli.exit_when_done {
        println!("\nserving until Ctrl-C");
        registry_mocks::stop_signal().await;
    }
    gateway.stop().await?;
    outcome
}

async fn follow_samples(cli: &Cli, base: &str) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let samples = files::SAMPLES;
    println!("\npushing {} sample records ...", samples.len());
    let pushed = follow::push(&http, base, samples).await;
    let accepted: Vec<&follow::Pushed> = pushed.iter().filter(|p| p.status == 202).collect();
    let routes: usize = pushed.iter().map(|p| p.delivering).sum();
    let denied: usize = pushed.iter().map(|p| p.denied).sum();
    println!(
        "accepted {} of {}: {routes} deliveries to make, {denied} routes denied by policy\n",
        accepted.len(),
        pushed.len()
    );
    for p in pushed.iter().filter(|p| p.status != 202) {
        println!("  not accepted: {} (HTTP {})", p.case, p.status);
    }
    let counts = follow::wait_settled(&http, base, Duration::from_secs(cli.settle_secs)).await?;
    let pending: i64 = counts.values().map(|n| n.pending).sum();
    let dead: i64 = counts.values().map(|n| n.dead).sum();

    println!(
        "\nreceipts (GET {base}/v1/records/<id>, Authorization: Bearer {}):",
        follow::AGENCY_TOKEN
    );
    let mut with_receipt = 0;
    let mut nothing_to_send = 0;
    for (shown, p) in accepted.iter().enumerate() {
        let Some(id) = &p.id else { continue };
        let routes = follow::receipts(&http, base, id).await?;
        if routes.is_empty() {
            // A consent record: it changes what may be sent, and is sent nowhere.
            nothing_to_send += 1;
        } else if routes
            .iter()
            .any(|(_, status, reference)| status == "delivered" && reference.is_some())
        {
            with_receipt += 1;
        } else {
            let statuses: Vec<String> = routes.iter().map(|(r, s, _)| format!("{r} {s}")).collect();
            println!("  no receipt: {} ({})", p.case, statuses.join(", "));
        }
        if shown < 6 {
            for (route, status, reference) in &routes {
                let reference = reference.as_deref().unwrap_or("-");
                println!("  {:<40} {route:<42} {status:<10} {reference}", p.case);
            }
        }
    }
    let first = accepted
        .iter()
        .find_map(|p| p.id.clone())
        .unwrap_or_default();
    println!("\nlook at:");
    println!("  {base}/console/   (the console in a browser; sign in with a token:)");
    for (token, views) in follow::CONSOLE_TOKENS {
        println!("      {token:<22} {views}");
    }
    println!("      the record to look up: {first}");
    println!("  {base}/v1/records/{first}   (status and receipts)");
    println!(
        "  {base}/metrics   (gateway_deliveries_total, gateway_delivery_seconds; token demo-admin-token)"
    );
    let dead_note = if dead > 0 {
        format!(": {dead} now")
    } else {
        String::new()
    };
    println!(
        "  {base}/v1/admin/dead-letters   (Bearer {}){dead_note}",
        follow::ADMIN_TOKEN
    );
    println!("  http://127.0.0.1:7101/_mock/arrivals   (what the OpenCRVS mock received)");
    println!(
        "\nsummary: {} of {} samples accepted; {with_receipt} with a registry's receipt, {nothing_to_send} consent records (sent nowhere); {pending} deliveries pending, {dead} dead letters",
        accepted.len(),
        samples.len()
    );
    Ok(accepted.len() == samples.len()
        && pending == 0
        && with_receipt + nothing_to_send == accepted.len())
}
