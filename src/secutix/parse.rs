//! What both catalogue parsers share: the sink they stream into, the envelope they return, their error.
//!
//! The parsers never hold the catalogue: each season (without its products) and each product is handed to
//! a [`CatalogSink`] as soon as it is complete, so memory is bounded by one product, not by the catalogue.

use crate::catalog::{Product, Season};

/// An error from a sink (typically the store); kept apart from parse errors so it is reported as such.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives the catalogue as it is parsed.
pub trait CatalogSink {
    /// Forget everything received so far (a response turned out to be `in_progress`, not a catalogue).
    fn reset(&mut self) -> Result<(), SinkError>;
    /// A season is complete (its products were streamed before or after; `index` links them).
    fn season(&mut self, index: u32, season: Season) -> Result<(), SinkError>;
    /// A product of the season with position `season_index` (`None` when the feed lists it outside seasons).
    fn product(&mut self, season_index: Option<u32>, product: Product) -> Result<(), SinkError>;
    /// Called before each product is parsed, with a fingerprint of its bytes as sent ([`wire_hash`]).
    /// Returning `true` means the sink already holds this exact product (the same bytes were imported into
    /// the catalogue in force) and takes it as it is: the product is then skipped, not parsed, and
    /// [`CatalogSink::product`] is not called for it. The default parses everything.
    fn product_bytes(&mut self, season_index: Option<u32>, hash: &WireHash) -> Result<bool, SinkError> {
        let _ = (season_index, hash);
        Ok(false)
    }
    /// True when [`CatalogSink::product_bytes`] may answer `true`: the parser then fingerprints each product
    /// before parsing it. Otherwise it parses first and fingerprints the same bytes afterwards (one pass less);
    /// `product_bytes` is still called, before `product`, to hand the sink the fingerprint.
    fn skips_known_products(&self) -> bool {
        false
    }
}

/// BLAKE3 of a product's bytes as sent (see [`wire_hash`]).
pub type WireHash = [u8; 32];

/// Version of the conversion from wire bytes to the domain model. Part of every [`wire_hash`], so that a
/// product whose bytes did not change is still parsed again after secutix-sync converts differently.
/// **Bump it whenever `wire.rs` (or the parsers) change what a product becomes.**
pub const WIRE_CONVERSION_VERSION: u32 = 2;

/// Incremental [`WireHash`]: the conversion version, then the product's bytes (JSON text, or XML events).
pub fn wire_hasher() -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    h.update(b"secutix-sync wire ");
    h.update(&WIRE_CONVERSION_VERSION.to_be_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h
}

/// The [`WireHash`] of a product's bytes.
pub fn wire_hash(bytes: &[u8]) -> WireHash {
    let mut h = wire_hasher();
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// The result envelope of a SecuTix call (`statusCode`, `requestId`, `statusDetail`) and what was streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `success`, `in_progress`, or an error code.
    pub status_code: Option<String>,
    /// `requestId`, to re-call an asynchronous method.
    pub request_id: Option<i64>,
    /// `statusDetail`, the reason of an error.
    pub status_detail: Option<String>,
    /// Seasons streamed to the sink.
    pub seasons: u32,
    /// Products streamed to the sink.
    pub products: u64,
    /// True when `catalogData` was present.
    pub has_catalog: bool,
    /// For `getCatalog` over REST: the catalogue XML string carried in `catalogData`.
    pub catalog_xml: Option<String>,
    /// Values left out of the streamed products because they cannot be right.
    pub implausible: super::wire::Implausible,
}

/// Status of a call as told by its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    /// `statusCode: success`.
    Success,
    /// `statusCode: in_progress`: call again (with `requestId` when given).
    InProgress {
        /// The request id to send back, if SecuTix gave one.
        request_id: Option<i64>,
    },
    /// Any other status code: an application error.
    Failed {
        /// The status code as sent.
        code: String,
        /// `statusDetail`.
        detail: Option<String>,
    },
}

impl Envelope {
    /// Classifies the status. A response without `statusCode` but with data counts as success.
    pub fn status(&self) -> CallStatus {
        match self.status_code.as_deref().map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("success") => CallStatus::Success,
            Some(s) if s.eq_ignore_ascii_case("in_progress") => CallStatus::InProgress {
                request_id: self.request_id,
            },
            None if self.has_catalog => CallStatus::Success,
            other => CallStatus::Failed {
                code: other.unwrap_or("(no statusCode)").to_owned(),
                detail: self.status_detail.clone(),
            },
        }
    }
}

/// Deepest nesting accepted in an answer, JSON or XML: elements (objects, arrays) inside one another,
/// counted from the document's root. A real SecuTix answer nests fewer than 20 levels (a SOAP envelope
/// adds five); anything deeper is refused before it can exhaust the stack. JSON has the same limit from
/// serde_json's own recursion limit (128).
pub const MAX_DEPTH: usize = 128;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Syntax error, truncated body, wrong type: `place` says where.
    #[error("{call}: malformed response at {place}: {message}")]
    Malformed {
        /// The SecuTix method.
        call: String,
        /// JSON path or XML element path with byte offset.
        place: String,
        /// What was wrong.
        message: String,
    },
    /// Elements nested deeper than [`MAX_DEPTH`]: refused (a hostile or broken answer).
    #[error(
        "{call}: malformed response at {place}: the answer nests deeper than {limit} levels, which no SecuTix \
         answer does; it was refused without being read further"
    )]
    TooDeep {
        /// The SecuTix method.
        call: String,
        /// JSON path or XML element path (its first levels) with byte offset or line and column.
        place: String,
        /// The limit ([`MAX_DEPTH`]).
        limit: usize,
    },
    /// A small answer holds more values than its limit allows (the client reports it as
    /// `CallError::AnswerTooLarge`, naming the setting).
    #[error("{call}: the answer holds more than {limit} values; it was refused")]
    TooManyValues {
        /// The SecuTix method.
        call: String,
        /// The limit.
        limit: usize,
    },
    /// A SOAP fault instead of a result.
    #[error("{call}: SOAP fault {code}: {message}")]
    Fault {
        /// The SecuTix method.
        call: String,
        /// `faultcode`.
        code: String,
        /// `faultstring`.
        message: String,
    },
    /// The sink (the store) failed while receiving the catalogue.
    #[error("{call}: could not store the catalogue while reading it: {source}")]
    Sink {
        /// The SecuTix method.
        call: String,
        /// The sink's error.
        source: SinkError,
    },
    /// Reading the spooled body failed.
    #[error("{call}: could not read the response body: {source}")]
    Io {
        /// The SecuTix method.
        call: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A sink that keeps everything in memory (tests, `validate` tools, small catalogues).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CollectSink {
    /// Seasons by position.
    pub seasons: Vec<(u32, Season)>,
    /// Products with their season position.
    pub products: Vec<(Option<u32>, Product)>,
}

impl CatalogSink for CollectSink {
    fn reset(&mut self) -> Result<(), SinkError> {
        self.seasons.clear();
        self.products.clear();
        Ok(())
    }
    fn season(&mut self, index: u32, season: Season) -> Result<(), SinkError> {
        self.seasons.push((index, season));
        Ok(())
    }
    fn product(&mut self, season_index: Option<u32>, product: Product) -> Result<(), SinkError> {
        self.products.push((season_index, product));
        Ok(())
    }
}
