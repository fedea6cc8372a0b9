//! One operation against pass Culture: bring an offer, its price categories and its dates to what the entry
//! says, sending only what differs from what pass Culture has.
//!
//! 1. **Identity.** Without a stored offer id (first publication, lost store) or after an unrecorded answer,
//!    the offer is looked up by `GET /public/offers/v1/events?venueId=&idsAtProvider=<productId>`, with its
//!    price categories and dates (`GET …/dates`, page by page): nothing is created twice.
//! 2. **Offer.** Created once (`POST /public/offers/v1/events`, with its price categories, `hasTicket:
//!    false`); afterwards `PATCH` with only the fields that changed.
//! 3. **Price categories.** One per selected tariff (× seat category); when a tariff's amount differs
//!    between dates, one per amount. A changed amount PATCHes the existing category.
//! 4. **Dates.** New performances are created in one `POST …/dates`. An existing date gets a `PATCH` with
//!    only what changed: start (only when it really moved: pass Culture treats a start as a reschedule),
//!    booking limit, price category, quantity. Closing sets `quantity: 0` (remaining); reopening reads the
//!    date first, because pass Culture *reads* `quantity` as the total (bookings included) but *writes* it as
//!    the remaining: the remaining sent is `quota − booked`. Dates that already started are never touched,
//!    and no date is ever deleted.
//! 5. **Withdrawal** (tombstone, product out of the selection): every future open date goes to 0.
//! 6. **Image.** Published when pass Culture would accept it (see `image.rs`), else reported.

use super::api::{self, Answer, Api, WireDate, WireDates, WireEvent, WireEvents, WirePriceCategories};
use super::desired::{self, DesiredGroup, DesiredOffer, QuantitySet, euros};
use super::image;
use super::state::{ImageState, OfferState, OfferStore, PriceCategoryState, StockState};
use super::{PassCultureSettings, Quota};
use crate::targets::{Applied, OpKind, Operation, TargetError};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

mod dates;
mod offer;
mod prices;

pub use dates::*;

/// Offer fields we own: read back after a lost store, compared before a PATCH.
const OFFER_FIELDS: &[&str] = &[
    "name",
    "description",
    "categoryRelatedFields",
    "location",
    "accessibility",
    "enableDoubleBookings",
    "bookingContact",
    "bookingEmail",
    "eventDuration",
];

/// Dates per creation request (pass Culture accepts up to 2,500).
const DATES_PER_POST: usize = 500;

/// One sync, borrowed from the target.
pub struct Sync<'a> {
    /// Target name (logs, messages).
    pub target: &'a str,
    /// Settings.
    pub settings: &'a PassCultureSettings,
    /// HTTP.
    pub api: &'a Api,
    /// State.
    pub offers: &'a OfferStore,
    /// The time the operation is applied at: dates that started before it are never touched.
    pub now: DateTime<Utc>,
}

impl Sync<'_> {
    fn store_err(&self, e: crate::store::StoreError) -> TargetError {
        TargetError::retry(format!("passculture {}: {e}", self.target))
    }

    fn save(&self, id: &str, st: &OfferState, durable: bool) -> Result<(), TargetError> {
        self.offers.save(id, st, durable).map_err(|e| self.store_err(e))
    }

    fn what(&self, id: &str, call: &str) -> String {
        format!("passculture {} {id}: {call}", self.target)
    }

    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        self.api
            .call(method, path, query, body)
            .await
            .map_err(|e| api::transport_error(what, e))
    }

    /// A failed answer: a 404 on something we know means it is gone on pass Culture's side (read it back and
    /// recreate at the next attempt); everything else per [`api::status_error`].
    fn failed(&self, id: &str, st: &mut OfferState, what: &str, a: &Answer) -> Result<TargetError, TargetError> {
        if a.status == 404 {
            st.unsure = true;
            self.save(id, st, true)?;
            return Ok(TargetError::retry(format!(
                "{what}: pass Culture does not know it any more (HTTP 404: {}); it will be read back from \
                 pass Culture at the next attempt",
                api::describe_errors(&a.body)
            )));
        }
        if (400..500).contains(&a.status) && a.status != 408 {
            // pass Culture answered and refused (429 included): nothing was created or changed.
            st.unsure = false;
            self.save(id, st, true)?;
        }
        Ok(api::status_error(what, a))
    }

    /// Applies one operation.
    pub async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let id = op.external_id.as_str();
        let product_id = crate::entry::product_id_of(id)
            .ok_or_else(|| TargetError::permanent(format!("{id} is not a SecuTix product id")))?;
        let withdraw = op.kind != OpKind::Upsert || op.entry.as_ref().is_none_or(|e| !e.published);
        let want = match (&op.entry, withdraw) {
            (Some(entry), false) => Some(
                desired::desired(entry, self.settings, self.now)
                    .map_err(|e| TargetError::permanent(format!("{}: {e}", self.what(id, "mapping"))))?,
            ),
            (None, false) => return Err(TargetError::permanent(format!("{id}: no entry to publish"))),
            _ => None,
        };
        let mut st = self.offers.load(id).map_err(|e| self.store_err(e))?.unwrap_or_default();
        if st.offer_id.is_none() || st.unsure {
            self.read_back(id, product_id, &mut st).await?;
            self.save(id, &st, true)?;
        }
        match want {
            None => {
                if st.offer_id.is_some() {
                    self.withdraw(id, &mut st).await?;
                }
                st.withdrawn = true;
            }
            Some(d) => {
                for w in &d.warnings {
                    tracing::warn!(target_name = %self.target, external_id = %id, warning = %w,
                        "pass Culture offer will not be fully visible");
                }
                st.warnings = d.warnings.iter().map(ToString::to_string).collect();
                st.withdrawn = false;
                if st.offer_id.is_none() {
                    if !d.stocks.values().any(|s| s.booking_limit > self.now) {
                        // An offer without a bookable date would sit in validation for nothing.
                        tracing::warn!(target_name = %self.target, external_id = %id,
                            "not created on pass Culture: no date to publish yet");
                        self.save(id, &st, true)?;
                        return Ok(Applied { remote_id: None });
                    }
                    self.create_offer(id, &d, &mut st).await?;
                } else {
                    self.patch_offer(id, &d, &mut st).await?;
                }
                let slots = self.price_categories(id, &d, &mut st).await?;
                self.dates(id, &d, &slots, &mut st).await?;
                self.image(id, &d, &mut st).await?;
            }
        }
        self.save(id, &st, true)?;
        Ok(Applied {
            remote_id: st.offer_id.map(|o| o.to_string()),
        })
    }

    /// Finds the offer on pass Culture by our product id and rebuilds the state from what pass Culture has.
    async fn read_back(&self, id: &str, product_id: i64, st: &mut OfferState) -> Result<(), TargetError> {
        let venue = self.settings.venue_id.unwrap_or_default();
        let what = self.what(id, "find the offer by idsAtProvider");
        let a = self
            .call(
                &what,
                reqwest::Method::GET,
                "/public/offers/v1/events",
                &[
                    ("venueId", venue.to_string()),
                    ("idsAtProvider", product_id.to_string()),
                    ("limit", "50".into()),
                ],
                None,
            )
            .await?;
        if !a.ok() {
            return Err(api::status_error(&what, &a));
        }
        let pid = product_id.to_string();
        let mut found: Vec<WireEvent> = a
            .decode::<WireEvents>(&what)?
            .events
            .into_iter()
            .filter(|e| e.id_at_provider.as_deref() == Some(pid.as_str()))
            .collect();
        found.sort_by_key(|e| e.id);
        if found.len() > 1 {
            tracing::warn!(target_name = %self.target, external_id = %id,
                offers = %found.iter().map(|e| e.id.to_string()).collect::<Vec<_>>().join(", "),
                "several pass Culture offers carry this product id; keeping the oldest");
        }
        let image = st.image.take();
        let Some(event) = found.into_iter().next() else {
            *st = OfferState::default();
            return Ok(());
        };
        *st = OfferState {
            offer_id: Some(event.id),
            status: event.status.clone(),
            status_at: Some(self.now),
            sent: OFFER_FIELDS
                .iter()
                .filter_map(|k| Some(((*k).to_owned(), event.rest.get(*k)?.clone())))
                .collect(),
            price_categories: event
                .price_categories
                .iter()
                .filter_map(|p| {
                    Some((
                        p.id_at_provider.clone()?,
                        PriceCategoryState {
                            id: p.id,
                            label: p.label.clone().unwrap_or_default(),
                            price: p.price.unwrap_or_default(),
                        },
                    ))
                })
                .collect(),
            image,
            ..OfferState::default()
        };
        let what = self.what(id, "read the dates back");
        let path = format!("/public/offers/v1/events/{}/dates", event.id);
        let mut first_index = 1u64;
        loop {
            let a = self
                .call(
                    &what,
                    reqwest::Method::GET,
                    &path,
                    &[("limit", "50".into()), ("firstIndex", first_index.to_string())],
                    None,
                )
                .await?;
            if !a.ok() {
                return Err(api::status_error(&what, &a));
            }
            let page = decode_dates(&a, &what)?;
            for d in &page {
                let Some(key) = d.id_at_provider.clone() else { continue };
                st.stocks.insert(
                    key,
                    StockState {
                        id: d.id,
                        beginning: d.beginning_datetime.with_timezone(&Utc),
                        booking_limit: d.booking_limit_datetime.with_timezone(&Utc),
                        price_category_id: d.price_category.as_ref().map_or(0, |p| p.id),
                        quantity: quantity_read(d),
                    },
                );
            }
            match page.iter().map(|d| d.id).max() {
                Some(max) if page.len() >= 50 => first_index = max + 1,
                _ => break,
            }
        }
        tracing::info!(target_name = %self.target, external_id = %id, offer_id = event.id,
            dates = st.stocks.len(), "pass Culture offer found by its product id");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
