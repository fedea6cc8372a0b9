//! The operator CLI's side of the control API: an HTTP client of the running daemon.
//!
//! sled allows one process per store, so while the daemon runs, `status`, `resync`, `entries` (and `dlq`)
//! go through its control API. [`ControlClient::from_config`] finds the daemon the way the daemon finds
//! itself: `control.listen` (or, when it asks for port 0, the address the daemon wrote into
//! `<store.path>/control-address`) and the control token (`control.token`, `control.token_file` or
//! `<store.path>/control-token`). [`ClientError::NotRunning`] tells the caller to fall back to the store.
//!
//! [`wait_resync`] follows a resync to its end (the job's run, a chained run, then the outbox draining) and
//! reports [`Progress`] events, which the CLI shows as a progress bar on a terminal or as plain lines. The
//! counts it reports add up with the lines before them: a run's summary says how many operations it queued
//! ([`crate::daemon::status::JobsDocument::last_run`]), the push counts the operations delivered since the request, out of those delivered
//! plus those still waiting.

use crate::availability::PollProgress;
use crate::config::Config;
pub use crate::daemon::documents::ResyncAnswer;
use crate::daemon::documents::{
    DeadLettersDocument, DropAnswer, EntriesDocument, EntriesQuery, EntryDocument, PlanDocument, ReplayAnswer,
    ResyncRequest,
};
use crate::push::DeadLetter;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

mod wait;

pub use wait::*;

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address: no daemon runs (or it listens elsewhere).
    #[error("no secutix-sync daemon answers at {addr} (control.listen): {reason}")]
    NotRunning {
        /// The address tried.
        addr: String,
        /// The connection error.
        reason: String,
        /// The connection was refused: nothing listens there, the ordinary sign that no daemon runs (as
        /// opposed to a timeout or an unreachable host, which deserve a word to the operator).
        refused: bool,
    },
    /// No token exists yet: no daemon ever started on this store.
    #[error("no control token in {path}: no daemon has started on this store yet")]
    NoToken {
        /// Where it was looked for.
        path: String,
    },
    /// The token cannot be read.
    #[error("{0}")]
    Token(String),
    /// The daemon refused the token.
    #[error(
        "the daemon at {addr} refused the control token; the CLI must use the daemon's configuration \
         (--config) and be able to read its token"
    )]
    Unauthorized {
        /// The address.
        addr: String,
    },
    /// The daemon answered with an error.
    #[error("the daemon answered HTTP {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// Another transport failure (timeout…).
    #[error("talking to the daemon at {addr} failed: {reason}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An answer that is not what this version expects.
    #[error("unexpected answer from the daemon ({what}): {reason}; are the CLI and the daemon the same version?")]
    Decode {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
}

/// A client of one daemon's control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

/// The address of the daemon of `config`: `control.listen`, with a wildcard host read as loopback, or the
/// address file when the port is 0.
pub fn daemon_address(config: &Config) -> String {
    let listen = config.control.listen.trim();
    let parsed: Option<std::net::SocketAddr> = listen.parse().ok();
    match parsed {
        Some(a) if a.port() == 0 => {
            let file = config.store.path.join(crate::daemon::ADDRESS_FILE);
            std::fs::read_to_string(file)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| listen.to_owned())
        }
        Some(a) if a.ip().is_unspecified() => {
            let host = if a.is_ipv6() { "[::1]" } else { "127.0.0.1" };
            format!("{host}:{}", a.port())
        }
        _ => listen.to_owned(),
    }
}

impl ControlClient {
    /// A client of the API at `base` (`http://127.0.0.1:8087`) with `token`.
    pub fn new(base: impl Into<String>, token: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("secutix-sync-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    /// The client of the daemon described by `config`.
    pub fn from_config(config: &Config) -> Result<Self, ClientError> {
        let token = match crate::daemon::read_control_token(config) {
            Ok(Some((t, _))) => t,
            Ok(None) => {
                return Err(ClientError::NoToken {
                    path: config.store.path.join(crate::daemon::TOKEN_FILE).display().to_string(),
                });
            }
            Err(e) => return Err(ClientError::Token(e.to_string())),
        };
        Ok(Self::new(format!("http://{}", daemon_address(config)), token))
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() {
            let mut reason = e.to_string();
            let mut refused = false;
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                reason = s.to_string();
                refused |= s
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
                src = s.source();
            }
            ClientError::NotRunning {
                addr: self.addr(),
                reason,
                refused,
            }
        } else {
            ClientError::Http {
                addr: self.addr(),
                reason: e.to_string(),
            }
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        if status == 401 {
            return Err(ClientError::Unauthorized { addr: self.addr() });
        }
        if (200..300).contains(&status) || status == 409 {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{what}: {}", crate::http::snippet(text.as_bytes())));
        Err(ClientError::Api { status, message })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ClientError> {
        let resp = self.send(req, what).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /healthz`: Ok when the daemon answers.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.send(self.http.get(self.url("/healthz")), "GET /healthz")
            .await
            .map(|_| ())
    }

    /// `GET /readyz`: the readiness document (`ready` is false when not ready).
    pub async fn ready(&self) -> Result<crate::daemon::documents::ReadyDocument, ClientError> {
        let resp = self
            .http
            .get(self.url("/readyz"))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: "GET /readyz".into(),
            reason: e.to_string(),
        })
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<crate::daemon::status::StatusDocument, ClientError> {
        self.json(self.http.get(self.url("/status")), "GET /status").await
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self.send(self.http.get(self.url("/metrics")), "GET /metrics").await?;
        resp.text().await.map_err(|e| self.transport(e))
    }

    /// `POST /resync`. An "already running" answer is a success too.
    pub async fn resync(&self, req: &ResyncRequest) -> Result<ResyncAnswer, ClientError> {
        self.json(self.http.post(self.url("/resync")).json(req), "POST /resync")
            .await
    }

    /// `GET /entries/{id}`; `None` when there is no such entry.
    pub async fn entry(&self, id: &str) -> Result<Option<EntryDocument>, ClientError> {
        let path = format!("/entries/{}", urlencode(id));
        match self.json(self.http.get(self.url(&path)), "GET /entries/{id}").await {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /entries` with filters.
    pub async fn entries(&self, q: &EntriesQuery) -> Result<EntriesDocument, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(v) = &q.q {
            params.push(("q", v.clone()));
        }
        if let Some(v) = &q.availability {
            params.push(("availability", v.clone()));
        }
        if let Some(v) = q.limit {
            params.push(("limit", v.to_string()));
        }
        if let Some(v) = q.offset {
            params.push(("offset", v.to_string()));
        }
        self.json(self.http.get(self.url("/entries")).query(&params), "GET /entries")
            .await
    }

    /// `GET /push/plan`: what a push would send now, computed by the daemon on its own entries (a dry run:
    /// nothing is written, nothing is sent).
    pub async fn push_plan(&self, target: Option<&str>) -> Result<PlanDocument, ClientError> {
        let mut req = self.http.get(self.url("/push/plan"));
        if let Some(t) = target {
            req = req.query(&[("target", t)]);
        }
        self.json(req, "GET /push/plan").await
    }

    /// `GET /dlq`: dead letters of one target or of all.
    pub async fn dead_letters(&self, target: Option<&str>) -> Result<Vec<DeadLetter>, ClientError> {
        let mut req = self.http.get(self.url("/dlq"));
        if let Some(t) = target {
            req = req.query(&[("target", t)]);
        }
        let list: DeadLettersDocument = self.json(req, "GET /dlq").await?;
        Ok(list.dead_letters)
    }

    /// Replays one dead letter of `target` (`Some(id)`) or all of them. Returns (replayed, superseded).
    pub async fn replay(&self, target: &str, id: Option<u64>) -> Result<(u64, u64), ClientError> {
        let path = match id {
            Some(id) => format!("/dlq/{}/{id}/replay", urlencode(target)),
            None => format!("/dlq/{}/replay", urlencode(target)),
        };
        let r: ReplayAnswer = self.json(self.http.post(self.url(&path)), "POST /dlq/…/replay").await?;
        Ok((r.replayed, r.superseded))
    }

    /// Drops one dead letter of `target`; returns it.
    pub async fn drop_dead_letter(&self, target: &str, id: u64) -> Result<DeadLetter, ClientError> {
        let path = format!("/dlq/{}/{id}", urlencode(target));
        let d: DropAnswer = self.json(self.http.delete(self.url(&path)), "DELETE /dlq/…").await?;
        Ok(d.dropped)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests;
