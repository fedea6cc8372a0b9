//! An in-process HTTP mock server for tests and benchmarks.
//!
//! Why not wiremock everywhere: wiremock serves from its own thread and runtime, so under
//! `tokio::time::pause()` the test's runtime sees no ready I/O while the answer is on its way and jumps
//! its clock to the next timer, firing request timeouts that never happened (measured: 4 of 50 calls).
//! This server runs as a task on the caller's runtime, so loopback I/O is always ready when the runtime
//! looks, and its scripted delays are `tokio::time::sleep`s that paused time fast-forwards exactly.
//! Tests that do not pause time use wiremock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// tokio time at arrival (paused-time aware).
    pub at: tokio::time::Instant,
}

impl Recorded {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Wait before answering (tokio time).
    pub delay: Duration,
    /// Send the body in pieces of this many bytes, this long apart (tokio time).
    pub chunks: Option<(usize, Duration)>,
    /// Send only this many bytes of the body, then hold the connection without sending more.
    pub stall_after: Option<usize>,
    /// Notified once the body, or what `stall_after` lets through, has been handed to the connection.
    pub sent: Option<Arc<tokio::sync::Notify>>,
}

impl Reply {
    /// A reply with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
            chunks: None,
            stall_after: None,
            sent: None,
        }
    }
    /// 200 with a JSON body.
    pub fn json(v: &serde_json::Value) -> Self {
        Self::status(200)
            .header("content-type", "application/json")
            .body(v.to_string())
    }
    /// 200 with an XML body.
    pub fn xml(s: impl Into<String>) -> Self {
        Self::status(200)
            .header("content-type", "text/xml; charset=utf-8")
            .body(s.into())
    }
    /// Sets the body.
    pub fn body(mut self, b: impl Into<Bytes>) -> Self {
        self.body = b.into();
        self
    }
    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    /// Delays the answer.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Streams the body in pieces of `size` bytes, `pause` apart (a slow peer).
    pub fn chunked(mut self, size: usize, pause: Duration) -> Self {
        self.chunks = Some((size.max(1), pause));
        self
    }
    /// Sends the first `n` bytes of the body, then stalls: the connection stays open and nothing more
    /// comes (a peer that hangs mid-answer). The body goes out with chunked encoding, so the client cannot
    /// tell from the headers.
    pub fn stall_after(mut self, n: usize) -> Self {
        self.stall_after = Some(n);
        self
    }
    /// Notifies `sent` once the body (or, with [`Reply::stall_after`], its first bytes) has been handed to
    /// the connection: a test can act at that exact point (kill the client, say).
    pub fn notify_sent(mut self, sent: Arc<tokio::sync::Notify>) -> Self {
        self.sent = Some(sent);
        self
    }

    /// The response body: whole, or a stream when the reply is chunked, stalls or reports progress.
    fn into_body(self) -> axum::body::Body {
        if self.chunks.is_none() && self.stall_after.is_none() && self.sent.is_none() {
            return axum::body::Body::from(self.body);
        }
        let limit = self.stall_after.unwrap_or(usize::MAX).min(self.body.len());
        let (size, pause) = self.chunks.unwrap_or((self.body.len().max(1), Duration::ZERO));
        let state = (self.body, 0usize, self.sent, self.stall_after.is_some());
        let stream = futures_util::stream::unfold(state, move |(body, offset, sent, stall)| async move {
            if offset >= limit {
                // Polled again after the last piece: the connection has everything we meant to send.
                if let Some(n) = &sent {
                    n.notify_one();
                }
                if stall {
                    std::future::pending::<()>().await;
                }
                return None;
            }
            if offset > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let end = (offset + size).min(limit);
            let piece = body.slice(offset..end);
            Some((Ok::<_, std::io::Error>(piece), (body, end, sent, stall)))
        });
        axum::body::Body::from_stream(stream)
    }
}

type Handler = Box<dyn FnMut(&Recorded) -> Option<Reply> + Send>;

struct Route {
    method: Option<Method>,
    path: String,
    prefix: bool,
    queue: VecDeque<Reply>,
    /// Answers when the queue is empty.
    fallback: Option<Handler>,
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    requests: Vec<Recorded>,
}

/// The mock server. Dropping it does not stop the task; [`MockHttp::stop`] does.
#[derive(Clone)]
pub struct MockHttp {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl MockHttp {
    /// Starts on 127.0.0.1, port 0, on the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Self::serve(listener)
    }

    /// Serves on `listener`, on the current runtime. A test can keep a port bound without listening
    /// (`tokio::net::TcpSocket::bind`: connections are refused, a server that is down) and serve on it
    /// later (`TcpSocket::listen`: the server is back).
    pub fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            async move { answer(st, method, uri, headers, body).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            task: Arc::new(task),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues replies for `method path` (exact path, query ignored), answered in order; the last one is
    /// repeated when the queue runs out.
    pub fn on(&self, method: &str, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.add(method, path, false, replies.into_iter().collect(), None);
    }

    /// Answers `method path*` (path prefix) with a function of the request; `None` means 404.
    pub fn handle(&self, method: &str, prefix: &str, f: impl FnMut(&Recorded) -> Option<Reply> + Send + 'static) {
        self.add(method, prefix, true, VecDeque::new(), Some(Box::new(f)));
    }

    fn add(&self, method: &str, path: &str, prefix: bool, queue: VecDeque<Reply>, fallback: Option<Handler>) {
        let method = if method == "*" {
            None
        } else {
            Some(Method::from_bytes(method.as_bytes()).expect("method"))
        };
        let mut st = self.state.lock().expect("mock state");
        st.routes
            .retain(|r| !(r.method == method && r.path == path && r.prefix == prefix));
        st.routes.push(Route {
            method,
            path: path.to_owned(),
            prefix,
            queue,
            fallback,
        });
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("mock state").requests.clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.uri.starts_with(prefix))
            .collect()
    }

    /// Forgets recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().expect("mock state").requests.clear();
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn answer(st: Arc<Mutex<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let rec = Recorded {
        method: method.clone(),
        uri: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers,
        body,
        at: tokio::time::Instant::now(),
    };
    let reply = {
        let mut st = st.lock().expect("mock state");
        st.requests.push(rec.clone());
        let path = uri.path();
        let route = st.routes.iter_mut().rev().find(|r| {
            r.method.as_ref().is_none_or(|m| *m == method)
                && if r.prefix {
                    path.starts_with(&r.path)
                } else {
                    path == r.path
                }
        });
        match route {
            None => None,
            Some(r) => {
                if r.queue.len() > 1 {
                    r.queue.pop_front()
                } else if let Some(f) = r.fallback.as_mut() {
                    r.queue.pop_front().or_else(|| f(&rec))
                } else {
                    r.queue.front().cloned()
                }
            }
        }
    };
    let Some(mut reply) = reply else {
        return (StatusCode::NOT_FOUND, format!("mock: no route for {method} {uri}")).into_response();
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = std::mem::take(&mut reply.headers);
    let mut resp = Response::new(reply.into_body());
    *resp.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}
