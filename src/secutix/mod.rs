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

pub mod auth;
pub mod availability;
pub mod json;
pub mod parse;
pub mod settings;
pub mod wire;
pub mod xml;

use std::collections::HashMap;
use std::io::{BufReader, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::half_jitter as jitter;
use crate::catalog::PosConfig;
use crate::clock::SharedClock;
use crate::http::{retry_after, snippet, trimmed};
use crate::ratelimit::RateLimiter;
use crate::secutix::settings::{AuthMode, CatalogueMethod, SecutixConfig, Transport};
use crate::text::human;
use parse::{CallStatus, CatalogSink, Envelope, ParseError};
use wire::ConvertCtx;

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

/// Where calls are counted (the store in production): every HTTP request to SecuTix is recorded.
pub trait CallLedger: Send + Sync {
    /// Records one call of `service/method` at `at`, with the response size.
    fn record_call(&self, at: DateTime<Utc>, service: &str, method: &str, bytes: u64);
    /// When `method` was last called, if ever.
    fn last_call(&self, method: &str) -> Option<DateTime<Utc>>;
}

/// One recorded call: time, service, method, response bytes.
pub type CallRecord = (DateTime<Utc>, String, String, u64);

/// An in-memory ledger (tests, one-shot tools).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    /// Every call.
    pub calls: Mutex<Vec<CallRecord>>,
}

impl MemoryLedger {
    /// Number of calls of `method` recorded.
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .map(|c| c.iter().filter(|(_, _, m, _)| m == method).count())
            .unwrap_or(0)
    }
}

impl CallLedger for MemoryLedger {
    fn record_call(&self, at: DateTime<Utc>, service: &str, method: &str, bytes: u64) {
        if let Ok(mut c) = self.calls.lock() {
            c.push((at, service.to_owned(), method.to_owned(), bytes));
        }
    }
    fn last_call(&self, method: &str) -> Option<DateTime<Utc>> {
        self.calls
            .lock()
            .ok()?
            .iter()
            .filter(|(_, _, m, _)| m == method)
            .map(|(t, ..)| *t)
            .max()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// HTTP 401/403.
    #[error(
        "SecuTix refused the credentials for {call} (HTTP {status}): check secutix.institution, secutix.operator, \
         secutix.partner and the secret (secutix.secret_file). Response: {snippet}"
    )]
    Auth {
        /// Service/method.
        call: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        snippet: String,
    },
    /// HTTP 509/429. The message names the wait SecuTix asked for (`Retry-After`), never one of its own:
    /// whoever retries says when it does (the retry loop, the poller's "next poll in").
    #[error(
        "SecuTix rate limit reached on {call} (HTTP {status}){}",
        if .wait.is_zero() { String::new() } else { format!("; SecuTix asks to wait {} (Retry-After)", human(*.wait)) }
    )]
    RateLimited {
        /// Service/method.
        call: String,
        /// HTTP status.
        status: u16,
        /// From `Retry-After`; zero without one.
        wait: Duration,
    },
    /// Another HTTP error status.
    #[error("{call} failed with HTTP {status}. Response: {snippet}")]
    Http {
        /// Service/method.
        call: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        snippet: String,
    },
    /// A body that is not what the transport expects (an HTML page, text).
    #[error(
        "{call}: SecuTix answered HTTP {status} with {what} instead of {expected} (a proxy, maintenance or error \
         page?). First 200 characters: {snippet}"
    )]
    UnexpectedBody {
        /// Service/method.
        call: String,
        /// HTTP status.
        status: u16,
        /// What it looked like.
        what: &'static str,
        /// JSON or XML.
        expected: &'static str,
        /// First 200 characters.
        snippet: String,
    },
    /// The per-call timeout elapsed.
    #[error("{call}: no complete answer within {} (secutix.request_timeout); SecuTix is slow or unreachable", human(*.after))]
    Timeout {
        /// Service/method.
        call: String,
        /// The timeout.
        after: Duration,
    },
    /// Connection or protocol failure.
    #[error(
        "{call}: cannot reach SecuTix at {url}: {reason}. Check secutix.environment / secutix.base_url and the network"
    )]
    Network {
        /// Service/method.
        call: String,
        /// Base URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// An answer other than the catalogue exceeds `secutix.max_small_response_mib` (in bytes, or in values
    /// once decoded: [`SMALL_VALUES_PER_MIB`] per MiB).
    #[error(
        "{call}: SecuTix sent a larger answer than this call ever needs (more than {limit_mib} MiB or {} values, \
         secutix.max_small_response_mib); it was refused and nothing changed. Check secutix.base_url (a proxy or \
         a wrong host?); if the answers of this call are really that large, raise secutix.max_small_response_mib",
        small_values(*.limit_mib)
    )]
    AnswerTooLarge {
        /// Service/method.
        call: String,
        /// The limit (`secutix.max_small_response_mib`).
        limit_mib: u64,
    },
    /// The body exceeds `secutix.max_response_mib`.
    #[error(
        "{call}: the response is larger than {limit_mib} MiB (secutix.max_response_mib); raise it or narrow the catalogue (catalogue.season_codes)"
    )]
    TooLarge {
        /// Service/method.
        call: String,
        /// The limit.
        limit_mib: u64,
    },
    /// The body could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// `statusCode` other than success / in_progress.
    #[error("{call} failed: statusCode {code:?}{}", .detail.as_deref().map(|d| format!(", statusDetail: {d}")).unwrap_or_default())]
    Status {
        /// Service/method.
        call: String,
        /// The status code.
        code: String,
        /// `statusDetail`.
        detail: Option<String>,
    },
    /// Still `in_progress` when the deadline came.
    #[error(
        "{call} was still in progress after {} and {attempts} calls; the previous catalogue stays in force. \
         Raise catalogue.deadline if SecuTix is regularly this slow", human(*.waited)
    )]
    InProgressDeadline {
        /// Service/method.
        call: String,
        /// Time spent.
        waited: Duration,
        /// Calls made.
        attempts: u32,
    },
    /// Transient failures until the deadline.
    #[error("gave up on {call} after {} of retries; last error: {last}", human(*.waited))]
    Deadline {
        /// Service/method.
        call: String,
        /// Time spent.
        waited: Duration,
        /// The last failure.
        last: Box<CallError>,
    },
    /// The 10-minute catalogue rule.
    #[error(
        "{method} was last called at {}; SecuTix allows one call per {} (catalogue.min_interval). \
         Try again after {}", .last.format("%Y-%m-%d %H:%M:%S UTC"), human(*.min_interval), .next.format("%Y-%m-%d %H:%M:%S UTC")
    )]
    TooSoon {
        /// The method.
        method: String,
        /// Last call.
        last: DateTime<Utc>,
        /// When a call is allowed again.
        next: DateTime<Utc>,
        /// The configured interval.
        min_interval: Duration,
    },
    /// The shutdown came while the client was waiting (a retry back-off, SecuTix's `in_progress`): the wait
    /// was cut short. `last` is the failure it was waiting to retry, if any.
    #[error(
        "{call}: stopped by the shutdown while {waiting}{}",
        .last.as_ref().map(|l| format!("; the last error was: {l}")).unwrap_or_default()
    )]
    Stopped {
        /// Service/method.
        call: String,
        /// What the wait was for ("waiting 10s to try again").
        waiting: String,
        /// The failure being retried.
        last: Option<Box<CallError>>,
    },
    /// A 3xx answer: not followed, since the request carries the credentials.
    #[error(
        "{call}: SecuTix answered HTTP {status}, redirecting to {location}; redirects are not followed (the request \
         carries the operator's credentials, which must not go to another address). Set secutix.base_url (or \
         secutix.environment) to the address that answers the web services directly"
    )]
    Redirect {
        /// Service/method.
        call: String,
        /// HTTP status.
        status: u16,
        /// Where it pointed (`Location`, credentials redacted).
        location: String,
    },
    /// Local problem (secret file, temporary file, signing).
    #[error("{0}")]
    Local(String),
}

impl CallError {
    /// True for failures worth retrying within the deadline.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::RateLimited { .. } | CallError::Timeout { .. } | CallError::Network { .. } => true,
            CallError::Http { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Values (numbers, texts, keys, objects, lists) an answer other than the catalogue may hold, per MiB of
/// `secutix.max_small_response_mib`. Such answers are decoded into a `serde_json::Value`, which takes up to
/// 32 times the bytes of a dense answer (`[0,0,0,…]`); counting values bounds that: at the default 4 MiB,
/// 262,144 values take at most about 40 MB, while a real answer holds one value per 20 bytes or more.
pub const SMALL_VALUES_PER_MIB: usize = 65_536;

/// The values an answer may hold under a limit of `limit_mib` MiB.
pub fn small_values(limit_mib: u64) -> usize {
    usize::try_from(limit_mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(SMALL_VALUES_PER_MIB)
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

impl Body {
    fn reader(&mut self) -> std::io::Result<Box<dyn std::io::BufRead + Send + '_>> {
        Ok(match &mut self.data {
            BodyData::Memory(v) => Box::new(v.as_slice()),
            BodyData::File(f) => {
                f.rewind()?;
                Box::new(BufReader::with_capacity(256 * 1024, f))
            }
        })
    }
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

impl SpoolWriter {
    /// Chunks queued at most (network chunks are 16–400 KiB).
    const QUEUE: usize = 16;
    /// Small chunks (TLS records of 16 KiB) are gathered into writes of this size; larger ones are written as
    /// they come, without a copy.
    const BUFFER: usize = 256 * 1024;

    fn start(file: std::fs::File) -> std::io::Result<Self> {
        let (queue, chunks) = std::sync::mpsc::sync_channel::<bytes::Bytes>(Self::QUEUE);
        let thread = std::thread::Builder::new()
            .name("secutix-spool".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(Self::BUFFER, file);
                for chunk in chunks {
                    out.write_all(&chunk)?;
                }
                out.into_inner().map_err(|e| e.into_error())
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `chunk`; an error is the writer's own (it stopped at a failed write).
    fn write(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        let sent = self.queue.as_ref().is_some_and(|q| q.send(chunk).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.queue = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(std::io::Error::other("the writer stopped early")),
        }
    }

    /// Waits for the queued chunks to be written and returns the file.
    fn finish(mut self) -> std::io::Result<std::fs::File> {
        self.queue = None;
        self.join()
    }

    fn join(&mut self) -> std::io::Result<std::fs::File> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the writer thread panicked")),
            None => Err(std::io::Error::other("the writer already stopped")),
        }
    }
}

impl Drop for SpoolWriter {
    /// On an error or a cancelled call, the thread ends with the queue and drops the file.
    fn drop(&mut self) {
        self.queue = None;
    }
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

    /// Sleeps `d`, unless the shutdown comes first: then [`CallError::Stopped`] for `call`, with `last`.
    async fn pause(
        &self,
        d: Duration,
        call: &str,
        waiting: impl FnOnce() -> String,
        last: Option<CallError>,
    ) -> Result<(), CallError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(CallError::Stopped {
                call: call.to_owned(),
                waiting: waiting(),
                last: last.map(Box::new),
            }),
            _ = tokio::time::sleep(d) => Ok(()),
        }
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

    fn url(&self, service: Service, method: &str) -> String {
        let v = &self.cfg.api_version;
        match self.cfg.transport {
            Transport::Rest => format!("{}/tnseb/backend-apis/{}/{v}/{method}", self.base, service.rest_name()),
            Transport::Soap => format!(
                "{}/tnseb/external-remoting/com.secutix.service.realtime.{}.{v}.{}.webservice",
                self.base,
                service.soap_package(),
                service.soap_class()
            ),
        }
    }

    fn soap_envelope(&self, service: Service, method: &str, params: &Value) -> String {
        let ns = format!(
            "http://{}.{}.service.secutix.com",
            self.cfg.api_version,
            service.soap_class()
        );
        let mut body = String::new();
        if let Value::Object(map) = params {
            for (k, v) in map {
                xml_param(&mut body, k, v);
            }
        }
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:v1=\"{}\">",
                "<soapenv:Header>{}</soapenv:Header><soapenv:Body><v1:{}>{}</v1:{}></soapenv:Body></soapenv:Envelope>"
            ),
            ns,
            auth::ws_security_header(&self.cfg.operator, &self.secret),
            method,
            body,
            method
        )
    }

    async fn bearer(&self) -> Result<String, CallError> {
        match self.cfg.auth {
            AuthMode::Jwt => auth::forge_jwt(
                &self.cfg.institution,
                &self.cfg.operator,
                &self.cfg.partner,
                &self.secret,
                self.clock.now().timestamp(),
                self.cfg.jwt_lifetime,
            )
            .map_err(CallError::Local),
            AuthMode::TokenEndpoint => {
                if let Some((t, at)) = self.token.lock().ok().and_then(|g| g.clone())
                    && at.elapsed() < self.cfg.token_reuse
                {
                    return Ok(t);
                }
                let t = self.fetch_token().await?;
                if let Ok(mut g) = self.token.lock() {
                    *g = Some((t.clone(), Instant::now()));
                }
                Ok(t)
            }
        }
    }

    async fn fetch_token(&self) -> Result<String, CallError> {
        let url = if self.cfg.token_endpoint.is_empty() {
            format!("{}/tnai/backend-apis/v1/auth", self.base)
        } else {
            self.cfg.token_endpoint.clone()
        };
        let call = "v1/auth".to_owned();
        let body = auth::token_request_body(&self.cfg.operator, &self.cfg.partner, &self.secret);
        let mut resp = self
            .http
            .post(&url)
            .timeout(self.cfg.request_timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&call, e))?;
        let status = resp.status().as_u16();
        let location = crate::http::redirect_location(resp.headers());
        let read = self.read_body(&call, &mut resp, false, false).await;
        self.ledger
            .record_call(self.clock.now(), "auth", "v1/auth", read.as_ref().map_or(0, |b| b.len));
        let text = match read?.data {
            BodyData::Memory(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            BodyData::File(_) => return Err(CallError::Local("internal: token answer spooled to disk".into())),
        };
        match status {
            200..=299 => {}
            300..=399 => return Err(CallError::Redirect { call, status, location }),
            401 | 403 => {
                return Err(CallError::Auth {
                    call,
                    status,
                    snippet: snippet(text.as_bytes()),
                });
            }
            _ => {
                return Err(CallError::Http {
                    call,
                    status,
                    snippet: snippet(text.as_bytes()),
                });
            }
        }
        let max_values = small_values(self.cfg.max_small_response_mib);
        let v: Value =
            json::parse_value(&call, text.as_bytes(), max_values).map_err(|_| CallError::UnexpectedBody {
                call: call.clone(),
                status,
                what: "a body that is not JSON",
                expected: "{\"token\": …}",
                snippet: snippet(text.as_bytes()),
            })?;
        v.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(CallError::UnexpectedBody {
                call,
                status,
                what: "JSON without a token",
                expected: "{\"token\": …}",
                snippet: snippet(text.as_bytes()),
            })
    }

    fn transport_error(&self, call: &str, e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout {
                call: call.to_owned(),
                after: self.cfg.request_timeout,
            }
        } else {
            CallError::Network {
                call: call.to_owned(),
                url: self.shown_base.clone(),
                reason: crate::http::error_chain(&e),
            }
        }
    }

    /// One HTTP call, no retry. `spool` writes the body to a temporary file.
    async fn once(&self, service: Service, method: &str, params: &Value, spool: bool) -> Result<Body, CallError> {
        let call = format!("{}/{method}", service.rest_name());
        if let Some(l) = self.limiters.get(&service) {
            // Not cut by the shutdown: this pacing between two calls of a run is short (60 s divided by
            // secutix.calls_per_minute) and the run in flight gets the shutdown grace to finish.
            l.acquire().await;
        }
        let req = match self.cfg.transport {
            Transport::Rest => self
                .http
                .post(self.url(service, method))
                .bearer_auth(self.bearer().await?)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                .json(params),
            Transport::Soap => self
                .http
                .post(self.url(service, method))
                .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .header("SOAPAction", "\"\"")
                .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                .body(self.soap_envelope(service, method, params)),
        };
        let sent = req.timeout(self.cfg.request_timeout).send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                self.ledger
                    .record_call(self.clock.now(), service.rest_name(), method, 0);
                return Err(self.transport_error(&call, e));
            }
        };
        let status = resp.status().as_u16();
        if status == 509 || status == 429 {
            self.ledger
                .record_call(self.clock.now(), service.rest_name(), method, 0);
            let wait = retry_after(resp.headers(), self.clock.now()).unwrap_or(Duration::ZERO);
            return Err(CallError::RateLimited { call, status, wait });
        }
        if (300..400).contains(&status) {
            self.ledger
                .record_call(self.clock.now(), service.rest_name(), method, 0);
            let location = crate::http::redirect_location(resp.headers());
            return Err(CallError::Redirect { call, status, location });
        }
        // Only the catalogue may be large; error pages go to disk whatever the call.
        let body = self.read_body(&call, &mut resp, spool || status >= 300, spool).await;
        self.ledger.record_call(
            self.clock.now(),
            service.rest_name(),
            method,
            body.as_ref().map(|b| b.len).unwrap_or(0),
        );
        let mut body = body?;
        let head = body_head(&mut body);
        if status == 401 || status == 403 {
            return Err(CallError::Auth {
                call,
                status,
                snippet: snippet(&head),
            });
        }
        if !(200..300).contains(&status) {
            if self.cfg.transport == Transport::Soap && looks_like_xml(&head) && !looks_like_html(&head) {
                // A SOAP fault comes with HTTP 500: report the fault itself.
                // At most a small answer's worth: a fault is a few lines, and this is read into memory.
                let limit = self.cfg.max_small_response_mib;
                let mut all = Vec::new();
                if let Ok(r) = body.reader() {
                    let _ = std::io::Read::read_to_end(&mut std::io::Read::take(r, limit * 1024 * 1024), &mut all);
                }
                if let Err(e @ ParseError::Fault { .. }) = xml::parse_soap_result(method, &all, small_values(limit)) {
                    return Err(CallError::Parse(e));
                }
            }
            return Err(CallError::Http {
                call,
                status,
                snippet: snippet(&head),
            });
        }
        let expected = match self.cfg.transport {
            Transport::Rest => "JSON",
            Transport::Soap => "SOAP XML",
        };
        let ok = match self.cfg.transport {
            Transport::Rest => first_byte(&head) == Some(b'{'),
            Transport::Soap => looks_like_xml(&head) && !looks_like_html(&head),
        };
        if !ok {
            let what = if looks_like_html(&head) {
                "an HTML page"
            } else if head.iter().all(|b| b.is_ascii_whitespace()) {
                "an empty body"
            } else {
                "an unexpected body"
            };
            return Err(CallError::UnexpectedBody {
                call,
                status,
                what,
                expected,
                snippet: snippet(&head),
            });
        }
        Ok(body)
    }

    /// Reads the body of `resp`, to a temporary file with `spool`. A `catalogue` body may be as large as
    /// `secutix.max_response_mib`, any other `secutix.max_small_response_mib`: past that, reading stops.
    async fn read_body(
        &self,
        call: &str,
        resp: &mut reqwest::Response,
        spool: bool,
        catalogue: bool,
    ) -> Result<Body, CallError> {
        let limit_mib = if catalogue {
            self.cfg.max_response_mib
        } else {
            self.cfg.max_small_response_mib
        };
        let limit = limit_mib.saturating_mul(1024 * 1024);
        let too_large = || {
            if catalogue {
                CallError::TooLarge {
                    call: call.to_owned(),
                    limit_mib,
                }
            } else {
                CallError::AnswerTooLarge {
                    call: call.to_owned(),
                    limit_mib,
                }
            }
        };
        // A declared length past the limit is refused before a byte is read (it would count against the
        // monthly volume for nothing).
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut memory = Vec::new();
        let mut spool_writer = if spool {
            let file = match &self.spool_dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(|e| CallError::Local(format!("{call}: cannot create a temporary file for the response: {e}")))?;
            Some(SpoolWriter::start(file).map_err(|e| {
                CallError::Local(format!(
                    "{call}: cannot start the thread that writes the response to disk: {e}"
                ))
            })?)
        } else {
            None
        };
        let disk_error =
            |e: std::io::Error| CallError::Local(format!("{call}: cannot write the response to disk: {e}"));
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(call, e)),
            };
            len += chunk.len() as u64;
            if len > limit {
                return Err(too_large());
            }
            match &mut spool_writer {
                None => memory.extend_from_slice(&chunk),
                // Handed over first (a reference count), so that the disk write overlaps the hashing.
                Some(w) => w.write(chunk.clone()).map_err(disk_error)?,
            }
            hasher.update(&chunk);
        }
        let data = match spool_writer {
            None => BodyData::Memory(memory),
            Some(w) => BodyData::File(w.finish().map_err(disk_error)?),
        };
        Ok(Body {
            data,
            len,
            hash: *hasher.finalize().as_bytes(),
        })
    }

    /// One call with retries of transient failures (rate limits honour `Retry-After`), within `policy`.
    pub async fn call(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        spool: bool,
        policy: RetryPolicy,
    ) -> Result<Body, CallError> {
        let mut attempts = 0;
        self.call_counted(service, method, params, spool, policy, &mut attempts)
            .await
    }

    /// [`Client::call`], adding the number of HTTP calls made to `attempts`.
    pub async fn call_counted(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        spool: bool,
        policy: RetryPolicy,
        attempts: &mut u32,
    ) -> Result<Body, CallError> {
        let started = Instant::now();
        let mut wait = policy.initial;
        let mut reauth = self.cfg.auth == AuthMode::TokenEndpoint;
        loop {
            *attempts += 1;
            match self.once(service, method, params, spool).await {
                Ok(b) => return Ok(b),
                Err(CallError::Auth { .. }) if reauth => {
                    // A token from the endpoint may have expired early: get a new one, once.
                    reauth = false;
                    if let Ok(mut g) = self.token.lock() {
                        *g = None;
                    }
                }
                Err(e) if e.is_transient() => {
                    let mut delay = jitter(wait);
                    if let CallError::RateLimited { wait: ra, .. } = &e {
                        delay = delay.max(*ra);
                    }
                    if policy.initial.is_zero() {
                        // A single attempt by design (checks, availability calls the poller counts): the
                        // failure itself says what happened; there were no retries to speak of.
                        return Err(e);
                    }
                    if Instant::now() + delay > policy.deadline {
                        return Err(CallError::Deadline {
                            call: format!("{}/{method}", service.rest_name()),
                            waited: started.elapsed(),
                            last: Box::new(e),
                        });
                    }
                    tracing::warn!(error = %e, retry_in = %human(delay), "SecuTix call failed, retrying");
                    let call = format!("{}/{method}", service.rest_name());
                    self.retrying.send_replace(Some((call.clone(), e.to_string())));
                    self.pause(
                        delay,
                        &call,
                        || format!("waiting {} to try again", human(delay)),
                        Some(e),
                    )
                    .await?;
                    wait = (wait * 2).min(policy.max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A call with a small result: the envelope and the result object (REST: the body; SOAP: `<return>`).
    pub async fn call_small(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        policy: RetryPolicy,
    ) -> Result<(Envelope, Value), CallError> {
        let mut attempts = 0;
        self.call_small_counted(service, method, params, policy, &mut attempts)
            .await
    }

    /// [`Client::call_small`], adding the number of HTTP calls made to `attempts` (availability polls
    /// count every call against their allowance, failed ones included).
    pub async fn call_small_counted(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        policy: RetryPolicy,
        attempts: &mut u32,
    ) -> Result<(Envelope, Value), CallError> {
        let mut body = self
            .call_counted(service, method, params, false, policy, attempts)
            .await?;
        let BodyData::Memory(bytes) = std::mem::replace(&mut body.data, BodyData::Memory(Vec::new())) else {
            return Err(CallError::Local("internal: small call spooled to disk".into()));
        };
        decode_small(
            self.cfg.transport,
            service,
            method,
            &bytes,
            small_values(self.cfg.max_small_response_mib),
        )
    }

    /// `getPOSConfig`: point of sale id, time zone, currency, languages.
    pub async fn get_pos_config(&self, policy: RetryPolicy) -> Result<PosConfig, CallError> {
        let (_, v) = self
            .call_small(Service::Catalog, "getPOSConfig", &serde_json::json!({}), policy)
            .await?;
        let data = v.get("posConfigData").cloned().unwrap_or(Value::Null);
        let raw: wire::RawPosConfig = serde_path_to_error::deserialize(data).map_err(|e| {
            CallError::Parse(ParseError::Malformed {
                call: "getPOSConfig".into(),
                place: format!("posConfigData.{}", e.path()),
                message: e.inner().to_string(),
            })
        })?;
        Ok(raw.into_domain())
    }

    /// `isCatalogServiceAlive`: checks the credentials and the service.
    pub async fn is_alive(&self) -> Result<(), CallError> {
        self.call_small(
            Service::Catalog,
            "isCatalogServiceAlive",
            &serde_json::json!({}),
            RetryPolicy::once(),
        )
        .await
        .map(|_| ())
    }

    /// Fetches the catalogue and streams it into `sink` (see the module docs). When the response is
    /// byte-identical to `known_hash`, nothing is parsed and `unchanged` is set.
    pub async fn fetch_catalogue<S>(
        &self,
        req: &CatalogueRequest,
        mut sink: S,
        known_hash: Option<[u8; 32]>,
    ) -> Result<(S, CatalogueFetch), CallError>
    where
        S: CatalogSink + Send + 'static,
    {
        let method = req.method.as_str();
        let now = self.clock.now();
        if let Some(last) = self.ledger.last_call(method) {
            let next = last + chrono::Duration::from_std(req.min_interval).unwrap_or_default();
            if now < next {
                return Err(CallError::TooSoon {
                    method: method.to_owned(),
                    last,
                    next,
                    min_interval: req.min_interval,
                });
            }
        }
        let started = Instant::now();
        let deadline = started + req.deadline;
        let mut request_id: Option<i64> = None;
        let mut wait = req.backoff;
        let mut fetch = CatalogueFetch::default();
        loop {
            let mut params = serde_json::Map::new();
            if let Some(r) = request_id {
                params.insert("requestId".into(), r.into());
            }
            if let Some(s) = &req.season_code {
                params.insert("seasonCode".into(), s.clone().into());
            }
            if let Some(p) = &req.product_code {
                params.insert("productCode".into(), p.clone().into());
            }
            if let (Some(scope), CatalogueMethod::GetCatalogDetailed) = (&req.scope, req.method) {
                params.insert("scope".into(), scope.clone().into());
            }
            let policy = RetryPolicy {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(120),
                deadline,
            };
            let body = self
                .call_counted(
                    Service::Catalog,
                    method,
                    &Value::Object(params),
                    true,
                    policy,
                    &mut fetch.calls,
                )
                .await?;
            fetch.bytes = body.len;
            fetch.body_hash = body.hash;
            if known_hash == Some(body.hash) {
                fetch.unchanged = true;
                fetch.envelope.status_code = Some("success".into());
                return Ok((sink, fetch));
            }
            let transport = self.cfg.transport;
            let m = req.method;
            let ctx = req.ctx.clone();
            let spool_dir = self.spool_dir.clone();
            let (back, env) = tokio::task::spawn_blocking(move || {
                let r = parse_catalogue_body(transport, m, body, &ctx, &mut sink, spool_dir);
                (sink, r)
            })
            .await
            .map_err(|e| CallError::Local(format!("the catalogue parser stopped: {e}")))?;
            sink = back;
            let env = env?;
            match env.status() {
                CallStatus::Success => {
                    fetch.envelope = env;
                    return Ok((sink, fetch));
                }
                CallStatus::InProgress { request_id: rid } => {
                    sink.reset()
                        .map_err(|e| CallError::Local(format!("cannot reset the import: {e}")))?;
                    request_id = rid.or(request_id);
                    if Instant::now() + wait > deadline {
                        return Err(CallError::InProgressDeadline {
                            call: format!("catalogService/{method}"),
                            waited: started.elapsed(),
                            attempts: fetch.calls,
                        });
                    }
                    tracing::info!(request_id, retry_in = %human(wait), "SecuTix is preparing the catalogue (in_progress)");
                    let call = format!("catalogService/{method}");
                    self.pause(
                        wait,
                        &call,
                        || {
                            format!(
                                "SecuTix was preparing the catalogue (in_progress), {} before asking again",
                                human(wait)
                            )
                        },
                        None,
                    )
                    .await?;
                    wait = crate::backoff::grow(wait, req.max_backoff);
                }
                CallStatus::Failed { code, detail } => {
                    return Err(CallError::Status {
                        call: format!("catalogService/{method}"),
                        code,
                        detail,
                    });
                }
            }
        }
    }
}

/// Decodes the body of a small call: the envelope and the result object (REST: the JSON body; SOAP: the
/// `<return>` element as a JSON value, field names as in REST). A status other than `success` is an error.
/// An answer holding more than `max_values` values is refused ([`CallError::AnswerTooLarge`]).
pub fn decode_small(
    transport: Transport,
    service: Service,
    method: &str,
    bytes: &[u8],
    max_values: usize,
) -> Result<(Envelope, Value), CallError> {
    let (env, v) = decode_result(transport, method, bytes, max_values)?;
    check_status(service, method, env, v)
}

/// Decodes the body of a small call into its envelope and result object, without judging `statusCode`.
/// At most `max_values` values (see [`SMALL_VALUES_PER_MIB`]) are built; more is
/// [`CallError::AnswerTooLarge`].
pub fn decode_result(
    transport: Transport,
    method: &str,
    bytes: &[u8],
    max_values: usize,
) -> Result<(Envelope, Value), CallError> {
    let too_many = || CallError::AnswerTooLarge {
        call: method.to_owned(),
        limit_mib: (max_values / SMALL_VALUES_PER_MIB) as u64,
    };
    Ok(match transport {
        Transport::Rest => {
            let v = json::parse_value(method, bytes, max_values).map_err(|e| match e {
                ParseError::TooManyValues { .. } => too_many(),
                other => CallError::Parse(other),
            })?;
            let text = |k: &str| {
                v.get(k).and_then(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .or_else(|| (!x.is_null()).then(|| x.to_string()))
                })
            };
            let env = Envelope {
                status_code: text("statusCode"),
                request_id: v
                    .get("requestId")
                    .and_then(|x| x.as_i64().or_else(|| x.as_str()?.parse().ok())),
                status_detail: text("statusDetail"),
                ..Envelope::default()
            };
            (env, v)
        }
        Transport::Soap => {
            let r = xml::parse_soap_result(method, bytes, max_values).map_err(|e| match e {
                ParseError::TooManyValues { .. } => too_many(),
                other => CallError::Parse(other),
            })?;
            (r.envelope, r.result)
        }
    })
}

/// Accepts `statusCode: success`; turns `in_progress` and error codes into [`CallError::Status`].
pub fn check_status(service: Service, method: &str, env: Envelope, v: Value) -> Result<(Envelope, Value), CallError> {
    match env.status() {
        CallStatus::Success => Ok((env, v)),
        CallStatus::InProgress { .. } => Err(CallError::Status {
            call: format!("{}/{method}", service.rest_name()),
            code: "in_progress".into(),
            detail: Some("SecuTix is preparing the answer; it will be asked again on the next run".into()),
        }),
        CallStatus::Failed { code, detail } => Err(CallError::Status {
            call: format!("{}/{method}", service.rest_name()),
            code,
            detail,
        }),
    }
}

/// Parses a catalogue body (blocking; runs on a blocking thread).
fn parse_catalogue_body(
    transport: Transport,
    method: CatalogueMethod,
    mut body: Body,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    spool_dir: Option<PathBuf>,
) -> Result<Envelope, CallError> {
    let call = method.as_str();
    let io = |e: std::io::Error| {
        CallError::Parse(ParseError::Io {
            call: call.to_owned(),
            source: e,
        })
    };
    let reader = body.reader().map_err(io)?;
    match (transport, method) {
        (Transport::Rest, _) => {
            let mut env = json::parse_catalog_reader(call, reader, ctx, sink)?;
            if let Some(xml) = env.catalog_xml.take() {
                let inner = xml::parse_catalog_document(call, xml.as_bytes(), ctx, sink)?;
                env.seasons = inner.seasons;
                env.products = inner.products;
                env.implausible.merge(inner.implausible);
            }
            Ok(env)
        }
        (Transport::Soap, CatalogueMethod::GetCatalogDetailed) => {
            Ok(xml::parse_catalog_soap(call, reader, ctx, sink, None)?)
        }
        (Transport::Soap, CatalogueMethod::GetCatalog) => {
            let mut doc = match &spool_dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(io)?;
            let mut env = {
                let mut w = std::io::BufWriter::new(&mut doc);
                let env = xml::parse_catalog_soap(call, reader, ctx, sink, Some(&mut w))?;
                w.flush().map_err(io)?;
                env
            };
            if env.status() == CallStatus::Success && env.has_catalog {
                doc.rewind().map_err(io)?;
                let inner = xml::parse_catalog_document(call, BufReader::new(doc), ctx, sink)?;
                env.seasons = inner.seasons;
                env.products = inner.products;
                env.implausible.merge(inner.implausible);
            }
            Ok(env)
        }
    }
}

fn xml_param(out: &mut String, name: &str, v: &Value) {
    use quick_xml::escape::escape;
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|i| xml_param(out, name, i)),
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                xml_param(out, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s.as_str()))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

fn body_head(body: &mut Body) -> Vec<u8> {
    match &mut body.data {
        BodyData::Memory(v) => v.iter().take(1024).copied().collect(),
        BodyData::File(f) => {
            let mut buf = vec![0u8; 1024];
            let n = f.rewind().and_then(|_| std::io::Read::read(f, &mut buf)).unwrap_or(0);
            buf.truncate(n);
            buf
        }
    }
}

fn first_byte(head: &[u8]) -> Option<u8> {
    trimmed(head).first().copied()
}

fn looks_like_xml(head: &[u8]) -> bool {
    first_byte(head) == Some(b'<')
}

fn looks_like_html(head: &[u8]) -> bool {
    let t = String::from_utf8_lossy(&trimmed(head)[..trimmed(head).len().min(64)]).to_ascii_lowercase();
    t.starts_with("<!doctype html") || t.starts_with("<html") || t.starts_with("<head") || t.starts_with("<body")
}
