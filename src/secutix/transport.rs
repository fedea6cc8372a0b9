//! One call on the wire: REST or SOAP, the bearer token (forged or fetched), HTTP status handling, no redirects, the body read within its limits.

#[allow(unused_imports)]
use super::*;

impl Client {
    pub(super) fn url(&self, service: Service, method: &str) -> String {
        let v = &self.cfg.api_version;
        match self.cfg.transport {
            Transport::Rest => format!("{}/tnseb/backend-apis/{}/{v}/{method}", self.base, service.rest_name()),
            Transport::Soap => format!(
                "{}/tnseb/external-remoting/com.secutix.service.realtime.{}.{v}.{}.webservice",
                self.base,
                service.soap_package(),
                service.soap_class()
            ),
        }
    }

    pub(super) fn soap_envelope(&self, service: Service, method: &str, params: &Value) -> String {
        let ns = format!(
            "http://{}.{}.service.secutix.com",
            self.cfg.api_version,
            service.soap_class()
        );
        let mut body = String::new();
        if let Value::Object(map) = params {
            for (k, v) in map {
                xml_param(&mut body, k, v);
            }
        }
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:v1=\"{}\">",
                "<soapenv:Header>{}</soapenv:Header><soapenv:Body><v1:{}>{}</v1:{}></soapenv:Body></soapenv:Envelope>"
            ),
            ns,
            auth::ws_security_header(&self.cfg.operator, &self.secret),
            method,
            body,
            method
        )
    }

    pub(super) async fn bearer(&self) -> Result<String, CallError> {
        match self.cfg.auth {
            AuthMode::Jwt => auth::forge_jwt(
                &self.cfg.institution,
                &self.cfg.operator,
                &self.cfg.partner,
                &self.secret,
                self.clock.now().timestamp(),
                self.cfg.jwt_lifetime,
            )
            .map_err(CallError::Local),
            AuthMode::TokenEndpoint => {
                if let Some((t, at)) = self.token.lock().ok().and_then(|g| g.clone())
                    && at.elapsed() < self.cfg.token_reuse
                {
                    return Ok(t);
                }
                let t = self.fetch_token().await?;
                if let Ok(mut g) = self.token.lock() {
                    *g = Some((t.clone(), Instant::now()));
                }
                Ok(t)
            }
        }
    }

    pub(super) async fn fetch_token(&self) -> Result<String, CallError> {
        let url = if self.cfg.token_endpoint.is_empty() {
            format!("{}/tnai/backend-apis/v1/auth", self.base)
        } else {
            self.cfg.token_endpoint.clone()
        };
        let call = "v1/auth".to_owned();
        let body = auth::token_request_body(&self.cfg.operator, &self.cfg.partner, &self.secret);
        let mut resp = self
            .http
            .post(&url)
            .timeout(self.cfg.request_timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&call, e))?;
        let status = resp.status().as_u16();
        let location = crate::http::redirect_location(resp.headers());
        let read = self.read_body(&call, &mut resp, false, false).await;
        self.ledger
            .record_call(self.clock.now(), "auth", "v1/auth", read.as_ref().map_or(0, |b| b.len));
        let text = match read?.data {
            BodyData::Memory(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            BodyData::File(_) => return Err(CallError::Local("internal: token answer spooled to disk".into())),
        };
        match status {
            200..=299 => {}
            300..=399 => return Err(CallError::Redirect { call, status, location }),
            401 | 403 => {
                return Err(CallError::Auth {
                    call,
                    status,
                    snippet: snippet(text.as_bytes()),
                });
            }
            _ => {
                return Err(CallError::Http {
                    call,
                    status,
                    snippet: snippet(text.as_bytes()),
                });
            }
        }
        let max_values = small_values(self.cfg.max_small_response_mib);
        let v: Value =
            json::parse_value(&call, text.as_bytes(), max_values).map_err(|_| CallError::UnexpectedBody {
                call: call.clone(),
                status,
                what: "a body that is not JSON",
                expected: "{\"token\": …}",
                snippet: snippet(text.as_bytes()),
            })?;
        v.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(CallError::UnexpectedBody {
                call,
                status,
                what: "JSON without a token",
                expected: "{\"token\": …}",
                snippet: snippet(text.as_bytes()),
            })
    }

    pub(super) fn transport_error(&self, call: &str, e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout {
                call: call.to_owned(),
                after: self.cfg.request_timeout,
            }
        } else {
            CallError::Network {
                call: call.to_owned(),
                url: self.shown_base.clone(),
                reason: crate::http::error_chain(&e),
            }
        }
    }

    /// One HTTP call, no retry. `spool` writes the body to a temporary file.
    pub(super) async fn once(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        spool: bool,
    ) -> Result<Body, CallError> {
        let call = format!("{}/{method}", service.rest_name());
        if let Some(l) = self.limiters.get(&service) {
            // Not cut by the shutdown: this pacing between two calls of a run is short (60 s divided by
            // secutix.calls_per_minute) and the run in flight gets the shutdown grace to finish.
            l.acquire().await;
        }
        let req = match self.cfg.transport {
            Transport::Rest => self
                .http
                .post(self.url(service, method))
                .bearer_auth(self.bearer().await?)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                .json(params),
            Transport::Soap => self
                .http
                .post(self.url(service, method))
                .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .header("SOAPAction", "\"\"")
                .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                .body(self.soap_envelope(service, method, params)),
        };
        let sent = req.timeout(self.cfg.request_timeout).send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                self.ledger
                    .record_call(self.clock.now(), service.rest_name(), method, 0);
                return Err(self.transport_error(&call, e));
            }
        };
        let status = resp.status().as_u16();
        if status == 509 || status == 429 {
            self.ledger
                .record_call(self.clock.now(), service.rest_name(), method, 0);
            let wait = retry_after(resp.headers(), self.clock.now()).unwrap_or(Duration::ZERO);
            return Err(CallError::RateLimited { call, status, wait });
        }
        if (300..400).contains(&status) {
            self.ledger
                .record_call(self.clock.now(), service.rest_name(), method, 0);
            let location = crate::http::redirect_location(resp.headers());
            return Err(CallError::Redirect { call, status, location });
        }
        // Only the catalogue may be large; error pages go to disk whatever the call.
        let body = self.read_body(&call, &mut resp, spool || status >= 300, spool).await;
        self.ledger.record_call(
            self.clock.now(),
            service.rest_name(),
            method,
            body.as_ref().map(|b| b.len).unwrap_or(0),
        );
        let mut body = body?;
        let head = body_head(&mut body);
        if status == 401 || status == 403 {
            return Err(CallError::Auth {
                call,
                status,
                snippet: snippet(&head),
            });
        }
        if !(200..300).contains(&status) {
            if self.cfg.transport == Transport::Soap && looks_like_xml(&head) && !looks_like_html(&head) {
                // A SOAP fault comes with HTTP 500: report the fault itself.
                // At most a small answer's worth: a fault is a few lines, and this is read into memory.
                let limit = self.cfg.max_small_response_mib;
                let mut all = Vec::new();
                if let Ok(r) = body.reader() {
                    let _ = std::io::Read::read_to_end(&mut std::io::Read::take(r, limit * 1024 * 1024), &mut all);
                }
                if let Err(e @ ParseError::Fault { .. }) = xml::parse_soap_result(method, &all, small_values(limit)) {
                    return Err(CallError::Parse(e));
                }
            }
            return Err(CallError::Http {
                call,
                status,
                snippet: snippet(&head),
            });
        }
        let expected = match self.cfg.transport {
            Transport::Rest => "JSON",
            Transport::Soap => "SOAP XML",
        };
        let ok = match self.cfg.transport {
            Transport::Rest => first_byte(&head) == Some(b'{'),
            Transport::Soap => looks_like_xml(&head) && !looks_like_html(&head),
        };
        if !ok {
            let what = if looks_like_html(&head) {
                "an HTML page"
            } else if head.iter().all(|b| b.is_ascii_whitespace()) {
                "an empty body"
            } else {
                "an unexpected body"
            };
            return Err(CallError::UnexpectedBody {
                call,
                status,
                what,
                expected,
                snippet: snippet(&head),
            });
        }
        Ok(body)
    }

    /// Reads the body of `resp`, to a temporary file with `spool`. A `catalogue` body may be as large as
    /// `secutix.max_response_mib`, any other `secutix.max_small_response_mib`: past that, reading stops.
    pub(super) async fn read_body(
        &self,
        call: &str,
        resp: &mut reqwest::Response,
        spool: bool,
        catalogue: bool,
    ) -> Result<Body, CallError> {
        let limit_mib = if catalogue {
            self.cfg.max_response_mib
        } else {
            self.cfg.max_small_response_mib
        };
        let limit = limit_mib.saturating_mul(1024 * 1024);
        let too_large = || {
            if catalogue {
                CallError::TooLarge {
                    call: call.to_owned(),
                    limit_mib,
                }
            } else {
                CallError::AnswerTooLarge {
                    call: call.to_owned(),
                    limit_mib,
                }
            }
        };
        // A declared length past the limit is refused before a byte is read (it would count against the
        // monthly volume for nothing).
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut memory = Vec::new();
        let mut spool_writer = if spool {
            let file = match &self.spool_dir {
                Some(d) => tempfile::tempfile_in(d),
                None => tempfile::tempfile(),
            }
            .map_err(|e| CallError::Local(format!("{call}: cannot create a temporary file for the response: {e}")))?;
            Some(SpoolWriter::start(file).map_err(|e| {
                CallError::Local(format!(
                    "{call}: cannot start the thread that writes the response to disk: {e}"
                ))
            })?)
        } else {
            None
        };
        let disk_error =
            |e: std::io::Error| CallError::Local(format!("{call}: cannot write the response to disk: {e}"));
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(call, e)),
            };
            len += chunk.len() as u64;
            if len > limit {
                return Err(too_large());
            }
            match &mut spool_writer {
                None => memory.extend_from_slice(&chunk),
                // Handed over first (a reference count), so that the disk write overlaps the hashing.
                Some(w) => w.write(chunk.clone()).map_err(disk_error)?,
            }
            hasher.update(&chunk);
        }
        let data = match spool_writer {
            None => BodyData::Memory(memory),
            Some(w) => BodyData::File(w.finish().map_err(disk_error)?),
        };
        Ok(Body {
            data,
            len,
            hash: *hasher.finalize().as_bytes(),
        })
    }
}
