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

pub mod documents;
pub mod jobs;
pub mod notify;
pub mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
use jobs::{Job, Requested, Schedule, Trigger};

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

fn build_passculture(config: &Config, store: &Store) -> BTreeMap<String, PassCultureRuntime> {
    config
        .targets
        .iter()
        .filter(|t| t.kind == crate::targets::registry::TargetKind::Passculture)
        .filter_map(|t| Some((t, t.passculture.as_ref()?)))
        .map(|(t, settings)| {
            let statuses = (t.enabled && !settings.selection().is_empty())
                .then(|| PassCultureTarget::new(&t.name, settings, store))
                .and_then(|r| {
                    r.map_err(|e| tracing::warn!(target_name = %t.name, error = %e, "cannot read pass Culture offer statuses"))
                        .ok()
                });
            let runtime = PassCultureRuntime {
                box_office: BoxOffice::new(&t.name, settings).map_err(|e| e.to_string()),
                statuses,
                time_zone: settings.time_zone.parse().unwrap_or(chrono_tz::Europe::Paris),
            };
            (t.name.clone(), runtime)
        })
        .collect()
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

impl Metrics {
    /// The counter of `target` in `m`.
    pub fn get(m: &Mutex<BTreeMap<String, u64>>, target: &str) -> u64 {
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    fn add(&self, target: &str, r: &DrainReport) {
        for (m, by) in [
            (&self.delivered, r.delivered),
            (&self.dead, r.dead),
            (&self.retried, r.retried),
        ] {
            if by > 0 {
                *m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(target.to_owned())
                    .or_default() += by;
            }
        }
    }
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

impl RunFailure {
    fn backoff(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    fn from_import(e: &ImportError) -> Self {
        let retry = match e {
            ImportError::Call(CallError::TooSoon { next, .. }) => Retry::At(*next),
            ImportError::Refused(_) => Retry::Schedule,
            _ => Retry::Backoff,
        };
        let mut message = e.to_string();
        if matches!(e, ImportError::Refused(_)) {
            message.push_str("; through the daemon: `secutix-sync resync --catalogue --force`");
        }
        Self { message, retry }
    }
}

impl From<StoreError> for RunFailure {
    fn from(e: StoreError) -> Self {
        RunFailure::backoff(e.to_string())
    }
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
    pub catalogue: Job,
    /// The availability job.
    pub availability: Job,
    /// The refresh (plan every entry) job.
    pub refresh: Job,
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

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn build_targets(config: &Config, store: &Store) -> Result<Vec<TargetRuntime>, DaemonError> {
    config
        .targets
        .iter()
        .map(|t| {
            let target = crate::targets::build(t, store).map_err(|e| DaemonError::Target {
                name: t.name.clone(),
                reason: e.to_string(),
            })?;
            Ok(TargetRuntime {
                target,
                settings: t.push_settings(),
                enabled: t.enabled,
            })
        })
        .collect()
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

/// Reads the control token without creating one: `control.token`, else `control.token_file`, else
/// `<store.path>/control-token`. `Ok(None)` when none exists yet (no daemon ever started on this store).
pub fn read_control_token(config: &Config) -> Result<Option<(SecretString, TokenSource)>, DaemonError> {
    if let Some(t) = &config.control.token {
        return Ok(Some((t.clone(), TokenSource::Config)));
    }
    let read_first_line = |path: &Path, key: &str| -> Result<Option<SecretString>, DaemonError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let line = text.lines().next().unwrap_or("").trim().to_owned();
                Ok((!line.is_empty()).then(|| SecretString::from(line)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key.is_empty() => Ok(None),
            Err(e) => Err(DaemonError::Io(format!(
                "cannot read the control token {}{key}: {e}; run as the service's user (e.g. sudo -u secutix-sync) \
                 or set control.token_file to a file you can read",
                path.display()
            ))),
        }
    };
    if !config.control.token_file.is_empty() {
        let path = crate::credentials::resolve_credential_path(&config.control.token_file);
        return match read_first_line(&path, " (control.token_file)")? {
            Some(t) => Ok(Some((t, TokenSource::File(path)))),
            None => Err(DaemonError::Io(format!(
                "the control token file {} (control.token_file) is empty",
                path.display()
            ))),
        };
    }
    let path = config.store.path.join(TOKEN_FILE);
    Ok(read_first_line(&path, "")?.map(|t| (t, TokenSource::Generated(path))))
}

/// The daemon's control token: configured, or generated once into `<store.path>/control-token` (mode 0600).
pub fn control_token(config: &Config) -> Result<SecretString, DaemonError> {
    if let Some((t, source)) = read_control_token(config)? {
        let key = match &source {
            TokenSource::Config => "control.token".to_owned(),
            TokenSource::File(p) => format!("control.token_file ({})", p.display()),
            TokenSource::Generated(p) => p.display().to_string(),
        };
        // Beyond loopback, anyone who can reach the port may try tokens.
        if let Some(m) = config.control.weak_token_problem(&t, &key) {
            return Err(DaemonError::WeakToken(m));
        }
        return Ok(t);
    }
    let path = config.store.path.join(TOKEN_FILE);
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, format!("{token}\n").as_bytes())
        .map_err(|e| DaemonError::Io(format!("cannot write the control token {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated the control API token");
    Ok(SecretString::from(token))
}

/// Logs a warning for every file holding a secret that other users may read (see
/// [`crate::config::exposed_secret_files`]).
fn warn_exposed_secrets(config: &Config, sources: &Sources) {
    for p in crate::config::exposed_secret_files(config, sources.config_file().as_deref()) {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl App {
    /// Builds the handle. `store` is opened by the caller: its lock is the single-instance guard.
    pub fn build(config: Config, sources: Sources, store: Store) -> Result<Arc<Self>, DaemonError> {
        let clock = store.clock().clone();
        let shutdown = CancellationToken::new();
        // Its waits (retry back-off, in_progress) end at the shutdown, not after the grace.
        let client = Client::new(&config.secutix, Arc::new(store.clone()), clock.clone())?
            .with_spool_dir(config.store.path.clone())
            .with_cancel(shutdown.clone());
        let outbox = Outbox::open(&store)?;
        let targets = build_targets(&config, &store)?;
        let passculture = build_passculture(&config, &store);
        let control_token = control_token(&config)?;
        warn_exposed_secrets(&config, &sources);
        let app = Arc::new(Self {
            outbox,
            catalogue: Job::new("catalogue"),
            availability: Job::new("availability"),
            refresh: Job::new("refresh"),
            metrics: Metrics::default(),
            shutdown,
            started_at: clock.now(),
            config: RwLock::new(Arc::new(config)),
            client: RwLock::new(Arc::new(client)),
            targets: RwLock::new(Arc::new(targets)),
            passculture: RwLock::new(Arc::new(passculture)),
            control_token: RwLock::new(control_token),
            config_version: watch::channel(0).0,
            plan_version: watch::channel(0).0,
            catalogue_version: watch::channel(0).0,
            plan_lock: Mutex::new(()),
            public: RwLock::new(Arc::new(crate::public::PublicSnapshot::default())),
            sources,
            clock,
            store,
        });
        app.catalogue
            .set_last_success(app.store.last_good_import()?.map(|r| r.finished_at));
        app.rebuild_public()?;
        Ok(app)
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The SecuTix client in force.
    pub fn client(&self) -> Arc<Client> {
        self.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The targets in force.
    pub fn targets(&self) -> Arc<Vec<TargetRuntime>> {
        self.targets.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The `passculture` targets' box offices, by target name.
    pub fn passculture(&self) -> Arc<BTreeMap<String, PassCultureRuntime>> {
        self.passculture.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the pass Culture status of every published offer again, target by target; the summary per
    /// target (`updated` offers, or the `error`). A failure is logged and changes nothing else.
    pub async fn refresh_offer_statuses(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, pc) in self.passculture().iter() {
            let Some(reader) = &pc.statuses else { continue };
            let row = match reader.refresh_statuses().await {
                Ok(n) => json!({"updated": n}),
                Err(e) => {
                    tracing::warn!(target_name = %name, error = %e, "cannot read the pass Culture offer statuses; next try at the next refresh");
                    json!({"error": e.to_string()})
                }
            };
            out.insert(name.clone(), row);
        }
        Value::Object(out)
    }

    /// The control API token.
    pub fn control_token(&self) -> SecretString {
        self.control_token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The public availability document.
    pub fn public(&self) -> Arc<crate::public::PublicSnapshot> {
        self.public.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn rebuild_public(&self) -> Result<(), StoreError> {
        let snap = crate::public::PublicSnapshot::build(&self.outbox)?;
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        Ok(())
    }

    /// The catalogue schedule in force, in the configured time zone or else the venue's.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let cfg = self.config();
        let tz = if cfg.daemon.time_zone.is_empty() {
            self.store.time_zone()
        } else {
            cfg.daemon
                .time_zone
                .parse()
                .map_err(|_| format!("daemon.time_zone {:?} is not an IANA time zone", cfg.daemon.time_zone))?
        };
        Schedule::new(&cfg.daemon.catalogue_schedule, tz)
    }

    /// Reloads the configuration from its sources. An invalid configuration is refused (the error says
    /// why) and the old one stays. `store.path` and `control.listen` need a restart: their old values stay.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = crate::config::Config::load(&self.sources).map_err(|e| e.to_string())?;
        for p in &loaded.unknown_keys {
            tracing::warn!(key = %p.key, "{}", p.message);
        }
        let mut new = loaded.config;
        let old = self.config();
        if new.store.path != old.store.path || new.control.listen != old.control.listen {
            tracing::warn!(
                "store.path and control.listen take effect at the next restart; the running daemon keeps {} and {}",
                old.store.path.display(),
                old.control.listen
            );
            new.store.path = old.store.path.clone();
            new.control.listen = old.control.listen.clone();
        }
        if new.control.listener_limits() != old.control.listener_limits() {
            tracing::warn!(
                "control.max_connections, header_read_timeout and idle_timeout take effect at the next restart; \
                 the running listener keeps its limits"
            );
            new.control.max_connections = old.control.max_connections;
            new.control.header_read_timeout = old.control.header_read_timeout;
            new.control.idle_timeout = old.control.idle_timeout;
        }
        let client = Client::new(&new.secutix, Arc::new(self.store.clone()), self.clock.clone())
            .map_err(|e| e.to_string())?
            .with_spool_dir(new.store.path.clone())
            .with_cancel(self.shutdown.clone());
        let targets = build_targets(&new, &self.store).map_err(|e| e.to_string())?;
        let token = control_token(&new).map_err(|e| e.to_string())?;
        warn_exposed_secrets(&new, &self.sources);
        let passculture = build_passculture(&new, &self.store);
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
        *self.targets.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(targets);
        *self.passculture.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(passculture);
        *self.control_token.write().unwrap_or_else(|p| p.into_inner()) = token;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        self.config_version.send_modify(|v| *v += 1);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    fn plan_targets(&self) -> Vec<PlanTarget> {
        self.config()
            .targets
            .iter()
            .filter(|t| t.enabled)
            .map(crate::targets::plan_target)
            .collect()
    }

    /// Builds entries for `scope`, enqueues what targets lack (everything with `full`), wakes the workers
    /// and refreshes the public document.
    pub fn plan(&self, scope: &Scope, full: bool) -> Result<PlanReport, StoreError> {
        let cfg = self.config();
        let status = availability::status_fn(AvailabilityStore::new(&self.store)?);
        let report = {
            let _one_at_a_time = self.plan_lock.lock().unwrap_or_else(|p| p.into_inner());
            let report = self.outbox.plan(
                &self.plan_targets(),
                &cfg.entries.options(),
                &status,
                scope,
                full,
                false,
            )?;
            if report.changed_entries > 0 {
                // Within the lock: each update starts from the document of the plan before.
                let previous = self.public();
                let snap = crate::public::PublicSnapshot::update(Some(&previous), &self.outbox, &report.changed)?;
                *self.public.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
            }
            report
        };
        if report.targets.values().any(|t| !t.operations.is_empty()) {
            self.plan_version.send_modify(|v| *v += 1);
        }
        Ok(report)
    }

    /// The plan of every entry for `targets`, without writing or sending anything (`push --dry-run` while
    /// the daemon runs), with the statuses the daemon plans with.
    pub fn dry_run(
        &self,
        targets: &[PlanTarget],
        options: &crate::merge::EntryOptions,
    ) -> Result<PlanReport, StoreError> {
        let status = availability::status_fn(AvailabilityStore::new(&self.store)?);
        // The same view a real plan would have: not in the middle of another plan.
        let _one_at_a_time = self.plan_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.outbox.plan(targets, options, &status, &Scope::All, false, true)
    }

    /// Makes the push workers look at their outboxes again (after a replay).
    pub fn wake_workers(&self) {
        self.plan_version.send_modify(|v| *v += 1);
    }

    /// One catalogue import; every entry is planned after it (here when availability is off, else after
    /// the poll the availability loop runs at once).
    pub async fn run_catalogue(&self, force: bool) -> Result<Value, RunFailure> {
        let cfg = self.config();
        let client = self.client();
        let report = run_import(&client, &self.store, &cfg.catalogue, ImportOptions { force })
            .await
            .map_err(|e| RunFailure::from_import(&e))?;
        let mut summary = serde_json::to_value(&report).unwrap_or(Value::Null);
        if matches!(report.outcome, ImportOutcome::Success | ImportOutcome::Unchanged) {
            self.catalogue_version.send_modify(|v| *v += 1);
            if cfg.availability.enabled {
                // The availability loop polls at once and then plans every entry: one plan, with fresh
                // indicators, instead of pushing new entries as "unknown" and again a minute later.
                summary["plan"] = json!("after the availability poll that follows the import");
            } else {
                let plan = self.plan(&Scope::All, false)?;
                summary["plan"] = plan_summary(&plan);
            }
        }
        Ok(summary)
    }

    /// One availability poll, or one per product of `products`. Products whose indicator changed are
    /// planned at once; the entries of `products` are also re-sent to every target. With `plan_all` (the
    /// first poll after an import) every entry is planned, whether the poll succeeded or not.
    pub async fn run_availability(&self, products: &[Id], plan_all: bool) -> Result<Value, RunFailure> {
        let result = self.poll_and_plan_changed(products, plan_all).await;
        if !plan_all {
            return result;
        }
        let plan = plan_summary(&self.plan(&Scope::All, false)?);
        match result {
            Ok(mut summary) => {
                summary["plan"] = plan;
                Ok(summary)
            }
            Err(f) => Err(f),
        }
    }

    async fn poll_and_plan_changed(&self, products: &[Id], plan_all: bool) -> Result<Value, RunFailure> {
        let no_catalogue = || RunFailure {
            message: "no catalogue yet: the first import has not succeeded".into(),
            retry: Retry::Schedule,
        };
        let Some(view) = self.store.catalog()? else {
            return Err(no_catalogue());
        };
        for &id in products {
            if view.product(id)?.is_none() {
                return Err(RunFailure {
                    message: format!(
                        "product {id} is not in the catalogue in force; check the id (`secutix-sync entries list`), \
                         or import first (`secutix-sync resync --catalogue`)"
                    ),
                    retry: Retry::Schedule,
                });
            }
        }
        let cfg = self.config();
        let poller = Poller::new(self.client(), self.store.clone(), cfg.availability.clone())?
            .with_progress(self.availability.progress_sink());
        let scopes: Vec<Option<Id>> = if products.is_empty() {
            vec![None]
        } else {
            products.iter().copied().map(Some).collect()
        };
        let mut report: Option<crate::availability::PollReport> = None;
        for product in scopes {
            let r = poller
                .poll_once(PollOptions { product })
                .await
                .map_err(|e| RunFailure::backoff(e.to_string()))?;
            report = Some(match report {
                None => r,
                Some(mut acc) => {
                    acc.calls += r.calls;
                    acc.fetched.extend(r.fetched);
                    acc.stale.extend(r.stale);
                    acc.pending = r.pending;
                    acc.changes.extend(r.changes);
                    acc.dirty.extend(r.dirty);
                    acc.month_calls = r.month_calls;
                    acc.next_poll_in = r.next_poll_in;
                    acc.error = acc.error.or(r.error);
                    acc
                }
            });
        }
        let Some(report) = report else {
            return Err(RunFailure::backoff("no poll ran"));
        };
        let avail = poller.availability();
        let marks = avail.dirty_products()?;
        let mut summary = json!({
            "calls": report.calls,
            "fetched": report.fetched.len(),
            "stale": report.stale.len(),
            "pending": report.pending,
            "changes": report.changes.len(),
            "dirty": report.dirty.len(),
            "month_calls": report.month_calls,
            "next_poll_in_secs": report.next_poll_in.as_secs(),
            "error": report.error,
        });
        if plan_all {
            // The caller plans every entry, these included.
            avail.clear_dirty(&marks)?;
        } else if !marks.is_empty() {
            let ids: Vec<Id> = marks.iter().map(|m| m.product_id).collect();
            let plan = self.plan(&Scope::Products(ids), false)?;
            avail.clear_dirty(&marks)?;
            summary["plan"] = plan_summary(&plan);
        }
        if !products.is_empty() {
            let plan = self.plan(&Scope::Products(products.to_vec()), true)?;
            summary["products"] = json!(products);
            summary["product_plan"] = plan_summary(&plan);
        }
        let next = self.clock.now() + chrono::Duration::from_std(report.next_poll_in).unwrap_or_default();
        summary["next_poll_at"] = json!(next);
        match report.error {
            Some(e) => Err(RunFailure {
                message: e,
                retry: Retry::At(next),
            }),
            None => Ok(summary),
        }
    }

    /// `/status`, also summarised in systemd's `STATUS=`.
    pub fn status(&self) -> Value {
        status::status_document(&self.config(), &self.store, &self.outbox, Some(self))
    }

    /// One line for systemd's `STATUS=`.
    pub fn status_line(&self) -> String {
        let live = self.store.catalog().ok().flatten().map_or(0, |c| c.meta.live);
        let pending: usize = self
            .targets()
            .iter()
            .map(|t| self.outbox.depth(t.target.name()).unwrap_or(0))
            .sum();
        let last = self
            .catalogue
            .state()
            .last_success_at
            .map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        let running: Vec<&str> = [&self.catalogue, &self.availability, &self.refresh]
            .iter()
            .filter(|j| j.state().running.is_some())
            .map(|j| j.name)
            .collect();
        let running = if running.is_empty() {
            String::new()
        } else {
            format!(", running: {}", running.join(", "))
        };
        format!("{live} products, last import {last}, {pending} operations pending{running}")
    }
}

/// A short JSON summary of a plan.
pub fn plan_summary(p: &PlanReport) -> Value {
    json!({
        "entries": p.entries,
        "changed": p.changed_entries,
        "targets": p.targets.iter().map(|(k, t)| (k.clone(), json!({
            "create": t.create, "update": t.update, "unpublish": t.unpublish, "delete": t.delete,
            "unchanged": t.unchanged, "dead": t.dead, "dropped": t.dropped, "skipped": t.skipped,
        }))).collect::<serde_json::Map<_, _>>(),
    })
}

async fn sleep_until(clock: &SharedClock, at: DateTime<Utc>) {
    tokio::time::sleep((at - clock.now()).to_std().unwrap_or(Duration::ZERO)).await;
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a loop woke up for.
enum Wake {
    Stop,
    Requested,
    Timer,
    Reconfigured,
}

/// Waits for the first of: shutdown, a manual request, a reload (`config`), `extra` changing, or `at`.
async fn wait(
    app: &App,
    job: &Job,
    at: Option<DateTime<Utc>>,
    config: &mut watch::Receiver<u64>,
    extra: Option<&mut watch::Receiver<u64>>,
) -> Wake {
    let extra_changed = async {
        match extra {
            Some(rx) => {
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    let timer = async {
        match at {
            Some(at) => sleep_until(&app.clock, at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = app.shutdown.cancelled() => Wake::Stop,
        _ = job.requested() => Wake::Requested,
        _ = config.changed() => Wake::Reconfigured,
        _ = extra_changed => Wake::Reconfigured,
        _ = timer => Wake::Timer,
    }
}

async fn catalogue_loop(app: Arc<App>) {
    let mut retry = app.config().daemon.catalogue_retry;
    // A retry (back-off or SecuTix's 10-minute rule) due before the next scheduled run.
    let mut deferred: Option<DateTime<Utc>> = None;
    let mut at_start = true;
    let mut config = app.config_version.subscribe();
    loop {
        let now = app.clock.now();
        let (at, fallback) = match app.schedule() {
            Ok(s) if at_start && s.missed(app.catalogue.state().last_success_at, now) => {
                match app.catalogue.state().last_success_at {
                    None => tracing::info!("no catalogue has been imported yet: importing now"),
                    Some(last) => tracing::info!(
                        last_good_import = %last,
                        "the last good import is older than the last scheduled one: importing now (catch-up)"
                    ),
                }
                (now, Trigger::CatchUp)
            }
            Ok(s) => {
                let scheduled = s.next_after(now);
                match (deferred, scheduled) {
                    (Some(d), Some(n)) if n <= d => (n, Trigger::Scheduled),
                    (Some(d), _) => (d, Trigger::Retry),
                    (None, Some(n)) => (n, Trigger::Scheduled),
                    (None, None) => (after(now, Duration::from_secs(86_400)), Trigger::Scheduled),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot compute the catalogue schedule; trying again in an hour");
                (after(now, Duration::from_secs(3600)), Trigger::Retry)
            }
        };
        app.catalogue.set_next(Some(at));
        let fallback = match wait(&app, &app.catalogue, Some(at), &mut config, None).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(fallback),
        };
        let Some(guard) = app.catalogue.start(fallback, app.clock.now()) else {
            continue;
        };
        at_start = false;
        let force = matches!(guard.trigger(), Trigger::Manual { force: true, .. });
        tracing::info!(run = guard.id(), trigger = %guard.trigger(), "catalogue import starting");
        let result = app.run_catalogue(force).await;
        let now = app.clock.now();
        let cfg = app.config();
        match &result {
            Ok(_) => {
                retry = cfg.daemon.catalogue_retry;
                deferred = None;
            }
            // Stopped by the shutdown: nothing to retry.
            Err(_) if app.shutdown.is_cancelled() => deferred = None,
            Err(f) => match f.retry {
                Retry::Backoff => {
                    let wait = crate::backoff::half_jitter(retry);
                    tracing::warn!(retry_in = %crate::text::human(wait), "catalogue import failed; will retry");
                    deferred = Some(after(now, wait));
                    retry = crate::backoff::grow_jittered(retry, cfg.daemon.catalogue_retry_max);
                }
                Retry::At(t) => deferred = Some(t),
                Retry::Schedule => deferred = None,
            },
        }
        let result = result.map_err(|f| match (f.retry, deferred) {
            (Retry::Backoff | Retry::At(_), Some(at)) => {
                format!(
                    "{}; the daemon retries at {}",
                    f.message,
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                )
            }
            _ => f.message,
        });
        app.catalogue.finish(guard, now, result);
        if app.catalogue.take_chain() && cfg.availability.enabled {
            let r = app.availability.request(Trigger::manual());
            app.catalogue
                .annotate_last("then", json!({"job": "availability", "run": r.run()}));
        }
    }
}

async fn availability_loop(app: Arc<App>) {
    let mut catalogues = app.catalogue_version.subscribe();
    // The catalogue version whose entries were last planned; `run` plans the one in force at start.
    let mut planned_for = *catalogues.borrow_and_update();
    let mut next = app.clock.now();
    let mut config = app.config_version.subscribe();
    loop {
        let enabled = app.config().availability.enabled;
        let imported = *catalogues.borrow_and_update();
        if imported != planned_for {
            if enabled {
                // The first poll after an import comes at once; it plans every entry.
                next = next.min(app.clock.now());
            } else {
                // The import planned its entries itself.
                planned_for = imported;
            }
        }
        let has_catalogue = app.store.generation().ok().flatten().is_some();
        let at = (enabled && has_catalogue).then_some(next);
        app.availability.set_next(at);
        let fallback = match wait(&app, &app.availability, at, &mut config, Some(&mut catalogues)).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(Trigger::Scheduled),
        };
        let Some(guard) = app.availability.start(fallback, app.clock.now()) else {
            continue;
        };
        let products = guard.trigger().products().to_vec();
        let imported = *catalogues.borrow();
        let result = app.run_availability(&products, imported != planned_for).await;
        planned_for = imported;
        let now = app.clock.now();
        let wait = match &result {
            Ok(summary) => summary["next_poll_at"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .map_or(POLL_RETRY, |t| (t - now).to_std().unwrap_or_default()),
            Err(RunFailure {
                retry: Retry::At(t), ..
            }) => (*t - now).to_std().unwrap_or_default(),
            Err(_) => POLL_RETRY,
        };
        app.availability.finish(guard, now, result.map_err(|f| f.message));
        next = after(now, wait.max(MIN_POLL_GAP));
    }
}

async fn refresh_loop(app: Arc<App>) {
    let mut config = app.config_version.subscribe();
    loop {
        let at = after(app.clock.now(), app.config().daemon.refresh_interval);
        app.refresh.set_next(Some(at));
        let fallback = match wait(&app, &app.refresh, Some(at), &mut config, None).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(Trigger::Scheduled),
        };
        let Some(guard) = app.refresh.start(fallback, app.clock.now()) else {
            continue;
        };
        let (full, scope) = match guard.trigger() {
            Trigger::Manual { force, products, .. } if !products.is_empty() => {
                (*force, Scope::Products(products.clone()))
            }
            Trigger::Manual { force, .. } => (*force, Scope::All),
            _ => (false, Scope::All),
        };
        let scheduled = matches!(guard.trigger(), Trigger::Scheduled);
        let result = match app.plan(&scope, full) {
            Ok(p) => {
                let mut summary = plan_summary(&p);
                if scheduled && !app.passculture().is_empty() {
                    // pass Culture validates new offers within 72 h: its verdict shows in /status.
                    summary["passculture_statuses"] = app.refresh_offer_statuses().await;
                }
                Ok(summary)
            }
            Err(e) => Err(e.to_string()),
        };
        app.refresh.finish(guard, app.clock.now(), result);
    }
}

/// Runs one worker per enabled target until `stop`.
async fn workers(app: Arc<App>, stop: CancellationToken) {
    let mut set = tokio::task::JoinSet::new();
    for t in app.targets().iter().filter(|t| t.enabled).cloned() {
        let app = app.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let name = t.target.name().to_owned();
            // The counters of /status and /metrics move as each operation settles.
            let counted = {
                let (app, name) = (app.clone(), name.clone());
                Arc::new(move |settled: &crate::push::DrainReport| app.metrics.add(&name, settled))
            };
            let worker = match Worker::new(&app.outbox, t.target.clone(), t.settings.clone()) {
                Ok(w) => w.on_settled(counted),
                Err(e) => {
                    tracing::error!(target_name = %name, error = %e, "cannot start the push worker");
                    return;
                }
            };
            let mut plans = app.plan_version.subscribe();
            loop {
                plans.borrow_and_update();
                let opts = DrainOptions {
                    max_wait: Duration::ZERO,
                    stop: Some(stop.clone()),
                };
                let next = match worker.drain(opts).await {
                    Ok(report) => report.next_attempt_at,
                    Err(e) => {
                        tracing::error!(target_name = %name, error = %e, "push worker failed on the store; retrying in a minute");
                        Some(after(app.clock.now(), Duration::from_secs(60)))
                    }
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = plans.changed() => {}
                    _ = async { match next { Some(at) => sleep_until(&app.clock, at).await, None => std::future::pending().await } } => {}
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Runs the workers; restarts them on the new targets after a reload; stops them on shutdown (operations
/// in flight finish first).
async fn worker_supervisor(app: Arc<App>) {
    let mut versions = app.config_version.subscribe();
    loop {
        let stop = app.shutdown.child_token();
        let run = tokio::spawn(workers(app.clone(), stop.clone()));
        tokio::select! {
            _ = app.shutdown.cancelled() => { let _ = run.await; return; }
            _ = versions.changed() => { stop.cancel(); let _ = run.await; }
        }
    }
}

/// Feeds the systemd watchdog and `STATUS=` while the store answers.
async fn supervisor(app: Arc<App>) {
    let period = notify::watchdog_interval().unwrap_or(Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {
                // A store that no longer answers stops the pings: systemd restarts the service.
                match app.store.generation() {
                    Ok(_) => notify::watchdog(),
                    Err(e) => tracing::error!(error = %e, "the store does not answer; not feeding the watchdog"),
                }
                notify::status(&app.status_line());
            }
        }
    }
}

/// Runs the daemon until `shutdown` completes; `listener` serves `api` (the control API's router, built by
/// the caller: the daemon does not know the control API, which sits above it), every item of `reload`
/// reloads the configuration.
pub async fn run(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    api: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
) -> Result<(), DaemonError> {
    let address_file = app.config().store.path.join(ADDRESS_FILE);
    if let Ok(addr) = listener.local_addr()
        && let Err(e) = std::fs::write(&address_file, format!("{addr}\n"))
    {
        tracing::warn!(path = %address_file.display(), error = %e, "cannot write the control address file");
    }
    let mut tasks = tokio::task::JoinSet::new();
    // A connection cap, header-read and idle timeouts: idle or slow clients cannot use up the open files.
    let limits = app.config().control.listener_limits();
    if let Some(w) = crate::net::open_files_warning(limits.max_connections) {
        tracing::warn!("{w}");
    }
    tasks.spawn(crate::net::serve(
        "the control API",
        listener,
        api,
        limits,
        app.shutdown.clone(),
    ));
    // A first plan: entries may be due (time passed, a target was added) before any job runs.
    if let Err(e) = app.plan(&Scope::All, false) {
        tracing::error!(error = %e, "initial plan failed");
    }
    tasks.spawn(catalogue_loop(app.clone()));
    tasks.spawn(availability_loop(app.clone()));
    tasks.spawn(refresh_loop(app.clone()));
    tasks.spawn(worker_supervisor(app.clone()));
    tasks.spawn(supervisor(app.clone()));
    {
        let app = app.clone();
        let mut reload = reload;
        tasks.spawn(async move {
            use futures_util::StreamExt;
            loop {
                tokio::select! {
                    _ = app.shutdown.cancelled() => return,
                    r = reload.next() => match r {
                        Some(()) => {
                            notify::reloading();
                            if let Err(e) = app.reload() {
                                tracing::error!(error = %e, "configuration reload refused; the previous configuration stays");
                            }
                            notify::ready(&app.status_line());
                        }
                        None => return,
                    }
                }
            }
        });
    }
    notify::ready(&app.status_line());
    tracing::info!(status = %app.status_line(), "secutix-sync is running");
    shutdown.await;
    tracing::info!("shutting down: no new work; work in flight may finish");
    notify::stopping();
    app.shutdown.cancel();
    let grace = app.config().daemon.shutdown_grace;
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            grace = %crate::text::human(grace),
            "work still in flight after daemon.shutdown_grace; abandoned (unsent operations stay in the outbox)"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let _ = std::fs::remove_file(&address_file);
    app.store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// `run --once`: import, availability poll, plan, push (waiting up to `push_wait` for retries), then
/// return. `Ok` when every step succeeded; the summary either way.
pub async fn run_once(app: Arc<App>, push_wait: Duration) -> Result<Value, Value> {
    let mut out = json!({});
    let mut failed = Vec::new();
    // Operations already waiting before this cycle: the push counts them with those the cycle queues.
    let waiting_before: BTreeMap<String, usize> = app
        .targets()
        .iter()
        .map(|t| {
            (
                t.target.name().to_owned(),
                app.outbox.depth(t.target.name()).unwrap_or(0),
            )
        })
        .collect();
    match app.run_catalogue(false).await {
        Ok(v) => out["catalogue"] = v,
        Err(e) => {
            out["catalogue"] = json!({"error": e.message});
            failed.push(format!("catalogue: {}", e.message));
        }
    }
    let has_catalogue = app.store.generation().ok().flatten().is_some();
    if has_catalogue && app.config().availability.enabled {
        match app.run_availability(&[], false).await {
            Ok(v) => out["availability"] = v,
            Err(e) => {
                out["availability"] = json!({"error": e.message});
                failed.push(format!("availability: {}", e.message));
            }
        }
    }
    match app.plan(&Scope::All, false) {
        Ok(plan) => out["plan"] = plan_summary(&plan),
        Err(e) => failed.push(format!("plan: {e}")),
    }
    // Every enabled target drained side by side, by the same step as `secutix-sync push`.
    let enabled: Vec<crate::pipeline::BuiltTarget> = app
        .targets()
        .iter()
        .filter(|t| t.enabled)
        .map(|t| crate::pipeline::BuiltTarget {
            name: t.target.name().to_owned(),
            target: t.target.clone(),
            settings: t.settings.clone(),
        })
        .collect();
    let to_send: BTreeMap<String, usize> = enabled
        .iter()
        .map(|t| (t.name.clone(), app.outbox.depth(&t.name).unwrap_or(0)))
        .collect();
    let drained = crate::pipeline::drain_all(&app.outbox, enabled, push_wait, None).await;
    let mut pushes = serde_json::Map::new();
    for (name, to_send) in to_send {
        let before = waiting_before.get(&name).copied().unwrap_or(0).min(to_send);
        match drained.get(&name) {
            Some(Ok(r)) => {
                if r.dead > 0 || r.pending > 0 {
                    failed.push(format!(
                        "target {name}: {} new dead letters, {} operations still pending",
                        r.dead, r.pending
                    ));
                }
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["to_send"] = json!(to_send);
                v["waiting_before"] = json!(before);
                pushes.insert(name, v);
            }
            Some(Err(e)) => {
                failed.push(format!("target {name}: {e}"));
                pushes.insert(name, json!({"error": e.to_string()}));
            }
            None => {
                failed.push(format!("target {name}: the push worker stopped unexpectedly"));
                pushes.insert(name, json!({"error": "the push worker stopped unexpectedly"}));
            }
        }
    }
    out["push"] = Value::Object(pushes);
    if let Err(e) = app.store.flush() {
        failed.push(format!("store: {e}"));
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        out["failed"] = json!(failed);
        Err(out)
    }
}

impl Requested {
    /// The run that covers the request.
    pub fn run(&self) -> u64 {
        match self {
            Requested::Accepted { run } | Requested::AlreadyRunning { run } => *run,
        }
    }
}
