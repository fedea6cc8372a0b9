//! The call ledger: every SecuTix call, failed or not, counts against the institution's quota; the store keeps them ([`CallLedger`]), tests may keep them in memory.

#[allow(unused_imports)]
use super::*;

/// Where calls are counted (the store in production): every HTTP request to SecuTix is recorded.
pub trait CallLedger: Send + Sync {
    /// Records one call of `service/method` at `at`, with the response size.
    fn record_call(&self, at: DateTime<Utc>, service: &str, method: &str, bytes: u64);
    /// When `method` was last called, if ever.
    fn last_call(&self, method: &str) -> Option<DateTime<Utc>>;
}

/// One recorded call: time, service, method, response bytes.
pub type CallRecord = (DateTime<Utc>, String, String, u64);

/// An in-memory ledger (tests, one-shot tools).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    /// Every call.
    pub calls: Mutex<Vec<CallRecord>>,
}

impl MemoryLedger {
    /// Number of calls of `method` recorded.
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .map(|c| c.iter().filter(|(_, _, m, _)| m == method).count())
            .unwrap_or(0)
    }
}

impl CallLedger for MemoryLedger {
    fn record_call(&self, at: DateTime<Utc>, service: &str, method: &str, bytes: u64) {
        if let Ok(mut c) = self.calls.lock() {
            c.push((at, service.to_owned(), method.to_owned(), bytes));
        }
    }
    fn last_call(&self, method: &str) -> Option<DateTime<Utc>> {
        self.calls
            .lock()
            .ok()?
            .iter()
            .filter(|(_, _, m, _)| m == method)
            .map(|(t, ..)| *t)
            .max()
    }
}
