//! The command line: clap's definitions of every subcommand and its options.

use super::*;

#[derive(Debug, Parser)]
#[command(
    name = "secutix-sync",
    version,
    about = "Keeps a venue's website CMS in step with its SecuTix catalogue"
)]
pub(crate) struct Cli {
    /// Configuration file (default: /etc/secutix-sync/config.toml, read if present).
    #[arg(long, global = true, env = "SECUTIX_SYNC_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct DemoArgs {
    /// One cycle (import, availability poll, push into ./demo-output/), then exit.
    #[arg(long)]
    pub(crate) once: bool,
    /// The simulator and the client speak SOAP (XML) instead of REST (JSON).
    #[arg(long)]
    pub(crate) soap: bool,
    /// Folder for the store, the demo configuration and the simulator's secret, kept after the demo
    /// (default: a temporary folder, removed when the demo stops).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Products in the simulated catalogue (each with 6 performances).
    #[arg(long, value_name = "N", default_value_t = secutix_sync::demo::DEFAULT_PRODUCTS as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) products: u64,
    /// Address of the control API (default 127.0.0.1:8087, or a free port when it is taken; port 0 = any
    /// free port). The demo's web server takes the next port.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// Only this target (its `name` in [[targets]]); default: every enabled target.
    #[arg(long, value_name = "NAME")]
    pub(crate) target: Option<String>,
    /// Print the plan (create / update / unpublish / delete per target) and send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Also wait up to this long for operations in back-off (e.g. "2m"); default: send what is due and stop.
    /// Through a daemon: how long to keep following operations the daemon retries.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub(crate) wait: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
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
pub(crate) enum PassCultureCommand {
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
pub(crate) enum EntriesCommand {
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
pub(crate) struct TokenArgs {
    /// The contremarque code, e.g. ABC123.
    pub(crate) token: String,
    /// The passculture target to use when the configuration has several.
    #[arg(long, value_name = "NAME")]
    pub(crate) target: Option<String>,
    /// Language of the messages: fr or en.
    #[arg(long, default_value = "fr")]
    pub(crate) lang: Lang,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
