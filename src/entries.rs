//! The stored entries: the latest entry of every product and its content hash, shared by all targets.
//!
//! # Layout
//! An entry's body (its JSON, exactly the bytes its content hash covers) lives in an append-only **entry
//! log** `entries/entries.<N>.log` in the store folder. The sled tree `entries.index` maps each external id
//! to where its body is (log number, offset, length) and its content hash, so a plan compares hashes
//! without reading a body, and the worker reads the one body it sends.
//!
//! Why bodies do not live in sled: sled 0.34 keeps every large value it was given in memory whatever its
//! `cache_capacity` (the catalogue store moved its records to files for the same reason, see
//! [`crate::store`]); 10,000 entries of 25 performances held 1.3 GB. sled keeps the small index; the page
//! cache keeps the bodies.
//!
//! # Durability
//! [`EntryStore::write`] appends a batch of bodies, **syncs the log**, and only then writes their index
//! entries (one atomic sled batch): an index entry never points at bytes that are not on disk, whatever
//! sled flushes in the background. A crash before the index write leaves unreferenced bytes at the end of
//! the log (dead bytes, reclaimed by the next compaction) and the previous version of each entry in
//! force. The outbox's operations are written after the entries they send (see [`crate::push`]).
//!
//! # Compaction
//! A changed entry leaves its old body behind. When the dead bytes pass both the live bytes and
//! [`COMPACT_MIN_DEAD`], [`EntryStore::compact_if_needed`] copies the live bodies to a new log, syncs it,
//! moves the index entries to it, and removes the old logs. Readers are never in the way: a read takes the
//! index entry and the log's open handle together, and a removed log stays readable through open handles.
//! A crash during a compaction leaves every index entry pointing at a complete log; at open, logs no index
//! entry points at are removed.
//!
//! # Earlier stores
//! Stores written by earlier versions kept whole entries as values of the sled tree `entries`; they are
//! moved to the entry log at open (synced before the old tree is dropped; a crash during the move starts it
//! again).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::store::{Store, StoreError};

/// Dead bytes below which the logs are never compacted.
pub const COMPACT_MIN_DEAD: u64 = 64 * 1024 * 1024;

/// The sled tree of the index.
const INDEX_TREE: &str = "entries.index";
/// The sled tree of earlier versions (whole entries as values).
const LEGACY_TREE: &str = "entries";
/// Bytes of an index value before the content hash: log number, offset, length.
const INDEX_FIXED: usize = 4 + 8 + 4;

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// Its content hash.
    pub content_hash: String,
    /// The entry.
    pub entry: Entry,
}

/// One entry to write: its external id, its content hash and its body (the entry's JSON).
#[derive(Debug, Clone)]
pub struct EntryWrite {
    /// External id.
    pub external_id: String,
    /// Content hash of the body ([`crate::entry::content_hash_of_json`]).
    pub content_hash: String,
    /// The entry's JSON.
    pub body: Vec<u8>,
}

/// Where an entry's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    log: u32,
    offset: u64,
    len: u32,
}

fn encode_index(at: &Location, hash: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(INDEX_FIXED + hash.len());
    v.extend_from_slice(&at.log.to_be_bytes());
    v.extend_from_slice(&at.offset.to_be_bytes());
    v.extend_from_slice(&at.len.to_be_bytes());
    v.extend_from_slice(hash.as_bytes());
    v
}

fn decode_index(v: &[u8]) -> Option<(Location, &str)> {
    if v.len() < INDEX_FIXED {
        return None;
    }
    let at = Location {
        log: u32::from_be_bytes(v[0..4].try_into().ok()?),
        offset: u64::from_be_bytes(v[4..12].try_into().ok()?),
        len: u32::from_be_bytes(v[12..16].try_into().ok()?),
    };
    Some((at, std::str::from_utf8(&v[INDEX_FIXED..]).ok()?))
}

fn log_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("entries.{n}.log"))
}

fn parse_log_name(name: &str) -> Option<u32> {
    name.strip_prefix("entries.")?.strip_suffix(".log")?.parse().ok()
}

/// The log being appended to.
struct Writer {
    log: u32,
    file: Arc<File>,
    /// Its length (appends go there).
    len: u64,
    /// Bytes of all logs, and of the bodies the index points at: the difference is dead.
    total: u64,
    live: u64,
}

struct Inner {
    store: Store,
    index: sled::Tree,
    dir: PathBuf,
    /// Open logs by number. A read holds the read lock from the index lookup to the end of the read; a
    /// compaction takes the write lock to retire old logs.
    logs: RwLock<BTreeMap<u32, Arc<File>>>,
    /// One writer at a time (plans, compaction, migration).
    writer: Mutex<Writer>,
}

/// The stored entries. Cheap to clone.
#[derive(Clone)]
pub struct EntryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EntryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The entry stores open in this process, by folder. Every [`EntryStore::open`] of one store shares one
/// writer: two writers would append to one log at offsets each computed alone, and the cleanup at open
/// would remove a log another instance has just created.
static OPEN: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

impl EntryStore {
    /// Opens the entries of `store` (or joins them if this process has them open already): removes logs no
    /// index entry points at, moves the entries of an earlier version's sled tree to the log.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let dir = store.folder("entries")?;
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = open.iter().find(|(d, _)| *d == dir).and_then(|(_, w)| w.upgrade()) {
            return Ok(Self { inner });
        }
        let this = Self::open_new(store, dir.clone())?;
        open.push((dir, Arc::downgrade(&this.inner)));
        Ok(this)
    }

    fn open_new(store: &Store, dir: PathBuf) -> Result<Self, StoreError> {
        let sled_err = |e| store.sled_error(e);
        let index = store.db().open_tree(INDEX_TREE).map_err(sled_err)?;
        // Which logs the index uses, and how many of their bytes.
        let mut live_by_log: HashMap<u32, u64> = HashMap::new();
        for r in index.iter().values() {
            let v = r.map_err(sled_err)?;
            if let Some((at, _)) = decode_index(&v) {
                *live_by_log.entry(at.log).or_default() += u64::from(at.len);
            }
        }
        let mut logs = BTreeMap::new();
        let mut total = 0;
        let listing = std::fs::read_dir(&dir).map_err(|e| store.io_error(format!("listing {}", dir.display()), e))?;
        for f in listing.flatten() {
            let Some(n) = f.file_name().to_str().and_then(parse_log_name) else {
                continue;
            };
            let path = f.path();
            if !live_by_log.contains_key(&n) {
                std::fs::remove_file(&path).map_err(|e| store.io_error(format!("removing {}", path.display()), e))?;
                continue;
            }
            let file = File::options()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| store.io_error(format!("opening {}", path.display()), e))?;
            total += file
                .metadata()
                .map_err(|e| store.io_error(format!("reading the size of {}", path.display()), e))?
                .len();
            logs.insert(n, Arc::new(file));
        }
        let missing: Vec<u32> = live_by_log.keys().copied().filter(|n| !logs.contains_key(n)).collect();
        if !missing.is_empty() {
            // A log removed by hand (or lost): its entries are forgotten, and the next plan writes them again
            // (a target that has them is not sent them again: its acknowledged hashes still match).
            let mut forgotten = 0u64;
            for r in index.iter() {
                let (k, v) = r.map_err(sled_err)?;
                if decode_index(&v).is_none_or(|(at, _)| missing.contains(&at.log)) {
                    index.remove(k).map_err(sled_err)?;
                    forgotten += 1;
                }
            }
            for n in &missing {
                live_by_log.remove(n);
            }
            tracing::warn!(
                logs = %missing.iter().map(|n| log_path(&dir, *n).display().to_string()).collect::<Vec<_>>().join(", "),
                entries = forgotten,
                "entry logs are missing from the store folder; their entries are rebuilt at the next plan"
            );
        }
        let live = live_by_log.values().sum();
        let (log, file) = match logs.last_key_value() {
            Some((n, f)) => (*n, f.clone()),
            None => {
                let f = Arc::new(create_log(store, &dir, 1)?);
                logs.insert(1, f.clone());
                (1, f)
            }
        };
        let len = file
            .metadata()
            .map_err(|e| store.io_error(format!("reading the size of {}", log_path(&dir, log).display()), e))?
            .len();
        let this = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                index,
                dir,
                logs: RwLock::new(logs),
                writer: Mutex::new(Writer {
                    log,
                    file,
                    len,
                    total,
                    live,
                }),
            }),
        };
        this.migrate()?;
        Ok(this)
    }

    fn sled_err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| self.inner.store.sled_error(e)
    }

    fn io(&self, what: String) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |e| self.inner.store.io_error(what, e)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn logs_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Arc<File>>> {
        self.inner.logs.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the entries of an earlier version's sled tree to the log, then drops the tree.
    fn migrate(&self) -> Result<(), StoreError> {
        let db = self.inner.store.db();
        if !db.tree_names().iter().any(|n| n.as_ref() == LEGACY_TREE.as_bytes()) {
            return Ok(());
        }
        let legacy = db.open_tree(LEGACY_TREE).map_err(self.sled_err())?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut moved = 0u64;
        for r in legacy.iter() {
            let (k, v) = r.map_err(self.sled_err())?;
            let id = String::from_utf8_lossy(&k).into_owned();
            let stored: StoredEntry = serde_json::from_slice(&v).map_err(|e| corrupt(&id, e.to_string()))?;
            let body = serde_json::to_vec(&stored.entry).map_err(|e| corrupt(&id, e.to_string()))?;
            bytes += body.len();
            batch.push(EntryWrite {
                external_id: id,
                content_hash: stored.content_hash,
                body,
            });
            if bytes >= 8 << 20 {
                moved += batch.len() as u64;
                self.write(&batch)?;
                batch.clear();
                bytes = 0;
            }
        }
        moved += batch.len() as u64;
        self.write(&batch)?;
        db.flush().map_err(self.sled_err())?;
        db.drop_tree(LEGACY_TREE).map_err(self.sled_err())?;
        db.flush().map_err(self.sled_err())?;
        tracing::info!(
            entries = moved,
            "entries moved from the store's database to the entry log"
        );
        Ok(())
    }

    /// The content hash of the stored entry of `external_id` (from the index: no body is read).
    pub fn content_hash(&self, external_id: &str) -> Result<Option<String>, StoreError> {
        let Some(v) = self.inner.index.get(external_id).map_err(self.sled_err())? else {
            return Ok(None);
        };
        let (_, hash) = decode_index(&v).ok_or_else(|| corrupt(external_id, "entry index too short"))?;
        Ok(Some(hash.to_owned()))
    }

    /// The stored entry of `external_id`.
    pub fn get(&self, external_id: &str) -> Result<Option<StoredEntry>, StoreError> {
        let read = {
            let logs = self.logs_read();
            match self.inner.index.get(external_id).map_err(self.sled_err())? {
                None => None,
                Some(v) => Some(self.read_body(&logs, external_id, &v)?),
            }
        };
        read.map(|(hash, body)| decode_entry(external_id, hash, &body))
            .transpose()
    }

    /// Reads the body an index value points at (with the read lock held by the caller).
    fn read_body(
        &self,
        logs: &BTreeMap<u32, Arc<File>>,
        external_id: &str,
        index_value: &[u8],
    ) -> Result<(String, Vec<u8>), StoreError> {
        let (at, hash) = decode_index(index_value).ok_or_else(|| corrupt(external_id, "entry index too short"))?;
        let what = || {
            format!(
                "reading entry {external_id} from {}",
                log_path(&self.inner.dir, at.log).display()
            )
        };
        let file = logs
            .get(&at.log)
            .ok_or_else(|| self.inner.store.io_error(what(), std::io::ErrorKind::NotFound.into()))?;
        let mut body = vec![0u8; at.len as usize];
        file.read_exact_at(&mut body, at.offset).map_err(self.io(what()))?;
        Ok((hash.to_owned(), body))
    }

    /// Every stored entry in external id order, read one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Result<StoredEntry, StoreError>> + '_ {
        self.inner.index.iter().keys().filter_map(move |k| {
            let k = match k {
                Ok(k) => k,
                Err(e) => return Some(Err(self.inner.store.sled_error(e))),
            };
            // Looked up again under the read lock: a compaction may have moved it since the scan read it.
            self.get(&String::from_utf8_lossy(&k)).transpose()
        })
    }

    /// External ids of the stored entries, in order.
    pub fn ids(&self) -> impl Iterator<Item = Result<String, StoreError>> + '_ {
        self.inner
            .index
            .iter()
            .keys()
            .map(move |k| Ok(String::from_utf8_lossy(&k.map_err(self.sled_err())?).into_owned()))
    }

    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.inner.index.len()
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.index.is_empty()
    }

    /// Writes `entries`: bodies appended to the log and synced, then their index entries in one batch.
    pub fn write(&self, entries: &[EntryWrite]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut w = self.writer();
        let path = log_path(&self.inner.dir, w.log);
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.body.len()).sum());
        let mut batch = sled::Batch::default();
        let mut replaced = 0u64;
        let mut at = w.len;
        for e in entries {
            let len = u32::try_from(e.body.len()).map_err(|_| corrupt(&e.external_id, "an entry larger than 4 GiB"))?;
            buf.extend_from_slice(&e.body);
            let loc = Location {
                log: w.log,
                offset: at,
                len,
            };
            at += u64::from(len);
            batch.insert(e.external_id.as_bytes(), encode_index(&loc, &e.content_hash));
        }
        (&*w.file)
            .write_all(&buf)
            .map_err(self.io(format!("writing {}", path.display())))?;
        w.len = at;
        w.total += buf.len() as u64;
        w.file
            .sync_data()
            .map_err(self.io(format!("syncing {}", path.display())))?;
        for e in entries {
            if let Some(old) = self.inner.index.get(&e.external_id).map_err(self.sled_err())?
                && let Some((loc, _)) = decode_index(&old)
            {
                replaced += u64::from(loc.len);
            }
        }
        self.inner.index.apply_batch(batch).map_err(self.sled_err())?;
        w.live = (w.live + buf.len() as u64).saturating_sub(replaced);
        Ok(())
    }

    /// Bytes of the logs, and bytes of the bodies in force.
    pub fn usage(&self) -> (u64, u64) {
        let w = self.writer();
        (w.total, w.live)
    }

    /// Compacts the logs when their dead bytes pass both their live bytes and [`COMPACT_MIN_DEAD`]; returns
    /// whether it did.
    pub fn compact_if_needed(&self) -> Result<bool, StoreError> {
        let (total, live) = self.usage();
        let dead = total.saturating_sub(live);
        if dead < COMPACT_MIN_DEAD || dead < live {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// Copies the live bodies to a new log, moves the index to it and removes the old logs.
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut w = self.writer();
        let next = w.log + 1;
        let path = log_path(&self.inner.dir, next);
        let file = Arc::new(create_log(&self.inner.store, &self.inner.dir, next)?);
        self.inner
            .logs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(next, file.clone());
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &*file);
        let mut moves: Vec<(sled::IVec, Vec<u8>)> = Vec::new();
        let mut len = 0u64;
        for r in self.inner.index.iter() {
            let (k, v) = r.map_err(self.sled_err())?;
            let id = String::from_utf8_lossy(&k).into_owned();
            let (hash, body) = {
                let logs = self.logs_read();
                self.read_body(&logs, &id, &v)?
            };
            out.write_all(&body)
                .map_err(self.io(format!("writing {}", path.display())))?;
            let loc = Location {
                log: next,
                offset: len,
                len: body.len() as u32,
            };
            len += body.len() as u64;
            moves.push((k, encode_index(&loc, &hash)));
        }
        out.flush().map_err(self.io(format!("writing {}", path.display())))?;
        drop(out);
        file.sync_data()
            .map_err(self.io(format!("syncing {}", path.display())))?;
        // Only plans write the index, and they wait for the writer lock this holds: nothing moved meanwhile.
        let mut batch = sled::Batch::default();
        for (k, v) in moves {
            batch.insert(k, v);
        }
        self.inner.index.apply_batch(batch).map_err(self.sled_err())?;
        self.inner.store.db().flush().map_err(self.sled_err())?;
        let retired: Vec<u32> = {
            let mut logs = self.inner.logs.write().unwrap_or_else(|p| p.into_inner());
            let old: Vec<u32> = logs.keys().copied().filter(|n| *n != next).collect();
            for n in &old {
                logs.remove(n);
            }
            old
        };
        for n in retired {
            let p = log_path(&self.inner.dir, n);
            std::fs::remove_file(&p).map_err(self.io(format!("removing {}", p.display())))?;
        }
        tracing::info!(before = w.total, after = len, "entry log compacted");
        *w = Writer {
            log: next,
            file,
            len,
            total: len,
            live: len,
        };
        Ok(())
    }
}

fn create_log(store: &Store, dir: &Path, n: u32) -> Result<File, StoreError> {
    let path = log_path(dir, n);
    let file = File::options()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| store.io_error(format!("creating {}", path.display()), e))?;
    file.set_len(0)
        .map_err(|e| store.io_error(format!("creating {}", path.display()), e))?;
    // The new name must survive a crash before anything points at it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}

fn decode_entry(external_id: &str, content_hash: String, body: &[u8]) -> Result<StoredEntry, StoreError> {
    let entry: Entry = serde_json::from_slice(body).map_err(|e| corrupt(external_id, e.to_string()))?;
    Ok(StoredEntry { content_hash, entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_values_round_trip() {
        let at = Location {
            log: 7,
            offset: 1 << 40,
            len: 12345,
        };
        let v = encode_index(&at, "abc123");
        assert_eq!(decode_index(&v), Some((at, "abc123")));
        assert_eq!(decode_index(&v[..10]), None);
        assert_eq!(parse_log_name("entries.12.log"), Some(12));
        assert_eq!(parse_log_name("entries.x.log"), None);
    }
}
