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

use super::fields::{self, FieldGroup, FieldValue, Ownership};
use super::{Applied, OpKind, Operation, Target, TargetError, classify_response, classify_transport};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

mod client;
mod settings;

#[allow(unused_imports)]
use client::*;
#[allow(unused_imports)]
use settings::*;

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
