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

use super::PassCultureSettings;
use super::api::{Answer, Api, WireDate, WireDates};
use crate::targets::TargetError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

mod booking;
mod box_office;
mod errors;
mod outcome;

pub use errors::*;
pub use outcome::*;

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

/// A successful `use`, `keep` or `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// What was done.
    pub action: Action,
    /// The token (upper-cased).
    pub token: String,
}

/// What a box-office operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `booking`: the booking.
    Found(Booking),
    /// `use`, `keep`, `cancel`: done.
    Done(Done),
}

/// The box office: contremarque calls with one API key.
#[derive(Debug, Clone)]
pub struct BoxOffice {
    api: Api,
}

#[cfg(test)]
mod tests;
