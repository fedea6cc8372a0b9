//! The entry: the documented, versioned JSON document a CMS receives for each product (a domain type).
//!
//! The types of the document ([`Entry`] and its parts), its external id (`secutix-<productId>`), amounts
//! ([`money`]), its JSON Schema ([`entry_schema`], published as `docs/entry.schema.json`) and its content
//! hash ([`content_hash`]). How an entry is built from the catalogue and the availability is
//! [`crate::merge`]'s; where the latest one of each product is kept is [`crate::entries`]'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Id, Translated};
use crate::indicator::Availability;

/// Version of the entry format. Part of every content hash.
pub const SCHEMA_VERSION: u32 = 1;

/// An amount as a decimal string and in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Money {
    /// Decimal, with the currency's digits: `"35.00"`.
    pub amount: String,
    /// Minor units (cents for EUR): `3500`.
    pub minor: i64,
}

/// Lowest and highest price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PriceRange {
    /// ISO 4217 code.
    pub currency: String,
    /// Lowest price.
    pub min: Money,
    /// Highest price.
    pub max: Money,
}

/// A reference with a code and a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Named {
    /// SecuTix id, as a string (64-bit ids are not safe as numbers in every language).
    pub id: Option<String>,
    /// Code.
    pub code: Option<String>,
    /// Name per language.
    pub name: Translated,
}

/// One price of a performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntryPrice {
    /// The tariff (audience sub-category): "Plein tarif", "Moins de 26 ans".
    pub tariff: Named,
    /// The seat category, when the venue is numbered.
    pub seat_category: Option<Named>,
    /// The price level, when used.
    pub price_level: Option<Named>,
    /// ISO 4217 code.
    pub currency: String,
    /// The amount.
    #[serde(flatten)]
    pub money: Money,
}

/// One performance (a date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntryPerformance {
    /// Performance id (string).
    pub id: String,
    /// Code.
    pub code: Option<String>,
    /// Start in the venue's time zone with offset (RFC 3339).
    pub start: Option<String>,
    /// End, when SecuTix gives a duration.
    pub end: Option<String>,
    /// Duration in minutes.
    pub duration_minutes: Option<i64>,
    /// Site (building).
    pub site: Option<Named>,
    /// Space (hall).
    pub space: Option<Named>,
    /// SecuTix state (`RUNNING`, `CANCELED`…), when sent.
    pub state: Option<String>,
    /// Started before the entry was built.
    pub past: bool,
    /// On sale now.
    pub on_sale: bool,
    /// Availability.
    pub availability: Availability,
    /// "Book this date" per language; empty when not on sale or full.
    pub booking_url: BTreeMap<String, String>,
    /// Prices.
    pub prices: Vec<EntryPrice>,
}

/// A short view of the next performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NextPerformance {
    /// Performance id.
    pub id: String,
    /// Start (venue time zone).
    pub start: Option<String>,
    /// Availability.
    pub availability: Availability,
}

/// The document a CMS receives for one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(
    title = "secutix-sync entry",
    description = "One SecuTix product as a CMS receives it (schema_version 1)."
)]
pub struct Entry {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Stable key: `secutix-<productId>`.
    pub external_id: String,
    /// SecuTix product id (string).
    pub product_id: String,
    /// Product code.
    pub product_code: Option<String>,
    /// False when SecuTix no longer lists the product, or when its state is not one of
    /// `entries.published_states` (e.g. `PREPARING`: not announced yet); sent with an unpublish operation.
    pub published: bool,
    /// Title per language.
    pub title: Translated,
    /// Short title per language.
    pub short_title: Translated,
    /// Description per language, HTML as entered in SecuTix.
    pub description: Translated,
    /// Genre (SecuTix activity) per language.
    pub genre: Translated,
    /// Activity code, for mapping genres to CMS taxonomies.
    pub genre_code: Option<String>,
    /// Season.
    pub season: Option<Named>,
    /// Image URLs from SecuTix.
    pub images: BTreeMap<String, String>,
    /// SecuTix product state.
    pub state: Option<String>,
    /// Minimum age, when set.
    pub minimum_age: Option<i64>,
    /// At least one future performance is on sale (a product without performances, such as a pass: the
    /// product itself).
    pub on_sale: bool,
    /// Rolled-up availability: 1 if any on-sale future performance is 1, else 2 if any is 2, else 3; a
    /// product without performances (a pass, a simple product) has its own, polled at product level.
    pub availability: Availability,
    /// "Book" link per language; empty unless on sale and not sold out.
    pub booking_url: BTreeMap<String, String>,
    /// Other links per language (`account`, `profile`, `register`), from the configured templates.
    pub links: BTreeMap<String, BTreeMap<String, String>>,
    /// Price range over future performances (all performances when none is future).
    pub price_range: Option<PriceRange>,
    /// Next performance that has not started.
    pub next_performance: Option<NextPerformance>,
    /// Performances, by start.
    pub performances: Vec<EntryPerformance>,
}

/// The external id of a product.
pub fn external_id(product_id: Id) -> String {
    format!("secutix-{product_id}")
}

/// The product id of an external id (`secutix-123` → 123).
pub fn product_id_of(external_id: &str) -> Option<Id> {
    external_id.strip_prefix("secutix-")?.parse().ok()
}

/// Amount in thousandths → decimal string and minor units, rounding half away from zero. Never overflows:
/// entries only carry [`crate::catalog::plausible::amount`]s, but any `i64` converts.
pub fn money(thousandths: i64, digits: u32) -> Money {
    let digits = digits.min(3);
    let div = 10i128.pow(3 - digits);
    let t = i128::from(thousandths);
    let minor = if t >= 0 {
        (t + div / 2) / div
    } else {
        (t - div / 2) / div
    };
    // |minor| ≤ |i64::MIN| / 1 + 1: fits in i64 except at the very edge, where it saturates.
    let minor = i64::try_from(minor).unwrap_or(if minor < 0 { i64::MIN } else { i64::MAX });
    let amount = if digits == 0 {
        minor.to_string()
    } else {
        let scale = 10i64.pow(digits);
        let sign = if minor < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:0width$}",
            (minor / scale).abs(),
            (minor % scale).abs(),
            width = digits as usize
        )
    };
    Money { amount, minor }
}

/// The JSON Schema of [`Entry`] (published as `docs/entry.schema.json`).
pub fn entry_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Entry)).unwrap_or_default()
}

/// The hash that decides whether a target must be sent the entry: BLAKE3 over the mapping version, the
/// schema version and the entry's canonical JSON (struct order, sorted maps), as 64 hex digits.
pub fn content_hash(entry: &Entry, mapping_version: u32) -> String {
    // Serialising our own struct cannot fail (no maps with non-string keys, no foreign Serialize impls).
    content_hash_of_json(&serde_json::to_vec(entry).unwrap_or_default(), mapping_version)
}

/// [`content_hash`] of an entry already serialised (`serde_json::to_vec(&entry)`): the plan hashes and
/// stores the same bytes.
pub fn content_hash_of_json(entry_json: &[u8], mapping_version: u32) -> String {
    let mut h = blake3::Hasher::new();
    h.update(format!("secutix-sync/m{mapping_version}/s{SCHEMA_VERSION}\n").as_bytes());
    h.update(entry_json);
    h.finalize().to_hex().to_string()
}
