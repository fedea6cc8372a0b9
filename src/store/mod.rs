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

use crate::catalog::{Id, PosConfig, Product, ProductFamily, Season};
use crate::clock::SharedClock;
use crate::secutix::CallLedger;
use crate::secutix::parse::{CatalogSink, SinkError, WireHash};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod generations;
mod history;
mod import_txn;
mod ledger;
mod open;
mod records;

#[allow(unused_imports)]
use generations::*;

#[allow(unused_imports)]
use import_txn::*;
#[allow(unused_imports)]
use ledger::*;
#[allow(unused_imports)]
use open::*;
#[allow(unused_imports)]
use records::*;

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

/// What [`ImportTxn::finish`] needs besides the streamed data. The default is an unforced import with the
/// shrink guard at `config/default.toml`'s 0.5, no filters, no POS configuration and no response hash.
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

impl Default for FinishOptions {
    fn default() -> Self {
        FinishOptions {
            force: false,
            shrink_guard_ratio: 0.5,
            season_codes: Vec::new(),
            product_codes: Vec::new(),
            pos: None,
            body_hash: None,
        }
    }
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

/// Appends records to a file and says where each one is.
struct RecordWriter {
    out: BufWriter<File>,
    len: u64,
    path: PathBuf,
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

#[cfg(test)]
mod tests;
