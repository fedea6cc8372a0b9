//! Dates (stocks): each performance's slot, read back, created, patched or set to quantity 0.

#[allow(unused_imports)]
use super::*;

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
pub(super) fn covered(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| covered(v, hv))),
        _ => want == have,
    }
}

pub(super) fn decode_dates(a: &Answer, what: &str) -> Result<Vec<WireDate>, TargetError> {
    if a.json().is_array() {
        a.decode::<Vec<WireDate>>(what)
    } else {
        a.decode::<WireDates>(what).map(|d| d.dates)
    }
}

pub(super) fn quantity_read(d: &WireDate) -> QuantitySet {
    match (d.quantity.0, d.remaining()) {
        (None, _) => QuantitySet::Open(Quota::Unlimited),
        (_, Some(0)) => QuantitySet::Closed,
        (Some(total), _) => QuantitySet::Open(Quota::Limited(u32::try_from(total).unwrap_or(u32::MAX))),
    }
}

impl Sync<'_> {
    /// Reads the dates `keys` (booked quantities) from pass Culture.
    pub(super) async fn read_dates(
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

    pub(super) async fn dates(
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

    pub(super) async fn create_dates(
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

    pub(super) async fn patch_dates(
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
}
