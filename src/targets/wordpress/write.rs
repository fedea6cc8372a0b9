//! Writing posts: the body of a create or update (the owned-field projection in WordPress's shape), what to do given where the post is, single requests and `/batch/v1` batches.

#[allow(unused_imports)]
use super::*;

impl WordPressTarget {
    pub(super) fn what(&self, op: &Operation) -> String {
        format!("wordpress {} {} {}", self.name, op.kind.as_str(), op.external_id)
    }

    /// The JSON of a create or update.
    pub(super) fn post_body(&self, op: &Operation, creating: bool) -> Result<Value, TargetError> {
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
        let mut body = Map::new();
        if let Some(title) = p.title {
            body.insert("title".into(), json!(title));
        }
        if let Some(text) = p.body {
            body.insert("content".into(), json!(text));
        }
        if let Some(published) = p.published {
            let status = if published {
                "publish"
            } else {
                self.unpublish_status.as_str()
            };
            body.insert("status".into(), json!(status));
        }
        let mut meta = Map::new();
        for f in p.fields {
            meta.insert(format!("{META_PREFIX}{}", f.key), meta_value(f.value.as_ref()));
        }
        body.insert("meta".into(), Value::Object(meta));
        Ok(Value::Object(body))
    }

    /// What to do for `op` given where its post is.
    pub(super) fn step(&self, op: &Operation, info: &SiteInfo, at: &Location) -> Step {
        let id = match at {
            Location::Known(id) => Some(*id),
            Location::Found(f) => Some(f.id),
            Location::Missing => None,
        };
        // The post already has this version (re-sync after a lost store): nothing to write.
        if let Location::Found(f) = at {
            let desired = match op.kind {
                OpKind::Upsert => self.ownership.owns(FieldGroup::Status).then_some("publish"),
                _ => Some(self.unpublish_status.as_str()),
            };
            if op.kind != OpKind::Delete
                && f.content_hash.as_deref() == Some(op.content_hash.as_str())
                && desired.is_none_or(|d| d == f.status)
            {
                return Step::Done(Ok(Applied {
                    remote_id: Some(f.id.to_string()),
                }));
            }
        }
        let request = |method, path: String, body, intent| {
            Step::Send(Request {
                method,
                path,
                body,
                intent,
            })
        };
        match (op.kind, id) {
            (OpKind::Upsert, None) => match self.post_body(op, true) {
                Ok(b) => request(reqwest::Method::POST, info.route.clone(), Some(b), Intent::Create),
                Err(e) => Step::Done(Err(e)),
            },
            (OpKind::Upsert | OpKind::Unpublish, Some(id)) => match self.post_body(op, false) {
                Ok(b) => request(
                    reqwest::Method::POST,
                    format!("{}/{id}", info.route),
                    Some(b),
                    Intent::Update(id),
                ),
                Err(e) => Step::Done(Err(e)),
            },
            (OpKind::Delete, Some(id)) => request(
                reqwest::Method::DELETE,
                if self.delete_permanently {
                    format!("{}/{id}?force=true", info.route)
                } else {
                    format!("{}/{id}", info.route)
                },
                None,
                Intent::Delete,
            ),
            // Nothing to unpublish or delete.
            (OpKind::Unpublish | OpKind::Delete, None) => Step::Done(Ok(Applied { remote_id: None })),
        }
    }

    /// What an answer to `req` means for `op`.
    pub(super) fn read(
        &self,
        op: &Operation,
        req: &Request,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &Value,
        text: &str,
    ) -> Next {
        let what = self.what(op);
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
        let ok = (200..300).contains(&status);
        match req.intent {
            Intent::Create if ok => match body.get("id").and_then(Value::as_u64) {
                Some(id) => Next::Done(Ok(Applied {
                    remote_id: Some(id.to_string()),
                })),
                None => Next::Done(Err(TargetError::retry(format!(
                    "{what}: HTTP {status} without a post id: {}",
                    crate::http::snippet(text.as_bytes())
                )))),
            },
            Intent::Create if status == 409 && code == "secutix_sync_exists" => {
                match body.pointer("/data/id").and_then(Value::as_u64) {
                    Some(id) => Next::UpdateExisting(id),
                    None => Next::Done(Err(self.error(&what, status, headers, body, text))),
                }
            }
            Intent::Update(id) if ok => Next::Done(Ok(Applied {
                remote_id: Some(id.to_string()),
            })),
            Intent::Update(_) if status == 404 && code == "rest_post_invalid_id" => Next::Relocate,
            Intent::Delete if ok => Next::Done(Ok(Applied { remote_id: None })),
            // Already trashed, or already deleted.
            Intent::Delete if status == 410 || (status == 404 && code == "rest_post_invalid_id") => {
                Next::Done(Ok(Applied { remote_id: None }))
            }
            _ => Next::Done(Err(self.error(&what, status, headers, body, text))),
        }
    }

    /// Runs `op` from `at` with single requests, following at most one relocation.
    pub(super) async fn run_single(
        &self,
        op: &Operation,
        info: &SiteInfo,
        mut at: Location,
    ) -> Result<Applied, TargetError> {
        let what = self.what(op);
        for _ in 0..2 {
            let req = match self.step(op, info, &at) {
                Step::Done(r) => return r,
                Step::Send(req) => req,
            };
            let a = self
                .send(&what, req.method.clone(), &req.path, req.body.as_ref())
                .await?;
            match self.read(op, &req, a.status, &a.headers, &a.body, &a.text) {
                Next::Done(r) => return r,
                Next::UpdateExisting(id) => at = Location::Known(id),
                Next::Relocate => at = self.locate_one(op).await?,
            }
        }
        Err(TargetError::retry(format!(
            "{what}: the post changed while it was being written (deleted or duplicated); will try again"
        )))
    }

    pub(super) async fn locate_one(&self, op: &Operation) -> Result<Location, TargetError> {
        let mut found = self.lookup(&[op.external_id.as_str()]).await?;
        Ok(found
            .remove(&op.external_id.to_ascii_lowercase())
            .map_or(Location::Missing, Location::Found))
    }

    /// The post id from the store's acknowledgement.
    pub(super) fn known(op: &Operation) -> Option<u64> {
        op.remote_id.as_deref().and_then(|r| r.parse().ok())
    }

    /// Sends `reqs` in one `/batch/v1` call. `Ok(None)`: the site has no usable batch route.
    pub(super) async fn send_batch(&self, reqs: &[&Request]) -> Result<Option<Vec<(u16, Value)>>, TargetError> {
        let what = format!("wordpress {}: batch of {}", self.name, reqs.len());
        let requests: Vec<Value> = reqs
            .iter()
            .map(|r| {
                let mut item = json!({"method": r.method.as_str(), "path": r.path});
                if let Some(b) = &r.body {
                    item["body"] = b.clone();
                }
                item
            })
            .collect();
        let body = json!({"validation": "normal", "requests": requests});
        let a = self
            .send(&what, reqwest::Method::POST, "/batch/v1", Some(&body))
            .await?;
        if (a.status == 404 || a.status == 400) && a.body.get("responses").is_none() {
            tracing::warn!(target_name = %self.name, status = a.status, answer = %crate::http::snippet(a.text.as_bytes()), "WordPress refused the batch request; sending single requests from now on");
            self.batches.store(false, Ordering::Relaxed);
            return Ok(None);
        }
        if !(200..300).contains(&a.status) {
            return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
        }
        let responses = a.body.get("responses").and_then(Value::as_array).ok_or_else(|| {
            TargetError::retry(format!(
                "{what}: HTTP {} without responses: {}",
                a.status,
                crate::http::snippet(a.text.as_bytes())
            ))
        })?;
        if responses.len() != reqs.len() {
            return Err(TargetError::retry(format!(
                "{what}: {} responses for {} requests",
                responses.len(),
                reqs.len()
            )));
        }
        Ok(Some(
            responses
                .iter()
                .map(|r| {
                    let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
                    (
                        u16::try_from(status).unwrap_or(0),
                        r.get("body").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ))
    }

    pub(super) async fn apply_one_by_one(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(self.apply(op).await);
        }
        out
    }
}

/// A meta value as the plugin registers it.
pub(super) fn meta_value(v: Option<&FieldValue>) -> Value {
    match v {
        None => Value::Null,
        Some(FieldValue::Text(s) | FieldValue::DateTime(s) | FieldValue::Json(s)) => json!(s),
        Some(FieldValue::Integer(i)) => json!(i),
        Some(FieldValue::Boolean(b)) => json!(b),
        Some(FieldValue::Decimal(d)) => d.parse::<f64>().map_or(Value::Null, |f| json!(f)),
    }
}
