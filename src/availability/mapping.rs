//! From what SecuTix sends to the indicator, leniently (the response fields are not public).
//!
//! | SecuTix sends | Reading |
//! |---|---|
//! | level `1`, `GOOD`, `AVAILABLE` | 1, green (available) |
//! | level `2`, `LIMITED`, `ALMOST_FULL` | 2, orange (almost full) |
//! | level `3`, `SOLD_OUT`, `FULL` | 3, red (full) |
//! | level `NOT_VISIBLE`, `OUTSIDE_SALE_PERIOD` | not on sale |
//! | no usable level, remaining = 0 | 3 |
//! | no usable level, remaining ≤ alertRatio % of capacity | 2 |
//! | no usable level, remaining > 0 otherwise | 1 |
//! | `UNKNOWN`, another name, another number, nothing usable | unknown: logged (except `UNKNOWN`), the stored value is kept |
//!
//! Names are compared case-insensitively, with spaces and dashes read as `_` (`sold-out` = `SOLD_OUT`).
//! A level wins over counts; an unrecognised level falls back to counts when they are given. Several
//! records for one performance (one per seat category) combine to the best of them: a performance is
//! available when one of its categories is.

use crate::secutix::availability::{RawAvailability, RawLevel};

use super::Level;

/// What one record (or several for the same performance) says.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// An indicator.
    Level(Level),
    /// SecuTix says the performance is not on sale (`NOT_VISIBLE`, `OUTSIDE_SALE_PERIOD`).
    NotOnSale,
    /// Nothing usable: the stored value must not change.
    Unknown,
}

/// A record read for the indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The reading.
    pub reading: Reading,
    /// Seats still for sale, when sent.
    pub remaining: Option<i64>,
    /// Seats in total, when sent.
    pub capacity: Option<i64>,
    /// The level as sent, when sent.
    pub raw_level: Option<String>,
    /// A level that is neither a known name nor 1/2/3 (logged by the poller).
    pub unrecognised: Option<String>,
}

/// What a level name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMeaning {
    /// An indicator.
    Level(Level),
    /// Not on sale.
    NotOnSale,
    /// SecuTix says it does not know (`UNKNOWN`).
    Unknown,
    /// A name this version does not know.
    Unrecognised,
}

/// The level names read, and what they mean (the README's mapping table comes from this list).
pub const LEVEL_NAMES: &[(&str, NameMeaning)] = &[
    ("GOOD", NameMeaning::Level(Level::Available)),
    ("AVAILABLE", NameMeaning::Level(Level::Available)),
    ("LIMITED", NameMeaning::Level(Level::AlmostFull)),
    ("ALMOST_FULL", NameMeaning::Level(Level::AlmostFull)),
    ("SOLD_OUT", NameMeaning::Level(Level::Full)),
    ("FULL", NameMeaning::Level(Level::Full)),
    ("NOT_VISIBLE", NameMeaning::NotOnSale),
    ("OUTSIDE_SALE_PERIOD", NameMeaning::NotOnSale),
    ("UNKNOWN", NameMeaning::Unknown),
];

/// The meaning of a level name.
pub fn level_name(name: &str) -> NameMeaning {
    let n: String = name
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    LEVEL_NAMES
        .iter()
        .find(|(k, _)| *k == n)
        .map_or(NameMeaning::Unrecognised, |(_, m)| *m)
}

/// The indicator from seat counts: 3 when nothing remains, 2 when what remains is at most `alert_ratio`
/// percent of the capacity, else 1. A negative remaining count is unusable; without a capacity, any seat
/// left means 1.
pub fn level_from_counts(remaining: i64, capacity: Option<i64>, alert_ratio: f64) -> Option<Level> {
    if remaining < 0 {
        return None;
    }
    if remaining == 0 {
        return Some(Level::Full);
    }
    match capacity {
        Some(c) if c > 0 && (remaining as f64) * 100.0 <= alert_ratio * c as f64 => Some(Level::AlmostFull),
        _ => Some(Level::Available),
    }
}

/// Reads one record; `alert_ratio` is the event's `alertRatio` (percent) or the configured default.
pub fn observe(raw: &RawAvailability, alert_ratio: f64) -> Observation {
    let mut obs = Observation {
        reading: Reading::Unknown,
        remaining: raw.remaining,
        capacity: raw.capacity,
        raw_level: raw.level.as_ref().map(|l| l.to_string()),
        unrecognised: None,
    };
    match &raw.level {
        Some(RawLevel::Code(c)) => match Level::from_code(*c) {
            Some(l) => {
                obs.reading = Reading::Level(l);
                return obs;
            }
            None => obs.unrecognised = Some(c.to_string()),
        },
        Some(RawLevel::Name(n)) => match level_name(n) {
            NameMeaning::Level(l) => {
                obs.reading = Reading::Level(l);
                return obs;
            }
            NameMeaning::NotOnSale => {
                obs.reading = Reading::NotOnSale;
                return obs;
            }
            NameMeaning::Unknown => {}
            NameMeaning::Unrecognised => obs.unrecognised = Some(n.clone()),
        },
        None => {}
    }
    if let Some(l) = raw
        .remaining
        .and_then(|r| level_from_counts(r, raw.capacity, alert_ratio))
    {
        obs.reading = Reading::Level(l);
    }
    obs
}

/// Combines the records of one performance (one per seat category, or duplicates): the best level wins;
/// "not on sale" only when no record gives a level; unknown when none says anything.
pub fn combine(observations: Vec<Observation>) -> Option<Observation> {
    fn rank(o: &Observation) -> u8 {
        match o.reading {
            Reading::Level(l) => 6 - l.code(),
            Reading::NotOnSale => 1,
            Reading::Unknown => 0,
        }
    }
    let unrecognised = observations.iter().find_map(|o| o.unrecognised.clone());
    let mut best = observations
        .into_iter()
        .reduce(|a, b| if rank(&b) > rank(&a) { b } else { a })?;
    best.unrecognised = best.unrecognised.or(unrecognised);
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(level: Option<RawLevel>, remaining: Option<i64>, capacity: Option<i64>) -> RawAvailability {
        RawAvailability {
            product_id: None,
            performance_id: Some(1),
            level,
            remaining,
            capacity,
        }
    }

    fn name(n: &str) -> Option<RawLevel> {
        Some(RawLevel::Name(n.into()))
    }

    #[test]
    fn every_accepted_shape_maps_to_the_indicator() {
        let cases: Vec<(RawAvailability, Reading)> = vec![
            (
                raw(Some(RawLevel::Code(1)), None, None),
                Reading::Level(Level::Available),
            ),
            (
                raw(Some(RawLevel::Code(2)), None, None),
                Reading::Level(Level::AlmostFull),
            ),
            (raw(Some(RawLevel::Code(3)), None, None), Reading::Level(Level::Full)),
            (raw(name("GOOD"), None, None), Reading::Level(Level::Available)),
            (raw(name("available"), None, None), Reading::Level(Level::Available)),
            (raw(name("LIMITED"), None, None), Reading::Level(Level::AlmostFull)),
            (raw(name("almost full"), None, None), Reading::Level(Level::AlmostFull)),
            (raw(name("SOLD_OUT"), None, None), Reading::Level(Level::Full)),
            (raw(name("sold-out"), None, None), Reading::Level(Level::Full)),
            (raw(name("FULL"), None, None), Reading::Level(Level::Full)),
            (raw(name("NOT_VISIBLE"), None, None), Reading::NotOnSale),
            (raw(name("OUTSIDE_SALE_PERIOD"), None, None), Reading::NotOnSale),
            (raw(name("UNKNOWN"), None, None), Reading::Unknown),
            (raw(None, Some(0), Some(100)), Reading::Level(Level::Full)),
            (raw(None, Some(20), Some(100)), Reading::Level(Level::AlmostFull)),
            (raw(None, Some(21), Some(100)), Reading::Level(Level::Available)),
            (raw(None, Some(3), None), Reading::Level(Level::Available)),
            (raw(None, Some(-1), Some(100)), Reading::Unknown),
            (raw(None, None, Some(100)), Reading::Unknown),
            (raw(None, None, None), Reading::Unknown),
            // A level wins over counts.
            (raw(name("GOOD"), Some(0), Some(100)), Reading::Level(Level::Available)),
            (
                raw(name("OUTSIDE_SALE_PERIOD"), Some(50), Some(100)),
                Reading::NotOnSale,
            ),
        ];
        for (r, want) in cases {
            let o = observe(&r, 20.0);
            assert_eq!(o.reading, want, "{r:?}");
            assert_eq!(o.unrecognised, None, "{r:?}");
        }
    }

    #[test]
    fn unknown_names_and_numbers_are_flagged_and_fall_back_to_counts() {
        let o = observe(&raw(name("OPTIONABLE"), None, None), 20.0);
        assert_eq!(
            (o.reading, o.unrecognised.as_deref()),
            (Reading::Unknown, Some("OPTIONABLE"))
        );
        let o = observe(&raw(Some(RawLevel::Code(7)), None, None), 20.0);
        assert_eq!((o.reading, o.unrecognised.as_deref()), (Reading::Unknown, Some("7")));
        let o = observe(&raw(name("OPTIONABLE"), Some(5), Some(100)), 20.0);
        assert_eq!(o.reading, Reading::Level(Level::AlmostFull));
        assert_eq!(o.raw_level.as_deref(), Some("OPTIONABLE"));
    }

    #[test]
    fn the_event_alert_ratio_sets_the_orange_threshold() {
        assert_eq!(level_from_counts(30, Some(100), 20.0), Some(Level::Available));
        assert_eq!(level_from_counts(30, Some(100), 30.0), Some(Level::AlmostFull));
        assert_eq!(level_from_counts(1, Some(100), 0.0), Some(Level::Available));
        assert_eq!(level_from_counts(150, Some(100), 20.0), Some(Level::Available));
        assert_eq!(level_from_counts(5, Some(0), 20.0), Some(Level::Available));
    }

    #[test]
    fn seat_categories_combine_to_the_best() {
        let o = |r: Reading| Observation {
            reading: r,
            remaining: None,
            capacity: None,
            raw_level: None,
            unrecognised: None,
        };
        let c = combine(vec![
            o(Reading::Level(Level::Full)),
            o(Reading::Level(Level::Available)),
            o(Reading::NotOnSale),
        ])
        .expect("some");
        assert_eq!(c.reading, Reading::Level(Level::Available));
        assert_eq!(
            combine(vec![o(Reading::Unknown), o(Reading::NotOnSale)]).map(|c| c.reading),
            Some(Reading::NotOnSale)
        );
        assert_eq!(combine(vec![]), None);
    }
}
