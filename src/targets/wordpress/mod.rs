//! The `wordpress` target: entries become posts of a custom post type (default `event`) through the
//! WordPress REST API, authenticated with an Application Password (HTTP Basic, over HTTPS unless
//! `allow_insecure_http` is set for a local test site).
//!
//! It needs the companion must-use plugin `contrib/wordpress/secutix-sync.php` (≥ 1.1.0), which registers
//! the post type and the `secutix_*` meta in the REST API, answers a lookup by external id, refuses a second
//! post for an external id (409 `secutix_sync_exists`), and reports itself on a health route. The first
//! operation reads the health route (post type, REST route, meta keys, largest batch) and keeps the answer.
//!
//! # Finding the post of an entry
//! The store's acknowledgement holds the post id (fast path: one request per update). Without one — first
//! creation, or a store that was lost — the target asks the plugin's lookup (`GET
//! /secutix-sync/v1/lookup?external_ids=…`, one request for a whole batch) and updates the post it finds,
//! trashed or draft included; it creates only when none exists. A post already holding the entry's content
//! hash and publication status is left alone, so re-syncing an intact site after a lost store writes
//! nothing. A post deleted behind the daemon's back (404 on update) is looked up again, then re-created.
//!
//! # What is written
//! Only the fields the target owns ([`super::fields`]): title, status and `secutix_*` meta by default; the
//! body from the SecuTix description at creation only. The request never names the other fields, and core
//! REST changes only what a request names: editors' body, excerpt, featured image, terms and other meta stay.
//! Unpublish sets `draft` (or `private`); delete moves to the trash (or deletes, `delete_permanently`).
//!
//! # Batches
//! Up to `batch_size` operations (≤ 25, WordPress's default limit, or the lower limit the health route
//! reports) go in one `POST /batch/v1`: one HTTP request and one authentication for 25 writes. WordPress
//! runs them one by one and answers each separately (207 Multi-Status), so each operation is acknowledged,
//! retried or dead-lettered on its own. A site without the batch route gets single requests.

use super::fields::{self, FieldGroup, FieldValue, Ownership};
use super::{Applied, OpKind, Operation, Target, TargetError, classify_response, classify_transport};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod settings;
mod site;
mod write;

#[allow(unused_imports)]
use settings::*;
#[allow(unused_imports)]
use site::*;
#[allow(unused_imports)]
use write::*;

/// Prefix of the meta keys (`secutix_price_min`).
pub const META_PREFIX: &str = "secutix_";

/// REST namespace of the companion plugin.
pub const PLUGIN_NAMESPACE: &str = "/secutix-sync/v1";

/// Oldest companion plugin this daemon works with (major, minor).
pub const MIN_PLUGIN_VERSION: (u32, u32) = (1, 1);

/// WordPress's default limit of requests in one `/batch/v1` call.
pub const MAX_BATCH: usize = 25;

/// What an unpublished entry becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnpublishStatus {
    /// Hidden from visitors, visible to editors in the list of drafts. The default.
    #[default]
    Draft,
    /// Visible only to logged-in editors and administrators, on its own URL.
    Private,
}

/// `[targets.wordpress]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct WordPressSettings {
    /// The site's address (`https://www.theatre.fr`), as in Settings → General → WordPress Address.
    pub url: String,
    /// The WordPress user the daemon acts as (an Editor is enough).
    pub user: String,
    /// The user's Application Password, inline (prefer `application_password_file`).
    pub application_password: Option<SecretString>,
    /// File holding the Application Password (relative names are looked up in `$CREDENTIALS_DIRECTORY`).
    pub application_password_file: Option<String>,
    /// Post type of the entries; must be the plugin's (`SECUTIX_SYNC_POST_TYPE` in wp-config.php).
    #[serde(default = "default_post_type")]
    pub post_type: String,
    /// Call `/?rest_route=/wp/v2/…` instead of `/wp-json/wp/v2/…`: for sites without pretty permalinks.
    #[serde(default)]
    pub rest_route_param: bool,
    /// Language of the title and body (ISO 639-1); other languages stay in the `secutix_entry` meta.
    #[serde(default = "default_language")]
    pub language: String,
    /// Field groups written at every sync.
    #[serde(default = "fields::default_owned")]
    pub owned_fields: Vec<FieldGroup>,
    /// Field groups written when the post is created, never after.
    #[serde(default = "fields::default_initial")]
    pub initial_fields: Vec<FieldGroup>,
    /// `draft` (default) or `private` for products SecuTix no longer lists.
    #[serde(default)]
    pub unpublish_status: UnpublishStatus,
    /// With `delete_policy = "delete"`: delete for good instead of moving to the trash.
    #[serde(default)]
    pub delete_permanently: bool,
    /// Operations per `/batch/v1` request (1 to 25; 1 = no batches).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Accept an `http://` URL: the Application Password then crosses the network in clear. Only for a
    /// local test site (WordPress itself refuses Application Passwords over HTTP unless its environment
    /// type is `local`).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// What the health route told us, read once.
#[derive(Debug, Clone)]
struct SiteInfo {
    /// `/wp/v2/event`.
    route: String,
    /// Largest batch the site takes.
    max_batch: usize,
}

/// A post the lookup found.
#[derive(Debug, Clone, Deserialize)]
struct Found {
    id: u64,
    external_id: String,
    status: String,
    content_hash: Option<String>,
    #[serde(default)]
    duplicates: Vec<u64>,
}

/// Where the post of an entry is.
#[derive(Debug, Clone)]
enum Location {
    /// From the store's acknowledgement: not checked.
    Known(u64),
    /// From the lookup.
    Found(Found),
    /// None holds the external id.
    Missing,
}

/// What a request is for.
#[derive(Debug, Clone, Copy)]
enum Intent {
    Create,
    Update(u64),
    Delete,
}

/// One REST request (single, or one item of a batch).
#[derive(Debug, Clone)]
struct Request {
    method: reqwest::Method,
    /// Route with query, e.g. `/wp/v2/event/42?force=true`.
    path: String,
    body: Option<Value>,
    intent: Intent,
}

/// The next step of an operation.
enum Step {
    Done(Result<Applied, TargetError>),
    Send(Request),
}

/// What an answer means.
enum Next {
    Done(Result<Applied, TargetError>),
    /// The post we updated is gone: look again, then create.
    Relocate,
    /// Another post already holds the external id: update it.
    UpdateExisting(u64),
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

/// The WordPress target.
pub struct WordPressTarget {
    name: String,
    site: String,
    rest_route_param: bool,
    user: String,
    password: SecretString,
    post_type: String,
    language: String,
    ownership: Ownership,
    unpublish_status: UnpublishStatus,
    delete_permanently: bool,
    batch_size: usize,
    http: reqwest::Client,
    info: tokio::sync::OnceCell<SiteInfo>,
    /// Turned off when the site has no `/batch/v1` route.
    batches: AtomicBool,
}

impl WordPressTarget {
    /// Builds the target; `timeout` bounds each HTTP request.
    pub fn new(name: &str, settings: &WordPressSettings, timeout: Duration) -> Result<Self, TargetError> {
        if let Some((key, message)) = settings.problems().into_iter().next() {
            return Err(TargetError::permanent(format!(
                "wordpress target {name}: targets.wordpress.{key}: {message}"
            )));
        }
        let password = settings
            .read_password()
            .map_err(|e| TargetError::permanent(format!("wordpress target {name}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirected POST would become a GET and lose its body: report redirects instead.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_insecure_http)
            .user_agent(concat!("secutix-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                TargetError::permanent(format!("wordpress target {name}: cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            name: name.to_owned(),
            site: settings.url.trim_end_matches('/').to_owned(),
            rest_route_param: settings.rest_route_param,
            user: settings.user.clone(),
            password,
            post_type: settings.post_type.clone(),
            language: settings.language.clone(),
            ownership: Ownership::new(&settings.owned_fields, &settings.initial_fields),
            unpublish_status: settings.unpublish_status,
            delete_permanently: settings.delete_permanently,
            batch_size: settings.batch_size,
            http,
            info: tokio::sync::OnceCell::new(),
            batches: AtomicBool::new(true),
        })
    }
}

#[async_trait::async_trait]
impl Target for WordPressTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "wordpress"
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let info = self.info().await?;
        let at = match Self::known(op) {
            Some(id) => Location::Known(id),
            None => self.locate_one(op).await?,
        };
        self.run_single(op, info, at).await
    }

    fn max_batch(&self) -> usize {
        if self.batches.load(Ordering::Relaxed) {
            self.info
                .get()
                .map_or(self.batch_size, |i| i.max_batch.min(self.batch_size))
        } else {
            1
        }
    }

    async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        if ops.len() < 2 || !self.batches.load(Ordering::Relaxed) {
            return self.apply_one_by_one(ops).await;
        }
        let all = |e: TargetError| ops.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
        let info = match self.info().await {
            Ok(i) => i.clone(),
            Err(e) => return all(e),
        };
        // One lookup for every operation without a post id.
        let unknown: Vec<&str> = ops
            .iter()
            .filter(|op| Self::known(op).is_none())
            .map(|op| op.external_id.as_str())
            .collect();
        let mut found = if unknown.is_empty() {
            HashMap::new()
        } else {
            match self.lookup(&unknown).await {
                Ok(f) => f,
                Err(e) => return all(e),
            }
        };
        let locations: Vec<Location> = ops
            .iter()
            .map(|op| match Self::known(op) {
                Some(id) => Location::Known(id),
                None => found
                    .remove(&op.external_id.to_ascii_lowercase())
                    .map_or(Location::Missing, Location::Found),
            })
            .collect();
        let steps: Vec<Step> = ops
            .iter()
            .zip(&locations)
            .map(|(op, at)| self.step(op, &info, at))
            .collect();
        let mut results: Vec<Option<Result<Applied, TargetError>>> = Vec::with_capacity(ops.len());
        let mut pending: Vec<(usize, Request)> = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Done(r) => results.push(Some(r)),
                Step::Send(req) => {
                    results.push(None);
                    pending.push((i, req));
                }
            }
        }
        let mut follow: Vec<(usize, Location)> = Vec::new();
        for chunk in pending.chunks(info.max_batch.min(self.batch_size).max(1)) {
            let reqs: Vec<&Request> = chunk.iter().map(|(_, r)| r).collect();
            let answers = match self.send_batch(&reqs).await {
                Ok(Some(a)) => a,
                Ok(None) => {
                    // No batch route after all: the rest one by one.
                    for (i, _) in chunk {
                        results[*i] = Some(self.apply(&ops[*i]).await);
                    }
                    continue;
                }
                Err(e) => {
                    for (i, _) in chunk {
                        results[*i] = Some(Err(e.clone()));
                    }
                    continue;
                }
            };
            let empty = reqwest::header::HeaderMap::new();
            for ((i, req), (status, body)) in chunk.iter().zip(answers) {
                let text = body.to_string();
                match self.read(&ops[*i], req, status, &empty, &body, &text) {
                    Next::Done(r) => results[*i] = Some(r),
                    Next::UpdateExisting(id) => follow.push((*i, Location::Known(id))),
                    Next::Relocate => follow.push((*i, Location::Missing)),
                }
            }
        }
        // The rare operation whose post moved under it: single requests.
        for (i, at) in follow {
            let op = &ops[i];
            let at = match at {
                Location::Missing => match self.locate_one(op).await {
                    Ok(at) => at,
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                },
                other => other,
            };
            results[i] = Some(self.run_single(op, &info, at).await);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(TargetError::retry("wordpress: no answer for this operation"))))
            .collect()
    }

    async fn check(&self) -> Result<String, TargetError> {
        let info = self.discover().await?;
        Ok(format!(
            "WordPress {}: companion plugin answers, post type {} at {}, batches of up to {} operations",
            crate::http::redact_credentials(&self.site),
            self.post_type,
            crate::http::redact_credentials(&self.url(&info.route)),
            info.max_batch.min(self.batch_size)
        ))
    }
}

#[cfg(test)]
mod tests;
