//! Availability: the green / orange / red indicator of every performance, polled inside the SecuTix call
//! budget.
//!
//! - [`mapping`]: what SecuTix sends (a numeric level, a level name, or seat counts) → a [`Level`] or "not
//!   on sale", leniently, because the response fields are not public.
//! - [`performance_status`] / [`product_status`]: what the website shows at a given time, combining the
//!   catalogue (state, sale periods, past) with what was last fetched. `merge` calls it through its
//!   `StatusFn` ([`StoredStatuses`]) and does the roll-up per product ([`crate::indicator::roll_up`]); a product
//!   without performances has its own product-level status.
//! - [`store`]: the sled trees (per-performance availability, per-product bookkeeping, dirty marks, change
//!   log, poll history, planner state). Everything survives restarts.
//! - [`planner`]: the call budget: what is left this month (venue time zone), the pacing, the tiers
//!   (next 48 h, next 2 weeks, the rest) and the interval to the next poll (never under 1 minute).
//! - [`poller`]: one poll: `getUpdatedAvailabilities`, then the changed products in tier order within
//!   the poll's allowance; failures back off and mark what could not be refreshed as stale.
//!
//! Only a change of what the website shows (indicator or on-sale flag) sets a dirty mark and a change
//! record; the daemon plans the marked products and clears the marks.

pub mod mapping;
pub mod planner;
pub mod poller;
pub mod settings;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Id, Performance, Product, SalePeriod, State};
use crate::indicator::{AvailabilityStatus, PerformanceStatus};

pub use poller::{PollOptions, PollProgress, PollReport, Poller, ProgressSink};
pub use store::{AvailabilityStore, Change, DirtyMark, PollRecord};

/// The indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 1, green: available.
    Available,
    /// 2, orange: almost full.
    AlmostFull,
    /// 3, red: full.
    Full,
}

impl Level {
    /// 1, 2, 3.
    pub fn code(self) -> u8 {
        match self {
            Level::Available => 1,
            Level::AlmostFull => 2,
            Level::Full => 3,
        }
    }

    /// The level of a code 1, 2, 3.
    pub fn from_code(code: i64) -> Option<Level> {
        match code {
            1 => Some(Level::Available),
            2 => Some(Level::AlmostFull),
            3 => Some(Level::Full),
            _ => None,
        }
    }

    /// `available`, `almost_full`, `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Available => "available",
            Level::AlmostFull => "almost_full",
            Level::Full => "full",
        }
    }
}

/// What the website shows for one performance at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The indicator as last fetched; `None` when never fetched or when SecuTix gave no usable level.
    pub level: Option<Level>,
    /// On sale now: the catalogue allows it (state, sale period, not past) and SecuTix did not say
    /// `NOT_VISIBLE` / `OUTSIDE_SALE_PERIOD` since the sale period opened.
    pub on_sale: bool,
}

impl Status {
    /// The status as entries show it (`available`, …, `not_on_sale`, `unknown`).
    pub fn shown(self) -> AvailabilityStatus {
        AvailabilityStatus::from_level(self.level.map(Level::code), self.on_sale)
    }

    /// The form `merge` takes.
    pub fn to_merge(self) -> crate::indicator::PerformanceStatus {
        crate::indicator::PerformanceStatus {
            level: self.level.map(Level::code),
            on_sale: self.on_sale,
        }
    }
}

/// Stored per performance (and per product without performances): the last availability fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceAvailability {
    /// The indicator; `None` when SecuTix said the performance is not on sale.
    pub level: Option<Level>,
    /// SecuTix's word on sale: `Some(false)` for `NOT_VISIBLE` / `OUTSIDE_SALE_PERIOD`, `Some(true)` when it
    /// gave a level or counts. The catalogue still decides first (a closed sale period stays closed).
    pub on_sale: Option<bool>,
    /// Seats still for sale, when SecuTix sent counts.
    pub remaining: Option<i64>,
    /// Seats in total, when SecuTix sent counts.
    pub capacity: Option<i64>,
    /// The level as SecuTix sent it (`GOOD`, `2`, …), for operators reading the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_level: Option<String>,
    /// When this was fetched.
    pub fetched_at: DateTime<Utc>,
    /// When level or on-sale last changed (the first fetch counts): how fresh the indicator is.
    pub changed_at: DateTime<Utc>,
    /// The last refresh failed (rate limit, timeout…): the value is kept but may be outdated.
    #[serde(default)]
    pub stale: bool,
    /// Since when it is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<DateTime<Utc>>,
}

/// Why availability could not be polled at all.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// No catalogue was imported yet.
    #[error(
        "no catalogue in the store yet: run `secutix-sync import` (or let the daemon import) before polling availability"
    )]
    NoCatalogue,
    /// The catalogue in force has no point of sale id.
    #[error(
        "the catalogue in force has no point of sale id (getPOSConfig posId), which every availability call \
         needs; run `secutix-sync import` again and check that getPOSConfig answers with posConfigData.posId"
    )]
    NoPointOfSale,
    /// `--product` names a product the catalogue does not have.
    #[error(
        "product {0} is not in the catalogue in force (or was removed from it); check the id with `secutix-sync state`"
    )]
    UnknownProduct(Id),
    /// The SecuTix client could not be built (secret file, TLS).
    #[error("cannot prepare the SecuTix client: {0}")]
    Client(#[from] crate::secutix::CallError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Whether the catalogue lets a performance (or a product without performances) be on sale at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleWindow {
    /// Open; `since` is the start of the open sale period when the catalogue gives one.
    Open {
        /// Start of the open period.
        since: Option<DateTime<Utc>>,
    },
    /// Not on sale: past, cancelled, closed, suspended, not yet open, or outside every sale period.
    Closed,
}

impl SaleWindow {
    /// True when open.
    pub fn is_open(self) -> bool {
        matches!(self, SaleWindow::Open { .. })
    }
}

/// True for the states in which SecuTix does not sell: being prepared, validated but not running,
/// suspended, cancelled, closed. Unknown states (`Other`) do not block: SecuTix's own answer decides.
pub fn state_blocks_sale(state: &State) -> bool {
    matches!(
        state,
        State::Preparing
            | State::Validated
            | State::Suspended
            | State::Canceled
            | State::Closed
            | State::CanceledClosed
    )
}

fn periods_window(periods: &[SalePeriod], now: DateTime<Utc>) -> Option<SaleWindow> {
    if periods.is_empty() {
        return None;
    }
    let open = periods.iter().filter(|p| {
        p.sale_possible != Some(false) && p.start.is_none_or(|s| s <= now) && p.end.is_none_or(|e| now < e)
    });
    let mut any = false;
    let mut since: Option<DateTime<Utc>> = None;
    for p in open {
        any = true;
        since = since.max(p.start);
    }
    Some(if any {
        SaleWindow::Open { since }
    } else {
        SaleWindow::Closed
    })
}

/// The catalogue's verdict for `perf` of `product` at `now` (`perf = None`: a product without
/// performances): past → closed; a blocking product or performance state → closed; the performance's sale
/// periods when it has some, else the product's; no sale period at all → open.
pub fn sale_window(product: &Product, perf: Option<&Performance>, now: DateTime<Utc>) -> SaleWindow {
    if product.state.as_ref().is_some_and(state_blocks_sale) {
        return SaleWindow::Closed;
    }
    if let Some(perf) = perf {
        if perf.is_past(now) || perf.state.as_ref().is_some_and(state_blocks_sale) {
            return SaleWindow::Closed;
        }
        if let Some(w) = periods_window(&perf.sale_periods, now) {
            return w;
        }
    }
    periods_window(&product.sale_periods, now).unwrap_or(SaleWindow::Open { since: None })
}

fn status_in(window: SaleWindow, stored: Option<&PerformanceAvailability>) -> Status {
    let level = stored.and_then(|s| s.level);
    let on_sale = match window {
        SaleWindow::Closed => false,
        // SecuTix's "not on sale" holds unless it predates the opening of the current sale period.
        SaleWindow::Open { since } => {
            !stored.is_some_and(|s| s.on_sale == Some(false) && since.is_none_or(|t| s.fetched_at >= t))
        }
    };
    Status { level, on_sale }
}

/// Combines the catalogue (sale periods, product/performance state, past) with the stored availability.
/// `stored == None` means never fetched: on_sale comes from the catalogue alone, level None.
pub fn performance_status(
    product: &Product,
    perf: &Performance,
    stored: Option<&PerformanceAvailability>,
    now: DateTime<Utc>,
) -> Status {
    status_in(sale_window(product, Some(perf), now), stored)
}

/// The statuses `merge` and `Outbox::plan` take ([`crate::indicator::StatusFn`]): the catalogue combined with
/// what `avail` last fetched, per performance and, for products without performances, per product.
pub fn status_fn(avail: AvailabilityStore) -> StoredStatuses {
    StoredStatuses { avail }
}

/// [`crate::indicator::StatusSource`] over the stored availability. A store error reading one record counts as
/// "never fetched" (the catalogue alone decides) and is logged, so one unreadable record cannot stop a plan.
#[derive(Clone)]
pub struct StoredStatuses {
    avail: AvailabilityStore,
}

impl crate::indicator::StatusSource for StoredStatuses {
    fn performance(
        &self,
        product: &Product,
        perf: &Performance,
        now: DateTime<Utc>,
    ) -> crate::indicator::PerformanceStatus {
        let stored = self.avail.performance(product.id, perf.id).unwrap_or_else(|e| {
            tracing::warn!(product = product.id, performance = perf.id, error = %e, "cannot read the stored availability");
            None
        });
        performance_status(product, perf, stored.as_ref(), now).to_merge()
    }

    fn product(&self, product: &Product, now: DateTime<Utc>) -> crate::indicator::PerformanceStatus {
        let stored = self.avail.product_level(product.id).unwrap_or_else(|e| {
            tracing::warn!(product = product.id, error = %e, "cannot read the stored product availability");
            None
        });
        product_status(product, stored.as_ref(), now).to_merge()
    }
}

/// [`performance_status`] for a product without performances (passes, simple products), from its
/// product-level availability ([`AvailabilityStore::product_level`]).
pub fn product_status(product: &Product, stored: Option<&PerformanceAvailability>, now: DateTime<Utc>) -> Status {
    status_in(sale_window(product, None, now), stored)
}

/// A plain function knows performances only: for a product without performances, the catalogue alone
/// decides whether it is on sale (state, sale periods) and the level is unknown, like a performance whose
/// availability was never fetched.
impl<F> crate::indicator::StatusSource for F
where
    F: Fn(&Product, &Performance, DateTime<Utc>) -> PerformanceStatus,
{
    fn performance(&self, product: &Product, perf: &Performance, now: DateTime<Utc>) -> PerformanceStatus {
        self(product, perf, now)
    }

    fn product(&self, product: &Product, now: DateTime<Utc>) -> PerformanceStatus {
        product_status(product, None, now).to_merge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().expect("date") + chrono::Duration::hours(h)
    }

    fn product(state: Option<State>, periods: Vec<SalePeriod>) -> Product {
        Product {
            id: 1,
            code: None,
            season_id: None,
            season_code: None,
            family: None,
            family_sub_type: None,
            state,
            name: Default::default(),
            short_name: Default::default(),
            description: Default::default(),
            images: Default::default(),
            detail_url: None,
            sale_periods: periods,
            sub_topic_codes: vec![],
            event: None,
        }
    }

    fn perf(start_h: i64, state: Option<State>, periods: Vec<SalePeriod>) -> Performance {
        Performance {
            id: 2,
            code: None,
            start: Some(t(start_h)),
            duration_secs: None,
            state,
            name: Default::default(),
            description: Default::default(),
            space_code: None,
            space_name: Default::default(),
            site_code: None,
            site_name: Default::default(),
            seat_categories: vec![],
            prices: vec![],
            sale_periods: periods,
            retained: false,
        }
    }

    fn period(start_h: i64, end_h: i64, possible: Option<bool>) -> SalePeriod {
        SalePeriod {
            start: Some(t(start_h)),
            end: Some(t(end_h)),
            sales_channel_code: None,
            sales_channel_id: None,
            sale_possible: possible,
        }
    }

    fn stored(level: Option<Level>, on_sale: Option<bool>, fetched_h: i64) -> PerformanceAvailability {
        PerformanceAvailability {
            level,
            on_sale,
            remaining: None,
            capacity: None,
            raw_level: None,
            fetched_at: t(fetched_h),
            changed_at: t(fetched_h),
            stale: false,
            stale_since: None,
        }
    }

    #[test]
    fn never_fetched_is_on_sale_from_the_catalogue_with_no_level() {
        let p = product(Some(State::Running), vec![]);
        let s = performance_status(&p, &perf(24, None, vec![]), None, t(0));
        assert_eq!(
            s,
            Status {
                level: None,
                on_sale: true
            }
        );
        assert_eq!(s.shown(), AvailabilityStatus::Unknown);
    }

    #[test]
    fn past_cancelled_suspended_and_unopened_are_not_on_sale() {
        let running = product(Some(State::Running), vec![]);
        let got = Some(stored(Some(Level::Available), Some(true), 0));
        assert!(!performance_status(&running, &perf(-1, None, vec![]), got.as_ref(), t(0)).on_sale);
        assert!(!performance_status(&running, &perf(5, Some(State::Canceled), vec![]), got.as_ref(), t(0)).on_sale);
        for state in [State::Suspended, State::Preparing, State::Validated, State::Closed] {
            let p = product(Some(state), vec![]);
            assert!(!performance_status(&p, &perf(5, None, vec![]), got.as_ref(), t(0)).on_sale);
        }
        // Unknown states do not block.
        let other = product(Some(State::Other("RUNNING_SOON".into())), vec![]);
        assert!(performance_status(&other, &perf(5, None, vec![]), got.as_ref(), t(0)).on_sale);
        // Sale periods: the performance's win over the product's.
        let p = product(Some(State::Running), vec![period(-10, 10, None)]);
        assert!(performance_status(&p, &perf(20, None, vec![]), None, t(0)).on_sale);
        assert!(!performance_status(&p, &perf(20, None, vec![period(2, 10, None)]), None, t(0)).on_sale);
        assert!(!performance_status(&p, &perf(20, None, vec![period(-2, 10, Some(false))]), None, t(0)).on_sale);
        assert!(!performance_status(&p, &perf(20, None, vec![]), None, t(11)).on_sale);
    }

    #[test]
    fn secutix_not_on_sale_holds_until_the_sale_period_opens_again() {
        let p = product(Some(State::Running), vec![]);
        let hidden = stored(None, Some(false), 0);
        assert!(!performance_status(&p, &perf(30, None, vec![]), Some(&hidden), t(1)).on_sale);
        // Fetched at 0, the performance's period opened at 2: the hint is older than the opening.
        let pf = perf(30, None, vec![period(2, 20, None)]);
        assert!(performance_status(&p, &pf, Some(&hidden), t(3)).on_sale);
        let later = stored(None, Some(false), 4);
        assert!(!performance_status(&p, &pf, Some(&later), t(5)).on_sale);
    }

    #[test]
    fn levels_have_codes_and_status_names() {
        for (l, c, shown) in [
            (Level::Available, 1, AvailabilityStatus::Available),
            (Level::AlmostFull, 2, AvailabilityStatus::AlmostFull),
            (Level::Full, 3, AvailabilityStatus::SoldOut),
        ] {
            assert_eq!(l.code(), c);
            assert_eq!(Level::from_code(i64::from(c)), Some(l));
            assert_eq!(
                Status {
                    level: Some(l),
                    on_sale: true
                }
                .shown(),
                shown
            );
            assert_eq!(
                Status {
                    level: Some(l),
                    on_sale: false
                }
                .shown(),
                AvailabilityStatus::NotOnSale
            );
        }
        assert_eq!(Level::from_code(0), None);
    }
}
