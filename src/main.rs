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
use secutix_sync::targets::passculture::contremarque::{Action, BoxOffice, Lang, exit_code};

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
    /// Run one availability poll and print what changed and the calls spent; exit 0 on success, 1 on failure.
    Availability {
        /// Fetch only this product now (its performances on sale), whatever its tier.
        #[arg(long, value_name = "ID")]
        product: Option<i64>,
    },
    /// pass Culture contremarques (booking tokens) at the box office.
    ///
    /// Exit codes: 0 done, 1 other error, 2 configuration problem, 3 not found, 4 already used,
    /// 5 booking cancelled, 6 already reimbursed, 7 too early to validate, 8 not used (keep),
    /// 9 too late to cancel, 10 refused for another reason, 11 API key refused,
    /// 12 pass Culture unavailable (try again), 13 not a contremarque code.
    Passculture {
        #[command(subcommand)]
        action: PassCultureCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PassCultureCommand {
    /// Show a booking: offer, date, tariff, quantity, status, name.
    Booking(TokenArgs),
    /// Mark the booking used: the young person came in.
    Use(TokenArgs),
    /// Undo a use made by mistake.
    Keep(TokenArgs),
    /// Cancel the booking (a venue can until 48 h before the event).
    Cancel(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The contremarque code, e.g. ABC123.
    token: String,
    /// The passculture target to use when the configuration has several.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Language of the messages: fr or en.
    #[arg(long, default_value = "fr")]
    lang: Lang,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
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
        Command::Availability { product } => availability_command(&sources, product),
        Command::Passculture { action } => passculture_command(&sources, action),
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

fn availability_command(sources: &Sources, product: Option<i64>) -> anyhow::Result<ExitCode> {
    use secutix_sync::availability::{PollOptions, Poller};
    let config = load_config(sources)?.config;
    if !config.availability.enabled {
        eprintln!("note: availability.enabled = false: the daemon does not poll; running this one poll anyway");
    }
    let store = open_store(&config)?;
    let poller = Poller::from_config(&config, store.clone()).context("while preparing the availability poll")?;
    let rt = runtime()?;
    let result = rt.block_on(poller.poll_once(PollOptions { product }));
    store.flush()?;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("availability poll failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let budget = config.availability.monthly_call_budget;
    println!(
        "{} SecuTix call(s) spent (allowed {}): asked about {} product(s), {} reported changed, {} fetched",
        report.calls,
        report.allowance,
        report.asked,
        report.reported,
        report.fetched.len()
    );
    if report.changes.is_empty() {
        println!("no indicator changed");
    }
    for c in &report.changes {
        let perf = c
            .performance_id
            .map_or_else(|| "(product)".to_owned(), |p| format!("performance {p}"));
        println!(
            "  product {} {perf}: {} -> {}",
            c.product_id,
            c.before.as_str(),
            c.after.as_str()
        );
    }
    if !report.dirty.is_empty() {
        println!(
            "{} product(s) marked dirty: the daemon's next plan sends their entries to the targets",
            report.dirty.len()
        );
    }
    if report.unrecognised > 0 {
        println!(
            "{} record(s) had a level this version does not know: left as they were (see the warnings above)",
            report.unrecognised
        );
    }
    if !report.stale.is_empty() {
        println!(
            "{} product(s) could not be refreshed and keep their previous indicator, marked stale: {:?}",
            report.stale.len(),
            report.stale
        );
    }
    println!(
        "{} product(s) still pending; {} SecuTix calls this month of a budget of {budget} ({} left for availability)",
        report.pending, report.month_calls, report.budget_left
    );
    println!("next poll in {}", secutix_sync::secutix::human(report.next_poll_in));
    match &report.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("availability poll failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn passculture_command(sources: &Sources, command: PassCultureCommand) -> anyhow::Result<ExitCode> {
    let (action, args) = match command {
        PassCultureCommand::Booking(a) => (Action::Booking, a),
        PassCultureCommand::Use(a) => (Action::Use, a),
        PassCultureCommand::Keep(a) => (Action::Keep, a),
        PassCultureCommand::Cancel(a) => (Action::Cancel, a),
    };
    let config_problem = |message: String| {
        eprintln!("{message}");
        Ok(ExitCode::from(exit_code::CONFIG))
    };
    let config = match load_config(sources) {
        Ok(l) => l.config,
        Err(e) => return config_problem(format!("{e:#}")),
    };
    let candidates: Vec<&secutix_sync::config::TargetConfig> = config
        .targets
        .iter()
        .filter(|t| t.kind == secutix_sync::config::TargetKind::Passculture)
        .collect();
    let names = || {
        candidates
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match &args.target {
        Some(name) => match candidates.iter().find(|t| &t.name == name) {
            Some(t) => *t,
            None => {
                return config_problem(format!(
                    "no passculture target named {name:?} in the configuration (passculture targets: {})",
                    names()
                ));
            }
        },
        None => match candidates.as_slice() {
            [one] => *one,
            [] => {
                return config_problem(
                    "the configuration has no [[targets]] with kind = \"passculture\"; see docs/passculture.md".into(),
                );
            }
            _ => {
                return config_problem(format!(
                    "several passculture targets ({}): choose one with --target",
                    names()
                ));
            }
        },
    };
    let Some(settings) = target.passculture.as_ref() else {
        return config_problem(format!("target {} has no [targets.passculture] table", target.name));
    };
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::Europe::Paris);
    let office = match BoxOffice::new(&target.name, settings) {
        Ok(o) => o,
        Err(e) => return config_problem(e.to_string()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let lang = args.lang;
    let token = args.token.trim().to_ascii_uppercase();
    let outcome = rt.block_on(async {
        match action {
            Action::Booking => office.booking(&args.token).await.map(|b| {
                let text = b.render(&token, lang, tz);
                (serde_json::json!({"ok": true, "action": "booking", "booking": b}), text)
            }),
            _ => {
                let done = match action {
                    Action::Use => office.use_(&args.token).await,
                    Action::Keep => office.keep(&args.token).await,
                    _ => office.cancel(&args.token).await,
                };
                done.map(|d| {
                    let text = d.message(lang);
                    (
                        serde_json::json!({"ok": true, "action": action, "token": d.token}),
                        text,
                    )
                })
            }
        }
    });
    match outcome {
        Ok((json, text)) => {
            if args.json {
                println!("{json}");
            } else {
                println!("{text}");
            }
            Ok(ExitCode::from(exit_code::OK))
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "action": action, "error": e, "message": e.message(lang)})
                );
            } else {
                println!("{}", e.message(lang));
            }
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
