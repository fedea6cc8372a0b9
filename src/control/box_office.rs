//! The pass Culture box office routes: look a booking (contremarque) up, validate it, undo that, cancel it.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct BoxOfficeQuery {
    /// The passculture target, when the configuration has several.
    target: Option<String>,
    /// `fr` (default) or `en`.
    lang: Option<String>,
}

/// The HTTP status of a box-office outcome; the body always carries the outcome code.
pub(super) fn box_office_status(e: &ContremarqueError) -> StatusCode {
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
pub(super) async fn box_office(app: &App, action: Action, token: &str, q: &BoxOfficeQuery) -> Response {
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

pub(super) async fn booking_lookup(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<BoxOfficeQuery>,
) -> Response {
    box_office(&app, Action::Booking, &token, &q).await
}

pub(super) async fn booking_action(
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
