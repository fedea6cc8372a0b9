//! The `secutix-sync` binary: clap subcommands, each calling a `…_command` function.
//! `anyhow` lives here and nowhere deeper.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secutix_sync::availability::ProgressSink;
use secutix_sync::config::{Config, Loaded, Sources};
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
    ///
    /// While the daemon runs (it holds the store), the import is handed to it and waited for.
    Import {
        /// Accept a catalogue the shrink guard would refuse, and re-read an identical response.
        #[arg(long)]
        force: bool,
    },
    /// Run one availability poll and print what changed and the calls spent; exit 0 on success, 1 on failure.
    ///
    /// While the daemon runs (it holds the store), the poll is handed to it and waited for.
    Availability {
        /// Fetch only this product now (its performances on sale), whatever its tier.
        #[arg(long, value_name = "ID")]
        product: Option<i64>,
    },
    /// Run the service: scheduled imports, availability polls, push workers and the control API.
    ///
    /// Stop it with SIGTERM or SIGINT (work in flight gets daemon.shutdown_grace, the store is flushed,
    /// exit 0); SIGHUP reloads the configuration (an invalid one is refused and the old one stays).
    /// One daemon per store: a second one is refused. With --once: import, availability poll, push,
    /// then exit 0 when everything succeeded, 1 otherwise (for cron and tests).
    Run {
        /// One cycle (import, availability, push), then exit.
        #[arg(long)]
        once: bool,
        /// With --once: how long to wait for push retries before giving up (they stay in the outbox).
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
        push_wait: std::time::Duration,
    },
    /// Show the daemon's status: jobs, SecuTix calls against the budget, outboxes, dead letters.
    ///
    /// Asks the running daemon; when none answers, reads the store directly and says so.
    Status {
        /// Print the status document as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to resync (default: everything: import, availability, push).
    Resync {
        /// Only the catalogue import (and the plan that follows it).
        #[arg(long, group = "scope")]
        catalogue: bool,
        /// Only an availability poll.
        #[arg(long, group = "scope")]
        availability: bool,
        /// One product: fresh availability, then its entry re-sent to every target.
        #[arg(long, group = "scope", value_name = "ID")]
        product: Option<i64>,
        /// Rebuild every entry and send what the targets lack.
        #[arg(long, group = "scope")]
        push: bool,
        /// Re-send every entry to every target, changed or not.
        #[arg(long, group = "scope")]
        full_push: bool,
        /// With the import: bypass the shrink guard and re-read an identical catalogue.
        #[arg(long)]
        force: bool,
        /// Wait until the run is done and the targets have received everything.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this long (the daemon goes on).
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: std::time::Duration,
    },
    /// The entries: the documents the targets receive.
    Entries {
        #[command(subcommand)]
        action: EntriesCommand,
    },
    /// Check the SecuTix credentials (isCatalogServiceAlive) and every target's reachability.
    ///
    /// Uses the configuration file as it is on disk. Exit 0 when everything works, 1 otherwise.
    Check,
    /// Show what the store holds: generation, import history, SecuTix calls per service, the availability
    /// poller's bookkeeping, targets; or one product's record, availability and entry (JSON).
    ///
    /// Reads the store directly, so the daemon must not be running (use `status` and `entries show` then).
    /// Exit 0, or 1 when the store cannot be read.
    State {
        /// One product in detail (its id).
        #[arg(long, value_name = "ID")]
        product: Option<i64>,
        /// How many imports, polls and indicator changes to list.
        #[arg(long, default_value_t = 10)]
        limit: usize,
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
    /// Build the entries, queue what each target lacks, and send the outbox once; prints the counts.
    ///
    /// While a daemon runs (it holds the store), the daemon does it: `push` asks it (resync scope `push`)
    /// and follows it until the targets have everything; `--dry-run` prints the daemon's own plan. Without
    /// a daemon, it works on the store directly. Either way it says which.
    /// Exit codes: 0 everything due was delivered (or the dry run was printed), 1 the push could not run
    /// (store, no catalogue yet), 2 configuration problem (no such target, bad target settings),
    /// 3 some operations are still pending after a temporary failure (retried by the next push or the
    /// daemon), 4 some operations were moved to dead letters in this run (see `dlq list`).
    Push(PushArgs),
    /// The embedded demo: no SecuTix account, no configuration file.
    ///
    /// Starts the built-in SecuTix simulator on loopback (a generated venue; REST, or SOAP with --soap), a
    /// store in a temporary folder (or --dir), the files target writing into ./demo-output/ and the control
    /// API (default 127.0.0.1:8087, a free port when taken), then runs the daemon of `run` until Ctrl-C or
    /// SIGTERM (exit 0). It prints what to open and the commands to try in another terminal; they find the
    /// demo through the demo.toml it writes in its folder (--config or SECUTIX_SYNC_CONFIG).
    /// With --once: one cycle (import, availability poll, push into ./demo-output/), then exit 0 when
    /// everything succeeded, 1 otherwise.
    Demo(DemoArgs),
    /// Dead letters: operations a target refused for good or that failed too many times.
    ///
    /// Through the running daemon's control API when one answers (a replayed operation is sent at once),
    /// on the store directly otherwise; it says which.
    /// Exit codes: 0 done, 1 store failure, 2 configuration problem (no such target), 3 no such dead letter.
    Dlq {
        #[command(subcommand)]
        action: DlqCommand,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// One cycle (import, availability poll, push into ./demo-output/), then exit.
    #[arg(long)]
    once: bool,
    /// The simulator and the client speak SOAP (XML) instead of REST (JSON).
    #[arg(long)]
    soap: bool,
    /// Folder for the store, the demo configuration and the simulator's secret, kept after the demo
    /// (default: a temporary folder, removed when the demo stops).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Products in the simulated catalogue (each with 6 performances).
    #[arg(long, value_name = "N", default_value_t = secutix_sync::demo::DEFAULT_PRODUCTS as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    products: u64,
    /// Address of the control API (default 127.0.0.1:8087, or a free port when it is taken; port 0 = any
    /// free port). The demo's web server takes the next port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    /// Only this target (its `name` in [[targets]]); default: every enabled target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Print the plan (create / update / unpublish / delete per target) and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also wait up to this long for operations in back-off (e.g. "2m"); default: send what is due and stop.
    /// Through a daemon: how long to keep following operations the daemon retries.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    wait: std::time::Duration,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the dead letters, oldest first, with their last error.
    List {
        /// Only this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in the outbox: the running daemon sends them at once (else the next `push`).
    Replay {
        /// The dead letter's ID (from `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Every dead letter (of `--target`, or of every target).
        #[arg(long)]
        all: bool,
        /// The target of the dead letter(s).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Drop a dead letter: that version of the entry is not sent again (a later change of the entry is).
    Drop {
        /// The dead letter's ID (from `dlq list`).
        id: u64,
        /// The target of the dead letter.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
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

#[derive(Debug, Subcommand)]
enum EntriesCommand {
    /// One entry (by product id or external id) with its state on every target.
    Show {
        /// Product id (1234) or external id (secutix-1234).
        id: String,
        /// Print the whole document as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Entries with their sync state, filtered.
    List {
        /// Text in the external id, product code or title.
        #[arg(long, short)]
        query: Option<String>,
        /// Only this availability: available, almost_full, sold_out, not_on_sale, unknown.
        #[arg(long)]
        availability: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
    if !matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        restore_sigpipe();
    }
    let sources = Sources {
        file: cli.config.clone(),
        ..Sources::default()
    };
    // Logging follows [logging] when the configuration reads; the commands report a bad one themselves.
    let logging = Config::load_without_credentials(&sources)
        .ok()
        .map(|l| l.config.logging);
    secutix_sync::logging::init(logging.as_ref());
    let result = match cli.command {
        Command::ValidateConfig => Ok(validate_config_command(&sources)),
        Command::Import { force } => import_command(&sources, force),
        Command::Availability { product } => availability_command(&sources, product),
        Command::Run { once, push_wait } => run_command(&sources, once, push_wait),
        Command::Status { json } => status_command(&sources, json),
        Command::Resync {
            catalogue,
            availability,
            product,
            push,
            full_push,
            force,
            wait,
            timeout,
        } => {
            let scope = match (catalogue, availability, product, push, full_push) {
                (true, ..) => "catalogue".to_owned(),
                (_, true, ..) => "availability".to_owned(),
                (_, _, Some(id), ..) => format!("product:{id}"),
                (_, _, _, true, _) => "push".to_owned(),
                (.., true) => "push --full".to_owned(),
                _ => "all".to_owned(),
            };
            resync_command(&sources, scope, force, wait, timeout)
        }
        Command::Entries { action } => entries_command(&sources, action),
        Command::Check => check_command(&sources),
        Command::State { product, limit } => state_command(&sources, product, limit),
        Command::Passculture { action } => passculture_command(&sources, action),
        Command::Push(args) => push_command(&sources, args),
        Command::Dlq { action } => dlq_command(&sources, action),
        Command::Demo(args) => demo_command(&sources, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads the configuration, credentials included (for `run` and `check`), and logs unknown keys as warnings.
fn load_config(sources: &Sources) -> anyhow::Result<Loaded> {
    let loaded = Config::load(sources)?;
    for p in &loaded.unknown_keys {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
    Ok(loaded)
}

/// Loads the configuration without requiring credentials: for commands that read the store or ask the
/// running daemon. One that then calls SecuTix or a target checks its own with
/// [`Loaded::require_credentials`].
fn load_config_without_credentials(sources: &Sources) -> anyhow::Result<Loaded> {
    let loaded = Config::load_without_credentials(sources)?;
    for p in &loaded.unknown_keys {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
    Ok(loaded)
}

fn validate_config_command(sources: &Sources) -> ExitCode {
    let report = match Config::report(sources) {
        Ok(r) => r,
        Err(e) => {
            println!("problem: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", validation_text(&report));
    let problems = report.problems.len() + report.credentials.len() + report.unknown_keys.len();
    ExitCode::from(if problems == 0 { 0 } else { 2 })
}

/// What `validate-config` prints: where the configuration comes from, then every problem (type, value,
/// credentials, unknown keys) and warning at once, then the verdict.
fn validation_text(report: &secutix_sync::config::Report) -> String {
    use secutix_sync::config::DEFAULT_CONFIG_PATH;
    use secutix_sync::secutix::settings::Transport;
    use std::fmt::Write;
    let mut out = String::new();
    let _ = match &report.file {
        Some(f) => writeln!(out, "configuration file: {}", f.display()),
        None => writeln!(
            out,
            "configuration file: none read ({DEFAULT_CONFIG_PATH} does not exist; name one with --config): the \
             built-in defaults and SECUTIX_SYNC__ variables only"
        ),
    };
    let c = &report.config;
    if report.problems.is_empty() {
        let transport = match c.secutix.transport {
            Transport::Rest => "REST (JSON)",
            Transport::Soap => "SOAP (XML)",
        };
        let _ = writeln!(
            out,
            "institution {} on {} over {transport}",
            c.secutix.institution,
            secutix_sync::http::redact_credentials(&c.secutix.base_url())
        );
        let _ = writeln!(out, "store: {}", c.store.path.display());
        let targets: Vec<String> = c
            .targets
            .iter()
            .map(|t| {
                let kind = format!("{:?}", t.kind).to_lowercase();
                let off = if t.enabled { "" } else { ", disabled" };
                format!("{} ({kind}{off})", t.name)
            })
            .collect();
        if !targets.is_empty() {
            let _ = writeln!(out, "targets: {}", targets.join(", "));
        }
    }
    for p in &report.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    for p in &report.credentials {
        let _ = writeln!(out, "problem: {}", p.problem);
    }
    if !report.credentials.is_empty() {
        let _ = writeln!(
            out,
            "  (credentials are needed by run, import, availability, check, push and passculture) {}",
            secutix_sync::config::credentials_hint()
        );
    }
    for p in &report.unknown_keys {
        let _ = writeln!(out, "problem: {p}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let exposed = secutix_sync::config::exposed_secret_files(c, report.file.as_deref());
    for w in &exposed {
        let _ = writeln!(out, "warning: {w}");
    }
    let problems = report.problems.len() + report.credentials.len() + report.unknown_keys.len();
    let _ = match (problems, report.warnings.len() + exposed.len()) {
        (0, 0) => writeln!(out, "configuration OK"),
        (0, w) => writeln!(out, "configuration OK, with {w} warning(s)"),
        (n, _) => writeln!(out, "{n} problem(s)"),
    };
    out
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

/// `import` / `availability` while the daemon runs (it holds the store): the same work as a `resync` of
/// `scope`, waited for.
fn hand_to_daemon(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    scope: String,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let flag = match scope.strip_prefix("product:") {
        Some(id) => format!("--product {id}"),
        None => format!("--{scope}"),
    };
    eprintln!(
        "the daemon is running and holds the store: handing this to it, as `secutix-sync resync {flag}{} --wait` \
         does",
        if force { " --force" } else { "" }
    );
    resync_through(rt, client, scope, force, true, RESYNC_WAIT_DEFAULT)
}

fn import_command(sources: &Sources, force: bool) -> anyhow::Result<ExitCode> {
    let loaded = load_config_without_credentials(sources)?;
    let config = &loaded.config;
    let rt = runtime()?;
    if let Some(daemon) = daemon_or_store(config, &rt, Some("importing into"))? {
        return hand_to_daemon(&rt, &daemon, "catalogue".to_owned(), force);
    }
    loaded.require_credentials(true, &[])?;
    let store = open_store(config)?;
    let client = Client::new(&config.secutix, Arc::new(store.clone()), store.clock().clone())?
        .with_spool_dir(config.store.path.clone());
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
            if c.flagged > 0 {
                println!("  {} value(s) left out because they cannot be right:", c.flagged);
                for f in &r.flagged {
                    println!("    {f}");
                }
            }
        }
    }
    println!("  {} bytes received in {} SecuTix call(s)", r.bytes, r.calls);
}

fn availability_command(sources: &Sources, product: Option<i64>) -> anyhow::Result<ExitCode> {
    use secutix_sync::availability::{PollOptions, Poller};
    let loaded = load_config_without_credentials(sources)?;
    let rt = runtime()?;
    if let Some(daemon) = daemon_or_store(&loaded.config, &rt, Some("polling into"))? {
        let scope = product.map_or_else(|| "availability".to_owned(), |id| format!("product:{id}"));
        return hand_to_daemon(&rt, &daemon, scope, false);
    }
    loaded.require_credentials(true, &[])?;
    let config = loaded.config;
    if !config.availability.enabled {
        eprintln!("note: availability.enabled = false: the daemon does not poll; running this one poll anyway");
    }
    let store = open_store(&config)?;
    let sink = secutix_sync::availability::ProgressSink::default();
    let poller = Poller::from_config(&config.secutix, &config.availability, store.clone())
        .context("while preparing the availability poll")?
        .with_progress(sink.clone());
    let view = ProgressView::on_stderr();
    let result = rt.block_on(show_poll_progress(
        poller.poll_once(PollOptions { product }),
        &sink,
        &view,
    ));
    view.finish();
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
            "{} product(s) could not be refreshed and keep their previous indicator, marked stale: {} {}",
            report.stale.len(),
            if report.stale.len() == 1 { "product" } else { "products" },
            report
                .stale
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "{} product(s) still pending; {} SecuTix calls this month of a budget of {budget} ({} left for availability)",
        report.pending, report.month_calls, report.budget_left
    );
    println!("next poll in {}", secutix_sync::text::human(report.next_poll_in));
    match &report.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("availability poll failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs `poll`, showing its progress (from `sink`) every half second.
async fn show_poll_progress<T>(
    poll: impl std::future::Future<Output = T>,
    sink: &ProgressSink,
    view: &ProgressView,
) -> T {
    use secutix_sync::cli_client::poll_progress_text;
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tokio::pin!(poll);
    loop {
        tokio::select! {
            result = &mut poll => return result,
            _ = tick.tick() => {
                if let Some(p) = sink.get() {
                    let line = format!("availability poll: {}", poll_progress_text(&p, started.elapsed().as_secs()));
                    let counts = (p.phase == "fetching").then_some((p.products_done, p.products_total));
                    view.update(&line, counts, Some(format!("poll {}", p.phase)), false);
                }
            }
        }
    }
}

fn passculture_command(sources: &Sources, command: PassCultureCommand) -> anyhow::Result<ExitCode> {
    use secutix_sync::targets::passculture::contremarque::{Outcome, choose_target, outcome_json};
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
    let loaded = match load_config_without_credentials(sources) {
        Ok(l) => l,
        Err(e) => return config_problem(format!("{e:#}")),
    };
    let config = &loaded.config;
    let (target, settings) = match choose_target(&config.targets, args.target.as_deref()) {
        Ok(t) => t,
        Err(message) => return config_problem(message),
    };
    if let Err(e) = loaded.require_credentials(false, &[target.name.as_str()]) {
        return config_problem(e.to_string());
    }
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
    let result = rt.block_on(office.run(action, &args.token));
    if args.json {
        println!("{}", outcome_json(action, &args.token, &result, lang, tz));
    } else {
        match &result {
            Ok(Outcome::Found(b)) => println!("{}", b.render(&args.token.trim().to_ascii_uppercase(), lang, tz)),
            Ok(Outcome::Done(d)) => println!("{}", d.message(lang)),
            Err(e) => println!("{}", e.message(lang)),
        }
    }
    Ok(ExitCode::from(match &result {
        Ok(_) => exit_code::OK,
        Err(e) => e.exit_code(),
    }))
}

/// Exit codes of `push` and `dlq` (documented in their `--help` and in the README).
mod push_exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const PENDING: u8 = 3;
    pub const DEAD: u8 = 4;
    pub const NO_SUCH_DEAD_LETTER: u8 = 3;
}

/// The enabled targets to push to: `--target NAME` or all of them. `Err` is a configuration problem.
fn push_targets<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<Vec<&'a secutix_sync::targets::registry::TargetConfig>, String> {
    let names = || {
        config
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => match config.targets.iter().find(|t| t.name == n) {
            Some(t) if !t.enabled => Err(format!(
                "target {n} is disabled (enabled = false in its [[targets]] table); enable it to push to it"
            )),
            Some(t) => Ok(vec![t]),
            None => Err(format!(
                "no target named {n:?} in the configuration (targets: {})",
                if config.targets.is_empty() {
                    "none".to_owned()
                } else {
                    names()
                }
            )),
        },
        None => {
            let enabled: Vec<_> = config.targets.iter().filter(|t| t.enabled).collect();
            if enabled.is_empty() {
                Err(
                    "the configuration has no enabled [[targets]]: declare one (see \"Targets and the outbox\" in \
                     the README and config/default.toml)"
                        .to_owned(),
                )
            } else {
                Ok(enabled)
            }
        }
    }
}

/// The running daemon's client when one answers; otherwise `None`. `doing` (e.g. "importing into") is what
/// the command then does on the store itself: said once, calmly, on stderr, because it changes what happens
/// (the work runs here, not in the daemon). Without it, nothing is said unless something unusual answered.
fn daemon_or_store(
    config: &Config,
    rt: &tokio::runtime::Runtime,
    doing: Option<&str>,
) -> anyhow::Result<Option<secutix_sync::cli_client::ControlClient>> {
    use secutix_sync::cli_client::ClientError;
    let absence = match find_daemon(config)? {
        Daemon::Running(client) => match rt.block_on(client.health()) {
            Ok(()) => return Ok(Some(client)),
            Err(e @ ClientError::NotRunning { .. }) => NoDaemon::from_error(&e),
            Err(e) => return Err(e.into()),
        },
        Daemon::Absent(absence) => absence,
    };
    absence.note(config, doing);
    Ok(None)
}

/// Why no daemon was reached.
struct NoDaemon {
    /// In words, e.g. "no daemon has started on this store yet".
    why: String,
    /// The everyday case (no daemon ever started, or nothing listens at the address): worth a word only
    /// where the command's work then differs; otherwise (a timeout…) always worth a word.
    ordinary: bool,
}

impl NoDaemon {
    fn from_error(e: &secutix_sync::cli_client::ClientError) -> Self {
        use secutix_sync::cli_client::ClientError;
        match e {
            // Port 0: a running daemon would have written the address it got into the store folder.
            ClientError::NotRunning { addr, .. } if addr.ends_with(":0") => NoDaemon {
                why: "no daemon is running on this store".to_owned(),
                ordinary: true,
            },
            ClientError::NotRunning {
                addr, refused: true, ..
            } => NoDaemon {
                why: format!("no daemon listens at {addr} (control.listen)"),
                ordinary: true,
            },
            ClientError::NotRunning { addr, reason, .. } => NoDaemon {
                why: format!("nothing answers at {addr} (control.listen): {reason}"),
                ordinary: false,
            },
            ClientError::NoToken { .. } => NoDaemon {
                why: "no daemon has started on this store yet".to_owned(),
                ordinary: true,
            },
            other => NoDaemon {
                why: other.to_string(),
                ordinary: false,
            },
        }
    }

    /// Says on stderr, once, that the command works on the store itself (`doing` it), when that matters.
    fn note(&self, config: &Config, doing: Option<&str>) {
        let store = config.store.path.display();
        match (doing, self.ordinary) {
            (Some(doing), true) => eprintln!("no daemon is running on this store: {doing} {store} directly"),
            (Some(doing), false) => eprintln!("{}; {doing} {store} directly", self.why),
            (None, true) => {}
            (None, false) => eprintln!("{}; reading the store at {store} directly", self.why),
        }
    }
}

/// One target's plan line: `target NAME (kind): create …; unchanged …`.
fn print_plan_line(name: &str, kind: &str, p: &serde_json::Value) {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    println!(
        "target {name} ({kind}): create {}, update {}, unpublish {}, delete {}; unchanged {}, dead letters {}, \
         dropped {}, not selected {}",
        n("create"),
        n("update"),
        n("unpublish"),
        n("delete"),
        n("unchanged"),
        n("dead"),
        n("dropped"),
        n("skipped")
    );
}

/// Prints a plan document ([`secutix_sync::daemon::documents::plan_document`]); with `operations`, one line each.
fn print_plan(doc: &serde_json::Value, operations: bool) {
    println!(
        "entries: {} built, {} changed since the last plan",
        doc["entries"], doc["changed_entries"]
    );
    for t in doc["targets"].as_array().into_iter().flatten() {
        print_plan_line(t["name"].as_str().unwrap_or("?"), t["kind"].as_str().unwrap_or("?"), t);
        if operations {
            for op in t["operations"].as_array().into_iter().flatten() {
                println!(
                    "  {:<9} {:<24} {}",
                    op["op"].as_str().unwrap_or("?"),
                    op["external_id"].as_str().unwrap_or("?"),
                    op["title"].as_str().unwrap_or("")
                );
            }
            let waiting = t["waiting"].as_u64().unwrap_or(0);
            if waiting > 0 {
                println!("  {waiting} operation(s) already in the outbox would be sent too");
            }
        }
    }
}

fn push_command(sources: &Sources, args: PushArgs) -> anyhow::Result<ExitCode> {
    use secutix_sync::push::{DrainOptions, Outbox, Scope, Worker};
    let loaded = match load_config_without_credentials(sources) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let config = &loaded.config;
    let targets = match push_targets(config, args.target.as_deref()) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let rt = runtime()?;
    let doing = (!args.dry_run).then_some("pushing from");
    if let Some(client) = daemon_or_store(config, &rt, doing)? {
        return push_through_daemon(&rt, &client, &targets, &args);
    }
    // Sending needs the targets' credentials (a dry run sends nothing).
    if !args.dry_run {
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        if let Err(e) = loaded.require_credentials(false, &names) {
            eprintln!("{e}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    }
    let store = match open_store(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("push failed: {e:#}");
            return Ok(ExitCode::from(push_exit::FAILED));
        }
    };
    let Some(view) = store.catalog()? else {
        eprintln!(
            "the store at {} has no catalogue yet: run `secutix-sync import` first",
            config.store.path.display()
        );
        return Ok(ExitCode::from(push_exit::FAILED));
    };
    // Build every target before anything is planned: a bad one stops the push with nothing queued.
    let mut built = Vec::new();
    if !args.dry_run {
        for cfg in &targets {
            match secutix_sync::targets::build(cfg, &store) {
                Ok(t) => built.push((*cfg, t)),
                Err(e) => {
                    eprintln!("target {}: {e}", cfg.name);
                    return Ok(ExitCode::from(push_exit::CONFIG));
                }
            }
        }
    }
    let outbox = Outbox::open(&store)?;
    // Statuses as the daemon plans them: the catalogue combined with the last polled availability.
    let status = secutix_sync::availability::status_fn(secutix_sync::availability::AvailabilityStore::new(&store)?);
    let plan_targets: Vec<_> = targets.iter().map(|t| secutix_sync::targets::plan_target(t)).collect();
    let options = config.entries.options();
    let plan = outbox
        .plan(&plan_targets, &options, &status, &Scope::All, false, args.dry_run)
        .context("while planning the entries")?;
    if args.dry_run {
        println!("dry run: nothing is written to the store and nothing is sent");
    }
    let doc = secutix_sync::daemon::documents::plan_document(&targets, &plan, &outbox, &view, &options);
    print_plan(&doc, args.dry_run);
    if args.dry_run {
        return Ok(ExitCode::from(push_exit::OK));
    }

    let results = rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the requests in flight; the rest stays in the outbox");
                on_signal.cancel();
            }
        });
        let mut set = tokio::task::JoinSet::new();
        for (cfg, target) in built {
            let outbox = outbox.clone();
            let opts = DrainOptions {
                max_wait: args.wait,
                stop: Some(stop.clone()),
            };
            let settings = cfg.push_settings();
            let name = cfg.name.clone();
            set.spawn(async move {
                let report = match Worker::new(&outbox, target, settings) {
                    Ok(w) => w.drain(opts).await,
                    Err(e) => Err(e),
                };
                (name, report)
            });
        }
        let mut out = std::collections::BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((name, report)) => {
                    out.insert(name, report);
                }
                Err(e) => tracing::error!(error = %e, "a push worker stopped unexpectedly"),
            }
        }
        out
    });
    store.flush()?;
    let (mut dead, mut pending, mut failed) = (0u64, 0u64, false);
    let tz = store.time_zone();
    for cfg in &targets {
        match results.get(&cfg.name) {
            Some(Ok(r)) => {
                println!(
                    "target {}: delivered {}, retried {}, moved to dead letters {}, still pending {}",
                    cfg.name, r.delivered, r.retried, r.dead, r.pending
                );
                if let Some(next) = r.next_attempt_at.filter(|_| r.pending > 0) {
                    println!(
                        "  next attempt at {}: run `secutix-sync push` again (or let the daemon retry)",
                        next.with_timezone(&tz)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                let letters = outbox.dead_letters(std::slice::from_ref(&cfg.name))?.len();
                if letters > 0 {
                    println!(
                        "  {letters} dead letter(s): see `secutix-sync dlq list --target {}`",
                        cfg.name
                    );
                }
                dead += r.dead;
                pending += r.pending;
            }
            Some(Err(e)) => {
                eprintln!("target {}: the push failed: {e}", cfg.name);
                failed = true;
            }
            None => {
                eprintln!("target {}: the push worker stopped unexpectedly", cfg.name);
                failed = true;
            }
        }
    }
    Ok(ExitCode::from(if failed {
        push_exit::FAILED
    } else if dead > 0 {
        push_exit::DEAD
    } else if pending > 0 {
        push_exit::PENDING
    } else {
        push_exit::OK
    }))
}

/// How long `push` follows the daemon's push (plus `--wait`) before it stops waiting; the daemon goes on.
const PUSH_THROUGH_DAEMON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// `push` while a daemon runs: the daemon owns the store, so it plans and sends (`resync` scope `push`), and
/// this follows it like `resync --wait`. `--dry-run` shows the daemon's own plan (`GET /push/plan`).
fn push_through_daemon(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    targets: &[&secutix_sync::targets::registry::TargetConfig],
    args: &PushArgs,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::{ClientError, WaitOptions, WaitOutcome, wait_for};
    let api_error = |e: ClientError| -> anyhow::Result<ExitCode> {
        match e {
            ClientError::Api {
                status: 400 | 404,
                message,
            } => {
                eprintln!("{message}");
                Ok(ExitCode::from(push_exit::CONFIG))
            }
            ClientError::Api { message, .. } => {
                eprintln!("push failed: {message}");
                Ok(ExitCode::from(push_exit::FAILED))
            }
            other => Err(other.into()),
        }
    };
    if args.dry_run {
        let doc = match rt.block_on(client.push_plan(args.target.as_deref())) {
            Ok(d) => d,
            Err(e) => return api_error(e),
        };
        println!(
            "dry run by the running daemon (pid {}, control API {}): the plan is computed from the daemon's \
             configuration and entries; nothing is written and nothing is sent",
            doc["daemon"]["pid"],
            client.base_url()
        );
        print_plan(&doc, true);
        return Ok(ExitCode::from(push_exit::OK));
    }
    eprintln!(
        "a secutix-sync daemon runs on this store (control API {}): it plans and sends the push; following it",
        client.base_url()
    );
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let counter =
        |status: &serde_json::Value, name: &str, key: &str| status["targets"][name][key].as_u64().unwrap_or(0);
    let before = rt.block_on(client.status())?;
    let request = secutix_sync::daemon::documents::ResyncRequest {
        scope: "push".into(),
        force: false,
    };
    let answer = match rt.block_on(client.resync(&request)) {
        Ok(a) => a,
        Err(e) => return api_error(e),
    };
    println!("{}", answer.message);
    if args.target.is_some() {
        println!(
            "the daemon plans every enabled target, as its own refresh does; this waits for {}",
            names.join(", ")
        );
    }
    let opts = WaitOptions {
        every: std::time::Duration::from_millis(500),
        timeout: PUSH_THROUGH_DAEMON_TIMEOUT + args.wait,
        retry_wait: args.wait,
        targets: Some(names.clone()),
        baseline: Some(before.clone()),
    };
    let view = ProgressView::new();
    let outcome = rt.block_on(wait_for(client, &answer, &opts, |p| view.show(p)));
    view.finish();
    let outcome = outcome?;
    let after = rt.block_on(client.status())?;
    let plan = &after["jobs"][&answer.job]["last"]["summary"];
    let (mut dead, mut pending) = (0u64, 0u64);
    for t in targets {
        let name = t.name.as_str();
        if !plan["targets"][name].is_null() {
            print_plan_line(name, &format!("{:?}", t.kind).to_lowercase(), &plan["targets"][name]);
        }
        let delivered = counter(&after, name, "delivered_since_start").saturating_sub(counter(
            &before,
            name,
            "delivered_since_start",
        ));
        let new_dead =
            counter(&after, name, "dead_since_start").saturating_sub(counter(&before, name, "dead_since_start"));
        let waiting = counter(&after, name, "outbox");
        println!(
            "target {name}: delivered {delivered}, moved to dead letters {new_dead}, still pending {waiting} (by the \
             daemon while this push ran)"
        );
        if let Some(e) = after["targets"][name]["last_error"].as_str().filter(|_| waiting > 0) {
            println!("  last error: {e}; the daemon retries");
        }
        if counter(&after, name, "dead_letters") > 0 {
            println!(
                "  {} dead letter(s): see `secutix-sync dlq list --target {name}`",
                counter(&after, name, "dead_letters")
            );
        }
        dead += new_dead;
        pending += waiting;
    }
    Ok(ExitCode::from(match outcome {
        WaitOutcome::Failed(e) => {
            eprintln!("push failed: {e}");
            push_exit::FAILED
        }
        _ if dead > 0 => push_exit::DEAD,
        WaitOutcome::TimedOut => {
            eprintln!(
                "still not delivered after {}; the daemon goes on (see `secutix-sync status`)",
                humantime::format_duration(opts.timeout)
            );
            push_exit::PENDING
        }
        WaitOutcome::Pending(_) => push_exit::PENDING,
        WaitOutcome::Done if pending > 0 => push_exit::PENDING,
        WaitOutcome::Done => push_exit::OK,
    }))
}

/// Where `dlq` finds the dead letters: the running daemon (through its control API) or the store.
enum DeadLetters {
    Daemon(secutix_sync::cli_client::ControlClient),
    Store {
        outbox: secutix_sync::push::Outbox,
        tz: chrono_tz::Tz,
        /// Configured targets and those the store remembers (a target removed from the configuration keeps
        /// its dead letters).
        known: Vec<String>,
    },
}

/// Why a `dlq` step did not happen.
enum DlqFailure {
    /// No such target (exit 2).
    NoTarget(String),
    /// No such dead letter (exit 3).
    NoLetter,
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for DlqFailure {
    fn from(e: E) -> Self {
        DlqFailure::Other(e.into())
    }
}

impl DeadLetters {
    fn list(
        &self,
        rt: &tokio::runtime::Runtime,
        target: Option<&str>,
    ) -> Result<Vec<secutix_sync::push::DeadLetter>, DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.dead_letters(target)) {
                Ok(l) => Ok(l),
                Err(ClientError::Api { status: 404, message }) => Err(DlqFailure::NoTarget(message)),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, known, .. } => {
                let scope = match target {
                    Some(t) if known.iter().any(|k| k == t) => vec![t.to_owned()],
                    Some(t) => {
                        return Err(DlqFailure::NoTarget(format!(
                            "no target named {t:?} in the configuration or the store (targets: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        )));
                    }
                    None => known.clone(),
                };
                Ok(outbox.dead_letters(&scope)?)
            }
        }
    }

    fn replay(&self, rt: &tokio::runtime::Runtime, target: &str, id: Option<u64>) -> Result<(u64, u64), DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        use secutix_sync::push::PushError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.replay(target, id)) {
                Ok(r) => Ok(r),
                Err(ClientError::Api { status: 404, .. }) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, .. } => match outbox.replay(target, id) {
                Ok(r) => Ok(r),
                Err(PushError::NotFound(_)) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
        }
    }

    fn drop(
        &self,
        rt: &tokio::runtime::Runtime,
        target: &str,
        id: u64,
    ) -> Result<secutix_sync::push::DeadLetter, DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        use secutix_sync::push::PushError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.drop_dead_letter(target, id)) {
                Ok(d) => Ok(d),
                Err(ClientError::Api { status: 404, .. }) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, .. } => match outbox.drop_dead_letter(target, id) {
                Ok(d) => Ok(d),
                Err(PushError::NotFound(_)) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Who sends a replayed operation.
    fn sender(&self) -> &'static str {
        match self {
            DeadLetters::Daemon(_) => "the daemon sends it now",
            DeadLetters::Store { .. } => "the next push (or the daemon) sends it",
        }
    }
}

fn dlq_command(sources: &Sources, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let config = match load_config_without_credentials(sources) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let rt = runtime()?;
    // Listing reads the same either way; a replay or a drop on the store is sent (or not) by the next push.
    let doing = (!matches!(command, DlqCommand::List { .. })).then_some("changing the dead letters in");
    let letters = match daemon_or_store(&config, &rt, doing)? {
        Some(client) => {
            eprintln!(
                "a secutix-sync daemon runs on this store: dead letters through its control API ({})",
                client.base_url()
            );
            DeadLetters::Daemon(client)
        }
        None => {
            let store = match open_store(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::from(push_exit::FAILED));
                }
            };
            let outbox = secutix_sync::push::Outbox::open(&store)?;
            let mut known: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
            for name in outbox.targets_in_store() {
                if !known.contains(&name) {
                    known.push(name);
                }
            }
            DeadLetters::Store {
                tz: store.time_zone(),
                outbox,
                known,
            }
        }
    };
    match dlq_run(&rt, &letters, command) {
        Ok(code) => Ok(code),
        Err(DlqFailure::NoTarget(message)) => {
            eprintln!("{message}");
            Ok(ExitCode::from(push_exit::CONFIG))
        }
        Err(DlqFailure::NoLetter) => Ok(ExitCode::from(push_exit::NO_SUCH_DEAD_LETTER)),
        Err(DlqFailure::Other(e)) => Err(e),
    }
}

fn dlq_run(rt: &tokio::runtime::Runtime, letters: &DeadLetters, command: DlqCommand) -> Result<ExitCode, DlqFailure> {
    let target = match &command {
        DlqCommand::List { target, .. } | DlqCommand::Replay { target, .. } | DlqCommand::Drop { target, .. } => {
            target.clone()
        }
    };
    // Also checks the target's name.
    let all = letters.list(rt, target.as_deref())?;
    let missing = |id: u64| {
        eprintln!(
            "no dead letter {id}{}; see `secutix-sync dlq list`",
            target.as_ref().map(|t| format!(" for target {t}")).unwrap_or_default()
        );
        DlqFailure::NoLetter
    };
    match command {
        DlqCommand::List { json, .. } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::from(push_exit::OK));
            }
            if all.is_empty() {
                println!("no dead letters");
                return Ok(ExitCode::from(push_exit::OK));
            }
            let tz = match letters {
                DeadLetters::Store { tz, .. } => *tz,
                DeadLetters::Daemon(c) => rt
                    .block_on(c.status())
                    .ok()
                    .and_then(|s| {
                        s["jobs"]["catalogue"]["time_zone"]
                            .as_str()
                            .and_then(|t| t.parse().ok())
                    })
                    .unwrap_or(chrono_tz::UTC),
            };
            println!(
                "{:<20} {:<16} {:<9} {:<24} {:>8}  FAILED AT",
                "ID", "TARGET", "OPERATION", "ENTRY", "ATTEMPTS"
            );
            for d in &all {
                println!(
                    "{:<20} {:<16} {:<9} {:<24} {:>8}  {}",
                    d.id,
                    d.target,
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.item.attempts,
                    d.failed_at
                        .with_timezone(&tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                println!("    error: {}", d.error);
            }
            println!(
                "{} dead letter(s). `secutix-sync dlq replay ID` sends one again, `dlq drop ID` forgets it",
                all.len()
            );
        }
        DlqCommand::Replay { id: Some(id), .. } => {
            let Some(d) = all.iter().find(|d| d.id == id) else {
                return Err(missing(id));
            };
            match letters.replay(rt, &d.target, Some(id)) {
                Ok((1, _)) => println!(
                    "dead letter {id} ({} {}) is back in the outbox of {}: {}",
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.target,
                    letters.sender()
                ),
                Ok(_) => println!(
                    "dead letter {id} removed: a newer operation for {} is already waiting in the outbox of {}",
                    d.item.external_id, d.target
                ),
                Err(DlqFailure::NoLetter) => return Err(missing(id)),
                Err(e) => return Err(e),
            }
        }
        DlqCommand::Replay { id: None, .. } => {
            let mut scope: Vec<String> = target.into_iter().collect();
            for d in &all {
                if !scope.contains(&d.target) {
                    scope.push(d.target.clone());
                }
            }
            let (mut replayed, mut superseded) = (0, 0);
            for t in &scope {
                let (r, s) = letters.replay(rt, t, None)?;
                if r + s > 0 {
                    println!("target {t}: {r} back in the outbox, {s} superseded by a newer operation");
                }
                replayed += r;
                superseded += s;
            }
            let sender = match letters {
                DeadLetters::Daemon(_) => "the daemon sends them now",
                DeadLetters::Store { .. } => "the next push (or the daemon) sends them",
            };
            println!("{replayed} dead letter(s) replayed, {superseded} superseded; {sender}");
        }
        DlqCommand::Drop { id, .. } => {
            let Some(d) = all.iter().find(|d| d.id == id) else {
                return Err(missing(id));
            };
            match letters.drop(rt, &d.target, id) {
                Ok(d) => println!(
                    "dead letter {id} ({} {}) of {} dropped: this version is not sent again; a change of the \
                     entry is",
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.target
                ),
                Err(DlqFailure::NoLetter) => return Err(missing(id)),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ExitCode::from(push_exit::OK))
}

fn run_command(sources: &Sources, once: bool, push_wait: std::time::Duration) -> anyhow::Result<ExitCode> {
    use secutix_sync::daemon::{self, App, DaemonError};
    let config = load_config(sources)?.config;
    let store = open_store(&config).context("while opening the store (one secutix-sync daemon per store)")?;
    let rt = runtime()?;
    rt.block_on(async {
        let app = App::build(config.clone(), sources.clone(), store)?;
        if once {
            let (code, summary) = match daemon::run_once(app, push_wait).await {
                Ok(v) => (ExitCode::SUCCESS, v),
                Err(v) => (ExitCode::from(1), v),
            };
            print_once(&summary);
            return Ok(code);
        }
        let listener = tokio::net::TcpListener::bind(&config.control.listen)
            .await
            .map_err(|e| DaemonError::Listen {
                addr: config.control.listen.clone(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().context("while reading the control API address")?;
        tracing::info!(%addr, "control API listening");
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the control API listens beyond loopback: private endpoints need the token, but keep the port \
                 behind a firewall and expose only /public/ through a reverse proxy"
            );
        }
        // Registered before anything runs, so an early signal is not lost.
        let (shutdown, reload) = signals()?;
        daemon::run(
            app.clone(),
            listener,
            secutix_sync::control::router(app),
            shutdown,
            reload,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The daemon's signals: the shutdown future (SIGTERM or SIGINT) and the reload stream (SIGHUP). Call it
/// inside the runtime, before the daemon starts, so that an early signal is not lost.
fn signals() -> anyhow::Result<(
    impl std::future::Future<Output = ()> + Send + 'static,
    impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
)> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("while installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("while installing the SIGINT handler")?;
    let hup = signal(SignalKind::hangup()).context("while installing the SIGHUP handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    let reload = Box::pin(futures_util::stream::unfold(hup, |mut hup| async move {
        hup.recv().await.map(|_| {
            tracing::info!("SIGHUP received: reloading the configuration");
            ((), hup)
        })
    }));
    Ok((shutdown, reload))
}

/// How a reader runs this binary: `secutix-sync` when that name on `PATH` is this file, else its path.
fn cli_name() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "secutix-sync".to_owned();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| dir.join("secutix-sync").canonicalize().ok())
            .any(|p| p == exe)
    });
    if on_path {
        "secutix-sync".to_owned()
    } else {
        exe.display().to_string()
    }
}

fn demo_command(sources: &Sources, args: DemoArgs) -> anyhow::Result<ExitCode> {
    use secutix_sync::demo::{Demo, DemoOptions, OUTPUT_DIR};
    if let Some(file) = &sources.file {
        eprintln!(
            "note: the demo ignores --config / SECUTIX_SYNC_CONFIG ({}): it writes its own configuration",
            file.display()
        );
    }
    let opts = DemoOptions {
        once: args.once,
        soap: args.soap,
        dir: args.dir,
        products: usize::try_from(args.products).unwrap_or(secutix_sync::demo::DEFAULT_PRODUCTS),
        listen: args.listen,
        output: PathBuf::from(OUTPUT_DIR),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let demo = Demo::prepare(opts).await.context("while starting the demo")?;
        if args.once {
            let output = demo.output().to_owned();
            let result = demo.once().await;
            let (code, summary) = match result {
                Ok(v) => (ExitCode::SUCCESS, v),
                Err(v) => (ExitCode::from(1), v),
            };
            print_once(&summary);
            let files = std::fs::read_dir(&output)
                .map(|d| {
                    d.flatten()
                        .filter(|f| {
                            let n = f.file_name().to_string_lossy().into_owned();
                            n.starts_with("secutix-") && n.ends_with(".json")
                        })
                        .count()
                })
                .unwrap_or(0);
            println!(
                "demo-output: {files} entry files and index.json in {}",
                output.display()
            );
            return Ok(code);
        }
        let (shutdown, reload) = signals()?;
        // A closed stdout (the terminal went, a pipe reader stopped) must not stop the demo: lines are
        // written without println!'s panic.
        let say = |text: &str| {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{text}");
        };
        say(&demo.banner(&cli_name()));
        demo.run(shutdown, reload).await.context("while running the demo")?;
        say(&format!("demo stopped; the entry files stay in ./{OUTPUT_DIR}/"));
        Ok(ExitCode::SUCCESS)
    })
}

fn print_once(summary: &serde_json::Value) {
    print!("{}", once_text(summary));
    if let Some(failed) = summary["failed"].as_array() {
        for f in failed {
            eprintln!("failed: {}", f.as_str().unwrap_or_default());
        }
    }
}

/// The lines of `run --once` and `demo --once`: each job's summary, the plan of every entry, then per target
/// the operations to send (those the lines above queued, plus any left from before) and what became of them.
fn once_text(summary: &serde_json::Value) -> String {
    use secutix_sync::cli_client::summary_line;
    use std::fmt::Write;
    let mut out = String::new();
    let as_last = |v: &serde_json::Value| match v["error"].as_str() {
        Some(e) => serde_json::json!({"ok": false, "error": e}),
        None => serde_json::json!({"ok": true, "summary": v}),
    };
    for job in ["catalogue", "availability"] {
        if !summary[job].is_null() {
            let _ = writeln!(out, "{job}: {}", summary_line(job, &as_last(&summary[job])));
        }
    }
    if !summary["plan"].is_null() {
        let _ = writeln!(out, "plan: {}", summary_line("plan", &as_last(&summary["plan"])));
    }
    if let Some(pushes) = summary["push"].as_object() {
        for (name, r) in pushes {
            if let Some(e) = r["error"].as_str() {
                let _ = writeln!(out, "push {name}: {e}");
                continue;
            }
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            let before = match n("waiting_before") {
                0 => String::new(),
                b => format!(" ({b} queued before this run)"),
            };
            let retries = match n("retried") {
                0 => String::new(),
                r => format!(" ({r} failed attempts retried)"),
            };
            let _ = writeln!(
                out,
                "push {name}: {} operations to send{before}: {} delivered, {} moved to dead letters, {} still \
                 pending{retries}",
                n("to_send"),
                n("delivered"),
                n("dead"),
                n("pending")
            );
        }
    }
    out
}

/// The daemon's client, or why the CLI reads the store instead.
enum Daemon {
    Running(secutix_sync::cli_client::ControlClient),
    Absent(NoDaemon),
}

fn find_daemon(config: &Config) -> anyhow::Result<Daemon> {
    use secutix_sync::cli_client::{ClientError, ControlClient};
    match ControlClient::from_config(config) {
        Ok(c) => Ok(Daemon::Running(c)),
        Err(e @ ClientError::NoToken { .. }) => Ok(Daemon::Absent(NoDaemon::from_error(&e))),
        Err(e) => Err(e.into()),
    }
}

/// Runs `online` against the daemon; when no daemon answers, runs `offline` on the store. Read-only: the
/// output is the same either way, so the everyday "no daemon" goes unsaid.
fn with_daemon_or_store<T>(
    config: &Config,
    online: impl AsyncFnOnce(&secutix_sync::cli_client::ControlClient) -> Result<T, secutix_sync::cli_client::ClientError>,
    offline: impl FnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<(T, bool)> {
    use secutix_sync::cli_client::ClientError;
    let rt = runtime()?;
    let absence = match find_daemon(config)? {
        Daemon::Running(client) => match rt.block_on(online(&client)) {
            Ok(v) => return Ok((v, true)),
            Err(e @ ClientError::NotRunning { .. }) => NoDaemon::from_error(&e),
            Err(e) => return Err(e.into()),
        },
        Daemon::Absent(absence) => absence,
    };
    absence.note(config, None);
    let store = Store::open(
        &config.store.path,
        config.store.cache_mib,
        secutix_sync::clock::system(),
    )
    .with_context(|| format!("while opening the store ({})", absence.why))?;
    Ok((offline(&store)?, false))
}

fn status_command(sources: &Sources, json: bool) -> anyhow::Result<ExitCode> {
    let config = load_config_without_credentials(sources)?.config;
    let (doc, _) = with_daemon_or_store(
        &config,
        async |c| c.status().await,
        |store| {
            let outbox = secutix_sync::push::Outbox::open(store)?;
            Ok(secutix_sync::daemon::status::status_document(
                &config, store, &outbox, None,
            ))
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_status(&doc);
    }
    Ok(ExitCode::SUCCESS)
}

fn short_time(v: &serde_json::Value) -> String {
    v.as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn print_status(doc: &serde_json::Value) {
    use secutix_sync::cli_client::summary_line;
    let d = &doc["daemon"];
    if d["running"].as_bool() == Some(true) {
        println!(
            "secutix-sync {}: daemon running (pid {}, since {})",
            doc["version"].as_str().unwrap_or("?"),
            d["pid"],
            short_time(&d["started_at"])
        );
    } else {
        println!(
            "secutix-sync {}: no daemon running; read from the store {}",
            doc["version"].as_str().unwrap_or("?"),
            doc["store"].as_str().unwrap_or("?")
        );
    }
    println!(
        "institution {} ({})",
        doc["institution"].as_str().unwrap_or("?"),
        doc["transport"].as_str().unwrap_or("?")
    );
    let c = &doc["catalogue"];
    match c["generation"].as_u64() {
        Some(g) => println!(
            "catalogue: {} products, {} tombstones (generation {g}); last good import {}",
            c["products"],
            c["tombstones"],
            short_time(&c["last_good_import_at"])
        ),
        None => println!("catalogue: none yet (no successful import)"),
    }
    println!("jobs:");
    for job in ["catalogue", "availability", "refresh"] {
        let j = &doc["jobs"][job];
        let mut parts = Vec::new();
        if !j["running"].is_null() {
            let mut running = format!(
                "running (run {}, since {})",
                j["running"]["id"],
                short_time(&j["running"]["started_at"])
            );
            if let Ok(p) =
                serde_json::from_value::<secutix_sync::availability::PollProgress>(j["running"]["progress"].clone())
            {
                let time =
                    |v: &serde_json::Value| v.as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
                let elapsed = match (time(&doc["now"]), time(&j["running"]["started_at"])) {
                    (Some(now), Some(start)) => (now - start).num_seconds().max(0) as u64,
                    _ => 0,
                };
                running.push_str(&format!(
                    ": {}",
                    secutix_sync::cli_client::poll_progress_text(&p, elapsed)
                ));
            }
            parts.push(running);
        }
        let last = &j["last"];
        if !last.is_null() && !last["finished_at"].is_null() {
            let ok = if last["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            };
            parts.push(format!(
                "last {ok} at {}: {}",
                short_time(&last["finished_at"]),
                summary_line(job, last)
            ));
        } else if j["running"].is_null() {
            parts.push("no run yet".to_owned());
        }
        if !j["next_run_at"].is_null() {
            parts.push(format!("next {}", short_time(&j["next_run_at"])));
        } else if job == "availability" && doc["catalogue"]["generation"].is_null() {
            parts.push("waits for the first catalogue".to_owned());
        }
        let mut line = format!("  {job:<13}{}", parts.join("; "));
        if let Some(s) = j["schedule"].as_str() {
            line.push_str(&format!(" (cron {s}, {})", j["time_zone"].as_str().unwrap_or("UTC")));
        }
        println!("{line}");
    }
    let s = &doc["secutix"];
    println!(
        "SecuTix calls: {} this month of a budget of {} ({} %), {} today",
        s["calls_this_month"], s["monthly_call_budget"], s["budget_used_percent"], s["calls_today"]
    );
    let a = &doc["availability"];
    if a["enabled"].as_bool() == Some(false) {
        println!("availability: polling disabled (availability.enabled = false)");
    }
    let i = &a["indicators"];
    if !i.is_null() {
        let by = by_status(&i["by_status"]);
        println!(
            "indicators: {} future performances{by}; never fetched {}, stale {}, oldest fetch {}; last change {}",
            i["future_performances"],
            i["unknown"],
            i["stale"],
            short_time(&i["oldest_fetched_at"]),
            short_time(&a["last_change_at"])
        );
    }
    println!("targets:");
    match doc["targets"].as_object() {
        Some(m) if !m.is_empty() => {
            for (name, t) in m {
                let enabled = if t["enabled"].as_bool() == Some(false) {
                    ", disabled"
                } else {
                    ""
                };
                println!(
                    "  {name} ({}{enabled}): {} pending, {} dead letters, {} acknowledged",
                    t["kind"].as_str().unwrap_or("?"),
                    t["outbox"],
                    t["dead_letters"],
                    t["acknowledged"]
                );
                if let Some(e) = t["last_error"].as_str() {
                    println!(
                        "    last error: {e} (next attempt {})",
                        short_time(&t["next_attempt_at"])
                    );
                }
                print_offer_statuses(&t["passculture"]);
            }
        }
        _ => println!("  none configured ([[targets]])"),
    }
}

/// How `resync --wait`, `push` (through the daemon) and `availability` show progress: a bar on a terminal
/// (products of a poll, operations of a push; a spinner otherwise), plain lines elsewhere, where a run in
/// progress is said again every [`PLAIN_PROGRESS_EVERY`] (or when it moves to another phase), not at every
/// look at the daemon.
struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    /// Plain mode: what the last progress line was about and when it was printed (std mutex: never held
    /// across an await).
    last_plain: std::sync::Mutex<Option<(String, std::time::Instant)>>,
    /// Plain lines go to stderr (the command's own report is on stdout) instead of stdout.
    plain_on_stderr: bool,
}

/// How often plain mode repeats the line of a run in progress.
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl ProgressView {
    fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Self {
            bar,
            last_plain: std::sync::Mutex::new(None),
            plain_on_stderr: false,
        }
    }

    /// A view whose plain lines go to stderr, next to a report on stdout.
    fn on_stderr() -> Self {
        Self {
            plain_on_stderr: true,
            ..Self::new()
        }
    }

    fn show(&self, p: &secutix_sync::cli_client::Progress) {
        use secutix_sync::cli_client::{Progress, progress_line};
        // (position, length) of a bar, and the topic of a progress line.
        let (counts, topic) = match p {
            Progress::Running {
                job,
                run,
                progress: Some(pr),
                ..
            } => (
                Some((pr.products_done, pr.products_total)),
                Some(format!("{job} {run} {}", pr.phase)),
            ),
            Progress::Running { job, run, .. } => (None, Some(format!("{job} {run}"))),
            Progress::Pushing { delivered, dead, total } => (Some((delivered + dead, *total)), Some("push".into())),
            _ => (None, None),
        };
        let done = matches!(
            p,
            Progress::Finished { .. } | Progress::Delivered { .. } | Progress::Waiting { .. }
        );
        self.update(&progress_line(p), counts, topic, done);
    }

    /// Shows `line`: with `counts` (position, length) as a bar on a terminal; a `topic` marks a line of
    /// progress, repeated in plain mode only when the topic changes or every [`PLAIN_PROGRESS_EVERY`]; a
    /// `done` line stays above the bar.
    fn update(&self, line: &str, counts: Option<(u64, u64)>, topic: Option<String>, done: bool) {
        let Some(b) = &self.bar else {
            let mut last = self.last_plain.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(topic) = topic {
                let due = match &*last {
                    Some((t, at)) => *t != topic || at.elapsed() >= PLAIN_PROGRESS_EVERY,
                    None => true,
                };
                if !due {
                    return;
                }
                *last = Some((topic, std::time::Instant::now()));
            } else {
                *last = None;
            }
            if self.plain_on_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            return;
        };
        match (done, counts) {
            (true, _) => {
                b.println(line);
                b.set_style(indicatif::ProgressStyle::default_spinner());
                b.unset_length();
                b.set_message("");
            }
            (_, Some((position, length))) => {
                if b.length().is_none() {
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {wide_msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                }
                b.set_length(length);
                b.set_position(position);
                b.set_message(line.to_owned());
            }
            _ => {
                if b.length().is_some() {
                    b.set_style(indicatif::ProgressStyle::default_spinner());
                    b.unset_length();
                }
                b.set_message(line.to_owned());
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The pass Culture lines of a `passculture` target in `status`: offers by status, then those that need a
/// look (rejected, still in validation, with warnings).
/// ` (3 available, 1 sold_out)` from a `{status: count}` object; empty when there is none.
fn by_status(counts: &serde_json::Value) -> String {
    let by: Vec<String> = counts
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
        .unwrap_or_default();
    if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    }
}

fn print_offer_statuses(pc: &serde_json::Value) {
    if let Some(e) = pc["error"].as_str() {
        println!("    pass Culture offers: cannot read them: {e}");
        return;
    }
    let Some(n) = pc["offers"].as_u64() else { return };
    let by = by_status(&pc["by_status"]);
    println!(
        "    pass Culture offers: {n}{by}; statuses read {}",
        short_time(&pc["statuses_read_at"])
    );
    for o in pc["list"].as_array().into_iter().flatten() {
        let id = o["external_id"].as_str().unwrap_or("?");
        let name = o["name"].as_str().unwrap_or("");
        let offer = o["offer_id"]
            .as_u64()
            .map_or_else(|| "not created".to_owned(), |i| format!("offer {i}"));
        match o["status"].as_str() {
            Some("REJECTED") => {
                println!("    REJECTED {id} {name:?} ({offer}): pass Culture refused it; its pro portal says why")
            }
            Some("PENDING") => {
                println!("    PENDING  {id} {name:?} ({offer}): pass Culture is validating it (up to 72 h)")
            }
            _ => {}
        }
        for w in o["warnings"].as_array().into_iter().flatten() {
            println!("    warning  {id} {name:?}: {}", w.as_str().unwrap_or("?"));
        }
        if let Some(r) = o["image_refused"].as_str() {
            println!("    image    {id} {name:?}: not published: {r}");
        }
    }
}

/// `resync --wait`'s default limit, also for the commands that hand their work to the daemon.
const RESYNC_WAIT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

fn resync_command(
    sources: &Sources,
    scope: String,
    force: bool,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::ClientError;
    let config = load_config_without_credentials(sources)?.config;
    let rt = runtime()?;
    let absence = match find_daemon(&config)? {
        Daemon::Running(client) => match rt.block_on(client.health()) {
            Ok(()) => return resync_through(&rt, &client, scope, force, wait, timeout),
            Err(e @ ClientError::NotRunning { .. }) => NoDaemon::from_error(&e),
            Err(e) => return Err(e.into()),
        },
        Daemon::Absent(absence) => absence,
    };
    anyhow::bail!(
        "{}. resync asks the running daemon; start it (systemctl start secutix-sync), or run one cycle without \
         it: secutix-sync run --once",
        absence.why
    )
}

/// Asks `client`'s daemon for a resync of `scope`; with `wait`, follows it to the end (or `timeout`).
fn resync_through(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    scope: String,
    force: bool,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::{ClientError, WaitOptions, WaitOutcome, wait_for};
    let request = secutix_sync::daemon::documents::ResyncRequest { scope, force };
    // What the targets had received before: the push counts what they receive from now on.
    let baseline = if wait { rt.block_on(client.status()).ok() } else { None };
    let answer = match rt.block_on(client.resync(&request)) {
        Ok(a) => a,
        Err(e @ ClientError::NotRunning { .. }) => {
            anyhow::bail!("{e}. Start the daemon, or run one cycle without it: secutix-sync run --once")
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", answer.message);
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let view = ProgressView::new();
    let opts = WaitOptions {
        every: std::time::Duration::from_millis(500),
        timeout,
        retry_wait: std::time::Duration::ZERO,
        targets: None,
        baseline,
    };
    let outcome = rt.block_on(wait_for(client, &answer, &opts, |p| view.show(p)));
    view.finish();
    let outcome = outcome?;
    Ok(match outcome {
        WaitOutcome::Done => ExitCode::SUCCESS,
        WaitOutcome::Failed(e) => {
            eprintln!("resync failed: {e}");
            ExitCode::from(1)
        }
        WaitOutcome::Pending(n) => {
            eprintln!("{n} operations are still pending; see `secutix-sync status`");
            ExitCode::from(1)
        }
        WaitOutcome::TimedOut => {
            eprintln!(
                "still not done after {}; the daemon goes on (see `secutix-sync status`)",
                humantime::format_duration(timeout)
            );
            ExitCode::from(1)
        }
    })
}

fn entries_command(sources: &Sources, action: EntriesCommand) -> anyhow::Result<ExitCode> {
    let config = load_config_without_credentials(sources)?.config;
    match action {
        EntriesCommand::Show { id, json } => {
            let (doc, _) = with_daemon_or_store(
                &config,
                async |c| c.entry(&id).await,
                |store| {
                    let outbox = secutix_sync::push::Outbox::open(store)?;
                    Ok(secutix_sync::daemon::documents::entry_document(&config, &outbox, &id)?)
                },
            )?;
            let Some(doc) = doc else {
                eprintln!(
                    "no entry {}; list them with `secutix-sync entries list`",
                    secutix_sync::daemon::documents::external_id_of(&id)
                );
                return Ok(ExitCode::from(1));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            let e = &doc["entry"];
            let title = e["title"]
                .as_object()
                .and_then(|m| m.values().next())
                .and_then(|v| v.as_str())
                .unwrap_or("");
            println!(
                "{} {title:?}: {}, {}, availability {}",
                e["external_id"].as_str().unwrap_or("?"),
                if e["published"].as_bool() == Some(true) {
                    "published"
                } else {
                    "unpublished"
                },
                if e["on_sale"].as_bool() == Some(true) {
                    "on sale"
                } else {
                    "not on sale"
                },
                e["availability"]["status"].as_str().unwrap_or("?")
            );
            println!("content hash {}", doc["content_hash"].as_str().unwrap_or("?"));
            if let Some(targets) = doc["targets"].as_object() {
                for (name, t) in targets {
                    let mut line = format!("  {name}: {}", t["state"].as_str().unwrap_or("?"));
                    if !t["acked"].is_null() {
                        line.push_str(&format!(
                            " (last acknowledged {} at {})",
                            t["acked"]["kind"].as_str().unwrap_or("?"),
                            short_time(&t["acked"]["acked_at"])
                        ));
                    }
                    if let Some(err) = t["pending"]["last_error"].as_str() {
                        line.push_str(&format!("; last error: {err}"));
                    }
                    println!("{line}");
                }
            }
            println!("{}", serde_json::to_string_pretty(e)?);
            Ok(ExitCode::SUCCESS)
        }
        EntriesCommand::List {
            query,
            availability,
            limit,
            json,
        } => {
            let q = secutix_sync::daemon::documents::EntriesQuery {
                q: query,
                availability,
                limit: Some(limit),
                offset: None,
            };
            let (doc, _) = with_daemon_or_store(
                &config,
                async |c| c.entries(&q).await,
                |store| {
                    let outbox = secutix_sync::push::Outbox::open(store)?;
                    Ok(secutix_sync::daemon::documents::entries_document(&config, &outbox, &q)?)
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            for e in doc["entries"].as_array().into_iter().flatten() {
                let title = e["title"]
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let states: Vec<String> = e["targets"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<20} {:<12} {title}  [{}]",
                    e["external_id"].as_str().unwrap_or("?"),
                    e["availability"]["status"].as_str().unwrap_or("?"),
                    states.join(" ")
                );
            }
            println!("{} entries", doc["total"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_command(sources: &Sources) -> anyhow::Result<ExitCode> {
    let config = load_config(sources)?.config;
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e)
            if e.downcast_ref::<secutix_sync::store::StoreError>()
                .is_some_and(|s| matches!(s, secutix_sync::store::StoreError::Locked { .. })) =>
        {
            eprintln!(
                "note: the running daemon holds the store; this check's SecuTix call is not counted in its ledger"
            );
            Store::temporary(secutix_sync::clock::system())?
        }
        Err(e) => return Err(e),
    };
    let rt = runtime()?;
    let lines = rt.block_on(secutix_sync::check::run_checks(&config, &store));
    let _ = store.flush();
    let mut ok = true;
    for l in &lines {
        ok &= l.ok;
        println!("{} {}: {}", if l.ok { "OK  " } else { "FAIL" }, l.what, l.detail);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn state_command(sources: &Sources, product: Option<i64>, limit: usize) -> anyhow::Result<ExitCode> {
    use secutix_sync::state::{StateQuery, state_document};
    let config = load_config_without_credentials(sources)?.config;
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e:#}");
            eprintln!(
                "`state` reads the store itself; while the daemon runs, use `secutix-sync status` and \
                 `secutix-sync entries show ID`"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let doc = state_document(&config, &store, &StateQuery { limit, product }, store.clock().now())
        .context("while reading the store")?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}

/// Lets a command whose output goes to a pipe that closes early (`secutix-sync state | head`) end quietly, as
/// Unix tools do, instead of panicking on a broken pipe: Rust starts programs with SIGPIPE ignored. Not for the
/// long-running `run` and `demo`, whose sockets and logs must never stop the process.
fn restore_sigpipe() {
    // SAFETY: called once at start, before any thread exists; it only sets a signal's disposition to default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
