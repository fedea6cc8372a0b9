//! The SecuTix wire shapes, deserialised leniently, and their conversion into the domain model.
//!
//! One set of types serves both transports: REST JSON is deserialised into them directly, and SOAP XML is
//! first turned into a `serde_json::Value` per product (see `xml.rs`), where every scalar is a string and a
//! list with one element is a single object. Hence the rules, applied to every field:
//! - numbers are accepted as JSON numbers or numeric strings; `null`, an empty string or an absent field is
//!   "not sent";
//! - a list is accepted as an array, a single object (XML with one element) or `null`;
//! - dates are epoch milliseconds (number or numeric string), RFC 3339 with an offset, or a local date-time
//!   without offset (read in the venue's time zone);
//! - translations are `{"translations":[{"locale","value"}]}` with `null` values dropped, or a bare string;
//! - unknown fields are ignored; unknown enum values are kept as `Other(..)` by the domain types.
//!
//! A value of the wrong kind (an object where an id is expected, text where a list of objects is expected)
//! is an error; the parsers report it with the path of the field.
//!
//! Values of the right kind that cannot be right (a negative price, a performance in year 9999, a duration
//! of centuries: [`crate::catalog::plausible`]) are left out of the product and counted in an
//! [`Implausible`] the import reports. Every text loses its control characters and bidirectional overrides
//! ([`crate::catalog::clean_text`]) on the way in.

use crate::catalog::clean_text;
use crate::catalog::{
    AudienceSubCategory, Event, Images, Performance, PosConfig, Price, PriceLevel, Product, ProductFamily, SalePeriod,
    Season, SeatCategory, State, Translated,
};
use crate::text::truncate;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

mod convert;

#[allow(unused_imports)]
use convert::*;

/// Values left out of the catalogue because they cannot be right, for the import report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Implausible {
    /// How many values were left out.
    pub count: u64,
    /// What they were and where, the first [`Implausible::KEPT`] of them.
    pub examples: Vec<String>,
}

impl Implausible {
    /// Examples kept (the count goes on).
    pub const KEPT: usize = 20;

    /// Records one value left out.
    pub fn flag(&mut self, what: String) {
        self.count += 1;
        if self.examples.len() < Self::KEPT {
            self.examples.push(what);
        }
    }

    /// Adds `other`'s values (a catalogue read in two passes).
    pub fn merge(&mut self, other: Implausible) {
        self.count += other.count;
        for e in other.examples {
            if self.examples.len() < Self::KEPT {
                self.examples.push(e);
            }
        }
    }
}

/// Context for converting wire values into the domain model.
#[derive(Debug, Clone)]
pub struct ConvertCtx {
    /// Time zone for date-times sent without an offset (the venue's, from `getPOSConfig`).
    pub time_zone: chrono_tz::Tz,
}

impl Default for ConvertCtx {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::UTC,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Lenient scalar deserialisers
// ---------------------------------------------------------------------------------------------------------

/// A JSON scalar seen by the lenient visitors.
enum Scalar {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
}

struct ScalarVisitor(&'static str);

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor(expecting))
}

fn int_from_scalar<E: de::Error>(s: Scalar, what: &str) -> Result<Option<i64>, E> {
    match s {
        Scalar::Null => Ok(None),
        Scalar::I64(v) => Ok(Some(v)),
        Scalar::U64(v) => i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("{what} {v} is out of range"))),
        Scalar::F64(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
        Scalar::F64(v) => Err(E::custom(format!("expected {what}, found {v}"))),
        Scalar::Str(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if let Ok(v) = t.parse::<i64>() {
                return Ok(Some(v));
            }
            match t.parse::<f64>() {
                Ok(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
                _ => Err(E::custom(format!("expected {what}, found {:?}", truncate(t, 40)))),
            }
        }
        Scalar::Bool(b) => Err(E::custom(format!("expected {what}, found boolean {b}"))),
    }
}

/// An optional id or integer: number, numeric string, `null` or empty.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int_from_scalar(scalar(d, "an integer")?, "an integer")
}

/// An optional decimal number: number, numeric string, `null` or empty.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match scalar(d, "a number")? {
        Scalar::Null => Ok(None),
        Scalar::I64(v) => Ok(Some(v as f64)),
        Scalar::U64(v) => Ok(Some(v as f64)),
        Scalar::F64(v) => Ok(Some(v)),
        Scalar::Str(s) if s.trim().is_empty() => Ok(None),
        Scalar::Str(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a number, found {:?}", truncate(&s, 40)))),
        Scalar::Bool(b) => Err(de::Error::custom(format!("expected a number, found boolean {b}"))),
    }
}

/// An optional boolean: `true`/`false`, `"true"`/`"false"`, 0/1, `null`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match scalar(d, "a boolean")? {
        Scalar::Null => Ok(None),
        Scalar::Bool(b) => Ok(Some(b)),
        Scalar::I64(v) => Ok(Some(v != 0)),
        Scalar::U64(v) => Ok(Some(v != 0)),
        Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            other => Err(de::Error::custom(format!(
                "expected a boolean, found {:?}",
                truncate(other, 40)
            ))),
        },
        Scalar::F64(v) => Err(de::Error::custom(format!("expected a boolean, found {v}"))),
    }
}

/// An optional text: a string (numbers and booleans are taken as their text), `null` or empty.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d, "a text")? {
        Scalar::Null => None,
        Scalar::Str(s) => Some(clean_text(s)).filter(|s| !s.is_empty()),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::I64(v) => Some(v.to_string()),
        Scalar::U64(v) => Some(v.to_string()),
        Scalar::F64(v) => Some(v.to_string()),
    })
}

/// A date as SecuTix sends it, before the venue's time zone is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireDate {
    /// An instant (epoch milliseconds or RFC 3339 with an offset).
    Instant(DateTime<Utc>),
    /// A local date-time without offset, to be read in the venue's time zone.
    Local(NaiveDateTime),
}

impl WireDate {
    /// The instant, reading a local date-time in `tz` (the earlier instant in a DST overlap; in a DST gap,
    /// the instant one hour later).
    pub fn resolve(self, tz: chrono_tz::Tz) -> DateTime<Utc> {
        match self {
            WireDate::Instant(t) => t,
            WireDate::Local(n) => match tz.from_local_datetime(&n) {
                chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
                chrono::LocalResult::None => tz
                    .from_local_datetime(&(n + chrono::Duration::hours(1)))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| Utc.from_utc_datetime(&n)),
            },
        }
    }

    /// Parses the text forms (RFC 3339, local date-time, epoch milliseconds as digits, a bare date).
    pub fn parse_text(t: &str) -> Option<Self> {
        let t = t.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Some(WireDate::Instant(dt.with_timezone(&Utc)));
        }
        // "2026-03-01T20:00:00.000+0100" (offset without colon), as some Java serialisers write it.
        if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
            return Some(WireDate::Instant(dt.with_timezone(&Utc)));
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
            return Some(WireDate::Local(n));
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f") {
            return Some(WireDate::Local(n));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return d.and_hms_opt(0, 0, 0).map(WireDate::Local);
        }
        if t.len() >= 9 && t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return t.parse::<i64>().ok().and_then(from_millis);
        }
        None
    }
}

fn from_millis(ms: i64) -> Option<WireDate> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(WireDate::Instant)
}

/// An optional date: epoch ms (number or digits), RFC 3339, local date-time, `null` or empty.
pub fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WireDate>, D::Error> {
    let bad = |what: String| {
        de::Error::custom(format!(
            "expected a date (epoch milliseconds or RFC 3339), found {what}"
        ))
    };
    match scalar(d, "a date")? {
        Scalar::Null => Ok(None),
        Scalar::I64(v) => from_millis(v).map(Some).ok_or_else(|| bad(v.to_string())),
        Scalar::U64(v) => i64::try_from(v)
            .ok()
            .and_then(from_millis)
            .map(Some)
            .ok_or_else(|| bad(v.to_string())),
        Scalar::F64(v) => from_millis(v as i64).map(Some).ok_or_else(|| bad(v.to_string())),
        Scalar::Str(s) if s.trim().is_empty() => Ok(None),
        Scalar::Str(s) => WireDate::parse_text(&s)
            .map(Some)
            .ok_or_else(|| bad(format!("{:?}", truncate(&s, 40)))),
        Scalar::Bool(b) => Err(bad(format!("boolean {b}"))),
    }
}

/// A list: array, single value (XML with one element) or `null`.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_unit<E>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
            while let Some(v) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            Ok(vec![T::deserialize(de::value::MapAccessDeserializer::new(map))?])
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            if v.trim().is_empty() {
                return Ok(Vec::new());
            }
            T::deserialize(de::value::StrDeserializer::new(v)).map(|t| vec![t])
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<T>, E> {
            self.visit_str(&v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            T::deserialize(de::value::I64Deserializer::new(v)).map(|t| vec![t])
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            T::deserialize(de::value::U64Deserializer::new(v)).map(|t| vec![t])
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// An integer list element (ids in lists such as `itemIds`).
#[derive(Debug, Clone, Copy)]
pub struct LenientId(pub Option<i64>);

impl<'de> Deserialize<'de> for LenientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_i64(d).map(LenientId)
    }
}

/// A text list element.
#[derive(Debug, Clone)]
pub struct LenientString(pub Option<String>);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d).map(LenientString)
    }
}

/// `{"translations":[{"locale","value"}]}`, or a bare string, or `null`.
pub fn translated<'de, D: Deserializer<'de>>(d: D) -> Result<Translated, D::Error> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Entry {
        #[serde(deserialize_with = "opt_string")]
        locale: Option<String>,
        #[serde(deserialize_with = "opt_string")]
        value: Option<String>,
    }
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Translated;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("translations ({\"translations\":[{\"locale\",\"value\"}]}) or a text")
        }
        fn visit_unit<E>(self) -> Result<Translated, E> {
            Ok(Translated::default())
        }
        fn visit_none<E>(self) -> Result<Translated, E> {
            Ok(Translated::default())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Translated, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E>(self, v: &str) -> Result<Translated, E> {
            let mut m = BTreeMap::new();
            let v = clean_text(v.to_owned());
            if !v.trim().is_empty() {
                m.insert(Translated::ANY.to_owned(), v);
            }
            Ok(Translated(m))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Translated, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "translations" {
                    let entries: Vec<Entry> = map.next_value_seed(OneOrManySeed::<Entry>::default())?;
                    for e in entries {
                        if let (Some(l), Some(v)) = (e.locale, e.value)
                            && !v.trim().is_empty()
                        {
                            out.insert(l.to_ascii_lowercase(), v);
                        }
                    }
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Translated(out))
        }
    }
    d.deserialize_any(V)
}

/// [`one_or_many`] as a seed, for use inside hand-written visitors.
pub struct OneOrManySeed<T>(std::marker::PhantomData<T>);

impl<T> Default for OneOrManySeed<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> de::DeserializeSeed<'de> for OneOrManySeed<T> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        one_or_many(d)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------------------

macro_rules! wire_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty => $with:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[doc = concat!("`", stringify!($field), "`, as SecuTix sends it (in camelCase on the wire), read leniently.")]
                #[serde(deserialize_with = $with)]
                pub $field: $ty,
            )*
        }
    };
}

wire_struct!(
    /// `posConfigData` of `getPOSConfig`.
    RawPosConfig {
        pos_id: Option<i64> => "opt_i64",
        organization_time_zone: Option<String> => "opt_string",
        currency_code: Option<String> => "opt_string",
        catalog_currencies: Vec<RawCurrency> => "one_or_many",
        main_language: Option<String> => "opt_string",
        language_list: Vec<LenientString> => "one_or_many",
    }
);

wire_struct!(
    /// An element of `catalogCurrencies`.
    RawCurrency {
        currency_code: Option<String> => "opt_string",
        fraction_digit: Option<i64> => "opt_i64",
    }
);

wire_struct!(
    /// A season, without its products (they are streamed one by one).
    RawSeason {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        state: Option<String> => "opt_string",
        start: Option<WireDate> => "opt_date",
        end: Option<WireDate> => "opt_date",
        external_name: Translated => "translated",
        audience_categories: Vec<RawAudienceCategory> => "one_or_many",
        price_levels: Vec<RawPriceLevel> => "one_or_many",
    }
);

wire_struct!(
    /// An audience category with its sub-categories (tariffs).
    RawAudienceCategory {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        external_name: Translated => "translated",
        audience_sub_categories: Vec<RawAudienceSubCategory> => "one_or_many",
    }
);

wire_struct!(
    /// A tariff.
    RawAudienceSubCategory {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        external_name: Translated => "translated",
        audience_category_kind: Option<String> => "opt_string",
    }
);

wire_struct!(
    /// A price level.
    RawPriceLevel {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        main_category: Option<String> => "opt_string",
    }
);

wire_struct!(
    /// A product DTO (`catalogData.seasons[].products[]`).
    RawProduct {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        season_id: Option<i64> => "opt_i64",
        product_family_type: Option<String> => "opt_string",
        product_family_sub_type: Option<String> => "opt_string",
        state: Option<String> => "opt_string",
        external_name: Translated => "translated",
        short_name: Translated => "translated",
        external_description: Translated => "translated",
        small_image_url: Option<String> => "opt_string",
        medium_image_url: Option<String> => "opt_string",
        large_image_url: Option<String> => "opt_string",
        xlarge_image_url: Option<String> => "opt_string",
        logo: Option<String> => "opt_string",
        #[serde(rename = "detailURL")]
        detail_url: Option<String> => "opt_string",
        sale_periods: Vec<RawSalePeriod> => "one_or_many",
        sub_topic_links: Vec<RawSubTopicLink> => "one_or_many",
        event: Option<RawEvent> => "opt_struct",
    }
);

wire_struct!(
    /// A link to a sub-topic (classification); its exact shape is not public, so several names are read.
    RawSubTopicLink {
        sub_topic_code: Option<String> => "opt_string",
        code: Option<String> => "opt_string",
    }
);

wire_struct!(
    /// The `event` of a product.
    RawEvent {
        activity_id: Option<i64> => "opt_i64",
        activity_code: Option<String> => "opt_string",
        activity_type: Option<String> => "opt_string",
        activity_external_name: Translated => "translated",
        alert_ratio: Option<f64> => "opt_f64",
        minimum_age: Option<i64> => "opt_i64",
        language: Option<String> => "opt_string",
        performances: Vec<RawPerformance> => "one_or_many",
    }
);

wire_struct!(
    /// A performance.
    RawPerformance {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        start: Option<WireDate> => "opt_date",
        duration: Option<i64> => "opt_i64",
        state: Option<String> => "opt_string",
        external_name: Translated => "translated",
        external_description: Translated => "translated",
        space_code: Option<String> => "opt_string",
        space_external_name: Translated => "translated",
        site_code: Option<String> => "opt_string",
        site_external_name: Translated => "translated",
        seat_categories: Vec<RawSeatCategory> => "one_or_many",
        prices: Vec<RawPrice> => "one_or_many",
        sale_periods: Vec<RawSalePeriod> => "one_or_many",
    }
);

wire_struct!(
    /// A seat category.
    RawSeatCategory {
        id: Option<i64> => "opt_i64",
        code: Option<String> => "opt_string",
        external_name: Translated => "translated",
        rank: Option<i64> => "opt_i64",
    }
);

wire_struct!(
    /// A cell of the price grid.
    RawPrice {
        institution_seat_cat_id: Option<i64> => "opt_i64",
        seat_cat_id: Option<i64> => "opt_i64",
        aud_sub_cat_id: Option<i64> => "opt_i64",
        price_level_id: Option<i64> => "opt_i64",
        amount: Option<i64> => "opt_i64",
    }
);

wire_struct!(
    /// A sale period.
    RawSalePeriod {
        start: Option<WireDate> => "opt_date",
        end: Option<WireDate> => "opt_date",
        sales_channel_code: Option<String> => "opt_string",
        sales_channel_id: Option<i64> => "opt_i64",
        sale_possible: Option<bool> => "opt_bool",
    }
);

/// An optional object; `null`, an empty string (empty XML element) or absence is `None`.
pub fn opt_struct<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_unit<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                Err(E::custom(format!(
                    "expected an object, found the text {:?}",
                    truncate(v, 40)
                )))
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

#[cfg(test)]
mod tests;
