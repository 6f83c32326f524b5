//! The `registry-gateway` command line. Parsing only; the work is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use registry_gateway::config::{Config, Overrides};
use registry_gateway::pipeline::Pipeline;
use registry_gateway::{server, telemetry, translate};

// Parsing, mapping and encoding allocate many small values per record; glibc's
// allocator spent a fifth of a translation's time on them (docs/perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    ///
    /// With --jsonl --route ROUTE: bulk translation. Reads one record per line
    /// on stdin and writes line N of stdout for line N of stdin: JSON routes
    /// as compact JSON, XML routes as the document in one JSON string (`jq -j .`
    /// gives back exactly the bytes --out writes). An invalid record (reported
    /// on stderr as `line N: invalid: POINTER [code]`) or a denied route
    /// (`line N: ROUTE denied: [rule] reason`) leaves its output line empty.
    /// Never prints a value. Exit 0 if every record is valid (denials are
    /// decisions, as without --jsonl), 2 if any is invalid, 1 on an error.
    #[command(verbatim_doc_comment)]
    Translate {
        #[arg(long)]
        config: PathBuf,
        /// A source name from the config: canonical, primero, fhir-r4, ...
        #[arg(long)]
        source: String,
        #[arg(long, required_unless_present = "jsonl", conflicts_with = "jsonl")]
        input: Option<PathBuf>,
        #[arg(long, required_unless_present = "jsonl", conflicts_with = "jsonl")]
        out: Option<PathBuf>,
        /// Bulk: one record per line on stdin, one output per line on stdout.
        #[arg(long, requires = "route")]
        jsonl: bool,
        /// The route to translate through (with --jsonl).
        #[arg(long, requires = "jsonl")]
        route: Option<String>,
        /// Worker threads for --jsonl (default: one per core).
        #[arg(long, requires = "jsonl")]
        threads: Option<usize>,
        /// Print a progress line on stderr every 5 s (default when stderr is a terminal).
        #[arg(long, requires = "jsonl")]
        progress: bool,
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
    /// The exchange log: verify what an auditor exported, make a signing key.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Offline: `--bundle FILE` checks every entry of an exported bundle
    /// against its signed checkpoint and names the first that does not hold;
    /// `--checkpoint OLD --checkpoint NEW --proof FILE` checks that NEW
    /// extends OLD. Exit 0 only when everything verifies.
    Verify {
        /// The log's verifier key (the line GET /v1/audit/public-key serves).
        #[arg(long)]
        public_key: PathBuf,
        /// A bundle from GET /v1/audit/bundle.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Two signed checkpoints, older first.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// The consistency proof between them (GET /v1/audit/proof/consistency).
        #[arg(long)]
        proof: Option<PathBuf>,
    },
    /// Make a checkpoint signing key: writes it to OUT (mode 0600; not over an
    /// existing file) and prints the verifier key to give to auditors.
    Keygen {
        /// The key name (the config's audit.key_name, e.g. the log's origin).
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
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
            jsonl: _,
            route,
            threads,
            progress,
            timestamp,
        } => {
            return match (input, out, route) {
                (Some(input), Some(out), None) => {
                    run_translate(&config, &source, &input, &out, timestamp.as_deref())
                }
                (None, None, Some(route)) => {
                    let bulk = BulkArgs {
                        threads,
                        progress,
                        timestamp,
                    };
                    run_translate_jsonl(&config, &source, &route, bulk)
                }
                // clap's `requires` and `conflicts_with` leave no other case.
                _ => ExitCode::FAILURE,
            };
        }
        Command::Manifest { config, format } => manifest(&config, format),
        Command::Conformance { dir, config, bless } => return conformance(&dir, &config, bless),
        Command::DeadLetters {
            command,
            gateway,
            token,
        } => dead_letters(command, &gateway, token.as_deref()),
        Command::Audit { command } => audit(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn audit(command: AuditCommand) -> anyhow::Result<()> {
    use registry_gateway::audit::bundle;
    use registry_gateway::audit::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
    use registry_gateway::audit::merkle;

    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    match command {
        AuditCommand::Keygen { name, out } => {
            let signer = NoteSigner::from_seed(&name, &rand::random())?;
            write_private(&out, &format!("{}\n", signer.to_private_line()))?;
            println!("{}", signer.verifier().to_line());
            Ok(())
        }
        AuditCommand::Verify {
            public_key,
            bundle: Some(file),
            checkpoints,
            proof: None,
        } if checkpoints.is_empty() => {
            let verifier = NoteVerifier::parse(&read(&public_key)?).context("--public-key")?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let ok = bundle::verify(&bytes, &verifier)
                .with_context(|| format!("{} does not verify", file.display()))?;
            println!(
                "{}: entries {}..{} verify against the checkpoint of {} (size {})",
                file.display(),
                ok.start,
                ok.end,
                ok.checkpoint.origin,
                ok.checkpoint.size
            );
            Ok(())
        }
        AuditCommand::Verify {
            public_key,
            bundle: None,
            checkpoints,
            proof: Some(proof),
        } if checkpoints.len() == 2 => {
            let verifier = NoteVerifier::parse(&read(&public_key)?).context("--public-key")?;
            let open = |path: &Path| -> anyhow::Result<Checkpoint> {
                Checkpoint::open(&read(path)?, &verifier)
                    .with_context(|| format!("{} does not verify", path.display()))
            };
            let (old, new) = (open(&checkpoints[0])?, open(&checkpoints[1])?);
            anyhow::ensure!(
                old.origin == new.origin,
                "the checkpoints are of different logs"
            );
            let proof: serde_json::Value =
                serde_json::from_str(&read(&proof)?).context("--proof is not JSON")?;
            anyhow::ensure!(
                proof["first"] == old.size && proof["second"] == new.size,
                "the proof is not between sizes {} and {}",
                old.size,
                new.size
            );
            let hashes = proof["hashes"]
                .as_array()
                .context("the proof has no hashes")?
                .iter()
                .map(|h| {
                    use base64::Engine as _;
                    h.as_str()
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .and_then(|b| merkle::Hash::try_from(b).ok())
                        .context("a proof hash is not 32 bytes of base64")
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes)
                .context("the newer checkpoint does not extend the older one")?;
            println!(
                "the checkpoint of size {} extends the checkpoint of size {}",
                new.size, old.size
            );
            Ok(())
        }
        AuditCommand::Verify { .. } => anyhow::bail!(
            "use either --bundle FILE, or --checkpoint OLD --checkpoint NEW --proof FILE (with --public-key FILE)"
        ),
    }
}

/// A secret file: created here, readable by its owner only, never over another file.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn config_check(path: &Path) -> ExitCode {
    let mut problems = Vec::new();
    match Config::load(path, &Overrides::default()) {
        Err(e) => problems.extend(e.errors.iter().map(|p| format!("{}: {p}", path.display()))),
        // The same loading `serve` does: schemas, mappings, policies, and the
        // check that no mapping reads a category its route's policy refuses;
        // then the places mapping files name, against the registries' lists.
        Ok(config) => {
            // Loads, but should change before real use: said, not failed.
            for w in &config.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            // `serve` needs a KEK (docs/retention.md).
            if config.retention.is_none() {
                problems.push(format!(
                    "{}: retention.kek: a [retention] section with a KEK is required to serve",
                    path.display()
                ));
            }
            match Pipeline::load(Arc::new(config)) {
                Err(e) => problems.push(e.to_string()),
                Ok(pipeline) => problems.extend(pipeline.unresolved_mapping_codes()),
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
    Ok(Pipeline::load(Arc::new(config))?)
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
        let timestamp = parse_timestamp(timestamp)?;
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

struct BulkArgs {
    threads: Option<usize>,
    progress: bool,
    timestamp: Option<String>,
}

fn run_translate_jsonl(config: &Path, source: &str, route: &str, args: BulkArgs) -> ExitCode {
    use std::io::IsTerminal;

    use registry_gateway::bulk_translate;

    let result = (|| -> anyhow::Result<bulk_translate::Summary> {
        let pipeline = pipeline(config)?;
        let timestamp = parse_timestamp(args.timestamp.as_deref())?;
        let stderr = std::io::stderr();
        let options = bulk_translate::Options {
            threads: args.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            progress: (args.progress || stderr.is_terminal())
                .then_some(std::time::Duration::from_secs(5)),
            timestamp,
        };
        let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let err = std::io::LineWriter::new(stderr.lock());
        let input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        Ok(bulk_translate::run(
            &pipeline, source, route, input, out, err, &options,
        )?)
    })();
    match result {
        Ok(summary) if summary.invalid > 0 => {
            eprintln!(
                "{} of {} line(s) invalid, {} translated, {} denied",
                summary.invalid, summary.lines, summary.translated, summary.denied
            );
            ExitCode::from(2)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_timestamp(
    timestamp: Option<&str>,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    timestamp
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()))
        .transpose()
        .context("--timestamp must be an RFC 3339 date-time")
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
    for w in &config.warnings {
        // The path and the advice only: never the value.
        tracing::warn!(setting = %w.path, "{}", w.message);
    }
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
