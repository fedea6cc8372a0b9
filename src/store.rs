//! Everything persistent: the catalogue in generations, import history, the SecuTix call ledger.
//!
//! # The catalogue in generations
//! A generation `N` is an index tree `cat.<N>.products` (product id → where its record is, plus what an import
//! compares without reading it: feed hash, wire hash, last start, tombstone flag, code), the trees
//! `cat.<N>.seasons` and `cat.<N>.meta`, and an append-only **record file** `records/cat.<N>.records` in the
//! store folder holding the product records. The key `catalog.generation` of the `meta` tree says which `N`
//! is in force. An import writes generation `N+1` while readers keep using `N`, syncs its record file, then
//! switches the pointer with **one** insert and flushes. A crash or an error before that insert leaves `N`
//! in force; the partial trees and files are dropped at the next open or import.
//! Each generation is complete: unchanged products are copied (their stored bytes, without parsing), so a
//! generation never depends on an older one, and tombstones (products SecuTix stopped listing) are carried
//! forward with the time they disappeared.
//!
//! Why records live in files and not in sled values: sled 0.34 keeps every large value it was given in
//! memory, whatever its `cache_capacity` (measured: 152 MB of 40 KB values → 163 MB resident), so a large
//! catalogue would sit in the daemon's memory twice. sled keeps the small index; the page cache keeps the
//! records.
//!
//! # Import
//! [`ImportTxn`] is a [`CatalogSink`]: products arrive one at a time from the parser, are appended to a
//! staging file, and indexed in a staging tree keyed `(product id, season position)`, so duplicates across
//! seasons sit next to each other. A product whose bytes are the same as in the generation in force (same
//! wire hash, same conversion settings) is not even parsed: it is staged as "unchanged" and its record is
//! copied. [`ImportTxn::finish`] resolves duplicates (the season starting latest wins), applies filters,
//! compares with the generation in force, keeps past performances SecuTix no longer lists, writes
//! tombstones, applies the shrink guard and switches.
//!
//! Records are JSON (readable with `secutix-sync state`, tolerant to added fields).
//!
//! # A full disk
//! sled 0.34 writes a snapshot of its page table at every open to `snap.<lsn>.generating`, syncs it, renames
//! it to `snap.<lsn>`, then removes the older snapshots. When that write fails part-way (the disk is full, the
//! process is killed), the `.generating` file stays, empty or cut short, and sled reads it first at every
//! later open: "Read corrupted data", even once space is freed (sled issue #1527). Such a file is a snapshot
//! sled never finished: the snapshot before it and sled's log hold everything it would have held. So when
//! sled reports corrupted data, [`Store::open`] takes sled's lock, removes the `.generating` files, says so
//! ([`Store::repairs`] and a warning in the log), and opens again, once. Nothing else is ever removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Id, PosConfig, Product, ProductFamily, Season};
use crate::clock::SharedClock;
use crate::secutix::CallLedger;
use crate::secutix::parse::{CatalogSink, SinkError, WireHash};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk full, corruption, permissions).
    #[error("the store at {path} failed: {}", sled_reason(.error))]
    Sled {
        /// The store folder.
        path: String,
        /// sled's error, told in the message in words: not chained as the source, whose own text is debug
        /// output (`Read corrupted data at file offset None`, `Os { code: 28, … }`).
        error: sled::Error,
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
    /// A record file could not be written or read (disk full, permissions, a file removed by hand).
    #[error("the store at {path} failed on {what}: {source}. {}", io_advice(.source))]
    Io {
        /// The store folder.
        path: String,
        /// The file and operation.
        what: String,
        /// The I/O error.
        source: std::io::Error,
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

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// Folder of the sled database (one process at a time).
    pub path: PathBuf,
    /// sled page cache, MiB.
    pub cache_mib: u64,
}

impl StoreConfig {
    /// Checks `[store]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        if self.path.as_os_str().is_empty() {
            bad(
                "store.path",
                "is empty; set the folder of the database, e.g. /var/lib/secutix-sync".into(),
            );
        }
    }
}

impl From<crate::codec::CodecError> for StoreError {
    fn from(e: crate::codec::CodecError) -> Self {
        StoreError::Corrupt {
            key: e.key,
            reason: e.reason,
        }
    }
}

/// A stored value read back through the one codec of every tree ([`crate::codec`]); an unreadable one is
/// [`StoreError::Corrupt`] naming `what`.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    Ok(crate::codec::decode(bytes, what)?)
}

/// A value as stored through the one codec of every tree ([`crate::codec`]); one that cannot be written is
/// [`StoreError::Corrupt`] naming `what`, never empty bytes.
pub fn encode<T: Serialize + ?Sized>(v: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    Ok(crate::codec::encode(v, what)?)
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
    /// What the wire hashes of this generation depend on besides the bytes (conversion version, product
    /// families, time zone): an import with another fingerprint parses every product again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_fingerprint: Option<String>,
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
    /// Unchanged products taken without being parsed: their bytes were the same as at the import in force.
    #[serde(default)]
    pub reused: u64,
    /// Values left out because they cannot be right (a negative price, a start in year 9999…); the first
    /// ones are listed in [`ImportReport::flagged`].
    #[serde(default)]
    pub flagged: u64,
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

impl ImportOutcome {
    /// The outcome in the words of the status document: `success`, `unchanged`, `refused`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportOutcome::Success => "success",
            ImportOutcome::Unchanged => "unchanged",
            ImportOutcome::Refused => "refused",
            ImportOutcome::Failed => "failed",
        }
    }
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
    /// The first values left out because they cannot be right, with their product and performance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<String>,
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
    /// Folder of the generations' record files.
    records_dir: PathBuf,
    /// The store's folder (the temporary folder of a temporary store): where modules keep their own files.
    files_root: PathBuf,
    /// The temporary folder of a [`Store::temporary`] store, removed with the last clone.
    _temporary: Option<Arc<tempfile::TempDir>>,
    /// What [`Store::open`] repaired, for the caller to report.
    repairs: Arc<Vec<Repair>>,
}

/// A file [`Store::open`] removed so that sled would open the store (see "A full disk" in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The file removed: an unfinished sled snapshot, `snap.<lsn>.generating`.
    pub file: PathBuf,
    /// Its size: 0 when the disk was already full as sled created it.
    pub bytes: u64,
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

fn records_file(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("cat.{g}.records"))
}

fn staging_file(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("cat.{g}.staging"))
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
        let mut repairs = Vec::new();
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
                // Once: a second failure is not an unfinished snapshot, and is reported as it is.
                Err(e) if repairs.is_empty() && e.is_corruption() => {
                    repairs = remove_unfinished_snapshots(path, &p)?;
                    if repairs.is_empty() {
                        return Err(e);
                    }
                    for r in &repairs {
                        tracing::warn!(
                            store = %p,
                            "the store could not be opened: sled found {}, a snapshot it never finished ({} bytes, \
                             left by a write that failed, typically on a full disk); removed it and opened the store \
                             from sled's previous snapshot and log: nothing the store held is lost",
                            r.file.display(),
                            r.bytes
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let guard = OpenGuard::register(path);
        let mut store = Self::from_db(
            db,
            p,
            clock,
            path.to_owned(),
            path.join("records"),
            None,
            Arc::new(guard),
        )?;
        store.repairs = Arc::new(repairs);
        Ok(store)
    }

    /// What [`Store::open`] repaired before sled would open the store (empty almost always).
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// A store in a temporary folder that disappears with it (tests, `demo`).
    pub fn temporary(clock: SharedClock) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(|e| classify("(temporary)", e))?;
        let dir = tempfile::Builder::new()
            .prefix("secutix-sync-store-")
            .tempdir()
            .map_err(|e| StoreError::Io {
                path: "(temporary)".into(),
                what: "creating a temporary folder".into(),
                source: e,
            })?;
        let records = dir.path().to_owned();
        Self::from_db(
            db,
            "(temporary)".into(),
            clock,
            records.clone(),
            records,
            Some(Arc::new(dir)),
            Arc::new(OpenGuard(None)),
        )
    }

    fn from_db(
        db: sled::Db,
        path: String,
        clock: SharedClock,
        files_root: PathBuf,
        records_dir: PathBuf,
        temporary: Option<Arc<tempfile::TempDir>>,
        guard: Arc<OpenGuard>,
    ) -> Result<Self, StoreError> {
        let err = |e| StoreError::Sled {
            path: path.clone(),
            error: e,
        };
        std::fs::create_dir_all(&records_dir).map_err(|e| StoreError::Io {
            path: path.clone(),
            what: format!("creating {}", records_dir.display()),
            source: e,
        })?;
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
            records_dir,
            files_root,
            _temporary: temporary,
            repairs: Arc::default(),
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
            error: e,
        }
    }

    fn io(&self, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        let what = what.into();
        move |e| StoreError::Io {
            path: self.path.clone(),
            what,
            source: e,
        }
    }

    /// The underlying database, for modules that own their own trees (availability, outbox).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// A folder of the store for a module's own files (`entries`: the entry logs), created if needed.
    pub fn folder(&self, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.files_root.join(name);
        std::fs::create_dir_all(&dir).map_err(self.io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    /// Wraps an I/O error on `what` (a file and an operation) with the store's path.
    pub fn io_error(&self, what: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            what: what.into(),
            source,
        }
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Wraps a sled error with the store's path.
    pub fn sled_error(&self, e: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            error: e,
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
        let entries =
            std::fs::read_dir(&self.records_dir).map_err(self.io(format!("listing {}", self.records_dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(g) = parse_gen_tree(name.as_encoded_bytes())
                && Some(g) != current
            {
                // Readers of an older generation keep their open file; the name goes now.
                std::fs::remove_file(entry.path()).map_err(self.io(format!("removing {}", entry.path().display())))?;
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
        let path = records_file(&self.records_dir, g);
        let file = File::open(&path).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            what: format!(
                "opening the records of generation {g} ({}); if it was removed, run `secutix-sync import --force`",
                path.display()
            ),
            source: e,
        })?;
        Ok(Some(CatalogView {
            products,
            seasons,
            file: Arc::new(file),
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

    /// Starts an import: drops leftovers, prepares generation N+1's staging tree and file.
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
        let families: Vec<ProductFamily> = families.iter().map(|f| ProductFamily::parse(f)).collect();
        let fingerprint = wire_fingerprint(&families, self.time_zone());
        // Products whose bytes are unchanged since the generation in force (same settings) need no parsing.
        let mut known = HashMap::new();
        if let Some(view) = self.catalog()?
            && view.meta.wire_fingerprint.as_deref() == Some(fingerprint.as_str())
        {
            for r in view.products.iter() {
                let (k, v) = r.map_err(self.err())?;
                if let (Ok(id), Some(e)) = (<[u8; 8]>::try_from(k.as_ref()), IndexEntry::decode(&v))
                    && !e.tombstone
                    && e.wire_hash != [0; 32]
                {
                    known.insert(e.wire_hash, Id::from_be_bytes(id));
                }
            }
        }
        let staging_path = staging_file(&self.records_dir, next);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging_path)
            .map_err(self.io(format!("creating {}", staging_path.display())))?;
        Ok(ImportTxn {
            store: self.clone(),
            generation: next,
            staging,
            season_staging,
            staging_out: RecordWriter::new(file, staging_path),
            families,
            fingerprint,
            known,
            pending_wire: None,
            received: 0,
            skipped: 0,
            unparsed: 0,
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
                    generation = now,
                    "import #{} was interrupted after its catalogue came into force; its report is rebuilt \
                     from the new generation (the counts of changes are lost)",
                    report.id
                );
            } else {
                report.outcome = ImportOutcome::Failed;
                report.finished_at = self.clock.now().max(report.started_at);
                // The mark carries the last failure the import was retrying (`import::run_import`).
                let last = report
                    .error
                    .take()
                    .map(|e| format!(". Until then it was retrying after this error: {e}"))
                    .unwrap_or_default();
                report.error = Some(format!(
                    "import #{} was interrupted: secutix-sync stopped before the import finished (killed, crashed, \
                     the machine went down, or a shutdown past daemon.shutdown_grace); the previous catalogue \
                     stayed in force. The next scheduled import fetches the catalogue again; to import now, run \
                     `secutix-sync resync --catalogue`{last}",
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
        error: e,
    }
}

impl StoreError {
    /// sled read data that does not check out (a damaged or unfinished file of the store).
    fn is_corruption(&self) -> bool {
        matches!(
            self,
            StoreError::Sled {
                error: sled::Error::Corruption { .. },
                ..
            }
        )
    }
}

/// What to do after an I/O error on the store's own files.
fn io_advice(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::StorageFull {
        "The disk is full: free space on it (\"Disk full\" in the README's Operations); nothing acknowledged is lost"
    } else {
        "Check the disk and the folder's permissions"
    }
}

/// Why sled failed, for an operator: what happened and what to do, without Rust's debug text.
fn sled_reason(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => "the disk is full (no space left \
             on device). Free space on it (`df -h` shows how much is left), then restart the daemon (`systemctl \
             restart secutix-sync`): after a failed write the store refuses every other one until it is opened \
             again. What targets acknowledged and the operations waiting to be sent stay in the store"
            .to_owned(),
        // sled wraps some I/O errors in a custom one holding the original's debug text (`Os { code: 13, … }`):
        // its kind says the same in words.
        sled::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.to_string().starts_with("Os {")) => {
            format!("I/O error: {}. Check the disk and the folder's permissions", io.kind())
        }
        sled::Error::Io(io) => format!("I/O error: {io}. Check the disk and the folder's permissions"),
        sled::Error::Corruption { at, .. } => format!(
            "sled read corrupted data{}: a file of the store is damaged (an unfinished snapshot left by a full \
             disk is repaired at open; this is something else). Stop the daemon, keep a copy of the folder, and \
             follow \"Recovering a lost store\" in the README",
            at.map(|at| format!(" at offset {} of its log", at.lid()))
                .unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

/// Removes sled's unfinished snapshots (`snap.*.generating`) from the store folder `dir`, holding sled's own
/// lock meanwhile so that a process opening the store at the same time is never robbed of the snapshot it
/// is writing. Returns what it removed.
fn remove_unfinished_snapshots(dir: &Path, path: &str) -> Result<Vec<Repair>, StoreError> {
    let io = |what: String| {
        move |source| StoreError::Io {
            path: path.to_owned(),
            what,
            source,
        }
    };
    let db_file = dir.join("db");
    let lock = File::options()
        .read(true)
        .write(true)
        .open(&db_file)
        .map_err(io(format!("opening {}", db_file.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path: path.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(format!("locking {}", db_file.display()))(e)),
    }
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let file = entry.path();
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_file(&file) {
            Ok(()) => removed.push(Repair { file, bytes }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing {}", file.display()))(e)),
        }
    }
    if !removed.is_empty() {
        // The removal is on disk before sled reads the folder again.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))?;
    }
    drop(lock);
    Ok(removed)
}

fn hash_hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// What the wire hashes of a generation depend on besides the bytes.
fn wire_fingerprint(families: &[ProductFamily], tz: chrono_tz::Tz) -> String {
    let mut h = crate::secutix::parse::wire_hasher();
    let mut names: Vec<&str> = families.iter().map(ProductFamily::as_str).collect();
    names.sort_unstable();
    h.update(names.join(",").as_bytes());
    h.update(b"|");
    h.update(tz.name().as_bytes());
    h.finalize().to_hex().to_string()
}

/// A fingerprint of the season a product was taken from (its id and code end up in the record).
fn season_fingerprint(season: Option<&Season>) -> u64 {
    let mut h = blake3::Hasher::new();
    if let Some(s) = season {
        h.update(&s.id.unwrap_or(0).to_be_bytes());
        h.update(s.code.as_deref().unwrap_or("").as_bytes());
    }
    let b = h.finalize();
    u64::from_be_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// A product's entry in a generation's index: where its record is in the record file, and what an import
/// compares without reading the record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexEntry {
    /// SecuTix no longer lists the product.
    tombstone: bool,
    /// The product's season id came from the product itself (`seasonId`), not from its season.
    wire_season_id: bool,
    /// Byte offset of the record in the generation's record file.
    offset: u64,
    /// Length of the record.
    len: u32,
    /// Latest performance start (retained ones included), epoch ms: the shrink guard's "has ended".
    last_start_ms: Option<i64>,
    /// Performances SecuTix listed (retained ones excluded): the import counts.
    performances: u32,
    /// [`season_fingerprint`] of the season the product was taken from.
    season_fp: u64,
    /// BLAKE3 of the product as built from the feed (season applied).
    feed_hash: [u8; 32],
    /// [`WireHash`] of the product's bytes as sent; zeros when unknown.
    wire_hash: WireHash,
    /// Product code, for the `catalogue.product_codes` filter.
    code: Option<String>,
}

const INDEX_FIXED: usize = 1 + 8 + 4 + 8 + 4 + 8 + 32 + 32;

impl IndexEntry {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(INDEX_FIXED + 1 + self.code.as_ref().map_or(0, String::len));
        v.push(u8::from(self.tombstone) | (u8::from(self.wire_season_id) << 1) | (u8::from(self.code.is_some()) << 2));
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.last_start_ms.unwrap_or(i64::MIN).to_be_bytes());
        v.extend_from_slice(&self.performances.to_be_bytes());
        v.extend_from_slice(&self.season_fp.to_be_bytes());
        v.extend_from_slice(&self.feed_hash);
        v.extend_from_slice(&self.wire_hash);
        if let Some(c) = &self.code {
            v.extend_from_slice(c.as_bytes());
        }
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        if v.len() < INDEX_FIXED {
            return None;
        }
        let u64_at = |i: usize| v[i..i + 8].try_into().ok().map(u64::from_be_bytes);
        let flags = v[0];
        let last = i64::from_be_bytes(v[13..21].try_into().ok()?);
        Some(Self {
            tombstone: flags & 1 != 0,
            wire_season_id: flags & 2 != 0,
            offset: u64_at(1)?,
            len: u32::from_be_bytes(v[9..13].try_into().ok()?),
            last_start_ms: (last != i64::MIN).then_some(last),
            performances: u32::from_be_bytes(v[21..25].try_into().ok()?),
            season_fp: u64_at(25)?,
            feed_hash: v[33..65].try_into().ok()?,
            wire_hash: v[65..97].try_into().ok()?,
            code: (flags & 4 != 0).then(|| String::from_utf8_lossy(&v[INDEX_FIXED..]).into_owned()),
        })
    }
}

/// Appends records to a file and says where each one is.
struct RecordWriter {
    out: BufWriter<File>,
    len: u64,
    path: PathBuf,
}

impl RecordWriter {
    fn new(file: File, path: PathBuf) -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, file),
            len: 0,
            path,
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<(u64, u32)> {
        let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a record larger than 4 GiB"))?;
        self.out.write_all(bytes)?;
        let at = self.len;
        self.len += bytes.len() as u64;
        Ok((at, len))
    }

    /// Writes what is buffered; the file can then be read at any offset handed out.
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Flushes and syncs the file to disk.
    fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }

    /// Empties the file.
    fn truncate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let f = self.out.get_mut();
        f.set_len(0)?;
        f.rewind()?;
        self.len = 0;
        Ok(())
    }

    fn read(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        read_at(self.out.get_ref(), offset, len)
    }
}

fn read_at(file: &File, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// A read view of one generation of the catalogue.
#[derive(Debug, Clone)]
pub struct CatalogView {
    products: sled::Tree,
    seasons: sled::Tree,
    file: Arc<File>,
    /// Facts about the generation.
    pub meta: GenerationMeta,
}

impl CatalogView {
    fn sled_err(e: sled::Error) -> StoreError {
        StoreError::Sled {
            path: "catalogue".into(),
            error: e,
        }
    }

    fn entry(&self, id: Id) -> Result<Option<IndexEntry>, StoreError> {
        match self.products.get(id.to_be_bytes()).map_err(Self::sled_err)? {
            None => Ok(None),
            Some(v) => IndexEntry::decode(&v).map(Some).ok_or_else(|| StoreError::Corrupt {
                key: format!("index of product {id}"),
                reason: "too short".into(),
            }),
        }
    }

    fn record_bytes(&self, what: &str, e: &IndexEntry) -> Result<Vec<u8>, StoreError> {
        read_at(&self.file, e.offset, e.len).map_err(|source| StoreError::Io {
            path: "catalogue".into(),
            what: format!("reading {what} from generation {}'s records", self.meta.generation),
            source,
        })
    }

    fn record(&self, id: Id, e: &IndexEntry) -> Result<ProductRecord, StoreError> {
        let what = format!("product {id}");
        decode(&self.record_bytes(&what, e)?, &what)
    }

    /// One product (live or tombstone).
    pub fn product(&self, id: Id) -> Result<Option<ProductRecord>, StoreError> {
        match self.entry(id)? {
            Some(e) => self.record(id, &e).map(Some),
            None => Ok(None),
        }
    }

    /// Every product record, in id order.
    pub fn products(&self) -> impl Iterator<Item = Result<ProductRecord, StoreError>> + '_ {
        self.products.iter().map(|r| {
            let (k, v) = r.map_err(Self::sled_err)?;
            let id = Id::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            let e = IndexEntry::decode(&v).ok_or_else(|| StoreError::Corrupt {
                key: format!("index of product {id}"),
                reason: "too short".into(),
            })?;
            self.record(id, &e)
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
            .map(|v| decode(&v.map_err(Self::sled_err)?, "season"))
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
}

/// An import being written (generation N+1). Dropping it without [`ImportTxn::finish`] changes nothing
/// that readers see; [`ImportTxn::abort`] also removes its trees and files at once.
pub struct ImportTxn {
    store: Store,
    generation: u64,
    staging: sled::Tree,
    season_staging: sled::Tree,
    staging_out: RecordWriter,
    families: Vec<ProductFamily>,
    /// [`wire_fingerprint`] of this import's settings.
    fingerprint: String,
    /// Wire hashes of the generation in force (when its fingerprint is this import's) → product id.
    known: HashMap<WireHash, Id>,
    /// The wire hash announced by `product_bytes` for the product being parsed.
    pending_wire: Option<WireHash>,
    received: u64,
    skipped: u64,
    unparsed: u64,
}

impl std::fmt::Debug for ImportTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportTxn")
            .field("generation", &self.generation)
            .field("received", &self.received)
            .finish()
    }
}

/// A staged product: its bytes in the staging file (with what finish needs without decoding them), or "the
/// same bytes as the product in force".
enum Staged {
    Bytes {
        offset: u64,
        len: u32,
        wire: WireHash,
        /// Performances the feed listed.
        performances: u32,
        /// Their latest start, epoch ms.
        last_start_ms: Option<i64>,
        /// The product carried its own `seasonId`.
        wire_season_id: bool,
        code: Option<String>,
    },
    Unchanged {
        wire: WireHash,
    },
}

impl Staged {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        match self {
            Staged::Bytes {
                offset,
                len,
                wire,
                performances,
                last_start_ms,
                wire_season_id,
                code,
            } => {
                v.push(0);
                v.extend_from_slice(&offset.to_be_bytes());
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(wire);
                v.extend_from_slice(&performances.to_be_bytes());
                v.extend_from_slice(&last_start_ms.unwrap_or(i64::MIN).to_be_bytes());
                v.push(u8::from(*wire_season_id) | (u8::from(code.is_some()) << 1));
                if let Some(c) = code {
                    v.extend_from_slice(c.as_bytes());
                }
            }
            Staged::Unchanged { wire } => {
                v.push(1);
                v.extend_from_slice(wire);
            }
        }
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        match v.first()? {
            0 if v.len() >= 58 => {
                let last = i64::from_be_bytes(v[49..57].try_into().ok()?);
                let flags = v[57];
                Some(Staged::Bytes {
                    offset: u64::from_be_bytes(v[1..9].try_into().ok()?),
                    len: u32::from_be_bytes(v[9..13].try_into().ok()?),
                    wire: v[13..45].try_into().ok()?,
                    performances: u32::from_be_bytes(v[45..49].try_into().ok()?),
                    last_start_ms: (last != i64::MIN).then_some(last),
                    wire_season_id: flags & 1 != 0,
                    code: (flags & 2 != 0).then(|| String::from_utf8_lossy(&v[58..]).into_owned()),
                })
            }
            1 if v.len() == 33 => Some(Staged::Unchanged {
                wire: v[1..33].try_into().ok()?,
            }),
            _ => None,
        }
    }
}

/// The staged bytes of a product (`{"id":…,"code":…,"season_id":X,"season_code":null,…}`, as serde writes
/// [`Product`]) with its season applied, as decoding, setting `season_id`/`season_code` and encoding again
/// would give, without the decoding. `None` when the bytes are not of that shape: the caller then decodes.
fn apply_season(bytes: &[u8], season: &Season) -> Option<Vec<u8>> {
    const SEASON_ID: &[u8] = b",\"season_id\":";
    const NO_SEASON_CODE: &[u8] = b",\"season_code\":null,";
    if !bytes.starts_with(b"{\"id\":") {
        return None;
    }
    // Inside a JSON string a quote is escaped, so these markers can only be the fields themselves.
    let at = memchr::memmem::find(bytes, SEASON_ID)? + SEASON_ID.len();
    let rest = &bytes[at..];
    let value_len = memchr::memmem::find(rest, NO_SEASON_CODE)?;
    let value = &rest[..value_len];
    let own: Option<Id> = match value {
        b"null" => None,
        v => Some(std::str::from_utf8(v).ok()?.parse().ok()?),
    };
    let mut out = Vec::with_capacity(bytes.len() + 32);
    out.extend_from_slice(&bytes[..at]);
    match own.or(season.id) {
        Some(id) => out.extend_from_slice(id.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"season_code\":");
    serde_json::to_writer(&mut out, &season.code).ok()?;
    out.push(b',');
    out.extend_from_slice(&rest[value_len + NO_SEASON_CODE.len()..]);
    Some(out)
}

/// [`ProductRecord`] without its product, serialised after it by [`splice_record`].
#[derive(Serialize)]
struct RecordTail<'a> {
    feed_hash: &'a str,
    first_seen: DateTime<Utc>,
    changed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_at: Option<DateTime<Utc>>,
}

/// The bytes of a [`ProductRecord`] from the product's bytes and the rest, as encoding the record would
/// give, without decoding the product.
fn splice_record(product: &[u8], tail: &RecordTail<'_>) -> Result<Vec<u8>, StoreError> {
    let t = encode(tail, "record")?;
    let mut out = Vec::with_capacity(product.len() + t.len() + 12);
    out.extend_from_slice(b"{\"product\":");
    out.extend_from_slice(product);
    out.push(b',');
    out.extend_from_slice(t.get(1..).unwrap_or_default());
    Ok(out)
}

fn staging_key(id: Id, season_index: Option<u32>) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&season_index.unwrap_or(u32::MAX).to_be_bytes());
    key
}

impl CatalogSink for ImportTxn {
    fn reset(&mut self) -> Result<(), SinkError> {
        self.staging.clear()?;
        self.season_staging.clear()?;
        self.staging_out.truncate()?;
        self.received = 0;
        self.skipped = 0;
        self.unparsed = 0;
        self.pending_wire = None;
        Ok(())
    }

    fn season(&mut self, index: u32, season: Season) -> Result<(), SinkError> {
        self.season_staging
            .insert(index.to_be_bytes(), serde_json::to_vec(&season)?)?;
        Ok(())
    }

    fn skips_known_products(&self) -> bool {
        !self.known.is_empty()
    }

    fn product_bytes(&mut self, season_index: Option<u32>, hash: &WireHash) -> Result<bool, SinkError> {
        let Some(&id) = self.known.get(hash) else {
            self.pending_wire = Some(*hash);
            return Ok(false);
        };
        // Same bytes, same settings as a product in force: its family passed the same filter then.
        self.received += 1;
        self.unparsed += 1;
        self.staging.insert(
            staging_key(id, season_index),
            Staged::Unchanged { wire: *hash }.encode(),
        )?;
        Ok(true)
    }

    fn product(&mut self, season_index: Option<u32>, product: Product) -> Result<(), SinkError> {
        self.received += 1;
        let wire = self.pending_wire.take().unwrap_or([0; 32]);
        let keep = match &product.family {
            Some(f) => self.families.contains(f),
            // No family sent: a product with an event is a ticket for a dated event.
            None => product.event.is_some() && self.families.contains(&ProductFamily::SingleEntry),
        };
        if !keep {
            self.skipped += 1;
            return Ok(());
        }
        let bytes = serde_json::to_vec(&product)?;
        let (offset, len) = self.staging_out.append(&bytes)?;
        let staged = Staged::Bytes {
            offset,
            len,
            wire,
            performances: u32::try_from(product.performances().len()).unwrap_or(u32::MAX),
            last_start_ms: product.last_start().map(|t| t.timestamp_millis()),
            wire_season_id: product.season_id.is_some(),
            code: product.code,
        };
        self.staging
            .insert(staging_key(product.id, season_index), staged.encode())?;
        Ok(())
    }
}

impl ImportTxn {
    /// Products received so far (before filters).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Products taken as they were in the catalogue in force without being parsed (same bytes).
    pub fn unparsed(&self) -> u64 {
        self.unparsed
    }

    /// Abandons the import and removes its trees and files.
    pub fn abort(self) {
        Self::remove(&self.store, self.generation);
    }

    fn remove(store: &Store, generation: u64) {
        for t in ["staging", "season_staging", "products", "hashes", "seasons", "meta"] {
            let _ = store.db.drop_tree(gen_tree(generation, t));
        }
        let _ = std::fs::remove_file(records_file(&store.records_dir, generation));
        let _ = std::fs::remove_file(staging_file(&store.records_dir, generation));
    }

    /// Resolves, compares, guards and switches (see the module docs). On any error the generation in force
    /// is unchanged.
    pub fn finish(mut self, opts: &FinishOptions) -> Result<ImportCounts, FinishError> {
        let result = self.build(opts);
        match result {
            Ok(counts) => Ok(counts),
            Err(e) => {
                Self::remove(&self.store, self.generation);
                Err(e)
            }
        }
    }

    fn build(&mut self, opts: &FinishOptions) -> Result<ImportCounts, FinishError> {
        let store = self.store.clone();
        let err = store.err();
        let now = store.clock.now();
        let g = self.generation;
        let records_path = records_file(&store.records_dir, g);
        let products = store.db.open_tree(gen_tree(g, "products")).map_err(&err)?;
        let seasons_tree = store.db.open_tree(gen_tree(g, "seasons")).map_err(&err)?;
        products.clear().map_err(&err)?;
        seasons_tree.clear().map_err(&err)?;
        let previous = store.catalog()?;
        self.staging_out
            .flush()
            .map_err(store.io(format!("writing {}", self.staging_out.path.display())))?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&records_path)
            .map_err(store.io(format!("creating {}", records_path.display())))?;
        let mut out = RecordWriter::new(file, records_path.clone());
        let write_err = |e: std::io::Error| StoreError::Io {
            path: store.path.clone(),
            what: format!("writing {}", records_path.display()),
            source: e,
        };

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
        let mut group: Vec<(u32, Staged)> = Vec::new();
        let staging_out = &self.staging_out;
        let mut flush_group = |id: Id,
                               group: &mut Vec<(u32, Staged)>,
                               counts: &mut ImportCounts,
                               out: &mut RecordWriter|
         -> Result<(), FinishError> {
            if group.len() > 1 {
                counts.duplicates += 1;
            }
            // The copy from the season that starts latest wins; a later position breaks ties.
            let winner = group
                .iter()
                .enumerate()
                .max_by_key(|(_, (idx, _))| (seasons.get(idx).and_then(|s| s.start), *idx))
                .map(|(i, _)| i);
            let Some(i) = winner else { return Ok(()) };
            let (idx, staged) = group.swap_remove(i);
            group.clear();
            let season = seasons.get(&idx);
            let season_fp = season_fingerprint(season);
            if let Some(s) = season
                && !opts.season_codes.is_empty()
                && !s
                    .code
                    .as_ref()
                    .is_some_and(|c| opts.season_codes.iter().any(|x| x == c))
            {
                counts.skipped += 1;
                return Ok(());
            }
            if season.is_none() && !opts.season_codes.is_empty() {
                counts.skipped += 1;
                return Ok(());
            }
            let prev_entry = match &previous {
                Some(p) => p.entry(id)?,
                None => None,
            };
            // The product as SecuTix sent it, season applied: as bytes (the common case, never decoded when
            // the product is new or unchanged), or decoded.
            enum Feed {
                Bytes(Vec<u8>),
                Decoded(Box<Product>),
            }
            let (feed, wire, wire_season_id, code, feed_performances, feed_last_start) = match staged {
                Staged::Unchanged { wire } => {
                    let (Some(prev), Some(e)) = (&previous, &prev_entry) else {
                        return Err(StoreError::Corrupt {
                            key: format!("product {id}"),
                            reason: "staged as unchanged but not in the generation in force".into(),
                        }
                        .into());
                    };
                    if !opts.product_codes.is_empty()
                        && !e
                            .code
                            .as_ref()
                            .is_some_and(|c| opts.product_codes.iter().any(|s| s == c))
                    {
                        counts.skipped += 1;
                        return Ok(());
                    }
                    if e.season_fp == season_fp && !e.tombstone && e.wire_hash == wire {
                        let bytes = prev.record_bytes(&format!("product {id}"), e)?;
                        let (offset, len) = out.append(&bytes).map_err(write_err)?;
                        let entry = IndexEntry {
                            offset,
                            len,
                            ..e.clone()
                        };
                        products.insert(id.to_be_bytes(), entry.encode()).map_err(&err)?;
                        counts.products += 1;
                        counts.performances += u64::from(e.performances);
                        counts.unchanged += 1;
                        counts.reused += 1;
                        kept.insert(id);
                        return Ok(());
                    }
                    // Same bytes, another season: rebuild the feed product from the record in force.
                    let mut p = prev.record(id, e)?.product;
                    if let Some(ev) = p.event.as_mut() {
                        ev.performances.retain(|x| !x.retained);
                    }
                    if !e.wire_season_id {
                        p.season_id = None;
                    }
                    if let Some(season) = season {
                        p.season_id = p.season_id.or(season.id);
                        p.season_code = season.code.clone();
                    }
                    let last = p.last_start().map(|t| t.timestamp_millis());
                    let n = u32::try_from(p.performances().len()).unwrap_or(u32::MAX);
                    let code = p.code.clone();
                    (Feed::Decoded(Box::new(p)), wire, e.wire_season_id, code, n, last)
                }
                Staged::Bytes {
                    offset,
                    len,
                    wire,
                    performances,
                    last_start_ms,
                    wire_season_id,
                    code,
                } => {
                    let bytes = staging_out
                        .read(offset, len)
                        .map_err(store.io(format!("reading {}", staging_out.path.display())))?;
                    let feed = match season {
                        None => Feed::Bytes(bytes),
                        Some(season) => match apply_season(&bytes, season) {
                            Some(b) => Feed::Bytes(b),
                            None => {
                                let mut p: Product = decode(&bytes, "staged product")?;
                                p.season_id = p.season_id.or(season.id);
                                p.season_code = season.code.clone();
                                Feed::Decoded(Box::new(p))
                            }
                        },
                    };
                    (feed, wire, wire_season_id, code, performances, last_start_ms)
                }
            };
            if !opts.product_codes.is_empty()
                && !code.as_ref().is_some_and(|c| opts.product_codes.iter().any(|s| s == c))
            {
                counts.skipped += 1;
                return Ok(());
            }
            let feed_bytes = match &feed {
                Feed::Bytes(b) => std::borrow::Cow::Borrowed(b.as_slice()),
                Feed::Decoded(p) => std::borrow::Cow::Owned(encode(p, "product")?),
            };
            let feed_hash = *blake3::hash(&feed_bytes).as_bytes();
            counts.products += 1;
            counts.performances += u64::from(feed_performances);
            kept.insert(id);
            let mut entry = IndexEntry {
                tombstone: false,
                wire_season_id,
                offset: 0,
                len: 0,
                last_start_ms: feed_last_start,
                performances: feed_performances,
                season_fp,
                feed_hash,
                wire_hash: wire,
                code,
            };
            let record = match (&previous, &prev_entry) {
                (Some(prev), Some(e)) if !e.tombstone && e.feed_hash == feed_hash => {
                    // Unchanged: copy the stored record as is (retained performances included).
                    entry.last_start_ms = e.last_start_ms;
                    counts.unchanged += 1;
                    prev.record_bytes(&format!("product {id}"), e)?
                }
                (Some(prev), Some(e)) => {
                    // Changed, or back after a tombstone: keep what the record in force knows.
                    let old = prev.record(id, e)?;
                    let product = match feed {
                        Feed::Decoded(p) => *p,
                        Feed::Bytes(b) => decode(&b, "staged product")?,
                    };
                    let mut record = ProductRecord {
                        product,
                        feed_hash: hash_hex(&feed_hash),
                        first_seen: old.first_seen,
                        changed_at: now,
                        removed_at: None,
                    };
                    counts.retained_performances += retain_past_performances(&mut record.product, &old.product, now);
                    if e.tombstone {
                        counts.added += 1;
                    } else {
                        counts.changed += 1;
                    }
                    entry.last_start_ms = record.product.last_start().map(|t| t.timestamp_millis());
                    encode(&record, "product")?
                }
                _ => {
                    counts.added += 1;
                    let hex = hash_hex(&feed_hash);
                    splice_record(
                        &feed_bytes,
                        &RecordTail {
                            feed_hash: &hex,
                            first_seen: now,
                            changed_at: now,
                            removed_at: None,
                        },
                    )?
                }
            };
            let (offset, len) = out.append(&record).map_err(write_err)?;
            entry.offset = offset;
            entry.len = len;
            products.insert(id.to_be_bytes(), entry.encode()).map_err(&err)?;
            Ok(())
        };
        let mut group_id: Option<Id> = None;
        for r in self.staging.iter() {
            let (k, v) = r.map_err(&err)?;
            let id = Id::from_be_bytes(k[..8].try_into().unwrap_or([0; 8]));
            let idx = u32::from_be_bytes(k[8..12].try_into().unwrap_or([0; 4]));
            if let Some(gid) = group_id
                && gid != id
            {
                flush_group(gid, &mut group, &mut counts, &mut out)?;
            }
            group_id = Some(id);
            let staged = Staged::decode(&v).ok_or_else(|| StoreError::Corrupt {
                key: format!("staged product {id}"),
                reason: "unreadable staging entry".into(),
            })?;
            group.push((idx, staged));
        }
        if let Some(id) = group_id {
            flush_group(id, &mut group, &mut counts, &mut out)?;
        }

        // Pass 2: products of the generation in force that SecuTix no longer lists become tombstones.
        let mut live_before = 0u64;
        let mut guarded_live_before = 0u64;
        let mut guarded_removed = 0u64;
        let mut tombstones = 0u64;
        let now_ms = now.timestamp_millis();
        if let Some(prev) = &previous {
            for r in prev.products.iter() {
                let (k, v) = r.map_err(&err)?;
                let id = Id::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                let e = IndexEntry::decode(&v).ok_or_else(|| StoreError::Corrupt {
                    key: format!("index of product {id}"),
                    reason: "too short".into(),
                })?;
                let ended = e.last_start_ms.is_some_and(|l| l < now_ms);
                if !e.tombstone {
                    live_before += 1;
                    if !ended {
                        guarded_live_before += 1;
                    }
                }
                if kept.contains(&id) {
                    continue;
                }
                let bytes = if e.tombstone {
                    prev.record_bytes(&format!("product {id}"), &e)?
                } else {
                    let mut rec = prev.record(id, &e)?;
                    rec.removed_at = Some(now);
                    counts.removed += 1;
                    if !ended {
                        guarded_removed += 1;
                    }
                    encode(&rec, "product")?
                };
                tombstones += 1;
                let (offset, len) = out.append(&bytes).map_err(write_err)?;
                let entry = IndexEntry {
                    tombstone: true,
                    offset,
                    len,
                    ..e
                };
                products.insert(k, entry.encode()).map_err(&err)?;
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

        // Switch: the records on disk first, then the index, then the pointer.
        out.sync().map_err(write_err)?;
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
            wire_fingerprint: Some(self.fingerprint.clone()),
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
        let _ = std::fs::remove_file(staging_file(&store.records_dir, g));
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
    use crate::catalog::Translated;

    fn product(season_id: Option<Id>, code: &str) -> Product {
        Product {
            id: 42,
            code: Some(code.to_owned()),
            season_id,
            season_code: None,
            family: Some(ProductFamily::SingleEntry),
            family_sub_type: None,
            state: None,
            name: Translated::from_pairs([("fr", "Le \"season_id\":1, piège")]),
            short_name: Translated::default(),
            description: Translated::default(),
            images: Default::default(),
            detail_url: None,
            sale_periods: vec![],
            sub_topic_codes: vec![],
            event: None,
        }
    }

    fn product_with_id(id: Id) -> Product {
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
            txn.product(Some(0), product_with_id(id)).expect("stage");
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
            flagged: Vec::new(),
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

    /// A store with a catalogue, a call in the ledger and a snapshot of sled (written at the second open),
    /// then more writes in sled's log; returns its folder.
    fn store_with_history(clock: &SharedClock) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
            import(&store, &[1, 2, 3]);
            store.record_call(clock.now(), "CatalogService", "getCatalogDetailed", 10);
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
        import(&store, &[1, 2, 3, 4]);
        store.record_call(clock.now(), "CatalogService", "getCatalogDetailed", 10);
        store.flush().expect("flush");
        dir
    }

    fn snapshots(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap."))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_unfinished_snapshot_is_removed_at_open_and_nothing_is_lost() {
        let clock = crate::clock::system();
        // Empty (the disk was full as sled created it) and cut short (it filled up while sled wrote it).
        for (what, bytes) in [("empty", vec![]), ("partial", vec![7u8; 300])] {
            let dir = store_with_history(&clock);
            assert!(
                !snapshots(dir.path()).is_empty(),
                "sled wrote a snapshot at the second open"
            );
            let unfinished = dir.path().join("snap.00000000FFFFFFFF.generating");
            std::fs::write(&unfinished, &bytes).expect("write");

            let store = Store::open(dir.path(), 1, clock.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                store.repairs(),
                [Repair {
                    file: unfinished.clone(),
                    bytes: bytes.len() as u64
                }],
                "{what}"
            );
            assert!(!unfinished.exists(), "{what}");
            let view = store.catalog().expect("catalog").expect("a catalogue");
            assert_eq!(view.product_ids().collect::<Vec<_>>(), [1, 2, 3, 4], "{what}");
            drop(view);
            assert_eq!(store.calls_in_month(clock.now()), 2, "{what}: the call ledger");
            import(&store, &[1, 2, 3, 4, 5]);
            drop(store);
            let again = Store::open(dir.path(), 1, clock.clone()).expect("opens again");
            assert!(again.repairs().is_empty(), "{what}: nothing left to repair");
        }
    }

    #[test]
    fn a_store_that_opens_is_not_touched() {
        let clock = crate::clock::system();
        let dir = store_with_history(&clock);
        // A finished snapshot sled has not cleaned up yet: sled reads it, nothing is repaired.
        let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
        assert!(store.repairs().is_empty());
    }

    #[test]
    fn other_corruption_is_reported_with_what_to_do_and_nothing_is_removed() {
        let clock = crate::clock::system();
        let dir = store_with_history(&clock);
        let damaged = dir.path().join("snap.00000000FFFFFFFF");
        std::fs::write(&damaged, [1u8; 40]).expect("write");
        let before = snapshots(dir.path());
        let e = Store::open(dir.path(), 1, clock).expect_err("damaged");
        let text = e.to_string();
        assert!(text.contains("sled read corrupted data"), "{text}");
        assert!(text.contains("Recovering a lost store"), "{text}");
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        assert_eq!(snapshots(dir.path()), before, "nothing removed");
    }

    #[test]
    fn unfinished_snapshots_of_a_store_in_use_are_left_alone() {
        let clock = crate::clock::system();
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = Store::open(dir.path(), 1, clock).expect("open");
        // As if the process holding the store were writing its snapshot right now.
        let writing = dir.path().join("snap.00000000FFFFFFFF.generating");
        std::fs::write(&writing, b"").expect("write");
        let p = dir.path().display().to_string();
        assert!(matches!(
            remove_unfinished_snapshots(dir.path(), &p),
            Err(StoreError::Locked { .. })
        ));
        assert!(writing.exists());
    }

    #[test]
    fn a_full_disk_is_said_in_words_with_what_to_do() {
        // As sled hands it over: its own I/O error holding the original's debug text.
        let full = sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("{:?}", std::io::Error::from_raw_os_error(28)),
        ));
        let text = StoreError::Sled {
            path: "/var/lib/secutix-sync".into(),
            error: full,
        }
        .to_string();
        assert!(text.contains("the disk is full"), "{text}");
        assert!(text.contains("systemctl restart secutix-sync"), "{text}");
        assert!(!text.contains("Os {"), "{text}");
        let denied = sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{:?}", std::io::Error::from_raw_os_error(13)),
        ));
        let text = sled_reason(&denied);
        assert!(text.contains("permission denied") && !text.contains("Os {"), "{text}");
        let records = StoreError::Io {
            path: "/var/lib/secutix-sync".into(),
            what: "writing records/cat.4.staging".into(),
            source: std::io::Error::from_raw_os_error(28),
        }
        .to_string();
        assert!(records.contains("The disk is full: free space"), "{records}");
    }

    #[test]
    fn applying_a_season_to_bytes_equals_decoding_setting_and_encoding() {
        let season = Season {
            id: Some(77),
            code: Some("S\"26".into()),
            state: None,
            start: None,
            end: None,
            name: Translated::default(),
            audience_sub_categories: vec![],
            price_levels: vec![],
        };
        for (own, code) in [(None, "P1"), (Some(5), ",\"season_id\":9,\"season_code\":null,")] {
            let p = product(own, code);
            let bytes = serde_json::to_vec(&p).expect("encode");
            let mut expected = p.clone();
            expected.season_id = own.or(season.id);
            expected.season_code = season.code.clone();
            assert_eq!(
                apply_season(&bytes, &season).expect("the shape serde writes"),
                serde_json::to_vec(&expected).expect("encode"),
                "own season id {own:?}"
            );
        }
        let mut with_code = product(None, "P1");
        with_code.season_code = Some("X".into());
        let bytes = serde_json::to_vec(&with_code).expect("encode");
        assert_eq!(apply_season(&bytes, &season), None, "another shape: the caller decodes");
    }

    #[test]
    fn a_spliced_record_equals_the_encoded_record() {
        let now = Utc::now();
        let p = product(Some(3), "P2");
        let record = ProductRecord {
            product: p.clone(),
            feed_hash: "ab".repeat(32),
            first_seen: now,
            changed_at: now,
            removed_at: None,
        };
        let tail = RecordTail {
            feed_hash: &record.feed_hash,
            first_seen: now,
            changed_at: now,
            removed_at: None,
        };
        let spliced = splice_record(&serde_json::to_vec(&p).expect("encode"), &tail).expect("splice");
        assert_eq!(spliced, serde_json::to_vec(&record).expect("encode"));
    }

    #[test]
    fn index_and_staging_entries_round_trip() {
        let e = IndexEntry {
            tombstone: true,
            wire_season_id: true,
            offset: 1 << 40,
            len: 77,
            last_start_ms: Some(-5),
            performances: 25,
            season_fp: 9,
            feed_hash: [3; 32],
            wire_hash: [4; 32],
            code: Some("TH00042".into()),
        };
        assert_eq!(IndexEntry::decode(&e.encode()), Some(e.clone()));
        let none = IndexEntry {
            last_start_ms: None,
            code: None,
            ..e
        };
        assert_eq!(IndexEntry::decode(&none.encode()), Some(none));
        let s = Staged::Bytes {
            offset: 12,
            len: 34,
            wire: [1; 32],
            performances: 3,
            last_start_ms: None,
            wire_season_id: false,
            code: Some("C".into()),
        };
        assert!(
            matches!(Staged::decode(&s.encode()), Some(Staged::Bytes { offset: 12, len: 34, performances: 3, code: Some(c), .. }) if c == "C")
        );
    }
}
