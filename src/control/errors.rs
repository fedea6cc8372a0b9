//! Every error of the control API is JSON, `{"error": "…"}`: the handlers' own ([`ApiError`]) and the framework's rejections, rewritten by [`json_errors`].

#[allow(unused_imports)]
use super::*;

/// An unknown route: a JSON 404 (instead of the framework's empty one).
pub(super) async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
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
