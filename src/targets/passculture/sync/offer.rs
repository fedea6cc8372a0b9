//! The offer itself: created, patched, withdrawn, and its image.

#[allow(unused_imports)]
use super::*;

impl Sync<'_> {
    pub(super) async fn create_offer(
        &self,
        id: &str,
        d: &DesiredOffer,
        st: &mut OfferState,
    ) -> Result<(), TargetError> {
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

    pub(super) async fn patch_offer(&self, id: &str, d: &DesiredOffer, st: &mut OfferState) -> Result<(), TargetError> {
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

    /// Every future open date to 0: the product left SecuTix or the selection. Bookings stay.
    pub(super) async fn withdraw(&self, id: &str, st: &mut OfferState) -> Result<(), TargetError> {
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

    pub(super) async fn image(&self, id: &str, d: &DesiredOffer, st: &mut OfferState) -> Result<(), TargetError> {
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
