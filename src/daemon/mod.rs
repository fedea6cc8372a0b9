//! The long-running service (`secutix-sync run`): jobs, push workers, control API, shutdown and reload.
//!
//! # Shape (after mini-redis and atuin's daemon)
//! [`App`] is the shared handle. [`run`] starts, on one runtime:
//! - the **catalogue** job: cron in the venue's time zone (see [`jobs::Schedule`]), catch-up at start,
//!   jittered retry back-off after failures, manual triggers; a good import is followed at once by an
//!   availability poll, after which every entry is planned (by the import itself when availability is off),
//!   so new entries reach the targets once, with their indicators;
//! - the **availability** job: polls at the interval the call-budget planner gives, manual triggers; changed
//!   indicators are planned right away (only those products). It waits for the first catalogue;
//! - the **refresh** job: rebuilds every entry every `daemon.refresh_interval` (time-dependent fields) and
//!   on `resync push` / `push --full`; its scheduled runs also read the pass Culture offers' statuses again;
//! - one **push worker** per target, woken by every plan (a `watch` counter) and by retry times;
//! - the **control API** (see `control.rs`), served by [`crate::net::serve`] within `control.max_connections`,
//!   `header_read_timeout` and `idle_timeout`; beyond loopback its token must have at least 32 characters;
//! - a supervisor that feeds the systemd watchdog and updates `STATUS=`.
//!
//! Each job is single-flight ([`jobs::Job`]): a trigger during a run is merged into it and answered
//! "already running".
//!
//! The shutdown signal is a parameter of [`run`]; `main` passes SIGINT or SIGTERM. On shutdown nothing new
//! starts; runs and requests in flight get `daemon.shutdown_grace` to finish (an unfinished import leaves the
//! catalogue in force untouched, an unsent operation stays in the outbox); then the store is flushed and
//! `run` returns. A run that is only waiting (a SecuTix retry back-off, `in_progress`) does not wait out the
//! grace: the SecuTix client shares the shutdown token, so the wait ends at once and the run is recorded
//! with the error it was retrying. A reload (SIGHUP in `main`) re-reads the configuration: an invalid one is refused with the
//! reason logged, and the old one stays.

use crate::availability::{self, AvailabilityStore, PollOptions, Poller};
use crate::catalog::Id;
use crate::clock::SharedClock;
use crate::config::{Config, Sources};
use crate::import::{ImportError, ImportOptions, run_import};
use crate::push::{DrainOptions, DrainReport, Outbox, PlanReport, PlanTarget, PushSettings, Scope, Worker};
use crate::secutix::{CallError, Client};
use crate::store::{ImportOutcome, Store, StoreError};
use crate::targets::Target;
use crate::targets::passculture::PassCultureTarget;
use crate::targets::passculture::contremarque::BoxOffice;
use chrono::{DateTime, Utc};
use jobs::{Job, Requested, Schedule, Trigger};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod app;
mod lifecycle;
mod runs;
mod schedule;

pub use app::*;
pub use lifecycle::*;
#[allow(unused_imports)]
use schedule::*;

pub mod documents;

pub mod jobs;

pub mod notify;

pub mod status;

pub mod summaries;

/// Name of the file, in the store folder, that holds the control API's address while the daemon runs
/// (useful when `control.listen` asks for port 0).
pub const ADDRESS_FILE: &str = "control-address";

/// Name of the file, in the store folder, of the generated control token.
pub const TOKEN_FILE: &str = "control-token";

/// Shortest wait between two availability polls, whatever the planner says (guards against a hot loop).
const MIN_POLL_GAP: Duration = Duration::from_secs(60);

/// Wait before retrying a poll that could not run at all (store error).
const POLL_RETRY: Duration = Duration::from_secs(300);

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The SecuTix client (secret unreadable…).
    #[error("cannot set up the SecuTix client: {0}")]
    Client(#[from] CallError),
    /// A target could not be built.
    #[error("cannot set up target {name}: {reason}")]
    Target {
        /// The target.
        name: String,
        /// Why.
        reason: String,
    },
    /// The control API could not listen.
    #[error("cannot listen on {addr} (control.listen): {reason}; is another program using this port?")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Local I/O (token file…).
    #[error("{0}")]
    Io(String),
    /// A control token too weak for where the control API listens.
    #[error("{0}")]
    WeakToken(String),
}

/// A target with its worker settings.
#[derive(Clone)]
pub struct TargetRuntime {
    /// The target.
    pub target: Arc<dyn Target>,
    /// How its worker sends.
    pub settings: PushSettings,
    /// Whether it receives anything.
    pub enabled: bool,
}

/// What the daemon keeps for one `passculture` target besides its push worker: the box office behind the
/// control API's `/passculture/bookings/…`, and the reader of the offers' pass Culture statuses.
pub struct PassCultureRuntime {
    /// The box office, or why it could not be set up (shown to the caller).
    pub box_office: Result<BoxOffice, String>,
    /// Reads the offers' statuses again (`PENDING` → `ACTIVE` / `REJECTED`) on scheduled refresh runs.
    statuses: Option<PassCultureTarget>,
    /// How booking dates are shown.
    pub time_zone: chrono_tz::Tz,
}

/// Counters kept in memory for `/metrics` (reset at restart; Prometheus counters handle that).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Operations acknowledged, per target.
    pub delivered: Mutex<BTreeMap<String, u64>>,
    /// Operations moved to dead letters, per target.
    pub dead: Mutex<BTreeMap<String, u64>>,
    /// Failed attempts, per target.
    pub retried: Mutex<BTreeMap<String, u64>>,
}

/// Why a job run failed, and when the job should try again.
#[derive(Debug, Clone)]
pub struct RunFailure {
    /// For operators (`/status`, logs).
    pub message: String,
    /// When to try again.
    pub retry: Retry,
}

/// When a failed run is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the job's growing, jittered back-off.
    Backoff,
    /// Not before this time (SecuTix's 10-minute rule, the poll planner).
    At(DateTime<Utc>),
    /// Not by itself: at the next scheduled run (a refusal that needs an operator).
    Schedule,
}

/// The shared handle of the running daemon.
pub struct App {
    /// The store (its lock makes this process the only one on it).
    pub store: Store,
    /// The outbox of every target.
    pub outbox: Outbox,
    /// Calendar time (the store's clock: system time in production, tokio's paused clock in tests).
    pub clock: SharedClock,
    /// The catalogue job.
    pub catalogue: Job<summaries::CatalogueRun>,
    /// The availability job.
    pub availability: Job<summaries::PollRun>,
    /// The refresh (plan every entry) job.
    pub refresh: Job<summaries::RefreshRun>,
    /// In-memory counters.
    pub metrics: Metrics,
    /// Cancelled on shutdown: loops stop taking work.
    pub shutdown: CancellationToken,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Std locks around swappable parts: read for an instant, never held across `.await`.
    config: RwLock<Arc<Config>>,
    client: RwLock<Arc<Client>>,
    targets: RwLock<Arc<Vec<TargetRuntime>>>,
    /// The `passculture` targets' box offices and status readers, by target name.
    passculture: RwLock<Arc<BTreeMap<String, PassCultureRuntime>>>,
    control_token: RwLock<SecretString>,
    /// Bumped by every successful reload: loops recompute their timers, workers restart on the new targets.
    config_version: watch::Sender<u64>,
    /// Bumped after every plan that enqueued something: workers drain again.
    plan_version: watch::Sender<u64>,
    /// Bumped after every good import: the availability loop waits on it for the first catalogue.
    catalogue_version: watch::Sender<u64>,
    /// Plans from the three jobs are serialised: each reads and writes the entries as a whole, then updates
    /// the public document from the previous one. A std mutex, because a plan is synchronous (sled, files)
    /// and never awaits.
    plan_lock: Mutex<()>,
    /// The public availability document, updated after plans that changed an entry.
    public: RwLock<Arc<crate::public::PublicSnapshot>>,
    /// Where the configuration comes from, for reloads.
    sources: Sources,
}

/// Where the control token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `control.token`.
    Config,
    /// `control.token_file`.
    File(PathBuf),
    /// Generated into the store folder.
    Generated(PathBuf),
}
