//! Price categories: one per SecuTix tariff and amount, created or updated before the dates that use them.

#[allow(unused_imports)]
use super::*;

impl Sync<'_> {
    /// Creates and updates price categories; returns (group, cents) → pass Culture id.
    pub(super) async fn price_categories(
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
}
