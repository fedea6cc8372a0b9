//! Product records: one append-only file per generation with a small sled index, read through a [`CatalogView`].

#[allow(unused_imports)]
use super::*;

pub(super) fn hash_hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// What the wire hashes of a generation depend on besides the bytes.
pub(super) fn wire_fingerprint(families: &[ProductFamily], tz: chrono_tz::Tz) -> String {
    let mut h = crate::secutix::parse::wire_hasher();
    let mut names: Vec<&str> = families.iter().map(ProductFamily::as_str).collect();
    names.sort_unstable();
    h.update(names.join(",").as_bytes());
    h.update(b"|");
    h.update(tz.name().as_bytes());
    h.finalize().to_hex().to_string()
}

/// A fingerprint of the season a product was taken from (its id and code end up in the record).
pub(super) fn season_fingerprint(season: Option<&Season>) -> u64 {
    let mut h = blake3::Hasher::new();
    if let Some(s) = season {
        h.update(&s.id.unwrap_or(0).to_be_bytes());
        h.update(s.code.as_deref().unwrap_or("").as_bytes());
    }
    let b = h.finalize();
    u64::from_be_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

impl IndexEntry {
    pub(super) fn encode(&self) -> Vec<u8> {
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

    pub(super) fn decode(v: &[u8]) -> Option<Self> {
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

impl RecordWriter {
    pub(super) fn new(file: File, path: PathBuf) -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, file),
            len: 0,
            path,
        }
    }

    pub(super) fn append(&mut self, bytes: &[u8]) -> std::io::Result<(u64, u32)> {
        let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a record larger than 4 GiB"))?;
        self.out.write_all(bytes)?;
        let at = self.len;
        self.len += bytes.len() as u64;
        Ok((at, len))
    }

    /// Writes what is buffered; the file can then be read at any offset handed out.
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Flushes and syncs the file to disk.
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }

    /// Empties the file.
    pub(super) fn truncate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let f = self.out.get_mut();
        f.set_len(0)?;
        f.rewind()?;
        self.len = 0;
        Ok(())
    }

    pub(super) fn read(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        read_at(self.out.get_ref(), offset, len)
    }
}

pub(super) fn read_at(file: &File, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

impl CatalogView {
    pub(super) fn sled_err(e: sled::Error) -> StoreError {
        StoreError::Sled {
            path: "catalogue".into(),
            error: e,
        }
    }

    pub(super) fn entry(&self, id: Id) -> Result<Option<IndexEntry>, StoreError> {
        match self.products.get(id.to_be_bytes()).map_err(Self::sled_err)? {
            None => Ok(None),
            Some(v) => IndexEntry::decode(&v).map(Some).ok_or_else(|| StoreError::Corrupt {
                key: format!("index of product {id}"),
                reason: "too short".into(),
            }),
        }
    }

    pub(super) fn record_bytes(&self, what: &str, e: &IndexEntry) -> Result<Vec<u8>, StoreError> {
        read_at(&self.file, e.offset, e.len).map_err(|source| StoreError::Io {
            path: "catalogue".into(),
            what: format!("reading {what} from generation {}'s records", self.meta.generation),
            source,
        })
    }

    pub(super) fn record(&self, id: Id, e: &IndexEntry) -> Result<ProductRecord, StoreError> {
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

/// [`ProductRecord`] without its product, serialised after it by [`splice_record`].
#[derive(Serialize)]
pub(super) struct RecordTail<'a> {
    pub(super) feed_hash: &'a str,
    pub(super) first_seen: DateTime<Utc>,
    pub(super) changed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) removed_at: Option<DateTime<Utc>>,
}

/// The bytes of a [`ProductRecord`] from the product's bytes and the rest, as encoding the record would
/// give, without decoding the product.
pub(super) fn splice_record(product: &[u8], tail: &RecordTail<'_>) -> Result<Vec<u8>, StoreError> {
    let t = encode(tail, "record")?;
    let mut out = Vec::with_capacity(product.len() + t.len() + 12);
    out.extend_from_slice(b"{\"product\":");
    out.extend_from_slice(product);
    out.push(b',');
    out.extend_from_slice(t.get(1..).unwrap_or_default());
    Ok(out)
}
