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

use super::{Applied, Operation, Target, TargetError};
use crate::catalog::Product;
use crate::clock::SharedClock;
use crate::push::{Outbox, ProductFilter};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
pub use desired::VisibilityWarning;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

mod offers;
mod settings;

pub use offers::*;
pub use settings::*;

pub mod api;

pub mod contremarque;

pub mod desired;

pub mod image;

pub mod state;

pub mod sync;

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

/// A pass Culture category and its extra fields, e.g. `{ category = "CONCERT", musicType = "JAZZ-BLUES" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CategoryMapping {
    /// `SPECTACLE_REPRESENTATION`, `CONCERT`…
    pub category: String,
    /// The category's fields (`showType`, `musicType`, `author`, `performer`, `stageDirector`, `speaker`…).
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
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
