//! The SecuTix call ledger: calls and bytes per month, per day and per service, kept in the store so that the budget survives restarts.

#[allow(unused_imports)]
use super::*;

impl Store {
    /// SecuTix calls in the venue-local month containing `at`.
    pub fn calls_in_month(&self, at: DateTime<Utc>) -> u64 {
        self.counter(&month_key(at.with_timezone(&self.time_zone())))
    }

    /// SecuTix calls on the venue-local day containing `at`.
    pub fn calls_on_day(&self, at: DateTime<Utc>) -> u64 {
        self.counter(&day_key(at.with_timezone(&self.time_zone())))
    }

    /// Bytes received from SecuTix in the venue-local month containing `at`.
    pub fn bytes_in_month(&self, at: DateTime<Utc>) -> u64 {
        self.counter(&format!("bytes.{}", month_key(at.with_timezone(&self.time_zone()))))
    }

    /// SecuTix calls of one service (`availabilityService`, `catalogService`, `auth`) in the venue-local
    /// month containing `at`.
    pub fn service_calls_in_month(&self, service: &str, at: DateTime<Utc>) -> u64 {
        let suffix = format!(".{}", month_key(at.with_timezone(&self.time_zone())));
        self.calls
            .scan_prefix(format!("method.{service}/"))
            .filter_map(Result::ok)
            .filter(|(k, _)| k.ends_with(suffix.as_bytes()))
            .filter_map(|(_, v)| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .sum()
    }

    pub(super) fn counter(&self, key: &str) -> u64 {
        self.calls
            .get(key)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    }

    pub(super) fn bump(&self, key: &str, by: u64) -> Result<(), sled::Error> {
        self.calls.update_and_fetch(key, |old| {
            let n = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + by;
            Some(n.to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

pub(super) fn month_key<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String {
    format!("month.{:04}-{:02}", t.year(), t.month())
}

pub(super) fn day_key<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String {
    format!("day.{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
}

impl CallLedger for Store {
    fn record_call(&self, at: DateTime<Utc>, service: &str, method: &str, bytes: u64) {
        let local = at.with_timezone(&self.time_zone());
        let r = (|| -> Result<(), sled::Error> {
            self.bump(&month_key(local), 1)?;
            self.bump(&day_key(local), 1)?;
            self.bump(&format!("bytes.{}", month_key(local)), bytes)?;
            self.bump(&format!("method.{service}/{method}.{}", month_key(local)), 1)?;
            self.calls
                .insert(format!("last.{method}"), at.to_rfc3339().as_bytes())?;
            Ok(())
        })();
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot record a SecuTix call in the store; the call budget may be undercounted");
        }
    }

    fn last_call(&self, method: &str) -> Option<DateTime<Utc>> {
        let v = self.calls.get(format!("last.{method}")).ok()??;
        DateTime::parse_from_rfc3339(std::str::from_utf8(&v).ok()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}
