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

use crate::catalog::{Id, Season};
use crate::clock::SharedClock;
pub use crate::entries::StoredEntry;
use crate::entries::{EntryStore, EntryWrite};
use crate::indicator::StatusFn;
use crate::merge::{self, EntryOptions, MergeContext};
use crate::ratelimit::RateLimiter;
use crate::store::{Store, StoreError, decode, encode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use target::{Applied, OpKind, Operation, Target, TargetError};
use tokio::task::JoinSet;

mod dead;
mod outbox;
mod plan;
mod worker;

#[allow(unused_imports)]
use worker::*;

pub mod target;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
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

enum Outcome {
    Done(Applied),
    Failed(TargetError),
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
