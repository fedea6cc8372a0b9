//! The call budget planner: how many SecuTix calls a poll may spend, which products it asks about, and when
//! the next poll comes.
//!
//! - **The month** runs from the 1st, 00:00 in the venue's time zone (`organizationTimeZone`) to the next
//!   1st. The ledger in the store counts every SecuTix call, failed ones included, per venue-local month.
//! - **What is left**: `M = monthly_call_budget × (1 − reserve_share)` is the availability share; left
//!   `L = min(M − availability calls this month, monthly_call_budget − all calls this month)`. A poll never
//!   spends more than `L`, so the month's total never passes the budget.
//! - **Pacing**: the rate is `L / time left in the month`. Regular spending (asking
//!   `getUpdatedAvailabilities`, fetching changed products) draws on a credit that fills at that rate
//!   since the previous poll and holds at most `max_calls_per_poll`.
//! - **First fetches** (performances never fetched, fetched before their sale opened, or of a product the
//!   last import changed) are not paced: a poll may spend up to `max_calls_per_poll` on them while more
//!   than half of the month's pro-rata availability share stays, and the next poll follows after
//!   `min_interval` until they are done.
//! - **Tiers**: a product's tier is that of its first performance still to poll: *near* (within
//!   `near_window`, 48 h), *mid* (within `mid_window`, 2 weeks), *far* (the rest, and products without
//!   performances). Near products are asked about every poll, mid ones every `mid_every` polls, far ones
//!   every `far_every` polls; fetches go near first, then mid, then far; what does not fit stays pending.
//! - **Interval**: the time for the credit to cover the next poll's expected cost (its asks, near products
//!   still pending, the average of recent change-driven fetches, and as much again for pending mid and far
//!   products), between `min_interval` (never under 1 minute) and `max_interval`; never shorter than the
//!   time to earn one call. With nothing left, the next poll is at the start of next month.
//! - **Back-off**: after a poll failed on a rate limit, a timeout or the network, the next one waits
//!   `min_interval × 2^(failures − 1)` up to `backoff_max`, or `Retry-After` when longer.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::availability::settings::AvailabilityConfig;
use crate::store::Store;

/// What the planner remembers between polls (in the store, so across restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerState {
    /// Scheduled polls done: decides when mid and far products are asked about.
    pub seq: u64,
    /// Calls the pacing holds for the next poll.
    pub credit: f64,
    /// When `credit` was last brought up to date.
    pub credit_at: Option<DateTime<Utc>>,
    /// Average number of fetch calls caused by reported changes per poll (moving average).
    pub change_calls: f64,
    /// Polls failed in a row (rate limit, timeout, network).
    pub failures: u32,
    /// Start of the previous successful poll.
    pub reference_date: Option<DateTime<Utc>>,
    /// When the next scheduled poll is due: a poll of one product keeps this schedule.
    #[serde(default)]
    pub next_poll_at: Option<DateTime<Utc>>,
}

impl Default for PlannerState {
    fn default() -> Self {
        Self {
            seq: 0,
            credit: f64::NAN,
            credit_at: None,
            change_calls: 0.0,
            failures: 0,
            reference_date: None,
            next_poll_at: None,
        }
    }
}

impl PlannerState {
    /// Brings the credit up to `now` at `rate` calls per second, capped at `cap`. A fresh state starts full.
    pub fn refill(&mut self, rate: f64, now: DateTime<Utc>, cap: f64) {
        let elapsed = self
            .credit_at
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.credit = if self.credit.is_finite() {
            (self.credit + rate * elapsed).min(cap)
        } else {
            cap
        };
        self.credit_at = Some(now);
    }

    /// Takes `calls` from the credit (never below zero).
    pub fn spend(&mut self, calls: u64) {
        self.credit = (self.credit - calls as f64).max(0.0);
    }
}

/// A product's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A performance within `near_window` (48 h).
    Near,
    /// A performance within `mid_window` (2 weeks).
    Mid,
    /// The rest.
    Far,
}

impl Tier {
    /// `near`, `mid`, `far`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Near => "near",
            Tier::Mid => "mid",
            Tier::Far => "far",
        }
    }
}

/// The tier of a product whose first performance to poll starts at `first` (`None`: no date).
pub fn tier_of(first: Option<DateTime<Utc>>, now: DateTime<Utc>, cfg: &AvailabilityConfig) -> Tier {
    let within = |d: Duration| first.is_some_and(|f| f <= now + chrono::Duration::from_std(d).unwrap_or_default());
    if within(cfg.near_window) {
        Tier::Near
    } else if within(cfg.mid_window) {
        Tier::Mid
    } else {
        Tier::Far
    }
}

/// Whether products of `tier` are asked about at poll number `seq`.
pub fn tier_due(tier: Tier, seq: u64, cfg: &AvailabilityConfig) -> bool {
    match tier {
        Tier::Near => true,
        Tier::Mid => seq.is_multiple_of(u64::from(cfg.mid_every.max(1))),
        Tier::Far => seq.is_multiple_of(u64::from(cfg.far_every.max(1))),
    }
}

/// Local midnight at the start of day `d` of `y-m` in `tz` (the first instant of that day when a DST change
/// skips midnight).
fn local_day_start(tz: chrono_tz::Tz, y: i32, m: u32) -> DateTime<Utc> {
    (0..3)
        .find_map(|h| tz.with_ymd_and_hms(y, m, 1, h, 0, 0).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or_default())
}

/// Start and end of the venue-local month containing `now`.
pub fn month_bounds(now: DateTime<Utc>, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&tz);
    let (y, m) = (local.year(), local.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (local_day_start(tz, y, m), local_day_start(tz, ny, nm))
}

/// The month's budget as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    /// `monthly_call_budget`.
    pub monthly: u64,
    /// The availability share: `monthly × (1 − reserve_share)`.
    pub share: u64,
    /// Availability calls this month.
    pub availability_spent: u64,
    /// All SecuTix calls this month.
    pub total_spent: u64,
    /// Availability calls still allowed this month.
    pub left: u64,
    /// Start of the venue-local month.
    pub month_start: DateTime<Utc>,
    /// Start of the next one.
    pub month_end: DateTime<Utc>,
}

impl Budget {
    /// The budget at `now` from the store's call ledger.
    pub fn at(cfg: &AvailabilityConfig, store: &Store, now: DateTime<Utc>) -> Self {
        let (month_start, month_end) = month_bounds(now, store.time_zone());
        Self::from_counts(
            cfg,
            store.service_calls_in_month(crate::secutix::Service::Availability.rest_name(), now),
            store.calls_in_month(now),
            month_start,
            month_end,
        )
    }

    /// The budget from counts.
    pub fn from_counts(
        cfg: &AvailabilityConfig,
        availability_spent: u64,
        total_spent: u64,
        month_start: DateTime<Utc>,
        month_end: DateTime<Utc>,
    ) -> Self {
        let share = (cfg.monthly_call_budget as f64 * (1.0 - cfg.reserve_share)).floor() as u64;
        let left = share
            .saturating_sub(availability_spent)
            .min(cfg.monthly_call_budget.saturating_sub(total_spent));
        Self {
            monthly: cfg.monthly_call_budget,
            share,
            availability_spent,
            total_spent,
            left,
            month_start,
            month_end,
        }
    }

    /// Time until the month ends (at least one second).
    pub fn time_left(&self, now: DateTime<Utc>) -> Duration {
        (self.month_end - now)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    /// Calls per second that spend what is left evenly until the month ends.
    pub fn rate(&self, now: DateTime<Utc>) -> f64 {
        self.left as f64 / self.time_left(now).as_secs_f64()
    }

    /// Calls a poll may spend on first fetches: up to `max_calls_per_poll`, keeping half of the month's
    /// pro-rata share for regular polling.
    pub fn first_fetch_allowance(&self, now: DateTime<Utc>, cfg: &AvailabilityConfig) -> u64 {
        let month = (self.month_end - self.month_start).num_seconds().max(1) as f64;
        let keep = (self.share as f64 * self.time_left(now).as_secs_f64() / month * 0.5).ceil() as u64;
        self.left.saturating_sub(keep).min(u64::from(cfg.max_calls_per_poll))
    }
}

/// The time to the next poll: the time to earn `demand` calls at `rate`, between `min_interval` and
/// `max_interval`; never shorter than the time to earn one call when the credit (after this poll) holds less
/// than one; never past the start of next month (when the budget is new). Saved-up credit does not bring
/// the next poll closer: it only lets a poll absorb a burst of changes.
pub fn next_interval(
    demand: f64,
    credit: f64,
    rate: f64,
    until_month_end: Duration,
    cfg: &AvailabilityConfig,
) -> Duration {
    let min = cfg.min_interval.max(Duration::from_secs(60));
    if rate <= 0.0 || !rate.is_finite() {
        return until_month_end.max(min);
    }
    let secs = |calls: f64| Duration::from_secs_f64((calls.max(0.0) / rate).min(1e9));
    let wanted = secs(demand.max(1.0)).clamp(min, cfg.max_interval.max(min));
    wanted.max(secs(1.0 - credit)).min(until_month_end.max(min))
}

/// The wait after `failures` failed polls in a row, at least `retry_after` when SecuTix gave one.
pub fn backoff(failures: u32, retry_after: Option<Duration>, cfg: &AvailabilityConfig) -> Duration {
    let base = cfg.min_interval.max(Duration::from_secs(60));
    // At most 2^16 times the base, whatever the count of failures.
    let wait = crate::backoff::Backoff::new(base, cfg.backoff_max.max(base)).delay(failures.min(17));
    wait.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AvailabilityConfig {
        AvailabilityConfig::default()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, 0).single().expect("date")
    }

    #[test]
    fn the_month_rolls_over_at_local_midnight() {
        let paris = chrono_tz::Europe::Paris;
        // 31 March 2026, 22:30 UTC is already 1 April 00:30 in Paris (CEST, UTC+2).
        let (start, end) = month_bounds(utc(2026, 3, 31, 22, 30), paris);
        assert_eq!(start, utc(2026, 3, 31, 22, 0));
        assert_eq!(end, utc(2026, 4, 30, 22, 0));
        // 31 March 2026, 21:30 UTC is still March in Paris; March started in winter time (UTC+1).
        let (start, end) = month_bounds(utc(2026, 3, 31, 21, 30), paris);
        assert_eq!(start, utc(2026, 2, 28, 23, 0));
        assert_eq!(end, utc(2026, 3, 31, 22, 0));
        let (start, end) = month_bounds(utc(2026, 12, 15, 0, 0), chrono_tz::UTC);
        assert_eq!((start, end), (utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0)));
    }

    #[test]
    fn what_is_left_respects_the_share_and_the_whole_budget() {
        let c = cfg();
        let (s, e) = (utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0));
        let b = Budget::from_counts(&c, 1000, 1200, s, e);
        assert_eq!((b.share, b.left), (9000, 8000));
        // Catalogue calls beyond their reserve shrink what availability may spend.
        let b = Budget::from_counts(&c, 8000, 9990, s, e);
        assert_eq!(b.left, 10);
        let b = Budget::from_counts(&c, 9500, 9500, s, e);
        assert_eq!(b.left, 0);
    }

    #[test]
    fn the_interval_follows_the_budget_and_stays_within_its_bounds() {
        let c = cfg();
        let month = Duration::from_secs(30 * 86400);
        // 9000 calls over 30 days = 0.00347/s; 3 calls a poll → one poll every 14.4 minutes.
        let rate = 9000.0 / month.as_secs_f64();
        let i = next_interval(3.0, 0.0, rate, month, &c);
        assert_eq!(i.as_secs() / 60, 14);
        // Plenty of budget: never under a minute.
        assert_eq!(next_interval(3.0, 0.0, 1.0, month, &c), Duration::from_secs(60));
        // Credit in hand does not bring the next poll closer.
        assert_eq!(next_interval(3.0, 5.0, rate, month, &c), i);
        // Tight budget: capped at max_interval, unless even one call takes longer to earn.
        assert_eq!(next_interval(50.0, 0.0, rate, month, &c), Duration::from_secs(3600));
        let poor = 10.0 / month.as_secs_f64();
        assert_eq!(next_interval(1.0, 0.0, poor, month, &c).as_secs(), 3 * 86400);
        // Nothing left: the start of next month.
        assert_eq!(
            next_interval(1.0, 0.0, 0.0, Duration::from_secs(7200), &c),
            Duration::from_secs(7200)
        );
        assert_eq!(
            next_interval(1.0, 0.0, poor, Duration::from_secs(600), &c),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn credit_fills_at_the_rate_up_to_the_cap() {
        let mut s = PlannerState::default();
        s.refill(0.01, utc(2026, 3, 2, 10, 0), 60.0);
        assert_eq!(s.credit, 60.0, "a fresh state starts full");
        s.spend(100);
        assert_eq!(s.credit, 0.0);
        s.refill(0.01, utc(2026, 3, 2, 10, 10), 60.0);
        assert!((s.credit - 6.0).abs() < 1e-9, "{}", s.credit);
        s.refill(0.01, utc(2026, 3, 3, 10, 10), 60.0);
        assert_eq!(s.credit, 60.0);
    }

    #[test]
    fn first_fetches_keep_half_the_pro_rata_share() {
        let c = cfg();
        let (s, e) = (utc(2026, 3, 1, 0, 0), utc(2026, 3, 31, 0, 0));
        let b = Budget::from_counts(&c, 0, 0, s, e);
        assert_eq!(b.first_fetch_allowance(s, &c), 60);
        // Half-way through the month with 2300 left: 2250 are kept, 50 may go to first fetches.
        let b = Budget::from_counts(&c, 6700, 6700, s, e);
        assert_eq!(b.first_fetch_allowance(utc(2026, 3, 16, 0, 0), &c), 50);
        let b = Budget::from_counts(&c, 7000, 7000, s, e);
        assert_eq!(b.first_fetch_allowance(utc(2026, 3, 16, 0, 0), &c), 0);
    }

    #[test]
    fn tiers_and_their_schedule() {
        let c = cfg();
        let now = utc(2026, 3, 2, 10, 0);
        assert_eq!(tier_of(Some(now + chrono::Duration::hours(47)), now, &c), Tier::Near);
        assert_eq!(tier_of(Some(now + chrono::Duration::days(10)), now, &c), Tier::Mid);
        assert_eq!(tier_of(Some(now + chrono::Duration::days(15)), now, &c), Tier::Far);
        assert_eq!(tier_of(None, now, &c), Tier::Far);
        let due = |t| (0..12).filter(|s| tier_due(t, *s, &c)).count();
        assert_eq!((due(Tier::Near), due(Tier::Mid), due(Tier::Far)), (12, 4, 1));
    }

    #[test]
    fn back_off_doubles_up_to_its_cap_and_honours_retry_after() {
        let c = cfg();
        assert_eq!(backoff(1, None, &c), Duration::from_secs(60));
        assert_eq!(backoff(3, None, &c), Duration::from_secs(240));
        assert_eq!(backoff(20, None, &c), Duration::from_secs(1800));
        assert_eq!(backoff(1, Some(Duration::from_secs(600)), &c), Duration::from_secs(600));
    }
}
