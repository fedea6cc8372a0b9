//! A SecuTix simulator on loopback: the catalogue and availability services of a fictional venue, over
//! REST and SOAP, at SecuTix's paths. Used by the demo, the benchmarks and the tests.
//!
//! What it serves (paths as `secutix::Client` builds them, any `v1_NN` version):
//! - `POST /tnseb/backend-apis/catalogService/v1_33/{getPOSConfig, getCatalogDetailed, getCatalog,
//!   isCatalogServiceAlive}` and `POST /tnseb/backend-apis/availabilityService/v1_33/{getUpdatedAvailabilities,
//!   getEventAvailability, getPerformanceAvailability, getProductAvailability}`, JSON bodies;
//! - the same methods over SOAP 1.1 at `/tnseb/external-remoting/com.secutix.service.realtime.<pkg>.v1_33.
//!   <Service>.webservice`, answered the JAX-WS way (`<ns2:methodResponse><return>…`);
//! - `POST /tnai/backend-apis/v1/auth`, the token endpoint.
//!
//! The catalogue is a [`Generator`] catalogue, rendered once per format and then served byte-identical
//! (from memory, or streamed from a temporary file when it is large). With `in_progress_once`, the first
//! catalogue call answers `statusCode: in_progress` with a `requestId`, as SecuTix does when the catalogue
//! takes more than 30 s to build; the next call succeeds.
//!
//! Availability follows contract B (see `CONTRACTS.md`): every `availability_change_every` (on tokio's
//! clock, so tests can pause time) a deterministic share of the products "sells" seats: their performances'
//! remaining seats move and their `lastUpdate` becomes that step's time. Levels are `GOOD`, `LIMITED`
//! (remaining ≤ `alertRatio` % of the quota), `SOLD_OUT`, `OUTSIDE_SALE_PERIOD` (before the sale opens,
//! after it closes, past, or product suspended) and `NOT_VISIBLE` (cancelled performance). Everything is a
//! function of the seed and the step, so two simulators with the same options answer the same.
//!
//! Every call is counted per method ([`Simulator::calls`]). With a `secret`, calls must carry a JWT signed
//! with it (REST) or a UsernameToken with it as the password (SOAP), as a real institution checks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Id, State};
use crate::generator::{Generator, GeneratorOptions, ProductPlan, hash3, soap_response};
use crate::secutix::wire::WireDate;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// Products in the catalogue.
    pub products: usize,
    /// Performances per product.
    pub performances_per_product: usize,
    /// Seed of the catalogue and of the availability changes.
    pub seed: u64,
    /// The first catalogue call answers `in_progress` (with a `requestId`); the next ones succeed.
    pub in_progress_once: bool,
    /// How often availabilities move (tokio time).
    pub availability_change_every: Duration,
    /// Share of the products (0.0–1.0) whose availability moves at each step.
    pub changed_share: f64,
    /// Calendar time at start (the catalogue's dates are laid out around it); `None` = the system clock.
    /// Tests on paused time pass the start of their `TokioClock`.
    pub now: Option<DateTime<Utc>>,
    /// Address to listen on; `None` = `127.0.0.1:0` (a free port).
    pub listen: Option<SocketAddr>,
    /// When set, calls must be authenticated with this secret (JWT for REST, UsernameToken for SOAP);
    /// when `None`, any credentials are accepted.
    pub secret: Option<SecretString>,
    /// Catalogue bodies larger than this (bytes) are rendered to a temporary file and streamed from it.
    pub memory_limit: usize,
}

impl Default for SimulatorOptions {
    /// A small venue: 24 products × 6 performances, `in_progress` once, availabilities moving every 5 s.
    fn default() -> Self {
        Self {
            products: 24,
            performances_per_product: 6,
            seed: 1,
            in_progress_once: true,
            availability_change_every: Duration::from_secs(5),
            changed_share: 0.2,
            now: None,
            listen: None,
            secret: None,
            memory_limit: 16 * 1024 * 1024,
        }
    }
}

/// The catalogue responses the simulator renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatalogueBody {
    /// REST `getCatalogDetailed`.
    RestDetailed,
    /// SOAP `getCatalogDetailed`.
    SoapDetailed,
    /// REST `getCatalog` (the XML as a JSON string).
    RestGetCatalog,
    /// SOAP `getCatalog` (the XML escaped in `catalogData`).
    SoapGetCatalog,
}

impl CatalogueBody {
    fn slot(self) -> usize {
        match self {
            CatalogueBody::RestDetailed => 0,
            CatalogueBody::SoapDetailed => 1,
            CatalogueBody::RestGetCatalog => 2,
            CatalogueBody::SoapGetCatalog => 3,
        }
    }
}

/// What the simulator answers for one performance at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerformanceAvailability {
    /// Performance id.
    pub performance_id: Id,
    /// `GOOD`, `LIMITED`, `SOLD_OUT`, `NOT_VISIBLE` or `OUTSIDE_SALE_PERIOD`.
    pub level: &'static str,
    /// Remaining seats.
    pub quantity: u32,
    /// Capacity.
    pub quota: u32,
}

/// A running simulator. [`Simulator::stop`] shuts it down.
pub struct Simulator {
    addr: SocketAddr,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct PerfFacts {
    id: Id,
    product: usize,
    cancelled: bool,
    /// End of the sale for this performance: its own period, the product's, and its start, whichever first.
    sale_end: DateTime<Utc>,
}

struct ProductFacts {
    id: Id,
    state: State,
    sale_start: DateTime<Utc>,
    alert_ratio: f64,
    quota: u32,
    perfs: std::ops::Range<usize>,
}

enum Rendered {
    Memory(Bytes),
    File { path: PathBuf, len: u64 },
}

struct Inner {
    generator: Generator,
    opts: SimulatorOptions,
    started: tokio::time::Instant,
    base_time: DateTime<Utc>,
    calls: Mutex<BTreeMap<String, u64>>,
    in_progress_pending: AtomicBool,
    request_ids: AtomicI64,
    rendered: [OnceCell<Arc<Rendered>>; 4],
    spool: tempfile::TempDir,
    products: Vec<ProductFacts>,
    perfs: Vec<PerfFacts>,
    product_by_id: HashMap<Id, usize>,
    perf_by_id: HashMap<Id, usize>,
}

impl Simulator {
    /// Binds `opts.listen` (default 127.0.0.1:0) and serves on the current tokio runtime.
    pub async fn start(opts: SimulatorOptions) -> std::io::Result<Simulator> {
        let base_time = opts.now.unwrap_or_else(Utc::now);
        let generator = Generator::new(GeneratorOptions::new(
            opts.products,
            opts.performances_per_product,
            opts.seed,
            base_time,
        ));
        let (products, perfs) = facts(generator.plans());
        let product_by_id = products.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let perf_by_id = perfs.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let spool = tempfile::Builder::new().prefix("secutix-simulator-").tempdir()?;
        let inner = Arc::new(Inner {
            generator,
            in_progress_pending: AtomicBool::new(opts.in_progress_once),
            opts: opts.clone(),
            started: tokio::time::Instant::now(),
            base_time,
            calls: Mutex::new(BTreeMap::new()),
            request_ids: AtomicI64::new(4100),
            rendered: Default::default(),
            spool,
            products,
            perfs,
            product_by_id,
            perf_by_id,
        });
        let listener =
            tokio::net::TcpListener::bind(opts.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/tnseb/backend-apis/{service}/{version}/{method}", post(rest))
            .route("/tnseb/external-remoting/{endpoint}", post(soap))
            .route("/tnai/backend-apis/v1/auth", post(token))
            .with_state(inner.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the SecuTix simulator stopped");
            }
        });
        tracing::info!(%addr, products = opts.products, performances = opts.performances_per_product, "SecuTix simulator listening");
        Ok(Simulator {
            addr,
            inner,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: the `secutix.base_url` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls received so far, per method (`getCatalogDetailed`, `getEventAvailability`, `v1/auth`…).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The catalogue it serves.
    pub fn generator(&self) -> &Generator {
        &self.inner.generator
    }

    /// Makes the next catalogue call answer `in_progress` once more.
    pub fn arm_in_progress(&self) {
        self.inner.in_progress_pending.store(true, Ordering::SeqCst);
    }

    /// Renders a catalogue response ahead of the first call (a large one takes a while); returns its size.
    pub async fn prepare(&self, body: CatalogueBody) -> std::io::Result<u64> {
        let r = self.inner.rendered(body).await?;
        Ok(match &*r {
            Rendered::Memory(b) => b.len() as u64,
            Rendered::File { len, .. } => *len,
        })
    }

    /// The simulator's calendar time now (its start time plus tokio time elapsed).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// What it answers now for a performance (`None` for an unknown id).
    pub fn performance_availability(&self, performance_id: Id) -> Option<PerformanceAvailability> {
        let i = *self.inner.perf_by_id.get(&performance_id)?;
        Some(self.inner.availability(i, self.inner.step(), self.inner.now()))
    }

    /// Stops serving; requests in flight finish first.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

fn facts(plans: impl Iterator<Item = ProductPlan>) -> (Vec<ProductFacts>, Vec<PerfFacts>) {
    let mut products = Vec::new();
    let mut perfs = Vec::new();
    for plan in plans {
        let first = perfs.len();
        let index = products.len();
        for p in &plan.performances {
            perfs.push(PerfFacts {
                id: p.id,
                product: index,
                cancelled: p.state.as_ref().is_some_and(State::is_cancelled),
                sale_end: p.sale_end.unwrap_or(plan.sale_end).min(plan.sale_end).min(p.start),
            });
        }
        products.push(ProductFacts {
            id: plan.id,
            state: plan.state.clone(),
            sale_start: plan.sale_start,
            alert_ratio: plan.alert_ratio,
            quota: plan.capacity,
            perfs: first..perfs.len(),
        });
    }
    (products, perfs)
}

// ---------------------------------------------------------------------------------------------------------
// Availability model
// ---------------------------------------------------------------------------------------------------------

impl Inner {
    fn period(&self) -> Duration {
        self.opts.availability_change_every.max(Duration::from_millis(1))
    }

    fn step(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        (elapsed.as_nanos() / self.period().as_nanos()) as u64
    }

    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        self.base_time + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    fn step_time(&self, step: u64) -> DateTime<Utc> {
        let d = self.period().saturating_mul(u32::try_from(step).unwrap_or(u32::MAX));
        self.base_time + chrono::Duration::from_std(d).unwrap_or_default()
    }

    /// True when product `p` sells seats at `step` (step 0 is the initial state of every product).
    fn moves(&self, p: usize, step: u64) -> bool {
        step == 0
            || (hash3(self.opts.seed, 1 + p as u64, step) % 10_000)
                < (self.opts.changed_share.clamp(0.0, 1.0) * 10_000.0) as u64
    }

    /// The last step at or before `step` at which product `p` moved.
    fn last_move(&self, p: usize, step: u64) -> u64 {
        if self.opts.changed_share <= 0.0 {
            return 0;
        }
        let mut s = step;
        while !self.moves(p, s) {
            s -= 1;
        }
        s
    }

    fn availability(&self, perf: usize, step: u64, now: DateTime<Utc>) -> PerformanceAvailability {
        let f = &self.perfs[perf];
        let p = &self.products[f.product];
        let moved = self.last_move(f.product, step);
        let h = hash3(self.opts.seed, f.id as u64, 0xA7A1);
        let base = 0.15 + (h % 1000) as f64 / 1000.0 * 0.95;
        let phase = ((h >> 10) % 628) as f64 / 100.0;
        let speed = 0.3 + ((h >> 20) % 100) as f64 / 100.0;
        let sold = (base + 0.35 * (phase + moved as f64 * speed).sin()).clamp(0.0, 1.0);
        let quota = p.quota;
        let quantity = (f64::from(quota) * (1.0 - sold)).round() as u32;
        let level = if f.cancelled {
            "NOT_VISIBLE"
        } else if p.state != State::Running || now < p.sale_start || now >= f.sale_end {
            "OUTSIDE_SALE_PERIOD"
        } else if quantity == 0 {
            "SOLD_OUT"
        } else if f64::from(quantity) * 100.0 <= p.alert_ratio * f64::from(quota) {
            "LIMITED"
        } else {
            "GOOD"
        };
        PerformanceAvailability {
            performance_id: f.id,
            level,
            quantity,
            quota,
        }
    }

    fn perf_json(&self, a: &PerformanceAvailability) -> Value {
        json!({"performanceId": a.performance_id, "level": a.level, "quantity": a.quantity, "quota": a.quota})
    }

    async fn rendered(&self, body: CatalogueBody) -> std::io::Result<Arc<Rendered>> {
        let cell = &self.rendered[body.slot()];
        cell.get_or_try_init(|| async {
            let generator = self.generator.clone();
            let limit = self.opts.memory_limit;
            let dir = self.spool.path().to_owned();
            tokio::task::spawn_blocking(move || render(&generator, body, limit, &dir))
                .await
                .map_err(std::io::Error::other)?
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    fn count(&self, method: &str) {
        if let Ok(mut c) = self.calls.lock() {
            *c.entry(method.to_owned()).or_default() += 1;
        }
    }

    fn request_id(&self) -> i64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Writes to memory up to `limit` bytes, then moves to a file in `dir`.
struct Spool {
    memory: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)>,
    limit: usize,
    dir: PathBuf,
    len: u64,
}

impl std::io::Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += buf.len() as u64;
        if self.file.is_none() && self.memory.len() + buf.len() > self.limit {
            let (file, path) = tempfile::Builder::new()
                .prefix("catalogue-")
                .tempfile_in(&self.dir)?
                .into_parts();
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
            w.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some((w, path));
        }
        match &mut self.file {
            Some((w, _)) => w.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

fn render(
    generator: &Generator,
    body: CatalogueBody,
    limit: usize,
    dir: &std::path::Path,
) -> std::io::Result<Rendered> {
    use std::io::Write;
    let mut spool = Spool {
        memory: Vec::new(),
        file: None,
        limit,
        dir: dir.to_owned(),
        len: 0,
    };
    match body {
        CatalogueBody::RestDetailed => generator.write_rest_json(&mut spool, None)?,
        CatalogueBody::SoapDetailed => generator.write_soap_xml(&mut spool, None)?,
        CatalogueBody::RestGetCatalog => generator.write_get_catalog_rest(&mut spool, None)?,
        CatalogueBody::SoapGetCatalog => generator.write_get_catalog_soap(&mut spool, None)?,
    }
    spool.flush()?;
    Ok(match spool.file {
        None => Rendered::Memory(Bytes::from(spool.memory)),
        Some((w, path)) => {
            drop(w.into_inner().map_err(|e| e.into_error())?);
            // Kept until the simulator goes: the TempDir removes it.
            let path = path.keep().map_err(|e| e.error)?;
            Rendered::File { path, len: spool.len }
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Rest,
    Soap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceKind {
    Catalog,
    Availability,
}

impl ServiceKind {
    fn class(self) -> &'static str {
        match self {
            ServiceKind::Catalog => "CatalogService",
            ServiceKind::Availability => "AvailabilityService",
        }
    }
}

/// An answer before it is put on the wire.
enum Answer {
    /// A result object (`statusCode`…).
    Result(Value),
    /// A rendered catalogue.
    Catalogue(Arc<Rendered>),
    /// An HTTP error with a text body (REST) or a SOAP fault.
    Error(StatusCode, String),
}

async fn rest(
    AxState(sim): AxState<Arc<Inner>>,
    Path((service, _version, method)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.count(&method);
    let kind = match service.as_str() {
        "catalogService" => ServiceKind::Catalog,
        "availabilityService" => ServiceKind::Availability,
        other => return (StatusCode::NOT_FOUND, format!("no service {other} on this simulator")).into_response(),
    };
    if let Err(why) = check_bearer(&sim, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": why}))).into_response();
    }
    let params: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("the request body is not JSON: {e}")).into_response(),
        }
    };
    let answer = dispatch(&sim, kind, &method, &params, Wire::Rest).await;
    reply(answer, Wire::Rest, kind, &method)
}

/// A JSON response (axum's `Json` without its feature flag).
struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0.to_string()).into_response()
    }
}

async fn soap(AxState(sim): AxState<Arc<Inner>>, Path(endpoint): Path<String>, body: Bytes) -> Response {
    let kind = if endpoint.ends_with(".CatalogService.webservice") {
        ServiceKind::Catalog
    } else if endpoint.ends_with(".AvailabilityService.webservice") {
        ServiceKind::Availability
    } else {
        return (
            StatusCode::NOT_FOUND,
            format!("no web service {endpoint} on this simulator"),
        )
            .into_response();
    };
    let req = match parse_soap_request(&body) {
        Ok(r) => r,
        Err(why) => return fault(StatusCode::BAD_REQUEST, "S:Client", &why),
    };
    sim.count(&req.method);
    if let Some(secret) = &sim.opts.secret
        && req.password.as_deref() != Some(secret.expose_secret())
    {
        return fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "S:Server",
            "Authentication failed: bad UsernameToken",
        );
    }
    let answer = dispatch(&sim, kind, &req.method, &req.params, Wire::Soap).await;
    reply(answer, Wire::Soap, kind, &req.method)
}

async fn token(AxState(sim): AxState<Arc<Inner>>, body: Bytes) -> Response {
    sim.count("v1/auth");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let given = field("secret");
    let key = match &sim.opts.secret {
        Some(s) if s.expose_secret() != given => {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid credentials"}))).into_response();
        }
        Some(s) => SecretString::from(s.expose_secret().to_owned()),
        None => SecretString::from("simulator".to_owned()),
    };
    let operator = field("operator");
    let institution = operator.split('_').next().unwrap_or("SIMU").to_owned();
    match crate::secutix::auth::forge_jwt(
        &institution,
        &operator,
        &field("partner"),
        &key,
        sim.now().timestamp(),
        Duration::from_secs(900),
    ) {
        Ok(t) => Json(json!({"token": t})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

fn check_bearer(sim: &Inner, headers: &HeaderMap) -> Result<(), String> {
    let Some(secret) = &sim.opts.secret else { return Ok(()) };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("missing Bearer token")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    // The simulator's clock may be paused or shifted: expiry is checked against it, not the system's.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        &validation,
    )
    .map_err(|e| format!("invalid token: {e}"))?;
    match data.claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp < sim.now().timestamp() => Err("token expired".into()),
        _ => Ok(()),
    }
}

fn reply(answer: Answer, wire: Wire, kind: ServiceKind, method: &str) -> Response {
    match (answer, wire) {
        (Answer::Result(v), Wire::Rest) => Json(v).into_response(),
        (Answer::Result(v), Wire::Soap) => (
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            soap_response(method, kind.class(), &v),
        )
            .into_response(),
        (Answer::Catalogue(r), _) => {
            let content_type = if wire == Wire::Rest {
                "application/json"
            } else {
                "text/xml; charset=utf-8"
            };
            let (body, len) = match &*r {
                Rendered::Memory(b) => (Body::from(b.clone()), b.len() as u64),
                Rendered::File { path, len } => match std::fs::File::open(path) {
                    Ok(f) => (Body::from_stream(file_chunks(f)), *len),
                    Err(e) => {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("simulator: cannot read the catalogue: {e}"),
                        )
                            .into_response();
                    }
                },
            };
            let mut resp = Response::new(body);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
            resp
        }
        (Answer::Error(status, text), Wire::Rest) => (status, text).into_response(),
        (Answer::Error(status, text), Wire::Soap) => {
            let code = if status.is_client_error() {
                "S:Client"
            } else {
                "S:Server"
            };
            fault(StatusCode::INTERNAL_SERVER_ERROR, code, &text)
        }
    }
}

/// The file in 256 KiB chunks. Reads are synchronous: the file was just written and sits in the page cache,
/// so a read takes microseconds, and (unlike `tokio::fs`, whose reads hop to the blocking pool) paused-time
/// tests never see the runtime idle while a chunk is on its way, which would fire the client's timeouts.
fn file_chunks(file: std::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::try_unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), f)))
    })
}

fn fault(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">",
            "<S:Body><S:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></S:Fault></S:Body></S:Envelope>"
        ),
        code,
        quick_xml::escape::escape(message)
    );
    (status, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn failed(detail: impl Into<String>) -> Answer {
    Answer::Result(json!({"statusCode": "failed", "requestId": null, "statusDetail": detail.into()}))
}

async fn dispatch(sim: &Inner, kind: ServiceKind, method: &str, params: &Value, wire: Wire) -> Answer {
    match (kind, method) {
        (ServiceKind::Catalog, "isCatalogServiceAlive") => {
            Answer::Result(json!({"statusCode": "success", "requestId": null, "statusDetail": null}))
        }
        (ServiceKind::Catalog, "getPOSConfig") => Answer::Result(sim.generator.pos_config_result()),
        (ServiceKind::Catalog, "getCatalogDetailed" | "getCatalog") => {
            if sim.in_progress_pending.swap(false, Ordering::SeqCst) {
                return Answer::Result(
                    json!({"statusCode": "in_progress", "requestId": sim.request_id(), "statusDetail": null}),
                );
            }
            let body = match (method, wire) {
                ("getCatalog", Wire::Rest) => CatalogueBody::RestGetCatalog,
                ("getCatalog", Wire::Soap) => CatalogueBody::SoapGetCatalog,
                (_, Wire::Rest) => CatalogueBody::RestDetailed,
                (_, Wire::Soap) => CatalogueBody::SoapDetailed,
            };
            match sim.rendered(body).await {
                Ok(r) => Answer::Catalogue(r),
                Err(e) => Answer::Error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot render the catalogue: {e}"),
                ),
            }
        }
        (ServiceKind::Availability, _) => availability(sim, method, params),
        (ServiceKind::Catalog, other) => Answer::Error(
            StatusCode::NOT_FOUND,
            format!("catalogService has no method {other} on this simulator"),
        ),
    }
}

fn availability(sim: &Inner, method: &str, params: &Value) -> Answer {
    let pos = params.get("pointOfSalesId").and_then(as_id);
    if pos != Some(sim.generator.pos_id()) {
        return failed(match pos {
            None => "pointOfSalesId is required (posId of getPOSConfig)".to_owned(),
            Some(p) => format!("pointOfSalesId {p} is not a point of sale of this institution"),
        });
    }
    let now = sim.now();
    let step = sim.step();
    let request_id = sim.request_id();
    match method {
        "getUpdatedAvailabilities" => {
            let Some(reference) = params
                .get("referenceDate")
                .and_then(Value::as_str)
                .and_then(WireDate::parse_text)
                .map(|d| d.resolve(sim.generator.options().time_zone))
            else {
                return failed("referenceDate is required (an ISO-8601 date-time)");
            };
            let wanted = ids(params.get("productIds"));
            let tz = sim.generator.options().time_zone;
            let data: Vec<Value> = wanted
                .iter()
                .filter_map(|id| sim.product_by_id.get(id))
                .filter_map(|&p| {
                    let at = sim.step_time(sim.last_move(p, step));
                    (at > reference).then(|| {
                        json!({"productId": sim.products[p].id,
                               "lastUpdate": at.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()})
                    })
                })
                .collect();
            Answer::Result(
                json!({"statusCode": "success", "requestId": request_id, "statusDetail": null, "availabilityUpdateData": data}),
            )
        }
        "getEventAvailability" | "getPerformanceAvailability" => {
            let list: Vec<Value> = ids(params.get("performanceIds"))
                .iter()
                .filter_map(|id| sim.perf_by_id.get(id))
                .map(|&i| sim.perf_json(&sim.availability(i, step, now)))
                .collect();
            let mut out = Map::new();
            out.insert("statusCode".into(), "success".into());
            out.insert("requestId".into(), request_id.into());
            out.insert("statusDetail".into(), Value::Null);
            if method == "getEventAvailability" {
                out.insert("eventAvailabilityData".into(), json!({"eventAvailabilities": list}));
            } else {
                out.insert("performanceAvailabilityData".into(), Value::Array(list));
            }
            Answer::Result(Value::Object(out))
        }
        "getProductAvailability" => {
            let Some(id) = params.get("productId").and_then(as_id) else {
                return failed("productId is required");
            };
            let Some(&p) = sim.product_by_id.get(&id) else {
                return failed(format!("unknown product {id}"));
            };
            let facts = &sim.products[p];
            let perfs: Vec<PerformanceAvailability> =
                facts.perfs.clone().map(|i| sim.availability(i, step, now)).collect();
            let on_sale: Vec<&PerformanceAvailability> = perfs
                .iter()
                .filter(|a| matches!(a.level, "GOOD" | "LIMITED" | "SOLD_OUT"))
                .collect();
            let level = if perfs.iter().all(|a| a.level == "NOT_VISIBLE") {
                "NOT_VISIBLE"
            } else if on_sale.is_empty() {
                "OUTSIDE_SALE_PERIOD"
            } else if on_sale.iter().any(|a| a.level == "GOOD") {
                "GOOD"
            } else if on_sale.iter().any(|a| a.level == "LIMITED") {
                "LIMITED"
            } else {
                "SOLD_OUT"
            };
            let quantity: u32 = on_sale.iter().map(|a| a.quantity).sum();
            let quota: u32 = on_sale.iter().map(|a| a.quota).sum();
            Answer::Result(
                json!({"statusCode": "success", "requestId": request_id, "statusDetail": null,
                "productAvailabilityData": {"productId": facts.id, "level": level, "quantity": quantity, "quota": quota}}),
            )
        }
        other => Answer::Error(
            StatusCode::NOT_FOUND,
            format!("availabilityService has no method {other} on this simulator"),
        ),
    }
}

/// An id sent as a number or a numeric string (SOAP sends text).
fn as_id(v: &Value) -> Option<Id> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// A list of ids: an array, one value (SOAP with one element), or nothing.
fn ids(v: Option<&Value>) -> Vec<Id> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(as_id).collect(),
        Some(v) => as_id(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A SOAP request: the method (the Body's element), its parameters as JSON (text values, repeated
/// elements as arrays), and the UsernameToken password if any.
struct SoapRequest {
    method: String,
    params: Value,
    password: Option<String>,
}

fn parse_soap_request(body: &[u8]) -> Result<SoapRequest, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().expand_empty_elements = true;
    // (local name, children, text)
    let mut stack: Vec<(String, Map<String, Value>, String)> = vec![(String::new(), Map::new(), String::new())];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_owned();
                stack.push((name, Map::new(), String::new()));
            }
            Ok(Event::End(_)) => {
                let (name, map, text) = stack.pop().ok_or("unbalanced XML")?;
                let v = if !map.is_empty() {
                    Value::Object(map)
                } else if text.trim().is_empty() {
                    Value::Null
                } else {
                    Value::String(text.trim().to_owned())
                };
                let parent = &mut stack.last_mut().ok_or("unbalanced XML")?.1;
                match parent.get_mut(&name) {
                    None => {
                        parent.insert(name, v);
                    }
                    Some(Value::Array(a)) => a.push(v),
                    Some(existing) => {
                        let old = existing.take();
                        *existing = Value::Array(vec![old, v]);
                    }
                }
            }
            Ok(Event::Text(t)) => {
                let text = t.xml10_content();
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                let name: String = r.as_ref().to_owned();
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&ch);
                }
            }
            Ok(Event::CData(c)) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&c.into_inner());
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the request is not well-formed XML: {e}")),
        }
        buf.clear();
    }
    let root = stack.pop().map(|f| f.1).unwrap_or_default();
    let envelope = root.get("Envelope").ok_or("the request is not a SOAP Envelope")?;
    let password = envelope
        .pointer("/Header/Security/UsernameToken/Password")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(Value::Object(body)) = envelope.get("Body") else {
        return Err("the SOAP Envelope has no Body".into());
    };
    let (method, params) = body.iter().next().ok_or("the SOAP Body is empty")?;
    let params = match params {
        Value::Object(_) => params.clone(),
        _ => json!({}),
    };
    Ok(SoapRequest {
        method: method.clone(),
        params,
        password,
    })
}
