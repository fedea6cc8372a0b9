//! `[[targets]]`: the settings of every target, owned here and assembled by [`crate::config`].
//!
//! One table per target: the settings every kind shares (name, kind, delete policy, pace, retries) and a
//! sub-table named after the kind (`[targets.webhook]`…) with the kind's own.

use std::time::Duration;

use serde::Deserialize;

use crate::credentials::resolve_credential_path;

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
    /// The kind as written in the configuration (`files`, `webhook`, `passculture`, `wordpress`, `drupal`).
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// `[[targets]]`: one target. Kind-specific settings are in a sub-table named after the kind
/// (`[targets.files]`, `[targets.webhook]`, `[targets.passculture]`, `[targets.wordpress]`, `[targets.drupal]`).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetConfig {
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
    pub files: Option<crate::targets::files::FilesSettings>,
    /// `[targets.webhook]`
    pub webhook: Option<crate::targets::webhook::WebhookSettings>,
    /// `[targets.passculture]`
    pub passculture: Option<crate::targets::passculture::PassCultureSettings>,
    /// `[targets.wordpress]`
    pub wordpress: Option<crate::targets::wordpress::WordPressSettings>,
    /// `[targets.drupal]`
    pub drupal: Option<crate::targets::drupal::DrupalSettings>,
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
        self.concurrency.unwrap_or(match self.kind {
            TargetKind::Passculture => 1,
            TargetKind::Wordpress => 2,
            _ => 4,
        })
    }

    /// Operations per second: the configured value, else 3 for pass Culture (180 a minute, under its 200;
    /// the target also paces each of its own requests) and 10 for the others.
    pub fn rate_per_second(&self) -> u32 {
        self.rate_per_second.unwrap_or(match self.kind {
            TargetKind::Passculture => 3,
            _ => 10,
        })
    }

    /// Timeout of one operation: the configured value, else 10 minutes for pass Culture (one operation
    /// publishes a whole offer, request by request, at the API's pace), 60 seconds for WordPress (one
    /// batch writes up to 25 posts) and 20 seconds for the others.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(match self.kind {
            TargetKind::Passculture => Duration::from_secs(600),
            TargetKind::Wordpress => Duration::from_secs(60),
            _ => Duration::from_secs(20),
        })
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
        let sub = match self.kind {
            TargetKind::Files => ("files", self.files.is_some()),
            TargetKind::Webhook => ("webhook", self.webhook.is_some()),
            TargetKind::Passculture => ("passculture", self.passculture.is_some()),
            TargetKind::Wordpress => ("wordpress", self.wordpress.is_some()),
            TargetKind::Drupal => ("drupal", self.drupal.is_some()),
        };
        if !sub.1 {
            bad(
                sub.0,
                format!(
                    "kind = \"{0}\" needs a [targets.{0}] table after this [[targets]]",
                    sub.0
                ),
            );
        }
        if let Some(f) = &self.files
            && f.path.as_os_str().is_empty()
        {
            bad("files.path", "is empty; set the output folder".into());
        }
        if let Some(w) = &self.webhook {
            match url::Url::parse(&w.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "webhook.url",
                    format!("{:?} is not an http(s) URL", crate::http::redact_credentials(&w.url)),
                ),
            }
            if let Some(m) = w.clear_text_problem() {
                bad("webhook.url", m);
            }
            if w.secret.is_some() && w.secret_file.is_some() {
                bad(
                    "webhook.secret",
                    "is set together with webhook.secret_file; keep only one".into(),
                );
            } else if let Some(file) = &w.secret_file {
                let path = resolve_credential_path(file);
                if let Err(e) = std::fs::read_to_string(&path) {
                    bad(
                        "webhook.secret_file",
                        format!("cannot read the secret file {}: {e}", path.display()),
                    );
                }
            }
        }
        if self.kind == TargetKind::Passculture && self.delete_policy == crate::push::DeletePolicy::Delete {
            bad(
                "delete_policy",
                "\"delete\" is refused for a passculture target: deleting a pass Culture date cancels the young \
                 people's bookings. Use \"unpublish\" (future dates get quantity 0) or \"keep\""
                    .into(),
            );
        }
        if let Some(pc) = &self.passculture {
            for (k, m) in pc.problems() {
                bad(&format!("passculture.{k}"), m);
            }
        }
        if let Some(wp) = &self.wordpress {
            for (k, m) in wp.problems() {
                bad(&format!("wordpress.{k}"), m);
            }
        }
        if let Some(d) = &self.drupal {
            for (k, m) in d.problems() {
                bad(&format!("drupal.{k}"), m);
            }
        }
    }
}
