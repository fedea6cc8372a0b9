//! Configuration: layered loading, validation, unknown-key detection, secrets.
//!
//! Layers, later ones win (the `config` crate):
//! 1. `config/default.toml`, compiled into the binary; it documents every key;
//! 2. the operator's file: `--config FILE`, default `/etc/secutix-sync/config.toml` (skipped if absent);
//! 3. environment variables `SECUTIX_SYNC__SECTION__KEY` (e.g. `SECUTIX_SYNC__SECUTIX__INSTITUTION=MOSA`).
//!
//! Keys that no section knows, in the file or as `SECUTIX_SYNC__…` variables, are reported as likely typos
//! ([`Loaded::unknown_keys`]). Secrets are [`secrecy::SecretString`]s: their `Debug` output is redacted and they are
//! only exposed where a request is signed or authenticated. Secret files, and a configuration file holding
//! secrets inline, that other users may read are warnings ([`exposed_secret_files`]); plain-HTTP URLs beyond
//! loopback are refused unless their section sets `allow_insecure_http` ([`crate::http::clear_text_problem`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::availability::settings::AvailabilityConfig;
use crate::credentials::resolve_credential_path;
use crate::import::CatalogueConfig;
use crate::logging::LoggingConfig;
use crate::merge::EntriesConfig;
use crate::secutix::settings::SecutixConfig;
use crate::store::StoreConfig;
use crate::targets::registry::TargetConfig;

mod daemon;
mod load;
mod shape;

pub use daemon::{ControlConfig, DaemonConfig, MIN_REMOTE_TOKEN_LEN};
pub use load::{CredentialOwner, CredentialProblem, Report, credentials_hint};

/// The configuration defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Where the operator's file is looked up when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/secutix-sync/config.toml";

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "SECUTIX_SYNC";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// How to reach SecuTix.
    pub secutix: SecutixConfig,
    /// What to import and how.
    pub catalogue: CatalogueConfig,
    /// The embedded database.
    pub store: StoreConfig,
    /// Availability polling inside the SecuTix call budget.
    pub availability: AvailabilityConfig,
    /// How entries are built.
    pub entries: EntriesConfig,
    /// Where entries go (`[[targets]]`, one table per target).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Scheduling and lifecycle of `run`.
    pub daemon: DaemonConfig,
    /// The control API.
    pub control: ControlConfig,
    /// Logging.
    pub logging: LoggingConfig,
}

/// One configuration problem, tied to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`secutix.institution`) or the environment variable's name.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist or cannot be read.
    #[error("cannot read the configuration file {path}: {reason}; check --config")]
    File {
        /// The path.
        path: PathBuf,
        /// The I/O or syntax error.
        reason: String,
    },
    /// One or more keys are invalid.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// Credentials this command needs cannot be used (the rest of the configuration is valid).
    #[error(
        "credentials needed here cannot be read:\n{}\n{}",
        .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"),
        load::credentials_hint()
    )]
    Credentials(Vec<Problem>),
}

/// Where the layers come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The operator's file; `None` means the default path, read only if it exists.
    pub file: Option<PathBuf>,
    /// Environment variables to read; `None` means the process environment.
    pub env: Option<BTreeMap<String, String>>,
    /// Extra overrides applied last, as TOML (used by `demo` and tests).
    pub overrides: Option<String>,
}

impl Sources {
    /// The operator's file at `path` and the process environment.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    /// The operator's file these sources read: `file`, else the default path when it exists.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.file
            .clone()
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()))
    }
}

/// A loaded configuration and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Keys or variables no section knows (likely typos).
    pub unknown_keys: Vec<Problem>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Credentials that cannot be used; only commands that call SecuTix or a target need them
    /// ([`Loaded::require_credentials`]).
    pub credentials: Vec<CredentialProblem>,
    /// Valid, but probably not what the operator wants (no `[[targets]]`).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// Checks the credentials a command uses: the SecuTix secret when `secutix`, and those of the targets
    /// named in `targets`. The error says how a command gets them under systemd.
    pub fn require_credentials(&self, secutix: bool, targets: &[&str]) -> Result<(), ConfigError> {
        let missing: Vec<Problem> = self
            .credentials
            .iter()
            .filter(|c| match &c.owner {
                CredentialOwner::Secutix => secutix,
                CredentialOwner::Target(name) => targets.contains(&name.as_str()),
            })
            .map(|c| c.problem.clone())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Credentials(missing))
        }
    }
}

impl Config {
    /// Loads the layers, deserialises and validates, credentials included: every problem found is returned
    /// at once. For `run` and the commands that call SecuTix and every target.
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let report = Self::report(sources)?;
        if !report.problems.is_empty() {
            let mut all = report.problems;
            all.extend(report.credentials.into_iter().map(|c| c.problem));
            return Err(ConfigError::Invalid(all));
        }
        let loaded = Loaded::from(report);
        let targets: Vec<&str> = loaded.config.targets.iter().map(|t| t.name.as_str()).collect();
        loaded.require_credentials(true, &targets)?;
        Ok(loaded)
    }

    /// Like [`Config::load`], but credentials that cannot be read are left in [`Loaded::credentials`]
    /// instead of failing: for commands that read the store or ask the running daemon, which need none.
    pub fn load_without_credentials(sources: &Sources) -> Result<Loaded, ConfigError> {
        let report = Self::report(sources)?;
        if !report.problems.is_empty() {
            return Err(ConfigError::Invalid(report.problems));
        }
        Ok(Loaded::from(report))
    }

    /// Everything loading finds, problems included (for `validate-config`). `Err` only when a layer
    /// cannot be read at all (a missing `--config` file, a TOML syntax error).
    pub fn report(sources: &Sources) -> Result<Report, ConfigError> {
        let env_vars: BTreeMap<String, String> = match &sources.env {
            Some(map) => map.clone(),
            None => std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect(),
        };
        let (builder, file) = layers(sources, &env_vars)?;
        let raw = builder.build().map_err(|e| ConfigError::File {
            path: file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
            reason: e.to_string(),
        })?;
        load::report(&raw, file, &env_vars)
    }

    /// Checks values that types alone cannot (non-empty, ranges, URL syntax, readable secret file).
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut bad = |key: &str, message: String| {
            p.push(Problem {
                key: key.to_owned(),
                message,
            })
        };
        self.secutix.validate(&mut bad);
        self.catalogue.validate(&mut bad);
        self.store.validate(&mut bad);
        self.daemon.validate(&mut bad);
        self.control.validate(&mut bad);
        self.entries.validate(&mut bad);
        self.availability.validate(&mut bad);
        for (i, t) in self.targets.iter().enumerate() {
            t.validate(i, &mut bad);
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if !names.insert(t.name.as_str()) {
                p.push(Problem {
                    key: format!("targets[{i}].name"),
                    message: format!("{:?} is used by two targets", t.name),
                });
            }
        }
        p
    }
}

/// Keys whose value is a secret when written inline in a configuration file, whatever their section.
const INLINE_SECRET_KEYS: &[&str] = &[
    "secret",
    "token",
    "password",
    "application_password",
    "client_secret",
    "api_key",
    "headers",
];

/// Files holding a secret that users other than their owner may read (group or world read bits): the
/// secret files the configuration names, and the configuration `file` itself
/// when it holds a secret inline. Each is a warning (the configuration stays valid) naming the file, its
/// mode and the fix; a file that does not exist or cannot be examined is left out (its own check reports it).
pub fn exposed_secret_files(config: &Config, file: Option<&Path>) -> Vec<Problem> {
    let mut named: Vec<(String, String)> = Vec::new();
    let mut name = |key: String, value: Option<&String>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            named.push((key, v.clone()));
        }
    };
    if config.secutix.secret.is_none() {
        name("secutix.secret_file".into(), Some(&config.secutix.secret_file));
    }
    name("control.token_file".into(), Some(&config.control.token_file));
    for (i, t) in config.targets.iter().enumerate() {
        let key = |k: &str| format!("targets[{i}].{k}");
        for (k, file) in t.settings.iter().flat_map(|s| s.secret_files()) {
            name(key(&format!("{}.{k}", t.kind.name())), file);
        }
    }
    let mut out = Vec::new();
    for (key, path) in named.into_iter().map(|(key, n)| (key, resolve_credential_path(&n))) {
        if let Some((who, mode)) = readable_by_others(&path) {
            out.push(Problem {
                key,
                message: format!(
                    "{} holds a secret and is readable by {who} (mode {mode:04o}): chmod 600 it (under systemd, \
                     LoadCredential= hands a root-only file to the service)",
                    path.display()
                ),
            });
        }
    }
    if let Some(path) = file
        && let Some((who, mode)) = readable_by_others(path)
    {
        let inline = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .map(|table| inline_secrets(&toml::Value::Table(table), ""))
            .unwrap_or_default();
        if !inline.is_empty() {
            out.push(Problem {
                key: inline.join(", "),
                message: format!(
                    "the configuration file {} holds {} inline and is readable by {who} (mode {mode:04o}): chmod \
                     600 it, or better move each secret into a file named by its *_file key, handed over with \
                     systemd's LoadCredential=",
                    path.display(),
                    if inline.len() == 1 { "a secret" } else { "secrets" }
                ),
            });
        }
    }
    out
}

/// `Some((who, mode))` when `path` exists and its group or others may read it.
fn readable_by_others(path: &Path) -> Option<(&'static str, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (_, true) => Some(("every user of the host", mode)),
        (true, false) => Some(("its group", mode)),
        _ => None,
    }
}

/// The dotted keys of `value` (a TOML tree) that hold a secret inline.
fn inline_secrets(value: &toml::Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                let filled = match v {
                    toml::Value::String(s) => !s.trim().is_empty(),
                    toml::Value::Table(t) => !t.is_empty(),
                    _ => false,
                };
                if INLINE_SECRET_KEYS.contains(&k.as_str()) && filled {
                    out.push(key);
                } else {
                    out.extend(inline_secrets(v, &key));
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                out.extend(inline_secrets(v, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

fn layers(
    sources: &Sources,
    env_vars: &BTreeMap<String, String>,
) -> Result<(config::ConfigBuilder<config::builder::DefaultState>, Option<PathBuf>), ConfigError> {
    let mut builder =
        config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
    let file = match &sources.file {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: "no such file".into(),
                });
            }
            Some(path.clone())
        }
        None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    // Lists (every list key of the schema) are split on commas here; the other variables go to the
    // config crate's environment source.
    let (plain, lists) = load::split_environment(env_vars);
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(plain.into_iter().collect()));
    builder = builder.add_source(env);
    if let Some(lists) = lists {
        builder = builder.add_source(config::File::from_str(&lists, config::FileFormat::Toml));
    }
    if let Some(extra) = &sources.overrides {
        builder = builder.add_source(config::File::from_str(extra, config::FileFormat::Toml));
    }
    Ok((builder, file))
}

impl From<Report> for Loaded {
    fn from(r: Report) -> Self {
        Loaded {
            config: r.config,
            unknown_keys: r.unknown_keys,
            file: r.file,
            credentials: r.credentials,
            warnings: r.warnings,
        }
    }
}

#[cfg(test)]
mod tests;
