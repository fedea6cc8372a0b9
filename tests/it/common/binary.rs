//! Driving the real binary (`secutix-sync`) from a test: a site folder (configuration, store, log), the
//! daemon as a child process, the CLI, the control API's address and token, signals, bounded waits.
//!
//! Real time throughout (another process is involved): every wait polls with a bounded deadline.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// The longest any wait of these helpers lasts.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_secutix-sync")
}

/// A site: one institution's configuration, store and daemon log, in a temporary folder.
pub struct Site {
    /// Keeps the folder (configuration, store, log) alive for the test.
    pub dir: tempfile::TempDir,
    /// The configuration file.
    pub config: PathBuf,
    /// `store.path`.
    pub store: PathBuf,
    /// The daemon's stderr, appended to by every start.
    pub log: PathBuf,
}

impl Site {
    /// A new site folder; write its configuration with [`Site::write_config`].
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            config: dir.path().join("config.toml"),
            store: dir.path().join("store"),
            log: dir.path().join("daemon.log"),
            dir,
        }
    }

    /// Writes the configuration file.
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config, toml).expect("write config");
    }
}

/// The binary with `--config`, a clean environment and debug logs.
pub fn command(config: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("SECUTIX_SYNC_LOG", "info,secutix_sync=debug")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Starts `secutix-sync run`, its stderr appended to the site's log. A control address file left by a
/// daemon that was killed is removed first, so that [`ready`] waits for the new daemon's.
pub fn start(s: &Site) -> Child {
    let _ = std::fs::remove_file(s.store.join(secutix_sync::daemon::ADDRESS_FILE));
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&s.log)
        .expect("log file");
    command(&s.config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the daemon")
}

/// Runs the CLI with `args` and collects its output.
pub async fn cli(s: &Site, args: &[&str]) -> Output {
    command(&s.config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run the CLI")
}

/// Bytes as text (lossy).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The daemon log so far.
pub fn log(s: &Site) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

/// Polls `f` every 50 ms until it gives `Some`, for at most [`DEADLINE`].
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    s: &Site,
    what: &str,
    f: impl FnMut() -> F,
) -> T {
    eventually_logged(&s.log, what, f).await
}

/// [`eventually`] for a daemon whose stderr goes to `log` (shown when the wait times out).
pub async fn eventually_logged<T, F: std::future::Future<Output = Option<T>>>(
    log: &Path,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the control API and `/readyz`; returns the base URL and the generated token.
pub async fn ready(s: &Site) -> (String, String) {
    let base = listening(s).await;
    let http = reqwest::Client::new();
    eventually(s, "/readyz", || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    (base, token(s))
}

/// Waits for the control API to listen (not for a first import); returns its base URL.
pub async fn listening(s: &Site) -> String {
    let addr_file = s.store.join(secutix_sync::daemon::ADDRESS_FILE);
    let base = eventually(s, "the control address file", || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|a| a.ends_with('\n'))
            .map(|a| format!("http://{}", a.trim()))
    })
    .await;
    let http = reqwest::Client::new();
    eventually(s, "the control API", || async {
        http.get(format!("{base}/healthz")).send().await.ok().map(|_| ())
    })
    .await;
    base
}

/// The control token the daemon generated into the store folder.
pub fn token(s: &Site) -> String {
    std::fs::read_to_string(s.store.join(secutix_sync::daemon::TOKEN_FILE))
        .expect("generated token")
        .trim()
        .to_owned()
}

/// Sends `signal` (`TERM`, `HUP`, `KILL`…) to the child.
pub fn kill(child: &Child, signal: &str) {
    let pid = child.id().expect("pid").to_string();
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Waits for the child to exit, at most [`DEADLINE`].
pub async fn exit_of(s: &Site, child: &mut Child) -> ExitStatus {
    match tokio::time::timeout(DEADLINE, child.wait()).await {
        Ok(status) => status.expect("wait"),
        Err(_) => panic!("the daemon did not exit; log:\n{}", log(s)),
    }
}
