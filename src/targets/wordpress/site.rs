//! Talking to the site: requests with the Application Password, errors in words (redirects, permissions, permalinks), the plugin's discovery, looking posts up by external id.

#[allow(unused_imports)]
use super::*;

impl WordPressTarget {
    /// The URL of a REST route (with its query string, if any).
    pub(super) fn url(&self, route: &str) -> String {
        let (path, query) = route.split_once('?').unwrap_or((route, ""));
        let (mut url, sep) = if self.rest_route_param {
            (format!("{}/?rest_route={}", self.site, encode_route(path)), '&')
        } else {
            (format!("{}/wp-json{path}", self.site), '?')
        };
        if !query.is_empty() {
            url.push(sep);
            url.push_str(query);
        }
        url
    }

    pub(super) async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Answer, TargetError> {
        let mut req = self
            .http
            .request(method, self.url(route))
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| classify_transport(what, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| classify_transport(what, &e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
            text,
        })
    }

    /// The error for a non-2xx answer, with WordPress's own code and message and what to do.
    pub(super) fn error(
        &self,
        what: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &Value,
        text: &str,
    ) -> TargetError {
        let detail = wp_message(body).unwrap_or_else(|| crate::http::snippet(text.as_bytes()));
        let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
        match status {
            300..=399 => {
                let to = crate::http::redirect_location(headers);
                TargetError::permanent(format!(
                    "{what}: HTTP {status}: WordPress redirects to {to}; set targets.wordpress.url to the site's \
                     final address (https, with or without www as WordPress has it)"
                ))
            }
            401 | 403 => TargetError::permanent(format!(
                "{what}: HTTP {status}: {detail}. WordPress refused user {:?}: check targets.wordpress.user and \
                 its Application Password (Users → Profile → Application Passwords), and that the user may \
                 edit, publish and delete {} posts (the Editor role may)",
                self.user, self.post_type
            )),
            404 if code == "rest_no_route" => TargetError::permanent(format!(
                "{what}: HTTP 404: {detail}. Is the companion plugin installed (contrib/wordpress/secutix-sync.php \
                 in wp-content/mu-plugins/) and does the post type {} exist?",
                self.post_type
            )),
            404 if body.is_null() => TargetError::permanent(format!(
                "{what}: HTTP 404 with a page that is not the REST API: {detail}. If the site has no pretty \
                 permalinks, set targets.wordpress.rest_route_param = true"
            )),
            _ => classify_response(what, status, headers, &detail, false)
                .err()
                .unwrap_or_else(|| TargetError::retry(format!("{what}: HTTP {status}: {detail}"))),
        }
    }

    /// Reads the health route once: post type, route, meta keys, plugin version, largest batch.
    pub(super) async fn info(&self) -> Result<&SiteInfo, TargetError> {
        self.info.get_or_try_init(|| self.discover()).await
    }

    pub(super) async fn discover(&self) -> Result<SiteInfo, TargetError> {
        let what = format!(
            "wordpress {}: GET {PLUGIN_NAMESPACE}/health on {}",
            self.name,
            crate::http::redact_credentials(&self.site)
        );
        let a = self
            .send(&what, reqwest::Method::GET, &format!("{PLUGIN_NAMESPACE}/health"), None)
            .await?;
        if !(200..300).contains(&a.status) {
            return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
        }
        let h = &a.body;
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let version = s("version");
        if s("plugin") != "secutix-sync" {
            return Err(TargetError::permanent(format!(
                "{what}: the answer is not the companion plugin's: {}",
                crate::http::snippet(a.text.as_bytes())
            )));
        }
        if !version_at_least(&version, MIN_PLUGIN_VERSION) {
            return Err(TargetError::permanent(format!(
                "{what}: the companion plugin is version {version}; this daemon needs {}.{} or later: copy \
                 contrib/wordpress/secutix-sync.php over wp-content/mu-plugins/secutix-sync.php",
                MIN_PLUGIN_VERSION.0, MIN_PLUGIN_VERSION.1
            )));
        }
        let post_type = s("post_type");
        if post_type != self.post_type {
            return Err(TargetError::permanent(format!(
                "{what}: the plugin writes post type {post_type:?} but targets.wordpress.post_type is {:?}: make \
                 them equal (the plugin's comes from SECUTIX_SYNC_POST_TYPE in wp-config.php)",
                self.post_type
            )));
        }
        if h.get("post_type_registered") != Some(&Value::Bool(true))
            || h.get("supports_custom_fields") != Some(&Value::Bool(true))
        {
            return Err(TargetError::permanent(format!(
                "{what}: post type {post_type:?} is not registered or does not support custom-fields; WordPress \
                 would drop the meta. See contrib/wordpress/README.md"
            )));
        }
        let keys = h.get("meta_keys").and_then(Value::as_object);
        let missing: Vec<String> = fields::FIELDS
            .iter()
            .map(|f| format!("{META_PREFIX}{}", f.0))
            .filter(|k| !keys.is_some_and(|m| m.contains_key(k)))
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::permanent(format!(
                "{what}: the plugin does not register the meta key(s) {}; WordPress would drop them silently. \
                 Update contrib/wordpress/secutix-sync.php on the site (a `secutix_sync_meta_keys` filter must \
                 not remove them)",
                missing.join(", ")
            )));
        }
        let namespace = h.get("rest_namespace").and_then(Value::as_str).unwrap_or("wp/v2");
        let base = h
            .get("rest_base")
            .and_then(Value::as_str)
            .unwrap_or(self.post_type.as_str());
        let max_batch = h
            .get("max_batch_size")
            .and_then(Value::as_u64)
            .map_or(MAX_BATCH, |n| usize::try_from(n).unwrap_or(MAX_BATCH))
            .clamp(1, MAX_BATCH);
        let info = SiteInfo {
            route: format!("/{}/{}", namespace.trim_matches('/'), base.trim_matches('/')),
            max_batch,
        };
        tracing::info!(target_name = %self.name, site = %crate::http::redact_credentials(&self.site), wordpress = %s("wordpress"), plugin = %version, route = %info.route, max_batch, "WordPress site checked");
        Ok(info)
    }

    /// Finds the posts holding these external ids.
    pub(super) async fn lookup(&self, ids: &[&str]) -> Result<HashMap<String, Found>, TargetError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(100) {
            let what = format!("wordpress {}: lookup of {}", self.name, chunk.join(","));
            let route = format!("{PLUGIN_NAMESPACE}/lookup?external_ids={}", chunk.join(","));
            let a = self.send(&what, reqwest::Method::GET, &route, None).await?;
            if !(200..300).contains(&a.status) {
                return Err(self.error(&what, a.status, &a.headers, &a.body, &a.text));
            }
            let found: Vec<Found> = serde_json::from_value(a.body).map_err(|e| {
                TargetError::retry(format!(
                    "{what}: unexpected answer ({e}): {}",
                    crate::http::snippet(a.text.as_bytes())
                ))
            })?;
            for f in found {
                if !f.duplicates.is_empty() {
                    tracing::warn!(target_name = %self.name, external_id = %f.external_id, kept = f.id, duplicates = %f.duplicates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), "several WordPress posts hold one external id; the daemon updates the first, delete the others");
                }
                out.insert(f.external_id.to_ascii_lowercase(), f);
            }
        }
        Ok(out)
    }
}

/// `/wp/v2/event` for a `rest_route` query parameter (letters, digits, `/`, `-`, `_` only in our routes).
pub(super) fn encode_route(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/-_.".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}

/// `code: message (param: why, …)` of a WordPress REST error.
pub(super) fn wp_message(body: &Value) -> Option<String> {
    let code = body.get("code")?.as_str()?;
    let message = body.get("message").and_then(Value::as_str).unwrap_or_default();
    let mut s = format!("{code}: {message}");
    if let Some(params) = body.pointer("/data/params").and_then(Value::as_object) {
        let list: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        if !list.is_empty() {
            s.push_str(&format!(" ({})", list.join("; ")));
        }
    }
    Some(s)
}

/// `1.2.0` ≥ (1, 1)?
pub(super) fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}
