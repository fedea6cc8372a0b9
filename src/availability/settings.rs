//! `[availability]`: the settings of availability polling inside the SecuTix call budget, owned here and
//! assembled by [`crate::config`].

use std::time::Duration;

use serde::Deserialize;

use crate::secutix::settings::EventMethod;

/// `[availability]`: polling availabilities inside the SecuTix call budget (see `crate::availability`).
#[derive(Debug, Clone, Deserialize)]
pub struct AvailabilityConfig {
    /// The daemon polls availabilities (the `availability` command works either way).
    pub enabled: bool,
    /// SecuTix calls allowed per month for the whole integration (catalogue included); the standard
    /// contract gives the institution 10,000.
    pub monthly_call_budget: u64,
    /// Share of `monthly_call_budget` kept for catalogue calls, tokens and retries; availability polling
    /// spends at most the rest.
    pub reserve_share: f64,
    /// Ask `getUpdatedAvailabilities` which products changed. Off: products are refreshed in priority order
    /// inside the budget, without asking (for institutions where that method is unreliable).
    pub use_updated_availabilities: bool,
    /// Method for dated events: `getEventAvailability` or `getPerformanceAvailability`.
    pub event_method: EventMethod,
    /// Shortest time between two polls; SecuTix asks for at most one availability call a minute per cycle.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Longest time between two polls while budget is left (a poll then spends less).
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Products with a performance starting within this are "near" (refreshed first, every poll).
    #[serde(with = "humantime_serde")]
    pub near_window: Duration,
    /// Products with a performance starting within this (and not near) are "mid"; the rest are "far".
    #[serde(with = "humantime_serde")]
    pub mid_window: Duration,
    /// Mid products are asked about every this many polls.
    pub mid_every: u32,
    /// Far products are asked about every this many polls.
    pub far_every: u32,
    /// Most calls one poll may spend (also the most credit the pacing can save up).
    pub max_calls_per_poll: u32,
    /// Most ids (products or performances) sent in one call; longer lists are split.
    pub ids_per_call: usize,
    /// Percentage of remaining seats at or under which a performance is "almost full" when SecuTix sends
    /// counts and the event has no `alertRatio`.
    pub alert_ratio: f64,
    /// Longest back-off after polls that failed on rate limits (509/429), timeouts or network errors.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Indicator changes kept in the change log.
    pub change_log_size: usize,
    /// Polls kept in the poll history.
    pub poll_history_size: usize,
}

impl Default for AvailabilityConfig {
    /// The values of `config/default.toml`.
    fn default() -> Self {
        let table: toml::Table =
            toml::from_str(include_str!("../../config/default.toml")).expect("config/default.toml is valid TOML");
        table
            .get("availability")
            .cloned()
            .expect("config/default.toml has an [availability] section")
            .try_into()
            .expect("config/default.toml's [availability] section is valid")
    }
}

impl AvailabilityConfig {
    /// Checks `[availability]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        if self.monthly_call_budget == 0 {
            bad(
                "availability.monthly_call_budget",
                "must be at least 1 (the standard SecuTix contract allows 10000 calls a month)".into(),
            );
        }
        if !(self.reserve_share >= 0.0 && self.reserve_share < 1.0) {
            bad(
                "availability.reserve_share",
                format!("{} is not a share in [0, 1), e.g. 0.1", self.reserve_share),
            );
        }
        if self.min_interval < Duration::from_secs(60) {
            bad(
                "availability.min_interval",
                format!(
                    "{} is under 1 minute; SecuTix allows availability methods at most once a minute",
                    humantime::format_duration(self.min_interval)
                ),
            );
        }
        if self.max_interval < self.min_interval {
            bad(
                "availability.max_interval",
                "is shorter than availability.min_interval".into(),
            );
        }
        if self.backoff_max < self.min_interval {
            bad(
                "availability.backoff_max",
                "is shorter than availability.min_interval".into(),
            );
        }
        if self.near_window.is_zero() {
            bad(
                "availability.near_window",
                "must be longer than 0s, e.g. \"48h\"".into(),
            );
        }
        if self.mid_window < self.near_window {
            bad(
                "availability.mid_window",
                "is shorter than availability.near_window".into(),
            );
        }
        for (key, v) in [
            ("availability.mid_every", self.mid_every as u64),
            ("availability.far_every", self.far_every as u64),
            ("availability.max_calls_per_poll", self.max_calls_per_poll as u64),
            ("availability.ids_per_call", self.ids_per_call as u64),
            ("availability.change_log_size", self.change_log_size as u64),
            ("availability.poll_history_size", self.poll_history_size as u64),
        ] {
            if v == 0 {
                bad(key, "must be at least 1".into());
            }
        }
        if !(self.alert_ratio >= 0.0 && self.alert_ratio <= 100.0) {
            bad(
                "availability.alert_ratio",
                format!("{} is not a percentage in [0, 100], e.g. 20", self.alert_ratio),
            );
        }
    }
}
