//! The bearer token of the operator routes, compared in constant time.

#[allow(unused_imports)]
use super::*;

/// True when `header` (an `Authorization` value) carries `expected` as a bearer token. Constant time in the
/// token's content; an empty expected token matches nothing.
pub fn bearer_matches(header: Option<&str>, expected: &str) -> bool {
    let given = header
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .unwrap_or("")
        .trim();
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

pub(super) async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
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
