//! Deterministic SecuTix catalogues: the bench helper, the simulator's data, and test fixtures at any size.
//!
//! A [`Generator`] describes N products × M performances of a fictional venue from a seed and a `now`:
//! French and English names (some English ones null, as SecuTix sends them), HTML descriptions, three seasons
//! (previous, current, next, on the September boundary of the venue's time zone), tariffs per audience
//! sub-category and seat category, price levels, sale periods, `alertRatio`, 14-digit ids, images, and the
//! many fields a real catalogue carries that secutix-sync ignores. Every product is a pure function of
//! `(seed, index)`: nothing is held in memory, so a 10,000 × 25 catalogue streams to a [`Write`] in
//! constant memory, and the same options always give the same bytes.
//!
//! Emitted as:
//! - REST JSON `getCatalogDetailed` ([`Generator::write_rest_json`]): epoch-millisecond starts, RFC 3339
//!   sale periods, `{"translations":[…]}` with null values;
//! - SOAP XML `getCatalogDetailed` ([`Generator::write_soap_xml`]) with the JAX-WS conventions of DESIGN §2
//!   (`<return>` holding the fields, lists as repeated elements, nulls omitted or `xsi:nil`, `xsd:dateTime`
//!   text);
//! - the `getCatalog` XML string ([`Generator::write_catalog_xml`]), and the `getCatalog` responses that carry
//!   it escaped in `catalogData` over SOAP ([`Generator::write_get_catalog_soap`]) and as a JSON string over
//!   REST ([`Generator::write_get_catalog_rest`]).
//!
//! [`Generator::collect`] gives the same catalogue as a domain value, exactly as the parsers stream it into a
//! [`CollectSink`]: the tests check that all formats parse to it.

use crate::catalog::{
    AudienceSubCategory, Event, Id, Images, Performance, PosConfig, Price, PriceLevel, Product, ProductFamily,
    SalePeriod, Season, SeatCategory, State, Translated,
};
use crate::secutix::parse::CollectSink;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};
use std::io::{self, Write};

/// A JSON object from `"key": value` pairs, one insert per pair (`json!` recurses once per token and runs
/// out of recursion on objects this large).
macro_rules! obj {
    ($($k:literal : $v:expr),* $(,)?) => {{
        let mut m = Map::new();
        $( m.insert($k.to_owned(), json!($v)); )*
        Value::Object(m)
    }};
}

mod data;
mod model;
mod render;
mod rng;

#[allow(unused_imports)]
use data::*;

pub use render::*;
pub use rng::*;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Number of products.
    pub products: usize,
    /// Performances (dates) of each product.
    pub performances_per_product: usize,
    /// Same seed, same catalogue (and same bytes).
    pub seed: u64,
    /// Dates are laid out around this instant: past and future performances, open and future sales.
    pub now: DateTime<Utc>,
    /// The venue's time zone: performances start at 20:00 (15:00 on Sundays) local time.
    pub time_zone: chrono_tz::Tz,
}

impl GeneratorOptions {
    /// `products` × `performances_per_product` with `seed`, around `now`, in Europe/Paris.
    pub fn new(products: usize, performances_per_product: usize, seed: u64, now: DateTime<Utc>) -> Self {
        Self {
            products,
            performances_per_product,
            seed,
            now,
            time_zone: chrono_tz::Europe::Paris,
        }
    }
}

impl Default for GeneratorOptions {
    /// A small venue (24 products × 6 performances) around the current time.
    fn default() -> Self {
        Self::new(24, 6, 1, Utc::now())
    }
}

/// A small deterministic random stream.
struct Rng(u64);

// ---------------------------------------------------------------------------------------------------------
// The venue's vocabulary
// ---------------------------------------------------------------------------------------------------------

/// A genre: SecuTix activity code, type, names, base price (thousandths), and whether children's tariffs apply.
struct Genre {
    code: &'static str,
    activity_type: &'static str,
    fr: &'static str,
    en: &'static str,
    base_price: i64,
    family: bool,
}

fn empty() -> Value {
    Value::Array(Vec::new())
}

/// How dates are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// REST JSON: epoch milliseconds, sale periods as RFC 3339 with an offset.
    Json,
    /// XML: `xsd:dateTime` with the venue's offset everywhere.
    Xml,
}

/// The essentials of one product, cheap to compute: ids, season, hall, dates, sale period, capacity.
/// The simulator builds its availability from these.
#[derive(Debug, Clone)]
pub struct ProductPlan {
    /// Position in the catalogue (0..products).
    pub index: usize,
    /// Product id (14 digits).
    pub id: Id,
    /// Season position (0 previous, 1 current, 2 next).
    pub season: u32,
    /// Product state.
    pub state: State,
    /// `alertRatio` in percent.
    pub alert_ratio: f64,
    /// Seats per performance (the hall's capacity).
    pub capacity: u32,
    /// Opening of the product's internet sale.
    pub sale_start: DateTime<Utc>,
    /// End of the product's internet sale.
    pub sale_end: DateTime<Utc>,
    /// Performances, by start.
    pub performances: Vec<PlannedPerformance>,
    genre: usize,
    space: usize,
}

/// The essentials of one performance.
#[derive(Debug, Clone)]
pub struct PlannedPerformance {
    /// Performance id (14 digits).
    pub id: Id,
    /// Start.
    pub start: DateTime<Utc>,
    /// State as sent (mostly null, some `RUNNING`, a few `CANCELED`).
    pub state: Option<State>,
    /// End of the performance's own internet sale period, when it has one (two hours before the start).
    pub sale_end: Option<DateTime<Utc>>,
}

/// A season's frame.
#[derive(Debug, Clone)]
struct SeasonPlan {
    id: Id,
    code: String,
    state: State,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    label: String,
}

/// Deterministic catalogue of a fictional venue (see the module docs).
#[derive(Debug, Clone)]
pub struct Generator {
    opts: GeneratorOptions,
    seasons: Vec<SeasonPlan>,
}

/// Stream numbers of the random draws: independent so that adding a field never moves the others.
const STREAM_PLAN: u64 = 1;

const STREAM_CONTENT: u64 = 2;

/// Escapes what goes through it as XML text (`&`, `<`, `>`).
struct XmlTextWriter<'a>(&'a mut dyn Write);

/// Escapes what goes through it as the inside of a JSON string (UTF-8 passes through unchanged).
struct JsonStringWriter<'a>(&'a mut dyn Write);

/// Counts the bytes written through it.
#[derive(Debug, Default)]
pub struct CountingWriter<W> {
    /// The writer behind.
    pub inner: W,
    /// Bytes written so far.
    pub count: u64,
}

#[cfg(test)]
mod tests;
