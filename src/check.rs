//! `secutix-sync check`: live checks of a configuration, before it is put into service.
//!
//! - SecuTix: `isCatalogServiceAlive` proves the base URL, the transport and the credentials (one call,
//!   counted in the store's monthly ledger when the store is available);
//! - every enabled target: [`Target::check`](crate::targets::Target::check) (a writable folder, a receiver
//!   that answers and accepts the configured headers, an API key that works…).
//!
//! The checks read the configuration on disk, not the one a running daemon holds, so an edited file can be
//! checked before `systemctl reload`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::secutix::{CallError, Client};
use crate::store::Store;

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    /// What was checked (`secutix`, `target website`).
    pub what: String,
    /// True when it works.
    pub ok: bool,
    /// What was found, or what failed and what to do.
    pub detail: String,
}

/// What a failed `isCatalogServiceAlive` means for the operator: the error (what happened), then what to
/// check when SecuTix could not be reached at all (this is one call, no retry).
fn secutix_failure(e: &CallError, base_url: &str) -> String {
    match e {
        CallError::Network { .. } | CallError::Timeout { .. } => format!(
            "SecuTix is unreachable from this server: {e}. Check that {base_url} is the right address \
             (secutix.environment, secutix.base_url), that this server may open HTTPS connections to it \
             (firewall, proxy, DNS), then run `secutix-sync check` again"
        ),
        CallError::Http { status: 500.., .. } | CallError::RateLimited { .. } => {
            format!("SecuTix answered but cannot serve now: {e}. Try again in a few minutes")
        }
        _ => e.to_string(),
    }
}

/// Runs every check; never fails as a whole (each failure is a line).
pub async fn run_checks(config: &Config, store: &Store) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let started = Instant::now();
    let secutix = match Client::new(&config.secutix, Arc::new(store.clone()), store.clock().clone()) {
        Ok(client) => match client.is_alive().await {
            Ok(()) => CheckLine {
                what: "secutix".into(),
                ok: true,
                detail: format!(
                    "isCatalogServiceAlive answered at {} in {} ms: credentials accepted",
                    client.base_url(),
                    started.elapsed().as_millis()
                ),
            },
            Err(e) => CheckLine {
                what: "secutix".into(),
                ok: false,
                detail: secutix_failure(&e, client.base_url()),
            },
        },
        Err(e) => CheckLine {
            what: "secutix".into(),
            ok: false,
            detail: e.to_string(),
        },
    };
    lines.push(secutix);
    for t in &config.targets {
        let what = format!("target {} ({:?})", t.name, t.kind).to_lowercase();
        if !t.enabled {
            lines.push(CheckLine {
                what,
                ok: true,
                detail: "disabled (targets.enabled = false): not checked".into(),
            });
            continue;
        }
        let line = match crate::targets::build(t, store) {
            Ok(target) => match target.check().await {
                Ok(detail) => CheckLine { what, ok: true, detail },
                Err(e) => CheckLine {
                    what,
                    ok: false,
                    detail: e.to_string(),
                },
            },
            Err(e) => CheckLine {
                what,
                ok: false,
                detail: e.to_string(),
            },
        };
        lines.push(line);
    }
    lines
}
