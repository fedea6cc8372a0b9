//! Reading the layers into a [`Report`]: every problem of every layer in one run.
//!
//! Each section (and each `[[targets]]` table) is read on its own, so a problem in one never hides the
//! others; a key of the wrong type is reported, then replaced by its default (or dropped) and the section
//! read again, so that two bad keys of one section are both named and its unknown keys still found. Value
//! checks ([`Config::validate`]) then run on the repaired configuration, except under keys already reported.
//! Problems with credentials (a secret file that cannot be read, no secret at all) are kept apart, so that
//! commands that call neither SecuTix nor a target work without them.
//!
//! What a key holds (a list, a duration, one of a set of values) comes from [`super::shape`]: environment
//! variables of every list key are split on commas, and messages give the valid values or an example.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::shape::{Shape, quoted_list, shapes_of};
use super::{
    CatalogueConfig, Config, ConfigError, ControlConfig, DEFAULT_TOML, DaemonConfig, ENV_PREFIX, EntriesConfig,
    LoggingConfig, Problem, StoreConfig, TargetConfig,
};
use crate::availability::settings::AvailabilityConfig;
use crate::secutix::settings::SecutixConfig;

/// Most repairs of one section before it is given up (each repair fixes one key).
const MAX_REPAIRS: usize = 64;

/// Longest quoted value in a message.
const MAX_QUOTED: usize = 60;

/// The shapes of the configuration's keys, read once from its types.
pub(crate) struct Schema {
    /// Keys of [`Config`], dotted (`control.cors_origins`).
    config: BTreeMap<String, Shape>,
    /// Keys of one `[[targets]]` table, dotted from the table (`webhook.secret_file`).
    target: BTreeMap<String, Shape>,
}

/// The configuration's schema.
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema {
        config: shapes_of::<Config>(),
        target: shapes_of::<TargetConfig>(),
    })
}

impl Schema {
    /// Keys whose value is a list, other than the `[[targets]]` tables: in an environment variable, their
    /// value is comma-separated.
    pub(crate) fn list_keys(&self) -> impl Iterator<Item = &str> {
        self.config
            .iter()
            .filter(|(k, s)| **s == Shape::List && k.contains('.'))
            .map(|(k, _)| k.as_str())
    }

    /// The shape of a dotted key (`secutix.request_timeout`, `targets[2].webhook.url`).
    pub(crate) fn shape(&self, key: &str) -> Option<&Shape> {
        match target_part(key) {
            Some((_, rest)) => self.target.get(rest),
            None => self.config.get(key),
        }
    }

    /// The keys a table accepts (`""` for the root, `secutix`, `targets[0].webhook`).
    fn fields_of(&self, table: &str) -> &'static [&'static str] {
        match self.shape(table) {
            Some(Shape::Table(fields)) => fields,
            _ => &[],
        }
    }

    /// True for a key that holds a credential or names its file: a `…_file` key, or a key with a `…_file`
    /// sibling (`secret` and `secret_file`).
    fn is_credential(&self, key: &str) -> bool {
        let (table, last) = key.rsplit_once('.').unwrap_or(("", key));
        let fields = self.fields_of(table);
        last.ends_with("_file") && fields.contains(&last) || fields.contains(&format!("{last}_file").as_str())
    }
}

/// `targets[3].webhook.url` → `(3, "webhook.url")`; `None` for keys outside `[[targets]]`.
fn target_part(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("targets[")?;
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest.strip_prefix('.').unwrap_or(rest)))
}

/// Whose credential a [`CredentialProblem`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOwner {
    /// The SecuTix secret (`secutix.secret` / `secutix.secret_file`).
    Secutix,
    /// A target's password, key or secret (its name).
    Target(String),
}

/// A credential the configuration names but that cannot be used as it is: missing, unreadable or empty.
/// Only commands that call SecuTix or that target need it ([`super::Loaded::require_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProblem {
    /// Whose credential.
    pub owner: CredentialOwner,
    /// The key and what is wrong.
    pub problem: Problem,
}

/// Everything loading found, for `validate-config` (and, through [`Config::load`], for every command).
#[derive(Debug, Clone)]
pub struct Report {
    /// The configuration, with a default in place of every key reported in `problems`: use it only when
    /// `problems` is empty.
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Keys of the wrong type, values out of range, missing required keys.
    pub problems: Vec<Problem>,
    /// Credentials that cannot be used.
    pub credentials: Vec<CredentialProblem>,
    /// Keys or variables no section knows (likely typos).
    pub unknown_keys: Vec<Problem>,
    /// Valid, but probably not what the operator wants (no `[[targets]]`: nothing is pushed).
    pub warnings: Vec<Problem>,
}

/// Splits the environment's configuration variables: list keys (comma-separated, as a TOML layer of
/// their own) and the others (left to the `config` crate's environment source).
pub(crate) fn split_environment(vars: &BTreeMap<String, String>) -> (BTreeMap<String, String>, Option<String>) {
    let prefix = format!("{ENV_PREFIX}__").to_ascii_lowercase();
    let lists: BTreeSet<&str> = schema().list_keys().collect();
    let mut plain = BTreeMap::new();
    let mut table = toml::Table::new();
    for (name, value) in vars {
        let lower = name.to_ascii_lowercase();
        let key = lower.strip_prefix(&prefix).map(|k| k.replace("__", "."));
        match key {
            Some(key) if lists.contains(key.as_str()) => {
                let items: Vec<toml::Value> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect();
                insert_dotted(&mut table, &key, toml::Value::Array(items));
            }
            _ => {
                plain.insert(name.clone(), value.clone());
            }
        }
    }
    let lists = (!table.is_empty()).then(|| toml::to_string(&table).unwrap_or_default());
    (plain, lists)
}

fn insert_dotted(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = table
                .entry(head.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// Reads `raw` (every layer merged) into a [`Report`].
pub(crate) fn report(
    raw: &config::Config,
    file: Option<PathBuf>,
    env_vars: &BTreeMap<String, String>,
) -> Result<Report, ConfigError> {
    let mut root = root_table(raw)?;
    let defaults_raw = config::Config::builder()
        .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::File {
            path: PathBuf::from("config/default.toml (built in)"),
            reason: e.to_string(),
        })?;
    let defaults = root_table(&defaults_raw)?;
    let mut reading = Reading {
        problems: Vec::new(),
        unknown: Vec::new(),
    };
    let sections = schema().fields_of("");
    for key in root.keys() {
        if !sections.contains(&key.as_str()) {
            reading.unknown.push(key.clone());
        }
    }
    let secutix: SecutixConfig = reading.section("secutix", &mut root, &defaults)?;
    let catalogue: CatalogueConfig = reading.section("catalogue", &mut root, &defaults)?;
    let store: StoreConfig = reading.section("store", &mut root, &defaults)?;
    let availability: AvailabilityConfig = reading.section("availability", &mut root, &defaults)?;
    let entries: EntriesConfig = reading.section("entries", &mut root, &defaults)?;
    let daemon: DaemonConfig = reading.section("daemon", &mut root, &defaults)?;
    let control: ControlConfig = reading.section("control", &mut root, &defaults)?;
    let logging: LoggingConfig = reading.section("logging", &mut root, &defaults)?;
    // Each [[targets]] table on its own; one that cannot be read (no name, an unknown kind) is left out
    // of the value checks, which name the others by their place in the file.
    let mut targets = Vec::new();
    let mut places = Vec::new();
    match root.remove("targets").map(|v| v.kind) {
        None | Some(config::ValueKind::Nil) => {}
        Some(config::ValueKind::Array(tables)) => {
            for (i, table) in tables.into_iter().enumerate() {
                if let Some(t) = reading.read::<TargetConfig>(table, None, &format!("targets[{i}]")) {
                    targets.push(t);
                    places.push(i);
                }
            }
        }
        Some(_) => reading.problems.push(Problem {
            key: "targets".into(),
            message: "is not a list of tables: declare each target as a [[targets]] table".into(),
        }),
    }
    let config = Config {
        secutix,
        catalogue,
        store,
        availability,
        entries,
        targets,
        daemon,
        control,
        logging,
    };

    let Reading { mut problems, unknown } = reading;
    let reported: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
    let mut credentials = Vec::new();
    for mut p in config.validate() {
        if let Some((j, rest)) = target_part(&p.key)
            && let Some(i) = places.get(j)
        {
            p.key = if rest.is_empty() {
                format!("targets[{i}]")
            } else {
                format!("targets[{i}].{rest}")
            };
        }
        if reported
            .iter()
            .any(|r| p.key == *r || p.key.starts_with(&format!("{r}.")))
        {
            continue;
        }
        match credential_owner(&config, &places, &p.key) {
            Some(owner) => credentials.push(CredentialProblem { owner, problem: p }),
            None => problems.push(p),
        }
    }
    let unknown_keys = unknown
        .into_iter()
        .map(|key| Problem {
            message: unknown_key_message(&key, env_vars),
            key,
        })
        .collect();
    let mut warnings = Vec::new();
    let kinds = match schema().target.get("kind") {
        Some(Shape::Enum(kinds)) => kinds.join(", "),
        _ => String::new(),
    };
    if config.targets.is_empty() && !problems.iter().any(|p| p.key.starts_with("targets")) {
        warnings.push(Problem {
            key: "targets".into(),
            message: format!(
                "none declared: entries are built but sent nowhere. Add a [[targets]] table (kind: {kinds}); see \
                 \"Targets and the outbox\" in the README"
            ),
        });
    } else if !config.targets.is_empty() && config.targets.iter().all(|t| !t.enabled) {
        warnings.push(Problem {
            key: "targets".into(),
            message: "every target is disabled (enabled = false): nothing is pushed".into(),
        });
    }
    Ok(Report {
        config,
        file,
        problems,
        credentials,
        unknown_keys,
        warnings,
    })
}

/// Whose credential `key` is, if it is one.
fn credential_owner(config: &Config, places: &[usize], key: &str) -> Option<CredentialOwner> {
    if !schema().is_credential(key) {
        return None;
    }
    if key.starts_with("secutix.") {
        return Some(CredentialOwner::Secutix);
    }
    let (i, _) = target_part(key)?;
    let j = places.iter().position(|p| *p == i)?;
    Some(CredentialOwner::Target(config.targets.get(j)?.name.clone()))
}

/// The merged layers as a table of sections.
fn root_table(raw: &config::Config) -> Result<BTreeMap<String, config::Value>, ConfigError> {
    raw.clone()
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: "(configuration)".into(),
                message: format!("is not a table of sections: {e}"),
            }])
        })
}

/// Problems and unknown keys found so far.
struct Reading {
    problems: Vec<Problem>,
    unknown: Vec<String>,
}

impl Reading {
    /// Reads section `name`; a key it cannot read is reported and replaced by its default.
    fn section<T: DeserializeOwned>(
        &mut self,
        name: &str,
        root: &mut BTreeMap<String, config::Value>,
        defaults: &BTreeMap<String, config::Value>,
    ) -> Result<T, ConfigError> {
        let default = defaults.get(name);
        let value = root
            .remove(name)
            .or_else(|| default.cloned())
            .unwrap_or_else(|| config::Value::new(None, config::ValueKind::Table(Default::default())));
        if let Some(v) = self.read(value, default, name) {
            return Ok(v);
        }
        // Not even the repaired section reads: fall back to the built-in defaults for the value checks.
        let fallback = default.cloned().and_then(|d| d.try_deserialize::<T>().ok());
        fallback.ok_or_else(|| ConfigError::Invalid(self.problems.clone()))
    }

    /// Reads `value` as a `T`; each key that does not read is reported, replaced by its value in
    /// `defaults` (or removed) and the value read again. `None` when it cannot be repaired.
    fn read<T: DeserializeOwned>(
        &mut self,
        mut value: config::Value,
        defaults: Option<&config::Value>,
        prefix: &str,
    ) -> Option<T> {
        let mut reported: Vec<String> = Vec::new();
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for _ in 0..MAX_REPAIRS {
            let mut ignored = Vec::new();
            let result = serde_path_to_error::deserialize::<_, T>(serde_ignored::Deserializer::new(
                value.clone(),
                &mut |path: serde_ignored::Path<'_>| ignored.push(ignored_key(&path)),
            ));
            unknown.extend(ignored.into_iter().map(|k| join(prefix, &k)));
            let error = match result {
                Ok(v) => {
                    self.unknown.extend(unknown);
                    return Some(v);
                }
                Err(e) => e,
            };
            let segments: Vec<Segment> = error.path().iter().cloned().collect();
            let at = join(prefix, &render(&segments));
            if let config::ConfigError::NotFound(field) = error.inner() {
                let key = join(&at, field);
                if reported.contains(&key) {
                    // Removed by a repair above: already reported as of the wrong type.
                    break;
                }
                let message = match schema().shape(&key) {
                    Some(Shape::Enum(values)) => format!("is missing: set it to {}", quoted_list(values)),
                    _ => "is missing (required)".to_owned(),
                };
                self.problems.push(Problem { key, message });
                break;
            }
            if reported.contains(&at) {
                break;
            }
            reported.push(at.clone());
            let found = value_at(&value, &segments).cloned();
            let default = defaults.and_then(|d| value_at(d, &segments)).cloned();
            self.problems.push(Problem {
                message: type_message(&at, found.as_ref(), default.as_ref(), error.inner()),
                key: at,
            });
            if !repair(&mut value, &segments, default) {
                break;
            }
        }
        self.unknown.extend(unknown);
        None
    }
}

/// `prefix.key`, `prefix[0]`, or either alone.
fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, _) => key.trim_start_matches('.').to_owned(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{}", key.trim_start_matches('.')),
    }
}

fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// A serde_ignored path as a dotted key (`webhook.urll`, `owned_fields[2]`).
fn ignored_key(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_key(parent)),
        Path::Map { parent, key } => join(&ignored_key(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => ignored_key(parent),
    }
}

fn value_at<'v>(value: &'v config::Value, segments: &[Segment]) -> Option<&'v config::Value> {
    let mut v = value;
    for s in segments {
        v = match (s, &v.kind) {
            (Segment::Map { key }, config::ValueKind::Table(t)) => t.get(key)?,
            (Segment::Seq { index }, config::ValueKind::Array(a)) => a.get(*index)?,
            (Segment::Enum { .. } | Segment::Unknown, _) => v,
            _ => return None,
        };
    }
    Some(v)
}

/// Puts `replacement` at `segments` (or removes the key); false when nothing could be changed.
fn repair(value: &mut config::Value, segments: &[Segment], replacement: Option<config::Value>) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return match replacement {
            Some(r) => {
                *value = r;
                true
            }
            None => false,
        };
    };
    let mut v = value;
    for s in parents {
        v = match (s, &mut v.kind) {
            (Segment::Map { key }, config::ValueKind::Table(t)) => match t.get_mut(key) {
                Some(inner) => inner,
                None => return false,
            },
            (Segment::Seq { index }, config::ValueKind::Array(a)) => match a.get_mut(*index) {
                Some(inner) => inner,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, &mut v.kind, replacement) {
        (Segment::Map { key }, config::ValueKind::Table(t), Some(r)) => {
            t.insert(key.clone(), r);
            true
        }
        (Segment::Map { key }, config::ValueKind::Table(t), None) => t.remove(key).is_some(),
        (Segment::Seq { index }, config::ValueKind::Array(a), _) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// What a key of the wrong type holds, in words (never the value of a credential key).
fn found_text(key: &str, found: Option<&config::Value>) -> String {
    use config::ValueKind as K;
    let Some(found) = found else {
        return "the value".to_owned();
    };
    match &found.kind {
        _ if schema().is_credential(key) => "the value".to_owned(),
        K::Nil => "an empty value".to_owned(),
        K::Boolean(b) => b.to_string(),
        K::I64(n) => n.to_string(),
        K::I128(n) => n.to_string(),
        K::U64(n) => n.to_string(),
        K::U128(n) => n.to_string(),
        K::Float(f) => f.to_string(),
        K::String(s) => {
            let short: String = s.chars().take(MAX_QUOTED).collect();
            let more = if s.chars().count() > MAX_QUOTED { "…" } else { "" };
            format!("\"{}{more}\"", short.escape_debug())
        }
        K::Table(_) => "a table".to_owned(),
        K::Array(_) => "a list".to_owned(),
    }
}

/// The message of a key that does not read as its type: what was found, what is expected, and an example.
fn type_message(
    key: &str,
    found: Option<&config::Value>,
    default: Option<&config::Value>,
    error: &config::ConfigError,
) -> String {
    let shape = schema().shape(key);
    let what = found_text(key, found);
    let number = found.and_then(|f| match &f.kind {
        config::ValueKind::I64(n) => Some(n.to_string()),
        config::ValueKind::U64(n) => Some(n.to_string()),
        config::ValueKind::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => Some(s.clone()),
        _ => None,
    });
    let given = found.and_then(|f| match &f.kind {
        config::ValueKind::String(s) => Some(s.clone()),
        _ => None,
    });
    let mut message = match (shape, number) {
        (Some(Shape::Duration), Some(n)) => {
            format!("{what} has no unit: write a duration such as \"{n}s\" (or \"10m\", \"1h 30m\")")
        }
        (Some(Shape::Enum(values)), _) => {
            let mut m = format!("{what} is not {}", Shape::Enum(values).expected());
            if let Some(close) = given.as_deref().and_then(|g| closest(g, values)) {
                m.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            m
        }
        (Some(shape), _) => format!("{what} is not {}", shape.expected()),
        (None, _) => clean_error(error),
    };
    if let Some(d) = default.filter(|_| !schema().is_credential(key)) {
        let example = found_text(key, Some(d));
        if !matches!(d.kind, config::ValueKind::Table(_) | config::ValueKind::Array(_)) && example != "\"\"" {
            message.push_str(&format!("; the default is {example}"));
        }
    }
    message
}

/// A `config` crate error without its Rust wording.
fn clean_error(error: &config::ConfigError) -> String {
    let text = match error {
        config::ConfigError::Type {
            unexpected, expected, ..
        } => format!("expected {expected}, found {unexpected}"),
        other => other.to_string(),
    };
    match text.find(" for key `") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The candidate closest to `word` when it is a likely typo of it (case, one or two letters).
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (both words are keys or values of the configuration: short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The message of an unknown key: where it was set, the likely intended key, or the valid ones.
pub(crate) fn unknown_key_message(key: &str, env_vars: &BTreeMap<String, String>) -> String {
    let env_name = format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_ascii_uppercase());
    let (table, last) = key.rsplit_once('.').unwrap_or(("", key));
    let fields = schema().fields_of(table);
    let hint = match closest(last, fields) {
        Some(c) => format!("did you mean {}?", join(table, c)),
        None if fields.is_empty() => "see config/default.toml for the valid keys".to_owned(),
        None if table.is_empty() => format!("the sections are {}", fields.join(", ")),
        None => format!("the keys of {table} are {}", fields.join(", ")),
    };
    if env_vars.contains_key(&env_name) {
        format!("unknown key, set by the environment variable {env_name}; it is ignored ({hint})")
    } else {
        format!("unknown key (a typo?); it is ignored ({hint})")
    }
}

/// How a command gets credentials it cannot read: systemd's `$CREDENTIALS_DIRECTORY`.
pub fn credentials_hint() -> String {
    let here = match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) => format!("(here {}, which lacks them)", PathBuf::from(dir).display()),
        None => "(not set here)".to_owned(),
    };
    format!(
        "Relative file names are looked up in $CREDENTIALS_DIRECTORY {here}, which systemd fills from the unit's \
         LoadCredential= lines. Run this command the way the service runs, e.g. `systemd-run --pty --wait \
         --collect -p User=secutix-sync -p LoadCredential=secutix-secret:/etc/secutix-sync/secutix-secret \
         secutix-sync …` (see \"Installing as a service\" in the README), or as root with \
         CREDENTIALS_DIRECTORY=/etc/secutix-sync. Commands that only read the store or ask the running daemon \
         (status, entries, resync, state, dlq) need no credentials."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_are_the_file_keys_and_their_inline_twins() {
        let s = schema();
        for key in [
            "secutix.secret",
            "secutix.secret_file",
            "targets[0].webhook.secret",
            "targets[0].wordpress.application_password_file",
            "targets[2].drupal.client_secret",
            "targets[1].passculture.api_key_file",
        ] {
            assert!(s.is_credential(key), "{key}");
        }
        for key in [
            "secutix.institution",
            "targets[0].webhook.url",
            "targets[0].name",
            "store.path",
        ] {
            assert!(!s.is_credential(key), "{key}");
        }
    }

    #[test]
    fn every_list_key_of_the_schema_splits_in_the_environment() {
        let vars: BTreeMap<String, String> = [
            (
                "SECUTIX_SYNC__CONTROL__CORS_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("SECUTIX_SYNC__CATALOGUE__PRODUCT_CODES", "1234"),
            ("SECUTIX_SYNC__ENTRIES__LANGUAGES", ""),
            ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (plain, lists) = split_environment(&vars);
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["SECUTIX_SYNC__SECUTIX__INSTITUTION"]);
        let table: toml::Table = toml::from_str(&lists.expect("lists")).expect("toml");
        assert_eq!(
            table["control"]["cors_origins"],
            toml::Value::Array(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert_eq!(
            table["catalogue"]["product_codes"],
            toml::Value::Array(vec!["1234".into()])
        );
        assert_eq!(table["entries"]["languages"], toml::Value::Array(vec![]));
    }

    #[test]
    fn typos_are_matched_to_the_closest_key() {
        assert_eq!(
            closest("institutoin", &["institution", "operator"]),
            Some("institution")
        );
        assert_eq!(closest("file", &["files", "webhook"]), Some("files"));
        assert_eq!(closest("zzz", &["files", "webhook"]), None);
    }
}
