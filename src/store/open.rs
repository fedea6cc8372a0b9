//! Opening the store: one process per store (sled's lock, waited for when this process dropped its last handle), the repair at open of a snapshot a full disk left unfinished, and store errors in words.

#[allow(unused_imports)]
use super::*;

/// Stores this process opened, by canonical folder: open now, or when its last handle was dropped.
pub(super) static OPENED: std::sync::LazyLock<Mutex<HashMap<PathBuf, Holding>>> =
    std::sync::LazyLock::new(Default::default);

#[derive(Debug, Clone, Copy)]
pub(super) enum Holding {
    /// A handle of this process is alive.
    Open,
    /// This process dropped its last handle then.
    Released(std::time::Instant),
}

pub(super) fn registry() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Holding>> {
    OPENED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared by every clone of a [`Store`]; dropped with the last one, it records the time in [`OPENED`].
#[derive(Debug)]
pub(super) struct OpenGuard(pub(super) Option<PathBuf>);

impl OpenGuard {
    pub(super) fn register(path: &Path) -> Self {
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
pub(super) fn releasing_until(path: &Path) -> Option<std::time::Instant> {
    let canonical = path.canonicalize().ok()?;
    match registry().get(&canonical)? {
        Holding::Open => None,
        Holding::Released(at) => Some(*at + RELEASE_WAIT),
    }
}

pub(super) fn classify(path: &str, e: sled::Error) -> StoreError {
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
    pub(super) fn is_corruption(&self) -> bool {
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
pub(super) fn io_advice(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::StorageFull {
        "The disk is full: free space on it (\"Disk full\" in the README's Operations); nothing acknowledged is lost"
    } else {
        "Check the disk and the folder's permissions"
    }
}

/// Why sled failed, for an operator: what happened and what to do, without Rust's debug text.
pub(super) fn sled_reason(e: &sled::Error) -> String {
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
pub(super) fn remove_unfinished_snapshots(dir: &Path, path: &str) -> Result<Vec<Repair>, StoreError> {
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
