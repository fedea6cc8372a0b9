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

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::targets::{Applied, OpKind, Operation, TargetError};

use super::api::{self, Answer, Api, WireDate, WireDates, WireEvent, WireEvents, WirePriceCategories};
use super::desired::{self, DesiredGroup, DesiredOffer, QuantitySet, euros};
use super::image;
use super::state::{ImageState, OfferState, OfferStore, PriceCategoryState, StockState};
use super::{PassCultureSettings, Quota};

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

/// A price category to create or change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChange {
    /// Our `idAtProvider`.
    pub key: String,
    /// Label wanted.
    pub label: String,
    /// Price wanted (cents).
    pub price: i64,
    /// The existing category, when it is a change.
    pub existing: Option<PriceCategoryState>,
}

/// Assigns a price category (our key) to every (group, amount), reusing existing ones: first those that
/// already have the amount, then (changing their price) those no longer needed, then new keys
/// (`<group>`, `<group>#1`, …). Returns the assignment and the categories to create or change.
pub fn assign_slots(
    groups: &BTreeMap<String, DesiredGroup>,
    existing: &BTreeMap<String, PriceCategoryState>,
) -> (BTreeMap<(String, i64), String>, Vec<SlotChange>) {
    let mut assignment = BTreeMap::new();
    let mut changes = Vec::new();
    for (g, group) in groups {
        let prefix = format!("{g}#");
        let slots: Vec<(&String, &PriceCategoryState)> = existing
            .iter()
            .filter(|(k, _)| *k == g || k.starts_with(&prefix))
            .collect();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        let mut pairs: Vec<(i64, String)> = Vec::new();
        let mut left: Vec<i64> = Vec::new();
        for &amount in &group.amounts {
            match slots
                .iter()
                .find(|(k, s)| s.price == amount && !used.contains(k.as_str()))
            {
                Some((k, _)) => {
                    used.insert(k.as_str());
                    pairs.push((amount, (*k).clone()));
                }
                None => left.push(amount),
            }
        }
        let mut fresh = 0usize;
        for amount in left {
            match slots.iter().find(|(k, _)| !used.contains(k.as_str())) {
                Some((k, _)) => {
                    used.insert(k.as_str());
                    pairs.push((amount, (*k).clone()));
                }
                None => loop {
                    let key = if fresh == 0 { g.clone() } else { format!("{g}#{fresh}") };
                    fresh += 1;
                    if !existing.contains_key(&key) && !pairs.iter().any(|(_, k)| *k == key) {
                        pairs.push((amount, key));
                        break;
                    }
                },
            }
        }
        let several = group.amounts.len() > 1;
        for (amount, key) in pairs {
            let label = if several {
                let suffix = format!(" – {}", euros(amount));
                format!(
                    "{}{suffix}",
                    desired::cut_clean(&group.label, desired::LABEL_MAX - suffix.chars().count())
                )
            } else {
                group.label.clone()
            };
            let current = existing.get(&key);
            if current.is_none_or(|c| c.label != label || c.price != amount) {
                changes.push(SlotChange {
                    key: key.clone(),
                    label,
                    price: amount,
                    existing: current.cloned(),
                });
            }
            assignment.insert((g.clone(), amount), key);
        }
    }
    (assignment, changes)
}

/// True when every field of `want` is in `have` with the same value (objects compared key by key, so what
/// pass Culture adds to an object we sent does not count as a difference).
fn covered(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| covered(v, hv))),
        _ => want == have,
    }
}

fn decode_dates(a: &Answer, what: &str) -> Result<Vec<WireDate>, TargetError> {
    if a.json().is_array() {
        a.decode::<Vec<WireDate>>(what)
    } else {
        a.decode::<WireDates>(what).map(|d| d.dates)
    }
}

fn quantity_read(d: &WireDate) -> QuantitySet {
    match (d.quantity.0, d.remaining()) {
        (None, _) => QuantitySet::Open(Quota::Unlimited),
        (_, Some(0)) => QuantitySet::Closed,
        (Some(total), _) => QuantitySet::Open(Quota::Limited(u32::try_from(total).unwrap_or(u32::MAX))),
    }
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

    async fn create_offer(&self, id: &str, d: &DesiredOffer, st: &mut OfferState) -> Result<(), TargetError> {
        let (_, slots) = assign_slots(&d.groups, &BTreeMap::new());
        let mut body = serde_json::Map::new();
        for (k, v) in &d.fields {
            if !v.is_null() {
                body.insert(k.clone(), v.clone());
            }
        }
        body.insert("hasTicket".into(), json!(false));
        body.insert("idAtProvider".into(), json!(d.product_id));
        body.insert(
            "priceCategories".into(),
            Value::Array(
                slots
                    .iter()
                    .map(|s| json!({"label": s.label, "price": s.price, "idAtProvider": s.key}))
                    .collect(),
            ),
        );
        let body = Value::Object(body);
        let what = self.what(id, "create the offer (POST /public/offers/v1/events)");
        st.unsure = true;
        self.save(id, st, true)?;
        let a = self
            .call(
                &what,
                reqwest::Method::POST,
                "/public/offers/v1/events",
                &[],
                Some(&body),
            )
            .await?;
        if !a.ok() {
            return Err(self.failed(id, st, &what, &a)?);
        }
        let event: WireEvent = a.decode(&what)?;
        st.offer_id = Some(event.id);
        st.status = event.status.clone();
        st.status_at = Some(self.now);
        st.sent = d.fields.clone();
        for pc in &event.price_categories {
            if let Some(key) = &pc.id_at_provider {
                st.price_categories.insert(
                    key.clone(),
                    PriceCategoryState {
                        id: pc.id,
                        label: pc.label.clone().unwrap_or_default(),
                        price: pc.price.unwrap_or_default(),
                    },
                );
            }
        }
        st.unsure = false;
        self.save(id, st, true)?;
        tracing::info!(target_name = %self.target, external_id = %id, offer_id = event.id,
            status = event.status.as_deref().unwrap_or("?"), "pass Culture offer created");
        Ok(())
    }

    async fn patch_offer(&self, id: &str, d: &DesiredOffer, st: &mut OfferState) -> Result<(), TargetError> {
        let mut diff = serde_json::Map::new();
        for (k, v) in &d.fields {
            let same = st.sent.get(k).is_some_and(|have| covered(v, have)) || (v.is_null() && !st.sent.contains_key(k));
            if !same {
                diff.insert(k.clone(), v.clone());
            }
        }
        if diff.is_empty() {
            return Ok(());
        }
        let offer = st.offer_id.unwrap_or_default();
        let what = self.what(id, &format!("update the offer {offer} (PATCH)"));
        let body = Value::Object(diff.clone());
        let a = self
            .call(
                &what,
                reqwest::Method::PATCH,
                &format!("/public/offers/v1/events/{offer}"),
                &[],
                Some(&body),
            )
            .await?;
        if !a.ok() {
            return Err(self.failed(id, st, &what, &a)?);
        }
        for (k, v) in diff {
            st.sent.insert(k, v);
        }
        if let Some(s) = a.json().get("status").and_then(Value::as_str) {
            st.status = Some(s.to_owned());
            st.status_at = Some(self.now);
        }
        self.save(id, st, false)
    }

    /// Creates and updates price categories; returns (group, cents) → pass Culture id.
    async fn price_categories(
        &self,
        id: &str,
        d: &DesiredOffer,
        st: &mut OfferState,
    ) -> Result<BTreeMap<(String, i64), u64>, TargetError> {
        let offer = st.offer_id.unwrap_or_default();
        let (assignment, changes) = assign_slots(&d.groups, &st.price_categories);
        let (new, changed): (Vec<SlotChange>, Vec<SlotChange>) =
            changes.into_iter().partition(|c| c.existing.is_none());
        if !new.is_empty() {
            let what = self.what(id, &format!("add price categories to offer {offer}"));
            let body = json!({"priceCategories": new.iter()
                .map(|s| json!({"label": s.label, "price": s.price, "idAtProvider": s.key}))
                .collect::<Vec<_>>()});
            st.unsure = true;
            self.save(id, st, true)?;
            let a = self
                .call(
                    &what,
                    reqwest::Method::POST,
                    &format!("/public/offers/v1/events/{offer}/price_categories"),
                    &[],
                    Some(&body),
                )
                .await?;
            if !a.ok() {
                return Err(self.failed(id, st, &what, &a)?);
            }
            let created = if a.json().is_array() {
                a.decode::<Vec<api::WirePriceCategory>>(&what)?
            } else {
                a.decode::<WirePriceCategories>(&what)?.price_categories
            };
            for pc in created {
                if let Some(key) = pc.id_at_provider {
                    st.price_categories.insert(
                        key,
                        PriceCategoryState {
                            id: pc.id,
                            label: pc.label.unwrap_or_default(),
                            price: pc.price.unwrap_or_default(),
                        },
                    );
                }
            }
            if let Some(missing) = new.iter().find(|s| !st.price_categories.contains_key(&s.key)) {
                self.save(id, st, true)?;
                return Err(TargetError::retry(format!(
                    "{what}: pass Culture did not return the category {}; it will be read back",
                    missing.key
                )));
            }
            st.unsure = false;
            self.save(id, st, true)?;
        }
        for c in changed {
            let Some(existing) = &c.existing else { continue };
            let mut body = serde_json::Map::new();
            if existing.label != c.label {
                body.insert("label".into(), json!(c.label));
            }
            if existing.price != c.price {
                body.insert("price".into(), json!(c.price));
            }
            let what = self.what(id, &format!("update price category {} of offer {offer}", existing.id));
            let a = self
                .call(
                    &what,
                    reqwest::Method::PATCH,
                    &format!("/public/offers/v1/events/{offer}/price_categories/{}", existing.id),
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            if !a.ok() {
                return Err(self.failed(id, st, &what, &a)?);
            }
            st.price_categories.insert(
                c.key.clone(),
                PriceCategoryState {
                    id: existing.id,
                    label: c.label.clone(),
                    price: c.price,
                },
            );
            self.save(id, st, false)?;
        }
        Ok(assignment
            .into_iter()
            .filter_map(|(k, key)| Some((k, st.price_categories.get(&key)?.id)))
            .collect())
    }

    /// Reads the dates `keys` (booked quantities) from pass Culture.
    async fn read_dates(
        &self,
        id: &str,
        offer: u64,
        keys: &[String],
    ) -> Result<BTreeMap<String, WireDate>, TargetError> {
        let mut out = BTreeMap::new();
        let what = self.what(id, "read dates before reopening them");
        for chunk in keys.chunks(50) {
            let a = self
                .call(
                    &what,
                    reqwest::Method::GET,
                    &format!("/public/offers/v1/events/{offer}/dates"),
                    &[("idsAtProvider", chunk.join(",")), ("limit", "50".into())],
                    None,
                )
                .await?;
            if !a.ok() {
                return Err(api::status_error(&what, &a));
            }
            for d in decode_dates(&a, &what)? {
                if let Some(k) = d.id_at_provider.clone() {
                    out.insert(k, d);
                }
            }
        }
        Ok(out)
    }

    async fn dates(
        &self,
        id: &str,
        d: &DesiredOffer,
        slots: &BTreeMap<(String, i64), u64>,
        st: &mut OfferState,
    ) -> Result<(), TargetError> {
        let offer = st.offer_id.unwrap_or_default();
        let mut creates: Vec<(String, Value, QuantitySet)> = Vec::new();
        // (key, body, quantity wanted, reopen needs the booked count)
        let mut patches: Vec<(String, serde_json::Map<String, Value>, QuantitySet, bool)> = Vec::new();
        for (key, ds) in &d.stocks {
            let Some(&pc) = slots.get(&(ds.group.clone(), ds.cents)) else {
                continue;
            };
            match st.stocks.get(key) {
                None => {
                    if ds.booking_limit <= self.now {
                        continue;
                    }
                    let quantity = match ds.quantity {
                        QuantitySet::Open(q) => q.to_json(),
                        QuantitySet::Closed => json!(0),
                    };
                    creates.push((
                        key.clone(),
                        json!({
                            "beginningDatetime": desired::utc(ds.beginning),
                            "bookingLimitDatetime": desired::utc(ds.booking_limit),
                            "priceCategoryId": pc,
                            "quantity": quantity,
                            "idAtProvider": key,
                        }),
                        ds.quantity,
                    ));
                }
                Some(s) if s.beginning <= self.now => {}
                Some(s) => {
                    let mut body = serde_json::Map::new();
                    if ds.beginning != s.beginning {
                        body.insert("beginningDatetime".into(), json!(desired::utc(ds.beginning)));
                    }
                    if ds.booking_limit != s.booking_limit && ds.booking_limit > self.now {
                        body.insert("bookingLimitDatetime".into(), json!(desired::utc(ds.booking_limit)));
                    }
                    if pc != s.price_category_id {
                        body.insert("priceCategoryId".into(), json!(pc));
                    }
                    let mut reopen = false;
                    if ds.quantity != s.quantity {
                        match ds.quantity {
                            QuantitySet::Closed => {
                                body.insert("quantity".into(), json!(0));
                            }
                            QuantitySet::Open(Quota::Unlimited) => {
                                body.insert("quantity".into(), json!("unlimited"));
                            }
                            QuantitySet::Open(Quota::Limited(_)) => reopen = true,
                        }
                    }
                    if !body.is_empty() || reopen {
                        patches.push((key.clone(), body, ds.quantity, reopen));
                    }
                }
            }
        }
        // Dates that are no longer wanted (cancelled, removed from SecuTix, tariff dropped): closed.
        for (key, s) in &st.stocks {
            if !d.stocks.contains_key(key) && s.beginning > self.now && s.quantity != QuantitySet::Closed {
                let mut body = serde_json::Map::new();
                body.insert("quantity".into(), json!(0));
                patches.push((key.clone(), body, QuantitySet::Closed, false));
            }
        }
        self.create_dates(id, offer, creates, st).await?;
        self.patch_dates(id, offer, patches, st).await
    }

    async fn create_dates(
        &self,
        id: &str,
        offer: u64,
        creates: Vec<(String, Value, QuantitySet)>,
        st: &mut OfferState,
    ) -> Result<(), TargetError> {
        for chunk in creates.chunks(DATES_PER_POST) {
            let what = self.what(id, &format!("add {} date(s) to offer {offer}", chunk.len()));
            let body = json!({"dates": chunk.iter().map(|(_, b, _)| b.clone()).collect::<Vec<_>>()});
            st.unsure = true;
            self.save(id, st, true)?;
            let a = self
                .call(
                    &what,
                    reqwest::Method::POST,
                    &format!("/public/offers/v1/events/{offer}/dates"),
                    &[],
                    Some(&body),
                )
                .await?;
            if !a.ok() {
                return Err(self.failed(id, st, &what, &a)?);
            }
            let created: BTreeMap<String, WireDate> = decode_dates(&a, &what)?
                .into_iter()
                .filter_map(|d| Some((d.id_at_provider.clone()?, d)))
                .collect();
            for (key, _, quantity) in chunk {
                let Some(w) = created.get(key) else {
                    self.save(id, st, true)?;
                    return Err(TargetError::retry(format!(
                        "{what}: pass Culture did not return the date {key}; the dates will be read back"
                    )));
                };
                st.stocks.insert(
                    key.clone(),
                    StockState {
                        id: w.id,
                        beginning: w.beginning_datetime.with_timezone(&Utc),
                        booking_limit: w.booking_limit_datetime.with_timezone(&Utc),
                        price_category_id: w.price_category.as_ref().map_or(0, |p| p.id),
                        quantity: *quantity,
                    },
                );
            }
            st.unsure = false;
            self.save(id, st, true)?;
        }
        Ok(())
    }

    async fn patch_dates(
        &self,
        id: &str,
        offer: u64,
        patches: Vec<(String, serde_json::Map<String, Value>, QuantitySet, bool)>,
        st: &mut OfferState,
    ) -> Result<(), TargetError> {
        let reopen: Vec<String> = patches.iter().filter(|p| p.3).map(|p| p.0.clone()).collect();
        let read = if reopen.is_empty() {
            BTreeMap::new()
        } else {
            self.read_dates(id, offer, &reopen).await?
        };
        for (key, mut body, quantity, needs_booked) in patches {
            let Some(stock) = st.stocks.get(&key).cloned() else {
                continue;
            };
            if needs_booked && let QuantitySet::Open(Quota::Limited(quota)) = quantity {
                let Some(w) = read.get(&key) else {
                    st.unsure = true;
                    self.save(id, st, true)?;
                    return Err(TargetError::retry(format!(
                        "{}: pass Culture no longer lists the date {key}; it will be read back",
                        self.what(id, "reopen a date")
                    )));
                };
                // Written quantity = remaining: the quota minus what young people already booked.
                let remaining = (i64::from(quota) - w.booked_quantity).max(0);
                if w.remaining() != Some(remaining) {
                    body.insert("quantity".into(), json!(remaining));
                }
            }
            if !body.is_empty() {
                let moved = body.contains_key("beginningDatetime");
                let what = self.what(id, &format!("update date {} of offer {offer}", stock.id));
                if moved {
                    st.unsure = true;
                    self.save(id, st, true)?;
                }
                let a = self
                    .call(
                        &what,
                        reqwest::Method::PATCH,
                        &format!("/public/offers/v1/events/{offer}/dates/{}", stock.id),
                        &[],
                        Some(&Value::Object(body.clone())),
                    )
                    .await?;
                if !a.ok() {
                    return Err(self.failed(id, st, &what, &a)?);
                }
                if moved {
                    tracing::info!(target_name = %self.target, external_id = %id, stock_id = stock.id,
                        "pass Culture date moved: pass Culture notifies its bookers");
                }
            }
            let parse = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            let updated = StockState {
                id: stock.id,
                beginning: parse("beginningDatetime").unwrap_or(stock.beginning),
                booking_limit: parse("bookingLimitDatetime").unwrap_or(stock.booking_limit),
                price_category_id: body
                    .get("priceCategoryId")
                    .and_then(Value::as_u64)
                    .unwrap_or(stock.price_category_id),
                quantity,
            };
            st.stocks.insert(key, updated);
            st.unsure = false;
            self.save(id, st, false)?;
        }
        Ok(())
    }

    /// Every future open date to 0: the product left SecuTix or the selection. Bookings stay.
    async fn withdraw(&self, id: &str, st: &mut OfferState) -> Result<(), TargetError> {
        let offer = st.offer_id.unwrap_or_default();
        let patches: Vec<_> = st
            .stocks
            .iter()
            .filter(|(_, s)| s.beginning > self.now && s.quantity != QuantitySet::Closed)
            .map(|(k, _)| {
                let mut body = serde_json::Map::new();
                body.insert("quantity".into(), json!(0));
                (k.clone(), body, QuantitySet::Closed, false)
            })
            .collect();
        if !patches.is_empty() {
            tracing::info!(target_name = %self.target, external_id = %id, dates = patches.len(),
                "withdrawing the pass Culture offer: future dates set to 0, bookings kept");
        }
        self.patch_dates(id, offer, patches, st).await
    }

    async fn image(&self, id: &str, d: &DesiredOffer, st: &mut OfferState) -> Result<(), TargetError> {
        let Some(url) = &d.image_url else { return Ok(()) };
        if st.image.as_ref().is_some_and(|i| &i.url == url) {
            return Ok(());
        }
        let refuse = |st: &mut OfferState, reason: String| {
            tracing::warn!(target_name = %self.target, external_id = %id, reason = %reason,
                "image not published on pass Culture");
            st.image = Some(ImageState {
                url: url.clone(),
                refused: Some(reason),
            });
        };
        let bytes = match self.api.fetch(url).await {
            Ok(a) if a.ok() => a.body,
            Ok(a) => {
                tracing::warn!(target_name = %self.target, external_id = %id, status = a.status,
                    "cannot download the image; will try again with the next change");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(target_name = %self.target, external_id = %id, error = %e,
                    "cannot download the image; will try again with the next change");
                return Ok(());
            }
        };
        match image::dimensions(&bytes) {
            None => {
                refuse(st, "the image is neither PNG nor JPEG".into());
                return self.save(id, st, false);
            }
            Some((_, w, h)) => {
                if let Err(reason) = image::check(w, h) {
                    refuse(st, reason);
                    return self.save(id, st, false);
                }
            }
        }
        let offer = st.offer_id.unwrap_or_default();
        let what = self.what(id, &format!("publish the image of offer {offer}"));
        let mut img = serde_json::Map::new();
        img.insert(
            "file".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        );
        if let Some(c) = self.settings.image_credit.as_ref().filter(|c| !c.is_empty()) {
            img.insert("credit".into(), json!(c));
        }
        let a = self
            .call(
                &what,
                reqwest::Method::PATCH,
                &format!("/public/offers/v1/events/{offer}"),
                &[],
                Some(&json!({"image": img})),
            )
            .await?;
        if a.ok() {
            st.image = Some(ImageState {
                url: url.clone(),
                refused: None,
            });
        } else if matches!(a.status, 400 | 422) {
            refuse(
                st,
                format!("pass Culture refused it: {}", api::describe_errors(&a.body)),
            );
        } else {
            return Err(self.failed(id, st, &what, &a)?);
        }
        self.save(id, st, false)
    }
}

#[cfg(test)]
mod tests;
