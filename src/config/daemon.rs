//! `[daemon]` and `[control]`: the settings of `secutix-sync run` (schedules, retries, shutdown) and of its
//! control API listener (address, token, limits, CORS).
//!
//! Every other section is owned by its module and only assembled here; these two stay in `config` because
//! the daemon and the control API consume the whole assembled [`crate::config::Config`] (reload swaps it):
//! they sit above `config`, which therefore cannot import them.
//!
//! The control token is a [`SecretString`]: redacted in `Debug`, compared in constant time.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::credentials::resolve_credential_path;

/// `[daemon]`
#[derive(Debug, Clone, Deserialize)]
pub struct DaemonConfig {
    /// Cron expression (5 or 6 fields) of the catalogue import, in the venue's time zone.
    pub catalogue_schedule: String,
    /// IANA time zone of the schedule; empty = the venue's (`organizationTimeZone` from getPOSConfig), else UTC.
    pub time_zone: String,
    /// `/readyz` fails when the last good import is older than this.
    #[serde(with = "humantime_serde")]
    pub catalogue_max_age: Duration,
    /// First retry delay after a failed import (doubles with jitter up to `catalogue_retry_max`).
    #[serde(with = "humantime_serde")]
    pub catalogue_retry: Duration,
    /// Longest retry delay after failed imports.
    #[serde(with = "humantime_serde")]
    pub catalogue_retry_max: Duration,
    /// Every entry is rebuilt this often, so that time-dependent fields (past performances, sale periods
    /// opening or closing) reach the targets without waiting for SecuTix.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// On SIGTERM, how long in-flight requests may take before they are abandoned (they stay in the outbox).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[control]`
#[derive(Debug, Clone, Deserialize)]
pub struct ControlConfig {
    /// Listen address of the control API (keep it on loopback; put a reverse proxy in front for the public part).
    pub listen: String,
    /// Connections open at once; one more is answered 503 and closed at once (keeps the process's open
    /// files for the store and outbound calls whatever clients do).
    pub max_connections: usize,
    /// Time a client has to send a request's headers once its connection is ready for one (silent and
    /// keep-alive connections are closed after it).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long while no request is handled, or a request body that
    /// stops arriving for this long, is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Bearer token of private endpoints, inline (prefer `token_file`).
    pub token: Option<SecretString>,
    /// File holding the token. When neither is set, a token is generated at first start and kept in
    /// `<store.path>/control-token` (mode 0600), where the CLI finds it.
    pub token_file: String,
    /// Origins allowed to read `/public/availability` from a browser (CORS), e.g. `https://www.theatre.fr`.
    pub cors_origins: Vec<String>,
    /// `Cache-Control: max-age` of the public endpoint.
    #[serde(with = "humantime_serde")]
    pub public_max_age: Duration,
}

/// Shortest control token accepted when the control API listens beyond loopback.
pub const MIN_REMOTE_TOKEN_LEN: usize = 32;

impl ControlConfig {
    /// Checks `[control]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            bad(
                "control.listen",
                format!("{:?} is not an address such as 127.0.0.1:8087", self.listen),
            );
        }
        if self.token.is_some() && !self.token_file.is_empty() {
            bad(
                "control.token",
                "is set together with control.token_file; keep only one".into(),
            );
        }
        if let Some(m) = self
            .token
            .as_ref()
            .and_then(|t| self.weak_token_problem(t, "control.token"))
        {
            bad("control.token", m);
        }
        if !self.token_file.is_empty() {
            // Unreadable here (another user's file): the daemon, which must read it, says so at start.
            let path = resolve_credential_path(&self.token_file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let token = SecretString::from(text.lines().next().unwrap_or("").to_owned());
                if let Some(m) = self.weak_token_problem(&token, "control.token_file") {
                    bad("control.token_file", format!("{}: {m}", path.display()));
                }
            }
        }
        if !(1..=crate::net::MAX_CONNECTIONS).contains(&self.max_connections) {
            bad(
                "control.max_connections",
                format!(
                    "{} is outside 1..={} (the default is 256; each connection is an open file)",
                    self.max_connections,
                    crate::net::MAX_CONNECTIONS
                ),
            );
        }
        for (key, d) in [
            ("control.header_read_timeout", self.header_read_timeout),
            ("control.idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() || d > crate::net::MAX_TIMEOUT {
                bad(
                    key,
                    format!(
                        "{} is not between 1s and {} (e.g. \"10s\", \"60s\")",
                        humantime::format_duration(d),
                        humantime::format_duration(crate::net::MAX_TIMEOUT)
                    ),
                );
            }
        }
        if let Some(o) = self
            .cors_origins
            .iter()
            .find(|o| o.as_str() != "*" && url::Url::parse(o).is_err())
        {
            bad(
                "control.cors_origins",
                format!("{o:?} is not an origin such as https://www.theatre.fr (or \"*\" for any)"),
            );
        }
    }

    /// What the control API's listener accepts.
    pub fn listener_limits(&self) -> crate::net::ListenerLimits {
        crate::net::ListenerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// True when `listen` is a loopback address (an unparsable one counts as beyond: its own check says why).
    pub fn listens_on_loopback(&self) -> bool {
        self.listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// Why `token` may not guard this control API: shorter than [`MIN_REMOTE_TOKEN_LEN`] characters while
    /// `listen` is beyond loopback. `key` is where the token comes from (`control.token`, `control.token_file`).
    pub fn weak_token_problem(&self, token: &SecretString, key: &str) -> Option<String> {
        let len = token.expose_secret().trim().chars().count();
        (len < MIN_REMOTE_TOKEN_LEN && !self.listens_on_loopback()).then(|| {
            format!(
                "the token from {key} has {len} characters, but control.listen ({}) is beyond loopback: use a token \
                 of at least {MIN_REMOTE_TOKEN_LEN} random characters (e.g. `openssl rand -hex 32`), or leave \
                 control.token and control.token_file unset to have one generated, or listen on 127.0.0.1",
                self.listen
            )
        })
    }
}

impl DaemonConfig {
    /// Checks `[daemon]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        let d = self;
        if let Err(e) = d.catalogue_schedule.parse::<croner::Cron>() {
            bad(
                "daemon.catalogue_schedule",
                format!(
                    "{:?} is not a cron expression (e.g. \"30 5 * * *\"): {e}",
                    d.catalogue_schedule
                ),
            );
        }
        if !d.time_zone.is_empty() && d.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bad(
                "daemon.time_zone",
                format!("{:?} is not an IANA time zone such as \"Europe/Paris\"", d.time_zone),
            );
        }
        for (key, v) in [
            ("daemon.catalogue_retry", d.catalogue_retry),
            ("daemon.refresh_interval", d.refresh_interval),
            ("daemon.catalogue_max_age", d.catalogue_max_age),
        ] {
            if v.is_zero() {
                bad(key, "must be longer than 0s".into());
            }
        }
    }
}
