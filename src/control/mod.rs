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
//! [`crate::daemon::status::status_document`] and [`crate::daemon::documents::entry_document`] also work without a running daemon (the CLI reads the store
//! directly when no daemon answers), so online and offline output have one shape.
//!
//! Every error is JSON, `{"error": "…"}`: the handlers' own, and the framework's rejections (a malformed
//! query or body, a wrong content type, a body over [`MAX_REQUEST_BODY`], an unknown route or method), which
//! [`json_errors`] rewrites. The listener's limits (connections, timeouts) are [`crate::net::serve`]'s.

use crate::daemon::documents::{
    DeadLettersDocument, DropAnswer, EntriesError, EntriesQuery, ReadyDocument, ReplayAnswer, ResyncAnswer,
    ResyncRequest, ResyncScope, entries_document, entry_document, external_id_of, plan_document,
};
use crate::daemon::jobs::{JobState, Requested, Trigger};
use crate::daemon::status::freshness;
use crate::daemon::{App, Metrics};
use crate::public::availability::{default_public_body, etag_of};
use crate::store::StoreError;
use crate::targets::passculture::contremarque::{self, Action, ContremarqueError, Lang};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

mod auth;
mod box_office;
mod errors;
mod handlers;
mod metrics;
mod public;

pub use auth::*;
#[allow(unused_imports)]
use box_office::*;
pub use errors::*;
#[allow(unused_imports)]
use handlers::*;
#[allow(unused_imports)]
use metrics::*;
#[allow(unused_imports)]
use public::*;

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

/// An API error as JSON with a status.
struct ApiError(StatusCode, String);

#[cfg(test)]
mod tests;
