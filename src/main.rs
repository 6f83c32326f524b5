//! The `registry-gateway` command line. Parsing only; the work is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use registry_gateway::config::{Config, Overrides};
use registry_gateway::pipeline::Pipeline;
use registry_gateway::{server, telemetry, translate};

#[derive(Parser)]
#[command(
    name = "registry-gateway",
    version,
    about = "Interoperability gateway between humanitarian agencies and the registries of a State"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Directory of the embedded store (overrides server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// postgres:// URL (overrides server.database_url).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run one record through validation, mapping and every route, without
    /// delivering. Writes OUT/<route>.<ext> (the exact bytes each registry would
    /// get) and OUT/decisions.json. Exit 0 if the record is valid, 2 if not.
    Translate {
        #[arg(long)]
        config: PathBuf,
        /// A source name from the config: canonical, primero, fhir-r4, ...
        #[arg(long)]
        source: String,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Injected timestamp (RFC 3339); default: the record's own notification or decision time.
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// The data-sharing manifest: per route, every field sent, from where, how.
    Manifest {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: ManifestFormat,
    },
    /// Run the conformance cases in DIR (conformance/ in this repository).
    Conformance {
        dir: PathBuf,
        #[arg(long, default_value = "deploy/gateway.example.toml")]
        config: PathBuf,
        /// Write the current outputs as the expected ones (review the diff!).
        #[arg(long)]
        bless: bool,
    },
    /// Run the mock registries (OpenCRVS 2.x and 1.x, FHIR exchange, Primero v2,
    /// Examplia over X-Road) on the ports the example config points at.
    MockRegistries {
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port of the first mock; the others follow (0 picks free ports).
        #[arg(long, default_value_t = 7101)]
        port_base: u16,
        /// Comma-separated subset, e.g. opencrvs,examplia-crvs.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Primero login mode: jwt-header, session, basic or idp-bearer.
        #[arg(long, default_value = "jwt-header")]
        primero_auth: String,
        /// Ignore Examplia's Sunday maintenance window.
        #[arg(long)]
        no_maintenance: bool,
    },
    /// Run the whole flow locally: mock registries, the gateway on a fresh
    /// embedded store, the sample records pushed and followed to their
    /// receipts; then keep serving until Ctrl-C.
    Demo {
        #[arg(long, default_value = "deploy/gateway.example.toml")]
        config: PathBuf,
        /// Sample records: every case expected to be accepted.
        #[arg(long, default_value = "conformance/cases")]
        cases: PathBuf,
        /// Address of the gateway (overrides server.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Store directory; emptied at start.
        #[arg(long, default_value = "registry-gateway-demo-data")]
        data_dir: PathBuf,
    },
    /// List or replay dead letters through a running gateway's admin API.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLetterCommand,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
        gateway: String,
        /// An admin bearer token.
        #[arg(
            long,
            env = "REGISTRY_GATEWAY_ADMIN_TOKEN",
            hide_env_values = true,
            global = true
        )]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Print dead letters, oldest first (JSON).
    List {
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Make dead letters due again; they leave in their original order per child.
    Replay {
        /// Every dead letter of this destination.
        #[arg(long)]
        destination: Option<String>,
        /// These delivery ids.
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ManifestFormat {
    Json,
    Md,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load the config and schemas; print every problem; exit 0 only when all is valid.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            database_url,
        } => serve(
            config,
            Overrides {
                listen,
                data_dir,
                database_url,
            },
        ),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => return config_check(&config),
        Command::Translate {
            config,
            source,
            input,
            out,
            timestamp,
        } => return run_translate(&config, &source, &input, &out, timestamp.as_deref()),
        Command::Manifest { config, format } => manifest(&config, format),
        Command::Conformance { dir, config, bless } => return conformance(&dir, &config, bless),
        Command::MockRegistries {
            host,
            port_base,
            only,
            primero_auth,
            no_maintenance,
        } => mock_registries(host, port_base, &only, &primero_auth, no_maintenance),
        Command::DeadLetters {
            command,
            gateway,
            token,
        } => dead_letters(command, &gateway, token.as_deref()),
        Command::Demo {
            config,
            cases,
            listen,
            data_dir,
        } => demo(registry_gateway::demo::DemoOptions {
            config,
            cases,
            listen,
            data_dir,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(path: &Path) -> ExitCode {
    let mut problems = Vec::new();
    match Config::load(path, &Overrides::default()) {
        Err(e) => problems.extend(e.errors.iter().map(|p| format!("{}: {p}", path.display()))),
        // The same loading `serve` does: schemas, mappings, policies, and the
        // check that no mapping reads a category its route's policy refuses.
        Ok(config) => {
            if let Err(e) = server::load_pipeline(Arc::new(config)) {
                problems.push(e.to_string());
            }
        }
    }
    if problems.is_empty() {
        println!("{}: configuration is valid", path.display());
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

fn pipeline(config: &Path) -> anyhow::Result<Pipeline> {
    let config = Config::load(config, &Overrides::default())?;
    Ok(server::load_pipeline(Arc::new(config))?)
}

fn run_translate(
    config: &Path,
    source: &str,
    input: &Path,
    out: &Path,
    timestamp: Option<&str>,
) -> ExitCode {
    let result = (|| -> anyhow::Result<Result<translate::Translation, Vec<String>>> {
        let pipeline = pipeline(config)?;
        let timestamp = timestamp
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()))
            .transpose()
            .context("--timestamp must be an RFC 3339 date-time")?;
        let bytes =
            std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
        match translate::translate(&pipeline, source, &bytes, timestamp) {
            Ok(t) => Ok(Ok(t)),
            Err(translate::TranslateError::Invalid(violations)) => Ok(Err(violations
                .iter()
                .map(|v| format!("{} [{}] {}", display_pointer(&v.pointer), v.code, v.message))
                .collect())),
            Err(e) => Err(e.into()),
        }
    })();
    match result {
        Ok(Ok(translation)) => {
            if let Err(e) = write_outputs(out, &translation) {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
            for d in &translation.decisions {
                println!("{}: {} ({})", d.route, d.decision, d.reason);
            }
            ExitCode::SUCCESS
        }
        Ok(Err(problems)) => {
            eprintln!(
                "{}: invalid, {} problem(s):",
                input.display(),
                problems.len()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(document)"
    } else {
        pointer
    }
}

fn write_outputs(out: &Path, translation: &translate::Translation) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for file in &translation.files {
        let path = out.join(&file.name);
        std::fs::write(&path, &file.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn manifest(config: &Path, format: ManifestFormat) -> anyhow::Result<()> {
    let pipeline = pipeline(config)?;
    let manifest = registry_gateway::manifest::build(&pipeline);
    match format {
        ManifestFormat::Json => println!("{}", serde_json::to_string_pretty(&manifest)?),
        ManifestFormat::Md => print!("{}", registry_gateway::manifest::to_markdown(&manifest)),
    }
    Ok(())
}

fn conformance(dir: &Path, config: &Path, bless: bool) -> ExitCode {
    let results = pipeline(config).and_then(|p| {
        registry_gateway::conformance::run(&p, dir, bless).map_err(anyhow::Error::msg)
    });
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    for r in &results {
        println!(
            "{} {}  {}",
            if r.passed() { "ok  " } else { "FAIL" },
            r.name,
            r.description
        );
        for f in &r.failures {
            println!("       {f}");
        }
    }
    println!(
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn mock_registries(
    host: std::net::IpAddr,
    port_base: u16,
    only: &[String],
    primero_auth: &str,
    no_maintenance: bool,
) -> anyhow::Result<()> {
    use registry_gateway::mocks::{self, MockKind, MockSetOptions, PrimeroAuth};
    let kinds = if only.is_empty() {
        MockKind::ALL.to_vec()
    } else {
        only.iter()
            .map(|n| MockKind::from_name(n).with_context(|| format!("no mock registry named {n}")))
            .collect::<anyhow::Result<_>>()?
    };
    let options = MockSetOptions {
        host,
        port_base,
        kinds,
        primero_auth: PrimeroAuth::from_name(primero_auth)
            .with_context(|| format!("unknown Primero auth mode {primero_auth}"))?,
        no_maintenance,
        ..MockSetOptions::default()
    };
    telemetry::init_logging(registry_gateway::config::LogFormat::Text);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = mocks::start_set(&options).await?;
        for m in &running {
            println!("{}", m.describe());
        }
        println!("admin: GET /_mock/arrivals | POST /_mock/faults | DELETE /_mock/faults | GET /_mock/records");
        wait_for_stop_signal().await;
        for m in running {
            m.stop().await;
        }
        Ok(())
    })
}

fn demo(options: registry_gateway::demo::DemoOptions) -> anyhow::Result<()> {
    use registry_gateway::demo;
    telemetry::init_logging_at(registry_gateway::config::LogFormat::Text, "warn");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = demo::start(&options).await?;
        let base = format!("http://{}", running.gateway.local_addr);
        println!("registry-gateway listening on {base}");
        println!("mock registries:");
        for m in &running.mocks {
            println!("  {}", m.describe());
        }
        println!(
            "\npushing {} sample records from {} ...",
            running.samples.len(),
            options.cases.display()
        );
        let pushed = demo::push(&base, &running.samples).await;
        let accepted = pushed.iter().filter(|p| p.status == 202).count();
        let routes: usize = pushed.iter().map(|p| p.delivering).sum();
        let denied: usize = pushed.iter().map(|p| p.denied).sum();
        println!(
            "accepted {accepted} of {}: {routes} deliveries to make, {denied} routes denied by policy\n",
            pushed.len()
        );
        let limit = std::time::Duration::from_secs(120);
        let counts = demo::wait_settled(&running.gateway, limit, |counts| {
            let line: Vec<String> = counts
                .iter()
                .map(|(d, n)| {
                    let dead = if n[2] > 0 { format!(" ({} dead)", n[2]) } else { String::new() };
                    format!("{d} {}/{}{dead}", n[0], n.iter().sum::<i64>())
                })
                .collect();
            println!("delivered: {}", line.join(" | "));
        })
        .await;
        let dead: i64 = counts.iter().map(|(_, n)| n[2]).sum();
        println!("\nreceipts (GET {base}/v1/records/<id>, Authorization: Bearer demo-agency-token):");
        for p in pushed.iter().take(6) {
            let Some(id) = p.id.as_deref().and_then(registry_gateway::model::RecordId::parse) else {
                continue;
            };
            if let Ok(Some(status)) = running.gateway.store().record_status(id).await {
                for r in &status.routes {
                    let reference = r
                        .receipt
                        .as_ref()
                        .and_then(|v| v["reference"].as_str())
                        .unwrap_or("-");
                    println!("  {:<40} {:<42} {:<10} {reference}", p.case, r.route, r.status);
                }
            }
        }
        let first = pushed.iter().find_map(|p| p.id.clone()).unwrap_or_default();
        println!("\nlook at:");
        println!("  {base}/v1/records/{first}   (status and receipts)");
        println!("  {base}/metrics   (gateway_deliveries_total, gateway_delivery_seconds)");
        let dead_note = if dead > 0 { format!(": {dead} now") } else { String::new() };
        println!("  {base}/v1/admin/dead-letters   (Bearer demo-admin-token){dead_note}");
        println!("  http://127.0.0.1:7101/_mock/arrivals   (what the OpenCRVS mock received)");
        println!("\nserving until Ctrl-C");
        wait_for_stop_signal().await;
        running.gateway.shutdown().await?;
        for m in running.mocks {
            m.stop().await;
        }
        Ok(())
    })
}

fn dead_letters(
    command: DeadLetterCommand,
    gateway: &str,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let token =
        token.context("an admin token is needed: --token or REGISTRY_GATEWAY_ADMIN_TOKEN")?;
    let base = gateway.trim_end_matches('/');
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let request = match command {
            DeadLetterCommand::List { destination, limit } => {
                let mut query = vec![("limit", limit.to_string())];
                if let Some(d) = destination {
                    query.push(("destination", d));
                }
                client
                    .get(format!("{base}/v1/admin/dead-letters"))
                    .query(&query)
            }
            DeadLetterCommand::Replay { destination, ids } => {
                if destination.is_none() && ids.is_empty() {
                    anyhow::bail!("name --destination or at least one --id");
                }
                client
                    .post(format!("{base}/v1/admin/dead-letters/replay"))
                    .json(&serde_json::json!({"destination": destination, "ids": ids}))
            }
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {base}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("the gateway answered {status}: {body}");
        }
        println!("{body}");
        Ok(())
    })
}

fn serve(path: PathBuf, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load(&path, &overrides)?;
    telemetry::init_logging(config.server.log_format);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let gateway = server::start(config).await?;
        // One stable line on stdout: scripts and tests read the address from it.
        println!(
            "registry-gateway listening on http://{}",
            gateway.local_addr
        );
        wait_for_stop_signal().await;
        tracing::info!("stopping: finishing in-flight requests");
        gateway.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
