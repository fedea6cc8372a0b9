//! The public routes for the website: the availability document and one product, with ETags, `Cache-Control` and CORS; never a SecuTix call.

#[allow(unused_imports)]
use super::*;

pub(super) fn cors(app: &App, req_headers: &HeaderMap, resp: &mut Response) {
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

pub(super) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
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
pub(super) fn cached(
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

pub(super) async fn public_all(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let snap = app.public();
    if snap.is_empty() {
        let body = default_public_body();
        let etag = etag_of(&body);
        return cached(&app, &headers, &etag, || Ok((body.clone().into(), body.len() as u64)));
    }
    cached(&app, &headers, &snap.etag, || Ok((snap.stream(), snap.len())))
}

pub(super) async fn public_one(
    State(app): State<Arc<App>>,
    Path(product_id): Path<String>,
    headers: HeaderMap,
) -> Response {
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

pub(super) async fn preflight(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
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
