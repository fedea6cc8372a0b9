//! CMS targets behind one trait. Each configured target has its own outbox, acknowledgements and dead
//! letters (see `push.rs`); a target only knows how to apply one operation and to say whether a failure is
//! worth retrying.
//!
//! - [`files`]: one JSON file per entry plus `index.json`, written atomically (static site generators, demo).
//! - [`webhook`]: generic JSON over HTTP(S), signed with HMAC-SHA256.
//! - [`wordpress`]: posts of a custom post type through the WordPress REST API and the companion plugin,
//!   in `/batch/v1` batches.
//! - [`drupal`]: nodes of a content type through Drupal's JSON:API, with UUIDs derived from the external id.
//! - [`fields`]: the fields those two CMS targets own (and never touch beyond).
//! - [`passculture`]: pass Culture's public API (event offers, price categories, dates) for the products
//!   the venue selects, and the contremarque (booking token) calls of the box office.
//!
//! [`classify_response`] and [`classify_transport`] give every HTTP target the same rules: 2xx succeeds;
//! 408, 425, 429 and 5xx are retried (honouring `Retry-After`); other 4xx are permanent (straight to dead
//! letters); connection failures mark the target unreachable, which pauses the whole worker without using up
//! the operations' attempts.

pub mod drupal;
pub mod fields;
pub mod files;
pub mod passculture;
pub mod registry;
pub mod webhook;
pub mod wordpress;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::entry::Entry;

/// What to do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create or update (by external id).
    Upsert,
    /// Hide it (draft, unpublished): SecuTix no longer lists the product.
    Unpublish,
    /// Remove it (only when the target's `delete_policy` says so).
    Delete,
}

impl OpKind {
    /// `upsert`, `unpublish`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Upsert => "upsert",
            OpKind::Unpublish => "unpublish",
            OpKind::Delete => "delete",
        }
    }
}

/// One operation handed to a target.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The kind.
    pub kind: OpKind,
    /// `secutix-<productId>`.
    pub external_id: String,
    /// Hash of the entry being sent (also the idempotency basis).
    pub content_hash: String,
    /// The entry (for unpublish, the last entry with `published: false`).
    pub entry: Option<Entry>,
    /// The target's own id for this entry, from its last acknowledgement (WordPress post id…).
    pub remote_id: Option<String>,
    /// True when the target never acknowledged anything for this entry: a create.
    pub first_time: bool,
    /// When the operation was enqueued (stable across retries, so a retried body is byte-identical).
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
}

/// A successful application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The target's id for the entry, to remember for the next operations.
    pub remote_id: Option<String>,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Worth retrying later.
    #[error("{message}")]
    Retryable {
        /// What happened, for logs and dead letters.
        message: String,
        /// `Retry-After`, when the target sent one: applies to the whole target.
        retry_after: Option<Duration>,
        /// The target could not be reached at all (connection refused, DNS): the worker pauses and probes,
        /// without counting attempts against the operations.
        unreachable: bool,
    },
    /// Will not succeed by retrying (validation error, 4xx): goes to dead letters.
    #[error("{message}")]
    Permanent {
        /// What happened, including the target's own message.
        message: String,
    },
}

impl TargetError {
    /// The same error with credentials in URLs (`https://user:pass@…`) redacted from its message: what the
    /// push worker logs and keeps in the outbox and dead letters.
    pub fn redacted(self) -> Self {
        let clean = |m: String| match crate::http::redact_credentials(&m) {
            std::borrow::Cow::Borrowed(_) => m,
            std::borrow::Cow::Owned(r) => r,
        };
        match self {
            TargetError::Retryable {
                message,
                retry_after,
                unreachable,
            } => TargetError::Retryable {
                message: clean(message),
                retry_after,
                unreachable,
            },
            TargetError::Permanent { message } => TargetError::Permanent {
                message: clean(message),
            },
        }
    }

    /// A retryable error.
    pub fn retry(message: impl Into<String>) -> Self {
        TargetError::Retryable {
            message: message.into(),
            retry_after: None,
            unreachable: false,
        }
    }
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        TargetError::Permanent {
            message: message.into(),
        }
    }
}

/// A CMS (or folder) that receives entries.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// The configured name.
    fn name(&self) -> &str;
    /// The kind (`files`, `webhook`, `wordpress`…).
    fn kind(&self) -> &'static str;
    /// Applies one operation. Must be idempotent: the same operation may be delivered twice.
    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError>;
    /// The most operations [`Target::apply_batch`] takes at once; 1 (the default) means the worker only
    /// calls [`Target::apply`].
    fn max_batch(&self) -> usize {
        1
    }
    /// Applies several operations, each for a different entry, in as few requests as the target can
    /// (WordPress: one `/batch/v1` request). Returns one result per operation, in order: each is
    /// acknowledged, retried or buried on its own. The default applies them one after the other.
    async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(self.apply(op).await);
        }
        out
    }
    /// Called after a batch of operations (e.g. to rewrite an index).
    async fn flush(&self) -> Result<(), TargetError> {
        Ok(())
    }
    /// Checks that the target is reachable and the credentials work; returns a one-line description.
    async fn check(&self) -> Result<String, TargetError>;
}

/// Classifies an HTTP status: `Ok(())` for 2xx (and `conflict_ok` 409), else the error with the body quoted.
pub fn classify_response(
    what: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    conflict_ok: bool,
) -> Result<(), TargetError> {
    if (200..300).contains(&status) || (conflict_ok && status == 409) {
        return Ok(());
    }
    let snippet = crate::http::snippet(body.as_bytes());
    let message = format!("{what}: HTTP {status}: {snippet}");
    if matches!(status, 408 | 425 | 429) || status >= 500 {
        let retry_after = crate::http::retry_after(headers, chrono::Utc::now());
        Err(TargetError::Retryable {
            message,
            retry_after,
            unreachable: false,
        })
    } else {
        Err(TargetError::Permanent { message })
    }
}

/// Classifies a transport error from reqwest (credentials in the URL it quotes redacted).
pub fn classify_transport(what: &str, e: &reqwest::Error) -> TargetError {
    // reqwest quotes the URL, credentials included: redacted.
    let reason = crate::http::error_chain(e);
    if e.is_timeout() {
        TargetError::Retryable {
            message: format!("{what}: timed out: {reason}"),
            retry_after: None,
            unreachable: false,
        }
    } else if e.is_connect() {
        TargetError::Retryable {
            message: format!("{what}: cannot connect: {reason}"),
            retry_after: None,
            unreachable: true,
        }
    } else {
        TargetError::retry(format!("{what}: {reason}"))
    }
}

/// How the planner sees the target described by `cfg`: its name, tombstone policy and, for pass Culture,
/// the product selection.
pub fn plan_target(cfg: &crate::targets::registry::TargetConfig) -> crate::push::PlanTarget {
    let mut t = crate::push::PlanTarget::new(&cfg.name, cfg.delete_policy);
    if let Some(pc) = cfg
        .passculture
        .as_ref()
        .filter(|_| cfg.kind == crate::targets::registry::TargetKind::Passculture)
    {
        t.filter = Some(pc.selection().into_filter());
    }
    t
}

/// Builds the target described by `cfg`. Targets that keep their own state (pass Culture's ids) get it
/// from `store`.
pub fn build(
    cfg: &crate::targets::registry::TargetConfig,
    store: &crate::store::Store,
) -> Result<std::sync::Arc<dyn Target>, TargetError> {
    use crate::targets::registry::TargetKind;
    let missing = |kind: &str| {
        TargetError::permanent(format!(
            "target {}: kind = \"{kind}\" needs a [targets.{kind}] table",
            cfg.name
        ))
    };
    Ok(match cfg.kind {
        TargetKind::Files => std::sync::Arc::new(files::FilesTarget::new(
            &cfg.name,
            cfg.files.as_ref().ok_or_else(|| missing("files"))?,
        )?),
        TargetKind::Webhook => std::sync::Arc::new(webhook::WebhookTarget::new(
            &cfg.name,
            cfg.webhook.as_ref().ok_or_else(|| missing("webhook"))?,
            cfg.request_timeout(),
        )?),
        TargetKind::Wordpress => std::sync::Arc::new(wordpress::WordPressTarget::new(
            &cfg.name,
            cfg.wordpress.as_ref().ok_or_else(|| missing("wordpress"))?,
            cfg.request_timeout(),
        )?),
        TargetKind::Drupal => std::sync::Arc::new(drupal::DrupalTarget::new(
            &cfg.name,
            cfg.drupal.as_ref().ok_or_else(|| missing("drupal"))?,
            cfg.request_timeout(),
        )?),
        TargetKind::Passculture => std::sync::Arc::new(passculture::PassCultureTarget::new(
            &cfg.name,
            cfg.passculture.as_ref().ok_or_else(|| missing("passculture"))?,
            store,
        )?),
    })
}
