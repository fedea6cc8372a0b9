//! The `drupal` target: entries become nodes of a content type (bundle, default `event`) through Drupal
//! core's JSON:API (`application/vnd.api+json`), authenticated with HTTP Basic (core `basic_auth`), a fixed
//! bearer token, or OAuth2 client credentials (the `simple_oauth` module).
//!
//! # No duplicates, even without the store
//! Each node's UUID is chosen by the daemon: UUIDv5 of the external id in a fixed namespace
//! ([`node_uuid`]), sent as the resource `id` of the create. A create that was already applied (retry after
//! a lost answer, a lost store, a second daemon) answers `409 Conflict: Entity already exists.` and the
//! target PATCHes the node instead; an update of a node someone deleted answers 404 and the target creates it
//! again under the same UUID. So the store's acknowledgement only saves a request.
//!
//! # What is written
//! Only the owned field groups ([`super::fields`]): `title`, `status` (`false` to unpublish), and
//! `field_secutix_<key>` attributes (names configurable, or left out); `body` at creation only by default.
//! A PATCH names only those attributes, and JSON:API changes only what a PATCH names: editors' body, images,
//! taxonomy terms, paragraphs and other fields stay. Delete (only with `delete_policy = "delete"`) deletes
//! the node.
//!
//! Errors quote JSON:API's `errors[].detail` with the pointer: a 422 (validation: unknown field, value too
//! long, wrong type) goes straight to dead letters with that message; 429 and 5xx are retried, honouring
//! `Retry-After`.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::fields::{self, FieldGroup, FieldValue, Ownership};
use super::{Applied, OpKind, Operation, Target, TargetError, classify_response, classify_transport};

/// The namespace of node UUIDs: UUIDv5 of `urn:secutix-sync:entry` in the URL namespace.
pub const DEFAULT_UUID_NAMESPACE: Uuid = Uuid::from_u128(0xe3b2d5de_1533_5e47_ad30_665c7ffb6d05);

/// JSON:API's media type.
pub const JSONAPI: &str = "application/vnd.api+json";

/// The node UUID of an external id: UUIDv5(`namespace`, external id).
pub fn node_uuid(namespace: &Uuid, external_id: &str) -> Uuid {
    Uuid::new_v5(namespace, external_id.as_bytes())
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrupalAuthKind {
    /// HTTP Basic with a Drupal user (core module `basic_auth`). The default.
    #[default]
    Basic,
    /// A fixed `Authorization: Bearer` token (e.g. a long-lived `simple_oauth` token).
    Bearer,
    /// OAuth2 client credentials (`simple_oauth`): the token is fetched, cached and renewed.
    Oauth2,
}

/// `[targets.drupal]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct DrupalSettings {
    /// The site's address, e.g. `https://www.theatre.fr`.
    pub url: String,
    /// Content type (bundle) machine name of the entries.
    #[serde(default = "default_bundle")]
    pub bundle: String,
    /// Path of JSON:API (`/jsonapi`; JSON:API Extras may change it).
    #[serde(default = "default_jsonapi_path")]
    pub jsonapi_path: String,
    /// `basic`, `bearer` or `oauth2`.
    #[serde(default)]
    pub auth: DrupalAuthKind,
    /// Basic: the Drupal user name.
    pub user: Option<String>,
    /// Basic: the password, inline (prefer `password_file`).
    pub password: Option<SecretString>,
    /// Basic: file holding the password.
    pub password_file: Option<String>,
    /// Bearer: the token, inline (prefer `token_file`).
    pub token: Option<SecretString>,
    /// Bearer: file holding the token.
    pub token_file: Option<String>,
    /// OAuth2: token endpoint; empty = `{url}/oauth/token`.
    #[serde(default)]
    pub token_url: String,
    /// OAuth2: client id (the consumer's UUID in simple_oauth).
    pub client_id: Option<String>,
    /// OAuth2: client secret, inline (prefer `client_secret_file`).
    pub client_secret: Option<SecretString>,
    /// OAuth2: file holding the client secret.
    pub client_secret_file: Option<String>,
    /// OAuth2: scopes, space-separated (simple_oauth 6 needs the scope granting the API role).
    #[serde(default)]
    pub scope: String,
    /// Language of the title and body (ISO 639-1).
    #[serde(default = "default_language")]
    pub language: String,
    /// Text format of the body (`basic_html`, `full_html`…).
    #[serde(default = "default_body_format")]
    pub body_format: String,
    /// Field groups written at every sync.
    #[serde(default = "fields::default_owned")]
    pub owned_fields: Vec<FieldGroup>,
    /// Field groups written when the node is created, never after.
    #[serde(default = "fields::default_initial")]
    pub initial_fields: Vec<FieldGroup>,
    /// Prefix of field names: `field_secutix_price_min`.
    #[serde(default = "default_field_prefix")]
    pub field_prefix: String,
    /// Field name per key (`price_min = "field_prix_minimum"`); `""` leaves that field out.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Namespace of the node UUIDs; keep the default unless two SecuTix institutions share one site.
    pub uuid_namespace: Option<Uuid>,
    /// Accept an `http://` URL (credentials in clear): local test sites only.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_bundle() -> String {
    "event".into()
}
fn default_jsonapi_path() -> String {
    "/jsonapi".into()
}
fn default_language() -> String {
    "fr".into()
}
fn default_body_format() -> String {
    "basic_html".into()
}
fn default_field_prefix() -> String {
    "field_secutix_".into()
}

/// Reads a secret given inline or in a file; errors name the key and the file, never the secret.
fn secret(inline: &Option<SecretString>, file: &Option<String>, key: &str) -> Result<SecretString, String> {
    if let Some(s) = inline {
        if s.expose_secret().trim().is_empty() {
            return Err(format!("targets.drupal.{key} is empty"));
        }
        return Ok(s.clone());
    }
    let Some(file) = file else {
        return Err(format!(
            "no {key}: set targets.drupal.{key}_file (recommended) or targets.drupal.{key}"
        ));
    };
    let path = crate::credentials::resolve_credential_path(file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read the {key} file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(format!("the {key} file {} is empty", path.display()));
    }
    Ok(SecretString::from(line))
}

fn machine_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl DrupalSettings {
    /// Problems as (key under `drupal.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && self.allow_insecure_http => {}
            Ok(u) if u.scheme() == "http" => bad(
                "url",
                format!(
                    "{:?} is plain HTTP: credentials would cross the network in clear. Use https://, or set \
                     allow_insecure_http = true for a local test site",
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
        if !machine_name_ok(&self.bundle) {
            bad(
                "bundle",
                format!("{:?} is not a content type machine name such as \"event\"", self.bundle),
            );
        }
        if !self.jsonapi_path.starts_with('/') {
            bad(
                "jsonapi_path",
                format!("{:?} must start with /, e.g. \"/jsonapi\"", self.jsonapi_path),
            );
        }
        match self.auth {
            DrupalAuthKind::Basic => {
                if self.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    bad("user", "is missing: auth = \"basic\" needs the Drupal user name".into());
                }
                if self.password.is_some() && self.password_file.is_some() {
                    bad("password", "is set together with password_file; keep only one".into());
                } else if let Err(e) = secret(&self.password, &self.password_file, "password") {
                    bad("password_file", e);
                }
            }
            DrupalAuthKind::Bearer => {
                if self.token.is_some() && self.token_file.is_some() {
                    bad("token", "is set together with token_file; keep only one".into());
                } else if let Err(e) = secret(&self.token, &self.token_file, "token") {
                    bad("token_file", e);
                }
            }
            DrupalAuthKind::Oauth2 => {
                if self.client_id.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    bad(
                        "client_id",
                        "is missing: auth = \"oauth2\" needs the consumer's client id".into(),
                    );
                }
                if self.client_secret.is_some() && self.client_secret_file.is_some() {
                    bad(
                        "client_secret",
                        "is set together with client_secret_file; keep only one".into(),
                    );
                } else if let Err(e) = secret(&self.client_secret, &self.client_secret_file, "client_secret") {
                    bad("client_secret_file", e);
                }
                if !self.token_url.is_empty() && url::Url::parse(&self.token_url).is_err() {
                    bad("token_url", format!("{:?} is not a URL", self.token_url));
                }
            }
        }
        if self.language.len() != 2 || !self.language.chars().all(|c| c.is_ascii_lowercase()) {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        for (k, v) in &self.fields {
            if !fields::FIELDS.iter().any(|f| f.0 == k) {
                let known: Vec<&str> = fields::FIELDS.iter().map(|f| f.0).collect();
                bad(
                    &format!("fields.{k}"),
                    format!("is not a field the daemon writes; known keys: {}", known.join(", ")),
                );
            } else if !v.is_empty() && !machine_name_ok(v) {
                bad(
                    &format!("fields.{k}"),
                    format!(
                        "{v:?} is not a Drupal field machine name (lowercase letters, digits and _, at most 32 \
                         characters), or \"\" to leave the field out"
                    ),
                );
            }
        }
        for f in fields::FIELDS {
            let name = self.field_name(f.0);
            if !name.is_empty() && !self.fields.contains_key(f.0) && !machine_name_ok(&name) {
                bad(
                    "field_prefix",
                    format!(
                        "gives {name:?} for {}, not a Drupal field machine name (at most 32 characters); map \
                         it in [targets.drupal.fields]",
                        f.0
                    ),
                );
            }
        }
        for (k, m) in Ownership::problems(&self.owned_fields, &self.initial_fields) {
            bad(&k, m);
        }
        p
    }

    /// The Drupal field name of a key; empty when left out.
    pub fn field_name(&self, key: &str) -> String {
        self.fields
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("{}{key}", self.field_prefix))
    }
}

/// Credentials, ready to use.
enum Auth {
    Basic {
        user: String,
        password: SecretString,
    },
    Bearer(SecretString),
    Oauth2 {
        token_url: String,
        client_id: String,
        secret: SecretString,
        scope: String,
        /// The current token and when to renew it.
        cache: tokio::sync::Mutex<Option<(SecretString, tokio::time::Instant)>>,
    },
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

/// The Drupal target.
pub struct DrupalTarget {
    name: String,
    site: String,
    collection: String,
    bundle: String,
    auth: Auth,
    namespace: Uuid,
    language: String,
    body_format: String,
    ownership: Ownership,
    /// (key, Drupal field name) of the fields written.
    field_names: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl DrupalTarget {
    /// Builds the target; `timeout` bounds each HTTP request.
    pub fn new(name: &str, settings: &DrupalSettings, timeout: Duration) -> Result<Self, TargetError> {
        if let Some((key, message)) = settings.problems().into_iter().next() {
            return Err(TargetError::permanent(format!(
                "drupal target {name}: targets.drupal.{key}: {message}"
            )));
        }
        let fail = |e: String| TargetError::permanent(format!("drupal target {name}: {e}"));
        let site = settings.url.trim_end_matches('/').to_owned();
        let auth = match settings.auth {
            DrupalAuthKind::Basic => Auth::Basic {
                user: settings.user.clone().unwrap_or_default(),
                password: secret(&settings.password, &settings.password_file, "password").map_err(fail)?,
            },
            DrupalAuthKind::Bearer => {
                Auth::Bearer(secret(&settings.token, &settings.token_file, "token").map_err(fail)?)
            }
            DrupalAuthKind::Oauth2 => Auth::Oauth2 {
                token_url: if settings.token_url.is_empty() {
                    format!("{site}/oauth/token")
                } else {
                    settings.token_url.clone()
                },
                client_id: settings.client_id.clone().unwrap_or_default(),
                secret: secret(&settings.client_secret, &settings.client_secret_file, "client_secret").map_err(fail)?,
                scope: settings.scope.clone(),
                cache: tokio::sync::Mutex::new(None),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_insecure_http)
            .user_agent(concat!("secutix-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            collection: format!(
                "{site}{}/node/{}",
                settings.jsonapi_path.trim_end_matches('/'),
                settings.bundle
            ),
            site,
            bundle: settings.bundle.clone(),
            auth,
            namespace: settings.uuid_namespace.unwrap_or(DEFAULT_UUID_NAMESPACE),
            language: settings.language.clone(),
            body_format: settings.body_format.clone(),
            ownership: Ownership::new(&settings.owned_fields, &settings.initial_fields),
            field_names: fields::FIELDS
                .iter()
                .map(|f| (f.0, settings.field_name(f.0)))
                .filter(|(_, n)| !n.is_empty())
                .collect(),
            http,
        })
    }

    fn what(&self, op: &Operation) -> String {
        format!("drupal {} {} {}", self.name, op.kind.as_str(), op.external_id)
    }

    /// The `Authorization` header value; `fresh` renews an OAuth2 token.
    async fn authorization(&self, fresh: bool) -> Result<SecretString, TargetError> {
        match &self.auth {
            Auth::Basic { user, password } => {
                use base64::Engine as _;
                let raw = format!("{user}:{}", password.expose_secret());
                Ok(SecretString::from(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
            Auth::Bearer(t) => Ok(SecretString::from(format!("Bearer {}", t.expose_secret()))),
            Auth::Oauth2 {
                token_url,
                client_id,
                secret,
                scope,
                cache,
            } => {
                let mut cache = cache.lock().await;
                if !fresh
                    && let Some((token, until)) = cache.as_ref()
                    && tokio::time::Instant::now() < *until
                {
                    return Ok(SecretString::from(format!("Bearer {}", token.expose_secret())));
                }
                let what = format!("drupal {}: OAuth2 token from {token_url}", self.name);
                let form = {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "client_credentials")
                        .append_pair("client_id", client_id)
                        .append_pair("client_secret", secret.expose_secret());
                    if !scope.is_empty() {
                        form.append_pair("scope", scope);
                    }
                    form.finish()
                };
                let resp = self
                    .http
                    .post(token_url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(form)
                    .send()
                    .await
                    .map_err(|e| classify_transport(&what, &e))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let text = resp.text().await.map_err(|e| classify_transport(&what, &e))?;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if !(200..300).contains(&status) {
                    // The token endpoint's error (`invalid_client`…) never contains the secret.
                    let detail = body
                        .get("error_description")
                        .or_else(|| body.get("message"))
                        .or_else(|| body.get("error"))
                        .and_then(Value::as_str)
                        .map_or_else(|| crate::http::snippet(text.as_bytes()), str::to_owned);
                    return Err(match status {
                        400 | 401 | 403 => TargetError::permanent(format!(
                            "{what}: HTTP {status}: {detail}. Check targets.drupal.client_id, client_secret and \
                             scope against the consumer at /admin/config/services/consumer"
                        )),
                        _ => classify_response(&what, status, &headers, &detail, false)
                            .err()
                            .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {status}"))),
                    });
                }
                let token = body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TargetError::retry(format!("{what}: HTTP {status} without access_token")))?;
                let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
                // Renew a minute early (or at half-life for short tokens).
                let keep = Duration::from_secs(lifetime.saturating_sub(60).max(lifetime / 2));
                *cache = Some((SecretString::from(token.to_owned()), tokio::time::Instant::now() + keep));
                Ok(SecretString::from(format!("Bearer {token}")))
            }
        }
    }

    async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        let mut fresh = false;
        loop {
            let auth = self.authorization(fresh).await?;
            let mut value = reqwest::header::HeaderValue::from_str(auth.expose_secret()).map_err(|_| {
                TargetError::permanent(format!(
                    "{what}: the credentials contain characters not allowed in an HTTP header"
                ))
            })?;
            value.set_sensitive(true);
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::AUTHORIZATION, value)
                .header(reqwest::header::ACCEPT, JSONAPI);
            if let Some(b) = body {
                let bytes = serde_json::to_vec(b).map_err(|e| TargetError::permanent(format!("{what}: {e}")))?;
                req = req.header(reqwest::header::CONTENT_TYPE, JSONAPI).body(bytes);
            }
            let resp = req.send().await.map_err(|e| classify_transport(what, &e))?;
            let status = resp.status().as_u16();
            // An OAuth2 token revoked or expired early: fetch a new one, once.
            if status == 401 && !fresh && matches!(self.auth, Auth::Oauth2 { .. }) {
                fresh = true;
                continue;
            }
            let headers = resp.headers().clone();
            let text = resp.text().await.map_err(|e| classify_transport(what, &e))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Answer {
                status,
                headers,
                body,
                text,
            });
        }
    }

    /// The error for a non-2xx answer, quoting JSON:API's errors and saying what to do.
    fn error(&self, what: &str, a: &Answer) -> TargetError {
        let detail = jsonapi_message(&a.body).unwrap_or_else(|| crate::http::snippet(a.text.as_bytes()));
        let hint = match a.status {
            300..=399 => format!(
                "; Drupal redirects to {}: set targets.drupal.url to the site's final address",
                crate::http::redirect_location(&a.headers)
            ),
            401 => "; check the credentials (targets.drupal.auth and its keys), and that the basic_auth or \
                    simple_oauth module is enabled"
                .to_owned(),
            403 => format!(
                "; the API user's role needs \"{0}: Create new content\", \"{0}: Edit any content\" (and \"Delete \
                 any content\" for delete_policy = \"delete\"); publishing and unpublishing (status) needs \
                 \"Administer content\" or a module such as Override Node Options",
                self.bundle
            ),
            404 if a.body.get("errors").is_none() => format!(
                "; is JSON:API enabled, and is {} the content type's machine name?",
                self.bundle
            ),
            405 => "; JSON:API is read-only on this site: at /admin/config/services/jsonapi choose \"Accept all \
                    JSON:API create, read, update, and delete operations\""
                .to_owned(),
            _ => String::new(),
        };
        let message = format!("{detail}{hint}");
        match a.status {
            300..=399 | 401 | 403 | 405 => TargetError::permanent(format!("{what}: HTTP {}: {message}", a.status)),
            _ => classify_response(what, a.status, &a.headers, &message, false)
                .err()
                .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {}: {message}", a.status))),
        }
    }

    /// The JSON:API document of a create (`creating`) or update.
    fn document(&self, op: &Operation, uuid: &Uuid, creating: bool) -> Result<Value, TargetError> {
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
        let mut attributes = Map::new();
        if let Some(title) = p.title {
            attributes.insert("title".into(), json!(title));
        }
        if let Some(text) = p.body {
            attributes.insert("body".into(), json!({"value": text, "format": self.body_format}));
        }
        if let Some(published) = p.published {
            attributes.insert("status".into(), json!(published));
        }
        for f in p.fields {
            if let Some((_, name)) = self.field_names.iter().find(|(k, _)| *k == f.key) {
                attributes.insert(name.clone(), attribute_value(f.value.as_ref()));
            }
        }
        Ok(json!({"data": {
            "type": format!("node--{}", self.bundle),
            "id": uuid.to_string(),
            "attributes": attributes,
        }}))
    }

    async fn create(&self, op: &Operation, uuid: &Uuid) -> Result<Answer, TargetError> {
        let doc = self.document(op, uuid, true)?;
        self.send(&self.what(op), reqwest::Method::POST, &self.collection, Some(&doc))
            .await
    }

    async fn update(&self, op: &Operation, uuid: &Uuid) -> Result<Answer, TargetError> {
        let doc = self.document(op, uuid, false)?;
        let url = format!("{}/{uuid}", self.collection);
        self.send(&self.what(op), reqwest::Method::PATCH, &url, Some(&doc))
            .await
    }
}

/// `detail (at pointer); …` of a JSON:API error document.
fn jsonapi_message(body: &Value) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let text = e
                .get("detail")
                .or_else(|| e.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("(no detail)");
            match e.pointer("/source/pointer").and_then(Value::as_str) {
                Some(p) => format!("{text} (at {p})"),
                None => text.to_owned(),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A field value as JSON:API takes it (decimals as strings, as Drupal answers them).
fn attribute_value(v: Option<&FieldValue>) -> Value {
    match v {
        None => Value::Null,
        Some(FieldValue::Text(s) | FieldValue::DateTime(s) | FieldValue::Json(s) | FieldValue::Decimal(s)) => json!(s),
        Some(FieldValue::Integer(i)) => json!(i),
        Some(FieldValue::Boolean(b)) => json!(b),
    }
}

#[async_trait::async_trait]
impl Target for DrupalTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "drupal"
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let what = self.what(op);
        let uuid = node_uuid(&self.namespace, &op.external_id);
        let done = || {
            Ok(Applied {
                remote_id: Some(uuid.to_string()),
            })
        };
        match op.kind {
            OpKind::Upsert => {
                // Create first when the store knows nothing (409: it exists), else update (404: re-create).
                let mut creating = op.first_time;
                for _ in 0..3 {
                    let a = if creating {
                        self.create(op, &uuid).await?
                    } else {
                        self.update(op, &uuid).await?
                    };
                    match a.status {
                        200..=299 => return done(),
                        409 if creating => creating = false,
                        404 if !creating && a.body.get("errors").is_some() => creating = true,
                        _ => return Err(self.error(&what, &a)),
                    }
                }
                Err(TargetError::retry(format!(
                    "{what}: the node was created and deleted while it was being written; will try again"
                )))
            }
            OpKind::Unpublish => {
                let a = self.update(op, &uuid).await?;
                match a.status {
                    200..=299 => done(),
                    // Never created, or deleted by an editor: nothing to unpublish.
                    404 if a.body.get("errors").is_some() => Ok(Applied { remote_id: None }),
                    _ => Err(self.error(&what, &a)),
                }
            }
            OpKind::Delete => {
                let url = format!("{}/{uuid}", self.collection);
                let a = self.send(&what, reqwest::Method::DELETE, &url, None).await?;
                match a.status {
                    200..=299 => Ok(Applied { remote_id: None }),
                    404 if a.body.get("errors").is_some() => Ok(Applied { remote_id: None }),
                    _ => Err(self.error(&what, &a)),
                }
            }
        }
    }

    async fn check(&self) -> Result<String, TargetError> {
        let what = format!("drupal {}: GET {}", self.name, self.collection);
        let url = format!("{}?page[limit]=1", self.collection);
        let a = self.send(&what, reqwest::Method::GET, &url, None).await?;
        if !(200..300).contains(&a.status) {
            return Err(self.error(&what, &a));
        }
        if a.body.get("data").is_none() {
            return Err(TargetError::permanent(format!(
                "{what}: the answer is not a JSON:API document: {}",
                crate::http::snippet(a.text.as_bytes())
            )));
        }
        Ok(format!(
            "Drupal {}: JSON:API answers for node--{} ({} fields mapped)",
            crate::http::redact_credentials(&self.site),
            self.bundle,
            self.field_names.len()
        ))
    }
}

#[cfg(test)]
mod tests;
