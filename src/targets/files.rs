//! The `files` target: one JSON file per entry (`<external_id>.json`) and an `index.json` of the live
//! entries, in a folder, for static site generators (Hugo/Eleventy/Jekyll data files) and for the demo.
//!
//! Every file is written to a temporary file in the same folder, synced, then renamed over the old one, so
//! a reader (or a crash) never sees half a file. Files are readable by everyone (0644): the folder's own
//! permissions decide who may read them. `index.json` is rewritten after each batch from an
//! in-memory index built from the folder at start. An unpublished entry keeps its file with
//! `"published": false` and leaves the index; a deleted one loses its file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Applied, OpKind, Operation, Target, TargetError};
use crate::entry::Entry;

/// `[targets.files]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct FilesSettings {
    /// Output folder (created if missing).
    pub path: PathBuf,
    /// Pretty-print the JSON (default true: these files are read by people and generators).
    #[serde(default = "yes")]
    pub pretty: bool,
}

fn yes() -> bool {
    true
}

/// One line of `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexLine {
    /// External id.
    pub external_id: String,
    /// File name in the folder.
    pub file: String,
    /// Title per language.
    pub title: crate::catalog::Translated,
    /// Content hash of the file.
    pub content_hash: String,
    /// Next performance start, for sorting listings.
    pub next_performance: Option<String>,
    /// Availability status name.
    pub availability: String,
}

/// The files target.
pub struct FilesTarget {
    name: String,
    dir: PathBuf,
    pretty: bool,
    /// Live entries; a std mutex held only around map updates, never across `.await`.
    index: Mutex<BTreeMap<String, IndexLine>>,
    /// True when `index.json` must be rewritten at the next flush.
    dirty: Mutex<bool>,
}

/// The file in the folder envelope: the entry plus the hash it was written with.
#[derive(Serialize, Deserialize)]
struct FileDoc {
    content_hash: String,
    #[serde(flatten)]
    entry: Entry,
}

impl FilesTarget {
    /// Opens the folder (creating it) and reads the existing files into the index.
    pub fn new(name: &str, settings: &FilesSettings) -> Result<Self, TargetError> {
        let dir = settings.path.clone();
        std::fs::create_dir_all(&dir).map_err(|e| {
            TargetError::permanent(format!(
                "files target {name}: cannot create {}: {e}; check targets.files.path",
                dir.display()
            ))
        })?;
        let mut index = BTreeMap::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| TargetError::permanent(format!("files target {name}: cannot read {}: {e}", dir.display())))?;
        for item in entries.flatten() {
            let file = item.file_name().to_string_lossy().into_owned();
            if !file.starts_with("secutix-") || !file.ends_with(".json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(item.path()) else {
                continue;
            };
            if let Ok(doc) = serde_json::from_slice::<FileDoc>(&bytes)
                && doc.entry.published
            {
                index.insert(
                    doc.entry.external_id.clone(),
                    index_line(&doc.entry, &doc.content_hash, &file),
                );
            }
        }
        Ok(Self {
            name: name.to_owned(),
            dir,
            pretty: settings.pretty,
            index: Mutex::new(index),
            dirty: Mutex::new(true),
        })
    }

    fn file_name(external_id: &str) -> Result<String, TargetError> {
        // External ids are `secutix-<digits>`; refuse anything that could leave the folder.
        if external_id.is_empty()
            || !external_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TargetError::permanent(format!(
                "refusing to write a file for the id {external_id:?}"
            )));
        }
        Ok(format!("{external_id}.json"))
    }

    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), TargetError> {
        let io = |e: std::io::Error| {
            TargetError::retry(format!(
                "files target {}: cannot write {file} in {}: {e}",
                self.name,
                self.dir.display()
            ))
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        // Temporary files are created 0600; these are published data, read by a site generator or a web
        // server running as another user: 0644, like any generated site file. Who may enter the folder is
        // the folder's own permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io)?;
        }
        tmp.write_all(bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(self.dir.join(file)).map_err(|e| io(e.error))?;
        Ok(())
    }

    fn encode<T: Serialize>(&self, v: &T) -> Vec<u8> {
        let r = if self.pretty {
            serde_json::to_vec_pretty(v)
        } else {
            serde_json::to_vec(v)
        };
        r.unwrap_or_default()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn index_line(entry: &Entry, hash: &str, file: &str) -> IndexLine {
    IndexLine {
        external_id: entry.external_id.clone(),
        file: file.to_owned(),
        title: entry.title.clone(),
        content_hash: hash.to_owned(),
        next_performance: entry.next_performance.as_ref().and_then(|n| n.start.clone()),
        availability: entry.availability.status.as_str().to_owned(),
    }
}

#[async_trait::async_trait]
impl Target for FilesTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "files"
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let file = Self::file_name(&op.external_id)?;
        match op.kind {
            OpKind::Upsert | OpKind::Unpublish => {
                let entry = op
                    .entry
                    .clone()
                    .ok_or_else(|| TargetError::permanent(format!("{}: no entry to write", op.external_id)))?;
                let doc = FileDoc {
                    content_hash: op.content_hash.clone(),
                    entry,
                };
                self.write_atomic(&file, &self.encode(&doc))?;
                let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
                if doc.entry.published && op.kind == OpKind::Upsert {
                    index.insert(op.external_id.clone(), index_line(&doc.entry, &op.content_hash, &file));
                } else {
                    index.remove(&op.external_id);
                }
            }
            OpKind::Delete => {
                match std::fs::remove_file(self.dir.join(&file)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(TargetError::retry(format!(
                            "files target {}: cannot delete {file}: {e}",
                            self.name
                        )));
                    }
                }
                self.index
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&op.external_id);
            }
        }
        *self.dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
        Ok(Applied { remote_id: Some(file) })
    }

    async fn flush(&self) -> Result<(), TargetError> {
        let lines: Vec<IndexLine> = {
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            if !*dirty {
                return Ok(());
            }
            *dirty = false;
            self.index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect()
        };
        let doc = serde_json::json!({ "schema_version": crate::entry::SCHEMA_VERSION, "count": lines.len(), "entries": lines });
        self.write_atomic("index.json", &self.encode(&doc))
    }

    async fn check(&self) -> Result<String, TargetError> {
        let probe = self.dir.join(".secutix-sync-check");
        std::fs::write(&probe, b"ok")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| {
                TargetError::permanent(format!(
                    "files target {}: {} is not writable: {e}",
                    self.name,
                    self.dir.display()
                ))
            })?;
        let n = self.index.lock().unwrap_or_else(|p| p.into_inner()).len();
        Ok(format!("folder {} is writable, {n} live entries", self.dir.display()))
    }
}
