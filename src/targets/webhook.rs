//! The `webhook` target: generic JSON over HTTP(S) for any receiver.
//!
//! Two shapes (`mode`):
//! - `put` (REST style): `PUT {url}/{external_id}` with the entry as the body; unpublish sends the entry with
//!   `"published": false` the same way; delete sends `DELETE {url}/{external_id}`.
//! - `post` (event style): `POST {url}` with an envelope
//!   `{"event","external_id","content_hash","occurred_at","entry"}` for every operation.
//!
//! Every request carries `Idempotency-Key` (hex SHA-256 of `external_id`, a newline and the content hash),
//! `X-Secutix-Sync-Event`, `X-Secutix-Sync-Timestamp` (Unix seconds) and, when a secret is configured,
//! `X-Secutix-Sync-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>`. Any 2xx is success;
//! 409 means "already applied" and counts as success. A retried operation sends byte-identical bodies.
//!
//! Redirects are not followed: a 3xx would re-send the body, its signature and the secret headers to wherever
//! `Location` points, so it is a permanent failure naming that address. An `http://` URL to a host beyond
//! loopback is refused unless `allow_insecure_http` is set; credentials in the URL (`https://user:pass@…`) are
//! sent, never shown.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Applied, OpKind, Operation, Target, TargetError, classify_response, classify_transport};

/// `[targets.webhook]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Base URL (`put`: entries go to `{url}/{external_id}`; `post`: the URL itself).
    pub url: String,
    /// `put` or `post`.
    #[serde(default = "default_mode")]
    pub mode: WebhookMode,
    /// HMAC secret, inline (prefer `secret_file`).
    pub secret: Option<SecretString>,
    /// File holding the HMAC secret (relative names are looked up in `$CREDENTIALS_DIRECTORY`).
    pub secret_file: Option<String>,
    /// Extra headers sent with every request (e.g. an API key for the receiver).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// Accept an `http://` URL to a host beyond loopback: the entries, the signature and the headers then
    /// cross the network in clear. Loopback (127.0.0.0/8, `::1`, `localhost`) is always accepted.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

impl WebhookSettings {
    /// Why `url` may not be used in clear text (see [`crate::http::clear_text_problem`]).
    pub fn clear_text_problem(&self) -> Option<String> {
        crate::http::clear_text_problem(
            &self.url,
            self.allow_insecure_http,
            "the entries, their signature and the extra headers",
        )
        .map(|m| format!("{m} (targets.webhook.allow_insecure_http)"))
    }
}

fn default_mode() -> WebhookMode {
    WebhookMode::Put
}

/// The request shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookMode {
    /// `PUT {url}/{external_id}` / `DELETE`.
    Put,
    /// `POST {url}` with an envelope.
    Post,
}

/// Header names.
pub const SIGNATURE_HEADER: &str = "X-Secutix-Sync-Signature";
/// Timestamp header (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Secutix-Sync-Timestamp";
/// Event header (`upsert`, `unpublish`, `delete`).
pub const EVENT_HEADER: &str = "X-Secutix-Sync-Event";

/// The webhook target.
pub struct WebhookTarget {
    name: String,
    url: String,
    /// `url` as messages show it: credentials redacted.
    shown_url: String,
    mode: WebhookMode,
    secret: Option<SecretString>,
    headers: BTreeMap<String, SecretString>,
    http: reqwest::Client,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` with `secret`: what receivers compare with the header.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The idempotency key of an operation: hex SHA-256 of `external_id` + `\n` + `content_hash`.
pub fn idempotency_key(external_id: &str, content_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(external_id.as_bytes());
    h.update(b"\n");
    h.update(content_hash.as_bytes());
    hex::encode(h.finalize())
}

impl WebhookTarget {
    /// Builds the target; `timeout` bounds each request.
    pub fn new(name: &str, settings: &WebhookSettings, timeout: Duration) -> Result<Self, TargetError> {
        let url = url::Url::parse(&settings.url).map_err(|e| {
            TargetError::permanent(format!(
                "webhook target {name}: targets.webhook.url {:?} is not a URL: {e}",
                crate::http::redact_credentials(&settings.url)
            ))
        })?;
        if let Some(m) = settings.clear_text_problem() {
            return Err(TargetError::permanent(format!(
                "webhook target {name}: targets.webhook.url: {m}"
            )));
        }
        let secret = match (&settings.secret, &settings.secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(f)) => {
                let path = crate::credentials::resolve_credential_path(f);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    TargetError::permanent(format!(
                        "webhook target {name}: cannot read the secret file {}: {e}",
                        path.display()
                    ))
                })?;
                Some(SecretString::from(text.lines().next().unwrap_or("").trim().to_owned()))
            }
            (None, None) => None,
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect would carry the body, the signature and the secret headers to another address.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secutix-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TargetError::permanent(format!("webhook target {name}: cannot build the HTTP client: {e}")))?;
        let url = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            name: name.to_owned(),
            shown_url: crate::http::redact_credentials(&url).into_owned(),
            url,
            mode: settings.mode,
            secret,
            headers: settings.headers.clone(),
            http,
        })
    }

    /// The permanent failure of a 3xx answer: redirects are not followed.
    fn redirected(&self, what: &str, status: u16, headers: &reqwest::header::HeaderMap) -> TargetError {
        TargetError::permanent(format!(
            "{what}: HTTP {status}: the receiver redirects to {}; redirects are not followed (they would carry the \
             entry, its signature and the secret headers to another address): set targets.webhook.url to the \
             receiver's final address",
            crate::http::redirect_location(headers)
        ))
    }

    fn request(&self, method: reqwest::Method, url: &str, op: &Operation, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, url)
            .header("Idempotency-Key", idempotency_key(&op.external_id, &op.content_hash))
            .header(EVENT_HEADER, op.kind.as_str())
            .header(TIMESTAMP_HEADER, chrono::Utc::now().timestamp().to_string());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.expose_secret());
        }
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret.expose_secret().as_bytes(), &body));
        }
        if !body.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        req
    }
}

#[async_trait::async_trait]
impl Target for WebhookTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let what = format!("webhook {} {} {}", self.name, op.kind.as_str(), op.external_id);
        let (method, url, body) = match (self.mode, op.kind) {
            (WebhookMode::Put, OpKind::Delete) => (
                reqwest::Method::DELETE,
                format!("{}/{}", self.url, op.external_id),
                Vec::new(),
            ),
            (WebhookMode::Put, _) => {
                let entry = op
                    .entry
                    .as_ref()
                    .ok_or_else(|| TargetError::permanent(format!("{what}: no entry")))?;
                let body = serde_json::to_vec(entry).map_err(|e| TargetError::permanent(format!("{what}: {e}")))?;
                (reqwest::Method::PUT, format!("{}/{}", self.url, op.external_id), body)
            }
            (WebhookMode::Post, _) => {
                let envelope = serde_json::json!({
                    "event": op.kind.as_str(),
                    "external_id": op.external_id,
                    "content_hash": op.content_hash,
                    "occurred_at": op.enqueued_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "entry": op.entry,
                });
                let body = serde_json::to_vec(&envelope).map_err(|e| TargetError::permanent(format!("{what}: {e}")))?;
                (reqwest::Method::POST, self.url.clone(), body)
            }
        };
        let resp = self
            .request(method, &url, op, body)
            .send()
            .await
            .map_err(|e| classify_transport(&what, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if (300..400).contains(&status) {
            return Err(self.redirected(&what, status, &headers));
        }
        let text = resp.text().await.unwrap_or_default();
        // DELETE of something already gone is done.
        let gone = op.kind == OpKind::Delete && status == 404;
        if !gone {
            classify_response(&what, status, &headers, &text, true)?;
        }
        Ok(Applied { remote_id: None })
    }

    async fn check(&self) -> Result<String, TargetError> {
        // HEAD on the base URL with the configured headers: proves the receiver answers and, for receivers
        // that check them on every route, that the credentials are accepted.
        let what = format!("webhook {}", self.name);
        let mut req = self.http.head(&self.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.expose_secret());
        }
        let resp = req.send().await.map_err(|e| classify_transport(&what, &e))?;
        let status = resp.status().as_u16();
        match status {
            300..=399 => Err(self.redirected(&what, status, resp.headers())),
            401 | 403 => Err(TargetError::permanent(format!(
                "{what}: {} refused the request (HTTP {status}); check targets.webhook.headers",
                self.shown_url
            ))),
            s if s >= 500 => Err(TargetError::retry(format!(
                "{what}: {} answered HTTP {status}: the receiver has a problem",
                self.shown_url
            ))),
            _ => Ok(format!("{} answered HTTP {status} to HEAD", self.shown_url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn idempotency_key_depends_on_id_and_hash() {
        let a = idempotency_key("secutix-1", "abc");
        assert_eq!(a.len(), 64);
        assert_ne!(a, idempotency_key("secutix-1", "abd"));
        assert_ne!(a, idempotency_key("secutix-2", "abc"));
    }
}
