//! `[targets.drupal]`: the settings of a Drupal target, their defaults, secrets and problems.

#[allow(unused_imports)]
use super::*;

pub(super) fn default_bundle() -> String {
    "event".into()
}

pub(super) fn default_jsonapi_path() -> String {
    "/jsonapi".into()
}

pub(super) fn default_language() -> String {
    "fr".into()
}

pub(super) fn default_body_format() -> String {
    "basic_html".into()
}

pub(super) fn default_field_prefix() -> String {
    "field_secutix_".into()
}

/// Reads a secret given inline or in a file; errors name the key and the file, never the secret.
pub(super) fn secret(inline: &Option<SecretString>, file: &Option<String>, key: &str) -> Result<SecretString, String> {
    if let Some(s) = inline {
        if s.expose_secret().trim().is_empty() {
            return Err(format!("targets.drupal.{key} is empty"));
        }
        return Ok(s.clone());
    }
    let Some(file) = file else {
        return Err(format!(
            "no {key}: set targets.drupal.{key}_file (recommended) or targets.drupal.{key}"
        ));
    };
    let path = crate::credentials::resolve_credential_path(file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read the {key} file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(format!("the {key} file {} is empty", path.display()));
    }
    Ok(SecretString::from(line))
}

pub(super) fn machine_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl DrupalSettings {
    /// Problems as (key under `drupal.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && self.allow_insecure_http => {}
            Ok(u) if u.scheme() == "http" => bad(
                "url",
                format!(
                    "{:?} is plain HTTP: credentials would cross the network in clear. Use https://, or set \
                     allow_insecure_http = true for a local test site",
                    crate::http::redact_credentials(&self.url)
                ),
            ),
            _ => bad(
                "url",
                format!(
                    "{:?} is not the site's address, such as https://www.theatre.fr",
                    crate::http::redact_credentials(&self.url)
                ),
            ),
        }
        if !machine_name_ok(&self.bundle) {
            bad(
                "bundle",
                format!("{:?} is not a content type machine name such as \"event\"", self.bundle),
            );
        }
        if !self.jsonapi_path.starts_with('/') {
            bad(
                "jsonapi_path",
                format!("{:?} must start with /, e.g. \"/jsonapi\"", self.jsonapi_path),
            );
        }
        match self.auth {
            DrupalAuthKind::Basic => {
                if self.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    bad("user", "is missing: auth = \"basic\" needs the Drupal user name".into());
                }
                if self.password.is_some() && self.password_file.is_some() {
                    bad("password", "is set together with password_file; keep only one".into());
                } else if let Err(e) = secret(&self.password, &self.password_file, "password") {
                    bad("password_file", e);
                }
            }
            DrupalAuthKind::Bearer => {
                if self.token.is_some() && self.token_file.is_some() {
                    bad("token", "is set together with token_file; keep only one".into());
                } else if let Err(e) = secret(&self.token, &self.token_file, "token") {
                    bad("token_file", e);
                }
            }
            DrupalAuthKind::Oauth2 => {
                if self.client_id.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    bad(
                        "client_id",
                        "is missing: auth = \"oauth2\" needs the consumer's client id".into(),
                    );
                }
                if self.client_secret.is_some() && self.client_secret_file.is_some() {
                    bad(
                        "client_secret",
                        "is set together with client_secret_file; keep only one".into(),
                    );
                } else if let Err(e) = secret(&self.client_secret, &self.client_secret_file, "client_secret") {
                    bad("client_secret_file", e);
                }
                if !self.token_url.is_empty() && url::Url::parse(&self.token_url).is_err() {
                    bad("token_url", format!("{:?} is not a URL", self.token_url));
                }
            }
        }
        if self.language.len() != 2 || !self.language.chars().all(|c| c.is_ascii_lowercase()) {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        for (k, v) in &self.fields {
            if !fields::FIELDS.iter().any(|f| f.0 == k) {
                let known: Vec<&str> = fields::FIELDS.iter().map(|f| f.0).collect();
                bad(
                    &format!("fields.{k}"),
                    format!("is not a field the daemon writes; known keys: {}", known.join(", ")),
                );
            } else if !v.is_empty() && !machine_name_ok(v) {
                bad(
                    &format!("fields.{k}"),
                    format!(
                        "{v:?} is not a Drupal field machine name (lowercase letters, digits and _, at most 32 \
                         characters), or \"\" to leave the field out"
                    ),
                );
            }
        }
        for f in fields::FIELDS {
            let name = self.field_name(f.0);
            if !name.is_empty() && !self.fields.contains_key(f.0) && !machine_name_ok(&name) {
                bad(
                    "field_prefix",
                    format!(
                        "gives {name:?} for {}, not a Drupal field machine name (at most 32 characters); map \
                         it in [targets.drupal.fields]",
                        f.0
                    ),
                );
            }
        }
        for (k, m) in Ownership::problems(&self.owned_fields, &self.initial_fields) {
            bad(&k, m);
        }
        p
    }

    /// The Drupal field name of a key; empty when left out.
    pub fn field_name(&self, key: &str) -> String {
        self.fields
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("{}{key}", self.field_prefix))
    }
}
