//! Calls with retries inside a deadline (transient failures, `Retry-After`), counted in the ledger, cancellable at shutdown.

#[allow(unused_imports)]
use super::*;

impl Client {
    /// Sleeps `d`, unless the shutdown comes first: then [`CallError::Stopped`] for `call`, with `last`.
    pub(super) async fn pause(
        &self,
        d: Duration,
        call: &str,
        waiting: impl FnOnce() -> String,
        last: Option<CallError>,
    ) -> Result<(), CallError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(CallError::Stopped {
                call: call.to_owned(),
                waiting: waiting(),
                last: last.map(Box::new),
            }),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// One call with retries of transient failures (rate limits honour `Retry-After`), within `policy`.
    pub async fn call(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        spool: bool,
        policy: RetryPolicy,
    ) -> Result<Body, CallError> {
        let mut attempts = 0;
        self.call_counted(service, method, params, spool, policy, &mut attempts)
            .await
    }

    /// [`Client::call`], adding the number of HTTP calls made to `attempts`.
    pub async fn call_counted(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        spool: bool,
        policy: RetryPolicy,
        attempts: &mut u32,
    ) -> Result<Body, CallError> {
        let started = Instant::now();
        let mut wait = policy.initial;
        let mut reauth = self.cfg.auth == AuthMode::TokenEndpoint;
        loop {
            *attempts += 1;
            match self.once(service, method, params, spool).await {
                Ok(b) => return Ok(b),
                Err(CallError::Auth { .. }) if reauth => {
                    // A token from the endpoint may have expired early: get a new one, once.
                    reauth = false;
                    if let Ok(mut g) = self.token.lock() {
                        *g = None;
                    }
                }
                Err(e) if e.is_transient() => {
                    let mut delay = jitter(wait);
                    if let CallError::RateLimited { wait: ra, .. } = &e {
                        delay = delay.max(*ra);
                    }
                    if policy.initial.is_zero() {
                        // A single attempt by design (checks, availability calls the poller counts): the
                        // failure itself says what happened; there were no retries to speak of.
                        return Err(e);
                    }
                    if Instant::now() + delay > policy.deadline {
                        return Err(CallError::Deadline {
                            call: format!("{}/{method}", service.rest_name()),
                            waited: started.elapsed(),
                            last: Box::new(e),
                        });
                    }
                    tracing::warn!(error = %e, retry_in = %human(delay), "SecuTix call failed, retrying");
                    let call = format!("{}/{method}", service.rest_name());
                    self.retrying.send_replace(Some((call.clone(), e.to_string())));
                    self.pause(
                        delay,
                        &call,
                        || format!("waiting {} to try again", human(delay)),
                        Some(e),
                    )
                    .await?;
                    wait = (wait * 2).min(policy.max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A call with a small result: the envelope and the result object (REST: the body; SOAP: `<return>`).
    pub async fn call_small(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        policy: RetryPolicy,
    ) -> Result<(Envelope, Value), CallError> {
        let mut attempts = 0;
        self.call_small_counted(service, method, params, policy, &mut attempts)
            .await
    }

    /// [`Client::call_small`], adding the number of HTTP calls made to `attempts` (availability polls
    /// count every call against their allowance, failed ones included).
    pub async fn call_small_counted(
        &self,
        service: Service,
        method: &str,
        params: &Value,
        policy: RetryPolicy,
        attempts: &mut u32,
    ) -> Result<(Envelope, Value), CallError> {
        let mut body = self
            .call_counted(service, method, params, false, policy, attempts)
            .await?;
        let BodyData::Memory(bytes) = std::mem::replace(&mut body.data, BodyData::Memory(Vec::new())) else {
            return Err(CallError::Local("internal: small call spooled to disk".into()));
        };
        decode_small(
            self.cfg.transport,
            service,
            method,
            &bytes,
            small_values(self.cfg.max_small_response_mib),
        )
    }

    /// `getPOSConfig`: point of sale id, time zone, currency, languages.
    pub async fn get_pos_config(&self, policy: RetryPolicy) -> Result<PosConfig, CallError> {
        let (_, v) = self
            .call_small(Service::Catalog, "getPOSConfig", &serde_json::json!({}), policy)
            .await?;
        let data = v.get("posConfigData").cloned().unwrap_or(Value::Null);
        let raw: wire::RawPosConfig = serde_path_to_error::deserialize(data).map_err(|e| {
            CallError::Parse(ParseError::Malformed {
                call: "getPOSConfig".into(),
                place: format!("posConfigData.{}", e.path()),
                message: e.inner().to_string(),
            })
        })?;
        Ok(raw.into_domain())
    }

    /// `isCatalogServiceAlive`: checks the credentials and the service.
    pub async fn is_alive(&self) -> Result<(), CallError> {
        self.call_small(
            Service::Catalog,
            "isCatalogServiceAlive",
            &serde_json::json!({}),
            RetryPolicy::once(),
        )
        .await
        .map(|_| ())
    }
}
