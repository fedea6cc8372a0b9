//! The durable push: entries, the outbox per target, acknowledgements, dead letters, and the worker.
//!
//! # Trees (sled)
//! - the entries ([`crate::entries`]): external id → the latest entry and its content hash, shared by all
//!   targets (bodies in the entry log, the index in sled).
//! - `push.<target>.outbox`: external id → the pending operation. Keyed by external id, so a later change
//!   to an entry **supersedes** a pending one: one version per entry in the outbox, and the worker never has
//!   two operations for one entry in flight.
//! - `push.<target>.acked`: external id → what the target acknowledged (hash, operation, its own id).
//! - `push.<target>.dead`: dead letters by number, and `push.<target>.dead_ids`: external id → number and
//!   content hash of its dead letter, or [`DROPPED`] and the hash when an operator dropped it: the planner
//!   does not send that version again (it would otherwise be re-planned at once), a changed entry is sent.
//!
//! # Flow
//! [`Outbox::plan`] builds every entry (or those of a scope), writes changed ones to the entries, and enqueues
//! an operation for each target whose acknowledged hash differs, then flushes: every operation is on disk
//! **before** it is sent. It goes in batches of a few MiB: the batch's entries first (synced), then its
//! operations, so an operation never refers to an entry that is not on disk, and a plan of 10,000 entries
//! holds a few of them at a time. A [`Worker`] drains one target's outbox: concurrency limit, rate limit (retries go
//! through it too), per-request timeout, exponential back-off with full jitter and a cap, `Retry-After`
//! (pauses the whole target), bounded attempts, then a dead letter with the last error. An operation leaves
//! the outbox only when the target acknowledged it, and only if no newer version replaced it meanwhile.
//! A target that cannot be reached at all pauses the worker and is probed with one operation at a time,
//! without using up attempts: a CMS that is down for a day gets everything once it is back.
//! A target that takes batches ([`Target::max_batch`], WordPress's `/batch/v1`) is handed several due
//! operations per task: the batch uses one concurrency slot, one rate-limit token and one timeout, and each
//! of its operations is then acknowledged, retried or buried on its own outcome.
//!
//! A crash at any point loses nothing: unsent operations are in the outbox; an acknowledgement lost before
//! the store flushed leads to one more, harmless, idempotent send.

pub mod target;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use tokio::task::JoinSet;

use crate::catalog::{Id, Season};
use crate::clock::SharedClock;
pub use crate::entries::StoredEntry;
use crate::entries::{EntryStore, EntryWrite};
use crate::indicator::StatusFn;
use crate::merge::{self, EntryOptions, MergeContext};
use crate::ratelimit::RateLimiter;
use crate::store::{Store, StoreError, decode, encode};
use target::{Applied, OpKind, Operation, Target, TargetError};

/// What happens on the target when SecuTix stops listing a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletePolicy {
    /// Hide it (draft / unpublished); the editors' work stays. The default.
    Unpublish,
    /// Delete it.
    Delete,
    /// Leave it as it is.
    Keep,
}

/// How a worker sends to its target (from the target's configuration).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Tombstone handling.
    pub delete_policy: DeletePolicy,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Requests per second (retries included).
    pub rate_per_second: u32,
    /// Timeout of one operation.
    pub request_timeout: Duration,
    /// Attempts before a dead letter.
    pub max_attempts: u32,
    /// First back-off.
    pub backoff_initial: Duration,
    /// Longest back-off (also of the unreachable-target probe).
    pub backoff_max: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            delete_policy: DeletePolicy::Unpublish,
            concurrency: 4,
            rate_per_second: 10,
            request_timeout: Duration::from_secs(20),
            max_attempts: 8,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(1800),
        }
    }
}

/// The number kept in `dead_ids` for a version an operator dropped from the dead letters (no dead letter
/// has it: numbers come from sled's id generator, which never reaches it).
pub const DROPPED: u64 = u64::MAX;

/// A pending operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Unique, increasing: identifies this version of the operation.
    pub seq: u64,
    /// Operation.
    pub kind: OpKind,
    /// External id.
    pub external_id: String,
    /// Hash of the entry to send.
    pub content_hash: String,
    /// Attempts made.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: DateTime<Utc>,
    /// Last failure.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
}

/// What a target acknowledged for an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    /// Hash of the entry the target has.
    pub content_hash: String,
    /// The last operation applied.
    pub kind: OpKind,
    /// The target's id for the entry (post id, UUID, file name).
    pub remote_id: Option<String>,
    /// When.
    pub acked_at: DateTime<Utc>,
}

/// An operation that failed for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Number (for `dlq replay ID` / `dlq drop ID`).
    pub id: u64,
    /// Target name.
    pub target: String,
    /// The operation as it was last tried.
    pub item: OutboxItem,
    /// The last error.
    pub error: String,
    /// When it gave up.
    pub failed_at: DateTime<Utc>,
}

/// Which entries a plan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every product of the catalogue in force, tombstones included.
    All,
    /// These products only.
    Products(Vec<Id>),
}

/// Decides whether a target wants a product at all. pass Culture, for one, publishes only the products the
/// venue selected; CMS targets take everything (no filter).
pub type ProductFilter = Arc<dyn Fn(&crate::catalog::Product) -> bool + Send + Sync>;

/// A target as the planner sees it.
#[derive(Clone)]
pub struct PlanTarget {
    /// Name.
    pub name: String,
    /// Tombstone handling.
    pub delete_policy: DeletePolicy,
    /// Products the target wants; `None` = all. A product that leaves the selection after the target
    /// acknowledged it is handled like a tombstone (an `Unpublish`, or nothing with `delete_policy = "keep"`;
    /// never a `Delete`); one that was never sent is skipped.
    pub filter: Option<ProductFilter>,
}

impl PlanTarget {
    /// A target that wants every product.
    pub fn new(name: impl Into<String>, delete_policy: DeletePolicy) -> Self {
        Self {
            name: name.into(),
            delete_policy,
            filter: None,
        }
    }

    fn wants(&self, product: &crate::catalog::Product) -> bool {
        self.filter.as_ref().is_none_or(|f| f(product))
    }
}

impl std::fmt::Debug for PlanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanTarget")
            .field("name", &self.name)
            .field("delete_policy", &self.delete_policy)
            .field("filter", &self.filter.as_ref().map(|_| "(filter)"))
            .finish()
    }
}

/// The plan for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetPlan {
    /// Entries the target never acknowledged.
    pub create: u64,
    /// Entries whose content changed.
    pub update: u64,
    /// Tombstones to unpublish.
    pub unpublish: u64,
    /// Tombstones to delete.
    pub delete: u64,
    /// Entries already up to date.
    pub unchanged: u64,
    /// Entries skipped because their current version is a dead letter (replay it, or change it).
    pub dead: u64,
    /// Entries skipped because an operator dropped the dead letter of their current version; sent again
    /// when they change (or with a full re-push).
    pub dropped: u64,
    /// Entries the target's filter does not want and that it never received (or already withdrew).
    pub skipped: u64,
    /// The operations: (kind, external id, first time).
    pub operations: Vec<(OpKind, String, bool)>,
}

/// The result of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    /// Entries built.
    pub entries: u64,
    /// Entries whose content changed since the last plan.
    pub changed_entries: u64,
    /// Their external ids, in order (the public availability document is updated for these only).
    #[serde(skip)]
    pub changed: Vec<String>,
    /// Per target.
    pub targets: BTreeMap<String, TargetPlan>,
}

/// The outcome of a drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Operations acknowledged.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Operations moved to dead letters.
    pub dead: u64,
    /// Operations left in the outbox.
    pub pending: u64,
    /// Earliest retry of what is left (not before a target-wide pause: `Retry-After`, the next probe of an
    /// unreachable target).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Push failures (the store; target failures are recorded per operation, not raised).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such target or dead letter.
    #[error("{0}")]
    NotFound(String),
}

/// The outbox, acknowledgements and dead letters of every target.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    entries: EntryStore,
}

/// Entry bytes a plan gathers before it writes them with their operations.
const PLAN_BATCH_BYTES: usize = 4 << 20;

/// What a plan writes once a batch is full: entries first, then the operations that send them.
#[derive(Default)]
struct PlanBatch {
    entries: Vec<EntryWrite>,
    bytes: usize,
    /// (target index, operation).
    operations: Vec<(usize, OutboxItem)>,
}

struct TargetTrees {
    outbox: sled::Tree,
    acked: sled::Tree,
    dead: sled::Tree,
    dead_ids: sled::Tree,
}

impl Outbox {
    /// Opens the push trees of `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            entries: EntryStore::open(store)?,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The stored entries.
    pub fn entry_store(&self) -> &EntryStore {
        &self.entries
    }

    fn trees(&self, target: &str) -> Result<TargetTrees, StoreError> {
        let db = self.store.db();
        let t = |suffix: &str| {
            db.open_tree(format!("push.{target}.{suffix}"))
                .map_err(|e| self.store.sled_error(e))
        };
        Ok(TargetTrees {
            outbox: t("outbox")?,
            acked: t("acked")?,
            dead: t("dead")?,
            dead_ids: t("dead_ids")?,
        })
    }

    fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| self.store.sled_error(e)
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        self.store.db().generate_id().map_err(self.err())
    }

    /// The stored entry of `external_id`.
    pub fn entry(&self, external_id: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.entries.get(external_id)
    }

    /// What `target` acknowledged for `external_id`.
    pub fn acked(&self, target: &str, external_id: &str) -> Result<Option<AckRecord>, StoreError> {
        let t = self.trees(target)?;
        t.acked
            .get(external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, external_id))
            .transpose()
    }

    /// Every acknowledgement of `target` (external id → record).
    pub fn acks(&self, target: &str) -> Result<BTreeMap<String, AckRecord>, StoreError> {
        let t = self.trees(target)?;
        t.acked
            .iter()
            .map(|r| {
                let (k, v) = r.map_err(self.err())?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode(&v, "ack")?))
            })
            .collect()
    }

    /// Pending operations of `target`.
    pub fn pending(&self, target: &str) -> Result<Vec<OutboxItem>, StoreError> {
        let t = self.trees(target)?;
        t.outbox
            .iter()
            .values()
            .map(|v| decode(&v.map_err(self.err())?, "outbox item"))
            .collect()
    }

    /// Every stored entry, in external id order, all in memory (tests, small stores); see
    /// [`Outbox::each_entry`] to go through them one at a time.
    pub fn entries(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.entries.iter().collect()
    }

    /// Every stored entry, in external id order, read one at a time (a large venue's entries take
    /// gigabytes once decoded).
    pub fn each_entry(&self) -> impl Iterator<Item = Result<StoredEntry, StoreError>> + '_ {
        self.entries.iter()
    }

    /// The pending operation of `target` for `external_id`.
    pub fn pending_item(&self, target: &str, external_id: &str) -> Result<Option<OutboxItem>, StoreError> {
        let t = self.trees(target)?;
        t.outbox
            .get(external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, external_id))
            .transpose()
    }

    /// True when the current version of `external_id` is a dead letter of `target`.
    pub fn is_dead(&self, target: &str, external_id: &str) -> Result<bool, StoreError> {
        self.trees(target)?
            .dead_ids
            .contains_key(external_id)
            .map_err(self.err())
    }

    /// Number of pending operations of `target`.
    pub fn depth(&self, target: &str) -> Result<usize, StoreError> {
        Ok(self.trees(target)?.outbox.len())
    }

    /// Dead letters of `target` (or of all `targets`), oldest first.
    pub fn dead_letters(&self, targets: &[String]) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for name in targets {
            let t = self.trees(name)?;
            for v in t.dead.iter().values() {
                out.push(decode(&v.map_err(self.err())?, "dead letter")?);
            }
        }
        out.sort_by_key(|d: &DeadLetter| d.id);
        Ok(out)
    }

    /// Builds entries for `scope` and enqueues what each target lacks. With `full`, every live entry is
    /// re-sent. With `dry_run`, nothing is written: the report is the plan.
    pub fn plan(
        &self,
        targets: &[PlanTarget],
        options: &EntryOptions,
        status: &StatusFn<'_>,
        scope: &Scope,
        full: bool,
        dry_run: bool,
    ) -> Result<PlanReport, StoreError> {
        let mut report = PlanReport::default();
        let Some(view) = self.store.catalog()? else {
            return Ok(report);
        };
        let seasons: BTreeMap<Id, Season> = view.seasons()?.into_iter().filter_map(|s| Some((s.id?, s))).collect();
        let now = self.store.clock().now();
        let ctx = MergeContext {
            options,
            pos: view.meta.pos.as_ref(),
            seasons: &seasons,
            status,
            now,
        };
        let trees: Vec<(PlanTarget, TargetTrees)> = targets
            .iter()
            .map(|t| Ok((t.clone(), self.trees(&t.name)?)))
            .collect::<Result<_, StoreError>>()?;
        for t in targets {
            report.targets.insert(t.name.clone(), TargetPlan::default());
        }
        let records: Box<dyn Iterator<Item = Result<crate::store::ProductRecord, StoreError>>> = match scope {
            Scope::All => Box::new(view.products()),
            Scope::Products(ids) => Box::new(
                // Each product once: a duplicate would be planned twice within one batch.
                ids.iter()
                    .copied()
                    .collect::<BTreeSet<Id>>()
                    .into_iter()
                    .filter_map(|id| view.product(id).transpose())
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
        };
        let mut batch = PlanBatch::default();
        for record in records {
            let record = record?;
            let entry = merge::build_entry(&record, &ctx);
            // The bytes hashed are the bytes stored.
            let body = encode(&entry, &format!("entry {}", entry.external_id))?;
            let hash = crate::entry::content_hash_of_json(&body, options.mapping_version);
            let id = entry.external_id.clone();
            report.entries += 1;
            if self.entries.content_hash(&id)?.as_ref() != Some(&hash) {
                report.changed_entries += 1;
                report.changed.push(id.clone());
                if !dry_run {
                    batch.bytes += body.len();
                    batch.entries.push(EntryWrite {
                        external_id: id.clone(),
                        content_hash: hash.clone(),
                        body,
                    });
                }
            }
            for (ti, (target, t)) in trees.iter().enumerate() {
                let plan = report.targets.entry(target.name.clone()).or_default();
                let acked: Option<AckRecord> = t
                    .acked
                    .get(&id)
                    .map_err(self.err())?
                    .map(|v| decode(&v, &id))
                    .transpose()?;
                let wanted = target.wants(&record.product);
                let kind = if entry.published && wanted {
                    let up_to_date = acked
                        .as_ref()
                        .is_some_and(|a| a.kind == OpKind::Upsert && a.content_hash == hash);
                    if up_to_date && !full {
                        plan.unchanged += 1;
                        continue;
                    }
                    OpKind::Upsert
                } else {
                    let on_target = acked.as_ref().is_some_and(|a| a.kind == OpKind::Upsert);
                    let live = record.removed_at.is_none();
                    let policy = match (live, entry.published, target.delete_policy) {
                        // Listed, in a state that is not published (not announced yet): hidden on every
                        // target, whatever its delete policy (which is for products SecuTix stopped listing).
                        (true, false, _) => DeletePolicy::Unpublish,
                        // A live product that left the selection is withdrawn, never deleted.
                        (true, true, DeletePolicy::Delete) => DeletePolicy::Unpublish,
                        (_, _, p) => p,
                    };
                    match (policy, on_target) {
                        (_, false) | (DeletePolicy::Keep, _) if !wanted => {
                            plan.skipped += 1;
                            continue;
                        }
                        (DeletePolicy::Keep, _) | (_, false) => {
                            plan.unchanged += 1;
                            continue;
                        }
                        (DeletePolicy::Unpublish, true) => OpKind::Unpublish,
                        (DeletePolicy::Delete, true) => OpKind::Delete,
                    }
                };
                if let Some(dead) = t.dead_ids.get(&id).map_err(self.err())? {
                    let dead_hash = String::from_utf8_lossy(&dead[8..]).into_owned();
                    if dead_hash == hash && !full {
                        if dead[..8] == DROPPED.to_be_bytes() {
                            plan.dropped += 1;
                        } else {
                            plan.dead += 1;
                        }
                        continue;
                    }
                }
                let pending: Option<OutboxItem> = t
                    .outbox
                    .get(&id)
                    .map_err(self.err())?
                    .map(|v| decode(&v, &id))
                    .transpose()?;
                if pending
                    .as_ref()
                    .is_some_and(|p| p.kind == kind && p.content_hash == hash)
                {
                    // Already queued.
                    plan.unchanged += 1;
                    continue;
                }
                let first_time = acked.is_none();
                match kind {
                    OpKind::Upsert if first_time => plan.create += 1,
                    OpKind::Upsert => plan.update += 1,
                    OpKind::Unpublish => plan.unpublish += 1,
                    OpKind::Delete => plan.delete += 1,
                }
                plan.operations.push((kind, id.clone(), first_time));
                if dry_run {
                    continue;
                }
                let item = OutboxItem {
                    seq: self.next_seq()?,
                    kind,
                    external_id: id.clone(),
                    content_hash: hash.clone(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    enqueued_at: now,
                };
                batch.operations.push((ti, item));
            }
            if batch.bytes >= PLAN_BATCH_BYTES || batch.operations.len() >= 1024 {
                self.write_batch(&trees, &mut batch)?;
            }
        }
        if !dry_run {
            self.write_batch(&trees, &mut batch)?;
            // Durable before anything is sent.
            self.store.db().flush().map_err(self.err())?;
            self.entries.compact_if_needed()?;
        }
        Ok(report)
    }

    /// Writes a plan's batch: its entries (synced to disk), then the operations that send them.
    fn write_batch(&self, trees: &[(PlanTarget, TargetTrees)], batch: &mut PlanBatch) -> Result<(), StoreError> {
        self.entries.write(&batch.entries)?;
        for (ti, item) in batch.operations.drain(..) {
            let t = &trees[ti].1;
            let id = item.external_id.as_bytes();
            t.outbox.insert(id, encode(&item, "outbox item")?).map_err(self.err())?;
            // A newer version replaces a dead letter of an older one.
            if let Some(dead) = t.dead_ids.remove(id).map_err(self.err())? {
                t.dead.remove(&dead[..8]).map_err(self.err())?;
            }
        }
        batch.entries.clear();
        batch.bytes = 0;
        Ok(())
    }

    /// Puts dead letters of `target` back in the outbox (`id` = one, `None` = all). A dead letter whose entry
    /// has a newer pending operation is dropped as superseded. Returns (replayed, superseded).
    pub fn replay(&self, target: &str, id: Option<u64>) -> Result<(u64, u64), PushError> {
        let t = self.trees(target)?;
        let now = self.store.clock().now();
        let letters: Vec<DeadLetter> = match id {
            Some(id) => match t.dead.get(id.to_be_bytes()).map_err(self.err())? {
                Some(v) => vec![decode(&v, "dead letter")?],
                None => {
                    return Err(PushError::NotFound(format!(
                        "no dead letter {id} for target {target}; see `dlq list`"
                    )));
                }
            },
            None => t
                .dead
                .iter()
                .values()
                .map(|v| decode(&v.map_err(self.err())?, "dead letter"))
                .collect::<Result<_, _>>()?,
        };
        let (mut replayed, mut superseded) = (0, 0);
        for dl in letters {
            let id = dl.item.external_id.clone();
            if t.outbox.get(&id).map_err(self.err())?.is_none() {
                let hash = match (dl.item.kind, self.entries.content_hash(&id)?) {
                    (OpKind::Upsert, Some(h)) => h,
                    _ => dl.item.content_hash.clone(),
                };
                let item = OutboxItem {
                    seq: self.next_seq()?,
                    attempts: 0,
                    next_attempt_at: now,
                    content_hash: hash,
                    ..dl.item.clone()
                };
                t.outbox
                    .insert(id.as_bytes(), encode(&item, "outbox item")?)
                    .map_err(self.err())?;
                replayed += 1;
            } else {
                superseded += 1;
            }
            t.dead.remove(dl.id.to_be_bytes()).map_err(self.err())?;
            t.dead_ids.remove(&id).map_err(self.err())?;
        }
        self.store.db().flush().map_err(self.err())?;
        Ok((replayed, superseded))
    }

    /// Drops a dead letter of `target`: that version of the entry is not sent again. The planner skips it
    /// (counted as `dropped`) until the entry changes or a full re-push is asked for.
    pub fn drop_dead_letter(&self, target: &str, id: u64) -> Result<DeadLetter, PushError> {
        let t = self.trees(target)?;
        let Some(v) = t.dead.remove(id.to_be_bytes()).map_err(self.err())? else {
            return Err(PushError::NotFound(format!(
                "no dead letter {id} for target {target}; see `dlq list`"
            )));
        };
        let dl: DeadLetter = decode(&v, "dead letter")?;
        let ext = dl.item.external_id.as_bytes();
        // Only if this dead letter is still the entry's latest word (a newer one replaces it otherwise).
        if let Some(cur) = t.dead_ids.get(ext).map_err(self.err())?
            && cur[..8] == id.to_be_bytes()
        {
            let mut marker = DROPPED.to_be_bytes().to_vec();
            marker.extend_from_slice(&cur[8..]);
            t.dead_ids.insert(ext, marker).map_err(self.err())?;
        }
        self.store.db().flush().map_err(self.err())?;
        Ok(dl)
    }

    /// Names of the targets that have state in the store (outbox, acknowledgements, dead letters), sorted;
    /// also targets removed from the configuration since, whose dead letters an operator may still list.
    pub fn targets_in_store(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .store
            .db()
            .tree_names()
            .into_iter()
            .filter_map(|n| {
                let n = String::from_utf8_lossy(&n).into_owned();
                let (name, suffix) = n.strip_prefix("push.")?.rsplit_once('.')?;
                matches!(suffix, "outbox" | "acked" | "dead" | "dead_ids").then(|| name.to_owned())
            })
            .collect();
        names.into_iter().collect()
    }

    /// Forgets what `target` acknowledged (after a CMS was restored from an old backup, or to rebuild a
    /// target from scratch): the next plan sends everything as new.
    pub fn forget_acks(&self, target: &str) -> Result<(), StoreError> {
        let t = self.trees(target)?;
        t.acked.clear().map_err(self.err())?;
        self.store.db().flush().map_err(self.err())?;
        Ok(())
    }
}

/// Drains one target's outbox.
pub struct Worker {
    outbox: Outbox,
    trees: TargetTrees,
    target: Arc<dyn Target>,
    settings: PushSettings,
    limiter: Arc<RateLimiter>,
    clock: SharedClock,
    /// The target-wide pause, kept from one drain to the next: the daemon drains often (every plan,
    /// every retry time), and a pause or a probe back-off that started over at each drain would let a
    /// `Retry-After` be ignored and probe an unreachable target every few seconds for as long as it is
    /// down.
    pause: std::sync::Mutex<TargetPause>,
    /// Told of each settled operation as it settles ([`Worker::on_settled`]).
    on_settled: Option<OnSettled>,
}

/// Receives the counts of each operation as it settles (one of `delivered`, `retried`, `dead` is 1), so that
/// counters (the daemon's `/status`, `/metrics`, `resync --wait`'s progress) move during a drain rather than
/// jump when it ends.
pub type OnSettled = Arc<dyn Fn(&DrainReport) + Send + Sync>;

/// What a [`Worker`] remembers between drains about its target as a whole.
#[derive(Debug, Clone, Copy)]
struct TargetPause {
    /// Nothing is sent before this (`Retry-After`, an unreachable target's next probe).
    until: Option<DateTime<Utc>>,
    /// The target was unreachable: one operation at a time until one gets through.
    probing: bool,
    /// The wait before the next probe, doubling up to `backoff_max`.
    unreachable_wait: Duration,
}

/// How long [`Worker::drain`] goes on.
#[derive(Debug, Clone, Default)]
pub struct DrainOptions {
    /// Wait for operations in back-off up to this long; beyond, return with them pending.
    pub max_wait: Duration,
    /// When cancelled, no new operation is started; those in flight finish (or time out), then it returns.
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

impl DrainOptions {
    /// Drain what is due now, do not wait for back-offs.
    pub fn now() -> Self {
        Self::default()
    }
}

enum Outcome {
    Done(Applied),
    Failed(TargetError),
}

impl Worker {
    /// A worker for `target`.
    pub fn new(outbox: &Outbox, target: Arc<dyn Target>, settings: PushSettings) -> Result<Self, StoreError> {
        let trees = outbox.trees(target.name())?;
        let limiter = Arc::new(RateLimiter::new(
            settings.rate_per_second,
            Duration::from_secs(1),
            settings.rate_per_second.max(1),
        ));
        Ok(Self {
            clock: outbox.store.clock().clone(),
            outbox: outbox.clone(),
            trees,
            target,
            pause: std::sync::Mutex::new(TargetPause {
                until: None,
                probing: false,
                unreachable_wait: settings.backoff_initial,
            }),
            settings,
            limiter,
            on_settled: None,
        })
    }

    /// Calls `f` with the counts of each operation as it settles.
    pub fn on_settled(mut self, f: OnSettled) -> Self {
        self.on_settled = Some(f);
        self
    }

    /// The target.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| self.outbox.store.sled_error(e)
    }

    fn load_queue(&self) -> Result<BTreeSet<(DateTime<Utc>, u64, String)>, StoreError> {
        let mut q = BTreeSet::new();
        for v in self.trees.outbox.iter().values() {
            let item: OutboxItem = decode(&v.map_err(self.err())?, "outbox item")?;
            q.insert((item.next_attempt_at, item.seq, item.external_id));
        }
        Ok(q)
    }

    fn current(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        self.trees
            .outbox
            .get(id)
            .map_err(self.err())?
            .map(|v| decode(&v, id))
            .transpose()
    }

    fn operation(&self, item: &OutboxItem) -> Result<Operation, StoreError> {
        let stored = self.outbox.entry(&item.external_id)?;
        let acked: Option<AckRecord> = self
            .trees
            .acked
            .get(&item.external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, "ack"))
            .transpose()?;
        let (entry, hash) = match stored {
            Some(mut s) => {
                // An unpublish carries the entry with `published: false`, also when the product is live but
                // left the target's selection.
                if item.kind != OpKind::Upsert {
                    s.entry.published = false;
                }
                (Some(s.entry), s.content_hash)
            }
            None => (None, item.content_hash.clone()),
        };
        Ok(Operation {
            kind: item.kind,
            external_id: item.external_id.clone(),
            content_hash: if item.kind == OpKind::Upsert {
                hash
            } else {
                item.content_hash.clone()
            },
            entry,
            remote_id: acked.as_ref().and_then(|a| a.remote_id.clone()),
            first_time: acked.is_none(),
            enqueued_at: item.enqueued_at,
        })
    }

    /// Acknowledged: remove the item if it is still this version, and record what the target has.
    fn acknowledge(&self, item: &OutboxItem, op: &Operation, applied: Applied) -> Result<(), StoreError> {
        let now = self.clock.now();
        let previous_remote = op.remote_id.clone();
        let ack = AckRecord {
            content_hash: op.content_hash.clone(),
            kind: op.kind,
            remote_id: applied.remote_id.or(previous_remote),
            acked_at: now,
        };
        let id = item.external_id.as_bytes();
        let ack = encode(&ack, "ack")?;
        let r: Result<(), sled::transaction::TransactionError<()>> = (&self.trees.outbox, &self.trees.acked)
            .transaction(|(outbox, acked)| {
                if let Some(v) = outbox.get(id)?
                    && serde_json::from_slice::<OutboxItem>(&v).is_ok_and(|cur| cur.seq == item.seq)
                {
                    outbox.remove(id)?;
                }
                acked.insert(id, ack.as_slice())?;
                Ok(())
            });
        r.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(s) => self.outbox.store.sled_error(s),
            sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                key: "outbox".into(),
                reason: "aborted".into(),
            },
        })
    }

    /// Rewrites the item (attempts, next attempt, error) if it is still this version.
    fn reschedule(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let id = item.external_id.as_bytes();
        let Some(cur) = self.trees.outbox.get(id).map_err(self.err())? else {
            return Ok(false);
        };
        let cur_item: OutboxItem = decode(&cur, "outbox item")?;
        if cur_item.seq != item.seq {
            return Ok(false);
        }
        let swapped = self
            .trees
            .outbox
            .compare_and_swap(id, Some(cur), Some(encode(item, "outbox item")?))
            .map_err(self.err())?;
        Ok(swapped.is_ok())
    }

    fn bury(&self, item: &OutboxItem, error: &str) -> Result<(), StoreError> {
        let id = item.external_id.as_bytes();
        let dl = DeadLetter {
            id: self.outbox.next_seq()?,
            target: self.target.name().to_owned(),
            item: item.clone(),
            error: error.to_owned(),
            failed_at: self.clock.now(),
        };
        let mut dead_id = dl.id.to_be_bytes().to_vec();
        dead_id.extend_from_slice(item.content_hash.as_bytes());
        let dl_bytes = encode(&dl, "dead letter")?;
        let r: Result<(), sled::transaction::TransactionError<()>> =
            (&self.trees.outbox, &self.trees.dead, &self.trees.dead_ids).transaction(|(outbox, dead, dead_ids)| {
                if let Some(v) = outbox.get(id)?
                    && serde_json::from_slice::<OutboxItem>(&v).is_ok_and(|cur| cur.seq == item.seq)
                {
                    outbox.remove(id)?;
                }
                dead.insert(&dl.id.to_be_bytes(), dl_bytes.as_slice())?;
                dead_ids.insert(id, dead_id.clone())?;
                Ok(())
            });
        tracing::error!(target_name = %self.target.name(), external_id = %item.external_id, error, "operation moved to dead letters");
        r.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(s) => self.outbox.store.sled_error(s),
            sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                key: "outbox".into(),
                reason: "aborted".into(),
            },
        })
    }

    fn backoff(&self, attempts: u32) -> Duration {
        // Full jitter: uniform in [0, cap], at least 100 ms.
        crate::backoff::Backoff::new(self.settings.backoff_initial, self.settings.backoff_max)
            .full_jitter(attempts, Duration::from_millis(100))
    }

    /// Sends what is due, waits for operations in back-off up to `opts.max_wait`, then returns.
    ///
    /// A target whose [`Target::max_batch`] is above 1 is handed up to that many due operations at once
    /// ([`Target::apply_batch`]): one task, one rate-limit token and one `request_timeout` for the batch,
    /// then each operation is acknowledged, retried or buried on its own outcome, as if sent alone.
    pub async fn drain(&self, opts: DrainOptions) -> Result<DrainReport, StoreError> {
        let pause = *self.pause.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = DrainState {
            report: DrainReport::default(),
            queue: self.load_queue()?,
            in_flight: HashSet::new(),
            paused_until: pause.until,
            unreachable_wait: pause.unreachable_wait,
            probing: pause.probing,
        };
        let mut tasks: JoinSet<Settled> = JoinSet::new();
        let batch_max = self.target.max_batch().max(1);
        let started = self.clock.now();
        let stop = opts.stop.clone().unwrap_or_default();
        loop {
            let now = self.clock.now();
            let slots = if stop.is_cancelled() {
                0
            } else if st.probing {
                1
            } else {
                self.settings.concurrency.max(1)
            };
            while tasks.len() < slots && st.paused_until.is_none_or(|p| p <= now) {
                // A target being probed gets one operation at a time.
                let size = if st.probing { 1 } else { batch_max };
                let batch = self.take_due(&mut st, now, size)?;
                if batch.is_empty() {
                    break;
                }
                let target = self.target.clone();
                let limiter = self.limiter.clone();
                let timeout = self.settings.request_timeout;
                tasks.spawn(async move {
                    limiter.acquire().await;
                    run_batch(target, batch, timeout).await
                });
            }
            if tasks.is_empty() {
                if stop.is_cancelled() {
                    break;
                }
                let Some(first) = st.queue.first() else { break };
                let due = st.paused_until.map_or(first.0, |p| p.max(first.0));
                if due > started + chrono::Duration::from_std(opts.max_wait).unwrap_or_default() && due > now {
                    break;
                }
                tokio::select! {
                    _ = sleep_until(&self.clock, due) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            let next_due = if tasks.len() < slots {
                st.queue.first().map(|f| st.paused_until.map_or(f.0, |p| p.max(f.0)))
            } else {
                None
            };
            let joined = tokio::select! {
                j = tasks.join_next() => j,
                _ = sleep_until(&self.clock, next_due.unwrap_or(now)), if next_due.is_some_and(|d| d > now) => continue,
            };
            let Some(joined) = joined else { continue };
            let settled = match joined {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "a push task stopped unexpectedly; its operations stay in the outbox");
                    continue;
                }
            };
            let now = self.clock.now();
            // One unreachable target pauses once per request, not once per operation of a batch.
            let mut batch_pause = None;
            for (item, op, outcome) in settled {
                st.in_flight.remove(&item.external_id);
                let before = (st.report.delivered, st.report.retried, st.report.dead);
                self.settle(&mut st, item, op, outcome, now, &mut batch_pause)?;
                if let Some(f) = &self.on_settled {
                    f(&DrainReport {
                        delivered: st.report.delivered - before.0,
                        retried: st.report.retried - before.1,
                        dead: st.report.dead - before.2,
                        ..DrainReport::default()
                    });
                }
            }
        }
        if let Err(e) = self.target.flush().await {
            tracing::error!(target_name = %self.target.name(), error = %e, "target flush failed");
        }
        *self.pause.lock().unwrap_or_else(|p| p.into_inner()) = TargetPause {
            until: st.paused_until,
            probing: st.probing,
            unreachable_wait: st.unreachable_wait,
        };
        st.report.pending = self.trees.outbox.len() as u64;
        st.report.next_attempt_at = st.queue.first().map(|f| st.paused_until.map_or(f.0, |p| p.max(f.0)));
        Ok(st.report)
    }

    /// Takes up to `size` due operations off the queue (current versions only, none already in flight).
    fn take_due(
        &self,
        st: &mut DrainState,
        now: DateTime<Utc>,
        size: usize,
    ) -> Result<Vec<(OutboxItem, Operation)>, StoreError> {
        let mut batch = Vec::new();
        while batch.len() < size {
            let Some(first) = st.queue.first().cloned() else { break };
            if first.0 > now {
                break;
            }
            st.queue.pop_first();
            let (_, seq, id) = first;
            if st.in_flight.contains(&id) {
                continue;
            }
            let Some(item) = self.current(&id)? else { continue };
            if item.seq != seq {
                st.queue.insert((item.next_attempt_at, item.seq, id));
                continue;
            }
            let op = self.operation(&item)?;
            st.in_flight.insert(id);
            batch.push((item, op));
        }
        Ok(batch)
    }

    /// Records the outcome of one operation: acknowledgement, retry with back-off, probe of an unreachable
    /// target, or dead letter.
    fn settle(
        &self,
        st: &mut DrainState,
        mut item: OutboxItem,
        op: Operation,
        outcome: Outcome,
        now: DateTime<Utc>,
        batch_pause: &mut Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // What is logged and stored never shows credentials of a URL.
        let outcome = match outcome {
            Outcome::Failed(e) => Outcome::Failed(e.redacted()),
            done => done,
        };
        match outcome {
            Outcome::Done(applied) => {
                self.acknowledge(&item, &op, applied)?;
                st.report.delivered += 1;
                if st.probing {
                    tracing::info!(target_name = %self.target.name(), "target reachable again");
                }
                st.probing = false;
                st.unreachable_wait = self.settings.backoff_initial;
                // A newer version may have been enqueued while this one was in flight.
                if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
            }
            Outcome::Failed(TargetError::Retryable {
                message,
                unreachable: true,
                ..
            }) => {
                // Not the operation's fault: pause the target and probe later, attempts untouched. Several
                // operations that were in flight together (a batch, the other concurrency slots) make one
                // pause, not one longer pause each.
                let current = st.paused_until.filter(|p| st.probing && *p > now);
                let until = match batch_pause.or(current) {
                    Some(until) => until,
                    None => {
                        if !st.probing {
                            tracing::warn!(target_name = %self.target.name(), error = %message, "target unreachable; pausing and probing");
                        }
                        st.probing = true;
                        let wait = crate::backoff::half_jitter(st.unreachable_wait);
                        st.unreachable_wait = crate::backoff::grow(st.unreachable_wait, self.settings.backoff_max);
                        let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                        st.paused_until = Some(until);
                        *batch_pause = Some(until);
                        until
                    }
                };
                item.last_error = Some(message);
                item.next_attempt_at = until;
                if self.reschedule(&item)? {
                    st.queue
                        .insert((item.next_attempt_at, item.seq, item.external_id.clone()));
                }
                st.report.retried += 1;
            }
            Outcome::Failed(TargetError::Retryable {
                message, retry_after, ..
            }) => {
                item.attempts += 1;
                item.last_error = Some(message.clone());
                if item.attempts >= self.settings.max_attempts {
                    self.bury(&item, &format!("gave up after {} attempts: {message}", item.attempts))?;
                    st.report.dead += 1;
                    return Ok(());
                }
                let mut wait = self.backoff(item.attempts);
                if let Some(ra) = retry_after {
                    wait = wait.max(ra);
                    let until = now + chrono::Duration::from_std(ra).unwrap_or_default();
                    st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
                }
                item.next_attempt_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                tracing::warn!(target_name = %self.target.name(), external_id = %item.external_id, attempt = item.attempts, retry_in = %crate::text::human(wait), error = %message, "push failed, will retry");
                if self.reschedule(&item)? {
                    st.queue
                        .insert((item.next_attempt_at, item.seq, item.external_id.clone()));
                } else if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
                st.report.retried += 1;
            }
            Outcome::Failed(TargetError::Permanent { message }) => {
                item.attempts += 1;
                self.bury(&item, &message)?;
                st.report.dead += 1;
                if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
            }
        }
        Ok(())
    }
}

/// What one push task brings back: each operation it carried, with its outcome.
type Settled = Vec<(OutboxItem, Operation, Outcome)>;

/// The state of one drain.
struct DrainState {
    report: DrainReport,
    /// (not before, seq, external id) of every pending operation not in flight.
    queue: BTreeSet<(DateTime<Utc>, u64, String)>,
    in_flight: HashSet<String>,
    /// Target-wide pause (Retry-After, unreachable target).
    paused_until: Option<DateTime<Utc>>,
    unreachable_wait: Duration,
    /// The target was unreachable: one operation at a time until one gets through.
    probing: bool,
}

/// Sends one operation (`Target::apply`) or several (`Target::apply_batch`) within `timeout`.
async fn run_batch(target: Arc<dyn Target>, batch: Vec<(OutboxItem, Operation)>, timeout: Duration) -> Settled {
    let (items, ops): (Vec<OutboxItem>, Vec<Operation>) = batch.into_iter().unzip();
    let late = |op: &Operation| {
        let batch = if ops.len() > 1 {
            format!(" (in a batch of {})", ops.len())
        } else {
            String::new()
        };
        TargetError::retry(format!(
            "{} {}: no answer within {}{batch}",
            op.kind.as_str(),
            op.external_id,
            crate::text::human(timeout)
        ))
    };
    let mut results = if let [op] = ops.as_slice() {
        match tokio::time::timeout(timeout, target.apply(op)).await {
            Ok(r) => vec![r],
            Err(_) => vec![Err(late(op))],
        }
    } else {
        match tokio::time::timeout(timeout, target.apply_batch(&ops)).await {
            Ok(r) => r,
            Err(_) => ops.iter().map(|op| Err(late(op))).collect(),
        }
    };
    if results.len() != ops.len() {
        tracing::error!(target_name = %target.name(), sent = ops.len(), results = results.len(), "the target answered a batch with the wrong number of results; the operations without one are retried");
    }
    results.truncate(ops.len());
    while results.len() < ops.len() {
        let op = &ops[results.len()];
        results.push(Err(TargetError::retry(format!(
            "{} {}: the target returned no result for this operation of a batch",
            op.kind.as_str(),
            op.external_id
        ))));
    }
    items
        .into_iter()
        .zip(ops)
        .zip(results)
        .map(|((item, op), r)| {
            let outcome = match r {
                Ok(applied) => Outcome::Done(applied),
                Err(e) => Outcome::Failed(e),
            };
            (item, op, outcome)
        })
        .collect()
}

async fn sleep_until(clock: &SharedClock, at: DateTime<Utc>) {
    let d = (at - clock.now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(d).await;
}
