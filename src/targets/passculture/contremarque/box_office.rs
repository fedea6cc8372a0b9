//! The box office: looks a booking up, validates it, undoes that, cancels it, through pass Culture's API.

#[allow(unused_imports)]
use super::*;

impl BoxOffice {
    /// A box office for the target `name` configured with `settings`.
    pub fn new(name: &str, settings: &PassCultureSettings) -> Result<Self, TargetError> {
        Ok(Self {
            api: Api::new(name, settings)?,
        })
    }

    pub(super) async fn patch(&self, action: Action, token: &str) -> Result<Done, ContremarqueError> {
        let token = normalise_token(token)?;
        let path = format!("/public/bookings/v1/{}/token/{token}", action.as_str());
        let a = self.send(reqwest::Method::PATCH, &path).await?;
        if a.ok() {
            tracing::info!(action = action.as_str(), "pass Culture contremarque done");
            return Ok(Done { action, token });
        }
        let e = classify(action, a.status, a.retry_after, &a.body);
        tracing::info!(
            action = action.as_str(),
            status = a.status,
            outcome = e.code(),
            "pass Culture contremarque refused"
        );
        Err(e)
    }

    pub(super) async fn send(&self, method: reqwest::Method, path: &str) -> Result<Answer, ContremarqueError> {
        let a = self
            .api
            .call(method, path, &[], None)
            .await
            .map_err(|e| ContremarqueError::Unavailable { detail: e.message })?;
        if let Some(to) = a.location.as_deref().filter(|_| (300..400).contains(&a.status)) {
            // Not followed: the request carries the API key.
            return Err(ContremarqueError::Unavailable {
                detail: format!(
                    "HTTP {} redirecting to {to}, not followed (it would carry the API key elsewhere); check \
                     targets.passculture.environment and base_url",
                    a.status
                ),
            });
        }
        Ok(a)
    }

    /// Looks the booking up (`GET /public/bookings/v1/token/{token}`), with the date read from the offer.
    pub async fn booking(&self, token: &str) -> Result<Booking, ContremarqueError> {
        let token = normalise_token(token)?;
        let a = self
            .send(reqwest::Method::GET, &format!("/public/bookings/v1/token/{token}"))
            .await?;
        if !a.ok() {
            return Err(classify(Action::Booking, a.status, a.retry_after, &a.body));
        }
        let w: WireBooking = serde_json::from_slice(&a.body).map_err(|e| ContremarqueError::Refused {
            status: a.status,
            detail: format!("unreadable answer: {e}"),
        })?;
        tracing::info!(booking_id = w.id, status = %w.status.describe(Lang::En), "pass Culture booking looked up");
        let date = self.date_of(w.offer_id, w.stock_id).await;
        Ok(Booking {
            id: w.id,
            status: w.status,
            offer_id: w.offer_id,
            offer_name: w.offer_name,
            stock_id: w.stock_id,
            date,
            tariff: w.price_category_label,
            price_cents: w.price,
            quantity: w.quantity,
            first_name: w.user_first_name,
            last_name: w.user_last_name,
            venue_name: w.venue_name,
            cancellable_until: w.confirmation_date,
        })
    }

    /// The start of a date: the booking does not carry it, the offer's dates do (cursor at the stock id).
    pub(super) async fn date_of(&self, offer_id: u64, stock_id: u64) -> Option<DateTime<Utc>> {
        let a = self
            .api
            .call(
                reqwest::Method::GET,
                &format!("/public/offers/v1/events/{offer_id}/dates"),
                &[("firstIndex", stock_id.to_string()), ("limit", "1".into())],
                None,
            )
            .await
            .ok()
            .filter(Answer::ok)?;
        let dates: Vec<WireDate> = serde_json::from_slice::<WireDates>(&a.body).ok()?.dates;
        dates
            .into_iter()
            .find(|d| d.id == stock_id)
            .map(|d| d.beginning_datetime.with_timezone(&Utc))
    }

    /// Marks the booking used (`PATCH /public/bookings/v1/use/token/{token}`).
    pub async fn use_(&self, token: &str) -> Result<Done, ContremarqueError> {
        self.patch(Action::Use, token).await
    }

    /// Undoes a use (`PATCH /public/bookings/v1/keep/token/{token}`).
    pub async fn keep(&self, token: &str) -> Result<Done, ContremarqueError> {
        self.patch(Action::Keep, token).await
    }

    /// Cancels the booking (`PATCH /public/bookings/v1/cancel/token/{token}`).
    pub async fn cancel(&self, token: &str) -> Result<Done, ContremarqueError> {
        self.patch(Action::Cancel, token).await
    }

    /// Runs `action` on `token`: what the CLI and the control API call.
    pub async fn run(&self, action: Action, token: &str) -> Result<Outcome, ContremarqueError> {
        match action {
            Action::Booking => self.booking(token).await.map(Outcome::Found),
            Action::Use => self.use_(token).await.map(Outcome::Done),
            Action::Keep => self.keep(token).await.map(Outcome::Done),
            Action::Cancel => self.cancel(token).await.map(Outcome::Done),
        }
    }
}
