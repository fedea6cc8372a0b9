//! What every command shares: loading the configuration, opening the store, finding a running daemon (the
//! [`Operator`](secutix_sync::cli_client) it talks to) or falling back to the store, the runtime and signals.

use super::*;

/// Loads the configuration, credentials included (for `run` and `check`), and logs unknown keys as warnings.
pub(crate) fn load_config(sources: &Sources) -> anyhow::Result<Loaded> {
    let loaded = Config::load(sources)?;
    for p in &loaded.unknown_keys {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
    Ok(loaded)
}

/// Loads the configuration without requiring credentials: for commands that read the store or ask the
/// running daemon. One that then calls SecuTix or a target checks its own with
/// [`Loaded::require_credentials`].
pub(crate) fn load_config_without_credentials(sources: &Sources) -> anyhow::Result<Loaded> {
    let loaded = Config::load_without_credentials(sources)?;
    for p in &loaded.unknown_keys {
        tracing::warn!(key = %p.key, "{}", p.message);
    }
    Ok(loaded)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")
}

pub(crate) fn open_store(config: &Config) -> anyhow::Result<Store> {
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
pub(crate) fn hand_to_daemon(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    scope: secutix_sync::daemon::documents::ResyncScope,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let flag = scope.flag();
    eprintln!(
        "the daemon is running and holds the store: handing this to it, as `secutix-sync resync {flag}{} --wait` \
         does",
        if force { " --force" } else { "" }
    );
    resync_through(rt, client, scope, force, true, RESYNC_WAIT_DEFAULT)
}

/// Exit codes of `push` and `dlq` (documented in their `--help` and in the README).
pub(crate) mod push_exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const PENDING: u8 = 3;
    pub const DEAD: u8 = 4;
    pub const NO_SUCH_DEAD_LETTER: u8 = 3;
}

/// The running daemon's client when one answers; otherwise `None`. `doing` (e.g. "importing into") is what
/// the command then does on the store itself: said once, calmly, on stderr, because it changes what happens
/// (the work runs here, not in the daemon). Without it, nothing is said unless something unusual answered.
pub(crate) fn daemon_or_store(
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
pub(crate) struct NoDaemon {
    /// In words, e.g. "no daemon has started on this store yet".
    pub(crate) why: String,
    /// The everyday case (no daemon ever started, or nothing listens at the address): worth a word only
    /// where the command's work then differs; otherwise (a timeout…) always worth a word.
    pub(crate) ordinary: bool,
}

impl NoDaemon {
    pub(crate) fn from_error(e: &secutix_sync::cli_client::ClientError) -> Self {
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
    pub(crate) fn note(&self, config: &Config, doing: Option<&str>) {
        let store = config.store.path.display();
        match (doing, self.ordinary) {
            (Some(doing), true) => eprintln!("no daemon is running on this store: {doing} {store} directly"),
            (Some(doing), false) => eprintln!("{}; {doing} {store} directly", self.why),
            (None, true) => {}
            (None, false) => eprintln!("{}; reading the store at {store} directly", self.why),
        }
    }
}

/// The daemon's signals: the shutdown future (SIGTERM or SIGINT) and the reload stream (SIGHUP). Call it
/// inside the runtime, before the daemon starts, so that an early signal is not lost.
pub(crate) fn signals() -> anyhow::Result<(
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
pub(crate) fn cli_name() -> String {
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

/// The daemon's client, or why the CLI reads the store instead.
pub(crate) enum Daemon {
    Running(secutix_sync::cli_client::ControlClient),
    Absent(NoDaemon),
}

pub(crate) fn find_daemon(config: &Config) -> anyhow::Result<Daemon> {
    use secutix_sync::cli_client::{ClientError, ControlClient};
    match ControlClient::from_config(config) {
        Ok(c) => Ok(Daemon::Running(c)),
        Err(e @ ClientError::NoToken { .. }) => Ok(Daemon::Absent(NoDaemon::from_error(&e))),
        Err(e) => Err(e.into()),
    }
}

/// Who answers an operator's request: the running daemon when one answers, else the store ([`Operator`]).
/// `doing` says, once, what a command that changes something then does on the store; read-only commands
/// pass `None` and say nothing about the everyday "no daemon".
///
/// [`Operator`]: secutix_sync::operator::Operator
pub(crate) fn operator(
    config: &Config,
    rt: &tokio::runtime::Runtime,
    doing: Option<&str>,
) -> anyhow::Result<secutix_sync::operator::Operator> {
    use secutix_sync::cli_client::ClientError;
    use secutix_sync::operator::{Local, Operator};
    let absence = match find_daemon(config)? {
        Daemon::Running(client) => match rt.block_on(client.health()) {
            Ok(()) => return Ok(Operator::Remote(client)),
            Err(e @ ClientError::NotRunning { .. }) => NoDaemon::from_error(&e),
            Err(e) => return Err(e.into()),
        },
        Daemon::Absent(absence) => absence,
    };
    absence.note(config, doing);
    let store = Store::open(
        &config.store.path,
        config.store.cache_mib,
        secutix_sync::clock::system(),
    )
    .with_context(|| format!("while opening the store ({})", absence.why))?;
    Ok(Operator::Local(Box::new(Local::new(config.clone(), store)?)))
}

/// Runs `online` against the daemon; when no daemon answers, runs `offline` on the store. Read-only: the
/// output is the same either way, so the everyday "no daemon" goes unsaid.
pub(crate) fn with_daemon_or_store<T>(
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

/// Lets a command whose output goes to a pipe that closes early (`secutix-sync state | head`) end quietly, as
/// Unix tools do, instead of panicking on a broken pipe: Rust starts programs with SIGPIPE ignored. Not for the
/// long-running `run` and `demo`, whose sockets and logs must never stop the process.
pub(crate) fn restore_sigpipe() {
    // SAFETY: called once at start, before any thread exists; it only sets a signal's disposition to default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
