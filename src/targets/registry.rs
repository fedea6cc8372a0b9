//! `[[targets]]`: the settings of every target, owned here and assembled by [`crate::config`].
//!
//! One table per target: the settings every kind shares (name, kind, delete policy, pace, retries) and a
//! sub-table named after the kind (`[targets.webhook]`…) with the kind's own, read into one variant of
//! [`KindSettings`]. Everything that differs between kinds is a `match` on [`KindSettings`] (or
//! [`TargetKind`]) here, one arm per kind, so the compiler lists what a new kind must say: its defaults
//! ([`TargetKind::default_concurrency`]…), its validation ([`KindSettings::problems`]), its secret files
//! ([`KindSettings::secret_files`]), its construction ([`KindSettings::build`]) and its optional capabilities
//! (a product selection, pass Culture's box office and offer statuses).
//!
//! Adding a kind: a variant of [`TargetKind`] and of [`KindSettings`], its field in [`RawTarget`], the arms
//! the compiler asks for in this file, and the kind's own module under `src/targets/` (ARCHITECTURE.md).

use std::time::Duration;

use std::sync::Arc;

use serde::Deserialize;

use crate::credentials::resolve_credential_path;
use crate::push::ProductFilter;
use crate::push::target::{Target, TargetError};
use crate::store::Store;
use crate::targets::drupal::{DrupalSettings, DrupalTarget};
use crate::targets::files::{FilesSettings, FilesTarget};
use crate::targets::passculture::{PassCultureSettings, PassCultureTarget};
use crate::targets::webhook::{WebhookSettings, WebhookTarget};
use crate::targets::wordpress::{WordPressSettings, WordPressTarget};

/// The kind of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// JSON files in a folder.
    Files,
    /// Generic JSON over HTTP(S).
    Webhook,
    /// pass Culture's public API: event offers, price categories and dates for young people.
    Passculture,
    /// WordPress REST API, with the companion plugin (`contrib/wordpress/`).
    Wordpress,
    /// Drupal JSON:API.
    Drupal,
}

impl TargetKind {
    /// The kind as written in the configuration, and the name of its sub-table.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Files => "files",
            TargetKind::Webhook => "webhook",
            TargetKind::Passculture => "passculture",
            TargetKind::Wordpress => "wordpress",
            TargetKind::Drupal => "drupal",
        }
    }

    /// Operations in flight at once unless configured.
    pub fn default_concurrency(self) -> usize {
        match self {
            TargetKind::Passculture => 1,
            TargetKind::Wordpress => 2,
            TargetKind::Files | TargetKind::Webhook | TargetKind::Drupal => 4,
        }
    }

    /// Operations per second unless configured.
    pub fn default_rate_per_second(self) -> u32 {
        match self {
            TargetKind::Passculture => 3,
            TargetKind::Files | TargetKind::Webhook | TargetKind::Wordpress | TargetKind::Drupal => 10,
        }
    }

    /// Timeout of one operation unless configured.
    pub fn default_request_timeout(self) -> Duration {
        match self {
            TargetKind::Passculture => Duration::from_secs(600),
            TargetKind::Wordpress => Duration::from_secs(60),
            TargetKind::Files | TargetKind::Webhook | TargetKind::Drupal => Duration::from_secs(20),
        }
    }
}

/// `[[targets]]`: one target. Kind-specific settings are in a sub-table named after the kind
/// (`[targets.files]`, `[targets.webhook]`, `[targets.passculture]`, `[targets.wordpress]`, `[targets.drupal]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawTarget")]
pub struct TargetConfig {
    /// Unique name (letters, digits, `-`, `_`): used in commands, metrics and the store.
    pub name: String,
    /// The kind.
    pub kind: TargetKind,
    /// A disabled target keeps its state but receives nothing.
    pub enabled: bool,
    /// `unpublish` (default), `delete` or `keep` for products SecuTix no longer lists.
    pub delete_policy: crate::push::DeletePolicy,
    /// Operations in flight at once; unset = the kind's default ([`TargetConfig::concurrency`]).
    pub concurrency: Option<usize>,
    /// Operations per second, retries included; unset = the kind's default. For a kind that sends batches
    /// (wordpress), one batch request counts as one.
    pub rate_per_second: Option<u32>,
    /// Timeout of one operation; unset = the kind's default. An operation is one request for most kinds,
    /// but a whole offer (several paced requests) for pass Culture, hence a longer default there.
    pub request_timeout: Option<Duration>,
    /// Attempts before an operation goes to dead letters.
    pub max_attempts: u32,
    /// First retry delay (doubles, with full jitter).
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// The kind's own settings, from the sub-table named after the kind; `None` when the table is missing
    /// (a problem [`TargetConfig::validate`] reports).
    pub settings: Option<KindSettings>,
}

/// The kind-specific settings of a target: one variant per kind.
#[derive(Debug, Clone)]
pub enum KindSettings {
    /// `[targets.files]`
    Files(FilesSettings),
    /// `[targets.webhook]`
    Webhook(WebhookSettings),
    /// `[targets.passculture]`
    Passculture(PassCultureSettings),
    /// `[targets.wordpress]`
    Wordpress(WordPressSettings),
    /// `[targets.drupal]`
    Drupal(DrupalSettings),
}

/// A `[[targets]]` table as written: the shared keys and one optional sub-table per kind. Only the
/// sub-table of the target's kind is kept ([`TargetConfig::settings`]).
#[derive(Debug, Clone, Deserialize)]
pub struct RawTarget {
    /// Unique name (letters, digits, `-`, `_`): used in commands, metrics and the store.
    pub name: String,
    /// The kind.
    pub kind: TargetKind,
    /// A disabled target keeps its state but receives nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `unpublish` (default), `delete` or `keep` for products SecuTix no longer lists.
    #[serde(default = "default_delete_policy")]
    pub delete_policy: crate::push::DeletePolicy,
    /// Operations in flight at once; unset = the kind's default ([`TargetConfig::concurrency`]).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Operations per second, retries included; unset = the kind's default. For a kind that sends batches
    /// (wordpress), one batch request counts as one.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Timeout of one operation; unset = the kind's default. An operation is one request for most kinds,
    /// but a whole offer (several paced requests) for pass Culture, hence a longer default there.
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Attempts before an operation goes to dead letters.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay (doubles, with full jitter).
    #[serde(default = "default_backoff_initial", with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// `[targets.files]`
    pub files: Option<FilesSettings>,
    /// `[targets.webhook]`
    pub webhook: Option<WebhookSettings>,
    /// `[targets.passculture]`
    pub passculture: Option<PassCultureSettings>,
    /// `[targets.wordpress]`
    pub wordpress: Option<WordPressSettings>,
    /// `[targets.drupal]`
    pub drupal: Option<DrupalSettings>,
}

impl From<RawTarget> for TargetConfig {
    fn from(raw: RawTarget) -> Self {
        let settings = match raw.kind {
            TargetKind::Files => raw.files.map(KindSettings::Files),
            TargetKind::Webhook => raw.webhook.map(KindSettings::Webhook),
            TargetKind::Passculture => raw.passculture.map(KindSettings::Passculture),
            TargetKind::Wordpress => raw.wordpress.map(KindSettings::Wordpress),
            TargetKind::Drupal => raw.drupal.map(KindSettings::Drupal),
        };
        TargetConfig {
            name: raw.name,
            kind: raw.kind,
            enabled: raw.enabled,
            delete_policy: raw.delete_policy,
            concurrency: raw.concurrency,
            rate_per_second: raw.rate_per_second,
            request_timeout: raw.request_timeout,
            max_attempts: raw.max_attempts,
            backoff_initial: raw.backoff_initial,
            backoff_max: raw.backoff_max,
            settings,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_delete_policy() -> crate::push::DeletePolicy {
    crate::push::DeletePolicy::Unpublish
}
fn default_attempts() -> u32 {
    8
}
fn default_backoff_initial() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30 * 60)
}

impl TargetConfig {
    /// Operations in flight at once: the configured value, else 1 for pass Culture (its API allows 200
    /// requests a minute for the whole key), 2 for WordPress (each is a batch of up to 25 operations: two
    /// PHP workers busy at most) and 4 for the others.
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(self.kind.default_concurrency())
    }

    /// Operations per second: the configured value, else 3 for pass Culture (180 a minute, under its 200;
    /// the target also paces each of its own requests) and 10 for the others.
    pub fn rate_per_second(&self) -> u32 {
        self.rate_per_second.unwrap_or(self.kind.default_rate_per_second())
    }

    /// Timeout of one operation: the configured value, else 10 minutes for pass Culture (one operation
    /// publishes a whole offer, request by request, at the API's pace), 60 seconds for WordPress (one
    /// batch writes up to 25 posts) and 20 seconds for the others.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(self.kind.default_request_timeout())
    }

    /// The worker settings of this target.
    pub fn push_settings(&self) -> crate::push::PushSettings {
        crate::push::PushSettings {
            delete_policy: self.delete_policy,
            concurrency: self.concurrency(),
            rate_per_second: self.rate_per_second(),
            request_timeout: self.request_timeout(),
            max_attempts: self.max_attempts,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }

    /// Checks the `i`-th `[[targets]]` table: each problem is reported to `report` with its key
    /// (`targets[i].…`).
    pub fn validate(&self, i: usize, report: &mut dyn FnMut(&str, String)) {
        let mut bad = |k: &str, m: String| report(&format!("targets[{i}].{k}"), m);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad(
                "name",
                format!("{:?} is not a target name (letters, digits, - and _)", self.name),
            );
        }
        if self.concurrency() == 0 {
            bad("concurrency", "must be at least 1".into());
        }
        if self.rate_per_second() == 0 {
            bad("rate_per_second", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            bad("max_attempts", "must be at least 1".into());
        }
        if self.request_timeout().is_zero() || self.backoff_initial.is_zero() {
            bad(
                "request_timeout",
                "request_timeout and backoff_initial must be longer than 0s".into(),
            );
        }
        match &self.settings {
            None => {
                let table = self.kind.name();
                bad(
                    table,
                    format!("kind = \"{table}\" needs a [targets.{table}] table after this [[targets]]"),
                );
            }
            Some(settings) => {
                for (k, m) in settings.problems(self) {
                    bad(&format!("{}.{k}", self.kind.name()), m);
                }
                for (k, m) in settings.common_problems(self) {
                    bad(k, m);
                }
            }
        }
    }
}

impl TargetConfig {
    /// The `[targets.files]` settings of a `files` target.
    pub fn files(&self) -> Option<&FilesSettings> {
        match &self.settings {
            Some(KindSettings::Files(s)) => Some(s),
            _ => None,
        }
    }

    /// The `[targets.webhook]` settings of a `webhook` target.
    pub fn webhook(&self) -> Option<&WebhookSettings> {
        match &self.settings {
            Some(KindSettings::Webhook(s)) => Some(s),
            _ => None,
        }
    }

    /// The `[targets.wordpress]` settings of a `wordpress` target.
    pub fn wordpress(&self) -> Option<&WordPressSettings> {
        match &self.settings {
            Some(KindSettings::Wordpress(s)) => Some(s),
            _ => None,
        }
    }

    /// The `[targets.drupal]` settings of a `drupal` target.
    pub fn drupal(&self) -> Option<&DrupalSettings> {
        match &self.settings {
            Some(KindSettings::Drupal(s)) => Some(s),
            _ => None,
        }
    }

    /// The pass Culture capability: the settings of a target that offers pass Culture's extras (the box
    /// office's contremarque calls, offer statuses). `None` for every other kind.
    pub fn passculture(&self) -> Option<&PassCultureSettings> {
        self.settings.as_ref().and_then(KindSettings::passculture)
    }
}

impl KindSettings {
    /// Problems of the kind's own sub-table, as (key within the sub-table, message).
    pub fn problems(&self, _common: &TargetConfig) -> Vec<(String, String)> {
        match self {
            KindSettings::Files(f) => {
                if f.path.as_os_str().is_empty() {
                    vec![("path".into(), "is empty; set the output folder".into())]
                } else {
                    Vec::new()
                }
            }
            KindSettings::Webhook(w) => {
                let mut p = Vec::new();
                match url::Url::parse(&w.url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => p.push((
                        "url".into(),
                        format!("{:?} is not an http(s) URL", crate::http::redact_credentials(&w.url)),
                    )),
                }
                if let Some(m) = w.clear_text_problem() {
                    p.push(("url".into(), m));
                }
                if w.secret.is_some() && w.secret_file.is_some() {
                    p.push((
                        "secret".into(),
                        "is set together with webhook.secret_file; keep only one".into(),
                    ));
                } else if let Some(file) = &w.secret_file {
                    let path = resolve_credential_path(file);
                    if let Err(e) = std::fs::read_to_string(&path) {
                        p.push((
                            "secret_file".into(),
                            format!("cannot read the secret file {}: {e}", path.display()),
                        ));
                    }
                }
                p
            }
            KindSettings::Passculture(pc) => pc.problems(),
            KindSettings::Wordpress(wp) => wp.problems(),
            KindSettings::Drupal(d) => d.problems(),
        }
    }

    /// Problems of the shared keys that only this kind has, as (key within the `[[targets]]` table,
    /// message).
    pub fn common_problems(&self, common: &TargetConfig) -> Vec<(&'static str, String)> {
        match self {
            KindSettings::Passculture(_) if common.delete_policy == crate::push::DeletePolicy::Delete => vec![(
                "delete_policy",
                "\"delete\" is refused for a passculture target: deleting a pass Culture date cancels the young \
                 people's bookings. Use \"unpublish\" (future dates get quantity 0) or \"keep\""
                    .into(),
            )],
            KindSettings::Passculture(_)
            | KindSettings::Files(_)
            | KindSettings::Webhook(_)
            | KindSettings::Wordpress(_)
            | KindSettings::Drupal(_) => Vec::new(),
        }
    }

    /// The secret files the sub-table names, as (key within the sub-table, file name), for the warning about
    /// secret files other users may read.
    pub fn secret_files(&self) -> Vec<(&'static str, Option<&String>)> {
        match self {
            KindSettings::Files(_) => Vec::new(),
            KindSettings::Webhook(w) => vec![("secret_file", w.secret_file.as_ref())],
            KindSettings::Passculture(p) => vec![("api_key_file", p.api_key_file.as_ref())],
            KindSettings::Wordpress(w) => vec![("application_password_file", w.application_password_file.as_ref())],
            KindSettings::Drupal(d) => vec![
                ("password_file", d.password_file.as_ref()),
                ("token_file", d.token_file.as_ref()),
                ("client_secret_file", d.client_secret_file.as_ref()),
            ],
        }
    }

    /// Builds the target named `name` (`common` holds its shared settings). Targets that keep their own
    /// state (pass Culture's ids) get it from `store`.
    pub fn build(&self, name: &str, common: &TargetConfig, store: &Store) -> Result<Arc<dyn Target>, TargetError> {
        Ok(match self {
            KindSettings::Files(s) => Arc::new(FilesTarget::new(name, s)?),
            KindSettings::Webhook(s) => Arc::new(WebhookTarget::new(name, s, common.request_timeout())?),
            KindSettings::Wordpress(s) => Arc::new(WordPressTarget::new(name, s, common.request_timeout())?),
            KindSettings::Drupal(s) => Arc::new(DrupalTarget::new(name, s, common.request_timeout())?),
            KindSettings::Passculture(s) => Arc::new(PassCultureTarget::new(name, s, store)?),
        })
    }

    /// The products this kind receives when it selects some (pass Culture: the venue's selection); `None`:
    /// every product.
    pub fn product_filter(&self) -> Option<ProductFilter> {
        match self {
            KindSettings::Passculture(pc) => Some(pc.selection().into_filter()),
            KindSettings::Files(_)
            | KindSettings::Webhook(_)
            | KindSettings::Wordpress(_)
            | KindSettings::Drupal(_) => None,
        }
    }

    /// pass Culture's extras (box office, offer statuses): the settings of a kind that offers them.
    pub fn passculture(&self) -> Option<&PassCultureSettings> {
        match self {
            KindSettings::Passculture(pc) => Some(pc),
            KindSettings::Files(_)
            | KindSettings::Webhook(_)
            | KindSettings::Wordpress(_)
            | KindSettings::Drupal(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> TargetConfig {
        toml::from_str(text).expect("a [[targets]] table")
    }

    fn problems(t: &TargetConfig) -> Vec<(String, String)> {
        let mut p = Vec::new();
        t.validate(0, &mut |k: &str, m: String| p.push((k.to_owned(), m)));
        p
    }

    #[test]
    fn the_kinds_own_table_is_its_settings_and_a_missing_one_is_named() {
        let t = target("name = \"out\"\nkind = \"files\"\n[files]\npath = \"/tmp/out\"\n");
        assert!(matches!(t.settings, Some(KindSettings::Files(_))));
        assert!(t.files().is_some() && t.webhook().is_none() && t.passculture().is_none());
        assert!(problems(&t).is_empty(), "{:?}", problems(&t));

        let t = target("name = \"site\"\nkind = \"webhook\"\n[files]\npath = \"/tmp/out\"\n");
        assert!(
            t.settings.is_none(),
            "another kind's table is not this target's settings"
        );
        let p = problems(&t);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "targets[0].webhook");
        assert!(p[0].1.contains("needs a [targets.webhook] table"), "{p:?}");
    }

    #[test]
    fn defaults_and_capabilities_come_from_the_kind() {
        let pc =
            target("name = \"pc\"\nkind = \"passculture\"\ndelete_policy = \"delete\"\n[passculture]\nvenue_id = 1\n");
        assert_eq!(pc.concurrency(), 1);
        assert_eq!(pc.rate_per_second(), 3);
        assert!(pc.passculture().is_some(), "pass Culture offers its box office");
        assert!(
            problems(&pc).iter().any(|(k, _)| k == "targets[0].delete_policy"),
            "{:?}",
            problems(&pc)
        );
        let files = target("name = \"out\"\nkind = \"files\"\ndelete_policy = \"delete\"\n[files]\npath = \"/x\"\n");
        assert_eq!(files.concurrency(), 4);
        assert!(files.settings.as_ref().and_then(KindSettings::product_filter).is_none());
        assert!(problems(&files).is_empty(), "{:?}", problems(&files));
    }
}
