//! The SecuTix client: REST and SOAP transports, authentication, rate limits, the `in_progress` protocol.
//!
//! - [`Client::call`] makes one web-service call with both transports behind one interface: the rate
//!   limiter of the service, a timeout, the body spooled to memory or to a temporary file (hashed on the
//!   way), HTTP status handling, and retries of transient failures (509/429 with `Retry-After`, 502/503/504,
//!   timeouts, connection errors) inside the caller's deadline.
//! - [`Client::fetch_catalogue`] runs the catalogue protocol: the 10-minute rule (remembered by the
//!   [`CallLedger`], so across restarts), `statusCode: in_progress` with `requestId` and a growing back-off
//!   under an overall deadline, and the streaming parse (JSON or XML) into a [`CatalogSink`].
//! - [`availability`]: the `availabilityService` calls (`getUpdatedAvailabilities`, `getEventAvailability`,
//!   `getPerformanceAvailability`, `getProductAvailability`) and the lenient reading of their answers.
//! - Every call, failed or not, is recorded in the [`CallLedger`]: it counts against the institution's quota.
//! - Answers other than the catalogue are read into memory, so they are bounded: `secutix.max_small_response_mib`
//!   in bytes and [`SMALL_VALUES_PER_MIB`] values per MiB once decoded ([`CallError::AnswerTooLarge`]).
//! - The waits between tries (a retry back-off, `in_progress`) end at the daemon's shutdown
//!   ([`Client::with_cancel`], [`CallError::Stopped`] with the error being retried); the failures being
//!   retried are published ([`Client::retrying`]) so that an import can record the last one.
//!
//! Errors ([`CallError`]) name the method, what failed and what to do; they never contain the secret, nor
//! credentials written into `secutix.base_url`. Redirects are not followed ([`CallError::Redirect`]): they
//! would re-send the SOAP body with its password, or the token request, to another address.

use crate::backoff::half_jitter as jitter;
use crate::catalog::PosConfig;
use crate::clock::SharedClock;
use crate::http::{retry_after, snippet, trimmed};
use crate::ratelimit::RateLimiter;
use crate::secutix::settings::{AuthMode, CatalogueMethod, SecutixConfig, Transport};
use crate::text::human;
use chrono::{DateTime, Utc};
use parse::{CallStatus, CatalogSink, Envelope, ParseError};
use secrecy::SecretString;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufReader, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wire::ConvertCtx;

mod body;
mod calls;
mod catalogue;
mod errors;
mod ledger;
mod transport;

pub use body::*;

#[allow(unused_imports)]
use catalogue::*;
pub use errors::*;
pub use ledger::*;

pub mod auth;

pub mod availability;

pub mod json;

pub mod parse;

pub mod settings;

pub mod wire;

pub mod xml;

/// A SecuTix web service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `catalogService`: POS configuration, catalogue.
    Catalog,
    /// `availabilityService`: availabilities.
    Availability,
}

impl Service {
    /// Name in REST paths.
    pub fn rest_name(self) -> &'static str {
        match self {
            Service::Catalog => "catalogService",
            Service::Availability => "availabilityService",
        }
    }
    fn soap_package(self) -> &'static str {
        match self {
            Service::Catalog => "catalog",
            Service::Availability => "availability",
        }
    }
    fn soap_class(self) -> &'static str {
        match self {
            Service::Catalog => "CatalogService",
            Service::Availability => "AvailabilityService",
        }
    }
}

/// A response body, in memory or spooled to a temporary file.
#[derive(Debug)]
pub struct Body {
    /// The bytes.
    pub data: BodyData,
    /// Size in bytes (after gzip decoding).
    pub len: u64,
    /// BLAKE3 of the bytes: an identical catalogue is recognised without parsing it.
    pub hash: [u8; 32],
}

/// Where a body's bytes are.
#[derive(Debug)]
pub enum BodyData {
    /// Small responses.
    Memory(Vec<u8>),
    /// Catalogue responses: written to disk as they arrive, parsed from there.
    File(std::fs::File),
}

/// Writes a spooled response to its file on a thread of its own, so that the disk write (a page-cache copy
/// that costs about as much as receiving and hashing the bytes) runs next to them instead of after each
/// chunk. The queue is bounded: a slow disk slows the download down rather than filling memory.
///
/// The async side never awaits the thread: a full queue blocks it for the time of one write, as the writes
/// themselves did before, so paused-time tests never see the runtime idle while a chunk is being written.
struct SpoolWriter {
    queue: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<std::fs::File>>>,
}

/// How transient failures are retried within a deadline.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Give up when the next wait would pass this instant.
    pub deadline: Instant,
}

impl RetryPolicy {
    /// Retries starting at 5 s, doubling up to 2 min, until `within` from now.
    pub fn within(within: Duration) -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(120),
            deadline: Instant::now() + within,
        }
    }
    /// No retry.
    pub fn once() -> Self {
        Self {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            deadline: Instant::now(),
        }
    }
}

/// What to ask for in a catalogue import.
#[derive(Debug, Clone)]
pub struct CatalogueRequest {
    /// getCatalogDetailed or getCatalog.
    pub method: CatalogueMethod,
    /// `seasonCode` parameter.
    pub season_code: Option<String>,
    /// `productCode` parameter.
    pub product_code: Option<String>,
    /// `scope` parameter.
    pub scope: Option<String>,
    /// First wait after in_progress.
    pub backoff: Duration,
    /// Longest wait after in_progress.
    pub max_backoff: Duration,
    /// Overall deadline.
    pub deadline: Duration,
    /// Minimum time between fresh calls (the 10-minute rule).
    pub min_interval: Duration,
    /// Conversion context (the venue's time zone).
    pub ctx: ConvertCtx,
}

/// The outcome of a catalogue fetch.
#[derive(Debug, Clone, Default)]
pub struct CatalogueFetch {
    /// The final envelope.
    pub envelope: Envelope,
    /// Bytes of the final response.
    pub bytes: u64,
    /// HTTP calls made (in_progress re-calls and retries included).
    pub calls: u32,
    /// BLAKE3 of the final response.
    pub body_hash: [u8; 32],
    /// True when the response was byte-identical to `known_hash`: nothing was parsed.
    pub unchanged: bool,
}

/// The SecuTix client. Cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    cfg: SecutixConfig,
    base: String,
    /// `base` as errors and people see it: credentials redacted.
    shown_base: String,
    secret: SecretString,
    ledger: Arc<dyn CallLedger>,
    clock: SharedClock,
    limiters: HashMap<Service, RateLimiter>,
    /// Token from the token endpoint and when it was obtained; std mutex, never held across `.await`.
    token: Mutex<Option<(String, Instant)>>,
    spool_dir: Option<PathBuf>,
    /// Cancelled on shutdown: the client's waits (a retry back-off, SecuTix's `in_progress`) end at once
    /// with [`CallError::Stopped`]. A request in flight and the short pacing between two calls are not cut:
    /// they get the shutdown grace.
    cancel: CancellationToken,
    /// The last failure a call is about to retry, by `service/method`: an import shows it while it waits,
    /// and it stays in the history when the process stops before the import ends.
    retrying: watch::Sender<Option<(String, String)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.shown_base)
            .field("transport", &self.cfg.transport)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `cfg`; calls are recorded in `ledger`.
    pub fn new(cfg: &SecutixConfig, ledger: Arc<dyn CallLedger>, clock: SharedClock) -> Result<Self, CallError> {
        let secret = cfg.read_secret().map_err(CallError::Local)?;
        for (key, url) in [
            ("secutix.base_url", cfg.base_url()),
            ("secutix.token_endpoint", cfg.token_endpoint.clone()),
        ] {
            if let Some(m) = crate::http::clear_text_problem(&url, cfg.allow_insecure_http, "the operator's secret") {
                return Err(CallError::Local(format!("{key}: {m} (secutix.allow_insecure_http)")));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            // A redirect would re-send the credentials (SOAP password, token request) to another address.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secutix-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallError::Local(format!("cannot build the HTTP client: {e}")))?;
        let limiters = [Service::Catalog, Service::Availability]
            .into_iter()
            .map(|s| (s, RateLimiter::per_minute(cfg.calls_per_minute)))
            .collect();
        Ok(Self {
            http,
            shown_base: crate::http::redact_credentials(&cfg.base_url()).into_owned(),
            base: cfg.base_url(),
            cfg: cfg.clone(),
            secret,
            ledger,
            clock,
            limiters,
            token: Mutex::new(None),
            spool_dir: None,
            cancel: CancellationToken::new(),
            retrying: watch::channel(None).0,
        })
    }

    /// Ends the waits of this client (retry back-off, `in_progress`) when `cancel` is cancelled (the daemon's
    /// shutdown).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// The failures the client is about to retry, as `(service/method, message)`, newest last.
    pub fn retrying(&self) -> watch::Receiver<Option<(String, String)>> {
        self.retrying.subscribe()
    }

    /// Spools large bodies into `dir` (default: the system's temporary folder).
    pub fn with_spool_dir(mut self, dir: PathBuf) -> Self {
        self.spool_dir = Some(dir);
        self
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.cfg.transport
    }

    /// The base URL in use, as people see it (credentials in it redacted).
    pub fn base_url(&self) -> &str {
        &self.shown_base
    }
}
