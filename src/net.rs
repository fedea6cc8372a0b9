//! What the process accepts from the network: the listeners' limits. (What may leave it, and how an answer is
//! shown, is [`crate::http`]'s.)
//!
//! - **Listeners** ([`serve`]): HTTP/1 with a header-read timeout, an idle timeout, a timeout on request
//!   bodies that stop arriving and a cap on open connections, so that idle or slow clients can neither hold
//!   connections forever nor use up the process's open files ([`open_files_warning`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a listener accepts: how many connections, and how long a client may keep one without using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once; a connection beyond it is answered `503` and closed at once.
    pub max_connections: usize,
    /// Time a client has to send a whole request head, from the moment the connection is ready for a
    /// request (opened, or the previous response sent): closes silent and keep-alive connections, and
    /// clients that send their headers a byte at a time.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved for this long while no request is being handled (a client that
    /// stopped reading its response), or a request body that stopped arriving, is closed.
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    /// The defaults of `[control]` in `config/default.toml`.
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Most connections `control.max_connections` may allow.
pub const MAX_CONNECTIONS: usize = 65_536;

/// Longest `header_read_timeout` and `idle_timeout` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Open files the process keeps for itself besides the listener's connections: the store's files, spooled
/// responses, connections to SecuTix and the targets.
pub const FILES_RESERVED: u64 = 256;

/// A warning when the process's limit of open files (`RLIMIT_NOFILE`, systemd's `LimitNOFILE=`) leaves fewer
/// than [`FILES_RESERVED`] files besides `max_connections` connections; `None` when it is enough.
pub fn open_files_warning(max_connections: usize) -> Option<String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let needed = max_connections as u64 + FILES_RESERVED;
    (limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < needed).then(|| {
        format!(
            "the process may open {} files, but control.max_connections ({max_connections}) plus {FILES_RESERVED} for \
             the store and outbound connections needs {needed}: raise LimitNOFILE= in the unit (the shipped units \
             set 8192) or lower control.max_connections",
            limit.rlim_cur
        )
    })
}

/// Serves `router` on `listener` within `limits` until `stop` is cancelled; then stops accepting, lets
/// requests in flight finish and returns when every connection is closed. `name` says which listener it is
/// in logs and refusals (`the control API`).
pub async fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ListenerLimits,
    stop: CancellationToken,
) {
    let limits = ListenerLimits {
        max_connections: limits.max_connections.clamp(1, MAX_CONNECTIONS),
        header_read_timeout: limits.header_read_timeout.clamp(Duration::from_millis(1), MAX_TIMEOUT),
        idle_timeout: limits.idle_timeout.clamp(Duration::from_millis(1), MAX_TIMEOUT),
    };
    let max = limits.max_connections;
    let permits = Arc::new(tokio::sync::Semaphore::new(max));
    let mut refusals = Throttled::new();
    let mut accept_errors = Throttled::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE, ENFILE, ECONNABORTED…: wait a little instead of spinning on the error.
                if let Some(n) = accept_errors.hit() {
                    tracing::warn!(listener = name, error = %e, errors = n, "cannot accept a connection; retrying in 100 ms");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(name, stream, max);
            if let Some(n) = refusals.hit() {
                tracing::warn!(
                    listener = name,
                    max_connections = max,
                    refused = n,
                    "refused connections: the limit of open connections is reached (control.max_connections for the \
                     control API)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, router.clone(), limits, stop.clone(), permit));
    }
    drop(listener);
    // Every connection holds a permit until it is closed.
    let _ = permits.acquire_many(max as u32).await;
}

/// A warning that repeats at most once a minute, with the number of occurrences since the last one.
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn new() -> Self {
        Self { last: None, count: 0 }
    }

    /// Counts one occurrence; `Some(count)` when it is time to log.
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|l| now < l + Duration::from_secs(60)) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Answers a connection beyond the cap with `503` (JSON) and closes it, without waiting for anything.
fn refuse(name: &str, stream: TcpStream, max: usize) {
    let body = serde_json::json!({
        "error": format!(
            "{name} has {max} connections open, the most it accepts; try again in a moment"
        )
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Whatever the client already sent is read first, so that closing sends FIN rather than a reset that
    // could discard the answer.
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.try_write(answer.as_bytes());
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    /// The connection's start, the origin of `last_io_ms`.
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written, or the end of the last request.
    last_io_ms: AtomicU64,
    /// Requests whose handler has not answered yet (their response bodies are not counted: those move
    /// bytes, or the connection is idle).
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = Instant::now().saturating_duration_since(self.start).as_millis();
        self.last_io_ms
            .fetch_max(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn last_io(&self) -> Instant {
        self.start + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }
}

/// Serves one connection; closes it when `limits.idle_timeout` passes with no byte moved and no request
/// being handled; on `stop`, finishes the request in flight and closes.
async fn connection(
    stream: TcpStream,
    router: axum::Router,
    limits: ListenerLimits,
    stop: CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = hyper_util::rt::TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = ConnectionService {
        router,
        activity: activity.clone(),
        body_timeout: limits.idle_timeout,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    let mut check_at = Instant::now() + limits.idle_timeout;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "control connection closed");
                }
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(check_at) => {
                let now = Instant::now();
                if activity.busy.load(Ordering::Relaxed) > 0 {
                    check_at = now + limits.idle_timeout;
                    continue;
                }
                let idle_until = activity.last_io() + limits.idle_timeout;
                if now >= idle_until {
                    tracing::debug!("closing a connection idle for control.idle_timeout");
                    return;
                }
                check_at = idle_until;
            }
        }
    }
}

/// A socket that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper calls it on one connection: counts the requests being handled, and gives each
/// request body a timeout.
#[derive(Clone)]
struct ConnectionService {
    router: axum::Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

/// Marks a request as handled when dropped (answered or abandoned).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The idle time counts from the end of the request, not from its last byte received.
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        use tower::ServiceExt as _;
        let busy = Busy::start(&self.activity);
        let timeout = self.body_timeout;
        let req = req.map(|body| axum::body::Body::new(TimedBody::new(body, timeout)));
        let router = self.router.clone();
        Box::pin(async move {
            let _busy = busy;
            router.oneshot(req).await
        })
    }
}

/// A request body that fails when no byte of it arrives for `timeout`.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The error of a request body that stopped arriving.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the request body arrived for {} (control.idle_timeout)", crate::text::human(*.0))]
pub struct BodyTimeout(Duration);

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
