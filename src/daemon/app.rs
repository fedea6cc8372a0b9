//! The daemon's shared handle ([`App`]): building it from the configuration and the store, the targets and pass Culture runtimes, the control token, reload.

#[allow(unused_imports)]
use super::*;

pub(super) fn build_passculture(config: &Config, store: &Store) -> BTreeMap<String, PassCultureRuntime> {
    config
        .targets
        .iter()
        .filter_map(|t| Some((t, t.passculture()?)))
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

impl Metrics {
    /// The counter of `target` in `m`.
    pub fn get(m: &Mutex<BTreeMap<String, u64>>, target: &str) -> u64 {
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn add(&self, target: &str, r: &DrainReport) {
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

impl RunFailure {
    pub(super) fn backoff(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    pub(super) fn from_import(e: &ImportError) -> Self {
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

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

pub(super) fn build_targets(config: &Config, store: &Store) -> Result<Vec<TargetRuntime>, DaemonError> {
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
pub(super) fn warn_exposed_secrets(config: &Config, sources: &Sources) {
    for p in crate::config::exposed_secret_files(config, sources.config_file().as_deref()) {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

    /// The control API token.
    pub fn control_token(&self) -> SecretString {
        self.control_token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The public availability document.
    pub fn public(&self) -> Arc<crate::public::PublicSnapshot> {
        self.public.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn rebuild_public(&self) -> Result<(), StoreError> {
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

    pub(super) fn plan_targets(&self) -> Vec<PlanTarget> {
        self.config()
            .targets
            .iter()
            .filter(|t| t.enabled)
            .map(crate::targets::plan_target)
            .collect()
    }

    /// `/status`, also summarised in systemd's `STATUS=`.
    pub fn status(&self) -> status::StatusDocument {
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
        let running: Vec<&str> = [
            (self.catalogue.name, self.catalogue.state().running.is_some()),
            (self.availability.name, self.availability.state().running.is_some()),
            (self.refresh.name, self.refresh.state().running.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, running)| running.then_some(name))
        .collect();
        let running = if running.is_empty() {
            String::new()
        } else {
            format!(", running: {}", running.join(", "))
        };
        format!("{live} products, last import {last}, {pending} operations pending{running}")
    }
}
