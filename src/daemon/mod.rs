//! The long-running service (`secutix-sync run`): jobs, push workers, control API, shutdown and reload.
//!
//! # Shape (after mini-redis and atuin's daemon)
//! [`App`] is the shared handle. [`run`] starts, on one runtime:
//! - the **catalogue** job: cron in the venue's time zone, catch-up at start, jittered retry back-off after
//!   failures, manual triggers; a good import is followed by a plan of every entry;
//! - the **availability** job: polls at the interval the call-budget planner gives, manual triggers; changed
//!   indicators are planned right away (only those products);
//! - the **refresh** job: rebuilds every entry every `refresh_interval` (time-dependent fields) and on
//!   `resync push --full`;
//! - one **push worker** per target, woken by every plan (a `watch` counter) and by retry times;
//! - the **control API** (see `control.rs`);
//! - a supervisor that feeds the systemd watchdog, updates `STATUS=`, and restarts the workers when a
//!   reload changed the targets.
//!
//! The shutdown signal is a parameter of [`run`]; `main` passes SIGINT or SIGTERM. On shutdown no new work
//! starts, requests in flight get `shutdown_grace` to finish (what does not finish stays in the outbox),
//! the store is flushed, and `run` returns. SIGHUP reloads the configuration: an invalid one is refused
//! with the reason logged, and the old one stays.

pub mod jobs;
pub mod notify;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::availability::{self, AvailabilityStore, PollOptions, Poller};
use crate::catalog::{Id, Performance, Product};
use crate::clock::SharedClock;
use crate::config::{Config, Sources};
use crate::import::{ImportOptions, run_import};
use crate::merge::PerformanceStatus;
use crate::push::{DrainOptions, Outbox, PlanReport, PlanTarget, PushSettings, Scope, Worker};
use crate::secutix::{CallError, Client};
use crate::store::{ImportOutcome, Store, StoreError};
use crate::targets::Target;
use jobs::{Job, Schedule, Trigger};

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
    #[error("cannot listen on {addr} (control.listen): {reason}; is another secutix-sync running?")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Local I/O (token file…).
    #[error("{0}")]
    Io(String),
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

/// Counters kept in memory for `/metrics` (reset at restart; Prometheus handles that).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Operations acknowledged, per target.
    pub delivered: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Operations moved to dead letters, per target.
    pub dead: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Failed attempts, per target.
    pub retried: std::sync::Mutex<BTreeMap<String, u64>>,
}

fn bump(m: &std::sync::Mutex<BTreeMap<String, u64>>, key: &str, by: u64) {
    if by > 0 {
        *m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default() += by;
    }
}

/// The shared handle of the running daemon.
pub struct App {
    /// The store.
    pub store: Store,
    /// The outbox of every target.
    pub outbox: Outbox,
    /// Calendar time.
    pub clock: SharedClock,
    /// The catalogue job.
    pub catalogue: Job,
    /// The availability job.
    pub availability: Job,
    /// The refresh (plan every entry) job.
    pub refresh: Job,
    /// In-memory counters.
    pub metrics: Metrics,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Std locks around swappable parts: read for an instant, never held across `.await`.
    config: RwLock<Arc<Config>>,
    client: RwLock<Arc<Client>>,
    targets: RwLock<Arc<Vec<TargetRuntime>>>,
    /// Bumped when a reload changed the targets: the worker supervisor restarts them.
    targets_version: watch::Sender<u64>,
    /// Bumped after every plan that enqueued something: workers drain again.
    plan_version: watch::Sender<u64>,
    /// The public availability document, rebuilt after plans.
    public: RwLock<Arc<crate::control::PublicSnapshot>>,
    control_token: SecretString,
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

/// The control token: configured, or generated once and kept in `<store>/control-token` (mode 0600).
pub fn control_token(config: &Config) -> Result<SecretString, DaemonError> {
    use secrecy::ExposeSecret;
    if let Some(t) = &config.control.token {
        return Ok(t.clone());
    }
    if !config.control.token_file.is_empty() {
        let path = crate::config::resolve_credential_path(&config.control.token_file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            DaemonError::Io(format!(
                "cannot read the control token file {} (control.token_file): {e}",
                path.display()
            ))
        })?;
        return Ok(SecretString::from(text.lines().next().unwrap_or("").trim().to_owned()));
    }
    let path = config.store.path.join("control-token");
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(SecretString::from(text.trim().to_owned()));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, token.as_bytes())
        .map_err(|e| DaemonError::Io(format!("cannot write the control token {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated the control API token");
    let secret = SecretString::from(token);
    let _ = secret.expose_secret();
    Ok(secret)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
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
    /// Opens everything `run` needs. `store` is opened by the caller (its lock is the single-instance guard).
    pub fn build(config: Config, sources: Sources, store: Store) -> Result<Arc<Self>, DaemonError> {
        let clock = store.clock().clone();
        let client = Client::new(&config.secutix, Arc::new(store.clone()), clock.clone())?
            .with_spool_dir(config.store.path.clone());
        let outbox = Outbox::open(&store)?;
        let targets = build_targets(&config, &store)?;
        let control_token = control_token(&config)?;
        let app = Arc::new(Self {
            outbox,
            catalogue: Job::new("catalogue"),
            availability: Job::new("availability"),
            refresh: Job::new("refresh"),
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
            started_at: clock.now(),
            config: RwLock::new(Arc::new(config)),
            client: RwLock::new(Arc::new(client)),
            targets: RwLock::new(Arc::new(targets)),
            targets_version: watch::channel(0).0,
            plan_version: watch::channel(0).0,
            public: RwLock::new(Arc::new(crate::control::PublicSnapshot::default())),
            control_token,
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

    /// The control API token.
    pub fn control_token(&self) -> &SecretString {
        &self.control_token
    }

    /// The public availability document.
    pub fn public(&self) -> Arc<crate::control::PublicSnapshot> {
        self.public.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn rebuild_public(&self) -> Result<(), StoreError> {
        let snap = crate::control::PublicSnapshot::build(&self.outbox)?;
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        Ok(())
    }

    /// The venue's time zone for the schedule.
    fn schedule(&self) -> Result<Schedule, String> {
        let cfg = self.config();
        let tz = if cfg.daemon.time_zone.is_empty() {
            self.store.time_zone()
        } else {
            cfg.daemon
                .time_zone
                .parse()
                .map_err(|_| format!("unknown time zone {:?}", cfg.daemon.time_zone))?
        };
        Schedule::new(&cfg.daemon.catalogue_schedule, tz)
    }

    /// Reloads the configuration from its sources. An invalid configuration is refused and the old one
    /// stays. The store path and the control address are not reloadable (they need a restart).
    pub fn reload(&self) -> Result<(), String> {
        let loaded = Config::load(&self.sources).map_err(|e| e.to_string())?;
        for p in &loaded.unknown_keys {
            tracing::warn!(key = %p.key, "{}", p.message);
        }
        let new = loaded.config;
        let old = self.config();
        if new.store.path != old.store.path || new.control.listen != old.control.listen {
            tracing::warn!("store.path and control.listen changes need a restart; they are not applied");
        }
        let client = Client::new(&new.secutix, Arc::new(self.store.clone()), self.clock.clone())
            .map_err(|e| e.to_string())?
            .with_spool_dir(old.store.path.clone());
        let targets = build_targets(&new, &self.store).map_err(|e| e.to_string())?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
        *self.targets.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(targets);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        self.targets_version.send_modify(|v| *v += 1);
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

    /// Builds entries for `scope`, enqueues what targets lack, wakes the workers, refreshes the public
    /// document.
    pub fn plan(&self, scope: &Scope, full: bool) -> Result<PlanReport, StoreError> {
        let cfg = self.config();
        let avail = AvailabilityStore::new(&self.store)?;
        let status = move |product: &Product, perf: &Performance, now: DateTime<Utc>| -> PerformanceStatus {
            let stored = avail.performance(product.id, perf.id).ok().flatten();
            let s = availability::performance_status(product, perf, stored.as_ref(), now);
            PerformanceStatus {
                level: s.level.map(|l| l.code()),
                on_sale: s.on_sale,
            }
        };
        let report = self.outbox.plan(
            &self.plan_targets(),
            &cfg.entries.options(),
            &status,
            scope,
            full,
            false,
        )?;
        if report.targets.values().any(|t| !t.operations.is_empty()) {
            self.plan_version.send_modify(|v| *v += 1);
        }
        if report.changed_entries > 0 {
            self.rebuild_public()?;
        }
        Ok(report)
    }

    /// Makes the push workers look at their outboxes again (after a replay).
    pub fn wake_workers(&self) {
        self.plan_version.send_modify(|v| *v += 1);
    }

    /// One catalogue import followed by a plan of every entry.
    pub async fn run_catalogue(&self, force: bool) -> Result<Value, String> {
        let cfg = self.config();
        let client = self.client();
        let report = run_import(&client, &self.store, &cfg.catalogue, ImportOptions { force })
            .await
            .map_err(|e| e.to_string())?;
        let mut summary = serde_json::to_value(&report).unwrap_or(Value::Null);
        if report.outcome == ImportOutcome::Success || report.outcome == ImportOutcome::Unchanged {
            let plan = self.plan(&Scope::All, false).map_err(|e| e.to_string())?;
            summary["plan"] = plan_summary(&plan);
        }
        Ok(summary)
    }

    /// One availability poll (or one product's); changed products are planned at once.
    pub async fn run_availability(&self, product: Option<Id>) -> Result<(Value, Duration), String> {
        if self.store.generation().map_err(|e| e.to_string())?.is_none() {
            return Err("no catalogue yet: the first import has not succeeded".into());
        }
        let cfg = self.config();
        let poller =
            Poller::new(self.client(), self.store.clone(), cfg.availability.clone()).map_err(|e| e.to_string())?;
        let report = poller
            .poll_once(PollOptions { product })
            .await
            .map_err(|e| e.to_string())?;
        let avail = poller.availability();
        let marks = avail.dirty_products().map_err(|e| e.to_string())?;
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
        if !marks.is_empty() {
            let ids: Vec<Id> = marks.iter().map(|m| m.product_id).collect();
            let plan = self.plan(&Scope::Products(ids), false).map_err(|e| e.to_string())?;
            avail.clear_dirty(&marks).map_err(|e| e.to_string())?;
            summary["plan"] = plan_summary(&plan);
        }
        if let Some(e) = &report.error {
            return Err(e.clone());
        }
        Ok((summary, report.next_poll_in))
    }

    /// `/status`, also summarised in systemd's `STATUS=`.
    pub fn status(&self) -> Value {
        crate::control::status_document(self)
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
        format!("{live} products, last import {last}, {pending} operations pending")
    }
}

fn plan_summary(p: &PlanReport) -> Value {
    json!({
        "entries": p.entries,
        "changed": p.changed_entries,
        "targets": p.targets.iter().map(|(k, t)| (k.clone(), json!({
            "create": t.create, "update": t.update, "unpublish": t.unpublish, "delete": t.delete, "dead": t.dead,
        }))).collect::<serde_json::Map<_, _>>(),
    })
}

async fn sleep_until(clock: &SharedClock, at: DateTime<Utc>) {
    tokio::time::sleep((at - clock.now()).to_std().unwrap_or(Duration::ZERO)).await;
}

fn grow(d: Duration, max: Duration) -> Duration {
    // ×2 to ×2.2, capped (atuin's back-off).
    d.mul_f64(2.0 + rand::random::<f64>() * 0.2).min(max)
}

async fn catalogue_loop(app: Arc<App>) {
    let Some(mut triggers) = app.catalogue.take_triggers() else {
        return;
    };
    let mut retry = app.config().daemon.catalogue_retry;
    let mut next: Option<(DateTime<Utc>, Trigger)> = None;
    loop {
        let now = app.clock.now();
        let (at, trigger) = match next.take() {
            Some(n) => n,
            None => match app.schedule() {
                Ok(s) if s.missed(app.catalogue.state().last_success_at, now) => (now, Trigger::CatchUp),
                Ok(s) => (
                    s.next_after(now).unwrap_or(now + chrono::Duration::days(1)),
                    Trigger::Scheduled,
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot compute the catalogue schedule; retrying in an hour");
                    (now + chrono::Duration::hours(1), Trigger::Scheduled)
                }
            },
        };
        app.catalogue.set_next(Some(at));
        let trigger = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            t = triggers.recv() => match t { Some(t) => t, None => return },
            _ = sleep_until(&app.clock, at) => trigger,
        };
        app.catalogue.set_next(None);
        let force = matches!(trigger, Trigger::Manual { force: true, .. });
        let guard = app.catalogue.start(trigger, app.clock.now());
        let result = tokio::select! {
            r = app.run_catalogue(force) => r,
            _ = app.shutdown.cancelled() => Err("stopped by shutdown".to_owned()),
        };
        let failed = result.is_err();
        let too_soon = result.as_ref().err().is_some_and(|e| e.contains("one call per"));
        app.catalogue.finish(guard, app.clock.now(), result);
        if failed && !too_soon {
            let cfg = app.config();
            let at = app.clock.now() + chrono::Duration::from_std(crate::secutix::jitter(retry)).unwrap_or_default();
            retry = grow(retry, cfg.daemon.catalogue_retry_max);
            // Retry unless the schedule comes first.
            let scheduled = app.schedule().ok().and_then(|s| s.next_after(app.clock.now()));
            next = Some(match scheduled {
                Some(s) if s < at => (s, Trigger::Scheduled),
                _ => (at, Trigger::Scheduled),
            });
        } else if too_soon {
            let at =
                app.clock.now() + chrono::Duration::from_std(app.config().catalogue.min_interval).unwrap_or_default();
            next = Some((at, Trigger::Scheduled));
        } else {
            retry = app.config().daemon.catalogue_retry;
        }
    }
}

async fn availability_loop(app: Arc<App>) {
    let Some(mut triggers) = app.availability.take_triggers() else {
        return;
    };
    let mut next = app.clock.now();
    loop {
        if !app.config().availability.enabled {
            app.availability.set_next(None);
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
            }
        }
        app.availability.set_next(Some(next));
        let trigger = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            t = triggers.recv() => match t { Some(t) => t, None => return },
            _ = sleep_until(&app.clock, next) => Trigger::Scheduled,
        };
        app.availability.set_next(None);
        let product = match &trigger {
            Trigger::Manual { product, .. } => *product,
            _ => None,
        };
        let guard = app.availability.start(trigger, app.clock.now());
        let result = tokio::select! {
            r = app.run_availability(product) => r,
            _ = app.shutdown.cancelled() => Err("stopped by shutdown".to_owned()),
        };
        let wait = match &result {
            Ok((_, wait)) => *wait,
            // No catalogue yet, or a failure the poller could not plan around: try again in five minutes.
            Err(_) => Duration::from_secs(300),
        };
        app.availability.finish(guard, app.clock.now(), result.map(|(v, _)| v));
        next = app.clock.now() + chrono::Duration::from_std(wait.max(Duration::from_secs(60))).unwrap_or_default();
    }
}

async fn refresh_loop(app: Arc<App>) {
    let Some(mut triggers) = app.refresh.take_triggers() else {
        return;
    };
    loop {
        let every = app.config().daemon.refresh_interval;
        let at = app.clock.now() + chrono::Duration::from_std(every).unwrap_or_default();
        app.refresh.set_next(Some(at));
        let trigger = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            t = triggers.recv() => match t { Some(t) => t, None => return },
            _ = sleep_until(&app.clock, at) => Trigger::Scheduled,
        };
        let (full, scope) = match &trigger {
            Trigger::Manual {
                force,
                product: Some(id),
            } => (*force, Scope::Products(vec![*id])),
            Trigger::Manual { force, product: None } => (*force, Scope::All),
            _ => (false, Scope::All),
        };
        let guard = app.refresh.start(trigger, app.clock.now());
        let result = app
            .plan(&scope, full)
            .map(|p| plan_summary(&p))
            .map_err(|e| e.to_string());
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
            let worker = match Worker::new(&app.outbox, t.target.clone(), t.settings.clone()) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(target_name = %t.target.name(), error = %e, "cannot start the push worker");
                    return;
                }
            };
            let mut plans = app.plan_version.subscribe();
            let name = t.target.name().to_owned();
            loop {
                plans.borrow_and_update();
                let report = match worker.drain(DrainOptions { max_wait: Duration::ZERO, stop: Some(stop.clone()) }).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(target_name = %name, error = %e, "push worker failed on the store; retrying in a minute");
                        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(60)) => continue }
                    }
                };
                bump(&app.metrics.delivered, &name, report.delivered);
                bump(&app.metrics.dead, &name, report.dead);
                bump(&app.metrics.retried, &name, report.retried);
                if stop.is_cancelled() {
                    return;
                }
                let next = report.next_attempt_at;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = plans.changed() => {}
                    _ = sleep_until(&app.clock, next.unwrap_or_else(|| app.clock.now() + chrono::Duration::days(365))), if next.is_some() => {}
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Restarts the workers when a reload changed the targets; stops them on shutdown.
async fn worker_supervisor(app: Arc<App>) {
    let mut versions = app.targets_version.subscribe();
    loop {
        let stop = app.shutdown.child_token();
        let run = tokio::spawn(workers(app.clone(), stop.clone()));
        tokio::select! {
            _ = app.shutdown.cancelled() => { let _ = run.await; return; }
            _ = versions.changed() => { stop.cancel(); let _ = run.await; }
        }
    }
}

/// Feeds the systemd watchdog and `STATUS=` while the loops live.
async fn supervisor(app: Arc<App>) {
    let period = notify::watchdog_interval().unwrap_or(Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {
                notify::watchdog();
                notify::status(&app.status_line());
            }
        }
    }
}

/// Runs the daemon until `shutdown` completes (or `once` work is done). `listener` serves the control API.
pub async fn run(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
) -> Result<(), DaemonError> {
    let mut tasks = tokio::task::JoinSet::new();
    let router = crate::control::router(app.clone());
    let stop = app.shutdown.clone();
    tasks.spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "control API stopped");
        }
    });
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
                            if let Err(e) = app.reload() {
                                tracing::error!(error = %e, "configuration reload refused; the previous configuration stays");
                            }
                        }
                        None => return,
                    }
                }
            }
        });
    }
    // A first plan at start: entries may be due (time passed, a target was added).
    if let Err(e) = app.plan(&Scope::All, false) {
        tracing::error!(error = %e, "initial plan failed");
    }
    notify::ready(&app.status_line());
    tracing::info!("secutix-sync is running");
    shutdown.await;
    tracing::info!("shutting down: no new work; requests in flight may finish");
    notify::stopping();
    app.shutdown.cancel();
    let grace = app.config().daemon.shutdown_grace;
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(grace = ?grace, "work still in flight after the grace period; it stays in the outbox");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    app.store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// `run --once`: import, availability, plan, push, then return. Ok when every step succeeded.
pub async fn run_once(app: Arc<App>) -> Result<Value, String> {
    let mut out = json!({});
    let mut failed = Vec::new();
    match app.run_catalogue(false).await {
        Ok(v) => out["catalogue"] = v,
        Err(e) => {
            out["catalogue"] = json!({"error": e});
            failed.push(format!("catalogue: {e}"));
        }
    }
    if app.store.generation().map_err(|e| e.to_string())?.is_some() && app.config().availability.enabled {
        match app.run_availability(None).await {
            Ok((v, _)) => out["availability"] = v,
            Err(e) => {
                out["availability"] = json!({"error": e});
                failed.push(format!("availability: {e}"));
            }
        }
    }
    let plan = app.plan(&Scope::All, false).map_err(|e| e.to_string())?;
    out["plan"] = plan_summary(&plan);
    let mut pushes = serde_json::Map::new();
    for t in app.targets().iter().filter(|t| t.enabled) {
        let worker = Worker::new(&app.outbox, t.target.clone(), t.settings.clone()).map_err(|e| e.to_string())?;
        let r = worker.drain(DrainOptions::now()).await.map_err(|e| e.to_string())?;
        if r.dead > 0 || r.pending > 0 {
            failed.push(format!(
                "target {}: {} dead letters, {} pending",
                t.target.name(),
                r.dead,
                r.pending
            ));
        }
        pushes.insert(
            t.target.name().to_owned(),
            serde_json::to_value(&r).unwrap_or(Value::Null),
        );
    }
    out["push"] = Value::Object(pushes);
    app.store.flush().map_err(|e| e.to_string())?;
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "{}\n{}",
            failed.join("; "),
            serde_json::to_string_pretty(&out).unwrap_or_default()
        ))
    }
}
