//! `[secutix]` and the SecuTix method choices: the settings of the SecuTix client, owned here and assembled by
//! [`crate::config`] (which loads, layers and reports them).
//!
//! The secret is a [`SecretString`]: redacted in `Debug`, exposed only where a request is signed.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::credentials::resolve_credential_path;

/// Which SecuTix environment the institution lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// `https://<instit>.ws.secutix.com`
    Production,
    /// `https://<instit>.demo-ws.secutix.com`
    Demo,
    /// `https://<instit>.pp-ws.secutix.com`
    Preprod,
}

/// REST (JSON) or SOAP (XML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `POST …/tnseb/backend-apis/<service>/v1_33/<method>` with a JSON body and a Bearer JWT.
    Rest,
    /// SOAP 1.1 on `…/tnseb/external-remoting/…webservice` with a WS-Security UsernameToken.
    Soap,
}

/// How REST calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// An HS256 JWT forged locally with the secret: costs no SecuTix call.
    Jwt,
    /// A token fetched from `POST /tnai/backend-apis/v1/auth` (one call, cached).
    TokenEndpoint,
}

/// `[secutix]`
#[derive(Debug, Clone, Deserialize)]
pub struct SecutixConfig {
    /// Institution code, e.g. `MOSA`; lowercased it is the host's first label.
    pub institution: String,
    /// production | demo | preprod.
    pub environment: Environment,
    /// Explicit base URL (`https://host[:port]`), overriding `environment`; empty = derived.
    pub base_url: String,
    /// Accept an `http://` `base_url` or `token_endpoint` beyond loopback: the secret (SOAP `PasswordText`,
    /// or the JWT signed with it) then crosses the network in clear.
    pub allow_insecure_http: bool,
    /// rest | soap.
    pub transport: Transport,
    /// Web-service version in paths and namespaces.
    pub api_version: String,
    /// jwt | token_endpoint.
    pub auth: AuthMode,
    /// Virtual operator (JWT `aud`, SOAP user name, token endpoint `operator`).
    pub operator: String,
    /// Partner name (JWT `iss`, token endpoint `partner`).
    pub partner: String,
    /// The operator's secret, inline. Prefer `secret_file`.
    pub secret: Option<SecretString>,
    /// File holding the secret (one line). Relative paths are resolved in `$CREDENTIALS_DIRECTORY` when
    /// systemd provides one (`LoadCredential=`), else against the working directory.
    pub secret_file: String,
    /// Token endpoint URL; empty = `<base>/tnai/backend-apis/v1/auth`.
    pub token_endpoint: String,
    /// Lifetime of a forged JWT (`exp - iat`).
    #[serde(with = "humantime_serde")]
    pub jwt_lifetime: Duration,
    /// How long a token from the endpoint is reused.
    #[serde(with = "humantime_serde")]
    pub token_reuse: Duration,
    /// Timeout of one HTTP call, connection to last byte.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Timeout to establish a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Calls per minute per service (SecuTix allows 60 per endpoint and institution).
    pub calls_per_minute: u32,
    /// Largest response accepted, in MiB; a bigger body is refused with an error.
    pub max_response_mib: u64,
    /// Largest answer accepted from every call but the catalogue (getPOSConfig, availability, the token
    /// endpoint, error bodies), in MiB. Those answers are read whole into memory, so this bounds the
    /// daemon's memory whatever SecuTix sends (see `secutix::SMALL_VALUES_PER_MIB`).
    pub max_small_response_mib: u64,
}

/// Which catalogue method is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CatalogueMethod {
    /// The catalogue as DTOs (the default).
    #[serde(rename = "getCatalogDetailed")]
    GetCatalogDetailed,
    /// The catalogue as an XML string in `catalogData`.
    #[serde(rename = "getCatalog")]
    GetCatalog,
}

impl CatalogueMethod {
    /// The SecuTix method name.
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogueMethod::GetCatalogDetailed => "getCatalogDetailed",
            CatalogueMethod::GetCatalog => "getCatalog",
        }
    }
}

/// The availability method for dated events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum EventMethod {
    /// `getEventAvailability` (`performanceIds`, `seatCategoryIds: []`): SecuTix's method "for dated events".
    #[serde(rename = "getEventAvailability")]
    GetEventAvailability,
    /// `getPerformanceAvailability` (`performanceIds`).
    #[serde(rename = "getPerformanceAvailability")]
    GetPerformanceAvailability,
}

impl SecutixConfig {
    /// Checks `[secutix]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        let s = self;
        if s.institution.trim().is_empty() {
            bad(
                "secutix.institution",
                "is empty; set the institution code, e.g. institution = \"MOSA\"".into(),
            );
        } else if !s
            .institution
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad(
                "secutix.institution",
                format!(
                    "{:?} is not an institution code (letters and digits only)",
                    s.institution
                ),
            );
        }
        if s.operator.trim().is_empty() {
            bad(
                "secutix.operator",
                "is empty; set the virtual operator, e.g. operator = \"MOSA_WEBSYNC\"".into(),
            );
        }
        if s.auth == AuthMode::Jwt && s.transport == Transport::Rest && s.partner.trim().is_empty() {
            bad(
                "secutix.partner",
                "is empty; the forged JWT needs the partner name SecuTix gave you (claim iss)".into(),
            );
        }
        match (&s.secret, s.secret_file.trim().is_empty()) {
            (Some(_), false) => bad(
                "secutix.secret",
                "is set together with secutix.secret_file; keep only one".into(),
            ),
            (None, true) => bad(
                "secutix.secret",
                "no secret configured; set secutix.secret_file (recommended) or SECUTIX_SYNC__SECUTIX__SECRET".into(),
            ),
            (None, false) => {
                if let Err(e) = self.read_secret() {
                    bad("secutix.secret_file", e);
                }
            }
            (Some(secret), true) if secret.expose_secret().trim().is_empty() => {
                bad("secutix.secret", "is empty; set the operator's secret".into())
            }
            _ => {}
        }
        if !s.base_url.is_empty() {
            match url::Url::parse(&s.base_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "secutix.base_url",
                    format!(
                        "{:?} is not an http(s) URL; leave it empty to derive it from environment",
                        crate::http::redact_credentials(&s.base_url)
                    ),
                ),
            }
        }
        if !s.token_endpoint.is_empty() && url::Url::parse(&s.token_endpoint).is_err() {
            bad(
                "secutix.token_endpoint",
                format!("{:?} is not a URL", crate::http::redact_credentials(&s.token_endpoint)),
            );
        }
        for (key, url) in [
            ("secutix.base_url", &s.base_url),
            ("secutix.token_endpoint", &s.token_endpoint),
        ] {
            let secret = "the operator's secret (SOAP sends it as PasswordText; REST sends a token signed with it)";
            if let Some(m) = crate::http::clear_text_problem(url, s.allow_insecure_http, secret) {
                bad(key, format!("{m} (secutix.allow_insecure_http)"));
            }
        }
        if s.api_version.is_empty() || !s.api_version.starts_with('v') {
            bad(
                "secutix.api_version",
                format!("{:?} is not a version such as \"v1_33\"", s.api_version),
            );
        }
        for (key, d) in [
            ("secutix.jwt_lifetime", s.jwt_lifetime),
            ("secutix.token_reuse", s.token_reuse),
            ("secutix.request_timeout", s.request_timeout),
            ("secutix.connect_timeout", s.connect_timeout),
        ] {
            if d.is_zero() {
                bad(key, "must be longer than 0s (e.g. \"30s\", \"10m\")".into());
            }
        }
        if s.calls_per_minute == 0 {
            bad(
                "secutix.calls_per_minute",
                "must be at least 1 (SecuTix allows 60)".into(),
            );
        }
        if s.max_response_mib == 0 {
            bad("secutix.max_response_mib", "must be at least 1".into());
        }
        if !(1..=64).contains(&s.max_small_response_mib) {
            bad(
                "secutix.max_small_response_mib",
                format!(
                    "{} is not between 1 and 64 (MiB; the default 4 is far above any real answer)",
                    s.max_small_response_mib
                ),
            );
        }
    }

    /// The base URL: explicit, or derived from the environment and the institution code.
    pub fn base_url(&self) -> String {
        if !self.base_url.is_empty() {
            return self.base_url.trim_end_matches('/').to_owned();
        }
        let host = match self.environment {
            Environment::Production => "ws.secutix.com",
            Environment::Demo => "demo-ws.secutix.com",
            Environment::Preprod => "pp-ws.secutix.com",
        };
        format!("https://{}.{host}", self.institution.to_ascii_lowercase())
    }

    /// The secret, from `secret` or `secret_file`. The error names the file, never the content.
    pub fn read_secret(&self) -> Result<SecretString, String> {
        if let Some(s) = &self.secret {
            return Ok(s.clone());
        }
        let path = resolve_credential_path(&self.secret_file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(format!("the secret file {} is empty", path.display()));
        }
        Ok(SecretString::from(line))
    }
}
