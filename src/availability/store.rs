//! The sled trees of availability, in the shared database ([`Store::db`]). Records are JSON.
//!
//! | Tree | Key | Value |
//! |---|---|---|
//! | `avail.performances` | product id ‖ performance id (big-endian) | [`PerformanceAvailability`] |
//! | `avail.products` | product id | [`PerformanceAvailability`] of a product without performances |
//! | `avail.tracking` | product id | [`ProductTrack`]: checked / pending / fetched / failed / stale |
//! | `avail.dirty` | product id | sequence number of the mark ([`DirtyMark`]) |
//! | `avail.changes` | sequence number | [`Change`] (bounded by `change_log_size`) |
//! | `avail.polls` | sequence number | [`PollRecord`] (bounded by `poll_history_size`) |
//! | `avail.meta` | `planner` | [`PlannerState`]: poll count, pacing credit, reference date, failures |
//!
//! A product's fetch is written in **one** sled transaction (its performances, its tracking, its change
//! records and its dirty mark), so a crash never leaves a changed indicator without its dirty mark.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::PerformanceAvailability;
use super::planner::PlannerState;
use crate::catalog::Id;
use crate::indicator::AvailabilityStatus;
use crate::store::{Store, StoreError, decode, encode};

/// A product whose indicator or on-sale flag changed and whose entry was not re-planned yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirtyMark {
    /// The product.
    pub product_id: Id,
    /// Sequence number of the mark: [`AvailabilityStore::clear_dirty`] clears a mark only if it was not set
    /// again since it was read.
    pub seq: u64,
}

/// One change of what the website shows for a performance (or a product without performances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Sequence number (increasing).
    pub seq: u64,
    /// When the change was seen.
    pub at: DateTime<Utc>,
    /// The product.
    pub product_id: Id,
    /// The performance; `None` for a product without performances.
    pub performance_id: Option<Id>,
    /// What the website showed before.
    pub before: AvailabilityStatus,
    /// What it shows now.
    pub after: AvailabilityStatus,
}

/// One finished poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollRecord {
    /// Sequence number.
    pub seq: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// No error.
    pub ok: bool,
    /// `--product` (or a control API trigger for one product): only that product was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Id>,
    /// SecuTix calls made (failed ones included).
    pub calls: u64,
    /// Calls this poll was allowed.
    pub allowance: u64,
    /// Products asked about with getUpdatedAvailabilities.
    pub asked: usize,
    /// Products SecuTix reported as changed.
    pub reported: usize,
    /// Products fetched.
    pub fetched: usize,
    /// Indicator changes.
    pub changed: usize,
    /// Products that could not be refreshed (marked stale).
    pub stale: usize,
    /// Products still waiting for a fetch.
    pub pending: usize,
    /// Records whose level SecuTix sent in a form this version does not know.
    pub unrecognised: usize,
    /// All SecuTix calls this month (venue time zone) after the poll.
    pub month_calls: u64,
    /// Availability calls still allowed this month after the poll.
    pub budget_left: u64,
    /// Time to the next poll.
    pub next_poll_in_secs: u64,
    /// What went wrong.
    pub error: Option<String>,
}

/// Bookkeeping of one product's availability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductTrack {
    /// Its availability is known to be current as of this time (start of the last poll that asked about it
    /// or fetched it): the `referenceDate` to ask with next.
    pub checked_at: Option<DateTime<Utc>>,
    /// SecuTix reported a change (or the walk made it due) and it was not fetched yet.
    pub pending_since: Option<DateTime<Utc>>,
    /// Last successful fetch.
    pub fetched_at: Option<DateTime<Utc>>,
    /// Last failed fetch.
    pub failed_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last refresh failed.
    pub stale: bool,
}

/// A product's fetch, written in one transaction by [`AvailabilityStore::apply`].
#[derive(Debug, Clone)]
pub struct ProductUpdate {
    /// The product.
    pub product_id: Id,
    /// Its new bookkeeping.
    pub track: ProductTrack,
    /// New records: `(Some(performance), …)`, or `(None, …)` for a product without performances.
    pub records: Vec<(Option<Id>, PerformanceAvailability)>,
    /// Changes of what the website shows: `(performance, before, after)`.
    pub changes: Vec<(Option<Id>, AvailabilityStatus, AvailabilityStatus)>,
    /// When.
    pub at: DateTime<Utc>,
}

const PLANNER_KEY: &[u8] = b"planner";

/// sled trees of availability. Cheap to clone.
#[derive(Clone)]
pub struct AvailabilityStore {
    store: Store,
    performances: sled::Tree,
    products: sled::Tree,
    tracking: sled::Tree,
    dirty: sled::Tree,
    changes: sled::Tree,
    polls: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for AvailabilityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvailabilityStore").finish_non_exhaustive()
    }
}

fn perf_key(product: Id, performance: Id) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&product.to_be_bytes());
    k[8..].copy_from_slice(&performance.to_be_bytes());
    k
}

fn id_of(k: &[u8]) -> Option<Id> {
    Some(Id::from_be_bytes(k.get(..8)?.try_into().ok()?))
}

impl AvailabilityStore {
    /// Opens (or creates) the trees in `store`.
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        let db = store.db();
        let open = |name: &str| db.open_tree(name).map_err(|e| store.sled_error(e));
        Ok(Self {
            store: store.clone(),
            performances: open("avail.performances")?,
            products: open("avail.products")?,
            tracking: open("avail.tracking")?,
            dirty: open("avail.dirty")?,
            changes: open("avail.changes")?,
            polls: open("avail.polls")?,
            meta: open("avail.meta")?,
        })
    }

    fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| self.store.sled_error(e)
    }

    /// The availability last fetched for a performance.
    pub fn performance(&self, product: Id, performance: Id) -> Result<Option<PerformanceAvailability>, StoreError> {
        self.performances
            .get(perf_key(product, performance))
            .map_err(self.err())?
            .map(|v| decode(&v, &format!("availability of performance {performance}")))
            .transpose()
    }

    /// The stored performances of a product, by performance id.
    pub fn performances_of(&self, product: Id) -> Result<Vec<(Id, PerformanceAvailability)>, StoreError> {
        self.performances
            .scan_prefix(product.to_be_bytes())
            .map(|r| {
                let (k, v) = r.map_err(self.err())?;
                let perf = k
                    .get(8..16)
                    .and_then(|b| b.try_into().ok())
                    .map(Id::from_be_bytes)
                    .unwrap_or_default();
                Ok((perf, decode(&v, &format!("availability of performance {perf}"))?))
            })
            .collect()
    }

    /// The availability last fetched for a product without performances (getProductAvailability).
    pub fn product_level(&self, product: Id) -> Result<Option<PerformanceAvailability>, StoreError> {
        self.products
            .get(product.to_be_bytes())
            .map_err(self.err())?
            .map(|v| decode(&v, &format!("availability of product {product}")))
            .transpose()
    }

    /// A product's bookkeeping.
    pub fn tracking(&self, product: Id) -> Result<Option<ProductTrack>, StoreError> {
        self.tracking
            .get(product.to_be_bytes())
            .map_err(self.err())?
            .map(|v| decode(&v, &format!("tracking of product {product}")))
            .transpose()
    }

    /// Writes a product's bookkeeping.
    pub fn set_tracking(&self, product: Id, track: &ProductTrack) -> Result<(), StoreError> {
        self.tracking
            .insert(product.to_be_bytes(), encode(track, "tracking")?)
            .map_err(self.err())?;
        Ok(())
    }

    /// Products whose indicator or on-sale flag changed and whose entries were not re-planned yet.
    pub fn dirty_products(&self) -> Result<Vec<DirtyMark>, StoreError> {
        self.dirty
            .iter()
            .map(|r| {
                let (k, v) = r.map_err(self.err())?;
                let bad = || StoreError::Corrupt {
                    key: "dirty mark".into(),
                    reason: "not two 8-byte numbers".into(),
                };
                Ok(DirtyMark {
                    product_id: id_of(&k).ok_or_else(bad)?,
                    seq: v.as_ref().try_into().map(u64::from_be_bytes).map_err(|_| bad())?,
                })
            })
            .collect()
    }

    /// Clears exactly these marks; a mark set again after `dirty_products` was read stays.
    pub fn clear_dirty(&self, marks: &[DirtyMark]) -> Result<(), StoreError> {
        for m in marks {
            // A failed compare-and-swap means the mark was set again: it stays for the next plan.
            let _ = self
                .dirty
                .compare_and_swap(
                    m.product_id.to_be_bytes(),
                    Some(&m.seq.to_be_bytes()[..]),
                    None::<&[u8]>,
                )
                .map_err(self.err())?;
        }
        self.dirty.flush().map_err(self.err())?;
        Ok(())
    }

    /// The last finished poll.
    pub fn last_poll(&self) -> Result<Option<PollRecord>, StoreError> {
        Ok(self.polls(1)?.into_iter().next())
    }

    /// The most recent polls, newest first.
    pub fn polls(&self, limit: usize) -> Result<Vec<PollRecord>, StoreError> {
        self.polls
            .iter()
            .rev()
            .take(limit)
            .map(|r| decode(&r.map_err(self.err())?.1, "poll record"))
            .collect()
    }

    /// Most recent indicator changes first.
    pub fn recent_changes(&self, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changes
            .iter()
            .rev()
            .take(limit)
            .map(|r| decode(&r.map_err(self.err())?.1, "change record"))
            .collect()
    }

    /// Start of the previous successful poll (the `referenceDate` of products asked at every poll).
    pub fn reference_date(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.planner_state()?.reference_date)
    }

    /// The planner's state (default before the first poll).
    pub fn planner_state(&self) -> Result<PlannerState, StoreError> {
        Ok(match self.meta.get(PLANNER_KEY).map_err(self.err())? {
            Some(v) => decode(&v, "planner state")?,
            None => PlannerState::default(),
        })
    }

    /// Saves the planner's state.
    pub fn set_planner_state(&self, s: &PlannerState) -> Result<(), StoreError> {
        self.meta
            .insert(PLANNER_KEY, encode(s, "planner state")?)
            .map_err(self.err())?;
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        self.store.db().generate_id().map_err(self.err())
    }

    /// Writes a product's fetch in one transaction; returns the change records written.
    pub fn apply(&self, u: &ProductUpdate, change_log_size: usize) -> Result<Vec<Change>, StoreError> {
        let mut changes = Vec::with_capacity(u.changes.len());
        for (perf, before, after) in &u.changes {
            changes.push(Change {
                seq: self.next_seq()?,
                at: u.at,
                product_id: u.product_id,
                performance_id: *perf,
                before: *before,
                after: *after,
            });
        }
        let mark = if changes.is_empty() {
            None
        } else {
            Some(self.next_seq()?)
        };
        let mut perf_rows = Vec::new();
        let mut product_rows = Vec::new();
        for (perf, rec) in &u.records {
            let bytes = encode(rec, "availability")?;
            match perf {
                Some(p) => perf_rows.push((perf_key(u.product_id, *p).to_vec(), bytes)),
                None => product_rows.push((u.product_id.to_be_bytes().to_vec(), bytes)),
            }
        }
        let change_rows: Vec<(u64, Vec<u8>)> = changes
            .iter()
            .map(|c| Ok((c.seq, encode(c, "change record")?)))
            .collect::<Result<_, StoreError>>()?;
        let track = encode(&u.track, "tracking")?;
        let key = u.product_id.to_be_bytes();
        (
            &self.performances,
            &self.products,
            &self.tracking,
            &self.changes,
            &self.dirty,
        )
            .transaction(|(perfs, prods, tracking, log, dirty)| {
                for (k, v) in &perf_rows {
                    perfs.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &product_rows {
                    prods.insert(k.as_slice(), v.as_slice())?;
                }
                tracking.insert(&key[..], track.as_slice())?;
                for (seq, v) in &change_rows {
                    log.insert(&seq.to_be_bytes()[..], v.as_slice())?;
                }
                if let Some(m) = mark {
                    dirty.insert(&key[..], &m.to_be_bytes()[..])?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => self.store.sled_error(e),
                TransactionError::Abort(()) => StoreError::Corrupt {
                    key: format!("availability of product {}", u.product_id),
                    reason: "transaction aborted".into(),
                },
            })?;
        if !changes.is_empty() {
            trim(&self.changes, change_log_size).map_err(self.err())?;
        }
        Ok(changes)
    }

    /// Marks the stored performances (or the product-level record) of a product stale, keeping their values;
    /// records why in its bookkeeping. `permanent` (the answer could not be read, as opposed to a rate limit
    /// or a timeout) also sets `failed_at`, so the product waits before it is tried again.
    pub fn mark_stale(&self, product: Id, now: DateTime<Utc>, error: &str, permanent: bool) -> Result<(), StoreError> {
        for (perf, mut rec) in self.performances_of(product)? {
            if !rec.stale {
                rec.stale = true;
                rec.stale_since = Some(now);
                self.performances
                    .insert(perf_key(product, perf), encode(&rec, "availability")?)
                    .map_err(self.err())?;
            }
        }
        if let Some(mut rec) = self.product_level(product)?
            && !rec.stale
        {
            rec.stale = true;
            rec.stale_since = Some(now);
            self.products
                .insert(product.to_be_bytes(), encode(&rec, "availability")?)
                .map_err(self.err())?;
        }
        let mut track = self.tracking(product)?.unwrap_or_default();
        track.stale = true;
        track.last_error = Some(error.to_owned());
        if permanent {
            track.failed_at = Some(now);
        }
        self.set_tracking(product, &track)
    }

    /// Clears the stale flags of a product whose values SecuTix confirmed as current.
    pub fn clear_stale(&self, product: Id) -> Result<(), StoreError> {
        for (perf, mut rec) in self.performances_of(product)? {
            if rec.stale {
                rec.stale = false;
                rec.stale_since = None;
                self.performances
                    .insert(perf_key(product, perf), encode(&rec, "availability")?)
                    .map_err(self.err())?;
            }
        }
        if let Some(mut rec) = self.product_level(product)?
            && rec.stale
        {
            rec.stale = false;
            rec.stale_since = None;
            self.products
                .insert(product.to_be_bytes(), encode(&rec, "availability")?)
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Appends a poll record, keeping the last `keep`.
    pub fn record_poll(&self, rec: &PollRecord, keep: usize) -> Result<(), StoreError> {
        self.polls
            .insert(rec.seq.to_be_bytes(), encode(rec, "poll record")?)
            .map_err(self.err())?;
        trim(&self.polls, keep).map_err(self.err())?;
        Ok(())
    }

    /// A new poll sequence number.
    pub fn next_poll_seq(&self) -> Result<u64, StoreError> {
        self.next_seq()
    }

    /// Flushes the availability trees to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

fn trim(tree: &sled::Tree, keep: usize) -> Result<(), sled::Error> {
    let mut n = tree.len();
    while n > keep.max(1) {
        if tree.pop_min()?.is_none() {
            break;
        }
        n -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::Level;
    use chrono::TimeZone;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().expect("date")
    }

    fn rec(level: Level) -> PerformanceAvailability {
        PerformanceAvailability {
            level: Some(level),
            on_sale: Some(true),
            remaining: None,
            capacity: None,
            raw_level: None,
            fetched_at: t(),
            changed_at: t(),
            stale: false,
            stale_since: None,
        }
    }

    fn update(product: Id, changed: bool) -> ProductUpdate {
        ProductUpdate {
            product_id: product,
            track: ProductTrack::default(),
            records: vec![(Some(10), rec(Level::Full))],
            changes: if changed {
                vec![(Some(10), AvailabilityStatus::Available, AvailabilityStatus::SoldOut)]
            } else {
                vec![]
            },
            at: t(),
        }
    }

    #[test]
    fn a_mark_set_again_after_reading_survives_clear() {
        let store = Store::temporary(crate::clock::system()).expect("store");
        let a = AvailabilityStore::new(&store).expect("trees");
        a.apply(&update(1, true), 100).expect("apply");
        a.apply(&update(2, false), 100).expect("apply");
        let marks = a.dirty_products().expect("marks");
        assert_eq!(marks.iter().map(|m| m.product_id).collect::<Vec<_>>(), vec![1]);
        a.apply(&update(1, true), 100).expect("apply again");
        a.clear_dirty(&marks).expect("clear");
        assert_eq!(a.dirty_products().expect("marks").len(), 1, "the newer mark stays");
        let marks = a.dirty_products().expect("marks");
        a.clear_dirty(&marks).expect("clear");
        assert!(a.dirty_products().expect("marks").is_empty());
        assert_eq!(
            a.performance(1, 10).expect("read").map(|r| r.level),
            Some(Some(Level::Full))
        );
    }

    #[test]
    fn the_change_log_is_bounded_and_newest_first() {
        let store = Store::temporary(crate::clock::system()).expect("store");
        let a = AvailabilityStore::new(&store).expect("trees");
        for p in 0..5 {
            a.apply(&update(p, true), 3).expect("apply");
        }
        let c = a.recent_changes(10).expect("changes");
        assert_eq!(c.iter().map(|c| c.product_id).collect::<Vec<_>>(), vec![4, 3, 2]);
    }

    #[test]
    fn stale_keeps_the_value() {
        let store = Store::temporary(crate::clock::system()).expect("store");
        let a = AvailabilityStore::new(&store).expect("trees");
        a.apply(&update(1, false), 10).expect("apply");
        a.mark_stale(1, t(), "HTTP 509", false).expect("stale");
        let r = a.performance(1, 10).expect("read").expect("some");
        assert!(r.stale);
        assert_eq!(r.level, Some(Level::Full));
        let tr = a.tracking(1).expect("read").expect("some");
        assert!(tr.stale);
        assert_eq!(tr.last_error.as_deref(), Some("HTTP 509"));
    }
}
