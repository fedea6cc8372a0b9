//! Configuration: layered loading, validation, unknown-key detection, secrets.
//!
//! Layers, later ones win (the `config` crate):
//! 1. `config/default.toml`, compiled into the binary; it documents every key;
//! 2. the operator's file: `--config FILE`, default `/etc/secutix-sync/config.toml` (skipped if absent);
//! 3. environment variables `SECUTIX_SYNC__SECTION__KEY` (e.g. `SECUTIX_SYNC__SECUTIX__INSTITUTION=MOSA`).
//!
//! Keys that no section knows, in the file or as `SECUTIX_SYNC__…` variables, are reported as likely typos
//! ([`Loaded::unknown_keys`]). Secrets are [`SecretString`]s: their `Debug` output is redacted and they are
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
        if let Some(w) = &t.webhook {
            name(key("webhook.secret_file"), w.secret_file.as_ref());
        }
        if let Some(w) = &t.wordpress {
            name(
                key("wordpress.application_password_file"),
                w.application_password_file.as_ref(),
            );
        }
        if let Some(d) = &t.drupal {
            name(key("drupal.password_file"), d.password_file.as_ref());
            name(key("drupal.token_file"), d.token_file.as_ref());
            name(key("drupal.client_secret_file"), d.client_secret_file.as_ref());
        }
        if let Some(p) = &t.passculture {
            name(key("passculture.api_key_file"), p.api_key_file.as_ref());
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
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn minimal_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
            ("SECUTIX_SYNC__SECUTIX__OPERATOR", "MOSA_WEBSYNC"),
            ("SECUTIX_SYNC__SECUTIX__PARTNER", "Venue"),
            ("SECUTIX_SYNC__SECUTIX__SECRET", "s3cret-value"),
            ("SECUTIX_SYNC__STORE__PATH", "/tmp/x"),
        ]
    }

    #[test]
    fn environment_overrides_defaults_and_lists_split_on_commas() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_FAMILIES", "SINGLE_ENTRY,PASS"));
        vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "0.25"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(loaded.config.secutix.institution, "MOSA");
        assert_eq!(loaded.config.catalogue.product_families, vec!["SINGLE_ENTRY", "PASS"]);
        assert_eq!(loaded.config.catalogue.shrink_guard_ratio, 0.25);
        assert_eq!(loaded.config.secutix.base_url(), "https://mosa.ws.secutix.com");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    }

    #[test]
    fn unknown_env_variable_is_reported_with_its_name() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO", "0.2"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(loaded.unknown_keys.len(), 1);
        assert_eq!(loaded.unknown_keys[0].key, "catalogue.shrink_gaurd_ratio");
        assert!(
            loaded.unknown_keys[0]
                .message
                .contains("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO")
        );
    }

    #[test]
    fn unknown_file_key_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[secutix]\ninstitutoin = \"X\"\n").expect("write");
        let loaded = Config::load(&Sources {
            file: Some(path),
            env: env(&minimal_env()),
            overrides: None,
        })
        .expect("loads");
        assert_eq!(loaded.unknown_keys[0].key, "secutix.institutoin");
    }

    #[test]
    fn every_problem_is_named_and_the_secret_never_printed() {
        let vars = vec![
            ("SECUTIX_SYNC__SECUTIX__SECRET", "top-secret-xyz"),
            ("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "1.5"),
            ("SECUTIX_SYNC__CATALOGUE__DEADLINE", "0s"),
        ];
        let err = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect_err("invalid");
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "secutix.institution",
            "secutix.operator",
            "catalogue.shrink_guard_ratio",
            "catalogue.deadline",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(!err.to_string().contains("top-secret-xyz"));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__SECUTIX__CALLS_PER_MINUTE", "lots"));
        let err = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("calls_per_minute"), "{err}");
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let loaded = Config::load(&Sources {
            env: env(&minimal_env()),
            ..Default::default()
        })
        .expect("loads");
        let dbg = format!("{:?}", loaded.config);
        assert!(!dbg.contains("s3cret-value"), "{dbg}");
    }

    #[test]
    fn secret_file_is_read_and_missing_file_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        let mut vars: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .collect();
        let p = path.to_string_lossy().to_string();
        vars.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &p));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            loaded.config.secutix.read_secret().expect("secret").expose_secret(),
            "from-file"
        );

        let missing = dir.path().join("nope").to_string_lossy().to_string();
        let mut vars2: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .collect();
        vars2.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &missing));
        let err = Config::load(&Sources {
            env: env(&vars2),
            ..Default::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("secutix.secret_file"), "{err}");
    }

    #[test]
    fn every_list_key_of_the_schema_reads_comma_separated_from_the_environment() {
        let keys: Vec<String> = load::schema().list_keys().map(str::to_owned).collect();
        assert!(keys.len() >= 5, "{keys:?}");
        for key in &keys {
            let name = format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_ascii_uppercase());
            let mut vars = minimal_env();
            vars.push((name.as_str(), "ab,cd"));
            let report = Config::report(&Sources {
                env: env(&vars),
                ..Default::default()
            })
            .expect("report");
            let type_problems: Vec<&Problem> = report
                .problems
                .iter()
                .filter(|p| p.key == *key && p.message.contains("is not a list"))
                .collect();
            assert!(type_problems.is_empty(), "{name}: {type_problems:?}");
            assert!(report.unknown_keys.is_empty(), "{name}: {:?}", report.unknown_keys);
        }
        let mut vars = minimal_env();
        vars.push((
            "SECUTIX_SYNC__CONTROL__CORS_ORIGINS",
            "https://a.example,https://b.example",
        ));
        vars.push(("SECUTIX_SYNC__ENTRIES__LANGUAGES", "fr,en"));
        vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_CODES", "1234"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            loaded.config.control.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(loaded.config.entries.languages, vec!["fr", "en"]);
        assert_eq!(loaded.config.catalogue.product_codes, vec!["1234"]);
    }

    #[test]
    fn validate_config_reports_every_layer_of_problems_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"OP\"\npartner = \"P\"\nsecret_file = \"nope\"\n\
             request_timeout = 90\ncalls_per_minute = \"lots\"\ninstitutoin = \"X\"\n\
             [catalogue]\nshrink_guard_ratio = 1.5\n\
             [[targets]]\nname = \"site\"\nkind = \"file\"\n\
             [[targets]]\nname = \"hook\"\nkind = \"webhook\"\nmax_attempts = \"many\"\n\
             [targets.webhook]\nurl = \"not a url\"\nurll = \"x\"\n",
        )
        .expect("write");
        let report = Config::report(&Sources {
            file: Some(path),
            env: Some(BTreeMap::new()),
            overrides: None,
        })
        .expect("report");
        let message = |key: &str| -> String {
            report
                .problems
                .iter()
                .filter(|p| p.key == key)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        // Two wrong types in one section, each with an example.
        assert!(message("secutix.request_timeout").contains("\"90s\""), "{report:#?}");
        assert!(
            message("secutix.calls_per_minute").contains("whole number"),
            "{report:#?}"
        );
        // A value problem next to the type problems.
        assert!(message("catalogue.shrink_guard_ratio").contains("1.5"), "{report:#?}");
        // A wrong kind lists the kinds; once.
        let kind = message("targets[0].kind");
        assert!(
            kind.contains("\"files\"") && kind.contains("\"drupal\"") && !kind.contains(" | "),
            "{kind}"
        );
        // The second target: its wrong type and its value problem, under its own place.
        assert!(
            message("targets[1].max_attempts").contains("whole number"),
            "{report:#?}"
        );
        assert!(message("targets[1].webhook.url").contains("not a url"), "{report:#?}");
        // No bogus problem on the targets as a whole.
        assert!(message("targets").is_empty(), "{report:#?}");
        // Unknown keys, with the likely intended one.
        let unknown: Vec<(&str, &str)> = report
            .unknown_keys
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert!(
            unknown.contains(&(
                "secutix.institutoin",
                "unknown key (a typo?); it is ignored (did you mean secutix.institution?)"
            )),
            "{unknown:?}"
        );
        assert!(
            unknown.iter().any(|(k, _)| *k == "targets[1].webhook.urll"),
            "{unknown:?}"
        );
        // The missing secret, apart.
        assert_eq!(report.credentials.len(), 1, "{:?}", report.credentials);
        assert_eq!(report.credentials[0].owner, CredentialOwner::Secutix);
        assert_eq!(report.credentials[0].problem.key, "secutix.secret_file");
        // Nothing in Rust's wording.
        let all = format!("{:?}{:?}", report.problems, report.unknown_keys);
        for rust in ["variant constructor", "for key `", "Some(", "None"] {
            assert!(!all.contains(rust), "{rust} in {all}");
        }
    }

    #[test]
    fn a_configuration_without_targets_is_valid_but_warned_about() {
        let report = Config::report(&Sources {
            env: env(&minimal_env()),
            ..Default::default()
        })
        .expect("report");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].message.contains("sent nowhere"),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn credentials_are_required_only_by_the_commands_that_use_them() {
        let vars: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .chain([("SECUTIX_SYNC__SECUTIX__SECRET_FILE", "no-such-secutix-secret")])
            .collect();
        let sources = Sources {
            env: env(&vars),
            overrides: Some(
                "[[targets]]\nname = \"site\"\nkind = \"wordpress\"\n[targets.wordpress]\n\
                 url = \"https://www.theatre.example\"\nuser = \"u\"\napplication_password_file = \"no-such-file\"\n\
                 [[targets]]\nname = \"out\"\nkind = \"files\"\n[targets.files]\npath = \"/tmp/out\"\n"
                    .into(),
            ),
            ..Default::default()
        };
        let err = Config::load(&sources).expect_err("run needs every credential");
        let text = err.to_string();
        assert!(
            text.contains("secutix.secret_file") && text.contains("targets[0].wordpress.application_password_file"),
            "{text}"
        );
        assert!(
            text.contains("CREDENTIALS_DIRECTORY") && text.contains("LoadCredential="),
            "{text}"
        );

        let loaded = Config::load_without_credentials(&sources).expect("the store commands load it");
        assert_eq!(loaded.credentials.len(), 2, "{:?}", loaded.credentials);
        loaded
            .require_credentials(false, &["out"])
            .expect("the files target needs none");
        let wp = loaded
            .require_credentials(false, &["site"])
            .expect_err("wordpress needs its password");
        assert!(!wp.to_string().contains("secutix.secret_file"), "{wp}");
        let secutix = loaded
            .require_credentials(true, &[])
            .expect_err("SecuTix needs its secret");
        assert!(secutix.to_string().contains("secutix.secret_file"), "{secutix}");
    }
}
