//! The control API (axum), default `127.0.0.1:8087`.
//!
//! | Route | Auth | What |
//! |---|---|---|
//! | `GET /healthz` | no | liveness: the process answers |
//! | `GET /readyz` | no | 200 when the store is open and the last good import is recent enough, else 503 with why |
//! | `GET /status` | bearer | jobs (last and next runs, errors), catalogue, SecuTix calls against the budget, outbox and dead letters per target, indicator freshness |
//! | `GET /metrics` | bearer | Prometheus text format |
//! | `GET /entries` | bearer | entries with their sync state per target (`?q=`, `?availability=`, `?limit=`, `?offset=`) |
//! | `GET /entries/{id}` | bearer | one entry (external id or product id) with acks, pending and dead operations |
//! | `POST /resync` | bearer | `{"scope": "all" \| "catalogue" \| "availability" \| "product:<id>" \| "push" \| "push --full", "force": bool}` |
//! | `GET /dlq` | bearer | dead letters (`?target=`) |
//! | `POST /dlq/{target}/replay` | bearer | replay all of a target's dead letters |
//! | `POST /dlq/{target}/{id}/replay` | bearer | replay one |
//! | `DELETE /dlq/{target}/{id}` | bearer | drop one |
//! | `GET /public/availability` | no | indicators and booking links for the website's JavaScript; `ETag`, `Cache-Control`, CORS |
//! | `GET /public/availability/{productId}` | no | one product |
//!
//! The public document is built from the stored entries after each plan and served from memory: website
//! visitors never cause SecuTix calls. The bearer token is compared in constant time.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::daemon::App;
use crate::daemon::jobs::{Requested, Trigger};
use crate::merge::{self, Availability, Entry};
use crate::push::{Outbox, StoredEntry};
use crate::store::StoreError;

/// The public availability document and its validators, rebuilt after plans.
#[derive(Debug, Clone, Default)]
pub struct PublicSnapshot {
    /// `/public/availability` body.
    pub body: bytes::Bytes,
    /// Strong ETag of `body`.
    pub etag: String,
    /// One product's body and ETag, by product id.
    pub products: BTreeMap<String, (bytes::Bytes, String)>,
}

/// One product in the public document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicProduct {
    /// SecuTix product id.
    pub product_id: String,
    /// External id.
    pub external_id: String,
    /// On sale now.
    pub on_sale: bool,
    /// Indicator.
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
    /// Start (venue time zone).
    pub start: Option<String>,
    /// On sale now.
    pub on_sale: bool,
    /// Indicator.
    pub availability: Availability,
    /// Booking link per language.
    pub booking_url: BTreeMap<String, String>,
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(bytes).to_hex()[..32])
}

fn public_product(e: &Entry) -> PublicProduct {
    PublicProduct {
        product_id: e.product_id.clone(),
        external_id: e.external_id.clone(),
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

impl PublicSnapshot {
    /// Builds the document from the stored entries (published ones).
    pub fn build(outbox: &Outbox) -> Result<Self, StoreError> {
        let mut products = Vec::new();
        let mut per = BTreeMap::new();
        for e in outbox.entries()? {
            if !e.entry.published {
                continue;
            }
            let p = public_product(&e.entry);
            let body = bytes::Bytes::from(serde_json::to_vec(&p).unwrap_or_default());
            per.insert(p.product_id.clone(), (body.clone(), etag_of(&body)));
            products.push(p);
        }
        let body = bytes::Bytes::from(
            serde_json::to_vec(&json!({ "schema_version": merge::SCHEMA_VERSION, "products": products }))
                .unwrap_or_default(),
        );
        Ok(Self {
            etag: etag_of(&body),
            body,
            products: per,
        })
    }
}

/// The API router.
pub fn router(app: Arc<App>) -> Router {
    let private = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/entries", get(entries))
        .route("/entries/{id}", get(entry))
        .route("/resync", post(resync))
        .route("/dlq", get(dlq_list))
        .route("/dlq/{target}/replay", post(dlq_replay_all))
        .route("/dlq/{target}/{id}/replay", post(dlq_replay))
        .route("/dlq/{target}/{id}", delete(dlq_drop))
        .layer(axum::middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/public/availability", get(public_all).options(preflight))
        .route("/public/availability/{product_id}", get(public_one).options(preflight))
        .merge(private)
        .with_state(app)
}

/// An API error as JSON with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = app.control_token().expose_secret().as_bytes();
    if bool::from(given.as_bytes().ct_eq(expected)) && !expected.is_empty() {
        return next.run(req).await;
    }
    let mut resp = ApiError(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token: send Authorization: Bearer <token> (control.token_file, or \
         <store.path>/control-token)"
            .into(),
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"secutix-sync\""),
    );
    resp
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let max_age = app.config().daemon.catalogue_max_age;
    let now = app.clock.now();
    let last = app.catalogue.state().last_success_at;
    let fresh = last.is_some_and(|t| (now - t).to_std().unwrap_or_default() <= max_age);
    let store_ok = app.store.generation().is_ok();
    let body = json!({
        "ready": fresh && store_ok,
        "store": if store_ok { "open" } else { "failing" },
        "last_good_import": last,
        "catalogue_max_age_secs": max_age.as_secs(),
    });
    let code = if fresh && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The `/status` document.
pub fn status_document(app: &App) -> Value {
    let cfg = app.config();
    let now = app.clock.now();
    let catalogue = app.store.catalog().ok().flatten();
    let history = app.store.import_history(1).unwrap_or_default();
    let last_good = app.store.last_good_import().ok().flatten();
    let avail = crate::availability::AvailabilityStore::new(&app.store).ok();
    let last_poll = avail.as_ref().and_then(|a| a.last_poll().ok().flatten());
    let recent = avail
        .as_ref()
        .and_then(|a| a.recent_changes(1).ok())
        .unwrap_or_default();
    let mut targets = serde_json::Map::new();
    for t in app.targets().iter() {
        let name = t.target.name();
        let pending = app.outbox.pending(name).unwrap_or_default();
        let oldest = pending.iter().map(|p| p.enqueued_at).min();
        let dead = app
            .outbox
            .dead_letters(&[name.to_owned()])
            .map(|d| d.len())
            .unwrap_or(0);
        let get = |m: &std::sync::Mutex<BTreeMap<String, u64>>| {
            m.lock().map(|m| m.get(name).copied().unwrap_or(0)).unwrap_or(0)
        };
        targets.insert(
            name.to_owned(),
            json!({
                "kind": t.target.kind(),
                "enabled": t.enabled,
                "outbox": pending.len(),
                "oldest_pending_since": oldest,
                "dead_letters": dead,
                "delivered_since_start": get(&app.metrics.delivered),
                "failed_attempts_since_start": get(&app.metrics.retried),
            }),
        );
    }
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": app.started_at,
        "now": now,
        "institution": cfg.secutix.institution,
        "transport": format!("{:?}", cfg.secutix.transport).to_lowercase(),
        "jobs": {
            "catalogue": app.catalogue.state(),
            "availability": app.availability.state(),
            "refresh": app.refresh.state(),
        },
        "catalogue": {
            "generation": catalogue.as_ref().map(|c| c.meta.generation),
            "imported_at": catalogue.as_ref().and_then(|c| c.meta.imported_at),
            "products": catalogue.as_ref().map(|c| c.meta.live),
            "tombstones": catalogue.as_ref().map(|c| c.meta.tombstones),
            "last_import": history.first(),
            "last_good_import_at": last_good.map(|r| r.finished_at),
        },
        "secutix": {
            "calls_this_month": app.store.calls_in_month(now),
            "calls_today": app.store.calls_on_day(now),
            "monthly_call_budget": cfg.availability.monthly_call_budget,
            "bytes_this_month": app.store.bytes_in_month(now),
        },
        "availability": {
            "last_poll": last_poll,
            "last_change_at": recent.first().map(|c| c.at),
        },
        "targets": targets,
    })
}

async fn status(State(app): State<Arc<App>>) -> Json<Value> {
    Json(status_document(&app))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    use std::fmt::Write;
    let now = app.clock.now();
    let cfg = app.config();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(
            out,
            "# HELP secutix_sync_{name} {help}\n# TYPE secutix_sync_{name} gauge"
        );
        for (labels, v) in samples {
            let _ = writeln!(out, "secutix_sync_{name}{labels} {v}");
        }
    };
    let cat = app.store.catalog().ok().flatten();
    gauge("up", "1 while the daemon runs.", vec![(String::new(), 1.0)]);
    gauge(
        "catalogue_products",
        "Products in the catalogue in force, by state.",
        vec![
            (
                "{state=\"live\"}".into(),
                cat.as_ref().map_or(0.0, |c| c.meta.live as f64),
            ),
            (
                "{state=\"tombstone\"}".into(),
                cat.as_ref().map_or(0.0, |c| c.meta.tombstones as f64),
            ),
        ],
    );
    let last = app
        .catalogue
        .state()
        .last_success_at
        .map_or(0.0, |t| t.timestamp() as f64);
    gauge(
        "catalogue_last_success_timestamp_seconds",
        "End of the last good import.",
        vec![(String::new(), last)],
    );
    gauge(
        "secutix_calls_month",
        "SecuTix calls this month (venue time zone).",
        vec![(String::new(), app.store.calls_in_month(now) as f64)],
    );
    gauge(
        "secutix_call_budget_month",
        "Configured monthly SecuTix call budget.",
        vec![(String::new(), cfg.availability.monthly_call_budget as f64)],
    );
    let jobs: Vec<(String, f64)> = [
        ("catalogue", &app.catalogue),
        ("availability", &app.availability),
        ("refresh", &app.refresh),
    ]
    .iter()
    .map(|(n, j)| {
        (
            format!("{{job=\"{n}\"}}"),
            if j.state().running.is_some() { 1.0 } else { 0.0 },
        )
    })
    .collect();
    gauge("job_running", "1 while the job runs.", jobs);
    let failures: Vec<(String, f64)> = [("catalogue", &app.catalogue), ("availability", &app.availability)]
        .iter()
        .map(|(n, j)| (format!("{{job=\"{n}\"}}"), f64::from(j.state().consecutive_failures)))
        .collect();
    gauge("job_consecutive_failures", "Failed runs in a row.", failures);
    let mut depth = Vec::new();
    let mut dead = Vec::new();
    for t in app.targets().iter() {
        let n = t.target.name();
        depth.push((format!("{{target=\"{n}\"}}"), app.outbox.depth(n).unwrap_or(0) as f64));
        dead.push((
            format!("{{target=\"{n}\"}}"),
            app.outbox.dead_letters(&[n.to_owned()]).map(|d| d.len()).unwrap_or(0) as f64,
        ));
    }
    gauge("outbox_depth", "Operations waiting to be sent, per target.", depth);
    gauge("dead_letters", "Operations that failed for good, per target.", dead);
    for (metric, help, m) in [
        (
            "push_delivered_total",
            "Operations acknowledged since start.",
            &app.metrics.delivered,
        ),
        (
            "push_failed_attempts_total",
            "Failed attempts since start.",
            &app.metrics.retried,
        ),
        (
            "push_dead_total",
            "Operations moved to dead letters since start.",
            &app.metrics.dead,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP secutix_sync_{metric} {help}\n# TYPE secutix_sync_{metric} counter"
        );
        for (target, v) in m.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "secutix_sync_{metric}{{target=\"{target}\"}} {v}");
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct EntriesQuery {
    q: Option<String>,
    availability: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

fn sync_state(app: &App, external_id: &str, hash: &str) -> Value {
    let mut out = serde_json::Map::new();
    for t in app.targets().iter() {
        let name = t.target.name();
        let ack = app.outbox.acked(name, external_id).ok().flatten();
        let pending = app.outbox.pending_item(name, external_id).ok().flatten();
        let state = if pending.is_some() {
            "pending"
        } else if app.outbox.is_dead(name, external_id).unwrap_or(false) {
            "dead"
        } else if ack.as_ref().is_some_and(|a| a.content_hash == hash) {
            "synced"
        } else if ack.is_none() {
            "not_sent"
        } else {
            "outdated"
        };
        out.insert(name.to_owned(), json!(state));
    }
    Value::Object(out)
}

async fn entries(State(app): State<Arc<App>>, Query(q): Query<EntriesQuery>) -> Result<Json<Value>, ApiError> {
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut rows = Vec::new();
    let mut total = 0usize;
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(100).min(1000));
    for StoredEntry { content_hash, entry } in app.outbox.entries()? {
        if let Some(n) = &needle {
            let hay = format!(
                "{} {} {:?}",
                entry.external_id,
                entry.product_code.clone().unwrap_or_default(),
                entry.title.0
            )
            .to_lowercase();
            if !hay.contains(n) {
                continue;
            }
        }
        if let Some(a) = &q.availability
            && entry.availability.status.as_str() != a
        {
            continue;
        }
        total += 1;
        if total <= offset || rows.len() >= limit {
            continue;
        }
        rows.push(json!({
            "external_id": entry.external_id,
            "title": entry.title,
            "published": entry.published,
            "on_sale": entry.on_sale,
            "availability": entry.availability,
            "next_performance": entry.next_performance.as_ref().and_then(|n| n.start.clone()),
            "targets": sync_state(&app, &entry.external_id, &content_hash),
        }));
    }
    Ok(Json(json!({ "total": total, "offset": offset, "entries": rows })))
}

fn external_id_of(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_digit()) {
        merge::external_id(id.parse().unwrap_or_default())
    } else {
        id.to_owned()
    }
}

async fn entry(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let external_id = external_id_of(&id);
    let Some(stored) = app.outbox.entry(&external_id)? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no entry {external_id}; see GET /entries"),
        ));
    };
    let mut targets = serde_json::Map::new();
    for t in app.targets().iter() {
        let name = t.target.name();
        targets.insert(
            name.to_owned(),
            json!({
                "state": sync_state(&app, &external_id, &stored.content_hash)[name],
                "acked": app.outbox.acked(name, &external_id)?,
                "pending": app.outbox.pending_item(name, &external_id)?,
                "dead_letters": app.outbox.dead_letters(&[name.to_owned()])?.into_iter().filter(|d| d.item.external_id == external_id).collect::<Vec<_>>(),
            }),
        );
    }
    Ok(Json(
        json!({ "content_hash": stored.content_hash, "entry": stored.entry, "targets": targets }),
    ))
}

#[derive(Debug, Deserialize)]
struct ResyncBody {
    scope: String,
    #[serde(default)]
    force: bool,
}

async fn resync(State(app): State<Arc<App>>, Json(body): Json<ResyncBody>) -> Result<Response, ApiError> {
    let scope = body.scope.trim();
    let manual = |product| Trigger::Manual {
        force: body.force,
        product,
    };
    let answer = |job: &str, r: Requested| {
        let code = match r {
            Requested::Accepted { .. } => StatusCode::ACCEPTED,
            Requested::AlreadyRunning { .. } => StatusCode::CONFLICT,
        };
        let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
        v["job"] = json!(job);
        if code == StatusCode::CONFLICT {
            v["message"] = json!(format!("{job} is already running; this request is merged into it"));
        }
        (code, Json(v)).into_response()
    };
    Ok(match scope {
        "catalogue" => answer("catalogue", app.catalogue.request(manual(None))),
        "availability" => answer("availability", app.availability.request(manual(None))),
        "all" => {
            // The catalogue run plans every entry when it ends; availability follows on its own.
            let r = app.catalogue.request(manual(None));
            let _ = app.availability.request(manual(None));
            answer("catalogue", r)
        }
        "push" => answer(
            "refresh",
            app.refresh.request(Trigger::Manual {
                force: false,
                product: None,
            }),
        ),
        "push --full" | "push-full" | "full-push" => answer(
            "refresh",
            app.refresh.request(Trigger::Manual {
                force: true,
                product: None,
            }),
        ),
        s if s.starts_with("product:") => {
            let id: i64 = s["product:".len()..].trim().parse().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{s:?}: expected product:<SecuTix product id>"),
                )
            })?;
            // Fresh availability for this product; the poll plans it.
            answer("availability", app.availability.request(manual(Some(id))))
        }
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown scope {other:?}: use all, catalogue, availability, product:<id>, push or \"push --full\""
                ),
            ));
        }
    })
}

#[derive(Debug, Deserialize)]
struct DlqQuery {
    target: Option<String>,
}

fn target_names(app: &App, only: Option<&str>) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = app.targets().iter().map(|t| t.target.name().to_owned()).collect();
    match only {
        Some(t) if names.iter().any(|n| n == t) => Ok(vec![t.to_owned()]),
        Some(t) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no target {t:?}; targets: {}", names.join(", ")),
        )),
        None => Ok(names),
    }
}

async fn dlq_list(State(app): State<Arc<App>>, Query(q): Query<DlqQuery>) -> Result<Json<Value>, ApiError> {
    let names = target_names(&app, q.target.as_deref())?;
    Ok(Json(json!({ "dead_letters": app.outbox.dead_letters(&names)? })))
}

fn push_error(e: crate::push::PushError) -> ApiError {
    match e {
        crate::push::PushError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn dlq_replay_all(State(app): State<Arc<App>>, Path(target): Path<String>) -> Result<Json<Value>, ApiError> {
    target_names(&app, Some(&target))?;
    let (replayed, superseded) = app.outbox.replay(&target, None).map_err(push_error)?;
    app.wake_workers();
    Ok(Json(json!({ "replayed": replayed, "superseded": superseded })))
}

async fn dlq_replay(
    State(app): State<Arc<App>>,
    Path((target, id)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    target_names(&app, Some(&target))?;
    let (replayed, superseded) = app.outbox.replay(&target, Some(id)).map_err(push_error)?;
    app.wake_workers();
    Ok(Json(json!({ "replayed": replayed, "superseded": superseded })))
}

async fn dlq_drop(
    State(app): State<Arc<App>>,
    Path((target, id)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    target_names(&app, Some(&target))?;
    let dl = app.outbox.drop_dead_letter(&target, id).map_err(push_error)?;
    Ok(Json(json!({ "dropped": dl })))
}

fn cors(app: &App, req_headers: &HeaderMap, resp: &mut Response) {
    let origin = req_headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin
        && app
            .config()
            .control
            .cors_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == o || allowed == "*")
        && let Ok(v) = HeaderValue::from_str(o)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    }
}

fn cached(app: &App, headers: &HeaderMap, body: bytes::Bytes, etag: &str) -> Response {
    let max_age = app.config().control.public_max_age.as_secs();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    cors(app, headers, &mut resp);
    resp
}

async fn public_all(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let snap = app.public();
    cached(&app, &headers, snap.body.clone(), &snap.etag)
}

async fn public_one(State(app): State<Arc<App>>, Path(product_id): Path<String>, headers: HeaderMap) -> Response {
    let snap = app.public();
    match snap.products.get(&product_id) {
        Some((body, etag)) => cached(&app, &headers, body.clone(), etag),
        None => {
            let mut resp = ApiError(
                StatusCode::NOT_FOUND,
                format!("no product {product_id} on sale or listed"),
            )
            .into_response();
            cors(&app, &headers, &mut resp);
            resp
        }
    }
}

async fn preflight(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(&app, &headers, &mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("If-None-Match"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}
