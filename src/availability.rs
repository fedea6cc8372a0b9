//! CONTRACT STUB: replaced by branch availability at merge.
//!
//! Exactly the signatures of contract A (/work/coord/CONTRACTS.md) with minimal bodies, so that branch
//! `daemon` compiles before the real poller lands: nothing is stored or fetched, and
//! [`performance_status`] answers from the catalogue alone.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Id, Performance, Product, State};
use crate::store::{Store, StoreError};

/// The indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// 1, green.
    Available,
    /// 2, orange.
    AlmostFull,
    /// 3, red.
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
}

/// What the website shows for one performance at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The indicator, when known.
    pub level: Option<Level>,
    /// On sale now.
    pub on_sale: bool,
}

/// Stored per performance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerformanceAvailability {
    /// The indicator.
    pub level: Option<Level>,
    /// On-sale hint from SecuTix.
    pub on_sale: Option<bool>,
    /// When it was fetched.
    pub fetched_at: DateTime<Utc>,
    /// The last refresh failed.
    pub stale: bool,
}

/// Combines the catalogue with the stored availability (stub: the catalogue alone).
pub fn performance_status(
    product: &Product,
    perf: &Performance,
    _stored: Option<&PerformanceAvailability>,
    now: DateTime<Utc>,
) -> Status {
    let running = |s: &Option<State>| matches!(s, None | Some(State::Running));
    let open = |periods: &[crate::catalog::SalePeriod]| {
        periods.is_empty()
            || periods.iter().any(|p| {
                p.sale_possible != Some(false) && p.start.is_none_or(|s| s <= now) && p.end.is_none_or(|e| now < e)
            })
    };
    let on_sale = running(&product.state)
        && running(&perf.state)
        && !perf.is_past(now)
        && open(&product.sale_periods)
        && open(&perf.sale_periods);
    Status { level: None, on_sale }
}

/// sled trees of availability (stub: empty).
#[derive(Clone)]
pub struct AvailabilityStore {
    _store: Store,
}

/// A product whose indicator changed.
#[derive(Debug, Clone)]
pub struct DirtyMark {
    /// The product.
    pub product_id: Id,
}

/// The last finished poll.
#[derive(Debug, Clone, Serialize)]
pub struct PollRecord {
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// True when the poll did its job.
    pub ok: bool,
    /// SecuTix calls spent.
    pub calls: u64,
    /// Error, if any.
    pub error: Option<String>,
}

/// One indicator change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// When.
    pub at: DateTime<Utc>,
    /// The product.
    pub product_id: Id,
}

impl AvailabilityStore {
    /// Opens the trees.
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self { _store: store.clone() })
    }
    /// Stored availability of one performance.
    pub fn performance(&self, _product: Id, _performance: Id) -> Result<Option<PerformanceAvailability>, StoreError> {
        Ok(None)
    }
    /// Products whose indicator or on-sale flag changed.
    pub fn dirty_products(&self) -> Result<Vec<DirtyMark>, StoreError> {
        Ok(Vec::new())
    }
    /// Clears exactly these marks.
    pub fn clear_dirty(&self, _marks: &[DirtyMark]) -> Result<(), StoreError> {
        Ok(())
    }
    /// The last finished poll.
    pub fn last_poll(&self) -> Result<Option<PollRecord>, StoreError> {
        Ok(None)
    }
    /// Most recent indicator changes first.
    pub fn recent_changes(&self, _limit: usize) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }
}

/// Why a poll was impossible.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Options of one poll.
#[derive(Debug, Clone, Default)]
pub struct PollOptions {
    /// Only this product.
    pub product: Option<Id>,
}

/// What one poll did.
#[derive(Debug, Clone, Serialize)]
pub struct PollReport {
    /// SecuTix calls spent.
    pub calls: u64,
    /// Products fetched.
    pub fetched: Vec<Id>,
    /// Products left stale.
    pub stale: Vec<Id>,
    /// Products still to fetch.
    pub pending: usize,
    /// Indicator changes.
    pub changes: Vec<Change>,
    /// Products marked dirty.
    pub dirty: Vec<Id>,
    /// Calls this month.
    pub month_calls: u64,
    /// When to poll next.
    pub next_poll_in: std::time::Duration,
    /// A failure part-way.
    pub error: Option<String>,
}

/// The availability poller (stub: fetches nothing).
pub struct Poller {
    availability: AvailabilityStore,
}

impl Poller {
    /// A poller on `store`.
    pub fn new(
        _client: Arc<crate::secutix::Client>,
        store: Store,
        _cfg: crate::config::AvailabilityConfig,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            availability: AvailabilityStore::new(&store)?,
        })
    }
    /// One poll.
    pub async fn poll_once(&self, _opts: PollOptions) -> Result<PollReport, AvailabilityError> {
        Ok(PollReport {
            calls: 0,
            fetched: Vec::new(),
            stale: Vec::new(),
            pending: 0,
            changes: Vec::new(),
            dirty: Vec::new(),
            month_calls: 0,
            next_poll_in: std::time::Duration::from_secs(300),
            error: None,
        })
    }
    /// The store it writes.
    pub fn availability(&self) -> &AvailabilityStore {
        &self.availability
    }
}
