//! Catalogue generations: the one in force, the switch to a new one, and dropping the stale ones.

#[allow(unused_imports)]
use super::*;

pub(super) fn gen_tree(g: u64, name: &str) -> String {
    format!("cat.{g}.{name}")
}

pub(super) fn parse_gen_tree(name: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(name).ok()?;
    s.strip_prefix("cat.")?.split('.').next()?.parse().ok()
}

pub(super) fn records_file(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("cat.{g}.records"))
}

pub(super) fn staging_file(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("cat.{g}.staging"))
}

impl Store {
    /// The generation in force, if any.
    pub fn generation(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta
            .get(KEY_GENERATION)
            .map_err(self.err())?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?))))
    }

    pub(super) fn drop_stale_generations(&self) -> Result<(), StoreError> {
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
}
