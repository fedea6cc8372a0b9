//! The `passculture` target: publishes the products the venue selects as pass Culture event offers, with
//! their price categories and dates, keeps them in step, and serves the box office's contremarque calls.
//!
//! - [`api`]: HTTP, API key, pacing (200 requests/minute per key), readable 400/422 messages.
//! - [`desired`]: what pass Culture should show for an entry (pure: name, description, category, prices,
//!   dates, quantities, visibility warnings).
//! - [`state`]: pass Culture ids and what was last sent, in the store.
//! - [`sync`]: one operation: read back after a lost store, create, PATCH only what changed, close dates.
//! - [`image`]: the image rules (pass Culture takes the file, portrait 2:3 only).
//! - [`contremarque`]: booking tokens (check, use, undo, cancel) for the CLI and the control API.
//!
//! Rules that protect young people's bookings: a date is **never deleted** (a DELETE cancels its
//! bookings; `delete_policy = "delete"` is refused for this kind); a performance that is full, off sale,
//! cancelled or gone, and every future date of a withdrawn product, gets `quantity: 0`; dates already
//! started are never touched; an unchanged start time is never re-sent (pass Culture would treat it as a
//! reschedule and notify every booker).

pub mod api;
pub mod contremarque;
pub mod desired;
pub mod image;
pub mod state;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::Product;
use crate::clock::SharedClock;
use crate::push::{Outbox, ProductFilter};
use crate::store::{Store, StoreError};

use super::{Applied, Operation, Target, TargetError};

pub use desired::VisibilityWarning;

/// pass Culture's integration environment.
pub const INTEGRATION_URL: &str = "https://backend.integration.passculture.pro";
/// pass Culture's production environment.
pub const PRODUCTION_URL: &str = "https://backend.passculture.app";

/// Which pass Culture platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassCultureEnvironment {
    /// Tests with fake young people (`https://backend.integration.passculture.pro`). The default, so a new
    /// configuration publishes nothing real by surprise.
    #[default]
    Integration,
    /// The real one (`https://backend.passculture.app`).
    Production,
}

/// Places per date for pass Culture: a number, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// This many places per date (per price category).
    Limited(u32),
    /// No limit on pass Culture's side (full or off-sale dates are still closed).
    Unlimited,
}

impl Quota {
    /// The JSON pass Culture takes.
    pub fn to_json(self) -> Value {
        match self {
            Quota::Limited(n) => json!(n),
            Quota::Unlimited => json!("unlimited"),
        }
    }
}

impl Serialize for Quota {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quota::Limited(n) => s.serialize_u32(*n),
            Quota::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quota;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of places or \"unlimited\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quota, E> {
                u32::try_from(v).map(Quota::Limited).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quota, E> {
                u32::try_from(v)
                    .map(Quota::Limited)
                    .map_err(|_| E::custom(format!("{v} is not a number of places")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quota, E> {
                if v.eq_ignore_ascii_case("unlimited") {
                    return Ok(Quota::Unlimited);
                }
                v.trim()
                    .parse()
                    .map(Quota::Limited)
                    .map_err(|_| E::custom(format!("{v:?} is neither a number of places nor \"unlimited\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A pass Culture category and its extra fields, e.g. `{ category = "CONCERT", musicType = "JAZZ-BLUES" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CategoryMapping {
    /// `SPECTACLE_REPRESENTATION`, `CONCERT`…
    pub category: String,
    /// The category's fields (`showType`, `musicType`, `author`, `performer`, `stageDirector`, `speaker`…).
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

/// Fields pass Culture requires for some categories (from its OpenAPI description).
const REQUIRED_FIELDS: &[(&str, &str)] = &[
    ("SPECTACLE_REPRESENTATION", "showType"),
    ("FESTIVAL_SPECTACLE", "showType"),
    ("LIVESTREAM_EVENEMENT", "showType"),
    ("CONCERT", "musicType"),
    ("EVENEMENT_MUSIQUE", "musicType"),
    ("FESTIVAL_MUSIQUE", "musicType"),
    ("LIVESTREAM_MUSIQUE", "musicType"),
];

/// Event categories pass Culture knows (its OpenAPI description).
pub const EVENT_CATEGORIES: &[&str] = &[
    "ATELIER_PRATIQUE_ART",
    "CINE_PLEIN_AIR",
    "CONCERT",
    "CONCOURS",
    "CONFERENCE",
    "EVENEMENT_CINE",
    "EVENEMENT_JEU",
    "EVENEMENT_MUSIQUE",
    "EVENEMENT_PATRIMOINE",
    "FESTIVAL_ART_VISUEL",
    "FESTIVAL_CINE",
    "FESTIVAL_LIVRE",
    "FESTIVAL_MUSIQUE",
    "FESTIVAL_SPECTACLE",
    "LIVESTREAM_EVENEMENT",
    "LIVESTREAM_MUSIQUE",
    "LIVESTREAM_PRATIQUE_ARTISTIQUE",
    "RENCONTRE",
    "RENCONTRE_EN_LIGNE",
    "RENCONTRE_JEU",
    "SALON",
    "SEANCE_CINE",
    "SEANCE_ESSAI_PRATIQUE_ART",
    "SPECTACLE_REPRESENTATION",
    "VISITE",
    "VISITE_GUIDEE",
];

/// Field names as pass Culture spells them, matched case-insensitively in the configuration.
const KNOWN_FIELDS: &[&str] = &[
    "showType",
    "musicType",
    "author",
    "performer",
    "stageDirector",
    "speaker",
    "visa",
];

impl CategoryMapping {
    /// `categoryRelatedFields`.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("category".into(), json!(self.category));
        for (k, v) in &self.fields {
            let key = KNOWN_FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(k))
                .map_or(k.as_str(), |f| f);
            m.insert(key.to_owned(), json!(v));
        }
        Value::Object(m)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !EVENT_CATEGORIES.contains(&self.category.as_str()) {
            p.push(format!(
                "{:?} is not a pass Culture event category (e.g. SPECTACLE_REPRESENTATION, CONCERT, CONFERENCE; \
                 GET /public/offers/v1/events/categories lists them)",
                self.category
            ));
        }
        for (cat, field) in REQUIRED_FIELDS {
            if self.category == *cat && !self.fields.keys().any(|k| k.eq_ignore_ascii_case(field)) {
                p.push(format!("category {cat} needs {field} (e.g. {field} = \"…\")"));
            }
        }
        p
    }
}

/// Accessibility flags of every offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessibilitySettings {
    /// Hearing impairment.
    #[serde(default)]
    pub audio: bool,
    /// Mental disability.
    #[serde(default)]
    pub mental: bool,
    /// Reduced mobility.
    #[serde(default)]
    pub motor: bool,
    /// Visual impairment.
    #[serde(default)]
    pub visual: bool,
}

/// `[targets.passculture]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PassCultureSettings {
    /// `integration` (default) or `production`.
    #[serde(default)]
    pub environment: PassCultureEnvironment,
    /// Explicit base URL, overriding `environment` (tests, a proxy).
    #[serde(default)]
    pub base_url: String,
    /// Accept an `http://` `base_url` beyond loopback: the API key then crosses the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The API key, inline (prefer `api_key_file`).
    pub api_key: Option<SecretString>,
    /// File holding the API key (relative names are looked up in `$CREDENTIALS_DIRECTORY` first).
    pub api_key_file: Option<String>,
    /// pass Culture venue id (`GET /public/offers/v1/offerer_venues` lists them).
    pub venue_id: Option<u64>,
    /// Requests per minute to pass Culture (its limit is 200 per key).
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// Timeout of one HTTP request.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Products published: these product codes (or ids)…
    #[serde(default)]
    pub product_codes: Vec<String>,
    /// …and products with one of these SecuTix sub-topics…
    #[serde(default)]
    pub sub_topic_codes: Vec<String>,
    /// …and products matching every non-empty one of these two lists.
    #[serde(default)]
    pub season_codes: Vec<String>,
    /// See `season_codes`.
    #[serde(default)]
    pub activity_codes: Vec<String>,
    /// SecuTix tariff (audience sub-category) codes offered on pass Culture, e.g. the under-26 tariff.
    #[serde(default)]
    pub tariff_codes: Vec<String>,
    /// Places per date for pass Culture (a number or `"unlimited"`).
    pub quota: Option<Quota>,
    /// Bookings close this long before the start.
    #[serde(default = "default_booking_limit", with = "humantime_serde")]
    pub booking_limit_before: Duration,
    /// Language of the name and description (ISO 639-1).
    #[serde(default = "default_language")]
    pub language: String,
    /// pass Culture category by SecuTix activity code.
    #[serde(default)]
    pub categories: BTreeMap<String, CategoryMapping>,
    /// Category of activities missing from `categories`; none = such products go to dead letters.
    pub default_category: Option<CategoryMapping>,
    /// Accessibility flags.
    #[serde(default)]
    pub accessibility: AccessibilitySettings,
    /// Duo bookings (two places per young person).
    #[serde(default = "default_true")]
    pub enable_double_bookings: bool,
    /// E-mail pass Culture and young people can contact about a booking.
    pub booking_contact: Option<String>,
    /// E-mail that receives pass Culture's booking notifications.
    pub booking_email: Option<String>,
    /// Products published as online (digital location): product codes or ids.
    #[serde(default)]
    pub online_product_codes: Vec<String>,
    /// URL of online products; pass Culture replaces `{token}`, `{offerId}` and `{email}` for each booking.
    #[serde(default)]
    pub online_url: String,
    /// Which entry image to publish (`small`, `medium`, `large`, `xlarge`); empty = none.
    #[serde(default = "default_image")]
    pub image: String,
    /// Credit shown with the image.
    pub image_credit: Option<String>,
    /// Time zone in which the CLI shows booking dates.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_requests_per_minute() -> u32 {
    180
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_booking_limit() -> Duration {
    Duration::from_secs(3600)
}
fn default_language() -> String {
    "fr".into()
}
fn default_true() -> bool {
    true
}
fn default_image() -> String {
    "large".into()
}
fn default_time_zone() -> String {
    "Europe/Paris".into()
}

impl PassCultureSettings {
    /// The base URL: explicit, or the environment's.
    pub fn base_url(&self) -> String {
        if !self.base_url.is_empty() {
            return self.base_url.trim_end_matches('/').to_owned();
        }
        match self.environment {
            PassCultureEnvironment::Integration => INTEGRATION_URL.to_owned(),
            PassCultureEnvironment::Production => PRODUCTION_URL.to_owned(),
        }
    }

    /// Why `base_url` may not be used in clear text (see [`crate::http::clear_text_problem`]).
    pub fn clear_text_problem(&self) -> Option<String> {
        crate::http::clear_text_problem(&self.base_url, self.allow_insecure_http, "the API key")
            .map(|m| format!("{m} (targets.passculture.allow_insecure_http)"))
    }

    /// The API key, from `api_key` or `api_key_file`. Errors name the file, never the key.
    pub fn read_api_key(&self) -> Result<SecretString, String> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone());
        }
        let Some(file) = &self.api_key_file else {
            return Err("no API key: set targets.passculture.api_key_file (recommended) or api_key".into());
        };
        let path = crate::credentials::resolve_credential_path(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(format!("the API key file {} is empty", path.display()));
        }
        Ok(SecretString::from(line))
    }

    /// The quota (validation makes sure it is set).
    pub fn quota(&self) -> Quota {
        self.quota.unwrap_or(Quota::Limited(0))
    }

    /// The category of an activity code.
    pub fn category_for(&self, activity_code: &str) -> Option<&CategoryMapping> {
        self.categories
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(activity_code))
            .map(|(_, v)| v)
            .or(self.default_category.as_ref())
    }

    /// The product selection.
    pub fn selection(&self) -> Selection {
        let set = |v: &[String]| v.iter().map(|s| s.trim().to_ascii_uppercase()).collect();
        Selection {
            products: set(&self.product_codes),
            sub_topics: set(&self.sub_topic_codes),
            seasons: set(&self.season_codes),
            activities: set(&self.activity_codes),
        }
    }

    /// Problems as (key under `passculture.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match (&self.api_key, &self.api_key_file) {
            (Some(_), Some(_)) => bad("api_key", "is set together with api_key_file; keep only one".into()),
            (None, None) => bad(
                "api_key_file",
                "is missing: pass Culture's API key is needed (one per environment, sent by pass Culture's \
                 provider support)"
                    .into(),
            ),
            (Some(k), None) if k.expose_secret().trim().is_empty() => bad("api_key", "is empty".into()),
            (None, Some(_)) => {
                if let Err(e) = self.read_api_key() {
                    bad("api_key_file", e);
                }
            }
            _ => {}
        }
        if !self.base_url.is_empty() {
            match url::Url::parse(&self.base_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "base_url",
                    format!(
                        "{:?} is not an http(s) URL; leave it empty to use environment",
                        crate::http::redact_credentials(&self.base_url)
                    ),
                ),
            }
            if let Some(m) = self.clear_text_problem() {
                bad("base_url", m);
            }
        }
        if self.venue_id.is_none_or(|v| v == 0) {
            bad(
                "venue_id",
                "is missing: set the pass Culture venue id (GET /public/offers/v1/offerer_venues lists your venues)"
                    .into(),
            );
        }
        if !(1..=200).contains(&self.requests_per_minute) {
            bad(
                "requests_per_minute",
                format!(
                    "{} is outside 1..=200 (pass Culture allows 200 per minute per key)",
                    self.requests_per_minute
                ),
            );
        }
        if self.http_timeout.is_zero() {
            bad("http_timeout", "must be longer than 0s, e.g. \"30s\"".into());
        }
        if self.tariff_codes.is_empty() {
            bad(
                "tariff_codes",
                "is empty: list the SecuTix tariff codes offered to young people, e.g. [\"J26\"]".into(),
            );
        }
        if self.quota.is_none() {
            bad(
                "quota",
                "is missing: set the places per date for pass Culture, e.g. quota = 10 (or \"unlimited\")".into(),
            );
        }
        if self.language.len() != 2 {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        for (code, m) in &self.categories {
            for problem in m.problems() {
                bad(&format!("categories.{code}"), problem);
            }
        }
        if let Some(m) = &self.default_category {
            for problem in m.problems() {
                bad("default_category", problem);
            }
        }
        for (key, v) in [
            ("booking_contact", &self.booking_contact),
            ("booking_email", &self.booking_email),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty() && !v.contains('@')) {
                bad(key, format!("{v:?} is not an e-mail address"));
            }
        }
        if !self.online_product_codes.is_empty() {
            let probe = self
                .online_url
                .replace("{token}", "T")
                .replace("{offerId}", "1")
                .replace("{email}", "e");
            match url::Url::parse(&probe) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "online_url",
                    format!(
                        "{:?} is not an http(s) URL; online products need one, e.g. \
                         \"https://live.example.org/watch?code={{token}}\"",
                        self.online_url
                    ),
                ),
            }
        }
        if !["", "small", "medium", "large", "xlarge"].contains(&self.image.as_str()) {
            bad(
                "image",
                format!(
                    "{:?} is not one of small, medium, large, xlarge (or \"\" for none)",
                    self.image
                ),
            );
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bad(
                "time_zone",
                format!("{:?} is not a time zone such as \"Europe/Paris\"", self.time_zone),
            );
        }
        p
    }
}

/// Which products pass Culture gets. A product is selected when its code (or id) is in `product_codes`,
/// or one of its sub-topics is in `sub_topic_codes`, or it matches **every** non-empty one of
/// `season_codes` and `activity_codes`. All empty = nothing (the default: nothing is published by surprise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    products: BTreeSet<String>,
    sub_topics: BTreeSet<String>,
    seasons: BTreeSet<String>,
    activities: BTreeSet<String>,
}

impl Selection {
    /// Nothing selected.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.sub_topics.is_empty() && self.seasons.is_empty() && self.activities.is_empty()
    }

    /// True when `p` is selected.
    pub fn matches(&self, p: &Product) -> bool {
        let up = |s: &Option<String>| s.as_deref().map(|s| s.trim().to_ascii_uppercase());
        if self.products.contains(&p.id.to_string()) || up(&p.code).is_some_and(|c| self.products.contains(&c)) {
            return true;
        }
        if p.sub_topic_codes
            .iter()
            .any(|t| self.sub_topics.contains(&t.trim().to_ascii_uppercase()))
        {
            return true;
        }
        if self.seasons.is_empty() && self.activities.is_empty() {
            return false;
        }
        let season_ok = self.seasons.is_empty() || up(&p.season_code).is_some_and(|s| self.seasons.contains(&s));
        let activity = p.event.as_ref().and_then(|e| up(&e.activity_code));
        let activity_ok = self.activities.is_empty() || activity.is_some_and(|a| self.activities.contains(&a));
        season_ok && activity_ok
    }

    /// The planner's filter.
    pub fn into_filter(self) -> ProductFilter {
        Arc::new(move |p: &Product| self.matches(p))
    }
}

/// The status of one offer, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferStatus {
    /// `secutix-<productId>`.
    pub external_id: String,
    /// pass Culture offer id.
    pub offer_id: Option<u64>,
    /// Offer name as sent.
    pub name: Option<String>,
    /// `PENDING` (validation, up to 72 h), `ACTIVE`, `REJECTED`, `SOLD_OUT`, `EXPIRED`, `INACTIVE`.
    pub status: Option<String>,
    /// When the status was read.
    pub status_at: Option<DateTime<Utc>>,
    /// Dates published (past ones included).
    pub dates: usize,
    /// Dates open for booking (quota in force, not started).
    pub open_dates: usize,
    /// All future dates are at 0 because the product was withdrawn.
    pub withdrawn: bool,
    /// What keeps the offer invisible or incomplete, as of the last publication.
    pub warnings: Vec<String>,
    /// Why the image was not published.
    pub image_refused: Option<String>,
}

/// Every offer of `target` with its pass Culture status, as last read (see
/// [`PassCultureTarget::refresh_statuses`] to read them again).
pub fn offer_statuses(store: &Store, target: &str) -> Result<Vec<OfferStatus>, StoreError> {
    let now = store.clock().now();
    Ok(state::OfferStore::open(store, target)?
        .all()?
        .into_iter()
        .map(|(external_id, s)| OfferStatus {
            external_id,
            offer_id: s.offer_id,
            name: s.sent.get("name").and_then(Value::as_str).map(str::to_owned),
            status: s.status.clone(),
            status_at: s.status_at,
            dates: s.stocks.len(),
            open_dates: s
                .stocks
                .values()
                .filter(|d| d.beginning > now && d.quantity != desired::QuantitySet::Closed)
                .count(),
            withdrawn: s.withdrawn,
            warnings: s.warnings.clone(),
            image_refused: s.image.as_ref().and_then(|i| i.refused.clone()),
        })
        .collect())
}

/// What [`check_entries`] found for one selected product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryCheck {
    /// `secutix-<productId>`.
    pub external_id: String,
    /// What would keep the offer invisible or incomplete.
    pub warnings: Vec<VisibilityWarning>,
    /// Why it cannot be published at all (no category for its activity, no title, not in euros).
    pub error: Option<String>,
}

/// The visibility warnings of every selected product, from the entries in the store: what a `check`
/// command shows before (or after) publishing.
pub fn check_entries(store: &Store, settings: &PassCultureSettings) -> Result<Vec<EntryCheck>, StoreError> {
    let now = store.clock().now();
    let selection = settings.selection();
    let outbox = Outbox::open(store)?;
    let Some(view) = store.catalog()? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for record in view.products() {
        let record = record?;
        if record.removed_at.is_some() || !selection.matches(&record.product) {
            continue;
        }
        let id = crate::entry::external_id(record.product.id);
        let Some(stored) = outbox.entry(&id)? else { continue };
        let (warnings, error) = match desired::desired(&stored.entry, settings, now) {
            Ok(d) => (d.warnings, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        out.push(EntryCheck {
            external_id: id,
            warnings,
            error,
        });
    }
    Ok(out)
}

/// The pass Culture target.
pub struct PassCultureTarget {
    name: String,
    settings: Arc<PassCultureSettings>,
    api: api::Api,
    offers: state::OfferStore,
    clock: SharedClock,
}

impl PassCultureTarget {
    /// Builds the target; its state lives in `store`.
    pub fn new(name: &str, settings: &PassCultureSettings, store: &Store) -> Result<Self, TargetError> {
        let api = api::Api::new(name, settings)?;
        let offers = state::OfferStore::open(store, name)
            .map_err(|e| TargetError::permanent(format!("passculture target {name}: {e}")))?;
        if settings.selection().is_empty() {
            tracing::warn!(
                target_name = name,
                "the passculture target selects no product: set product_codes, sub_topic_codes, season_codes or \
                 activity_codes in [targets.passculture]"
            );
        }
        Ok(Self {
            name: name.to_owned(),
            settings: Arc::new(settings.clone()),
            api,
            offers,
            clock: store.clock().clone(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &PassCultureSettings {
        &self.settings
    }

    /// Reads the status of every offer of the venue again (`GET /public/offers/v1/events?venueId=`, page by
    /// page) and stores it; returns how many known offers were updated.
    pub async fn refresh_statuses(&self) -> Result<usize, TargetError> {
        let venue = self.settings.venue_id.unwrap_or_default();
        let mut first_index = 1u64;
        let mut by_product: BTreeMap<String, (u64, Option<String>)> = BTreeMap::new();
        loop {
            let what = format!("passculture {} list offers", self.name);
            let a = self
                .api
                .call(
                    reqwest::Method::GET,
                    "/public/offers/v1/events",
                    &[
                        ("venueId", venue.to_string()),
                        ("limit", "50".into()),
                        ("firstIndex", first_index.to_string()),
                    ],
                    None,
                )
                .await
                .map_err(|e| api::transport_error(&what, e))?;
            if !a.ok() {
                return Err(api::status_error(&what, &a));
            }
            let page: api::WireEvents = a.decode(&what)?;
            let n = page.events.len();
            for e in &page.events {
                if let Some(p) = &e.id_at_provider {
                    by_product.insert(p.clone(), (e.id, e.status.clone()));
                }
            }
            match page.events.iter().map(|e| e.id).max() {
                Some(max) if n >= 50 => first_index = max + 1,
                _ => break,
            }
        }
        let now = self.clock.now();
        let mut updated = 0;
        let all = self
            .offers
            .all()
            .map_err(|e| TargetError::retry(format!("passculture {}: {e}", self.name)))?;
        for (id, mut s) in all {
            let Some(pid) = crate::entry::product_id_of(&id) else {
                continue;
            };
            if let Some((offer_id, status)) = by_product.get(&pid.to_string())
                && s.offer_id == Some(*offer_id)
            {
                if status.as_deref() == Some("REJECTED") && s.status != *status {
                    tracing::warn!(target_name = %self.name, external_id = %id, offer_id,
                        "pass Culture rejected the offer: see its pro portal for the reason");
                }
                s.status = status.clone();
                s.status_at = Some(now);
                self.offers
                    .save(&id, &s, false)
                    .map_err(|e| TargetError::retry(format!("passculture {}: {e}", self.name)))?;
                updated += 1;
            }
        }
        Ok(updated)
    }
}

#[async_trait::async_trait]
impl Target for PassCultureTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "passculture"
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        sync::Sync {
            target: &self.name,
            settings: &self.settings,
            api: &self.api,
            offers: &self.offers,
            now: self.clock.now(),
        }
        .apply(op)
        .await
    }

    async fn check(&self) -> Result<String, TargetError> {
        let what = format!("passculture {}", self.name);
        let venue = self.settings.venue_id.unwrap_or_default();
        let a = self
            .api
            .call(
                reqwest::Method::GET,
                "/public/offers/v1/events",
                &[("venueId", venue.to_string()), ("limit", "1".into())],
                None,
            )
            .await
            .map_err(|e| api::transport_error(&what, e))?;
        if !a.ok() {
            return Err(api::status_error(&what, &a));
        }
        Ok(format!(
            "{} accepted the API key and lists the offers of venue {venue}",
            self.api.base()
        ))
    }
}

#[cfg(test)]
mod tests;
