//! One import's transaction: products staged as they are parsed, then the passes of `finish` (records, index, tombstones, the shrink guard, the switch).

#[allow(unused_imports)]
use super::*;

impl std::fmt::Debug for ImportTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportTxn")
            .field("generation", &self.generation)
            .field("received", &self.received)
            .finish()
    }
}

impl Staged {
    pub(super) fn encode(&self) -> Vec<u8> {
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

    pub(super) fn decode(v: &[u8]) -> Option<Self> {
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
pub(super) fn apply_season(bytes: &[u8], season: &Season) -> Option<Vec<u8>> {
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

pub(super) fn staging_key(id: Id, season_index: Option<u32>) -> [u8; 12] {
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

    pub(super) fn remove(store: &Store, generation: u64) {
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

    pub(super) fn build(&mut self, opts: &FinishOptions) -> Result<ImportCounts, FinishError> {
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
pub(super) fn retain_past_performances(new: &mut Product, old: &Product, now: DateTime<Utc>) -> u64 {
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
