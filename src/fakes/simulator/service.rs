//! The simulated web services on loopback: REST and SOAP dispatch, the bearer token and the token endpoint, faults, and the availability calls.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Rest,
    Soap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServiceKind {
    Catalog,
    Availability,
}

impl ServiceKind {
    pub(super) fn class(self) -> &'static str {
        match self {
            ServiceKind::Catalog => "CatalogService",
            ServiceKind::Availability => "AvailabilityService",
        }
    }
}

/// An answer before it is put on the wire.
pub(super) enum Answer {
    /// A result object (`statusCode`…).
    Result(Value),
    /// A rendered catalogue.
    Catalogue(Arc<Rendered>),
    /// An HTTP error with a text body (REST) or a SOAP fault.
    Error(StatusCode, String),
}

pub(super) async fn rest(
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
pub(super) struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0.to_string()).into_response()
    }
}

pub(super) async fn soap(AxState(sim): AxState<Arc<Inner>>, Path(endpoint): Path<String>, body: Bytes) -> Response {
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

pub(super) async fn token(AxState(sim): AxState<Arc<Inner>>, body: Bytes) -> Response {
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

pub(super) fn check_bearer(sim: &Inner, headers: &HeaderMap) -> Result<(), String> {
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

pub(super) fn reply(answer: Answer, wire: Wire, kind: ServiceKind, method: &str) -> Response {
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
pub(super) fn file_chunks(file: std::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
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

pub(super) fn fault(status: StatusCode, code: &str, message: &str) -> Response {
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

pub(super) fn failed(detail: impl Into<String>) -> Answer {
    Answer::Result(json!({"statusCode": "failed", "requestId": null, "statusDetail": detail.into()}))
}

pub(super) async fn dispatch(sim: &Inner, kind: ServiceKind, method: &str, params: &Value, wire: Wire) -> Answer {
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

pub(super) fn availability(sim: &Inner, method: &str, params: &Value) -> Answer {
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
pub(super) fn as_id(v: &Value) -> Option<Id> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// A list of ids: an array, one value (SOAP with one element), or nothing.
pub(super) fn ids(v: Option<&Value>) -> Vec<Id> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(as_id).collect(),
        Some(v) => as_id(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A SOAP request: the method (the Body's element), its parameters as JSON (text values, repeated
/// elements as arrays), and the UsernameToken password if any.
pub(super) struct SoapRequest {
    method: String,
    params: Value,
    password: Option<String>,
}

pub(super) fn parse_soap_request(body: &[u8]) -> Result<SoapRequest, String> {
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
