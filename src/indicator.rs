//! The availability indicator as the website shows it: a domain type every layer shares.
//!
//! [`AvailabilityStatus`] (green `available` 1, orange `almost_full` 2, red `sold_out` 3, `not_on_sale`,
//! `unknown`), the [`PerformanceStatus`] the availability module computes for one performance at a given time,
//! the [`StatusSource`] through which entries ask for it, and the [`roll_up`] per product. This module knows
//! neither how statuses are polled ([`crate::availability`]) nor how entries are built ([`crate::merge`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Performance, Product};

/// Availability of a performance or a product, as the website shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityStatus {
    /// Green, code 1.
    Available,
    /// Orange, code 2.
    AlmostFull,
    /// Red, code 3.
    SoldOut,
    /// Not on sale (sale not open, closed, suspended, cancelled, past).
    NotOnSale,
    /// On sale, but no availability known yet.
    Unknown,
}

impl AvailabilityStatus {
    /// 1, 2, 3 for the indicator; `None` otherwise.
    pub fn code(self) -> Option<u8> {
        match self {
            AvailabilityStatus::Available => Some(1),
            AvailabilityStatus::AlmostFull => Some(2),
            AvailabilityStatus::SoldOut => Some(3),
            _ => None,
        }
    }

    /// From an indicator level (1, 2, 3) and the on-sale flag.
    pub fn from_level(level: Option<u8>, on_sale: bool) -> Self {
        match (on_sale, level) {
            (false, _) => AvailabilityStatus::NotOnSale,
            (true, Some(1)) => AvailabilityStatus::Available,
            (true, Some(2)) => AvailabilityStatus::AlmostFull,
            (true, Some(3)) => AvailabilityStatus::SoldOut,
            (true, _) => AvailabilityStatus::Unknown,
        }
    }

    /// The status name (`available`, `almost_full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityStatus::Available => "available",
            AvailabilityStatus::AlmostFull => "almost_full",
            AvailabilityStatus::SoldOut => "sold_out",
            AvailabilityStatus::NotOnSale => "not_on_sale",
            AvailabilityStatus::Unknown => "unknown",
        }
    }
}

/// An availability with its indicator code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Availability {
    /// The status.
    pub status: AvailabilityStatus,
    /// 1 green, 2 orange, 3 red; `null` when not on sale or unknown.
    pub code: Option<u8>,
}

impl From<AvailabilityStatus> for Availability {
    fn from(status: AvailabilityStatus) -> Self {
        Self {
            status,
            code: status.code(),
        }
    }
}

/// What the availability module says of one performance at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerformanceStatus {
    /// Indicator level 1/2/3, when known.
    pub level: Option<u8>,
    /// On sale now.
    pub on_sale: bool,
}

/// Where entries get their availability statuses (the availability module provides the real one,
/// [`crate::availability::StoredStatuses`]).
pub trait StatusSource {
    /// One performance of `product` at `now`.
    fn performance(&self, product: &Product, perf: &Performance, now: DateTime<Utc>) -> PerformanceStatus;

    /// A product without performances (no event: a pass, a membership, goods) at `now`, from its
    /// product-level availability.
    fn product(&self, product: &Product, now: DateTime<Utc>) -> PerformanceStatus;
}

/// Computes the statuses of a product's performances, or of a product without performances, for `now`
/// (provided by the availability module; any `Fn(&Product, &Performance, DateTime<Utc>) -> PerformanceStatus`
/// works too).
pub type StatusFn<'a> = dyn StatusSource + 'a;

/// Roll-up over future on-sale performances: 1 if any is 1, else 2 if any is 2, else 3; unknown when none
/// has a level yet; not on sale when none is on sale.
pub fn roll_up(statuses: impl IntoIterator<Item = PerformanceStatus>) -> AvailabilityStatus {
    let on_sale: Vec<PerformanceStatus> = statuses.into_iter().filter(|s| s.on_sale).collect();
    if on_sale.is_empty() {
        return AvailabilityStatus::NotOnSale;
    }
    let best = on_sale.iter().filter_map(|s| s.level).min();
    AvailabilityStatus::from_level(best, true)
}
