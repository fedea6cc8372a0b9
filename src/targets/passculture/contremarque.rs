//! Contremarques (booking tokens) for the box office: look a booking up, mark it used at the door, undo
//! that, or cancel it, through `/public/bookings/v1/…` with the provider's API key.
//!
//! Every documented answer maps to a typed outcome ([`ContremarqueError`]) with a plain-language message in
//! French and English and a distinct exit code ([`exit_code`]) that scripts can test. The functions take a
//! token and return values, so the CLI (`secutix-sync passculture …`) and the control API's box-office
//! endpoints (`/passculture/bookings/…`) share them, and [`outcome_json`] gives both one JSON shape.
//!
//! Personal data (names, e-mails, phone numbers, birth dates) is never logged: [`Booking`]'s `Debug` hides
//! the name, logs carry only the booking id and the outcome, and e-mail, phone and birth date are not even
//! kept from pass Culture's answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PassCultureSettings;
use super::api::{Answer, Api, WireDate, WireDates};
use crate::targets::TargetError;

/// Exit codes of `secutix-sync passculture …`, for scripts.
pub mod exit_code {
    /// Done (or booking found and shown).
    pub const OK: u8 = 0;
    /// Another error (unexpected answer, store, runtime).
    pub const ERROR: u8 = 1;
    /// The configuration is invalid or has no passculture target.
    pub const CONFIG: u8 = 2;
    /// No such contremarque (or it belongs to another provider's venue).
    pub const NOT_FOUND: u8 = 3;
    /// Already used (validated).
    pub const ALREADY_USED: u8 = 4;
    /// The booking was cancelled.
    pub const CANCELLED: u8 = 5;
    /// The booking was reimbursed: it cannot change any more.
    pub const REIMBURSED: u8 = 6;
    /// Too early to validate: the young person can still cancel.
    pub const TOO_EARLY: u8 = 7;
    /// `keep` on a booking that was not used.
    pub const NOT_USED: u8 = 8;
    /// Too late to cancel (less than 48 h before the event).
    pub const TOO_LATE: u8 = 9;
    /// Refused for another documented reason (validation codes, failed cancellation, other 4xx).
    pub const REFUSED: u8 = 10;
    /// The API key was refused.
    pub const AUTH: u8 = 11;
    /// pass Culture unreachable, overloaded or rate-limiting: try again.
    pub const UNAVAILABLE: u8 = 12;
    /// The token is not a contremarque code.
    pub const INVALID_TOKEN: u8 = 13;
}

/// Language of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Français.
    #[default]
    Fr,
    /// English.
    En,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => Err(format!("{other:?} is not a language: fr or en")),
        }
    }
}

/// What the box office does with a contremarque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Look the booking up.
    Booking,
    /// Mark it used (the young person came).
    Use,
    /// Undo a use (marked used by mistake).
    Keep,
    /// Cancel the booking.
    Cancel,
}

impl Action {
    /// `booking`, `use`, `keep`, `cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Booking => "booking",
            Action::Use => "use",
            Action::Keep => "keep",
            Action::Cancel => "cancel",
        }
    }
}

/// A booking's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    /// Booked, not yet used.
    #[serde(rename = "CONFIRMED")]
    Confirmed,
    /// Validated at the venue.
    #[serde(rename = "USED")]
    Used,
    /// Cancelled.
    #[serde(rename = "CANCELLED")]
    Cancelled,
    /// Reimbursed to the venue.
    #[serde(rename = "REIMBURSED")]
    Reimbursed,
    /// A value this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl BookingStatus {
    /// In plain words.
    pub fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (BookingStatus::Confirmed, Lang::Fr) => "confirmée, à valider à l'entrée".into(),
            (BookingStatus::Confirmed, Lang::En) => "confirmed, to validate at the door".into(),
            (BookingStatus::Used, Lang::Fr) => "déjà validée".into(),
            (BookingStatus::Used, Lang::En) => "already used".into(),
            (BookingStatus::Cancelled, Lang::Fr) => "annulée".into(),
            (BookingStatus::Cancelled, Lang::En) => "cancelled".into(),
            (BookingStatus::Reimbursed, Lang::Fr) => "remboursée".into(),
            (BookingStatus::Reimbursed, Lang::En) => "reimbursed".into(),
            (BookingStatus::Other(s), _) => s.clone(),
        }
    }
}

/// A booking, as the box office needs it. E-mail, phone and birth date are deliberately not kept.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    /// pass Culture booking id.
    pub id: u64,
    /// Status.
    pub status: BookingStatus,
    /// Offer id.
    pub offer_id: u64,
    /// Offer name.
    pub offer_name: String,
    /// Date (stock) id.
    pub stock_id: u64,
    /// Start of the date, when pass Culture could tell (read from the offer's dates).
    pub date: Option<DateTime<Utc>>,
    /// Tariff (price category label).
    pub tariff: Option<String>,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Places (2 for a duo).
    pub quantity: i64,
    /// First name of the young person.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Venue name.
    pub venue_name: String,
    /// Until when the young person may cancel (pass Culture's `confirmationDate`).
    pub cancellable_until: Option<String>,
}

impl std::fmt::Debug for Booking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No personal data in logs.
        f.debug_struct("Booking")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("offer_id", &self.offer_id)
            .field("stock_id", &self.stock_id)
            .field("quantity", &self.quantity)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBooking {
    id: u64,
    status: BookingStatus,
    offer_id: u64,
    offer_name: String,
    stock_id: u64,
    #[serde(default)]
    price_category_label: Option<String>,
    price: i64,
    quantity: i64,
    #[serde(default)]
    user_first_name: Option<String>,
    #[serde(default)]
    user_last_name: Option<String>,
    #[serde(default)]
    venue_name: String,
    #[serde(default)]
    confirmation_date: Option<String>,
}

impl Booking {
    /// The booking as the CLI prints it.
    pub fn render(&self, token: &str, lang: Lang, tz: chrono_tz::Tz) -> String {
        let (l_status, l_offer, l_date, l_tariff, l_qty, l_name, l_until) = match lang {
            Lang::Fr => (
                "statut",
                "offre",
                "date",
                "tarif",
                "quantité",
                "nom",
                "annulable jusqu'au",
            ),
            Lang::En => (
                "status",
                "offer",
                "date",
                "tariff",
                "quantity",
                "name",
                "cancellable until",
            ),
        };
        let date = self.date.map_or("?".into(), |d| {
            d.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string()
        });
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let duo = match (self.quantity, lang) {
            (2, Lang::Fr) => " (duo)",
            (2, Lang::En) => " (duo)",
            _ => "",
        };
        let mut out = format!(
            "{token}\n  {l_status:<10}: {}\n  {l_offer:<10}: {} (#{})\n  {l_date:<10}: {date}\n  {l_tariff:<10}: {} — {}\n  \
             {l_qty:<10}: {}{duo}\n  {l_name:<10}: {}",
            self.status.describe(lang),
            self.offer_name,
            self.offer_id,
            self.tariff.as_deref().unwrap_or("?"),
            super::desired::euros(self.price_cents),
            self.quantity,
            if name.is_empty() { "?" } else { &name },
        );
        if let Some(u) = &self.cancellable_until {
            out.push_str(&format!("\n  {l_until}: {u}"));
        }
        out
    }
}

/// Why a contremarque call did not succeed. `Display` is the English message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ContremarqueError {
    /// The token is not a contremarque code.
    #[error("this is not a countermark code: letters and digits only (usually 6)")]
    InvalidToken,
    /// 404.
    #[error("countermark not found: check the code; it may belong to another venue")]
    NotFound,
    /// 410, validated.
    #[error("already used: this countermark was validated before (or automatically 48 h after the event)")]
    AlreadyUsed,
    /// 410, cancelled.
    #[error("booking cancelled: this countermark gives no entry")]
    Cancelled,
    /// 403 `payment`.
    #[error("booking already reimbursed by pass Culture: it cannot be changed any more")]
    Reimbursed,
    /// 403 `booking`, not confirmed: the young person can still cancel.
    #[error("too early to validate: the young person can still cancel this booking ({detail})")]
    TooEarly {
        /// pass Culture's message.
        detail: String,
    },
    /// `keep` on an unused booking.
    #[error("this countermark was not validated: there is nothing to undo")]
    NotUsed,
    /// `keep` on a booking with validation codes.
    #[error("this booking has validation codes (tickets) and cannot be set back to unused")]
    HasValidationCodes,
    /// `cancel` too late.
    #[error("too late to cancel: a venue can cancel until 48 h before the event")]
    TooLate,
    /// `cancel` failed (400).
    #[error("pass Culture could not cancel the booking ({detail}); try again or contact pass Culture's support")]
    CancelFailed {
        /// pass Culture's message.
        detail: String,
    },
    /// Another refusal.
    #[error("pass Culture refused (HTTP {status}: {detail})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// pass Culture's message.
        detail: String,
    },
    /// 401 / 403 on the key.
    #[error(
        "pass Culture refused the API key (HTTP {status}: {detail}); check targets.passculture.api_key_file and the environment"
    )]
    AuthRefused {
        /// HTTP status.
        status: u16,
        /// pass Culture's message.
        detail: String,
    },
    /// 429.
    #[error("too many requests to pass Culture: try again in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Transport error, 5xx.
    #[error("pass Culture does not answer ({detail}): try again in a moment")]
    Unavailable {
        /// What happened.
        detail: String,
    },
}

impl ContremarqueError {
    /// The outcome code of the JSON documents (`--json`, the control API): the variant in snake case.
    pub fn code(&self) -> &'static str {
        use ContremarqueError::*;
        match self {
            InvalidToken => "invalid_token",
            NotFound => "not_found",
            AlreadyUsed => "already_used",
            Cancelled => "cancelled",
            Reimbursed => "reimbursed",
            TooEarly { .. } => "too_early",
            NotUsed => "not_used",
            HasValidationCodes => "has_validation_codes",
            TooLate => "too_late",
            CancelFailed { .. } => "cancel_failed",
            Refused { .. } => "refused",
            AuthRefused { .. } => "auth_refused",
            RateLimited { .. } => "rate_limited",
            Unavailable { .. } => "unavailable",
        }
    }

    /// pass Culture's own words, when it gave some.
    pub fn detail(&self) -> Option<&str> {
        use ContremarqueError::*;
        match self {
            TooEarly { detail } | CancelFailed { detail } | Refused { detail, .. } | AuthRefused { detail, .. } => {
                Some(detail)
            }
            Unavailable { detail } => Some(detail),
            _ => None,
        }
    }

    /// The exit code of the CLI.
    pub fn exit_code(&self) -> u8 {
        use ContremarqueError::*;
        match self {
            InvalidToken => exit_code::INVALID_TOKEN,
            NotFound => exit_code::NOT_FOUND,
            AlreadyUsed => exit_code::ALREADY_USED,
            Cancelled => exit_code::CANCELLED,
            Reimbursed => exit_code::REIMBURSED,
            TooEarly { .. } => exit_code::TOO_EARLY,
            NotUsed => exit_code::NOT_USED,
            TooLate => exit_code::TOO_LATE,
            HasValidationCodes | CancelFailed { .. } | Refused { .. } => exit_code::REFUSED,
            AuthRefused { .. } => exit_code::AUTH,
            RateLimited { .. } | Unavailable { .. } => exit_code::UNAVAILABLE,
        }
    }

    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        use ContremarqueError::*;
        if lang == Lang::En {
            return self.to_string();
        }
        match self {
            InvalidToken => {
                "Ce n'est pas un code de contremarque : lettres et chiffres uniquement (6 en général).".into()
            }
            NotFound => "Contremarque introuvable : vérifiez le code ; elle concerne peut-être un autre lieu.".into(),
            AlreadyUsed => "Déjà utilisée : cette contremarque a déjà été validée (ou automatiquement 48 h après \
                            l'événement)."
                .into(),
            Cancelled => "Réservation annulée : cette contremarque ne donne pas accès à l'événement.".into(),
            Reimbursed => "Réservation déjà remboursée par pass Culture : elle ne peut plus être modifiée.".into(),
            TooEarly { detail } => {
                format!("Trop tôt pour valider : le jeune peut encore annuler cette réservation ({detail}).")
            }
            NotUsed => "Cette contremarque n'a pas été validée : il n'y a rien à annuler.".into(),
            HasValidationCodes => "Cette réservation a des codes de validation (billets) : elle ne peut pas revenir \
                                   à « non utilisée »."
                .into(),
            TooLate => "Trop tard pour annuler : un lieu peut annuler jusqu'à 48 h avant l'événement.".into(),
            CancelFailed { detail } => format!(
                "pass Culture n'a pas pu annuler la réservation ({detail}) : réessayez ou contactez le support \
                 pass Culture."
            ),
            Refused { status, detail } => format!("pass Culture refuse (HTTP {status} : {detail})."),
            AuthRefused { status, detail } => format!(
                "pass Culture refuse la clé d'API (HTTP {status} : {detail}) : vérifiez \
                 targets.passculture.api_key_file et l'environnement (intégration ou production)."
            ),
            RateLimited { retry_after_secs } => {
                format!("Trop de requêtes vers pass Culture : réessayez dans {retry_after_secs} s.")
            }
            Unavailable { detail } => format!("pass Culture ne répond pas ({detail}) : réessayez dans un instant."),
        }
    }
}

/// A successful `use`, `keep` or `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// What was done.
    pub action: Action,
    /// The token (upper-cased).
    pub token: String,
}

impl Done {
    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        let t = &self.token;
        match (self.action, lang) {
            (Action::Use, Lang::Fr) => format!("Contremarque {t} validée : l'entrée est enregistrée."),
            (Action::Use, Lang::En) => format!("Countermark {t} validated: the entry is recorded."),
            (Action::Keep, Lang::Fr) => {
                format!("Validation de {t} annulée : la contremarque est de nouveau à utiliser.")
            }
            (Action::Keep, Lang::En) => format!("Validation of {t} undone: the countermark can be used again."),
            (Action::Cancel, Lang::Fr) => {
                format!("Réservation {t} annulée : la place est libérée et le jeune est recrédité.")
            }
            (Action::Cancel, Lang::En) => {
                format!("Booking {t} cancelled: the place is released and the young person's credit restored.")
            }
            (Action::Booking, Lang::Fr) => format!("Contremarque {t} trouvée."),
            (Action::Booking, Lang::En) => format!("Countermark {t} found."),
        }
    }
}

/// What a box-office operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `booking`: the booking.
    Found(Booking),
    /// `use`, `keep`, `cancel`: done.
    Done(Done),
}

/// The outcome of a box-office operation as one JSON object, the same for `secutix-sync passculture … --json`
/// and the control API (`/passculture/bookings/…`), so a box-office page and a script read one shape:
///
/// `{"ok", "action", "token", "outcome", "exit_code", "message", "lang", "booking", "detail", "retry_after_secs"}`
///
/// `outcome` is `found` (a booking looked up), `done` (used, kept or cancelled), or the refusal's code
/// ([`ContremarqueError::code`]); `exit_code` is the CLI's ([`exit_code`]); `message` is the plain-language
/// message in `lang`; `booking` (for `found`) has the booking's fields plus `date_local` (in `tz`) and
/// `status_text`; `detail` is pass Culture's own message when it gave one.
pub fn outcome_json(
    action: Action,
    token: &str,
    result: &Result<Outcome, ContremarqueError>,
    lang: Lang,
    tz: chrono_tz::Tz,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let token = normalise_token(token).unwrap_or_else(|_| token.trim().chars().take(32).collect());
    let mut v = json!({
        "ok": result.is_ok(),
        "action": action,
        "token": token,
        "lang": lang,
        "booking": Value::Null,
        "detail": Value::Null,
        "retry_after_secs": Value::Null,
    });
    match result {
        Ok(Outcome::Found(b)) => {
            let mut booking = serde_json::to_value(b).unwrap_or(Value::Null);
            booking["date_local"] = json!(b.date.map(|d| d.with_timezone(&tz).to_rfc3339()));
            booking["status_text"] = json!(b.status.describe(lang));
            v["outcome"] = json!("found");
            v["exit_code"] = json!(exit_code::OK);
            v["message"] = json!(
                Done {
                    action: Action::Booking,
                    token: token.clone()
                }
                .message(lang)
            );
            v["booking"] = booking;
        }
        Ok(Outcome::Done(d)) => {
            v["outcome"] = json!("done");
            v["exit_code"] = json!(exit_code::OK);
            v["message"] = json!(d.message(lang));
        }
        Err(e) => {
            v["outcome"] = json!(e.code());
            v["exit_code"] = json!(e.exit_code());
            v["message"] = json!(e.message(lang));
            v["detail"] = json!(e.detail());
            if let ContremarqueError::RateLimited { retry_after_secs } = e {
                v["retry_after_secs"] = json!(retry_after_secs);
            }
        }
    }
    v
}

/// The `passculture` target the box office uses: `name`, or the only one.
pub fn choose_target<'a>(
    targets: &'a [crate::targets::registry::TargetConfig],
    name: Option<&str>,
) -> Result<(&'a crate::targets::registry::TargetConfig, &'a PassCultureSettings), String> {
    let candidates: Vec<&crate::targets::registry::TargetConfig> =
        targets.iter().filter(|t| t.passculture().is_some()).collect();
    let names = || {
        candidates
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match name {
        Some(name) => match candidates.iter().find(|t| t.name == name) {
            Some(t) => *t,
            None => {
                return Err(format!(
                    "no passculture target named {name:?} in the configuration (passculture targets: {})",
                    if candidates.is_empty() {
                        "none".to_owned()
                    } else {
                        names()
                    }
                ));
            }
        },
        None => match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    "the configuration has no [[targets]] with kind = \"passculture\"; see docs/passculture.md".into(),
                );
            }
            _ => {
                return Err(format!(
                    "several passculture targets ({}): choose one with --target",
                    names()
                ));
            }
        },
    };
    match target.passculture() {
        Some(settings) => Ok((target, settings)),
        None => Err(format!("target {} has no [targets.passculture] table", target.name)),
    }
}

/// Checks and normalises a token (pass Culture upper-cases it too).
pub fn normalise_token(token: &str) -> Result<String, ContremarqueError> {
    let t = token.trim();
    if t.is_empty() || t.len() > 32 || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ContremarqueError::InvalidToken);
    }
    Ok(t.to_ascii_uppercase())
}

/// The first `(key, message)` of a pass Culture error body (`{"booking": "…"}`, `{"global": ["…"]}`).
fn first_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some((k, m)) = v.as_object().and_then(|o| o.iter().next()) {
        let text = match m {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        return (k.clone(), text);
    }
    (String::new(), crate::http::snippet(body))
}

/// Maps a non-2xx answer of `action` to its outcome (every status and body of pass Culture's documentation,
/// English and the older French wordings).
pub fn classify(action: Action, status: u16, retry_after: Option<Duration>, body: &[u8]) -> ContremarqueError {
    use ContremarqueError::*;
    let (key, detail) = first_error(body);
    let t = detail.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    match status {
        404 => NotFound,
        410 if has(&["cancel", "annul"]) => Cancelled,
        410 => AlreadyUsed,
        403 if key == "payment" || has(&["reimburs", "rembours"]) => Reimbursed,
        403 if has(&["not been used", "pas été utilisée", "pas été validée"]) => NotUsed,
        403 if has(&["validation code"]) => HasValidationCodes,
        403 if has(&[
            "cannot be cancelled",
            "cannot be canceled",
            "plus être annulée",
            "impossible d'annuler",
        ]) =>
        {
            TooLate
        }
        403 if key == "booking" => TooEarly { detail },
        401 | 403 => AuthRefused { status, detail },
        400 if action == Action::Cancel => CancelFailed { detail },
        429 => RateLimited {
            retry_after_secs: retry_after.unwrap_or(super::api::DEFAULT_RATE_LIMIT_WAIT).as_secs(),
        },
        408 | 500.. => Unavailable {
            detail: format!("HTTP {status}"),
        },
        _ => Refused { status, detail },
    }
}

/// The box office: contremarque calls with one API key.
#[derive(Debug, Clone)]
pub struct BoxOffice {
    api: Api,
}

impl BoxOffice {
    /// A box office for the target `name` configured with `settings`.
    pub fn new(name: &str, settings: &PassCultureSettings) -> Result<Self, TargetError> {
        Ok(Self {
            api: Api::new(name, settings)?,
        })
    }

    async fn patch(&self, action: Action, token: &str) -> Result<Done, ContremarqueError> {
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

    async fn send(&self, method: reqwest::Method, path: &str) -> Result<Answer, ContremarqueError> {
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
    async fn date_of(&self, offer_id: u64, stock_id: u64) -> Option<DateTime<Utc>> {
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

#[cfg(test)]
mod tests;
