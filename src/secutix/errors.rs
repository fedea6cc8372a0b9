//! What a SecuTix call can fail with ([`CallError`]), each naming the method, what failed and what to do; which failures are worth retrying.

#[allow(unused_imports)]
use super::*;

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
