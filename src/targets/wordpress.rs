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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fields::{self, FieldGroup, FieldValue, Ownership};
use super::{Applied, OpKind, Operation, Target, TargetError, classify_response, classify_transport};

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

impl UnpublishStatus {
    /// WordPress's status name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnpublishStatus::Draft => "draft",
            UnpublishStatus::Private => "private",
        }
    }
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

fn default_post_type() -> String {
    "event".into()
}
fn default_language() -> String {
    "fr".into()
}
fn default_batch_size() -> usize {
    MAX_BATCH
}

impl WordPressSettings {
    /// The Application Password, from `application_password` or `application_password_file`. Errors name
    /// the file, never the password.
    pub fn read_password(&self) -> Result<SecretString, String> {
        if let Some(p) = &self.application_password {
            return Ok(p.clone());
        }
        let Some(file) = &self.application_password_file else {
            return Err(
                "no Application Password: set targets.wordpress.application_password_file (recommended) or \
                 application_password"
                    .into(),
            );
        };
        let path = crate::credentials::resolve_credential_path(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the Application Password file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(format!("the Application Password file {} is empty", path.display()));
        }
        Ok(SecretString::from(line))
    }

    /// Problems as (key under `wordpress.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && self.allow_insecure_http => {}
            Ok(u) if u.scheme() == "http" => bad(
                "url",
                format!(
                    "{:?} is plain HTTP: the Application Password would cross the network in clear. Use https://, \
                     or set allow_insecure_http = true for a local test site",
                    crate::http::redact_credentials(&self.url)
                ),
            ),
            _ => bad(
                "url",
                format!(
                    "{:?} is not the site's address, such as https://www.theatre.fr",
                    crate::http::redact_credentials(&self.url)
                ),
            ),
        }
        if self.user.trim().is_empty() {
            bad("user", "is empty: set the WordPress user the daemon acts as".into());
        }
        match (&self.application_password, &self.application_password_file) {
            (Some(_), Some(_)) => bad(
                "application_password",
                "is set together with application_password_file; keep only one".into(),
            ),
            (Some(s), None) if s.expose_secret().trim().is_empty() => bad("application_password", "is empty".into()),
            (None, _) => {
                if let Err(e) = self.read_password() {
                    bad("application_password_file", e);
                }
            }
            _ => {}
        }
        // WordPress's sanitize_key(), and register_post_type()'s 20-character limit.
        if self.post_type.is_empty()
            || self.post_type.len() > 20
            || !self
                .post_type
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            bad(
                "post_type",
                format!(
                    "{:?} is not a post type key (1 to 20 lowercase letters, digits, _ or -)",
                    self.post_type
                ),
            );
        }
        if self.language.len() != 2 || !self.language.chars().all(|c| c.is_ascii_lowercase()) {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            bad(
                "batch_size",
                format!(
                    "{} is out of range: 1 (no batches) to {MAX_BATCH} (WordPress's limit)",
                    self.batch_size
                ),
            );
        }
        for (k, m) in Ownership::problems(&self.owned_fields, &self.initial_fields) {
            bad(&k, m);
        }
        p
    }
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

    /// The URL of a REST route (with its query string, if any).
    fn url(&self, route: &str) -> String {
        let (path, query) = route.split_once('?').unwrap_or((route, ""));
        let (mut url, sep) = if self.rest_route_param {
            (format!("{}/?rest_route={}", self.site, encode_route(path)), '&')
        } else {
            (format!("{}/wp-json{path}", self.site), '?')
        };
        if !query.is_empty() {
            url.push(sep);
            url.push_str(query);
        }
        url
    }

    async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        let mut req = self
            .http
            .request(method, self.url(route))
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| classify_transport(what, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| classify_transport(what, &e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
            text,
        })
    }

    /// The error for a non-2xx answer, with WordPress's own code and message and what to do.
    fn error(
        &self,
        what: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &Value,
        text: &str,
    ) -> TargetError {
        let detail = wp_message(body).unwrap_or_else(|| crate::http::snippet(text.as_bytes()));
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
        match status {
            300..=399 => {
                let to = crate::http::redirect_location(headers);
                TargetError::permanent(format!(
                    "{what}: HTTP {status}: WordPress redirects to {to}; set targets.wordpress.url to the site's \
                     final address (https, with or without www as WordPress has it)"
                ))
            }
            401 | 403 => TargetError::permanent(format!(
                "{what}: HTTP {status}: {detail}. WordPress refused user {:?}: check targets.wordpress.user and \
                 its Application Password (Users → Profile → Application Passwords), and that the user may \
                 edit, publish and delete {} posts (the Editor role may)",
                self.user, self.post_type
            )),
            404 if code == "rest_no_route" => TargetError::permanent(format!(
                "{what}: HTTP 404: {detail}. Is the companion plugin installed (contrib/wordpress/secutix-sync.php \
                 in wp-content/mu-plugins/) and does the post type {} exist?",
                self.post_type
            )),
            404 if body.is_null() => TargetError::permanent(format!(
                "{what}: HTTP 404 with a page that is not the REST API: {detail}. If the site has no pretty \
                 permalinks, set targets.wordpress.rest_route_param = true"
            )),
            _ => classify_response(what, status, headers, &detail, false)
                .err()
                .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {status}: {detail}"))),
        }
    }

    /// Reads the health route once: post type, route, meta keys, plugin version, largest batch.
    async fn info(&self) -> Result<&SiteInfo, TargetError> {
        self.info.get_or_try_init(|| self.discover()).await
    }

    async fn discover(&self) -> Result<SiteInfo, TargetError> {
        let what = format!(
            "wordpress {}: GET {PLUGIN_NAMESPACE}/health on {}",
            self.name,
            crate::http::redact_credentials(&self.site)
        );
        let a = self
            .send(&what, reqwest::Method::GET, &format!("{PLUGIN_NAMESPACE}/health"), None)
            .await?;
        if !(200..300).contains(&a.status) {
            return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
        }
        let h = &a.body;
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let version = s("version");
        if s("plugin") != "secutix-sync" {
            return Err(TargetError::permanent(format!(
                "{what}: the answer is not the companion plugin's: {}",
                crate::http::snippet(a.text.as_bytes())
            )));
        }
        if !version_at_least(&version, MIN_PLUGIN_VERSION) {
            return Err(TargetError::permanent(format!(
                "{what}: the companion plugin is version {version}; this daemon needs {}.{} or later: copy \
                 contrib/wordpress/secutix-sync.php over wp-content/mu-plugins/secutix-sync.php",
                MIN_PLUGIN_VERSION.0, MIN_PLUGIN_VERSION.1
            )));
        }
        let post_type = s("post_type");
        if post_type != self.post_type {
            return Err(TargetError::permanent(format!(
                "{what}: the plugin writes post type {post_type:?} but targets.wordpress.post_type is {:?}: make \
                 them equal (the plugin's comes from SECUTIX_SYNC_POST_TYPE in wp-config.php)",
                self.post_type
            )));
        }
        if h.get("post_type_registered") != Some(&Value::Bool(true))
            || h.get("supports_custom_fields") != Some(&Value::Bool(true))
        {
            return Err(TargetError::permanent(format!(
                "{what}: post type {post_type:?} is not registered or does not support custom-fields; WordPress \
                 would drop the meta. See contrib/wordpress/README.md"
            )));
        }
        let keys = h.get("meta_keys").and_then(Value::as_object);
        let missing: Vec<String> = fields::FIELDS
            .iter()
            .map(|f| format!("{META_PREFIX}{}", f.0))
            .filter(|k| !keys.is_some_and(|m| m.contains_key(k)))
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::permanent(format!(
                "{what}: the plugin does not register the meta key(s) {}; WordPress would drop them silently. \
                 Update contrib/wordpress/secutix-sync.php on the site (a `secutix_sync_meta_keys` filter must \
                 not remove them)",
                missing.join(", ")
            )));
        }
        let namespace = h.get("rest_namespace").and_then(Value::as_str).unwrap_or("wp/v2");
        let base = h
            .get("rest_base")
            .and_then(Value::as_str)
            .unwrap_or(self.post_type.as_str());
        let max_batch = h
            .get("max_batch_size")
            .and_then(Value::as_u64)
            .map_or(MAX_BATCH, |n| usize::try_from(n).unwrap_or(MAX_BATCH))
            .clamp(1, MAX_BATCH);
        let info = SiteInfo {
            route: format!("/{}/{}", namespace.trim_matches('/'), base.trim_matches('/')),
            max_batch,
        };
        tracing::info!(target_name = %self.name, site = %crate::http::redact_credentials(&self.site), wordpress = %s("wordpress"), plugin = %version, route = %info.route, max_batch, "WordPress site checked");
        Ok(info)
    }

    /// Finds the posts holding these external ids.
    async fn lookup(&self, ids: &[&str]) -> Result<HashMap<String, Found>, TargetError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(100) {
            let what = format!("wordpress {}: lookup of {}", self.name, chunk.join(","));
            let route = format!("{PLUGIN_NAMESPACE}/lookup?external_ids={}", chunk.join(","));
            let a = self.send(&what, reqwest::Method::GET, &route, None).await?;
            if !(200..300).contains(&a.status) {
                return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
            }
            let found: Vec<Found> = serde_json::from_value(a.body).map_err(|e| {
                TargetError::retry(format!(
                    "{what}: unexpected answer ({e}): {}",
                    crate::http::snippet(a.text.as_bytes())
                ))
            })?;
            for f in found {
                if !f.duplicates.is_empty() {
                    tracing::warn!(target_name = %self.name, external_id = %f.external_id, kept = f.id, duplicates = %f.duplicates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), "several WordPress posts hold one external id; the daemon updates the first, delete the others");
                }
                out.insert(f.external_id.to_ascii_lowercase(), f);
            }
        }
        Ok(out)
    }

    fn what(&self, op: &Operation) -> String {
        format!("wordpress {} {} {}", self.name, op.kind.as_str(), op.external_id)
    }

    /// The JSON of a create or update.
    fn post_body(&self, op: &Operation, creating: bool) -> Result<Value, TargetError> {
        let entry = op.entry.as_ref().ok_or_else(|| {
            TargetError::permanent(format!(
                "{}: the entry is missing from the store; run a full resync",
                self.what(op)
            ))
        })?;
        let p = fields::owned_projection(
            entry,
            op.kind,
            &op.content_hash,
            &self.language,
            op.enqueued_at,
            &self.ownership,
            creating,
        );
        let mut body = Map::new();
        if let Some(title) = p.title {
            body.insert("title".into(), json!(title));
        }
        if let Some(text) = p.body {
            body.insert("content".into(), json!(text));
        }
        if let Some(published) = p.published {
            let status = if published {
                "publish"
            } else {
                self.unpublish_status.as_str()
            };
            body.insert("status".into(), json!(status));
        }
        let mut meta = Map::new();
        for f in p.fields {
            meta.insert(format!("{META_PREFIX}{}", f.key), meta_value(f.value.as_ref()));
        }
        body.insert("meta".into(), Value::Object(meta));
        Ok(Value::Object(body))
    }

    /// What to do for `op` given where its post is.
    fn step(&self, op: &Operation, info: &SiteInfo, at: &Location) -> Step {
        let id = match at {
            Location::Known(id) => Some(*id),
            Location::Found(f) => Some(f.id),
            Location::Missing => None,
        };
        // The post already has this version (re-sync after a lost store): nothing to write.
        if let Location::Found(f) = at {
            let desired = match op.kind {
                OpKind::Upsert => self.ownership.owns(FieldGroup::Status).then_some("publish"),
                _ => Some(self.unpublish_status.as_str()),
            };
            if op.kind != OpKind::Delete
                && f.content_hash.as_deref() == Some(op.content_hash.as_str())
                && desired.is_none_or(|d| d == f.status)
            {
                return Step::Done(Ok(Applied {
                    remote_id: Some(f.id.to_string()),
                }));
            }
        }
        let request = |method, path: String, body, intent| {
            Step::Send(Request {
                method,
                path,
                body,
                intent,
            })
        };
        match (op.kind, id) {
            (OpKind::Upsert, None) => match self.post_body(op, true) {
                Ok(b) => request(reqwest::Method::POST, info.route.clone(), Some(b), Intent::Create),
                Err(e) => Step::Done(Err(e)),
            },
            (OpKind::Upsert | OpKind::Unpublish, Some(id)) => match self.post_body(op, false) {
                Ok(b) => request(
                    reqwest::Method::POST,
                    format!("{}/{id}", info.route),
                    Some(b),
                    Intent::Update(id),
                ),
                Err(e) => Step::Done(Err(e)),
            },
            (OpKind::Delete, Some(id)) => request(
                reqwest::Method::DELETE,
                if self.delete_permanently {
                    format!("{}/{id}?force=true", info.route)
                } else {
                    format!("{}/{id}", info.route)
                },
                None,
                Intent::Delete,
            ),
            // Nothing to unpublish or delete.
            (OpKind::Unpublish | OpKind::Delete, None) => Step::Done(Ok(Applied { remote_id: None })),
        }
    }

    /// What an answer to `req` means for `op`.
    fn read(
        &self,
        op: &Operation,
        req: &Request,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &Value,
        text: &str,
    ) -> Next {
        let what = self.what(op);
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
        let ok = (200..300).contains(&status);
        match req.intent {
            Intent::Create if ok => match body.get("id").and_then(Value::as_u64) {
                Some(id) => Next::Done(Ok(Applied {
                    remote_id: Some(id.to_string()),
                })),
                None => Next::Done(Err(TargetError::retry(format!(
                    "{what}: HTTP {status} without a post id: {}",
                    crate::http::snippet(text.as_bytes())
                )))),
            },
            Intent::Create if status == 409 && code == "secutix_sync_exists" => {
                match body.pointer("/data/id").and_then(Value::as_u64) {
                    Some(id) => Next::UpdateExisting(id),
                    None => Next::Done(Err(self.error(&what, status, headers, body, text))),
                }
            }
            Intent::Update(id) if ok => Next::Done(Ok(Applied {
                remote_id: Some(id.to_string()),
            })),
            Intent::Update(_) if status == 404 && code == "rest_post_invalid_id" => Next::Relocate,
            Intent::Delete if ok => Next::Done(Ok(Applied { remote_id: None })),
            // Already trashed, or already deleted.
            Intent::Delete if status == 410 || (status == 404 && code == "rest_post_invalid_id") => {
                Next::Done(Ok(Applied { remote_id: None }))
            }
            _ => Next::Done(Err(self.error(&what, status, headers, body, text))),
        }
    }

    /// Runs `op` from `at` with single requests, following at most one relocation.
    async fn run_single(&self, op: &Operation, info: &SiteInfo, mut at: Location) -> Result<Applied, TargetError> {
        let what = self.what(op);
        for _ in 0..2 {
            let req = match self.step(op, info, &at) {
                Step::Done(r) => return r,
                Step::Send(req) => req,
            };
            let a = self
                .send(&what, req.method.clone(), &req.path, req.body.as_ref())
                .await?;
            match self.read(op, &req, a.status, &a.headers, &a.body, &a.text) {
                Next::Done(r) => return r,
                Next::UpdateExisting(id) => at = Location::Known(id),
                Next::Relocate => at = self.locate_one(op).await?,
            }
        }
        Err(TargetError::retry(format!(
            "{what}: the post changed while it was being written (deleted or duplicated); will try again"
        )))
    }

    async fn locate_one(&self, op: &Operation) -> Result<Location, TargetError> {
        let mut found = self.lookup(&[op.external_id.as_str()]).await?;
        Ok(found
            .remove(&op.external_id.to_ascii_lowercase())
            .map_or(Location::Missing, Location::Found))
    }

    /// The post id from the store's acknowledgement.
    fn known(op: &Operation) -> Option<u64> {
        op.remote_id.as_deref().and_then(|r| r.parse().ok())
    }

    /// Sends `reqs` in one `/batch/v1` call. `Ok(None)`: the site has no usable batch route.
    async fn send_batch(&self, reqs: &[&Request]) -> Result<Option<Vec<(u16, Value)>>, TargetError> {
        let what = format!("wordpress {}: batch of {}", self.name, reqs.len());
        let requests: Vec<Value> = reqs
            .iter()
            .map(|r| {
                let mut item = json!({"method": r.method.as_str(), "path": r.path});
                if let Some(b) = &r.body {
                    item["body"] = b.clone();
                }
                item
            })
            .collect();
        let body = json!({"validation": "normal", "requests": requests});
        let a = self
            .send(&what, reqwest::Method::POST, "/batch/v1", Some(&body))
            .await?;
        if (a.status == 404 || a.status == 400) && a.body.get("responses").is_none() {
            tracing::warn!(target_name = %self.name, status = a.status, answer = %crate::http::snippet(a.text.as_bytes()), "WordPress refused the batch request; sending single requests from now on");
            self.batches.store(false, Ordering::Relaxed);
            return Ok(None);
        }
        if !(200..300).contains(&a.status) {
            return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
        }
        let responses = a.body.get("responses").and_then(Value::as_array).ok_or_else(|| {
            TargetError::retry(format!(
                "{what}: HTTP {} without responses: {}",
                a.status,
                crate::http::snippet(a.text.as_bytes())
            ))
        })?;
        if responses.len() != reqs.len() {
            return Err(TargetError::retry(format!(
                "{what}: {} responses for {} requests",
                responses.len(),
                reqs.len()
            )));
        }
        Ok(Some(
            responses
                .iter()
                .map(|r| {
                    let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
                    (
                        u16::try_from(status).unwrap_or(0),
                        r.get("body").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ))
    }

    async fn apply_one_by_one(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(self.apply(op).await);
        }
        out
    }
}

/// `/wp/v2/event` for a `rest_route` query parameter (letters, digits, `/`, `-`, `_` only in our routes).
fn encode_route(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/-_.".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}

/// `code: message (param: why, …)` of a WordPress REST error.
fn wp_message(body: &Value) -> Option<String> {
    let code = body.get("code")?.as_str()?;
    let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
    let mut s = format!("{code}: {message}");
    if let Some(params) = body.pointer("/data/params").and_then(Value::as_object) {
        let list: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        if !list.is_empty() {
            s.push_str(&format!(" ({})", list.join("; ")));
        }
    }
    Some(s)
}

/// A meta value as the plugin registers it.
fn meta_value(v: Option<&FieldValue>) -> Value {
    match v {
        None => Value::Null,
        Some(FieldValue::Text(s) | FieldValue::DateTime(s) | FieldValue::Json(s)) => json!(s),
        Some(FieldValue::Integer(i)) => json!(i),
        Some(FieldValue::Boolean(b)) => json!(b),
        Some(FieldValue::Decimal(d)) => d.parse::<f64>().map_or(Value::Null, |f| json!(f)),
    }
}

/// `1.2.0` ≥ (1, 1)?
fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
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
