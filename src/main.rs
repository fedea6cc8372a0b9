//! The `secutix-sync` binary: clap subcommands, each calling a `…_command` function.
//! `anyhow` lives here and nowhere deeper.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secutix_sync::config::{Config, ConfigError, Loaded, Sources};
use secutix_sync::import::{ImportError, ImportOptions, run_import};
use secutix_sync::secutix::Client;
use secutix_sync::store::{ImportOutcome, ImportReport, Store};

#[derive(Debug, Parser)]
#[command(
    name = "secutix-sync",
    version,
    about = "Keeps a venue's website CMS in step with its SecuTix catalogue"
)]
struct Cli {
    /// Configuration file (default: /etc/secutix-sync/config.toml, read if present).
    #[arg(long, global = true, env = "SECUTIX_SYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the configuration: prints every problem with its key; exit 2 when there is one.
    ValidateConfig,
    /// Run one catalogue import and print the counts; exit 0 on success, 1 on failure.
    Import {
        /// Accept a catalogue the shrink guard would refuse, and re-read an identical response.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let sources = Sources {
        file: cli.config.clone(),
        ..Sources::default()
    };
    let result = match cli.command {
        Command::ValidateConfig => Ok(validate_config_command(&sources)),
        Command::Import { force } => import_command(&sources, force),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECUTIX_SYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the configuration and logs unknown keys as warnings.
fn load_config(sources: &Sources) -> anyhow::Result<Loaded> {
    let loaded = Config::load(sources)?;
    for p in &loaded.unknown_keys {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
    Ok(loaded)
}

fn validate_config_command(sources: &Sources) -> ExitCode {
    match Config::load(sources) {
        Ok(loaded) => {
            let c = &loaded.config;
            let file = loaded
                .file
                .as_ref()
                .map_or("(none: defaults and environment only)".to_owned(), |f| {
                    f.display().to_string()
                });
            println!("configuration file: {file}");
            println!(
                "institution {} on {} via {:?}",
                c.secutix.institution,
                c.secutix.base_url(),
                c.secutix.transport
            );
            println!("store: {}", c.store.path.display());
            if loaded.unknown_keys.is_empty() {
                println!("configuration OK");
                ExitCode::SUCCESS
            } else {
                for p in &loaded.unknown_keys {
                    println!("problem: {p}");
                }
                println!("{} problem(s)", loaded.unknown_keys.len());
                ExitCode::from(2)
            }
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                println!("problem: {p}");
            }
            println!("{} problem(s)", problems.len());
            ExitCode::from(2)
        }
        Err(e) => {
            println!("problem: {e}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.store.path).with_context(|| {
        format!(
            "while creating the store folder {} (store.path)",
            config.store.path.display()
        )
    })?;
    Ok(Store::open(
        &config.store.path,
        config.store.cache_mib,
        secutix_sync::clock::system(),
    )?)
}

fn import_command(sources: &Sources, force: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(sources)?.config;
    let store = open_store(&config)?;
    let client = Client::new(&config.secutix, Arc::new(store.clone()), store.clock().clone())?
        .with_spool_dir(config.store.path.clone());
    let rt = runtime()?;
    let result = rt.block_on(run_import(&client, &store, &config.catalogue, ImportOptions { force }));
    store.flush()?;
    match result {
        Ok(report) => {
            print_import(&report);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("import failed: {e}");
            if matches!(e, ImportError::Refused(_)) {
                eprintln!("nothing was changed; the previous catalogue stays in force");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn print_import(r: &ImportReport) {
    let c = &r.counts;
    match r.outcome {
        ImportOutcome::Unchanged => println!(
            "catalogue unchanged: SecuTix sent the same {} bytes as last time ({} products in force)",
            r.bytes, c.products
        ),
        _ => {
            println!(
                "import #{} done in {:.1}s: generation {}",
                r.id,
                (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0,
                r.generation.unwrap_or(0)
            );
            println!(
                "  products {} (added {}, changed {}, unchanged {}, removed {}), performances {}, seasons {}",
                c.products, c.added, c.changed, c.unchanged, c.removed, c.performances, c.seasons
            );
            println!(
                "  skipped by filters {}, listed in two seasons {}, past performances kept {}",
                c.skipped, c.duplicates, c.retained_performances
            );
        }
    }
    println!("  {} bytes received in {} SecuTix call(s)", r.bytes, r.calls);
}
