//! The catalogue domain model: what secutix-sync keeps of a SecuTix catalogue.
//!
//! Both transports (REST JSON and SOAP XML) and both methods (`getCatalogDetailed`, `getCatalog`) are parsed
//! into these types (see `secutix::wire` for the lenient wire shapes and their conversion). The model keeps
//! only what the entries, the availability poller and the targets need, already normalised:
//! times in UTC, names as a locale → text map without null values, unknown enum values as `Other(..)`.
//!
//! Money stays in SecuTix's unit, thousandths of the currency unit (`35000` = 35.00 EUR); the conversion to
//! decimal strings and minor units happens when entries are built.
//!
//! [`plausible`] says which values can be right: the import leaves the others out and reports them, and the
//! entries check again (a catalogue stored by an older version may hold them).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// SecuTix identifiers are 64-bit integers (14 digits are common).
pub type Id = i64;

/// A translated text: locale (`fr`, `en`, …) → value. Null or empty values from SecuTix are dropped.
///
/// A plain string where SecuTix normally sends translations is kept under the locale [`Translated::ANY`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Translated(pub BTreeMap<String, String>);

impl Translated {
    /// Locale used for untranslated text (a bare string in the feed).
    pub const ANY: &'static str = "*";

    /// True when no locale has a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text for `locale`, else for `fallbacks` in order, else the untranslated text, else any text.
    pub fn get(&self, locale: &str, fallbacks: &[&str]) -> Option<&str> {
        std::iter::once(locale)
            .chain(fallbacks.iter().copied())
            .chain(std::iter::once(Self::ANY))
            .find_map(|l| self.0.get(l))
            .or_else(|| self.0.values().next())
            .map(String::as_str)
    }

    /// Builds a value from `(locale, text)` pairs (test and generator helper).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(pairs.into_iter().map(|(l, v)| (l.to_owned(), v.to_owned())).collect())
    }
}

/// Life-cycle state of a season, product or performance (`PREPARING`, …, `CANCELED_CLOSED`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// Being set up, not visible.
    Preparing,
    /// Set up, not yet on sale.
    Validated,
    /// On sale (if a sale period is open).
    Running,
    /// Sale suspended.
    Suspended,
    /// Cancelled (SecuTix spells it with one L).
    Canceled,
    /// Closed after the fact.
    Closed,
    /// Cancelled and closed.
    CanceledClosed,
    /// A value this version does not know; kept as sent.
    Other(String),
}

impl State {
    /// The SecuTix spelling.
    pub fn as_str(&self) -> &str {
        match self {
            State::Preparing => "PREPARING",
            State::Validated => "VALIDATED",
            State::Running => "RUNNING",
            State::Suspended => "SUSPENDED",
            State::Canceled => "CANCELED",
            State::Closed => "CLOSED",
            State::CanceledClosed => "CANCELED_CLOSED",
            State::Other(s) => s,
        }
    }

    /// Parses a SecuTix state; unknown values become [`State::Other`]. `CANCELLED` is accepted too.
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "PREPARING" => State::Preparing,
            "VALIDATED" => State::Validated,
            "RUNNING" => State::Running,
            "SUSPENDED" => State::Suspended,
            "CANCELED" | "CANCELLED" => State::Canceled,
            "CLOSED" => State::Closed,
            "CANCELED_CLOSED" | "CANCELLED_CLOSED" => State::CanceledClosed,
            _ => State::Other(s.trim().to_owned()),
        }
    }

    /// Cancelled in any form.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, State::Canceled | State::CanceledClosed)
    }
}

/// Product family (`productFamilyType`). Only families listed in `catalogue.product_families` are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProductFamily {
    /// A ticket for a dated event (shows, concerts, films): the main case.
    SingleEntry,
    /// Season ticket / subscription.
    SeasonTicket,
    /// Pass (museum pass, timeslot pass…).
    Pass,
    /// Package of several products.
    Package,
    /// Membership.
    Membership,
    /// Service (cloakroom, parking…).
    Service,
    /// Goods (merchandise).
    Goods,
    /// Transport.
    Transport,
    /// Hospitality.
    Hospitality,
    /// A value this version does not know; kept as sent.
    Other(String),
}

impl ProductFamily {
    /// The SecuTix spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ProductFamily::SingleEntry => "SINGLE_ENTRY",
            ProductFamily::SeasonTicket => "SEASONTICKET",
            ProductFamily::Pass => "PASS",
            ProductFamily::Package => "PACKAGE",
            ProductFamily::Membership => "MEMBERSHIP",
            ProductFamily::Service => "SERVICE",
            ProductFamily::Goods => "GOODS",
            ProductFamily::Transport => "TRANSPORT",
            ProductFamily::Hospitality => "HOSPITALITY",
            ProductFamily::Other(s) => s,
        }
    }

    /// Parses a family; unknown values become [`ProductFamily::Other`].
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "SINGLE_ENTRY" => ProductFamily::SingleEntry,
            "SEASONTICKET" | "SEASON_TICKET" => ProductFamily::SeasonTicket,
            "PASS" => ProductFamily::Pass,
            "PACKAGE" => ProductFamily::Package,
            "MEMBERSHIP" => ProductFamily::Membership,
            "SERVICE" => ProductFamily::Service,
            "GOODS" => ProductFamily::Goods,
            "TRANSPORT" => ProductFamily::Transport,
            "HOSPITALITY" => ProductFamily::Hospitality,
            _ => ProductFamily::Other(s.trim().to_owned()),
        }
    }
}

macro_rules! string_enum_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(<$t>::parse(&s))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
string_enum_serde!(State);
string_enum_serde!(ProductFamily);

/// Point-of-sale configuration from `getPOSConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosConfig {
    /// `posId`: the `pointOfSalesId` of every availability call.
    pub pos_id: Option<Id>,
    /// `organizationTimeZone`, an IANA name such as `Europe/Paris`; performance times are shown in it.
    pub time_zone: Option<String>,
    /// `currencyCode` (ISO 4217).
    pub currency: Option<String>,
    /// Number of decimals of the currency (`catalogCurrencies.fractionDigit`), 2 when not sent.
    pub fraction_digits: Option<u32>,
    /// `mainLanguage`.
    pub main_language: Option<String>,
    /// `languageList`, split on commas.
    pub languages: Vec<String>,
}

/// A season with its tariff tables (audience sub-categories and price levels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Season {
    /// Season id.
    pub id: Option<Id>,
    /// Season code (the `seasonCode` filter of the catalogue call).
    pub code: Option<String>,
    /// Life-cycle state.
    pub state: Option<State>,
    /// Start of the season; decides which season wins when a product appears in two.
    pub start: Option<DateTime<Utc>>,
    /// End of the season.
    pub end: Option<DateTime<Utc>>,
    /// External name.
    pub name: Translated,
    /// Tariffs ("Adult", "Under 26"), flattened from `audienceCategories[].audienceSubCategories[]`.
    pub audience_sub_categories: Vec<AudienceSubCategory>,
    /// Price levels.
    pub price_levels: Vec<PriceLevel>,
}

/// A tariff: an audience sub-category and the category it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceSubCategory {
    /// Sub-category id (`audSubCatId` of prices).
    pub id: Id,
    /// Sub-category code.
    pub code: Option<String>,
    /// Sub-category name ("Adulte", "Moins de 26 ans").
    pub name: Translated,
    /// `audienceCategoryKind`: FULL, REDUCED, FREE or other.
    pub kind: Option<String>,
    /// Parent category id.
    pub category_id: Option<Id>,
    /// Parent category code.
    pub category_code: Option<String>,
    /// Parent category name.
    pub category_name: Translated,
}

/// A price level (price grids by zone or period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceLevel {
    /// Id (`priceLevelId` of prices).
    pub id: Id,
    /// Code.
    pub code: Option<String>,
    /// `mainCategory`.
    pub main_category: Option<String>,
}

/// Images of a product.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    /// `smallImageUrl`.
    pub small: Option<String>,
    /// `mediumImageUrl`.
    pub medium: Option<String>,
    /// `largeImageUrl`.
    pub large: Option<String>,
    /// `xlargeImageUrl`.
    pub xlarge: Option<String>,
    /// `logo`.
    pub logo: Option<String>,
}

/// A sale period (on a product or a performance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalePeriod {
    /// Opening of the sale.
    pub start: Option<DateTime<Utc>>,
    /// End of the sale.
    pub end: Option<DateTime<Utc>>,
    /// Sales channel code (`salesChannelCode`), e.g. `INTERNET`.
    pub sales_channel_code: Option<String>,
    /// Sales channel id.
    pub sales_channel_id: Option<Id>,
    /// `salePossible`; `None` when not sent.
    pub sale_possible: Option<bool>,
}

/// One product of the catalogue (a show, a film, an exhibition…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Product id: the entry's external id is `secutix-<id>`.
    pub id: Id,
    /// Product code.
    pub code: Option<String>,
    /// Id of the season the product was taken from (the latest-starting one when it is in several).
    pub season_id: Option<Id>,
    /// Code of that season.
    pub season_code: Option<String>,
    /// `productFamilyType`.
    pub family: Option<ProductFamily>,
    /// `productFamilySubType`, e.g. `SIMPLE_TICKET`.
    pub family_sub_type: Option<String>,
    /// `state`.
    pub state: Option<State>,
    /// `externalName`: the public title.
    pub name: Translated,
    /// `shortName`.
    pub short_name: Translated,
    /// `externalDescription`, HTML as SecuTix stores it.
    pub description: Translated,
    /// Images.
    pub images: Images,
    /// `detailURL`.
    pub detail_url: Option<String>,
    /// Product-level sale periods.
    pub sale_periods: Vec<SalePeriod>,
    /// Codes of the sub-topics the product is linked to (`subTopicLinks`), for classification.
    pub sub_topic_codes: Vec<String>,
    /// The dated event, for `SINGLE_ENTRY` products.
    pub event: Option<Event>,
}

/// The event part of a product: activity (genre) and performances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Activity id.
    pub activity_id: Option<Id>,
    /// Activity code.
    pub activity_code: Option<String>,
    /// Activity type, e.g. `LIVE_SPECT`, `OTHER`.
    pub activity_type: Option<String>,
    /// Activity name: the genre ("Théâtre", "Cinema").
    pub activity_name: Translated,
    /// `alertRatio`: percentage of remaining seats at or under which a performance is "almost full".
    pub alert_ratio: Option<f64>,
    /// Minimum age.
    pub minimum_age: Option<i64>,
    /// Language of the event.
    pub language: Option<String>,
    /// Performances (dates), ordered by start.
    pub performances: Vec<Performance>,
}

/// One performance (a date) of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Performance id.
    pub id: Id,
    /// Code.
    pub code: Option<String>,
    /// Start, UTC.
    pub start: Option<DateTime<Utc>>,
    /// Duration in seconds, when SecuTix sends one.
    pub duration_secs: Option<i64>,
    /// `state`; often null in feeds.
    pub state: Option<State>,
    /// External name of the performance.
    pub name: Translated,
    /// External description.
    pub description: Translated,
    /// Space (hall) code.
    pub space_code: Option<String>,
    /// Space name.
    pub space_name: Translated,
    /// Site (venue building) code.
    pub site_code: Option<String>,
    /// Site name.
    pub site_name: Translated,
    /// Seat categories (empty for unnumbered venues).
    pub seat_categories: Vec<SeatCategory>,
    /// The resolved price grid.
    pub prices: Vec<Price>,
    /// Performance-level sale periods.
    pub sale_periods: Vec<SalePeriod>,
    /// True when SecuTix no longer lists this (past) performance and it was kept from an earlier import:
    /// past performances are never removed because they dropped out of the feed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retained: bool,
}

/// Orders performances by start (undated last), then id: the order entries and targets rely on.
pub fn sort_performances(perfs: &mut [Performance]) {
    perfs.sort_by_key(|p| (p.start.is_none(), p.start, p.id));
}

/// Whether a character is dropped from texts: C0 and C1 control characters (NUL, escape, DEL…) but tab,
/// line feed and carriage return, and the bidirectional embedding, override and isolate controls
/// (U+202A–U+202E, U+2066–U+2069), with which a title can display as another text.
pub fn is_stripped(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => false,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

/// `s` without the characters [`is_stripped`] drops (unchanged, without a copy, when it has none).
pub fn clean_text(s: String) -> String {
    if s.chars().any(is_stripped) {
        s.chars().filter(|c| !is_stripped(*c)).collect()
    } else {
        s
    }
}

/// Which values SecuTix sends can be right. A value outside these bounds is a broken or hostile answer:
/// shown on a website it would read `-500.00` or `+10000-01-01T…` (not RFC 3339), or overflow arithmetic.
pub mod plausible {
    use chrono::{DateTime, TimeZone, Utc};

    /// The first year a performance can start in.
    pub const FIRST_YEAR: i32 = 2000;
    /// The first year no performance can start in.
    pub const END_YEAR: i32 = 2100;
    /// Longest duration of one performance, in seconds (400 days: a season-long exhibition fits).
    pub const MAX_DURATION_SECS: i64 = 400 * 86_400;
    /// Highest amount, in thousandths of the currency unit: one billion units, in any currency.
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

    /// A performance start (or end) between [`FIRST_YEAR`] and [`END_YEAR`] (excluded), in UTC.
    pub fn date(t: DateTime<Utc>) -> bool {
        let first = Utc.with_ymd_and_hms(FIRST_YEAR, 1, 1, 0, 0, 0).single();
        let end = Utc.with_ymd_and_hms(END_YEAR, 1, 1, 0, 0, 0).single();
        first.is_some_and(|f| t >= f) && end.is_some_and(|e| t < e)
    }

    /// A duration of 0 to [`MAX_DURATION_SECS`] seconds.
    pub fn duration(secs: i64) -> bool {
        (0..=MAX_DURATION_SECS).contains(&secs)
    }

    /// A price of 0 (free) to [`MAX_AMOUNT`] thousandths; never negative.
    pub fn amount(thousandths: i64) -> bool {
        (0..=MAX_AMOUNT).contains(&thousandths)
    }
}

impl Performance {
    /// End of the performance: start + duration when both are known and the end can be right
    /// ([`plausible::date`]); never overflows, whatever the stored values.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        let d = chrono::Duration::try_seconds(self.duration_secs?)?;
        self.start?.checked_add_signed(d).filter(|e| plausible::date(*e))
    }

    /// True when the performance has started before `now`.
    pub fn is_past(&self, now: DateTime<Utc>) -> bool {
        self.start.is_some_and(|s| s < now)
    }
}

/// A seat category of a performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatCategory {
    /// Id (`seatCatId` of prices).
    pub id: Id,
    /// Code.
    pub code: Option<String>,
    /// Name ("Orchestre", "Balcon").
    pub name: Translated,
    /// Display rank.
    pub rank: Option<i64>,
}

/// One cell of the price grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// `seatCatId`, often null for unnumbered venues.
    pub seat_category_id: Option<Id>,
    /// `institutionSeatCatId`.
    pub institution_seat_category_id: Option<Id>,
    /// `audSubCatId`: the tariff.
    pub audience_sub_category_id: Option<Id>,
    /// `priceLevelId`.
    pub price_level_id: Option<Id>,
    /// Amount in thousandths of the currency unit (35000 = 35.00).
    pub amount: i64,
}

impl Product {
    /// Performances, or none for products without an event.
    pub fn performances(&self) -> &[Performance] {
        self.event.as_ref().map(|e| e.performances.as_slice()).unwrap_or(&[])
    }

    /// The last start among the performances, if any.
    pub fn last_start(&self) -> Option<DateTime<Utc>> {
        self.performances().iter().filter_map(|p| p.start).max()
    }

    /// True when the product has dated performances and all of them started before `now`.
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        self.last_start().is_some_and(|last| last < now)
    }
}
