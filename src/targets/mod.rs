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

pub use crate::push::target::{Applied, OpKind, Operation, Target, TargetError};

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

/// How the planner sees the target described by `cfg`: its name, tombstone policy and the products its
/// kind selects (pass Culture), if any.
pub fn plan_target(cfg: &registry::TargetConfig) -> crate::push::PlanTarget {
    let mut t = crate::push::PlanTarget::new(&cfg.name, cfg.delete_policy);
    t.filter = cfg.settings.as_ref().and_then(registry::KindSettings::product_filter);
    t
}

/// Builds the target described by `cfg` ([`registry::KindSettings::build`]). Targets that keep their own
/// state (pass Culture's ids) get it from `store`.
pub fn build(
    cfg: &registry::TargetConfig,
    store: &crate::store::Store,
) -> Result<std::sync::Arc<dyn Target>, TargetError> {
    match &cfg.settings {
        Some(settings) => settings.build(&cfg.name, cfg, store),
        None => Err(TargetError::permanent(format!(
            "target {}: kind = \"{kind}\" needs a [targets.{kind}] table",
            cfg.name,
            kind = cfg.kind.name()
        ))),
    }
}
