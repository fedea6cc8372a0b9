//! The control API (axum), default `127.0.0.1:8087`, and the documents it serves.
//!
//! | Route | Auth | What |
//! |---|---|---|
//! | `GET /healthz` | no | liveness: the process answers |
//! | `GET /readyz` | no | 200 when the store answers and the last good import is recent enough, else 503 with why |
//! | `GET /status` | bearer | jobs (last and next runs, counts, errors), catalogue, SecuTix calls against the budget, outbox and dead letters per target, indicator freshness |
//! | `GET /metrics` | bearer | Prometheus text format |
//! | `GET /entries` | bearer | entries with their sync state per target (`?q=`, `?availability=`, `?limit=`, `?offset=`) |
//! | `GET /entries/{id}` | bearer | one entry (external id or product id) with acks, pending and dead operations |
//! | `POST /resync` | bearer | `{"scope": "all" \| "catalogue" \| "availability" \| "product:<id>" \| "push" \| "push --full", "force": bool}` |
//! | `GET /push/plan` | bearer | dry run of a push: what each target would receive (`?target=`); writes and sends nothing |
//! | `GET /passculture/bookings/{token}` | bearer | a pass Culture booking (contremarque) for the box office (`?target=`, `?lang=fr\|en`) |
//! | `POST /passculture/bookings/{token}/{use\|keep\|cancel}` | bearer | validate it, undo that, or cancel it; the same JSON outcome |
//! | `GET /dlq` | bearer | dead letters (`?target=`) |
//! | `POST /dlq/{target}/replay` | bearer | replay all of a target's dead letters |
//! | `POST /dlq/{target}/{id}/replay` | bearer | replay one |
//! | `DELETE /dlq/{target}/{id}` | bearer | drop one |
//! | `GET /public/availability` | no | indicators and booking links for the website's JavaScript; `ETag`, `Cache-Control`, CORS |
//! | `GET /public/availability/{productId}` | no | one product |
//!
//! The public document is built from the stored entries (then, after each plan, updated for the entries it
//! changed), kept in a temporary file of the store folder and served from there: website visitors never
//! cause SecuTix calls, and a large venue's document does not sit in memory. The bearer token is compared in constant time.
//!
//! [`status_document`] and [`entry_document`] also work without a running daemon (the CLI reads the store
//! directly when no daemon answers), so online and offline output have one shape.
//!
//! Every error is JSON, `{"error": "…"}`: the handlers' own, and the framework's rejections (a malformed
//! query or body, a wrong content type, a body over [`MAX_REQUEST_BODY`], an unknown route or method), which
//! [`json_errors`] rewrites. The listener's limits (connections, timeouts) are [`crate::net::serve`]'s.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::daemon::documents::{
    EntriesError, EntriesQuery, ResyncRequest, entries_document, entry_document, external_id_of, plan_document,
};
use crate::daemon::jobs::{JobState, Requested, Trigger};
use crate::daemon::status::freshness;
use crate::daemon::{App, Metrics};
use crate::public::availability::{default_public_body, etag_of};
use crate::store::StoreError;
use crate::targets::passculture::contremarque::{self, Action, ContremarqueError, Lang};

/// Largest request body the control API reads (`POST /resync` sends a few bytes).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// The API router.
pub fn router(app: Arc<App>) -> Router {
    let private = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/entries", get(entries))
        .route("/entries/{id}", get(entry))
        .route("/resync", post(resync))
        .route("/push/plan", get(push_plan))
        .route("/passculture/bookings/{token}", get(booking_lookup))
        .route("/passculture/bookings/{token}/{action}", post(booking_action))
        .route("/dlq", get(dlq_list))
        .route("/dlq/{target}/replay", post(dlq_replay_all))
        .route("/dlq/{target}/{id}/replay", post(dlq_replay))
        .route("/dlq/{target}/{id}", delete(dlq_drop))
        .layer(axum::middleware::from_fn_with_state(app.clone(), require_token));
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/public/availability", get(public_all).options(preflight))
        .route("/public/availability/{product_id}", get(public_one).options(preflight))
        .merge(private)
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(app);
    // Around the whole router (not route by route), so that it sees the final answers: a 405 with its
    // `Allow` header, the fallback's 404.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(json_errors))
}

/// An unknown route: a JSON 404 (instead of the framework's empty one).
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; the routes are listed in the README's Control API section",
            uri.path()
        ),
    )
}

/// Rewrites an error answer that is not JSON (the framework's rejections: text, or an empty body) as
/// `{"error": "…"}`, with what to do where the framework's text does not say it.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // The framework's messages are one line; anything longer is cut.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let allowed = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("another method")
        .to_owned();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}; use {allowed}"),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "{method} {path}: the request body is larger than the control API accepts ({} KiB){}",
            MAX_REQUEST_BODY / 1024,
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            format!("{method} {path}: {text}; send the body as JSON with Content-Type: application/json")
        }
        _ if text.is_empty() => format!(
            "{method} {path}: {}",
            status.canonical_reason().unwrap_or("the request failed")
        ),
        _ => format!("{method} {path}: {text}"),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(json!({ "error": message }).to_string()))
}

/// An API error as JSON with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<EntriesError> for ApiError {
    fn from(e: EntriesError) -> Self {
        match e {
            EntriesError::BadFilter(m) => ApiError(StatusCode::BAD_REQUEST, m),
            EntriesError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// True when `header` (an `Authorization` value) carries `expected` as a bearer token. Constant time in the
/// token's content; an empty expected token matches nothing.
pub fn bearer_matches(header: Option<&str>, expected: &str) -> bool {
    let given = header
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .unwrap_or("")
        .trim();
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if bearer_matches(header, app.control_token().expose_secret()) {
        return next.run(req).await;
    }
    let mut resp = ApiError(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token: send Authorization: Bearer <token> (control.token, control.token_file, or \
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
    let reason = match (store_ok, last, fresh) {
        (false, _, _) => Some("the store does not answer".to_owned()),
        (_, None, _) => Some("no good catalogue import yet".to_owned()),
        (_, Some(t), false) => Some(format!(
            "the last good import ({t}) is older than daemon.catalogue_max_age ({})",
            crate::text::human(max_age)
        )),
        _ => None,
    };
    let body = json!({
        "ready": reason.is_none(),
        "reason": reason,
        "store": if store_ok { "open" } else { "failing" },
        "last_good_import": last,
        "catalogue_max_age_secs": max_age.as_secs(),
    });
    let code = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn status(State(app): State<Arc<App>>) -> Json<Value> {
    Json(app.status())
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
    let one = |v: f64| vec![(String::new(), v)];
    let cat = app.store.catalog().ok().flatten();
    gauge("up", "1 while the daemon runs.", one(1.0));
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
    let ts = |t: Option<DateTime<Utc>>| t.map_or(0.0, |t| t.timestamp() as f64);
    gauge(
        "catalogue_last_success_timestamp_seconds",
        "End of the last good import (Unix time; 0 = never).",
        one(ts(app.catalogue.state().last_success_at)),
    );
    gauge(
        "secutix_calls_month",
        "SecuTix calls this month (venue time zone).",
        one(app.store.calls_in_month(now) as f64),
    );
    gauge(
        "secutix_calls_day",
        "SecuTix calls today (venue time zone).",
        one(app.store.calls_on_day(now) as f64),
    );
    gauge(
        "secutix_call_budget_month",
        "Configured monthly SecuTix call budget (availability.monthly_call_budget).",
        one(cfg.availability.monthly_call_budget as f64),
    );
    gauge(
        "secutix_bytes_month",
        "Bytes received from SecuTix this month.",
        one(app.store.bytes_in_month(now) as f64),
    );
    let jobs = [
        ("catalogue", &app.catalogue),
        ("availability", &app.availability),
        ("refresh", &app.refresh),
    ];
    let states: Vec<(&str, JobState)> = jobs.iter().map(|(n, j)| (*n, j.state())).collect();
    let per_job = |f: &dyn Fn(&JobState) -> f64| -> Vec<(String, f64)> {
        states.iter().map(|(n, s)| (format!("{{job=\"{n}\"}}"), f(s))).collect()
    };
    gauge(
        "job_running",
        "1 while the job runs.",
        per_job(&|s| if s.running.is_some() { 1.0 } else { 0.0 }),
    );
    gauge(
        "job_consecutive_failures",
        "Failed runs in a row.",
        per_job(&|s| f64::from(s.consecutive_failures)),
    );
    gauge(
        "job_last_success_timestamp_seconds",
        "End of the job's last successful run (Unix time; 0 = none since start).",
        per_job(&|s| ts(s.last_success_at)),
    );
    gauge(
        "job_next_run_timestamp_seconds",
        "Next scheduled run (Unix time; 0 = none scheduled).",
        per_job(&|s| ts(s.next_run_at)),
    );
    if let Ok(f) = freshness(&app.store, now) {
        gauge(
            "indicator_performances",
            "Future performances by indicator.",
            f.by_status
                .iter()
                .map(|(k, v)| (format!("{{status=\"{k}\"}}"), *v as f64))
                .collect(),
        );
        gauge(
            "indicator_stale_performances",
            "Future performances whose last availability refresh failed.",
            one(f.stale as f64),
        );
        gauge(
            "indicator_oldest_fetch_timestamp_seconds",
            "Oldest availability fetch among future performances (Unix time; 0 = none).",
            one(ts(f.oldest_fetched_at)),
        );
    }
    let mut depth = Vec::new();
    let mut dead = Vec::new();
    for t in &cfg.targets {
        let n = &t.name;
        depth.push((format!("{{target=\"{n}\"}}"), app.outbox.depth(n).unwrap_or(0) as f64));
        dead.push((
            format!("{{target=\"{n}\"}}"),
            app.outbox
                .dead_letters(std::slice::from_ref(n))
                .map(|d| d.len())
                .unwrap_or(0) as f64,
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
        for t in &cfg.targets {
            let _ = writeln!(
                out,
                "secutix_sync_{metric}{{target=\"{}\"}} {}",
                t.name,
                Metrics::get(m, &t.name)
            );
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

async fn entries(State(app): State<Arc<App>>, Query(q): Query<EntriesQuery>) -> Result<Json<Value>, ApiError> {
    Ok(Json(entries_document(&app.config(), &app.outbox, &q)?))
}

async fn entry(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match entry_document(&app.config(), &app.outbox, &id)? {
        Some(doc) => Ok(Json(doc)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no entry {}; see GET /entries", external_id_of(&id)),
        )),
    }
}

async fn resync(State(app): State<Arc<App>>, Json(body): Json<ResyncRequest>) -> Result<Response, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down; try again once it is back".into(),
        ));
    }
    let scope = body.scope.trim();
    let availability_enabled = app.config().availability.enabled;
    let answer = |job: &str, r: Requested, then: Option<&str>| {
        let code = match r {
            Requested::Accepted { .. } => StatusCode::ACCEPTED,
            Requested::AlreadyRunning { .. } => StatusCode::CONFLICT,
        };
        let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
        v["job"] = json!(job);
        v["scope"] = json!(scope);
        if let Some(t) = then {
            v["then"] = json!(t);
        }
        v["message"] = json!(match r {
            Requested::Accepted { run } => format!("{job} run {run} requested"),
            Requested::AlreadyRunning { run } =>
                format!("{job} is already running (run {run}); this request is merged into it"),
        });
        (code, Json(v)).into_response()
    };
    let manual = |force: bool, product: Option<i64>, then_availability: bool| Trigger::Manual {
        force,
        products: product.into_iter().collect(),
        then_availability,
    };
    Ok(match scope {
        "catalogue" => answer(
            "catalogue",
            app.catalogue.request(manual(body.force, None, false)),
            None,
        ),
        "availability" if !availability_enabled => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "availability polling is disabled (availability.enabled = false)".into(),
            ));
        }
        "availability" => answer(
            "availability",
            app.availability.request(manual(false, None, false)),
            None,
        ),
        "all" => {
            // Import, then (chained by the catalogue job) a poll; each plans and wakes the push workers.
            let then = availability_enabled.then_some("availability");
            answer(
                "catalogue",
                app.catalogue.request(manual(body.force, None, availability_enabled)),
                then,
            )
        }
        "push" => answer("refresh", app.refresh.request(manual(false, None, false)), None),
        "push --full" | "push-full" | "full-push" => {
            answer("refresh", app.refresh.request(manual(true, None, false)), None)
        }
        s if s.starts_with("product:") => {
            let id: i64 = s["product:".len()..].trim().parse().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{s:?}: expected product:<SecuTix product id>"),
                )
            })?;
            let known = app
                .store
                .catalog()?
                .map(|c| c.product(id))
                .transpose()?
                .flatten()
                .is_some();
            if !known {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("product {id} is not in the catalogue in force; resync --catalogue first if it is new"),
                ));
            }
            if availability_enabled {
                // Fresh availability for this product, then its entry re-sent to every target.
                answer(
                    "availability",
                    app.availability.request(manual(true, Some(id), false)),
                    None,
                )
            } else {
                answer("refresh", app.refresh.request(manual(true, Some(id), false)), None)
            }
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
struct PlanQuery {
    target: Option<String>,
}

/// A dry run of `push` in the running daemon: its configuration, its entries, its statuses.
async fn push_plan(State(app): State<Arc<App>>, Query(q): Query<PlanQuery>) -> Result<Json<Value>, ApiError> {
    let cfg = app.config();
    let targets: Vec<&crate::targets::registry::TargetConfig> = match q.target.as_deref() {
        Some(name) => match cfg.targets.iter().find(|t| t.name == name) {
            Some(t) if !t.enabled => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("target {name} is disabled (enabled = false in its [[targets]] table)"),
                ));
            }
            Some(t) => vec![t],
            None => {
                let names: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no target named {name:?} in the daemon's configuration (targets: {})",
                        names.join(", ")
                    ),
                ));
            }
        },
        None => cfg.targets.iter().filter(|t| t.enabled).collect(),
    };
    let Some(view) = app.store.catalog()? else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon has no catalogue yet: its first import has not succeeded (see GET /status)".into(),
        ));
    };
    let plan_targets: Vec<_> = targets.iter().map(|t| crate::targets::plan_target(t)).collect();
    let options = cfg.entries.options();
    let plan = app.dry_run(&plan_targets, &options)?;
    let mut doc = plan_document(&targets, &plan, &app.outbox, &view, &options);
    doc["daemon"] = json!({"pid": std::process::id(), "started_at": app.started_at});
    Ok(Json(doc))
}

#[derive(Debug, Deserialize)]
struct BoxOfficeQuery {
    /// The passculture target, when the configuration has several.
    target: Option<String>,
    /// `fr` (default) or `en`.
    lang: Option<String>,
}

/// The HTTP status of a box-office outcome; the body always carries the outcome code.
fn box_office_status(e: &ContremarqueError) -> StatusCode {
    use ContremarqueError::*;
    match e {
        InvalidToken => StatusCode::BAD_REQUEST,
        NotFound => StatusCode::NOT_FOUND,
        AlreadyUsed
        | Cancelled
        | Reimbursed
        | TooEarly { .. }
        | NotUsed
        | HasValidationCodes
        | TooLate
        | CancelFailed { .. }
        | Refused { .. } => StatusCode::CONFLICT,
        AuthRefused { .. } => StatusCode::BAD_GATEWAY,
        RateLimited { .. } | Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A box-office operation through the control API. The answer is the JSON of
/// [`contremarque::outcome_json`] (the CLI's `--json`): `outcome` and `exit_code` say what happened, `message`
/// says it in French or English. Nothing about the booking is logged here (the box office logs the booking
/// id and the outcome only).
async fn box_office(app: &App, action: Action, token: &str, q: &BoxOfficeQuery) -> Response {
    let lang = match q.lang.as_deref().map(str::parse::<Lang>).transpose() {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, format!("lang: {e}")).into_response(),
    };
    let configuration = |status: StatusCode, message: String| {
        let body = json!({
            "ok": false, "action": action, "token": token.trim(), "outcome": "configuration",
            "exit_code": contremarque::exit_code::CONFIG, "message": message, "lang": lang,
            "booking": null, "detail": null, "retry_after_secs": null,
        });
        (status, Json(body)).into_response()
    };
    let cfg = app.config();
    let name = match contremarque::choose_target(&cfg.targets, q.target.as_deref()) {
        Ok((t, _)) => t.name.clone(),
        Err(message) => {
            let status = if q.target.is_none() && message.contains("several") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::NOT_FOUND
            };
            return configuration(status, message.replace("with --target", "with ?target="));
        }
    };
    let offices = app.passculture();
    let Some(pc) = offices.get(&name) else {
        return configuration(
            StatusCode::NOT_FOUND,
            format!("the passculture target {name} is not set up in the running daemon; reload it"),
        );
    };
    let office = match &pc.box_office {
        Ok(o) => o,
        Err(e) => return configuration(StatusCode::INTERNAL_SERVER_ERROR, e.clone()),
    };
    let result = office.run(action, token).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => box_office_status(e),
    };
    let body = contremarque::outcome_json(action, token, &result, lang, pc.time_zone);
    let mut resp = (status, Json(body)).into_response();
    if let Err(ContremarqueError::RateLimited { retry_after_secs }) = &result
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn booking_lookup(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<BoxOfficeQuery>,
) -> Response {
    box_office(&app, Action::Booking, &token, &q).await
}

async fn booking_action(
    State(app): State<Arc<App>>,
    Path((token, action)): Path<(String, String)>,
    Query(q): Query<BoxOfficeQuery>,
) -> Response {
    let action = match action.as_str() {
        "use" => Action::Use,
        "keep" => Action::Keep,
        "cancel" => Action::Cancel,
        other => {
            return ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown box-office action {other:?}: use, keep or cancel"),
            )
            .into_response();
        }
    };
    box_office(&app, action, &token, &q).await
}

#[derive(Debug, Deserialize)]
struct DlqQuery {
    target: Option<String>,
}

/// The targets dead letters may belong to: the configured ones, then those the store remembers (a target
/// removed from the configuration keeps its dead letters), as `secutix-sync dlq` does on the store.
fn target_names(app: &App, only: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut names: Vec<String> = app.config().targets.iter().map(|t| t.name.clone()).collect();
    for name in app.outbox.targets_in_store() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
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
    let allowed = |o: &str| {
        app.config()
            .control
            .cors_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.trim_end_matches('/') == o)
    };
    if let Some(o) = origin
        && allowed(o)
        && let Ok(v) = HeaderValue::from_str(o)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    }
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        })
}

/// A public response: 304 when the client has `etag`, else `body` (of `len` bytes, made only then).
fn cached(
    app: &App,
    headers: &HeaderMap,
    etag: &str,
    body: impl FnOnce() -> Result<(axum::body::Body, u64), std::io::Error>,
) -> Response {
    let max_age = app.config().control.public_max_age.as_secs();
    let mut resp = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match body() {
            Ok((body, len)) => (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (header::CONTENT_LENGTH, HeaderValue::from(len)),
                ],
                body,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the public availability document");
                let mut resp = ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read the public availability document: {e}; check the store folder's disk"),
                )
                .into_response();
                cors(app, headers, &mut resp);
                return resp;
            }
        }
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
    if snap.is_empty() {
        let body = default_public_body();
        let etag = etag_of(&body);
        return cached(&app, &headers, &etag, || Ok((body.clone().into(), body.len() as u64)));
    }
    cached(&app, &headers, &snap.etag, || Ok((snap.stream(), snap.len())))
}

async fn public_one(State(app): State<Arc<App>>, Path(product_id): Path<String>, headers: HeaderMap) -> Response {
    let snap = app.public();
    let key = external_id_of(product_id.trim_start_matches("secutix-"));
    let Some(etag) = snap.product_etag(&key).map(str::to_owned) else {
        let mut resp = ApiError(StatusCode::NOT_FOUND, format!("no published product {product_id}")).into_response();
        cors(&app, &headers, &mut resp);
        return resp;
    };
    if not_modified(&headers, &etag) {
        return cached(&app, &headers, &etag, || Ok((axum::body::Body::empty(), 0)));
    }
    let read = {
        let snap = snap.clone();
        tokio::task::spawn_blocking(move || snap.product(&key))
            .await
            .unwrap_or_else(|e| Some(Err(std::io::Error::other(e))))
    };
    let read = read.unwrap_or_else(|| Err(std::io::Error::other("the product left the document")));
    cached(&app, &headers, &etag, || {
        read.map(|(b, _)| {
            let len = b.len() as u64;
            (axum::body::Body::from(b), len)
        })
    })
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

#[cfg(test)]
mod tests;
