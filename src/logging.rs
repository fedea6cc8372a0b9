//! Logging (`[logging]`): one tracing subscriber, in the format the environment wants.
//!
//! - `human`: the usual `tracing` lines with timestamps, coloured when stderr is a terminal;
//! - `journald`: no timestamps (the journal adds its own) and each line prefixed with its syslog priority
//!   (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which journald reads as the entry's priority
//!   (`SyslogLevelPrefix=`, on by default), so `journalctl -p warning` works;
//! - `json`: one JSON object per line, for log shippers;
//! - `auto` (default): `journald` when stderr is the journal stream systemd gave the service
//!   (`$JOURNAL_STREAM` names stderr's device and inode) or, failing that check, when the process runs under
//!   systemd (`$INVOCATION_ID`); else `human`.
//!
//! The filter is `SECUTIX_SYNC_LOG` when set, else `logging.level`, e.g. `info` or `secutix_sync=debug,info`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use serde::Deserialize;

/// Environment variable that overrides `logging.level`.
pub const LOG_ENV: &str = "SECUTIX_SYNC_LOG";

/// The format actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// Timestamps, colours when `ansi`.
    Human {
        /// Colours (stderr is a terminal).
        ansi: bool,
    },
    /// Priority prefixes, no timestamps.
    Journald,
    /// JSON lines.
    Json,
}

/// What the environment says about stderr.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `$JOURNAL_STREAM` (`<device>:<inode>` of the journal stream).
    pub journal_stream: Option<String>,
    /// `$INVOCATION_ID` (set by systemd for every service run).
    pub invocation_id: Option<String>,
    /// stderr's `<device>:<inode>`, when known.
    pub stderr_id: Option<String>,
    /// stderr is a terminal.
    pub stderr_is_tty: bool,
}

impl Environment {
    /// Reads the process environment.
    pub fn current() -> Self {
        use std::io::IsTerminal;
        Self {
            journal_stream: std::env::var("JOURNAL_STREAM").ok().filter(|v| !v.is_empty()),
            invocation_id: std::env::var("INVOCATION_ID").ok().filter(|v| !v.is_empty()),
            stderr_id: stderr_id(),
            stderr_is_tty: std::io::stderr().is_terminal(),
        }
    }
}

#[cfg(unix)]
fn stderr_id() -> Option<String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some(format!("{}:{}", meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn stderr_id() -> Option<String> {
    None
}

/// Picks the format for `format` in `env`.
pub fn choose(format: LogFormat, env: &Environment) -> Chosen {
    match format {
        LogFormat::Human => Chosen::Human {
            ansi: env.stderr_is_tty,
        },
        LogFormat::Journald => Chosen::Journald,
        LogFormat::Json => Chosen::Json,
        LogFormat::Auto => {
            let journal = match (&env.journal_stream, &env.stderr_id) {
                (Some(stream), Some(id)) => stream == id,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if journal || (env.journal_stream.is_none() && env.invocation_id.is_some() && !env.stderr_is_tty) {
                Chosen::Journald
            } else {
                Chosen::Human {
                    ansi: env.stderr_is_tty,
                }
            }
        }
    }
}

/// Wraps a formatter and prefixes each line with its syslog priority (`<6>` for info…).
#[derive(Debug, Clone)]
pub struct PriorityPrefix<F>(pub F);

/// The sd-daemon priority of a level.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N, F> FormatEvent<S, N> for PriorityPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The journald line format: priority prefix, level, target, message and fields, no time, no colours.
pub fn journald_format()
-> PriorityPrefix<tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, ()>> {
    PriorityPrefix(tracing_subscriber::fmt::format().without_time().with_ansi(false))
}

/// Installs the global subscriber (once; later calls do nothing). `cfg` is `None` when the configuration
/// could not be read: defaults then.
pub fn init(cfg: Option<&LoggingConfig>) {
    let level = cfg.map_or("info", |c| c.level.as_str());
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = cfg.map_or(LogFormat::Auto, |c| c.format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match choose(format, &Environment::current()) {
        Chosen::Human { ansi } => builder.with_ansi(ansi).try_init(),
        Chosen::Journald => builder.event_format(journald_format()).try_init(),
        Chosen::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `[logging]`
#[derive(Debug, Clone, Deserialize)]
pub struct LoggingConfig {
    /// `auto` (human on a terminal, journald-friendly under systemd), `human`, `journald` or `json`.
    pub format: LogFormat,
    /// Filter, e.g. `info` or `secutix_sync=debug,info`; `SECUTIX_SYNC_LOG` overrides it.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pick from the environment.
    Auto,
    /// Colours and timestamps.
    Human,
    /// No timestamps (journald adds them), levels kept.
    Journald,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn env(journal: Option<&str>, invocation: bool, stderr: Option<&str>, tty: bool) -> Environment {
        Environment {
            journal_stream: journal.map(str::to_owned),
            invocation_id: invocation.then(|| "abc".to_owned()),
            stderr_id: stderr.map(str::to_owned),
            stderr_is_tty: tty,
        }
    }

    #[test]
    fn auto_picks_journald_only_when_stderr_is_the_journal() {
        use LogFormat::Auto;
        assert_eq!(
            choose(Auto, &env(None, false, None, true)),
            Chosen::Human { ansi: true }
        );
        assert_eq!(
            choose(Auto, &env(None, false, None, false)),
            Chosen::Human { ansi: false }
        );
        assert_eq!(
            choose(Auto, &env(Some("8:123"), true, Some("8:123"), false)),
            Chosen::Journald
        );
        // A child of a service whose stderr was redirected elsewhere: not the journal.
        assert_eq!(
            choose(Auto, &env(Some("8:123"), true, Some("8:999"), false)),
            Chosen::Human { ansi: false }
        );
        // Under systemd with stderr not checked against a journal stream (e.g. StandardError=file).
        assert_eq!(choose(Auto, &env(None, true, Some("1:2"), false)), Chosen::Journald);
        // An operator's terminal inside a systemd session is still human.
        assert_eq!(
            choose(Auto, &env(None, true, Some("1:2"), true)),
            Chosen::Human { ansi: true }
        );
        assert_eq!(choose(LogFormat::Json, &env(None, false, None, true)), Chosen::Json);
        assert_eq!(
            choose(LogFormat::Journald, &env(None, false, None, true)),
            Chosen::Journald
        );
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journald_lines_carry_the_priority_and_no_timestamp() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(journald_format())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target_name = "website", "push failed, will retry");
            tracing::info!("secutix-sync is running");
            tracing::error!("boom");
        });
        let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // The level comes right after the priority: no timestamp in between.
        for (line, (prio, level)) in lines
            .iter()
            .zip([("<4>", "WARN "), ("<6>", "INFO "), ("<3>", "ERROR ")])
        {
            let rest = line
                .strip_prefix(prio)
                .unwrap_or_else(|| panic!("{prio} prefix: {line}"));
            assert!(rest.trim_start().starts_with(level), "{line}");
        }
        assert!(lines[0].contains("push failed, will retry") && lines[0].contains("target_name=\"website\""));
        assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    }
}
