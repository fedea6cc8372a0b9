//! The public availability document: indicators and booking links of every published product, for the
//! website's JavaScript, computed once per change and served from a file (never from SecuTix).
//!
//! Built from the stored entries ([`PublicSnapshot::build`]), then after each plan updated for the entries
//! it changed ([`PublicSnapshot::update`]). The control API serves it (`GET /public/availability`) with its
//! ETags and caching headers; this module only hands it the bytes (or a body streaming them).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::Translated;
use crate::entry::Entry;
use crate::indicator::Availability;
use crate::push::Outbox;
use crate::store::StoreError;

/// The public availability document and its validators, updated after plans that changed entries.
///
/// The document of a large venue is tens of MB, so it is not kept in memory: it is written to an unnamed
/// temporary file in the store folder (`public/`, gone with its last handle) and requests read it from
/// there (the page cache). The snapshot keeps where each product is and the ETags. After a plan, only the
/// products whose entries changed are read again; the others are copied from the previous document.
#[derive(Debug, Clone, Default)]
pub struct PublicSnapshot {
    /// The document: `{"products":[…],"schema_version":N}`; `None` before the first build.
    file: Option<Arc<std::fs::File>>,
    /// Its length.
    len: u64,
    /// Strong ETag of the document.
    pub etag: String,
    /// Where each published product is in the document, by external id.
    products: BTreeMap<String, PublicSlot>,
}

/// One product in the document file.
#[derive(Debug, Clone)]
struct PublicSlot {
    offset: u64,
    len: u32,
    etag: String,
}

/// One product in the public document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicProduct {
    /// SecuTix product id.
    pub product_id: String,
    /// External id (`secutix-<productId>`).
    pub external_id: String,
    /// Title per language (for labels; the website has its own texts).
    pub title: Translated,
    /// At least one future performance on sale now.
    pub on_sale: bool,
    /// Rolled-up indicator: `{"status": "available", "code": 1}`.
    pub availability: Availability,
    /// "Book" link per language (empty unless on sale and not sold out).
    pub booking_url: BTreeMap<String, String>,
    /// Future performances.
    pub performances: Vec<PublicPerformance>,
}

/// One performance in the public document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicPerformance {
    /// Performance id.
    pub id: String,
    /// Start (venue time zone, RFC 3339 with offset).
    pub start: Option<String>,
    /// On sale now.
    pub on_sale: bool,
    /// Indicator.
    pub availability: Availability,
    /// "Book this date" link per language (empty unless on sale and not full).
    pub booking_url: BTreeMap<String, String>,
}

/// The strong ETag of a body.
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(bytes).to_hex()[..32])
}

fn public_product(e: &Entry) -> PublicProduct {
    PublicProduct {
        product_id: e.product_id.clone(),
        external_id: e.external_id.clone(),
        title: e.title.clone(),
        on_sale: e.on_sale,
        availability: e.availability,
        booking_url: e.booking_url.clone(),
        performances: e
            .performances
            .iter()
            .filter(|p| !p.past)
            .map(|p| PublicPerformance {
                id: p.id.clone(),
                start: p.start.clone(),
                on_sale: p.on_sale,
                availability: p.availability,
                booking_url: p.booking_url.clone(),
            })
            .collect(),
    }
}

const PUBLIC_HEAD: &[u8] = b"{\"products\":[";

impl PublicSnapshot {
    /// Builds the document from the stored entries (published ones).
    pub fn build(outbox: &Outbox) -> Result<Self, StoreError> {
        Self::update(None, outbox, &[])
    }

    /// The document after a plan changed the entries `changed` (external ids): those are read again; the
    /// other products are copied from `previous` (all are read when there is none).
    pub fn update(previous: Option<&PublicSnapshot>, outbox: &Outbox, changed: &[String]) -> Result<Self, StoreError> {
        use std::io::Write as _;
        use std::os::unix::fs::FileExt as _;
        let store = outbox.store();
        let dir = store.folder("public")?;
        let io = |what: &str| {
            let what = format!("{what} the public availability document in {}", dir.display());
            move |e| store.io_error(what, e)
        };
        let previous = previous.filter(|p| p.file.is_some());
        let changed: std::collections::HashSet<&str> = changed.iter().map(String::as_str).collect();
        let file = tempfile::tempfile_in(&dir).map_err(io("creating"))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut products = BTreeMap::new();
        let mut put = |bytes: &[u8], out: &mut std::io::BufWriter<&std::fs::File>| -> std::io::Result<u64> {
            out.write_all(bytes)?;
            hasher.update(bytes);
            let at = len;
            len += bytes.len() as u64;
            Ok(at)
        };
        put(PUBLIC_HEAD, &mut out).map_err(io("writing"))?;
        let mut buf = Vec::new();
        for id in outbox.entry_store().ids() {
            let id = id?;
            let slot = match previous {
                Some(prev) if !changed.contains(id.as_str()) => {
                    // Unchanged: its bytes as they were (or still not published).
                    let (Some(slot), Some(f)) = (prev.products.get(&id), &prev.file) else {
                        continue;
                    };
                    buf.resize(slot.len as usize, 0);
                    f.read_exact_at(&mut buf, slot.offset).map_err(io("reading"))?;
                    slot.etag.clone()
                }
                _ => {
                    let Some(stored) = outbox.entry(&id)? else { continue };
                    if !stored.entry.published {
                        continue;
                    }
                    buf.clear();
                    // Our own struct: serialising cannot fail.
                    serde_json::to_writer(&mut buf, &public_product(&stored.entry)).unwrap_or_default();
                    etag_of(&buf)
                }
            };
            if !products.is_empty() {
                put(b",", &mut out).map_err(io("writing"))?;
            }
            let offset = put(&buf, &mut out).map_err(io("writing"))?;
            products.insert(
                id,
                PublicSlot {
                    offset,
                    len: buf.len() as u32,
                    etag: slot,
                },
            );
        }
        put(
            format!("],\"schema_version\":{}}}", crate::entry::SCHEMA_VERSION).as_bytes(),
            &mut out,
        )
        .map_err(io("writing"))?;
        out.flush().map_err(io("writing"))?;
        drop(out);
        let etag = format!("\"{}\"", &hasher.finalize().to_hex()[..32]);
        Ok(Self {
            file: Some(Arc::new(file)),
            len,
            etag,
            products,
        })
    }

    /// Length of the document in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the first build.
    pub fn is_empty(&self) -> bool {
        self.file.is_none()
    }

    /// Published products in the document.
    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// The whole document (small documents, tests); the API streams it.
    pub fn body(&self) -> std::io::Result<Vec<u8>> {
        self.read(0, self.len)
    }

    /// One product's part of the document and its ETag, by external id (`secutix-<id>`).
    pub fn product(&self, external_id: &str) -> Option<std::io::Result<(Vec<u8>, String)>> {
        let slot = self.products.get(external_id)?;
        Some(
            self.read(slot.offset, u64::from(slot.len))
                .map(|b| (b, slot.etag.clone())),
        )
    }

    /// The ETag of one product, without reading it.
    pub fn product_etag(&self, external_id: &str) -> Option<&str> {
        self.products.get(external_id).map(|s| s.etag.as_str())
    }

    fn read(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt as _;
        let Some(f) = &self.file else {
            return Ok(default_public_body());
        };
        let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The document as a stream of chunks read on blocking threads, for the control API to send.
    pub fn stream(&self) -> axum::body::Body {
        const CHUNK: u64 = 256 * 1024;
        let Some(file) = self.file.clone() else {
            return axum::body::Body::from(default_public_body());
        };
        let end = self.len;
        let chunks = futures_util::stream::try_unfold(0u64, move |at| {
            let file = file.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let n = CHUNK.min(end - at);
                let chunk = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt as _;
                    let mut buf = vec![0u8; n as usize];
                    file.read_exact_at(&mut buf, at).map(|_| buf)
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok::<_, std::io::Error>(Some((bytes::Bytes::from(chunk), at + n)))
            }
        });
        axum::body::Body::from_stream(chunks)
    }
}

/// The document before the first build: no product.
pub fn default_public_body() -> Vec<u8> {
    serde_json::to_vec(&json!({ "schema_version": crate::entry::SCHEMA_VERSION, "products": [] })).unwrap_or_default()
}
