//! The contract between the push worker and a target: the [`Target`] trait and the operations it applies.
//!
//! It lives with `push` (not with `targets`) so that the worker, which only drives the trait, never imports
//! the targets that implement it (`crate::targets`, one layer up).

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
