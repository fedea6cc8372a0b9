//! The catalogue protocol: the 10-minute rule, `statusCode: in_progress` with `requestId` and a growing back-off under a deadline, and the streaming parse into a sink.

#[allow(unused_imports)]
use super::*;

impl Client {
    /// Fetches the catalogue and streams it into `sink` (see the module docs). When the response is
    /// byte-identical to `known_hash`, nothing is parsed and `unchanged` is set.
    pub async fn fetch_catalogue<S>(
        &self,
        req: &CatalogueRequest,
        mut sink: S,
        known_hash: Option<[u8; 32]>,
    ) -> Result<(S, CatalogueFetch), CallError>
    where
        S: CatalogSink + Send + 'static,
    {
        let method = req.method.as_str();
        let now = self.clock.now();
        if let Some(last) = self.ledger.last_call(method) {
            let next = last + chrono::Duration::from_std(req.min_interval).unwrap_or_default();
            if now < next {
                return Err(CallError::TooSoon {
                    method: method.to_owned(),
                    last,
                    next,
                    min_interval: req.min_interval,
                });
            }
        }
        let started = Instant::now();
        let deadline = started + req.deadline;
        let mut request_id: Option<i64> = None;
        let mut wait = req.backoff;
        let mut fetch = CatalogueFetch::default();
        loop {
            let mut params = serde_json::Map::new();
            if let Some(r) = request_id {
                params.insert("requestId".into(), r.into());
            }
            if let Some(s) = &req.season_code {
                params.insert("seasonCode".into(), s.clone().into());
            }
            if let Some(p) = &req.product_code {
                params.insert("productCode".into(), p.clone().into());
            }
            if let (Some(scope), CatalogueMethod::GetCatalogDetailed) = (&req.scope, req.method) {
                params.insert("scope".into(), scope.clone().into());
            }
            let policy = RetryPolicy {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(120),
                deadline,
            };
            let body = self
                .call_counted(
                    Service::Catalog,
                    method,
                    &Value::Object(params),
                    true,
                    policy,
                    &mut fetch.calls,
                )
                .await?;
            fetch.bytes = body.len;
            fetch.body_hash = body.hash;
            if known_hash == Some(body.hash) {
                fetch.unchanged = true;
                fetch.envelope.status_code = Some("success".into());
                return Ok((sink, fetch));
            }
            let transport = self.cfg.transport;
            let m = req.method;
            let ctx = req.ctx.clone();
            let spool_dir = self.spool_dir.clone();
            let (back, env) = tokio::task::spawn_blocking(move || {
                let r = parse_catalogue_body(transport, m, body, &ctx, &mut sink, spool_dir);
                (sink, r)
            })
            .await
            .map_err(|e| CallError::Local(format!("the catalogue parser stopped: {e}")))?;
            sink = back;
            let env = env?;
            match env.status() {
                CallStatus::Success => {
                    fetch.envelope = env;
                    return Ok((sink, fetch));
                }
                CallStatus::InProgress { request_id: rid } => {
                    sink.reset()
                        .map_err(|e| CallError::Local(format!("cannot reset the import: {e}")))?;
                    request_id = rid.or(request_id);
                    if Instant::now() + wait > deadline {
                        return Err(CallError::InProgressDeadline {
                            call: format!("catalogService/{method}"),
                            waited: started.elapsed(),
                            attempts: fetch.calls,
                        });
                    }
                    tracing::info!(request_id, retry_in = %human(wait), "SecuTix is preparing the catalogue (in_progress)");
                    let call = format!("catalogService/{method}");
                    self.pause(
                        wait,
                        &call,
                        || {
                            format!(
                                "SecuTix was preparing the catalogue (in_progress), {} before asking again",
                                human(wait)
                            )
                        },
                        None,
                    )
                    .await?;
                    wait = crate::backoff::grow(wait, req.max_backoff);
                }
                CallStatus::Failed { code, detail } => {
                    return Err(CallError::Status {
                        call: format!("catalogService/{method}"),
                        code,
                        detail,
                    });
                }
            }
        }
    }
}

/// Parses a catalogue body (blocking; runs on a blocking thread).
pub(super) fn parse_catalogue_body(
    transport: Transport,
    method: CatalogueMethod,
    mut body: Body,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    spool_dir: Option<PathBuf>,
) -> Result<Envelope, CallError> {
    let call = method.as_str();
    let io = |e: std::io::Error| {
        CallError::Parse(ParseError::Io {
            call: call.to_owned(),
            source: e,
        })
    };
    let reader = body.reader().map_err(io)?;
    match (transport, method) {
        (Transport::Rest, _) => {
            let mut env = json::parse_catalog_reader(call, reader, ctx, sink)?;
            if let Some(xml) = env.catalog_xml.take() {
                let inner = xml::parse_catalog_document(call, xml.as_bytes(), ctx, sink)?;
                env.seasons = inner.seasons;
                env.products = inner.products;
                env.implausible.merge(inner.implausible);
            }
            Ok(env)
        }
        (Transport::Soap, CatalogueMethod::GetCatalogDetailed) => {
            Ok(xml::parse_catalog_soap(call, reader, ctx, sink, None)?)
        }
        (Transport::Soap, CatalogueMethod::GetCatalog) => {
            let mut doc = match &spool_dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(io)?;
            let mut env = {
                let mut w = std::io::BufWriter::new(&mut doc);
                let env = xml::parse_catalog_soap(call, reader, ctx, sink, Some(&mut w))?;
                w.flush().map_err(io)?;
                env
            };
            if env.status() == CallStatus::Success && env.has_catalog {
                doc.rewind().map_err(io)?;
                let inner = xml::parse_catalog_document(call, BufReader::new(doc), ctx, sink)?;
                env.seasons = inner.seasons;
                env.products = inner.products;
                env.implausible.merge(inner.implausible);
            }
            Ok(env)
        }
    }
}
