//! Talking to Drupal's JSON:API: authorization (basic, bearer token, OAuth client credentials), requests, errors in words, and the documents of a create or update (the owned-field projection as JSON:API attributes).

#[allow(unused_imports)]
use super::*;

impl DrupalTarget {
    pub(super) fn what(&self, op: &Operation) -> String {
        format!("drupal {} {} {}", self.name, op.kind.as_str(), op.external_id)
    }

    /// The `Authorization` header value; `fresh` renews an OAuth2 token.
    pub(super) async fn authorization(&self, fresh: bool) -> Result<SecretString, TargetError> {
        match &self.auth {
            Auth::Basic { user, password } => {
                use base64::Engine as _;
                let raw = format!("{user}:{}", password.expose_secret());
                Ok(SecretString::from(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
            Auth::Bearer(t) => Ok(SecretString::from(format!("Bearer {}", t.expose_secret()))),
            Auth::Oauth2 {
                token_url,
                client_id,
                secret,
                scope,
                cache,
            } => {
                let mut cache = cache.lock().await;
                if !fresh
                    && let Some((token, until)) = cache.as_ref()
                    && tokio::time::Instant::now() < *until
                {
                    return Ok(SecretString::from(format!("Bearer {}", token.expose_secret())));
                }
                let what = format!("drupal {}: OAuth2 token from {token_url}", self.name);
                let form = {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "client_credentials")
                        .append_pair("client_id", client_id)
                        .append_pair("client_secret", secret.expose_secret());
                    if !scope.is_empty() {
                        form.append_pair("scope", scope);
                    }
                    form.finish()
                };
                let resp = self
                    .http
                    .post(token_url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(form)
                    .send()
                    .await
                    .map_err(|e| classify_transport(&what, &e))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let text = resp.text().await.map_err(|e| classify_transport(&what, &e))?;
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if !(200..300).contains(&status) {
                    // The token endpoint's error (`invalid_client`…) never contains the secret.
                    let detail = body
                        .get("error_description")
                        .or_else(|| body.get("message"))
                        .or_else(|| body.get("error"))
                        .and_then(Value::as_str)
                        .map_or_else(|| crate::http::snippet(text.as_bytes()), str::to_owned);
                    return Err(match status {
                        400 | 401 | 403 => TargetError::permanent(format!(
                            "{what}: HTTP {status}: {detail}. Check targets.drupal.client_id, client_secret and \
                             scope against the consumer at /admin/config/services/consumer"
                        )),
                        _ => classify_response(&what, status, &headers, &detail, false)
                            .err()
                            .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {status}"))),
                    });
                }
                let token = body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TargetError::retry(format!("{what}: HTTP {status} without access_token")))?;
                let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
                // Renew a minute early (or at half-life for short tokens).
                let keep = Duration::from_secs(lifetime.saturating_sub(60).max(lifetime / 2));
                *cache = Some((SecretString::from(token.to_owned()), tokio::time::Instant::now() + keep));
                Ok(SecretString::from(format!("Bearer {token}")))
            }
        }
    }

    pub(super) async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        let mut fresh = false;
        loop {
            let auth = self.authorization(fresh).await?;
            let mut value = reqwest::header::HeaderValue::from_str(auth.expose_secret()).map_err(|_| {
                TargetError::permanent(format!(
                    "{what}: the credentials contain characters not allowed in an HTTP header"
                ))
            })?;
            value.set_sensitive(true);
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::AUTHORIZATION, value)
                .header(reqwest::header::ACCEPT, JSONAPI);
            if let Some(b) = body {
                let bytes = serde_json::to_vec(b).map_err(|e| TargetError::permanent(format!("{what}: {e}")))?;
                req = req.header(reqwest::header::CONTENT_TYPE, JSONAPI).body(bytes);
            }
            let resp = req.send().await.map_err(|e| classify_transport(what, &e))?;
            let status = resp.status().as_u16();
            // An OAuth2 token revoked or expired early: fetch a new one, once.
            if status == 401 && !fresh && matches!(self.auth, Auth::Oauth2 { .. }) {
                fresh = true;
                continue;
            }
            let headers = resp.headers().clone();
            let text = resp.text().await.map_err(|e| classify_transport(what, &e))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Answer {
                status,
                headers,
                body,
                text,
            });
        }
    }

    /// The error for a non-2xx answer, quoting JSON:API's errors and saying what to do.
    pub(super) fn error(&self, what: &str, a: &Answer) -> TargetError {
        let detail = jsonapi_message(&a.body).unwrap_or_else(|| crate::http::snippet(a.text.as_bytes()));
        let hint = match a.status {
            300..=399 => format!(
                "; Drupal redirects to {}: set targets.drupal.url to the site's final address",
                crate::http::redirect_location(&a.headers)
            ),
            401 => "; check the credentials (targets.drupal.auth and its keys), and that the basic_auth or \
                    simple_oauth module is enabled"
                .to_owned(),
            403 => format!(
                "; the API user's role needs \"{0}: Create new content\", \"{0}: Edit any content\" (and \"Delete \
                 any content\" for delete_policy = \"delete\"); publishing and unpublishing (status) needs \
                 \"Administer content\" or a module such as Override Node Options",
                self.bundle
            ),
            404 if a.body.get("errors").is_none() => format!(
                "; is JSON:API enabled, and is {} the content type's machine name?",
                self.bundle
            ),
            405 => "; JSON:API is read-only on this site: at /admin/config/services/jsonapi choose \"Accept all \
                    JSON:API create, read, update, and delete operations\""
                .to_owned(),
            _ => String::new(),
        };
        let message = format!("{detail}{hint}");
        match a.status {
            300..=399 | 401 | 403 | 405 => TargetError::permanent(format!("{what}: HTTP {}: {message}", a.status)),
            _ => classify_response(what, a.status, &a.headers, &message, false)
                .err()
                .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {}: {message}", a.status))),
        }
    }

    /// The JSON:API document of a create (`creating`) or update.
    pub(super) fn document(&self, op: &Operation, uuid: &Uuid, creating: bool) -> Result<Value, TargetError> {
        let entry = op.entry.as_ref().ok_or_else(|| {
            TargetError::permanent(format!(
                "{}: the entry is missing from the store; run a full resync",
                self.what(op)
            ))
        })?;
        let p = fields::owned_projection(
            entry,
            op.kind,
            &op.content_hash,
            &self.language,
            op.enqueued_at,
            &self.ownership,
            creating,
        );
        let mut attributes = Map::new();
        if let Some(title) = p.title {
            attributes.insert("title".into(), json!(title));
        }
        if let Some(text) = p.body {
            attributes.insert("body".into(), json!({"value": text, "format": self.body_format}));
        }
        if let Some(published) = p.published {
            attributes.insert("status".into(), json!(published));
        }
        for f in p.fields {
            if let Some((_, name)) = self.field_names.iter().find(|(k, _)| *k == f.key) {
                attributes.insert(name.clone(), attribute_value(f.value.as_ref()));
            }
        }
        Ok(json!({"data": {
            "type": format!("node--{}", self.bundle),
            "id": uuid.to_string(),
            "attributes": attributes,
        }}))
    }

    pub(super) async fn create(&self, op: &Operation, uuid: &Uuid) -> Result<Answer, TargetError> {
        let doc = self.document(op, uuid, true)?;
        self.send(&self.what(op), reqwest::Method::POST, &self.collection, Some(&doc))
            .await
    }

    pub(super) async fn update(&self, op: &Operation, uuid: &Uuid) -> Result<Answer, TargetError> {
        let doc = self.document(op, uuid, false)?;
        let url = format!("{}/{uuid}", self.collection);
        self.send(&self.what(op), reqwest::Method::PATCH, &url, Some(&doc))
            .await
    }
}

/// `detail (at pointer); …` of a JSON:API error document.
pub(super) fn jsonapi_message(body: &Value) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let text = e
                .get("detail")
                .or_else(|| e.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("(no detail)");
            match e.pointer("/source/pointer").and_then(Value::as_str) {
                Some(p) => format!("{text} (at {p})"),
                None => text.to_owned(),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A field value as JSON:API takes it (decimals as strings, as Drupal answers them).
pub(super) fn attribute_value(v: Option<&FieldValue>) -> Value {
    match v {
        None => Value::Null,
        Some(FieldValue::Text(s) | FieldValue::DateTime(s) | FieldValue::Json(s) | FieldValue::Decimal(s)) => json!(s),
        Some(FieldValue::Integer(i)) => json!(i),
        Some(FieldValue::Boolean(b)) => json!(b),
    }
}
