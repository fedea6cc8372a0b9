//! The HTTP side of pass Culture's public API: base URL, `Authorization: Bearer <API key>`, pacing under the
//! 200 requests/minute limit of a key, error bodies made readable, and the wire types we read back.
//!
//! Error bodies (pcapi): 400 is an object `{"field": "message"}` (a message may also be a list), 422 is a
//! pydantic list `[{"loc": [...], "msg": "...", "type": "..."}]` (accepted bare or under `detail`).
//! [`describe_errors`] turns both into `field: message; other.field: message`, which is what dead letters
//! and `dlq list` show.
//!
//! Requests with the key never follow redirects (a redirect would carry the key to another address): a 3xx is
//! a permanent error naming where it pointed. Image downloads, which carry no credentials, follow up to 5.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::ratelimit::RateLimiter;
use crate::targets::TargetError;

use super::PassCultureSettings;

/// Longest body read from pass Culture or an image host.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A client for one pass Culture environment and API key.
#[derive(Clone)]
pub struct Api {
    /// `https://backend.passculture.app`, without a trailing slash.
    base: String,
    key: SecretString,
    /// For requests with the key: no redirects.
    http: reqwest::Client,
    /// For image downloads (no credentials): redirects followed.
    images: reqwest::Client,
    /// Shared by every request of the key: pass Culture counts requests per key, not per offer.
    limiter: Arc<RateLimiter>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish_non_exhaustive()
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, when sent.
    pub retry_after: Option<Duration>,
    /// Body.
    pub body: bytes::Bytes,
    /// Where a 3xx answer pointed (`Location`, credentials redacted).
    pub location: Option<String>,
}

impl Answer {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Decodes a success body; the error names the call.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T, TargetError> {
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            TargetError::retry(format!(
                "{what}: pass Culture answered HTTP {} with a body we cannot read at {}: {} (body: {})",
                self.status,
                e.path(),
                e.inner(),
                crate::http::snippet(&self.body)
            ))
        })
    }
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What happened (timeout, connection refused…).
    pub message: String,
    /// The host could not be reached at all.
    pub unreachable: bool,
    /// No answer within the timeout.
    pub timeout: bool,
}

impl Api {
    /// A client for `settings` (base URL, key, pacing); `name` is the target's, for messages.
    pub fn new(name: &str, settings: &PassCultureSettings) -> Result<Self, TargetError> {
        let key = settings
            .read_api_key()
            .map_err(|e| TargetError::permanent(format!("passculture target {name}: {e}")))?;
        if let Some(m) = settings.clear_text_problem() {
            return Err(TargetError::permanent(format!(
                "passculture target {name}: targets.passculture.base_url: {m}"
            )));
        }
        let client = |redirects: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .timeout(settings.http_timeout)
                .connect_timeout(settings.http_timeout.min(Duration::from_secs(10)))
                .redirect(redirects)
                .user_agent(concat!("secutix-sync/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    TargetError::permanent(format!("passculture target {name}: cannot build the HTTP client: {e}"))
                })
        };
        Ok(Self {
            base: settings.base_url(),
            key,
            http: client(reqwest::redirect::Policy::none())?,
            images: client(reqwest::redirect::Policy::limited(5))?,
            limiter: Arc::new(RateLimiter::per_minute(settings.requests_per_minute.max(1))),
        })
    }

    /// The base URL in use.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path?query` with an optional JSON body, paced, authenticated.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, TransportError> {
        self.limiter.acquire().await;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        read(resp).await
    }

    /// Downloads an image (no credentials sent: the image lives on SecuTix's or the venue's host).
    pub async fn fetch(&self, url: &str) -> Result<Answer, TransportError> {
        let resp = self.images.get(url).send().await.map_err(transport)?;
        read(resp).await
    }
}

async fn read(resp: reqwest::Response) -> Result<Answer, TransportError> {
    let status = resp.status().as_u16();
    let retry_after = crate::http::retry_after(resp.headers(), chrono::Utc::now());
    let location = (300..400)
        .contains(&status)
        .then(|| crate::http::redirect_location(resp.headers()));
    if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
        return Err(TransportError {
            message: format!("the answer is larger than {} MiB", MAX_BODY / 1024 / 1024),
            unreachable: false,
            timeout: false,
        });
    }
    let body = resp.bytes().await.map_err(transport)?;
    Ok(Answer {
        status,
        retry_after,
        body,
        location,
    })
}

fn transport(e: reqwest::Error) -> TransportError {
    TransportError {
        message: crate::http::error_chain(&e),
        unreachable: e.is_connect(),
        timeout: e.is_timeout(),
    }
}

/// The target's view of a transport failure: retried; an unreachable host pauses the worker.
pub fn transport_error(what: &str, e: TransportError) -> TargetError {
    TargetError::Retryable {
        message: format!("{what}: {}", e.message),
        retry_after: None,
        unreachable: e.unreachable,
    }
}

/// How long to wait after a 429 without `Retry-After`: the limit is counted per minute.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The target's view of a non-2xx answer. 429 waits `Retry-After` (60 s when absent); 408, 425 and 5xx are
/// retried; 401/403 name the key; other 4xx (400 field errors, 422 validation lists) are permanent and carry
/// pass Culture's own messages.
pub fn status_error(what: &str, a: &Answer) -> TargetError {
    let detail = describe_errors(&a.body);
    let message = format!("{what}: pass Culture answered HTTP {}: {detail}", a.status);
    match a.status {
        300..=399 => TargetError::permanent(format!(
            "{what}: pass Culture answered HTTP {}, redirecting to {}; redirects are not followed (they would \
             carry the API key to another address): set targets.passculture.environment, or base_url to the \
             API's final address",
            a.status,
            a.location.as_deref().unwrap_or("an address it did not give")
        )),
        429 => TargetError::Retryable {
            message,
            retry_after: Some(a.retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT)),
            unreachable: false,
        },
        408 | 425 | 500.. => TargetError::Retryable {
            message,
            retry_after: a.retry_after,
            unreachable: false,
        },
        401 | 403 => TargetError::permanent(format!(
            "{message}. The API key was refused: check targets.passculture.api_key_file and that the key \
             belongs to this environment ({})",
            "integration keys do not work in production and the other way round"
        )),
        _ => TargetError::permanent(message),
    }
}

/// pass Culture's error body as one line: `field: message; field: message` (400 objects, 422 lists), else
/// a snippet of the body.
pub fn describe_errors(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return crate::http::snippet(body);
    };
    let list = match &v {
        Value::Array(items) => Some(items),
        Value::Object(m) => m.get("detail").or_else(|| m.get("errors")).and_then(Value::as_array),
        _ => None,
    };
    let parts: Vec<String> = match (list, &v) {
        (Some(items), _) => items.iter().map(describe_item).collect(),
        (None, Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}: {}", text_of(v))).collect(),
        _ => Vec::new(),
    };
    if parts.is_empty() {
        crate::http::snippet(body)
    } else {
        crate::text::truncate(&parts.join("; "), 2000).to_owned()
    }
}

fn describe_item(item: &Value) -> String {
    match item {
        Value::Object(m) => {
            let loc = m
                .get("loc")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter(|p| p.as_str() != Some("body"))
                        .map(|p| match p {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .unwrap_or_default();
            let msg = m
                .get("msg")
                .or_else(|| m.get("message"))
                .map(text_of)
                .unwrap_or_default();
            if loc.is_empty() { msg } else { format!("{loc}: {msg}") }
        }
        other => text_of(other),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A price category as pass Culture returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePriceCategory {
    /// pass Culture id.
    pub id: u64,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Price in cents.
    #[serde(default)]
    pub price: Option<i64>,
    /// Our id, when we set one.
    #[serde(default)]
    pub id_at_provider: Option<String>,
}

/// An event offer as pass Culture returns it (only what we read back).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    /// pass Culture offer id.
    pub id: u64,
    /// `PENDING`, `ACTIVE`, `REJECTED`…
    #[serde(default)]
    pub status: Option<String>,
    /// Our product id.
    #[serde(default)]
    pub id_at_provider: Option<String>,
    /// Price categories.
    #[serde(default)]
    pub price_categories: Vec<WirePriceCategory>,
    /// Every other field, kept to rebuild "what was sent" after a lost store.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// `{"events": [...]}`
#[derive(Debug, Clone, Deserialize)]
pub struct WireEvents {
    /// The page.
    #[serde(default)]
    pub events: Vec<WireEvent>,
}

/// A quantity: a number, or `"unlimited"` (read as `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireQuantity(pub Option<i64>);

impl<'de> Deserialize<'de> for WireQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => Ok(WireQuantity(n.as_i64())),
            Value::String(s) if s.eq_ignore_ascii_case("unlimited") => Ok(WireQuantity(None)),
            Value::Null => Ok(WireQuantity(None)),
            other => Err(serde::de::Error::custom(format!(
                "quantity {other} is neither a number nor \"unlimited\""
            ))),
        }
    }
}

/// A date (stock) as pass Culture returns it. `quantity` is the **total** (bookings included); writing
/// `quantity` sets the **remaining** one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireDate {
    /// pass Culture stock id.
    pub id: u64,
    /// Start.
    pub beginning_datetime: chrono::DateTime<chrono::FixedOffset>,
    /// Booking limit.
    pub booking_limit_datetime: chrono::DateTime<chrono::FixedOffset>,
    /// Our id.
    #[serde(default)]
    pub id_at_provider: Option<String>,
    /// Its price category.
    #[serde(default)]
    pub price_category: Option<WirePriceCategory>,
    /// Total, bookings included; `None` = unlimited.
    pub quantity: WireQuantity,
    /// Booked so far.
    #[serde(default)]
    pub booked_quantity: i64,
}

impl WireDate {
    /// Places still bookable (`None` = unlimited).
    pub fn remaining(&self) -> Option<i64> {
        self.quantity.0.map(|q| (q - self.booked_quantity).max(0))
    }
}

/// `{"dates": [...]}`
#[derive(Debug, Clone, Deserialize)]
pub struct WireDates {
    /// The page.
    #[serde(default)]
    pub dates: Vec<WireDate>,
}

/// `{"priceCategories": [...]}`
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePriceCategories {
    /// The categories.
    #[serde(default)]
    pub price_categories: Vec<WirePriceCategory>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_and_validation_lists_are_readable() {
        assert_eq!(
            describe_errors(br#"{"name": "ensure this value has at most 90 characters", "global": ["a", "b"]}"#),
            "global: a, b; name: ensure this value has at most 90 characters"
        );
        assert_eq!(
            describe_errors(
                br#"[{"loc": ["body", "dates", 0, "quantity"], "msg": "must be positive", "type": "value_error"}]"#
            ),
            "dates.0.quantity: must be positive"
        );
        assert_eq!(
            describe_errors(br#"{"detail": [{"loc": ["description"], "msg": "too long", "type": "x"}]}"#),
            "description: too long"
        );
        assert_eq!(describe_errors(b"<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
    }

    #[test]
    fn stock_quantity_reads_total_and_unlimited() {
        let d: WireDate = serde_json::from_value(serde_json::json!({
            "id": 1, "beginningDatetime": "2026-03-07T19:00:00Z", "bookingLimitDatetime": "2026-03-07T17:00:00Z",
            "quantity": 10, "bookedQuantity": 3
        }))
        .expect("date");
        assert_eq!(d.remaining(), Some(7));
        let u: WireDate = serde_json::from_value(serde_json::json!({
            "id": 2, "beginningDatetime": "2026-03-07T19:00:00+01:00", "bookingLimitDatetime": "2026-03-07T17:00:00+01:00",
            "quantity": "unlimited", "bookedQuantity": 3
        }))
        .expect("date");
        assert_eq!(u.remaining(), None);
    }
}
