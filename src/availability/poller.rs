//! One availability poll, end to end.
//!
//! 1. The products to consider: live products of the catalogue in force with at least one performance the
//!    catalogue lets be on sale (future, state not blocking, sale period open or none given), and products
//!    without performances that are on sale. Past performances are never polled.
//! 2. **Ask** (`use_updated_availabilities`): `getUpdatedAvailabilities` about the products whose tier is due
//!    this poll, with the oldest `checked_at` among them (less [`REFERENCE_OVERLAP`]) as `referenceDate`; a
//!    reported product whose `lastUpdate` is not after its own `checked_at` (less the overlap) was already
//!    seen. Reported products become *pending*.
//!    Without asking, the due products become pending (the walk).
//! 3. **Fetch** pending products and first fetches in tier order (near, mid, far; a mid or far product
//!    pending longer than `mid_every` / `far_every` × `max_interval` goes before the other mid and far ones,
//!    oldest first), each within its pool (see [`super::planner`]); one `getEventAvailability` (or `getPerformanceAvailability`) per product with all
//!    its performances to poll (split at `ids_per_call`), or `getProductAvailability`. What does not fit
//!    stays pending for the next poll.
//! 4. **Apply** each product in one transaction: the new values, and a change record plus a dirty mark for
//!    every performance whose shown status changed.
//! 5. **Failures**: a rate limit (509/429), a timeout, a network error or refused credentials stop the poll;
//!    the product that failed and those planned after it keep their values, marked stale, and the next poll
//!    backs off. A product whose answer cannot be read is marked stale and tried again after
//!    `max_interval`; the others go on.
//!
//! Every HTTP call is made once and counted; no call is made that would pass what is left this month.
//!
//! A first poll of a large venue takes minutes (SecuTix allows 60 calls a minute): the poll reports its
//! [`PollProgress`] (products done and to do, calls spent, an estimate) to a [`ProgressSink`] as it goes,
//! which the daemon shows in `/status` and the CLI as a bar or periodic lines.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::mapping::{Observation, Reading, combine, observe};
use super::planner::{Budget, PlannerState, Tier, backoff, next_interval, tier_due, tier_of};
use super::store::{AvailabilityStore, Change, PollRecord, ProductTrack, ProductUpdate};
use super::{AvailabilityError, PerformanceAvailability, SaleWindow, performance_status, product_status, sale_window};
use crate::availability::settings::AvailabilityConfig;
use crate::catalog::{Id, Product};
use crate::secutix::availability::{AvailabilityMethod, RawAvailability};
use crate::secutix::{CallError, Client, RetryPolicy};
use crate::store::{ProductRecord, Store, StoreError};

/// How far back of a product's `checked_at` it is asked about (clock differences with SecuTix, changes at
/// the instant of the previous poll).
pub const REFERENCE_OVERLAP: chrono::Duration = chrono::Duration::seconds(10);

/// What one poll should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollOptions {
    /// Fetch only this product, now, whatever its tier (`secutix-sync availability --product ID`).
    pub product: Option<Id>,
}

/// How far a poll in progress is (in `/status` under the running availability job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollProgress {
    /// `asking` (getUpdatedAvailabilities: which products changed) or `fetching` (their availabilities).
    pub phase: String,
    /// Products asked about (asking) or fetched (fetching) so far.
    pub products_done: u64,
    /// Products to ask about (asking) or to fetch (fetching) in this poll.
    pub products_total: u64,
    /// SecuTix calls this poll has spent.
    pub calls: u64,
    /// Calls this poll expects to spend in all (known once the fetches are planned).
    pub calls_planned: Option<u64>,
    /// Seconds the rest should take, from the pace so far (SecuTix allows `secutix.calls_per_minute`).
    pub eta_secs: Option<u64>,
}

/// Where a poll reports its [`PollProgress`]: shared with whoever shows it (the daemon's job state, the
/// CLI's bar). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ProgressSink(Arc<Mutex<Option<PollProgress>>>);

impl ProgressSink {
    /// The latest progress, if a poll reported one since the last [`ProgressSink::clear`].
    pub fn get(&self) -> Option<PollProgress> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the progress (a new run starts, or the poll ended).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn set(&self, p: PollProgress) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(p);
    }
}

/// What one poll did.
#[derive(Debug, Clone, Serialize)]
pub struct PollReport {
    /// SecuTix calls made, failed ones included.
    pub calls: u64,
    /// Products fetched.
    pub fetched: Vec<Id>,
    /// Products that could not be refreshed: their values are kept, marked stale.
    pub stale: Vec<Id>,
    /// Products still waiting for a fetch (changed, or never fetched) after this poll.
    pub pending: usize,
    /// Changes of what the website shows.
    pub changes: Vec<Change>,
    /// Products marked dirty by this poll (their entries need planning).
    pub dirty: Vec<Id>,
    /// All SecuTix calls this month (venue time zone), this poll included.
    pub month_calls: u64,
    /// When the next poll should come.
    #[serde(with = "humantime_serde")]
    pub next_poll_in: Duration,
    /// What went wrong, if anything (the poll still kept what it fetched).
    pub error: Option<String>,
    /// Calls this poll was allowed to spend.
    pub allowance: u64,
    /// Products asked about with getUpdatedAvailabilities.
    pub asked: usize,
    /// Products SecuTix reported as changed.
    pub reported: usize,
    /// Records with a level this version does not know (left as they were).
    pub unrecognised: usize,
    /// Availability calls still allowed this month.
    pub budget_left: u64,
}

/// Polls SecuTix availabilities into the store. Cheap to build: all its state is in the store.
pub struct Poller {
    client: Arc<Client>,
    store: Store,
    cfg: AvailabilityConfig,
    avail: AvailabilityStore,
    /// Where the progress goes while a poll runs (nowhere by default).
    progress: ProgressSink,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A product to consider in this poll. It holds the product's id, not its record: a large venue's
/// records take gigabytes once decoded, and a poll fetches few of them (the record is read again then).
struct Candidate {
    id: Id,
    tier: Tier,
    first_start: Option<DateTime<Utc>>,
    /// Performances to poll; empty for a product without performances.
    perfs: Vec<Id>,
    dated: bool,
    /// Needs a first fetch (never fetched, fetched before its sale opened, or the catalogue changed since).
    first: bool,
    track: ProductTrack,
    /// A recent failure that was not a rate limit: wait `max_interval` before trying again.
    cooling: bool,
    /// Fetched by this poll.
    done: bool,
}

impl Candidate {
    fn id(&self) -> Id {
        self.id
    }
    fn cost(&self, ids_per_call: usize) -> u64 {
        if self.dated {
            self.perfs.len().div_ceil(ids_per_call.max(1)) as u64
        } else {
            1
        }
    }
    fn pending(&self) -> bool {
        !self.done && self.track.pending_since.is_some()
    }
    fn waiting(&self) -> bool {
        !self.done && (self.first || self.track.pending_since.is_some())
    }
}

/// How a failed call affects the poll.
enum Failure {
    /// Rate limit, timeout, network, 5xx: stop and back off.
    Transient(Option<Duration>),
    /// Credentials or a local problem: stop.
    Global,
    /// This product's answer: mark it, go on.
    Product,
}

fn classify(e: &CallError) -> Failure {
    match e {
        CallError::Deadline { last, .. } => classify(last),
        CallError::RateLimited { wait, .. } => Failure::Transient(Some(*wait).filter(|w| !w.is_zero())),
        CallError::Timeout { .. } | CallError::Network { .. } => Failure::Transient(None),
        CallError::Http {
            status: 500 | 502 | 503 | 504,
            ..
        } => Failure::Transient(None),
        CallError::Auth { .. } | CallError::Local(_) => Failure::Global,
        _ => Failure::Product,
    }
}

/// Mutable state of one poll.
struct Run {
    started: DateTime<Utc>,
    calls: u64,
    /// Calls this poll may still make (what is left this month, at most `max_calls_per_poll`).
    left: u64,
    /// Regular (paced) calls spent.
    regular: u64,
    /// When the progress was first reported after a call, and the calls then: the start of the pace the
    /// estimate of the time left is measured on.
    paced_since: Option<(DateTime<Utc>, u64)>,
    report: PollReport,
    errors: Vec<String>,
    stop: Option<Failure>,
    stale: HashSet<Id>,
}

impl Run {
    fn fail(&mut self, msg: String, kind: Failure) {
        self.errors.push(msg);
        if !matches!(kind, Failure::Product) {
            self.stop = Some(kind);
        }
    }
}

impl Poller {
    /// A poller on `client` (whose ledger should be `store`), with the `[availability]` settings.
    pub fn new(client: Arc<Client>, store: Store, cfg: AvailabilityConfig) -> Result<Self, StoreError> {
        let avail = AvailabilityStore::new(&store)?;
        Ok(Self {
            client,
            store,
            cfg,
            avail,
            progress: ProgressSink::default(),
        })
    }

    /// Reports the progress of every poll to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = sink;
        self
    }

    /// Reports how far the poll is; the estimate comes from the pace of the calls so far (the client spaces
    /// them by `60 s / secutix.calls_per_minute`), measured from the first report after a call: the first
    /// call goes at once and says nothing of the pace.
    fn report_progress(&self, phase: &str, done: usize, total: usize, calls_left: Option<u64>, run: &mut Run) {
        let now = self.now();
        if run.paced_since.is_none() && run.calls > 0 {
            run.paced_since = Some((now, run.calls));
        }
        let per_call = run
            .paced_since
            .filter(|(_, calls)| run.calls > *calls)
            .map(|(since, calls)| (now - since).num_milliseconds().max(0) as f64 / 1000.0 / (run.calls - calls) as f64);
        self.progress.set(PollProgress {
            phase: phase.to_owned(),
            products_done: done as u64,
            products_total: total as u64,
            calls: run.calls,
            calls_planned: calls_left.map(|left| run.calls + left),
            eta_secs: calls_left
                .zip(per_call)
                .map(|(left, per_call)| (left as f64 * per_call).ceil() as u64),
        });
    }

    /// A poller of SecuTix at `secutix` (whatever its base URL: production, a simulator, a mock) with the
    /// `availability` settings, whose calls are counted in `store`'s ledger. Benchmarks read the calls a
    /// refresh costs from [`PollReport::calls`].
    pub fn from_config(
        secutix: &crate::secutix::settings::SecutixConfig,
        availability: &AvailabilityConfig,
        store: Store,
    ) -> Result<Self, AvailabilityError> {
        let client = Client::new(secutix, Arc::new(store.clone()), store.clock().clone())?;
        Ok(Self::new(Arc::new(client), store, availability.clone())?)
    }

    /// The availability trees.
    pub fn availability(&self) -> &AvailabilityStore {
        &self.avail
    }

    /// The settings in use.
    pub fn config(&self) -> &AvailabilityConfig {
        &self.cfg
    }

    fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }

    /// One poll. Err only for what makes the poll impossible (no catalogue, store error). A poll that
    /// failed part-way (509/429/timeout…) returns Ok with `error: Some(..)`, what it fetched kept, the
    /// rest marked stale.
    pub async fn poll_once(&self, opts: PollOptions) -> Result<PollReport, AvailabilityError> {
        let started = self.now();
        let catalog = self.store.catalog()?.ok_or(AvailabilityError::NoCatalogue)?;
        let pos_id = catalog
            .meta
            .pos
            .as_ref()
            .and_then(|p| p.pos_id)
            .ok_or(AvailabilityError::NoPointOfSale)?;
        let mut cands = self.candidates(&catalog, started, opts.product)?;
        let budget = Budget::at(&self.cfg, &self.store, started);
        let mut state = self.avail.planner_state()?;
        let cap = f64::from(self.cfg.max_calls_per_poll.max(1));
        state.refill(budget.rate(started), started, cap);
        let mut run = Run {
            started,
            calls: 0,
            // A poll never spends more than max_calls_per_poll, nor what is left this month.
            left: budget.left.min(u64::from(self.cfg.max_calls_per_poll.max(1))),
            regular: 0,
            paced_since: None,
            report: PollReport {
                calls: 0,
                fetched: vec![],
                stale: vec![],
                pending: 0,
                changes: vec![],
                dirty: vec![],
                month_calls: 0,
                next_poll_in: self.cfg.min_interval,
                error: None,
                allowance: 0,
                asked: 0,
                reported: 0,
                unrecognised: 0,
                budget_left: budget.left,
            },
            errors: vec![],
            stop: None,
            stale: HashSet::new(),
        };
        let mut change_calls = None;
        match opts.product {
            Some(id) => {
                if !cands.iter().any(|c| c.id() == id) {
                    let live = catalog.product(id)?.is_some_and(|r| r.removed_at.is_none());
                    if !live {
                        return Err(AvailabilityError::UnknownProduct(id));
                    }
                    run.errors.push(format!(
                        "product {id} has nothing to poll: none of its performances is on sale per the catalogue \
                         (past, cancelled, suspended or outside its sale periods)"
                    ));
                }
                let cost: u64 = cands.iter().map(|c| c.cost(self.cfg.ids_per_call)).sum();
                run.report.allowance = run.left.min(cost);
                if budget.left == 0 {
                    run.errors.push(self.exhausted(&budget));
                } else if cost > run.left {
                    run.errors.push(format!(
                        "product {id} needs {cost} calls and a poll may make {} (availability.max_calls_per_poll, \
                         or what is left of this month's budget); raise availability.ids_per_call or \
                         max_calls_per_poll",
                        run.left
                    ));
                } else {
                    let order: Vec<(usize, bool)> = (0..cands.len()).map(|i| (i, true)).collect();
                    self.fetch_all(&catalog, pos_id, &mut cands, &order, &mut run).await?;
                }
                state.spend(run.calls);
            }
            None if budget.left == 0 => run.errors.push(self.exhausted(&budget)),
            None => {
                let first_pool = budget.first_fetch_allowance(started, &self.cfg);
                let mut credit = (state.credit.floor().max(0.0) as u64).min(run.left);
                run.report.allowance = (credit + first_pool).min(run.left);
                if self.cfg.use_updated_availabilities {
                    change_calls = Some(self.ask(pos_id, &mut cands, state.seq, &mut credit, &mut run).await?);
                } else {
                    self.walk(&mut cands, state.seq, started)?;
                }
                if run.stop.is_none() {
                    let plan = self.plan(&cands, credit, first_pool, &run);
                    self.fetch_all(&catalog, pos_id, &mut cands, &plan, &mut run).await?;
                }
                state.spend(run.regular);
                state.seq += 1;
            }
        }
        self.finish(cands, budget, state, change_calls, run, opts.product)
    }

    fn exhausted(&self, b: &Budget) -> String {
        format!(
            "the availability share of the monthly SecuTix call budget is spent ({} of {} calls this month; \
             {} SecuTix calls in all, availability.monthly_call_budget = {}, reserve_share = {}); indicators stay \
             as they are until the month ends at {} (raise availability.monthly_call_budget if your contract allows)",
            b.availability_spent,
            b.share,
            b.total_spent,
            b.monthly,
            self.cfg.reserve_share,
            b.month_end.format("%Y-%m-%d %H:%M UTC")
        )
    }

    /// The products to consider (see the module docs), ordered by tier then first performance.
    fn candidates(
        &self,
        catalog: &crate::store::CatalogView,
        now: DateTime<Utc>,
        only: Option<Id>,
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut out = Vec::new();
        let cooling_after = chrono::Duration::from_std(self.cfg.max_interval).unwrap_or_default();
        let records: Box<dyn Iterator<Item = Result<ProductRecord, StoreError>>> = match only {
            Some(id) => Box::new(catalog.product(id)?.into_iter().map(Ok)),
            None => Box::new(catalog.products()),
        };
        for rec in records {
            let rec = rec?;
            if rec.removed_at.is_some() {
                continue;
            }
            let p = &rec.product;
            let track = self.avail.tracking(p.id)?.unwrap_or_default();
            let fresh_after = |since: Option<DateTime<Utc>>| since.map_or(rec.changed_at, |s| s.max(rec.changed_at));
            // Already fetched successfully after the moment that matters: SecuTix's answer was used (or
            // was unusable); no first fetch.
            let fetched_since = |t: DateTime<Utc>| track.fetched_at.is_some_and(|f| f >= t);
            let (dated, perfs, first_start, first) = if p.event.is_some() {
                let mut perfs = Vec::new();
                let mut first_start = None;
                let mut first = false;
                for perf in p.performances() {
                    let SaleWindow::Open { since } = sale_window(p, Some(perf), now) else {
                        continue;
                    };
                    perfs.push(perf.id);
                    first_start = match (first_start, perf.start) {
                        (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                        (a, b) => a.or(b),
                    };
                    let needed = fresh_after(since);
                    let outdated = match self.avail.performance(p.id, perf.id)? {
                        None => true,
                        Some(s) => s.fetched_at < needed,
                    };
                    first |= outdated && !fetched_since(needed);
                }
                if perfs.is_empty() {
                    continue;
                }
                (true, perfs, first_start, first)
            } else {
                let SaleWindow::Open { since } = sale_window(p, None, now) else {
                    continue;
                };
                let needed = fresh_after(since);
                let outdated = match self.avail.product_level(p.id)? {
                    None => true,
                    Some(s) => s.fetched_at < needed,
                };
                (false, vec![], None, outdated && !fetched_since(needed))
            };
            let cooling = track.failed_at.is_some_and(|f| now - f < cooling_after);
            out.push(Candidate {
                tier: if dated {
                    tier_of(first_start, now, &self.cfg)
                } else {
                    Tier::Far
                },
                first_start,
                perfs,
                dated,
                first,
                cooling,
                track,
                done: false,
                id: rec.product.id,
            });
        }
        out.sort_by_key(|c| (c.tier, c.first_start.is_none(), c.first_start, c.id()));
        Ok(out)
    }

    /// getUpdatedAvailabilities about the due products; returns the fetch calls the reported changes need.
    async fn ask(
        &self,
        pos_id: Id,
        cands: &mut [Candidate],
        seq: u64,
        credit: &mut u64,
        run: &mut Run,
    ) -> Result<f64, StoreError> {
        let asked: Vec<usize> = (0..cands.len())
            .filter(|&i| {
                let c = &cands[i];
                !c.first && c.track.pending_since.is_none() && tier_due(c.tier, seq, &self.cfg)
            })
            .collect();
        let mut change_calls = 0.0;
        let mut done = 0;
        for chunk in asked.chunks(self.cfg.ids_per_call.max(1)) {
            if *credit == 0 || run.left == 0 {
                break;
            }
            self.report_progress("asking", done, asked.len(), None, run);
            done += chunk.len();
            let ids: Vec<Id> = chunk.iter().map(|&i| cands[i].id()).collect();
            // Asked with a small overlap, so a change at the instant of the previous poll (or a clock a little
            // ahead of SecuTix's) is not missed; at worst a product is fetched once more.
            let since =
                |c: &Candidate| c.track.checked_at.or(c.track.fetched_at).unwrap_or(run.started) - REFERENCE_OVERLAP;
            let reference = chunk.iter().map(|&i| since(&cands[i])).min().unwrap_or(run.started);
            let mut attempts = 0u32;
            let result = self
                .client
                .get_updated_availabilities(pos_id, &ids, reference, RetryPolicy::once(), &mut attempts)
                .await;
            run.calls += u64::from(attempts);
            run.regular += u64::from(attempts);
            run.left = run.left.saturating_sub(u64::from(attempts));
            *credit = credit.saturating_sub(u64::from(attempts));
            run.report.asked += ids.len();
            match result {
                Ok(updated) => {
                    let reported: BTreeMap<Id, Option<DateTime<Utc>>> =
                        updated.into_iter().map(|u| (u.product_id, u.last_update)).collect();
                    for &i in chunk {
                        let c = &mut cands[i];
                        let mut track = c.track.clone();
                        if let Some(last) = reported.get(&c.id) {
                            let seen = since(c);
                            if last.is_none_or(|l| l > seen) {
                                track.pending_since = Some(run.started);
                                run.report.reported += 1;
                                change_calls += c.cost(self.cfg.ids_per_call) as f64;
                            }
                        }
                        track.checked_at = Some(run.started);
                        if track.stale && track.pending_since.is_none() {
                            // SecuTix says nothing changed: what is stored is current again.
                            self.avail.clear_stale(c.id)?;
                            track.stale = false;
                        }
                        if track != c.track {
                            self.avail.set_tracking(c.id(), &track)?;
                            c.track = track;
                        }
                    }
                }
                Err(e) => {
                    let kind = classify(&e);
                    tracing::warn!(error = %e, products = ids.len(), "getUpdatedAvailabilities failed; their indicators are kept and marked stale");
                    for &i in chunk {
                        self.stale(&cands[i], &e, matches!(kind, Failure::Product), run)?;
                    }
                    let stop = !matches!(kind, Failure::Product);
                    let hint = if stop {
                        ""
                    } else {
                        "; if getUpdatedAvailabilities keeps failing for this institution, set \
                         availability.use_updated_availabilities = false"
                    };
                    run.fail(format!("{e}{hint}"), kind);
                    if stop {
                        break;
                    }
                }
            }
        }
        Ok(change_calls)
    }

    /// Without getUpdatedAvailabilities: the due products become pending.
    fn walk(&self, cands: &mut [Candidate], seq: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
        for c in cands.iter_mut() {
            if !c.first && c.track.pending_since.is_none() && tier_due(c.tier, seq, &self.cfg) {
                c.track.pending_since = Some(now);
                self.avail.set_tracking(c.id(), &c.track)?;
            }
        }
        Ok(())
    }

    /// The fetches of this poll, in tier order, each within its pool; returns candidate indices and whether
    /// the fetch draws on the paced credit (`false`: on the first-fetch pool).
    fn plan(&self, cands: &[Candidate], mut credit: u64, mut first_pool: u64, run: &Run) -> Vec<(usize, bool)> {
        let mut order: Vec<usize> = (0..cands.len())
            .filter(|&i| cands[i].waiting() && !cands[i].cooling)
            .collect();
        // Near first; then mid and far products that waited longer than their tier's patience, oldest
        // first (so none waits forever); then the others by tier; within a tier, reported changes before
        // first fetches.
        let patience = |t: Tier| {
            let every = match t {
                Tier::Near => 0,
                Tier::Mid => self.cfg.mid_every,
                Tier::Far => self.cfg.far_every,
            };
            chrono::Duration::from_std(self.cfg.max_interval * every).unwrap_or_default()
        };
        let key = |i: usize| {
            let c = &cands[i];
            let overdue = c
                .track
                .pending_since
                .filter(|since| c.tier != Tier::Near && *since + patience(c.tier) <= run.started);
            (
                c.tier != Tier::Near,
                overdue.is_none(),
                overdue,
                c.tier,
                !c.pending(),
                i,
            )
        };
        order.sort_by_key(|&i| key(i));
        let mut left = run.left;
        let mut plan = Vec::new();
        for i in order {
            let cost = cands[i].cost(self.cfg.ids_per_call);
            if cost > left {
                continue;
            }
            let regular = if cands[i].first && !cands[i].pending() && first_pool >= cost {
                first_pool -= cost;
                false
            } else if credit >= cost {
                credit -= cost;
                true
            } else {
                continue;
            };
            left -= cost;
            plan.push((i, regular));
        }
        plan
    }

    async fn fetch_all(
        &self,
        catalog: &crate::store::CatalogView,
        pos_id: Id,
        cands: &mut [Candidate],
        plan: &[(usize, bool)],
        run: &mut Run,
    ) -> Result<(), StoreError> {
        for (n, &(i, regular)) in plan.iter().enumerate() {
            let calls_left: u64 = plan[n..]
                .iter()
                .map(|&(j, _)| cands[j].cost(self.cfg.ids_per_call))
                .sum();
            self.report_progress("fetching", n, plan.len(), Some(calls_left), run);
            let cost = cands[i].cost(self.cfg.ids_per_call);
            if cost > run.left {
                // A token call or a re-authentication used what this fetch needed.
                continue;
            }
            let mut attempts = 0u32;
            let result = self.fetch(pos_id, &cands[i], &mut attempts).await;
            run.calls += u64::from(attempts);
            run.left = run.left.saturating_sub(u64::from(attempts));
            if regular {
                run.regular += u64::from(attempts);
            }
            match result {
                Ok(raws) => {
                    self.apply(catalog, &mut cands[i], raws, run)?;
                }
                Err(e) => {
                    let kind = classify(&e);
                    let product = matches!(kind, Failure::Product);
                    tracing::warn!(product = cands[i].id(), error = %e, "availability fetch failed; the indicator is kept and marked stale");
                    self.stale(&cands[i], &e, product, run)?;
                    if !product {
                        for &(j, _) in &plan[n + 1..] {
                            self.stale(&cands[j], &e, false, run)?;
                        }
                    }
                    run.fail(format!("product {}: {e}", cands[i].id()), kind);
                    if run.stop.is_some() {
                        break;
                    }
                }
            }
        }
        if run.stop.is_none() {
            self.report_progress("fetching", plan.len(), plan.len(), Some(0), run);
        }
        Ok(())
    }

    fn stale(&self, c: &Candidate, e: &CallError, permanent: bool, run: &mut Run) -> Result<(), StoreError> {
        if run.stale.insert(c.id()) {
            self.avail.mark_stale(c.id(), self.now(), &e.to_string(), permanent)?;
            run.report.stale.push(c.id());
        }
        Ok(())
    }

    async fn fetch(&self, pos_id: Id, c: &Candidate, attempts: &mut u32) -> Result<Vec<RawAvailability>, CallError> {
        if !c.dated {
            return self
                .client
                .get_product_availability(pos_id, c.id(), RetryPolicy::once(), attempts)
                .await;
        }
        let method = AvailabilityMethod::from(self.cfg.event_method);
        let mut out = Vec::new();
        for chunk in c.perfs.chunks(self.cfg.ids_per_call.max(1)) {
            let mut raws = self
                .client
                .get_performances_availability(method, pos_id, chunk, RetryPolicy::once(), attempts)
                .await?;
            if let [only] = chunk {
                // A record without performanceId answers the only performance asked.
                for r in raws.iter_mut().filter(|r| r.performance_id.is_none()) {
                    r.performance_id = Some(*only);
                }
            }
            out.extend(raws);
        }
        Ok(out)
    }

    fn alert_ratio(&self, p: &Product) -> f64 {
        p.event
            .as_ref()
            .and_then(|e| e.alert_ratio)
            .filter(|r| r.is_finite() && (0.0..=100.0).contains(r))
            .unwrap_or(self.cfg.alert_ratio)
    }

    /// Writes a fetched product: new values, change records, dirty mark, bookkeeping.
    fn apply(
        &self,
        catalog: &crate::store::CatalogView,
        c: &mut Candidate,
        raws: Vec<RawAvailability>,
        run: &mut Run,
    ) -> Result<(), StoreError> {
        let now = self.now();
        // The view the candidates came from: the record is there.
        let Some(record) = catalog.product(c.id)? else {
            return Ok(());
        };
        let p = &record.product;
        let ratio = self.alert_ratio(p);
        let mut records = Vec::new();
        let mut changes = Vec::new();
        let mut note = |obs: &Observation, perf: Option<Id>| {
            if let Some(level) = &obs.unrecognised {
                run.report.unrecognised += 1;
                tracing::warn!(
                    product = p.id, performance = perf, level = %level,
                    "SecuTix sent an availability level this version does not know; treated as unknown"
                );
            }
        };
        if c.dated {
            let wanted: HashSet<Id> = c.perfs.iter().copied().collect();
            let mut by_perf: BTreeMap<Id, Vec<Observation>> = BTreeMap::new();
            for r in &raws {
                match r.performance_id {
                    Some(id) if wanted.contains(&id) => by_perf.entry(id).or_default().push(observe(r, ratio)),
                    other => {
                        tracing::debug!(
                            product = p.id,
                            performance = other,
                            "availability record for a performance not asked; ignored"
                        )
                    }
                }
            }
            for perf in p.performances().iter().filter(|perf| wanted.contains(&perf.id)) {
                let Some(obs) = by_perf.remove(&perf.id).and_then(combine) else {
                    tracing::debug!(
                        product = p.id,
                        performance = perf.id,
                        "SecuTix sent no availability for this performance"
                    );
                    continue;
                };
                note(&obs, Some(perf.id));
                let old = self.avail.performance(p.id, perf.id)?;
                let Some(new) = updated(old.as_ref(), &obs, now) else {
                    continue;
                };
                let before = performance_status(p, perf, old.as_ref(), now).shown();
                let after = performance_status(p, perf, Some(&new), now).shown();
                if before != after {
                    changes.push((Some(perf.id), before, after));
                }
                records.push((Some(perf.id), new));
            }
        } else {
            let obs: Vec<Observation> = raws
                .iter()
                .filter(|r| r.product_id.is_none_or(|id| id == p.id))
                .map(|r| observe(r, ratio))
                .collect();
            if let Some(obs) = combine(obs) {
                note(&obs, None);
                let old = self.avail.product_level(p.id)?;
                if let Some(new) = updated(old.as_ref(), &obs, now) {
                    let before = product_status(p, old.as_ref(), now).shown();
                    let after = product_status(p, Some(&new), now).shown();
                    if before != after {
                        changes.push((None, before, after));
                    }
                    records.push((None, new));
                }
            }
        }
        let mut track = c.track.clone();
        track.checked_at = Some(track.checked_at.map_or(run.started, |t| t.max(run.started)));
        track.pending_since = None;
        track.fetched_at = Some(now);
        track.failed_at = None;
        track.last_error = None;
        track.stale = false;
        let written = self.avail.apply(
            &ProductUpdate {
                product_id: p.id,
                track: track.clone(),
                records,
                changes,
                at: now,
            },
            self.cfg.change_log_size,
        )?;
        if !written.is_empty() {
            run.report.dirty.push(p.id);
        }
        run.report.changes.extend(written);
        run.report.fetched.push(p.id);
        c.track = track;
        c.done = true;
        Ok(())
    }

    /// Bookkeeping at the end of a poll: planner state, next interval, poll record.
    fn finish(
        &self,
        cands: Vec<Candidate>,
        before: Budget,
        mut state: PlannerState,
        change_calls: Option<f64>,
        mut run: Run,
        product: Option<Id>,
    ) -> Result<PollReport, AvailabilityError> {
        let now = self.now();
        let budget = Budget::at(&self.cfg, &self.store, now);
        let ids = self.cfg.ids_per_call;
        let retry_after = match &run.stop {
            Some(Failure::Transient(ra)) => Some(*ra),
            Some(Failure::Global) => Some(None),
            _ => None,
        };
        if let Some(c) = change_calls
            && run.stop.is_none()
        {
            state.change_calls = 0.8 * state.change_calls + 0.2 * c;
        }
        if run.stop.is_some() {
            state.failures += 1;
        } else if product.is_none() {
            state.failures = 0;
        }
        if run.errors.is_empty() && product.is_none() {
            state.reference_date = Some(run.started);
        }
        // What the next poll is expected to cost.
        let seq = state.seq;
        let mut asks = 0usize;
        let mut near = 0u64;
        let mut other = 0u64;
        let mut first_backlog = false;
        for c in cands.iter().filter(|c| !c.cooling) {
            if c.first && !c.done {
                first_backlog = true;
            }
            let due = tier_due(c.tier, seq, &self.cfg);
            let walk_due = !self.cfg.use_updated_availabilities && due && !c.waiting();
            if c.pending() || walk_due {
                if c.tier == Tier::Near || walk_due {
                    near += c.cost(ids);
                } else {
                    other += c.cost(ids);
                }
            } else if self.cfg.use_updated_availabilities && due && !c.waiting() {
                asks += 1;
            }
        }
        let base = asks.div_ceil(ids.max(1)) as f64 + near as f64 + state.change_calls;
        let demand = base.max(1.0) + (other as f64).min(base.max(1.0));
        let rate = budget.rate(now);
        let until_end = budget.time_left(now);
        let mut next = if budget.left == 0 {
            until_end.max(self.cfg.min_interval)
        } else if first_backlog && budget.first_fetch_allowance(now, &self.cfg) > 0 {
            self.cfg.min_interval
        } else {
            next_interval(demand, state.credit, rate, until_end, &self.cfg)
        };
        if product.is_some()
            && let Some(at) = state.next_poll_at
        {
            // One product polled on demand: the regular schedule stands.
            next = (at - now).to_std().unwrap_or_default();
        }
        if let Some(ra) = retry_after {
            next = next.max(backoff(state.failures, ra, &self.cfg));
        }
        if product.is_none() || retry_after.is_some() {
            state.next_poll_at = Some(now + chrono::Duration::from_std(next).unwrap_or_default());
        }
        self.avail.set_planner_state(&state)?;

        let pending = cands.iter().filter(|c| c.waiting()).count();
        let r = &mut run.report;
        r.calls = run.calls;
        r.pending = pending;
        r.month_calls = self.store.calls_in_month(now);
        r.budget_left = budget.left;
        r.next_poll_in = next;
        r.error = match run.errors.len() {
            0 => None,
            1 => run.errors.pop(),
            n => Some(format!(
                "{} (and {} more problem(s) in this poll)",
                run.errors[0],
                n - 1
            )),
        };
        let rec = PollRecord {
            seq: self.avail.next_poll_seq()?,
            started_at: run.started,
            finished_at: now,
            ok: r.error.is_none(),
            product,
            calls: r.calls,
            allowance: r.allowance,
            asked: r.asked,
            reported: r.reported,
            fetched: r.fetched.len(),
            changed: r.changes.len(),
            stale: r.stale.len(),
            pending,
            unrecognised: r.unrecognised,
            month_calls: r.month_calls,
            budget_left: r.budget_left,
            next_poll_in_secs: next.as_secs(),
            error: r.error.clone(),
        };
        self.avail.record_poll(&rec, self.cfg.poll_history_size)?;
        self.avail.flush()?;
        let spent_before = before.availability_spent;
        tracing::info!(
            calls = r.calls, asked = r.asked, reported = r.reported, fetched = r.fetched.len(),
            changed = r.changes.len(), stale = r.stale.len(), pending, month_calls = r.month_calls,
            availability_calls_before = spent_before, budget_left = r.budget_left,
            next_poll_in = %crate::text::human(next), error = r.error.as_deref(),
            "availability poll finished"
        );
        Ok(run.report)
    }
}

/// The stored value after an observation, or `None` when the observation says nothing usable (the stored
/// value must not change).
fn updated(
    old: Option<&PerformanceAvailability>,
    obs: &Observation,
    now: DateTime<Utc>,
) -> Option<PerformanceAvailability> {
    let (level, on_sale) = match obs.reading {
        Reading::Level(l) => (Some(l), Some(true)),
        Reading::NotOnSale => (None, Some(false)),
        Reading::Unknown => return None,
    };
    let changed_at = match old {
        Some(o) if o.level == level && o.on_sale == on_sale => o.changed_at,
        _ => now,
    };
    Some(PerformanceAvailability {
        level,
        on_sale,
        remaining: obs.remaining,
        capacity: obs.capacity,
        raw_level: obs.raw_level.clone(),
        fetched_at: now,
        changed_at,
        stale: false,
        stale_since: None,
    })
}
