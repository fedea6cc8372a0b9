//! `[targets.wordpress]`: the settings of a WordPress target, their defaults and their problems.

#[allow(unused_imports)]
use super::*;

impl UnpublishStatus {
    /// WordPress's status name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnpublishStatus::Draft => "draft",
            UnpublishStatus::Private => "private",
        }
    }
}

pub(super) fn default_post_type() -> String {
    "event".into()
}

pub(super) fn default_language() -> String {
    "fr".into()
}

pub(super) fn default_batch_size() -> usize {
    MAX_BATCH
}

impl WordPressSettings {
    /// The Application Password, from `application_password` or `application_password_file`. Errors name
    /// the file, never the password.
    pub fn read_password(&self) -> Result<SecretString, String> {
        if let Some(p) = &self.application_password {
            return Ok(p.clone());
        }
        let Some(file) = &self.application_password_file else {
            return Err(
                "no Application Password: set targets.wordpress.application_password_file (recommended) or \
                 application_password"
                    .into(),
            );
        };
        let path = crate::credentials::resolve_credential_path(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the Application Password file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(format!("the Application Password file {} is empty", path.display()));
        }
        Ok(SecretString::from(line))
    }

    /// Problems as (key under `wordpress.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && self.allow_insecure_http => {}
            Ok(u) if u.scheme() == "http" => bad(
                "url",
                format!(
                    "{:?} is plain HTTP: the Application Password would cross the network in clear. Use https://, \
                     or set allow_insecure_http = true for a local test site",
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
        if self.user.trim().is_empty() {
            bad("user", "is empty: set the WordPress user the daemon acts as".into());
        }
        match (&self.application_password, &self.application_password_file) {
            (Some(_), Some(_)) => bad(
                "application_password",
                "is set together with application_password_file; keep only one".into(),
            ),
            (Some(s), None) if s.expose_secret().trim().is_empty() => bad("application_password", "is empty".into()),
            (None, _) => {
                if let Err(e) = self.read_password() {
                    bad("application_password_file", e);
                }
            }
            _ => {}
        }
        // WordPress's sanitize_key(), and register_post_type()'s 20-character limit.
        if self.post_type.is_empty()
            || self.post_type.len() > 20
            || !self
                .post_type
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            bad(
                "post_type",
                format!(
                    "{:?} is not a post type key (1 to 20 lowercase letters, digits, _ or -)",
                    self.post_type
                ),
            );
        }
        if self.language.len() != 2 || !self.language.chars().all(|c| c.is_ascii_lowercase()) {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            bad(
                "batch_size",
                format!(
                    "{} is out of range: 1 (no batches) to {MAX_BATCH} (WordPress's limit)",
                    self.batch_size
                ),
            );
        }
        for (k, m) in Ownership::problems(&self.owned_fields, &self.initial_fields) {
            bad(&k, m);
        }
        p
    }
}
