//! The `registry-gateway` command line. Parsing only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use registry_gateway::config::{Config, Overrides};
use registry_gateway::schema::SchemaRegistry;
use registry_gateway::{server, telemetry};

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
    /// NOT YET BUILT: will run the gateway with local mock registries and sample
    /// records (delivery work). Today it only says so and exits with status 2;
    /// use `serve --config deploy/gateway.example.toml`.
    Demo,
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
        Command::Demo => {
            eprintln!(
                "registry-gateway demo is not built yet (it comes with the delivery engine).\n\
                 Run the gateway on the example config instead:\n  \
                 registry-gateway serve --config deploy/gateway.example.toml"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(path: &std::path::Path) -> ExitCode {
    let mut problems = Vec::new();
    if let Err(e) = Config::load(path, &Overrides::default()) {
        problems.extend(e.errors.iter().map(|p| format!("{}: {p}", path.display())));
    }
    if let Err(errors) = SchemaRegistry::load() {
        problems.extend(errors.iter().map(ToString::to_string));
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
