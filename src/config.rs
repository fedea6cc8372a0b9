//! Configuration: layered loading, validation, unknown-key detection, secrets.
//!
//! Layers, later ones win (the `config` crate):
//! 1. `config/default.toml`, compiled into the binary; it documents every key;
//! 2. the operator's file: `--config FILE`, default `/etc/secutix-sync/config.toml` (skipped if absent);
//! 3. environment variables `SECUTIX_SYNC__SECTION__KEY` (e.g. `SECUTIX_SYNC__SECUTIX__INSTITUTION=MOSA`).
//!
//! Keys that no section knows, in the file or as `SECUTIX_SYNC__…` variables, are reported as likely typos
//! ([`Loaded::unknown_keys`]). Secrets are [`SecretString`]s: their `Debug` output is redacted and they are
//! only exposed where a request is signed or authenticated. Secret files, and a configuration file holding
//! secrets inline, that other users may read are warnings ([`exposed_secret_files`]); plain-HTTP URLs beyond
//! loopback are refused unless their section sets `allow_insecure_http` ([`crate::http::clear_text_problem`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod load;
mod shape;

pub use load::{CredentialOwner, CredentialProblem, Report, credentials_hint};

/// The configuration defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Where the operator's file is looked up when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/secutix-sync/config.toml";

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "SECUTIX_SYNC";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// How to reach SecuTix.
    pub secutix: SecutixConfig,
    /// What to import and how.
    pub catalogue: CatalogueConfig,
    /// The embedded database.
    pub store: StoreConfig,
    /// Availability polling inside the SecuTix call budget.
    pub availability: AvailabilityConfig,
    /// How entries are built.
    pub entries: EntriesConfig,
    /// Where entries go (`[[targets]]`, one table per target).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Scheduling and lifecycle of `run`.
    pub daemon: DaemonConfig,
    /// The control API.
    pub control: ControlConfig,
    /// Logging.
    pub logging: LoggingConfig,
}

/// `[daemon]`
#[derive(Debug, Clone, Deserialize)]
pub struct DaemonConfig {
    /// Cron expression (5 or 6 fields) of the catalogue import, in the venue's time zone.
    pub catalogue_schedule: String,
    /// IANA time zone of the schedule; empty = the venue's (`organizationTimeZone` from getPOSConfig), else UTC.
    pub time_zone: String,
    /// `/readyz` fails when the last good import is older than this.
    #[serde(with = "humantime_serde")]
    pub catalogue_max_age: Duration,
    /// First retry delay after a failed import (doubles with jitter up to `catalogue_retry_max`).
    #[serde(with = "humantime_serde")]
    pub catalogue_retry: Duration,
    /// Longest retry delay after failed imports.
    #[serde(with = "humantime_serde")]
    pub catalogue_retry_max: Duration,
    /// Every entry is rebuilt this often, so that time-dependent fields (past performances, sale periods
    /// opening or closing) reach the targets without waiting for SecuTix.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// On SIGTERM, how long in-flight requests may take before they are abandoned (they stay in the outbox).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[control]`
#[derive(Debug, Clone, Deserialize)]
pub struct ControlConfig {
    /// Listen address of the control API (keep it on loopback; put a reverse proxy in front for the public part).
    pub listen: String,
    /// Connections open at once; one more is answered 503 and closed at once (keeps the process's open
    /// files for the store and outbound calls whatever clients do).
    pub max_connections: usize,
    /// Time a client has to send a request's headers once its connection is ready for one (silent and
    /// keep-alive connections are closed after it).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long while no request is handled, or a request body that
    /// stops arriving for this long, is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Bearer token of private endpoints, inline (prefer `token_file`).
    pub token: Option<SecretString>,
    /// File holding the token. When neither is set, a token is generated at first start and kept in
    /// `<store.path>/control-token` (mode 0600), where the CLI finds it.
    pub token_file: String,
    /// Origins allowed to read `/public/availability` from a browser (CORS), e.g. `https://www.theatre.fr`.
    pub cors_origins: Vec<String>,
    /// `Cache-Control: max-age` of the public endpoint.
    #[serde(with = "humantime_serde")]
    pub public_max_age: Duration,
}

/// Shortest control token accepted when the control API listens beyond loopback.
pub const MIN_REMOTE_TOKEN_LEN: usize = 32;

impl ControlConfig {
    /// What the control API's listener accepts.
    pub fn listener_limits(&self) -> crate::net::ListenerLimits {
        crate::net::ListenerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// True when `listen` is a loopback address (an unparsable one counts as beyond: its own check says why).
    pub fn listens_on_loopback(&self) -> bool {
        self.listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// Why `token` may not guard this control API: shorter than [`MIN_REMOTE_TOKEN_LEN`] characters while
    /// `listen` is beyond loopback. `key` is where the token comes from (`control.token`, `control.token_file`).
    pub fn weak_token_problem(&self, token: &SecretString, key: &str) -> Option<String> {
        let len = token.expose_secret().trim().chars().count();
        (len < MIN_REMOTE_TOKEN_LEN && !self.listens_on_loopback()).then(|| {
            format!(
                "the token from {key} has {len} characters, but control.listen ({}) is beyond loopback: use a token \
                 of at least {MIN_REMOTE_TOKEN_LEN} random characters (e.g. `openssl rand -hex 32`), or leave \
                 control.token and control.token_file unset to have one generated, or listen on 127.0.0.1",
                self.listen
            )
        })
    }
}

/// `[logging]`
#[derive(Debug, Clone, Deserialize)]
pub struct LoggingConfig {
    /// `auto` (human on a terminal, journald-friendly under systemd), `human`, `journald` or `json`.
    pub format: LogFormat,
    /// Filter, e.g. `info` or `secutix_sync=debug,info`; `SECUTIX_SYNC_LOG` overrides it.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pick from the environment.
    Auto,
    /// Colours and timestamps.
    Human,
    /// No timestamps (journald adds them), levels kept.
    Journald,
    /// One JSON object per line.
    Json,
}

/// `[entries]`
#[derive(Debug, Clone, Deserialize)]
pub struct EntriesConfig {
    /// Languages of texts and links (ISO 639-1); empty = `languageList` from getPOSConfig.
    pub languages: Vec<String>,
    /// Part of every content hash: raising it re-sends every entry to every target.
    pub mapping_version: u32,
    /// Ticket shop base URL (`https://<shop host>`), the `{shop}` of the templates; empty = no booking links.
    pub shop_url: String,
    /// Product "Book" link template.
    pub book_url: String,
    /// Performance link template.
    pub performance_url: String,
    /// Customer account link template (empty = none).
    pub account_url: String,
    /// Profile link template (empty = none).
    pub profile_url: String,
    /// Registration link template (empty = none).
    pub register_url: String,
    /// SecuTix product states whose entries are published (`RUNNING`, `SUSPENDED` by default); products in
    /// other states (`PREPARING`: not announced yet) are unpublished on every target and left out of the
    /// public document.
    pub published_states: Vec<String>,
}

impl EntriesConfig {
    /// The options of `merge::build_entry`.
    pub fn options(&self) -> crate::merge::EntryOptions {
        let links = [
            ("account", &self.account_url),
            ("profile", &self.profile_url),
            ("register", &self.register_url),
        ]
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(k, t)| (k.to_owned(), t.clone()))
        .collect();
        crate::merge::EntryOptions {
            languages: self.languages.iter().map(|l| l.to_ascii_lowercase()).collect(),
            mapping_version: self.mapping_version,
            shop_url: self.shop_url.clone(),
            book_url: self.book_url.clone(),
            performance_url: self.performance_url.clone(),
            links,
            published_states: self
                .published_states
                .iter()
                .map(|s| crate::catalog::State::parse(s))
                .collect(),
        }
    }
}

/// The SecuTix product states `entries.published_states` may list.
const KNOWN_STATES: &[&str] = &[
    "PREPARING",
    "VALIDATED",
    "RUNNING",
    "SUSPENDED",
    "CANCELED",
    "CLOSED",
    "CANCELED_CLOSED",
];

/// The kind of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// JSON files in a folder.
    Files,
    /// Generic JSON over HTTP(S).
    Webhook,
    /// pass Culture's public API: event offers, price categories and dates for young people.
    Passculture,
    /// WordPress REST API, with the companion plugin (`contrib/wordpress/`).
    Wordpress,
    /// Drupal JSON:API.
    Drupal,
}

/// `[[targets]]`: one target. Kind-specific settings are in a sub-table named after the kind
/// (`[targets.files]`, `[targets.webhook]`, `[targets.passculture]`, `[targets.wordpress]`, `[targets.drupal]`).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetConfig {
    /// Unique name (letters, digits, `-`, `_`): used in commands, metrics and the store.
    pub name: String,
    /// The kind.
    pub kind: TargetKind,
    /// A disabled target keeps its state but receives nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `unpublish` (default), `delete` or `keep` for products SecuTix no longer lists.
    #[serde(default = "default_delete_policy")]
    pub delete_policy: crate::push::DeletePolicy,
    /// Operations in flight at once; unset = the kind's default ([`TargetConfig::concurrency`]).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Operations per second, retries included; unset = the kind's default. For a kind that sends batches
    /// (wordpress), one batch request counts as one.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Timeout of one operation; unset = the kind's default. An operation is one request for most kinds,
    /// but a whole offer (several paced requests) for pass Culture, hence a longer default there.
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Attempts before an operation goes to dead letters.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay (doubles, with full jitter).
    #[serde(default = "default_backoff_initial", with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// `[targets.files]`
    pub files: Option<crate::targets::files::FilesSettings>,
    /// `[targets.webhook]`
    pub webhook: Option<crate::targets::webhook::WebhookSettings>,
    /// `[targets.passculture]`
    pub passculture: Option<crate::targets::passculture::PassCultureSettings>,
    /// `[targets.wordpress]`
    pub wordpress: Option<crate::targets::wordpress::WordPressSettings>,
    /// `[targets.drupal]`
    pub drupal: Option<crate::targets::drupal::DrupalSettings>,
}

fn default_true() -> bool {
    true
}
fn default_delete_policy() -> crate::push::DeletePolicy {
    crate::push::DeletePolicy::Unpublish
}
fn default_attempts() -> u32 {
    8
}
fn default_backoff_initial() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30 * 60)
}

impl TargetConfig {
    /// Operations in flight at once: the configured value, else 1 for pass Culture (its API allows 200
    /// requests a minute for the whole key), 2 for WordPress (each is a batch of up to 25 operations: two
    /// PHP workers busy at most) and 4 for the others.
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(match self.kind {
            TargetKind::Passculture => 1,
            TargetKind::Wordpress => 2,
            _ => 4,
        })
    }

    /// Operations per second: the configured value, else 3 for pass Culture (180 a minute, under its 200;
    /// the target also paces each of its own requests) and 10 for the others.
    pub fn rate_per_second(&self) -> u32 {
        self.rate_per_second.unwrap_or(match self.kind {
            TargetKind::Passculture => 3,
            _ => 10,
        })
    }

    /// Timeout of one operation: the configured value, else 10 minutes for pass Culture (one operation
    /// publishes a whole offer, request by request, at the API's pace), 60 seconds for WordPress (one
    /// batch writes up to 25 posts) and 20 seconds for the others.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(match self.kind {
            TargetKind::Passculture => Duration::from_secs(600),
            TargetKind::Wordpress => Duration::from_secs(60),
            _ => Duration::from_secs(20),
        })
    }

    /// The worker settings of this target.
    pub fn push_settings(&self) -> crate::push::PushSettings {
        crate::push::PushSettings {
            delete_policy: self.delete_policy,
            concurrency: self.concurrency(),
            rate_per_second: self.rate_per_second(),
            request_timeout: self.request_timeout(),
            max_attempts: self.max_attempts,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }

    fn validate(&self, i: usize, p: &mut Vec<Problem>) {
        let key = |k: &str| format!("targets[{i}].{k}");
        let mut bad = |k: &str, m: String| {
            p.push(Problem {
                key: key(k),
                message: m,
            })
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad(
                "name",
                format!("{:?} is not a target name (letters, digits, - and _)", self.name),
            );
        }
        if self.concurrency() == 0 {
            bad("concurrency", "must be at least 1".into());
        }
        if self.rate_per_second() == 0 {
            bad("rate_per_second", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            bad("max_attempts", "must be at least 1".into());
        }
        if self.request_timeout().is_zero() || self.backoff_initial.is_zero() {
            bad(
                "request_timeout",
                "request_timeout and backoff_initial must be longer than 0s".into(),
            );
        }
        let sub = match self.kind {
            TargetKind::Files => ("files", self.files.is_some()),
            TargetKind::Webhook => ("webhook", self.webhook.is_some()),
            TargetKind::Passculture => ("passculture", self.passculture.is_some()),
            TargetKind::Wordpress => ("wordpress", self.wordpress.is_some()),
            TargetKind::Drupal => ("drupal", self.drupal.is_some()),
        };
        if !sub.1 {
            bad(
                sub.0,
                format!(
                    "kind = \"{0}\" needs a [targets.{0}] table after this [[targets]]",
                    sub.0
                ),
            );
        }
        if let Some(f) = &self.files
            && f.path.as_os_str().is_empty()
        {
            bad("files.path", "is empty; set the output folder".into());
        }
        if let Some(w) = &self.webhook {
            match url::Url::parse(&w.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "webhook.url",
                    format!("{:?} is not an http(s) URL", crate::http::redact_credentials(&w.url)),
                ),
            }
            if let Some(m) = w.clear_text_problem() {
                bad("webhook.url", m);
            }
            if w.secret.is_some() && w.secret_file.is_some() {
                bad(
                    "webhook.secret",
                    "is set together with webhook.secret_file; keep only one".into(),
                );
            } else if let Some(file) = &w.secret_file {
                let path = resolve_credential_path(file);
                if let Err(e) = std::fs::read_to_string(&path) {
                    bad(
                        "webhook.secret_file",
                        format!("cannot read the secret file {}: {e}", path.display()),
                    );
                }
            }
        }
        if self.kind == TargetKind::Passculture && self.delete_policy == crate::push::DeletePolicy::Delete {
            bad(
                "delete_policy",
                "\"delete\" is refused for a passculture target: deleting a pass Culture date cancels the young \
                 people's bookings. Use \"unpublish\" (future dates get quantity 0) or \"keep\""
                    .into(),
            );
        }
        if let Some(pc) = &self.passculture {
            for (k, m) in pc.problems() {
                bad(&format!("passculture.{k}"), m);
            }
        }
        if let Some(wp) = &self.wordpress {
            for (k, m) in wp.problems() {
                bad(&format!("wordpress.{k}"), m);
            }
        }
        if let Some(d) = &self.drupal {
            for (k, m) in d.problems() {
                bad(&format!("drupal.{k}"), m);
            }
        }
    }
}

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

/// `[catalogue]`
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogueConfig {
    /// getCatalogDetailed (DTOs) or getCatalog (the catalogue as an XML string).
    pub method: CatalogueMethod,
    /// Keep only these season codes (empty = all). One code is also sent as `seasonCode`.
    pub season_codes: Vec<String>,
    /// Keep only these product codes (empty = all). One code is also sent as `productCode`.
    pub product_codes: Vec<String>,
    /// Product families to keep (`productFamilyType`).
    pub product_families: Vec<String>,
    /// `scope` parameter of getCatalogDetailed (e.g. `EXTENDED`); empty = not sent.
    pub scope: String,
    /// First wait after `statusCode: in_progress`; doubles up to `in_progress_max_backoff`.
    #[serde(with = "humantime_serde")]
    pub in_progress_backoff: Duration,
    /// Longest wait between two in_progress re-calls.
    #[serde(with = "humantime_serde")]
    pub in_progress_max_backoff: Duration,
    /// Overall deadline of one import (all re-calls and back-offs included).
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Minimum time between two fresh catalogue calls (SecuTix: one per 10 minutes), kept across restarts.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Refuse an import that would remove more than this share of the live products (or all of them).
    pub shrink_guard_ratio: f64,
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

/// `[availability]`: polling availabilities inside the SecuTix call budget (see `crate::availability`).
#[derive(Debug, Clone, Deserialize)]
pub struct AvailabilityConfig {
    /// The daemon polls availabilities (the `availability` command works either way).
    pub enabled: bool,
    /// SecuTix calls allowed per month for the whole integration (catalogue included); the standard
    /// contract gives the institution 10,000.
    pub monthly_call_budget: u64,
    /// Share of `monthly_call_budget` kept for catalogue calls, tokens and retries; availability polling
    /// spends at most the rest.
    pub reserve_share: f64,
    /// Ask `getUpdatedAvailabilities` which products changed. Off: products are refreshed in priority order
    /// inside the budget, without asking (for institutions where that method is unreliable).
    pub use_updated_availabilities: bool,
    /// Method for dated events: `getEventAvailability` or `getPerformanceAvailability`.
    pub event_method: EventMethod,
    /// Shortest time between two polls; SecuTix asks for at most one availability call a minute per cycle.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Longest time between two polls while budget is left (a poll then spends less).
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Products with a performance starting within this are "near" (refreshed first, every poll).
    #[serde(with = "humantime_serde")]
    pub near_window: Duration,
    /// Products with a performance starting within this (and not near) are "mid"; the rest are "far".
    #[serde(with = "humantime_serde")]
    pub mid_window: Duration,
    /// Mid products are asked about every this many polls.
    pub mid_every: u32,
    /// Far products are asked about every this many polls.
    pub far_every: u32,
    /// Most calls one poll may spend (also the most credit the pacing can save up).
    pub max_calls_per_poll: u32,
    /// Most ids (products or performances) sent in one call; longer lists are split.
    pub ids_per_call: usize,
    /// Percentage of remaining seats at or under which a performance is "almost full" when SecuTix sends
    /// counts and the event has no `alertRatio`.
    pub alert_ratio: f64,
    /// Longest back-off after polls that failed on rate limits (509/429), timeouts or network errors.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Indicator changes kept in the change log.
    pub change_log_size: usize,
    /// Polls kept in the poll history.
    pub poll_history_size: usize,
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

impl Default for AvailabilityConfig {
    /// The values of `config/default.toml`.
    fn default() -> Self {
        let table: toml::Table = toml::from_str(DEFAULT_TOML).expect("config/default.toml is valid TOML");
        table
            .get("availability")
            .cloned()
            .expect("config/default.toml has an [availability] section")
            .try_into()
            .expect("config/default.toml's [availability] section is valid")
    }
}

impl AvailabilityConfig {
    fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        if self.monthly_call_budget == 0 {
            bad(
                "availability.monthly_call_budget",
                "must be at least 1 (the standard SecuTix contract allows 10000 calls a month)".into(),
            );
        }
        if !(self.reserve_share >= 0.0 && self.reserve_share < 1.0) {
            bad(
                "availability.reserve_share",
                format!("{} is not a share in [0, 1), e.g. 0.1", self.reserve_share),
            );
        }
        if self.min_interval < Duration::from_secs(60) {
            bad(
                "availability.min_interval",
                format!(
                    "{} is under 1 minute; SecuTix allows availability methods at most once a minute",
                    humantime::format_duration(self.min_interval)
                ),
            );
        }
        if self.max_interval < self.min_interval {
            bad(
                "availability.max_interval",
                "is shorter than availability.min_interval".into(),
            );
        }
        if self.backoff_max < self.min_interval {
            bad(
                "availability.backoff_max",
                "is shorter than availability.min_interval".into(),
            );
        }
        if self.near_window.is_zero() {
            bad(
                "availability.near_window",
                "must be longer than 0s, e.g. \"48h\"".into(),
            );
        }
        if self.mid_window < self.near_window {
            bad(
                "availability.mid_window",
                "is shorter than availability.near_window".into(),
            );
        }
        for (key, v) in [
            ("availability.mid_every", self.mid_every as u64),
            ("availability.far_every", self.far_every as u64),
            ("availability.max_calls_per_poll", self.max_calls_per_poll as u64),
            ("availability.ids_per_call", self.ids_per_call as u64),
            ("availability.change_log_size", self.change_log_size as u64),
            ("availability.poll_history_size", self.poll_history_size as u64),
        ] {
            if v == 0 {
                bad(key, "must be at least 1".into());
            }
        }
        if !(self.alert_ratio >= 0.0 && self.alert_ratio <= 100.0) {
            bad(
                "availability.alert_ratio",
                format!("{} is not a percentage in [0, 100], e.g. 20", self.alert_ratio),
            );
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// Folder of the sled database (one process at a time).
    pub path: PathBuf,
    /// sled page cache, MiB.
    pub cache_mib: u64,
}

/// One configuration problem, tied to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`secutix.institution`) or the environment variable's name.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist or cannot be read.
    #[error("cannot read the configuration file {path}: {reason}; check --config")]
    File {
        /// The path.
        path: PathBuf,
        /// The I/O or syntax error.
        reason: String,
    },
    /// One or more keys are invalid.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// Credentials this command needs cannot be used (the rest of the configuration is valid).
    #[error(
        "credentials needed here cannot be read:\n{}\n{}",
        .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"),
        load::credentials_hint()
    )]
    Credentials(Vec<Problem>),
}

/// Where the layers come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The operator's file; `None` means the default path, read only if it exists.
    pub file: Option<PathBuf>,
    /// Environment variables to read; `None` means the process environment.
    pub env: Option<BTreeMap<String, String>>,
    /// Extra overrides applied last, as TOML (used by `demo` and tests).
    pub overrides: Option<String>,
}

impl Sources {
    /// The operator's file at `path` and the process environment.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    /// The operator's file these sources read: `file`, else the default path when it exists.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.file
            .clone()
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()))
    }
}

/// A loaded configuration and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Keys or variables no section knows (likely typos).
    pub unknown_keys: Vec<Problem>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Credentials that cannot be used; only commands that call SecuTix or a target need them
    /// ([`Loaded::require_credentials`]).
    pub credentials: Vec<CredentialProblem>,
    /// Valid, but probably not what the operator wants (no `[[targets]]`).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// Checks the credentials a command uses: the SecuTix secret when `secutix`, and those of the targets
    /// named in `targets`. The error says how a command gets them under systemd.
    pub fn require_credentials(&self, secutix: bool, targets: &[&str]) -> Result<(), ConfigError> {
        let missing: Vec<Problem> = self
            .credentials
            .iter()
            .filter(|c| match &c.owner {
                CredentialOwner::Secutix => secutix,
                CredentialOwner::Target(name) => targets.contains(&name.as_str()),
            })
            .map(|c| c.problem.clone())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Credentials(missing))
        }
    }
}

impl Config {
    /// Loads the layers, deserialises and validates, credentials included: every problem found is returned
    /// at once. For `run` and the commands that call SecuTix and every target.
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let report = Self::report(sources)?;
        if !report.problems.is_empty() {
            let mut all = report.problems;
            all.extend(report.credentials.into_iter().map(|c| c.problem));
            return Err(ConfigError::Invalid(all));
        }
        let loaded = Loaded::from(report);
        let targets: Vec<&str> = loaded.config.targets.iter().map(|t| t.name.as_str()).collect();
        loaded.require_credentials(true, &targets)?;
        Ok(loaded)
    }

    /// Like [`Config::load`], but credentials that cannot be read are left in [`Loaded::credentials`]
    /// instead of failing: for commands that read the store or ask the running daemon, which need none.
    pub fn load_without_credentials(sources: &Sources) -> Result<Loaded, ConfigError> {
        let report = Self::report(sources)?;
        if !report.problems.is_empty() {
            return Err(ConfigError::Invalid(report.problems));
        }
        Ok(Loaded::from(report))
    }

    /// Everything loading finds, problems included (for `validate-config`). `Err` only when a layer
    /// cannot be read at all (a missing `--config` file, a TOML syntax error).
    pub fn report(sources: &Sources) -> Result<Report, ConfigError> {
        let env_vars: BTreeMap<String, String> = match &sources.env {
            Some(map) => map.clone(),
            None => std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect(),
        };
        let (builder, file) = layers(sources, &env_vars)?;
        let raw = builder.build().map_err(|e| ConfigError::File {
            path: file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
            reason: e.to_string(),
        })?;
        load::report(&raw, file, &env_vars)
    }

    /// Checks values that types alone cannot (non-empty, ranges, URL syntax, readable secret file).
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut bad = |key: &str, message: String| {
            p.push(Problem {
                key: key.to_owned(),
                message,
            })
        };
        let s = &self.secutix;
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
                if let Err(e) = self.secutix.read_secret() {
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
            ("catalogue.in_progress_backoff", self.catalogue.in_progress_backoff),
            (
                "catalogue.in_progress_max_backoff",
                self.catalogue.in_progress_max_backoff,
            ),
            ("catalogue.deadline", self.catalogue.deadline),
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
        let c = &self.catalogue;
        if !(c.shrink_guard_ratio > 0.0 && c.shrink_guard_ratio <= 1.0) {
            bad(
                "catalogue.shrink_guard_ratio",
                format!("{} is not a share in (0, 1], e.g. 0.5", c.shrink_guard_ratio),
            );
        }
        if c.product_families.is_empty() {
            bad(
                "catalogue.product_families",
                "is empty: nothing would be imported; the usual value is [\"SINGLE_ENTRY\"]".into(),
            );
        }
        if c.in_progress_max_backoff < c.in_progress_backoff {
            bad(
                "catalogue.in_progress_max_backoff",
                "is shorter than catalogue.in_progress_backoff".into(),
            );
        }
        if self.store.path.as_os_str().is_empty() {
            bad(
                "store.path",
                "is empty; set the folder of the database, e.g. /var/lib/secutix-sync".into(),
            );
        }
        let d = &self.daemon;
        if let Err(e) = d.catalogue_schedule.parse::<croner::Cron>() {
            bad(
                "daemon.catalogue_schedule",
                format!(
                    "{:?} is not a cron expression (e.g. \"30 5 * * *\"): {e}",
                    d.catalogue_schedule
                ),
            );
        }
        if !d.time_zone.is_empty() && d.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bad(
                "daemon.time_zone",
                format!("{:?} is not an IANA time zone such as \"Europe/Paris\"", d.time_zone),
            );
        }
        for (key, v) in [
            ("daemon.catalogue_retry", d.catalogue_retry),
            ("daemon.refresh_interval", d.refresh_interval),
            ("daemon.catalogue_max_age", d.catalogue_max_age),
        ] {
            if v.is_zero() {
                bad(key, "must be longer than 0s".into());
            }
        }
        if self.control.listen.parse::<std::net::SocketAddr>().is_err() {
            bad(
                "control.listen",
                format!("{:?} is not an address such as 127.0.0.1:8087", self.control.listen),
            );
        }
        if self.control.token.is_some() && !self.control.token_file.is_empty() {
            bad(
                "control.token",
                "is set together with control.token_file; keep only one".into(),
            );
        }
        if let Some(m) = self
            .control
            .token
            .as_ref()
            .and_then(|t| self.control.weak_token_problem(t, "control.token"))
        {
            bad("control.token", m);
        }
        if !self.control.token_file.is_empty() {
            // Unreadable here (another user's file): the daemon, which must read it, says so at start.
            let path = resolve_credential_path(&self.control.token_file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let token = SecretString::from(text.lines().next().unwrap_or("").to_owned());
                if let Some(m) = self.control.weak_token_problem(&token, "control.token_file") {
                    bad("control.token_file", format!("{}: {m}", path.display()));
                }
            }
        }
        if !(1..=crate::net::MAX_CONNECTIONS).contains(&self.control.max_connections) {
            bad(
                "control.max_connections",
                format!(
                    "{} is outside 1..={} (the default is 256; each connection is an open file)",
                    self.control.max_connections,
                    crate::net::MAX_CONNECTIONS
                ),
            );
        }
        for (key, d) in [
            ("control.header_read_timeout", self.control.header_read_timeout),
            ("control.idle_timeout", self.control.idle_timeout),
        ] {
            if d.is_zero() || d > crate::net::MAX_TIMEOUT {
                bad(
                    key,
                    format!(
                        "{} is not between 1s and {} (e.g. \"10s\", \"60s\")",
                        humantime::format_duration(d),
                        humantime::format_duration(crate::net::MAX_TIMEOUT)
                    ),
                );
            }
        }
        if let Some(o) = self
            .control
            .cors_origins
            .iter()
            .find(|o| o.as_str() != "*" && url::Url::parse(o).is_err())
        {
            bad(
                "control.cors_origins",
                format!("{o:?} is not an origin such as https://www.theatre.fr (or \"*\" for any)"),
            );
        }
        let e = &self.entries;
        if e.mapping_version == 0 {
            bad("entries.mapping_version", "must be at least 1".into());
        }
        if !e.shop_url.is_empty() && url::Url::parse(&e.shop_url).is_err() {
            bad(
                "entries.shop_url",
                format!("{:?} is not a URL such as https://mosa.shop.secutix.com", e.shop_url),
            );
        }
        if let Some(l) = e
            .languages
            .iter()
            .find(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bad(
                "entries.languages",
                format!("{l:?} is not an ISO 639-1 code such as \"fr\""),
            );
        }
        if e.published_states.is_empty() {
            bad(
                "entries.published_states",
                "is empty: no product would be published; list the states to publish, e.g. [\"RUNNING\", \"SUSPENDED\"]"
                    .into(),
            );
        }
        for s in &e.published_states {
            if let crate::catalog::State::Other(_) = crate::catalog::State::parse(s) {
                bad(
                    "entries.published_states",
                    format!(
                        "{s:?} is not a SecuTix product state; valid: {}",
                        KNOWN_STATES.join(", ")
                    ),
                );
            }
        }
        self.availability.validate(&mut bad);
        for (i, t) in self.targets.iter().enumerate() {
            t.validate(i, &mut p);
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if !names.insert(t.name.as_str()) {
                p.push(Problem {
                    key: format!("targets[{i}].name"),
                    message: format!("{:?} is used by two targets", t.name),
                });
            }
        }
        p
    }
}

impl SecutixConfig {
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

pub use crate::credentials::resolve_credential_path;

/// Keys whose value is a secret when written inline in a configuration file, whatever their section.
const INLINE_SECRET_KEYS: &[&str] = &[
    "secret",
    "token",
    "password",
    "application_password",
    "client_secret",
    "api_key",
    "headers",
];

/// Files holding a secret that users other than their owner may read (group or world read bits): the
/// secret files the configuration names, and the configuration `file` itself
/// when it holds a secret inline. Each is a warning (the configuration stays valid) naming the file, its
/// mode and the fix; a file that does not exist or cannot be examined is left out (its own check reports it).
pub fn exposed_secret_files(config: &Config, file: Option<&Path>) -> Vec<Problem> {
    let mut named: Vec<(String, String)> = Vec::new();
    let mut name = |key: String, value: Option<&String>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            named.push((key, v.clone()));
        }
    };
    if config.secutix.secret.is_none() {
        name("secutix.secret_file".into(), Some(&config.secutix.secret_file));
    }
    name("control.token_file".into(), Some(&config.control.token_file));
    for (i, t) in config.targets.iter().enumerate() {
        let key = |k: &str| format!("targets[{i}].{k}");
        if let Some(w) = &t.webhook {
            name(key("webhook.secret_file"), w.secret_file.as_ref());
        }
        if let Some(w) = &t.wordpress {
            name(
                key("wordpress.application_password_file"),
                w.application_password_file.as_ref(),
            );
        }
        if let Some(d) = &t.drupal {
            name(key("drupal.password_file"), d.password_file.as_ref());
            name(key("drupal.token_file"), d.token_file.as_ref());
            name(key("drupal.client_secret_file"), d.client_secret_file.as_ref());
        }
        if let Some(p) = &t.passculture {
            name(key("passculture.api_key_file"), p.api_key_file.as_ref());
        }
    }
    let mut out = Vec::new();
    for (key, path) in named.into_iter().map(|(key, n)| (key, resolve_credential_path(&n))) {
        if let Some((who, mode)) = readable_by_others(&path) {
            out.push(Problem {
                key,
                message: format!(
                    "{} holds a secret and is readable by {who} (mode {mode:04o}): chmod 600 it (under systemd, \
                     LoadCredential= hands a root-only file to the service)",
                    path.display()
                ),
            });
        }
    }
    if let Some(path) = file
        && let Some((who, mode)) = readable_by_others(path)
    {
        let inline = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .map(|table| inline_secrets(&toml::Value::Table(table), ""))
            .unwrap_or_default();
        if !inline.is_empty() {
            out.push(Problem {
                key: inline.join(", "),
                message: format!(
                    "the configuration file {} holds {} inline and is readable by {who} (mode {mode:04o}): chmod \
                     600 it, or better move each secret into a file named by its *_file key, handed over with \
                     systemd's LoadCredential=",
                    path.display(),
                    if inline.len() == 1 { "a secret" } else { "secrets" }
                ),
            });
        }
    }
    out
}

/// `Some((who, mode))` when `path` exists and its group or others may read it.
fn readable_by_others(path: &Path) -> Option<(&'static str, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (_, true) => Some(("every user of the host", mode)),
        (true, false) => Some(("its group", mode)),
        _ => None,
    }
}

/// The dotted keys of `value` (a TOML tree) that hold a secret inline.
fn inline_secrets(value: &toml::Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                let filled = match v {
                    toml::Value::String(s) => !s.trim().is_empty(),
                    toml::Value::Table(t) => !t.is_empty(),
                    _ => false,
                };
                if INLINE_SECRET_KEYS.contains(&k.as_str()) && filled {
                    out.push(key);
                } else {
                    out.extend(inline_secrets(v, &key));
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                out.extend(inline_secrets(v, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

fn layers(
    sources: &Sources,
    env_vars: &BTreeMap<String, String>,
) -> Result<(config::ConfigBuilder<config::builder::DefaultState>, Option<PathBuf>), ConfigError> {
    let mut builder =
        config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
    let file = match &sources.file {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: "no such file".into(),
                });
            }
            Some(path.clone())
        }
        None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    // Lists (every list key of the schema) are split on commas here; the other variables go to the
    // config crate's environment source.
    let (plain, lists) = load::split_environment(env_vars);
    let env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(plain.into_iter().collect()));
    builder = builder.add_source(env);
    if let Some(lists) = lists {
        builder = builder.add_source(config::File::from_str(&lists, config::FileFormat::Toml));
    }
    if let Some(extra) = &sources.overrides {
        builder = builder.add_source(config::File::from_str(extra, config::FileFormat::Toml));
    }
    Ok((builder, file))
}

impl From<Report> for Loaded {
    fn from(r: Report) -> Self {
        Loaded {
            config: r.config,
            unknown_keys: r.unknown_keys,
            file: r.file,
            credentials: r.credentials,
            warnings: r.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn minimal_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
            ("SECUTIX_SYNC__SECUTIX__OPERATOR", "MOSA_WEBSYNC"),
            ("SECUTIX_SYNC__SECUTIX__PARTNER", "Venue"),
            ("SECUTIX_SYNC__SECUTIX__SECRET", "s3cret-value"),
            ("SECUTIX_SYNC__STORE__PATH", "/tmp/x"),
        ]
    }

    #[test]
    fn environment_overrides_defaults_and_lists_split_on_commas() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_FAMILIES", "SINGLE_ENTRY,PASS"));
        vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "0.25"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(loaded.config.secutix.institution, "MOSA");
        assert_eq!(loaded.config.catalogue.product_families, vec!["SINGLE_ENTRY", "PASS"]);
        assert_eq!(loaded.config.catalogue.shrink_guard_ratio, 0.25);
        assert_eq!(loaded.config.secutix.base_url(), "https://mosa.ws.secutix.com");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    }

    #[test]
    fn unknown_env_variable_is_reported_with_its_name() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO", "0.2"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(loaded.unknown_keys.len(), 1);
        assert_eq!(loaded.unknown_keys[0].key, "catalogue.shrink_gaurd_ratio");
        assert!(
            loaded.unknown_keys[0]
                .message
                .contains("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO")
        );
    }

    #[test]
    fn unknown_file_key_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[secutix]\ninstitutoin = \"X\"\n").expect("write");
        let loaded = Config::load(&Sources {
            file: Some(path),
            env: env(&minimal_env()),
            overrides: None,
        })
        .expect("loads");
        assert_eq!(loaded.unknown_keys[0].key, "secutix.institutoin");
    }

    #[test]
    fn every_problem_is_named_and_the_secret_never_printed() {
        let vars = vec![
            ("SECUTIX_SYNC__SECUTIX__SECRET", "top-secret-xyz"),
            ("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "1.5"),
            ("SECUTIX_SYNC__CATALOGUE__DEADLINE", "0s"),
        ];
        let err = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect_err("invalid");
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "secutix.institution",
            "secutix.operator",
            "catalogue.shrink_guard_ratio",
            "catalogue.deadline",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(!err.to_string().contains("top-secret-xyz"));
    }

    #[test]
    fn wrong_type_names_the_key() {
        let mut vars = minimal_env();
        vars.push(("SECUTIX_SYNC__SECUTIX__CALLS_PER_MINUTE", "lots"));
        let err = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("calls_per_minute"), "{err}");
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let loaded = Config::load(&Sources {
            env: env(&minimal_env()),
            ..Default::default()
        })
        .expect("loads");
        let dbg = format!("{:?}", loaded.config);
        assert!(!dbg.contains("s3cret-value"), "{dbg}");
    }

    #[test]
    fn secret_file_is_read_and_missing_file_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        let mut vars: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .collect();
        let p = path.to_string_lossy().to_string();
        vars.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &p));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            loaded.config.secutix.read_secret().expect("secret").expose_secret(),
            "from-file"
        );

        let missing = dir.path().join("nope").to_string_lossy().to_string();
        let mut vars2: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .collect();
        vars2.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &missing));
        let err = Config::load(&Sources {
            env: env(&vars2),
            ..Default::default()
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("secutix.secret_file"), "{err}");
    }

    #[test]
    fn every_list_key_of_the_schema_reads_comma_separated_from_the_environment() {
        let keys: Vec<String> = load::schema().list_keys().map(str::to_owned).collect();
        assert!(keys.len() >= 5, "{keys:?}");
        for key in &keys {
            let name = format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_ascii_uppercase());
            let mut vars = minimal_env();
            vars.push((name.as_str(), "ab,cd"));
            let report = Config::report(&Sources {
                env: env(&vars),
                ..Default::default()
            })
            .expect("report");
            let type_problems: Vec<&Problem> = report
                .problems
                .iter()
                .filter(|p| p.key == *key && p.message.contains("is not a list"))
                .collect();
            assert!(type_problems.is_empty(), "{name}: {type_problems:?}");
            assert!(report.unknown_keys.is_empty(), "{name}: {:?}", report.unknown_keys);
        }
        let mut vars = minimal_env();
        vars.push((
            "SECUTIX_SYNC__CONTROL__CORS_ORIGINS",
            "https://a.example,https://b.example",
        ));
        vars.push(("SECUTIX_SYNC__ENTRIES__LANGUAGES", "fr,en"));
        vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_CODES", "1234"));
        let loaded = Config::load(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            loaded.config.control.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(loaded.config.entries.languages, vec!["fr", "en"]);
        assert_eq!(loaded.config.catalogue.product_codes, vec!["1234"]);
    }

    #[test]
    fn validate_config_reports_every_layer_of_problems_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"OP\"\npartner = \"P\"\nsecret_file = \"nope\"\n\
             request_timeout = 90\ncalls_per_minute = \"lots\"\ninstitutoin = \"X\"\n\
             [catalogue]\nshrink_guard_ratio = 1.5\n\
             [[targets]]\nname = \"site\"\nkind = \"file\"\n\
             [[targets]]\nname = \"hook\"\nkind = \"webhook\"\nmax_attempts = \"many\"\n\
             [targets.webhook]\nurl = \"not a url\"\nurll = \"x\"\n",
        )
        .expect("write");
        let report = Config::report(&Sources {
            file: Some(path),
            env: Some(BTreeMap::new()),
            overrides: None,
        })
        .expect("report");
        let message = |key: &str| -> String {
            report
                .problems
                .iter()
                .filter(|p| p.key == key)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        // Two wrong types in one section, each with an example.
        assert!(message("secutix.request_timeout").contains("\"90s\""), "{report:#?}");
        assert!(
            message("secutix.calls_per_minute").contains("whole number"),
            "{report:#?}"
        );
        // A value problem next to the type problems.
        assert!(message("catalogue.shrink_guard_ratio").contains("1.5"), "{report:#?}");
        // A wrong kind lists the kinds; once.
        let kind = message("targets[0].kind");
        assert!(
            kind.contains("\"files\"") && kind.contains("\"drupal\"") && !kind.contains(" | "),
            "{kind}"
        );
        // The second target: its wrong type and its value problem, under its own place.
        assert!(
            message("targets[1].max_attempts").contains("whole number"),
            "{report:#?}"
        );
        assert!(message("targets[1].webhook.url").contains("not a url"), "{report:#?}");
        // No bogus problem on the targets as a whole.
        assert!(message("targets").is_empty(), "{report:#?}");
        // Unknown keys, with the likely intended one.
        let unknown: Vec<(&str, &str)> = report
            .unknown_keys
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert!(
            unknown.contains(&(
                "secutix.institutoin",
                "unknown key (a typo?); it is ignored (did you mean secutix.institution?)"
            )),
            "{unknown:?}"
        );
        assert!(
            unknown.iter().any(|(k, _)| *k == "targets[1].webhook.urll"),
            "{unknown:?}"
        );
        // The missing secret, apart.
        assert_eq!(report.credentials.len(), 1, "{:?}", report.credentials);
        assert_eq!(report.credentials[0].owner, CredentialOwner::Secutix);
        assert_eq!(report.credentials[0].problem.key, "secutix.secret_file");
        // Nothing in Rust's wording.
        let all = format!("{:?}{:?}", report.problems, report.unknown_keys);
        for rust in ["variant constructor", "for key `", "Some(", "None"] {
            assert!(!all.contains(rust), "{rust} in {all}");
        }
    }

    #[test]
    fn a_configuration_without_targets_is_valid_but_warned_about() {
        let report = Config::report(&Sources {
            env: env(&minimal_env()),
            ..Default::default()
        })
        .expect("report");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].message.contains("sent nowhere"),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn credentials_are_required_only_by_the_commands_that_use_them() {
        let vars: Vec<(&str, &str)> = minimal_env()
            .into_iter()
            .filter(|(k, _)| !k.ends_with("SECRET"))
            .chain([("SECUTIX_SYNC__SECUTIX__SECRET_FILE", "no-such-secutix-secret")])
            .collect();
        let sources = Sources {
            env: env(&vars),
            overrides: Some(
                "[[targets]]\nname = \"site\"\nkind = \"wordpress\"\n[targets.wordpress]\n\
                 url = \"https://www.theatre.example\"\nuser = \"u\"\napplication_password_file = \"no-such-file\"\n\
                 [[targets]]\nname = \"out\"\nkind = \"files\"\n[targets.files]\npath = \"/tmp/out\"\n"
                    .into(),
            ),
            ..Default::default()
        };
        let err = Config::load(&sources).expect_err("run needs every credential");
        let text = err.to_string();
        assert!(
            text.contains("secutix.secret_file") && text.contains("targets[0].wordpress.application_password_file"),
            "{text}"
        );
        assert!(
            text.contains("CREDENTIALS_DIRECTORY") && text.contains("LoadCredential="),
            "{text}"
        );

        let loaded = Config::load_without_credentials(&sources).expect("the store commands load it");
        assert_eq!(loaded.credentials.len(), 2, "{:?}", loaded.credentials);
        loaded
            .require_credentials(false, &["out"])
            .expect("the files target needs none");
        let wp = loaded
            .require_credentials(false, &["site"])
            .expect_err("wordpress needs its password");
        assert!(!wp.to_string().contains("secutix.secret_file"), "{wp}");
        let secutix = loaded
            .require_credentials(true, &[])
            .expect_err("SecuTix needs its secret");
        assert!(secutix.to_string().contains("secutix.secret_file"), "{secutix}");
    }
}
