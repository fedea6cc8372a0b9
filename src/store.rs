//! Everything sled: the catalogue in generations, import history, the SecuTix call ledger.
//!
//! # The catalogue in generations
//! A catalogue lives in the trees `cat.<N>.products`, `cat.<N>.hashes` and `cat.<N>.seasons`; the key
//! `catalog.generation` of the `meta` tree says which `N` is in force. An import writes generation `N+1`
//! while readers keep using `N`, then switches the pointer with **one** insert and flushes. A crash or an
//! error before that insert leaves `N` in force; the partial trees are dropped at the next open or import.
//! Each generation is complete: unchanged products are copied (their stored bytes, without parsing), so a
//! generation never depends on an older one, and tombstones (products SecuTix stopped listing) are carried
//! forward with the time they disappeared.
//!
//! # Import
//! [`ImportTxn`] is a [`CatalogSink`]: products arrive one at a time from the parser and go to a staging
//! tree keyed `(product id, season position)`, so duplicates across seasons sit next to each other.
//! [`ImportTxn::finish`] resolves duplicates (the season starting latest wins), applies filters, compares
//! with the generation in force, keeps past performances SecuTix no longer lists, writes tombstones,
//! applies the shrink guard and switches.
//!
//! Records are JSON (readable with `secutix-sync state`, tolerant to added fields).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Id, PosConfig, Product, ProductFamily, Season};
use crate::clock::SharedClock;
use crate::secutix::CallLedger;
use crate::secutix::parse::{CatalogSink, SinkError};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk full, corruption, permissions).
    #[error("the store at {path} failed: {source}")]
    Sled {
        /// The store folder.
        path: String,
        /// sled's error.
        source: sled::Error,
    },
    /// The store is locked by another process.
    #[error(
        "the store at {path} is in use by another secutix-sync process (sled allows one process per store); \
         stop it, or talk to it through its control API"
    )]
    Locked {
        /// The store folder.
        path: String,
    },
    /// A record could not be decoded.
    #[error("the store record {key} is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// One product as stored in a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    /// The product, past performances kept from earlier imports included (`retained`).
    pub product: Product,
    /// BLAKE3 of the product as last received from SecuTix (hex); equal hashes mean nothing changed.
    pub feed_hash: String,
    /// First import that saw the product.
    pub first_seen: DateTime<Utc>,
    /// Last import that changed it.
    pub changed_at: DateTime<Utc>,
    /// When SecuTix stopped listing it: the product is a tombstone (unpublished, never hard-deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<DateTime<Utc>>,
}

/// Facts about a generation, switched with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationMeta {
    /// Generation number.
    pub generation: u64,
    /// When the import that made it finished.
    pub imported_at: Option<DateTime<Utc>>,
    /// BLAKE3 (hex) of the response it came from: an identical response is not parsed again.
    pub body_hash: Option<String>,
    /// POS configuration at that import.
    pub pos: Option<PosConfig>,
    /// Products listed by SecuTix.
    pub live: u64,
    /// Tombstones carried.
    pub tombstones: u64,
    /// Seasons.
    pub seasons: u64,
}

/// Counts of one import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Seasons received.
    pub seasons: u64,
    /// Products kept (after filters and de-duplication).
    pub products: u64,
    /// Performances of those products.
    pub performances: u64,
    /// New products (or products back after a tombstone).
    pub added: u64,
    /// Products whose content changed.
    pub changed: u64,
    /// Products tombstoned by this import.
    pub removed: u64,
    /// Products identical to the generation in force.
    pub unchanged: u64,
    /// Products dropped by the family, season or product filters.
    pub skipped: u64,
    /// Products listed in more than one season (the latest-starting season's copy is kept).
    pub duplicates: u64,
    /// Past performances kept although SecuTix no longer lists them.
    pub retained_performances: u64,
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new generation is in force.
    Success,
    /// SecuTix sent the same bytes as last time: nothing to do.
    Unchanged,
    /// The shrink guard refused it.
    Refused,
    /// It failed; the previous catalogue stays.
    Failed,
}

/// One line of import history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Sequence number.
    pub id: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Outcome.
    pub outcome: ImportOutcome,
    /// The error or refusal, for operators.
    pub error: Option<String>,
    /// Counts.
    pub counts: ImportCounts,
    /// Bytes received from SecuTix.
    pub bytes: u64,
    /// SecuTix calls made.
    pub calls: u32,
    /// The generation in force afterwards.
    pub generation: Option<u64>,
    /// Whether `--force` was given.
    pub forced: bool,
}

/// The shrink guard's refusal.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "import refused: it would remove {removed} of {live} live products ({pct:.0} % > catalogue.shrink_guard_ratio \
     {ratio_pct:.0} %). If this is expected (a season closed, the filters changed), run `secutix-sync import --force` \
     or raise catalogue.shrink_guard_ratio"
)]
pub struct ShrinkRefused {
    /// Products that would be tombstoned.
    pub removed: u64,
    /// Live products in force.
    pub live: u64,
    /// removed / live, in percent.
    pub pct: f64,
    /// The configured ratio, in percent.
    pub ratio_pct: f64,
}

/// What [`ImportTxn::finish`] needs besides the streamed data.
#[derive(Debug, Clone)]
pub struct FinishOptions {
    /// Bypass the shrink guard.
    pub force: bool,
    /// The guard's ratio.
    pub shrink_guard_ratio: f64,
    /// Season codes to keep (empty = all).
    pub season_codes: Vec<String>,
    /// Product codes to keep (empty = all).
    pub product_codes: Vec<String>,
    /// POS configuration fetched for this import.
    pub pos: Option<PosConfig>,
    /// Hash of the response.
    pub body_hash: Option<[u8; 32]>,
}

/// Why an import could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The shrink guard.
    #[error(transparent)]
    Refused(#[from] ShrinkRefused),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const META: &str = "meta";
const KEY_GENERATION: &[u8] = b"catalog.generation";
const KEY_IMPORT_SEQ: &[u8] = b"import.seq";
/// The import under way: its report as it started, written (and flushed) before the first SecuTix call and
/// removed with its final report. Found at open, it means the process stopped mid-import.
const KEY_IMPORT_RUNNING: &[u8] = b"import.running";

/// How long after this process dropped its last handle on a store [`Store::open`] may wait for the lock.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Stores this process opened, by canonical folder: open now, or when its last handle was dropped.
static OPENED: std::sync::LazyLock<Mutex<HashMap<PathBuf, Holding>>> = std::sync::LazyLock::new(Default::default);

#[derive(Debug, Clone, Copy)]
enum Holding {
    /// A handle of this process is alive.
    Open,
    /// This process dropped its last handle then.
    Released(std::time::Instant),
}

fn registry() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Holding>> {
    OPENED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared by every clone of a [`Store`]; dropped with the last one, it records the time in [`OPENED`].
#[derive(Debug)]
struct OpenGuard(Option<PathBuf>);

impl OpenGuard {
    fn register(path: &Path) -> Self {
        let canonical = path.canonicalize().ok();
        if let Some(c) = &canonical {
            registry().insert(c.clone(), Holding::Open);
        }
        Self(canonical)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            registry().insert(c, Holding::Released(std::time::Instant::now()));
        }
    }
}

/// Until when a lock found on `path` may be this process's dropped handle still closing (see
/// [`Store::open`]); `None` when it belongs to another process or to a live handle.
fn releasing_until(path: &Path) -> Option<std::time::Instant> {
    let canonical = path.canonicalize().ok()?;
    match registry().get(&canonical)? {
        Holding::Open => None,
        Holding::Released(at) => Some(*at + RELEASE_WAIT),
    }
}

/// The store. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    imports: sled::Tree,
    calls: sled::Tree,
    path: String,
    clock: SharedClock,
    /// The venue's time zone for day/month call counters, refreshed from the POS configuration.
    tz: std::sync::Arc<Mutex<chrono_tz::Tz>>,
    /// Dropped with the last clone: tells [`Store::open`] when this process let go of the folder.
    _guard: Arc<OpenGuard>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn gen_tree(g: u64, name: &str) -> String {
    format!("cat.{g}.{name}")
}

fn parse_gen_tree(name: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(name).ok()?;
    s.strip_prefix("cat.")?.split('.').next()?.parse().ok()
}

impl Store {
    /// Opens (or creates) the store in `path`; drops the trees of any unfinished import.
    ///
    /// sled allows one open handle per folder (a file lock). When this process dropped its last handle on
    /// `path` a moment ago, sled's I/O threads may still be finishing jobs that hold the database file
    /// open (a segment truncation and its fsync, the end of a log write), and so its lock, for a few
    /// milliseconds (longer on a busy disk): `open` then waits for them, until [`RELEASE_WAIT`] after that
    /// drop. A lock held by another process, or by a live handle of this process, is reported at once
    /// ([`StoreError::Locked`]).
    pub fn open(path: &Path, cache_mib: u64, clock: SharedClock) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let db = loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(cache_mib.max(1) * 1024 * 1024)
                .mode(sled::Mode::HighThroughput)
                .open();
            match opened.map_err(|e| classify(&p, e)) {
                Ok(db) => break db,
                Err(StoreError::Locked { .. })
                    if releasing_until(path).is_some_and(|until| std::time::Instant::now() < until) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        let guard = OpenGuard::register(path);
        Self::from_db(db, p, clock, Arc::new(guard))
    }

    /// A store in a temporary folder that disappears with it (tests, `demo`).
    pub fn temporary(clock: SharedClock) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(|e| classify("(temporary)", e))?;
        Self::from_db(db, "(temporary)".into(), clock, Arc::new(OpenGuard(None)))
    }

    fn from_db(db: sled::Db, path: String, clock: SharedClock, guard: Arc<OpenGuard>) -> Result<Self, StoreError> {
        let err = |e| StoreError::Sled {
            path: path.clone(),
            source: e,
        };
        let meta = db.open_tree(META).map_err(err)?;
        let imports = db.open_tree("imports").map_err(err)?;
        let calls = db.open_tree("calls").map_err(err)?;
        let store = Self {
            db,
            meta,
            imports,
            calls,
            path,
            clock,
            tz: std::sync::Arc::new(Mutex::new(chrono_tz::UTC)),
            _guard: guard,
        };
        store.drop_stale_generations()?;
        store.recover_interrupted_import()?;
        if let Some(tz) = store
            .catalog()?
            .and_then(|v| v.meta.pos)
            .and_then(|p| p.time_zone)
            .and_then(|t| t.parse().ok())
        {
            store.set_time_zone(tz);
        }
        Ok(store)
    }

    fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| StoreError::Sled {
            path: self.path.clone(),
            source: e,
        }
    }

    /// The underlying database, for modules that own their own trees (availability, outbox).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Wraps a sled error with the store's path.
    pub fn sled_error(&self, e: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(self.err())
    }

    /// The generation in force, if any.
    pub fn generation(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta
            .get(KEY_GENERATION)
            .map_err(self.err())?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?))))
    }

    fn drop_stale_generations(&self) -> Result<(), StoreError> {
        let current = self.generation()?;
        for name in self.db.tree_names() {
            if let Some(g) = parse_gen_tree(&name)
                && Some(g) != current
            {
                self.db.drop_tree(&name).map_err(self.err())?;
            }
        }
        Ok(())
    }

    /// A read view of the catalogue in force (`None` before the first import).
    pub fn catalog(&self) -> Result<Option<CatalogView>, StoreError> {
        let Some(g) = self.generation()? else {
            return Ok(None);
        };
        let products = self.db.open_tree(gen_tree(g, "products")).map_err(self.err())?;
        let seasons = self.db.open_tree(gen_tree(g, "seasons")).map_err(self.err())?;
        let meta_tree = self.db.open_tree(gen_tree(g, "meta")).map_err(self.err())?;
        let meta = match meta_tree.get(b"meta").map_err(self.err())? {
            Some(v) => decode(&v, "generation meta")?,
            None => GenerationMeta {
                generation: g,
                ..Default::default()
            },
        };
        let hashes = self.db.open_tree(gen_tree(g, "hashes")).map_err(self.err())?;
        Ok(Some(CatalogView {
            products,
            seasons,
            hashes,
            meta,
        }))
    }

    /// The POS configuration of the catalogue in force.
    pub fn pos_config(&self) -> Result<Option<PosConfig>, StoreError> {
        Ok(self.catalog()?.and_then(|v| v.meta.pos))
    }

    /// The venue's time zone (UTC until a POS configuration told otherwise).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        *self.tz.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the venue's time zone for day/month counters.
    pub fn set_time_zone(&self, tz: chrono_tz::Tz) {
        *self.tz.lock().unwrap_or_else(|p| p.into_inner()) = tz;
    }

    /// Starts an import: drops leftovers, prepares generation N+1's staging trees.
    pub fn begin_import(&self, families: &[String]) -> Result<ImportTxn, StoreError> {
        self.drop_stale_generations()?;
        let next = self.generation()?.map_or(1, |g| g + 1);
        let staging = self.db.open_tree(gen_tree(next, "staging")).map_err(self.err())?;
        let season_staging = self
            .db
            .open_tree(gen_tree(next, "season_staging"))
            .map_err(self.err())?;
        staging.clear().map_err(self.err())?;
        season_staging.clear().map_err(self.err())?;
        Ok(ImportTxn {
            store: self.clone(),
            generation: next,
            staging,
            season_staging,
            families: families.iter().map(|f| ProductFamily::parse(f)).collect(),
            received: 0,
            skipped: 0,
        })
    }

    /// Next import sequence number.
    pub fn next_import_id(&self) -> Result<u64, StoreError> {
        let v = self
            .meta
            .update_and_fetch(KEY_IMPORT_SEQ, |old| {
                let n = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + 1;
                Some(n.to_be_bytes().to_vec())
            })
            .map_err(self.err())?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1))
    }

    /// Marks `report`'s import as under way, durably, before it calls SecuTix: if the process stops before
    /// [`Store::record_import`], the next open records it as interrupted (see
    /// [`Store::recover_interrupted_import`]), so the history never loses a run.
    pub fn import_started(&self, report: &ImportReport) -> Result<(), StoreError> {
        self.meta
            .insert(KEY_IMPORT_RUNNING, encode(report, "import.running")?)
            .map_err(self.err())?;
        self.flush()
    }

    /// Records, at open, the import a stopped process left unfinished (killed, crashed, power cut). Its
    /// report says what is in force: when the catalogue switch happened before the stop, the import
    /// succeeded and its report is rebuilt from the new generation (the counts of changes are lost);
    /// otherwise it failed and the catalogue it started from stayed in force.
    fn recover_interrupted_import(&self) -> Result<(), StoreError> {
        let Some(v) = self.meta.get(KEY_IMPORT_RUNNING).map_err(self.err())? else {
            return Ok(());
        };
        let started: Option<ImportReport> = serde_json::from_slice(&v).ok();
        let recorded = match &started {
            Some(r) => self.imports.contains_key(r.id.to_be_bytes()).map_err(self.err())?,
            None => true,
        };
        if let (Some(mut report), false) = (started, recorded) {
            let now = self.generation()?;
            let view = self.catalog()?;
            if now.is_some() && now != report.generation {
                let meta = view.map(|v| v.meta).unwrap_or_default();
                report.outcome = ImportOutcome::Success;
                report.finished_at = meta.imported_at.unwrap_or(report.started_at);
                report.counts.products = meta.live;
                report.counts.seasons = meta.seasons;
                report.error = None;
                tracing::warn!(
                    import = report.id,
                    generation = ?now,
                    "import #{} was interrupted after its catalogue came into force; its report is rebuilt \
                     from the new generation (the counts of changes are lost)",
                    report.id
                );
            } else {
                report.outcome = ImportOutcome::Failed;
                report.finished_at = self.clock.now().max(report.started_at);
                report.error = Some(format!(
                    "import #{} was interrupted: secutix-sync stopped before the import finished (killed, crashed, \
                     the machine went down, or a shutdown past daemon.shutdown_grace); the previous catalogue \
                     stayed in force. The next scheduled import fetches the catalogue again; to import now, run \
                     `secutix-sync resync --catalogue`",
                    report.id
                ));
                tracing::warn!(
                    import = report.id,
                    "the last import was interrupted; the previous catalogue stayed in force"
                );
            }
            report.generation = now;
            self.imports
                .insert(report.id.to_be_bytes(), encode(&report, "import report")?)
                .map_err(self.err())?;
        }
        self.meta.remove(KEY_IMPORT_RUNNING).map_err(self.err())?;
        self.flush()
    }

    /// Appends an import report (and ends the mark of [`Store::import_started`]).
    pub fn record_import(&self, report: &ImportReport) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            key: "import".into(),
            reason: e.to_string(),
        })?;
        self.imports
            .insert(report.id.to_be_bytes(), bytes)
            .map_err(self.err())?;
        let running = self.meta.get(KEY_IMPORT_RUNNING).map_err(self.err())?;
        if running
            .and_then(|v| serde_json::from_slice::<ImportReport>(&v).ok())
            .is_none_or(|r| r.id == report.id)
        {
            self.meta.remove(KEY_IMPORT_RUNNING).map_err(self.err())?;
        }
        // Keep the last 500 reports.
        while self.imports.len() > 500 {
            if self.imports.pop_min().map_err(self.err())?.is_none() {
                break;
            }
        }
        self.flush()
    }

    /// The most recent import reports, newest first.
    pub fn import_history(&self, limit: usize) -> Result<Vec<ImportReport>, StoreError> {
        self.imports
            .iter()
            .rev()
            .take(limit)
            .map(|r| {
                let (_, v) = r.map_err(self.err())?;
                decode(&v, "import report")
            })
            .collect()
    }

    /// The last successful (or unchanged) import.
    pub fn last_good_import(&self) -> Result<Option<ImportReport>, StoreError> {
        for r in self.imports.iter().rev() {
            let (_, v) = r.map_err(self.err())?;
            let rep: ImportReport = decode(&v, "import report")?;
            if matches!(rep.outcome, ImportOutcome::Success | ImportOutcome::Unchanged) {
                return Ok(Some(rep));
            }
        }
        Ok(None)
    }

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

    fn counter(&self, key: &str) -> u64 {
        self.calls
            .get(key)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    }

    fn bump(&self, key: &str, by: u64) -> Result<(), sled::Error> {
        self.calls.update_and_fetch(key, |old| {
            let n = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + by;
            Some(n.to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

fn month_key<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String {
    format!("month.{:04}-{:02}", t.year(), t.month())
}

fn day_key<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String {
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

fn classify(path: &str, e: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &e
        && io.kind() == std::io::ErrorKind::WouldBlock
    {
        return StoreError::Locked { path: path.to_owned() };
    }
    if e.to_string().contains("could not acquire lock") {
        return StoreError::Locked { path: path.to_owned() };
    }
    StoreError::Sled {
        path: path.to_owned(),
        source: e,
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        reason: e.to_string(),
    })
}

fn hash_hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// A read view of one generation of the catalogue.
#[derive(Debug, Clone)]
pub struct CatalogView {
    products: sled::Tree,
    seasons: sled::Tree,
    hashes: sled::Tree,
    /// Facts about the generation.
    pub meta: GenerationMeta,
}

impl CatalogView {
    /// One product (live or tombstone).
    pub fn product(&self, id: Id) -> Result<Option<ProductRecord>, StoreError> {
        match self.products.get(id.to_be_bytes()) {
            Ok(Some(v)) => decode(&v, &format!("product {id}")).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::Sled {
                path: "catalogue".into(),
                source: e,
            }),
        }
    }

    /// Every product record, in id order.
    pub fn products(&self) -> impl Iterator<Item = Result<ProductRecord, StoreError>> + '_ {
        self.products.iter().map(|r| {
            let (k, v) = r.map_err(|e| StoreError::Sled {
                path: "catalogue".into(),
                source: e,
            })?;
            decode(&v, &format!("product {:?}", k.as_ref()))
        })
    }

    /// Product ids, in order.
    pub fn product_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.products
            .iter()
            .keys()
            .filter_map(|k| Some(Id::from_be_bytes(k.ok()?.as_ref().try_into().ok()?)))
    }

    /// Seasons of the generation.
    pub fn seasons(&self) -> Result<Vec<Season>, StoreError> {
        self.seasons
            .iter()
            .values()
            .map(|v| {
                decode(
                    &v.map_err(|e| StoreError::Sled {
                        path: "catalogue".into(),
                        source: e,
                    })?,
                    "season",
                )
            })
            .collect()
    }

    /// Number of products, tombstones included.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// True when the generation holds no product.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    fn hash_entry(&self, id: Id) -> Option<(String, bool)> {
        let v = self.hashes.get(id.to_be_bytes()).ok()??;
        let (tomb, h) = v.split_first()?;
        Some((hex::encode(h), *tomb == 1))
    }
}

/// An import being written (generation N+1). Dropping it without [`ImportTxn::finish`] changes nothing
/// that readers see; [`ImportTxn::abort`] also removes its trees at once.
pub struct ImportTxn {
    store: Store,
    generation: u64,
    staging: sled::Tree,
    season_staging: sled::Tree,
    families: Vec<ProductFamily>,
    received: u64,
    skipped: u64,
}

impl std::fmt::Debug for ImportTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportTxn")
            .field("generation", &self.generation)
            .field("received", &self.received)
            .finish()
    }
}

impl CatalogSink for ImportTxn {
    fn reset(&mut self) -> Result<(), SinkError> {
        self.staging.clear()?;
        self.season_staging.clear()?;
        self.received = 0;
        self.skipped = 0;
        Ok(())
    }

    fn season(&mut self, index: u32, season: Season) -> Result<(), SinkError> {
        self.season_staging
            .insert(index.to_be_bytes(), serde_json::to_vec(&season)?)?;
        Ok(())
    }

    fn product(&mut self, season_index: Option<u32>, product: Product) -> Result<(), SinkError> {
        self.received += 1;
        let keep = match &product.family {
            Some(f) => self.families.contains(f),
            // No family sent: a product with an event is a ticket for a dated event.
            None => product.event.is_some() && self.families.contains(&ProductFamily::SingleEntry),
        };
        if !keep {
            self.skipped += 1;
            return Ok(());
        }
        let mut key = [0u8; 12];
        key[..8].copy_from_slice(&product.id.to_be_bytes());
        key[8..].copy_from_slice(&season_index.unwrap_or(u32::MAX).to_be_bytes());
        self.staging.insert(key, serde_json::to_vec(&product)?)?;
        Ok(())
    }
}

impl ImportTxn {
    /// Products received so far (before filters).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Abandons the import and removes its trees.
    pub fn abort(self) {
        for t in ["staging", "season_staging", "products", "hashes", "seasons", "meta"] {
            let _ = self.store.db.drop_tree(gen_tree(self.generation, t));
        }
    }

    /// Resolves, compares, guards and switches (see the module docs). On any error the generation in force
    /// is unchanged.
    pub fn finish(self, opts: &FinishOptions) -> Result<ImportCounts, FinishError> {
        let result = self.build(opts);
        match result {
            Ok(counts) => Ok(counts),
            Err(e) => {
                self.abort();
                Err(e)
            }
        }
    }

    fn build(&self, opts: &FinishOptions) -> Result<ImportCounts, FinishError> {
        let store = &self.store;
        let err = store.err();
        let now = store.clock.now();
        let g = self.generation;
        let products = store.db.open_tree(gen_tree(g, "products")).map_err(&err)?;
        let hashes = store.db.open_tree(gen_tree(g, "hashes")).map_err(&err)?;
        let seasons_tree = store.db.open_tree(gen_tree(g, "seasons")).map_err(&err)?;
        products.clear().map_err(&err)?;
        hashes.clear().map_err(&err)?;
        seasons_tree.clear().map_err(&err)?;
        let previous = store.catalog()?;

        let mut counts = ImportCounts {
            skipped: self.skipped,
            ..Default::default()
        };
        let mut seasons: BTreeMap<u32, Season> = BTreeMap::new();
        for r in self.season_staging.iter() {
            let (k, v) = r.map_err(&err)?;
            let idx = u32::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 4]));
            seasons.insert(idx, decode(&v, "staged season")?);
        }
        counts.seasons = seasons.len() as u64;
        for s in seasons.values() {
            if let Some(id) = s.id {
                seasons_tree
                    .insert(id.to_be_bytes(), encode(s, "season")?)
                    .map_err(&err)?;
            }
        }

        // Pass 1: one winner per product id (staging keys are ordered by id, then season position).
        let mut kept: HashSet<Id> = HashSet::new();
        let mut group: Vec<(u32, sled::IVec)> = Vec::new();
        let mut group_id: Option<Id> = None;
        let mut flush_group =
            |id: Id, group: &mut Vec<(u32, sled::IVec)>, counts: &mut ImportCounts| -> Result<(), FinishError> {
                if group.len() > 1 {
                    counts.duplicates += 1;
                }
                // The copy from the season that starts latest wins; a later position breaks ties.
                let winner = group
                    .iter()
                    .max_by_key(|(idx, _)| (seasons.get(idx).and_then(|s| s.start), *idx))
                    .map(|(idx, v)| (*idx, v.clone()));
                group.clear();
                let Some((idx, bytes)) = winner else {
                    return Ok(());
                };
                let mut product: Product = decode(&bytes, "staged product")?;
                if let Some(season) = seasons.get(&idx) {
                    product.season_id = product.season_id.or(season.id);
                    product.season_code = season.code.clone();
                }
                if !opts.season_codes.is_empty()
                    && !product
                        .season_code
                        .as_ref()
                        .is_some_and(|c| opts.season_codes.iter().any(|s| s == c))
                {
                    counts.skipped += 1;
                    return Ok(());
                }
                if !opts.product_codes.is_empty()
                    && !product
                        .code
                        .as_ref()
                        .is_some_and(|c| opts.product_codes.iter().any(|s| s == c))
                {
                    counts.skipped += 1;
                    return Ok(());
                }
                let feed_bytes = encode(&product, "product")?;
                let feed_hash = blake3::hash(&feed_bytes);
                let feed_hex = hash_hex(feed_hash.as_bytes());
                counts.products += 1;
                counts.performances += product.performances().len() as u64;
                kept.insert(id);
                let prev_hash = previous.as_ref().and_then(|p| p.hash_entry(id));
                let mut hash_val = Vec::with_capacity(33);
                hash_val.push(0u8);
                hash_val.extend_from_slice(feed_hash.as_bytes());
                match prev_hash {
                    Some((h, false)) if h == feed_hex => {
                        // Unchanged: copy the stored record as is (retained performances included).
                        let prev_bytes = previous
                            .as_ref()
                            .and_then(|p| p.products.get(id.to_be_bytes()).ok().flatten())
                            .ok_or_else(|| StoreError::Corrupt {
                                key: format!("product {id}"),
                                reason: "hash without record".into(),
                            })?;
                        products.insert(id.to_be_bytes(), prev_bytes).map_err(&err)?;
                        counts.unchanged += 1;
                    }
                    prev => {
                        let old = match &prev {
                            Some(_) => previous.as_ref().map(|p| p.product(id)).transpose()?.flatten(),
                            None => None,
                        };
                        let mut record = ProductRecord {
                            product,
                            feed_hash: feed_hex,
                            first_seen: old.as_ref().map_or(now, |o| o.first_seen),
                            changed_at: now,
                            removed_at: None,
                        };
                        if let Some(old) = &old {
                            counts.retained_performances +=
                                retain_past_performances(&mut record.product, &old.product, now);
                        }
                        match prev {
                            Some((_, false)) => counts.changed += 1,
                            _ => counts.added += 1,
                        }
                        products
                            .insert(id.to_be_bytes(), encode(&record, "product")?)
                            .map_err(&err)?;
                    }
                }
                hashes.insert(id.to_be_bytes(), hash_val).map_err(&err)?;
                Ok(())
            };
        for r in self.staging.iter() {
            let (k, v) = r.map_err(&err)?;
            let id = Id::from_be_bytes(k[..8].try_into().unwrap_or([0; 8]));
            let idx = u32::from_be_bytes(k[8..12].try_into().unwrap_or([0; 4]));
            if group_id.is_some_and(|g| g != id) {
                flush_group(group_id.unwrap_or(id), &mut group, &mut counts)?;
            }
            group_id = Some(id);
            group.push((idx, v));
        }
        if let Some(id) = group_id {
            flush_group(id, &mut group, &mut counts)?;
        }

        // Pass 2: products of the generation in force that SecuTix no longer lists become tombstones.
        let mut live_before = 0u64;
        let mut guarded_live_before = 0u64;
        let mut guarded_removed = 0u64;
        let mut tombstones = 0u64;
        if let Some(prev) = &previous {
            for r in prev.products.iter() {
                let (k, v) = r.map_err(&err)?;
                let id = Id::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                let mut rec: ProductRecord = decode(&v, "product")?;
                let ended = rec.product.has_ended(now);
                if rec.removed_at.is_none() {
                    live_before += 1;
                    if !ended {
                        guarded_live_before += 1;
                    }
                }
                if kept.contains(&id) {
                    continue;
                }
                if rec.removed_at.is_none() {
                    rec.removed_at = Some(now);
                    counts.removed += 1;
                    if !ended {
                        guarded_removed += 1;
                    }
                }
                tombstones += 1;
                let mut hv = vec![1u8];
                hv.extend_from_slice(&hex::decode(&rec.feed_hash).unwrap_or_else(|_| vec![0; 32]));
                products.insert(k, encode(&rec, "product")?).map_err(&err)?;
                hashes.insert(id.to_be_bytes(), hv).map_err(&err)?;
            }
        }

        // The shrink guard.
        if !opts.force && live_before > 0 {
            let all_gone = counts.products == 0;
            let ratio = if guarded_live_before == 0 {
                0.0
            } else {
                guarded_removed as f64 / guarded_live_before as f64
            };
            if all_gone || ratio > opts.shrink_guard_ratio {
                let (removed, live) = if all_gone {
                    (live_before, live_before)
                } else {
                    (guarded_removed, guarded_live_before)
                };
                return Err(ShrinkRefused {
                    removed,
                    live,
                    pct: removed as f64 * 100.0 / live.max(1) as f64,
                    ratio_pct: opts.shrink_guard_ratio * 100.0,
                }
                .into());
            }
        }

        // Switch.
        let meta = GenerationMeta {
            generation: g,
            imported_at: Some(now),
            body_hash: opts.body_hash.as_ref().map(hash_hex),
            pos: opts
                .pos
                .clone()
                .or_else(|| previous.as_ref().and_then(|p| p.meta.pos.clone())),
            live: counts.products,
            tombstones,
            seasons: counts.seasons,
        };
        let meta_tree = store.db.open_tree(gen_tree(g, "meta")).map_err(&err)?;
        meta_tree
            .insert(b"meta", encode(&meta, "generation meta")?)
            .map_err(&err)?;
        store.db.flush().map_err(&err)?;
        store.meta.insert(KEY_GENERATION, &g.to_be_bytes()).map_err(&err)?;
        store.db.flush().map_err(&err)?;
        let _ = store.db.drop_tree(gen_tree(g, "staging"));
        let _ = store.db.drop_tree(gen_tree(g, "season_staging"));
        if let Some(tz) = meta
            .pos
            .as_ref()
            .and_then(|p| p.time_zone.as_deref())
            .and_then(|t| t.parse().ok())
        {
            store.set_time_zone(tz);
        }
        Ok(counts)
    }
}

/// Adds to `new` the past performances of `old` that SecuTix no longer lists; returns how many.
fn retain_past_performances(new: &mut Product, old: &Product, now: DateTime<Utc>) -> u64 {
    let Some(event) = new.event.as_mut() else {
        return 0;
    };
    let present: HashSet<Id> = event.performances.iter().map(|p| p.id).collect();
    let mut n = 0;
    for p in old.performances() {
        if !present.contains(&p.id) && p.is_past(now) {
            let mut kept = p.clone();
            kept.retained = true;
            event.performances.push(kept);
            n += 1;
        }
    }
    if n > 0 {
        crate::catalog::sort_performances(&mut event.performances);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: Id) -> Product {
        Product {
            id,
            code: None,
            season_id: None,
            season_code: None,
            family: Some(ProductFamily::SingleEntry),
            family_sub_type: None,
            state: None,
            name: crate::catalog::Translated::from_pairs([("fr", "x")]),
            short_name: Default::default(),
            description: Default::default(),
            images: Default::default(),
            detail_url: None,
            sale_periods: vec![],
            sub_topic_codes: vec![],
            event: None,
        }
    }

    fn import(store: &Store, ids: &[Id]) -> ImportCounts {
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        for &id in ids {
            txn.product(Some(0), product(id)).expect("stage");
        }
        txn.finish(&FinishOptions {
            force: false,
            shrink_guard_ratio: 0.5,
            season_codes: vec![],
            product_codes: vec![],
            pos: None,
            body_hash: None,
        })
        .expect("finish")
    }

    fn started(store: &Store) -> ImportReport {
        let now = store.clock().now();
        ImportReport {
            id: store.next_import_id().expect("id"),
            started_at: now,
            finished_at: now,
            outcome: ImportOutcome::Failed,
            error: None,
            counts: ImportCounts::default(),
            bytes: 0,
            calls: 0,
            generation: store.generation().expect("generation"),
            forced: false,
        }
    }

    #[test]
    fn an_import_the_process_did_not_finish_is_in_the_history_after_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = crate::clock::system();
        {
            let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
            let mut first = started(&store);
            store.import_started(&first).expect("mark");
            first.counts = import(&store, &[1, 2, 3]);
            first.outcome = ImportOutcome::Success;
            first.generation = store.generation().expect("generation");
            store.record_import(&first).expect("record");
            // Import 2 stops before the switch.
            store.import_started(&started(&store)).expect("mark");
        }
        {
            let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
            let history = store.import_history(10).expect("history");
            assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 1]);
            let interrupted = &history[0];
            assert_eq!(interrupted.outcome, ImportOutcome::Failed);
            assert_eq!(interrupted.generation, Some(1), "the catalogue it started from stayed");
            let error = interrupted.error.as_deref().unwrap_or_default();
            assert!(error.contains("import #2 was interrupted"), "{error}");
            assert!(error.contains("resync --catalogue"), "says what to do: {error}");
            assert_eq!(store.last_good_import().expect("good").map(|r| r.id), Some(1));
            // Import 3 stops after the switch, before its report.
            store.import_started(&started(&store)).expect("mark");
            import(&store, &[1, 2, 3, 4]);
        }
        let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
        let history = store.import_history(10).expect("history");
        assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
        let switched = &history[0];
        assert_eq!(switched.outcome, ImportOutcome::Success, "{switched:?}");
        assert_eq!(switched.generation, Some(2));
        assert_eq!(switched.counts.products, 4);
        assert_eq!(switched.error, None);
        drop(store);
        let store = Store::open(dir.path(), 1, clock).expect("reopen");
        assert_eq!(store.import_history(10).expect("history").len(), 3, "recorded once");
    }

    #[test]
    fn a_finished_import_leaves_no_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = crate::clock::system();
        {
            let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
            let mut report = started(&store);
            store.import_started(&report).expect("mark");
            report.counts = import(&store, &[1]);
            report.outcome = ImportOutcome::Success;
            report.generation = store.generation().expect("generation");
            store.record_import(&report).expect("record");
        }
        let store = Store::open(dir.path(), 1, clock).expect("reopen");
        let history = store.import_history(10).expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].outcome, ImportOutcome::Success);
    }

    #[test]
    fn a_lock_left_by_a_handle_this_process_dropped_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = crate::clock::system();
        drop(Store::open(dir.path(), 1, clock.clone()).expect("open"));
        // What sled's I/O threads do after the last handle went: keep the database file, and its lock, a
        // little longer. Here a thread holds the lock for 200 ms.
        let file = std::fs::File::open(dir.path().join("db")).expect("db file");
        file.lock().expect("lock");
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            locked_tx.send(()).expect("send");
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(file);
        });
        locked_rx.recv().expect("recv");
        let store = Store::open(dir.path(), 1, clock).expect("waits for the lock, then opens");
        holder.join().expect("join");
        assert_eq!(store.generation().expect("generation"), None);
    }

    #[test]
    fn a_lock_of_another_owner_or_of_a_live_handle_is_reported_at_once() {
        let clock = crate::clock::system();
        // Never opened by this process: another process holds it.
        let other = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(other.path().join("db")).expect("db file");
        file.lock().expect("lock");
        assert_eq!(releasing_until(other.path()), None);
        match Store::open(other.path(), 1, clock.clone()) {
            Err(StoreError::Locked { path }) => assert_eq!(path, other.path().display().to_string()),
            r => panic!("expected Locked, got {r:?}"),
        }
        drop(file);

        // Open here: a second open is refused without waiting; once dropped, the wait applies.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
        let copy = store.clone();
        assert_eq!(releasing_until(dir.path()), None);
        assert!(matches!(
            Store::open(dir.path(), 1, clock.clone()),
            Err(StoreError::Locked { .. })
        ));
        drop(store);
        assert_eq!(releasing_until(dir.path()), None, "a clone is still alive");
        drop(copy);
        assert!(releasing_until(dir.path()).is_some_and(|t| t > std::time::Instant::now()));
        Store::open(dir.path(), 1, clock).expect("reopens");
    }
}
