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

use crate::catalog::{Id, State};
use crate::fakes::generator::{Generator, GeneratorOptions, ProductPlan, hash3, soap_response};
use crate::secutix::wire::WireDate;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

mod service;
mod state;

#[allow(unused_imports)]
use service::*;
#[allow(unused_imports)]
use state::*;

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

/// Writes to memory up to `limit` bytes, then moves to a file in `dir`.
struct Spool {
    memory: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)>,
    limit: usize,
    dir: PathBuf,
    len: u64,
}
