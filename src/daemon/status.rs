//! The `/status` document (also `secutix-sync status`): jobs, catalogue, SecuTix calls against the budget,
//! indicator freshness, outbox and dead letters per target.
//!
//! [`status_document`] also works without a running daemon (the CLI reads the store directly when no daemon
//! answers), so online and offline output have one shape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::jobs::JobState;
use super::{App, Metrics};
use crate::config::Config;
use crate::push::Outbox;
use crate::store::{Store, StoreError};

/// How fresh the indicators of future performances are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Freshness {
    /// Future performances of live products.
    pub future_performances: u64,
    /// Of those, with a stored availability.
    pub known: u64,
    /// Never fetched.
    pub unknown: u64,
    /// Whose last refresh failed.
    pub stale: u64,
    /// Future performances per indicator (`available`, `almost_full`, `sold_out`, `not_on_sale`, `unknown`).
    pub by_status: BTreeMap<String, u64>,
    /// Oldest fetch time among the known ones.
    pub oldest_fetched_at: Option<DateTime<Utc>>,
}

/// Counts the indicators of future performances. The stored record is read through its serialised form
/// (`fetched_at`, `stale`) so this module depends only on contract A's `Serialize`.
pub fn freshness(store: &Store, now: DateTime<Utc>) -> Result<Freshness, StoreError> {
    let mut f = Freshness::default();
    let Some(view) = store.catalog()? else {
        return Ok(f);
    };
    let avail = crate::availability::AvailabilityStore::new(store)?;
    for record in view.products() {
        let record = record?;
        if record.removed_at.is_some() {
            continue;
        }
        for perf in record.product.performances().iter().filter(|p| !p.is_past(now)) {
            f.future_performances += 1;
            let stored = avail.performance(record.product.id, perf.id)?;
            let s = crate::availability::performance_status(&record.product, perf, stored.as_ref(), now);
            let status = crate::indicator::AvailabilityStatus::from_level(s.level.map(|l| l.code()), s.on_sale);
            *f.by_status.entry(status.as_str().to_owned()).or_default() += 1;
            match stored.map(|a| serde_json::to_value(&a).unwrap_or(Value::Null)) {
                None => f.unknown += 1,
                Some(v) => {
                    f.known += 1;
                    if v["stale"].as_bool() == Some(true) {
                        f.stale += 1;
                    }
                    if let Some(t) = v["fetched_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()) {
                        f.oldest_fetched_at = Some(f.oldest_fetched_at.map_or(t, |o| o.min(t)));
                    }
                }
            }
        }
    }
    Ok(f)
}

/// The job states of a daemon that is not running, from what the store remembers.
fn offline_jobs(store: &Store) -> Value {
    let last_import = store.import_history(1).ok().and_then(|h| h.into_iter().next());
    let last_good = store.last_good_import().ok().flatten();
    let last_poll = crate::availability::AvailabilityStore::new(store)
        .ok()
        .and_then(|a| a.last_poll().ok().flatten());
    json!({
        "catalogue": {
            "running": null,
            "last": last_import.map(|r| json!({
                "id": r.id, "started_at": r.started_at, "finished_at": r.finished_at,
                "ok": r.error.is_none(), "error": r.error, "summary": r,
            })),
            "last_success_at": last_good.map(|r| r.finished_at),
            "next_run_at": null,
        },
        "availability": {
            "running": null,
            "last": last_poll.map(|p| {
                // Shaped like a finished run, from the poll record's own fields.
                let v = serde_json::to_value(&p).unwrap_or(Value::Null);
                json!({"started_at": v["started_at"], "finished_at": v["finished_at"], "ok": v["ok"],
                       "error": v["error"], "summary": v})
            }),
            "next_run_at": null,
        },
        "refresh": {"running": null, "last": null, "next_run_at": null},
    })
}

fn job_json(state: JobState, extra: Value) -> Value {
    let mut v = serde_json::to_value(state).unwrap_or(Value::Null);
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}

/// The `/status` document. With `live` (a running daemon) the jobs' live state and the counters since start
/// are included; without, what the store remembers.
pub fn status_document(cfg: &Config, store: &Store, outbox: &Outbox, live: Option<&App>) -> Value {
    let now = store.clock().now();
    let catalogue = store.catalog().ok().flatten();
    let history = store.import_history(1).unwrap_or_default();
    let last_good = store.last_good_import().ok().flatten();
    let avail = crate::availability::AvailabilityStore::new(store).ok();
    let last_poll = avail.as_ref().and_then(|a| a.last_poll().ok().flatten());
    let recent = avail
        .as_ref()
        .and_then(|a| a.recent_changes(1).ok())
        .unwrap_or_default();
    let mut targets = serde_json::Map::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let pending = outbox.pending(name).unwrap_or_default();
        let oldest = pending.iter().map(|p| p.enqueued_at).min();
        let next_attempt = pending.iter().map(|p| p.next_attempt_at).min();
        let last_error = pending
            .iter()
            .filter(|p| p.last_error.is_some())
            .max_by_key(|p| p.attempts)
            .and_then(|p| p.last_error.clone());
        let dead = outbox.dead_letters(&[name.to_owned()]).map(|d| d.len()).unwrap_or(0);
        let acked = outbox.acks(name).map(|a| a.len()).unwrap_or(0);
        let mut row = json!({
            "kind": t.kind.name(),
            "enabled": t.enabled,
            "outbox": pending.len(),
            "oldest_pending_since": oldest,
            "next_attempt_at": next_attempt,
            "last_error": last_error,
            "dead_letters": dead,
            "acknowledged": acked,
        });
        if t.passculture().is_some() {
            row["passculture"] = passculture_status(store, name);
        }
        if let Some(app) = live {
            row["delivered_since_start"] = json!(Metrics::get(&app.metrics.delivered, name));
            row["failed_attempts_since_start"] = json!(Metrics::get(&app.metrics.retried, name));
            row["dead_since_start"] = json!(Metrics::get(&app.metrics.dead, name));
        }
        targets.insert(name.to_owned(), row);
    }
    let schedule = json!({
        "schedule": cfg.daemon.catalogue_schedule,
        "time_zone": if cfg.daemon.time_zone.is_empty() { store.time_zone().name().to_owned() } else { cfg.daemon.time_zone.clone() },
    });
    let (daemon, jobs) = match live {
        Some(app) => (
            json!({"running": true, "pid": std::process::id(), "started_at": app.started_at}),
            json!({
                "catalogue": job_json(app.catalogue.state(), schedule),
                "availability": job_json(app.availability.state(), json!({})),
                "refresh": job_json(app.refresh.state(), json!({"interval_secs": cfg.daemon.refresh_interval.as_secs()})),
            }),
        ),
        None => {
            let mut jobs = offline_jobs(store);
            if let (Value::Object(m), Value::Object(x)) = (&mut jobs["catalogue"], schedule) {
                m.extend(x);
            }
            (json!({"running": false}), jobs)
        }
    };
    let calls = store.calls_in_month(now);
    let budget = cfg.availability.monthly_call_budget;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now": now,
        "daemon": daemon,
        "institution": cfg.secutix.institution,
        "transport": format!("{:?}", cfg.secutix.transport).to_lowercase(),
        "store": cfg.store.path,
        "jobs": jobs,
        "catalogue": {
            "generation": catalogue.as_ref().map(|c| c.meta.generation),
            "imported_at": catalogue.as_ref().and_then(|c| c.meta.imported_at),
            "products": catalogue.as_ref().map(|c| c.meta.live),
            "tombstones": catalogue.as_ref().map(|c| c.meta.tombstones),
            "last_import": history.first(),
            "last_good_import_at": last_good.map(|r| r.finished_at),
        },
        "secutix": {
            "calls_this_month": calls,
            "calls_today": store.calls_on_day(now),
            "monthly_call_budget": budget,
            "budget_used_percent": if budget == 0 { 0.0 } else { (calls as f64 * 1000.0 / budget as f64).round() / 10.0 },
            "bytes_this_month": store.bytes_in_month(now),
        },
        "availability": {
            "enabled": cfg.availability.enabled,
            "last_poll": last_poll,
            "last_change_at": recent.first().map(|c| c.at),
            "indicators": freshness(store, now).ok(),
        },
        "targets": targets,
    })
}

/// The pass Culture side of a `passculture` target in `/status`: its offers with their pass Culture status
/// (`PENDING` while pass Culture validates, `ACTIVE`, `REJECTED`…), counted by status.
fn passculture_status(store: &Store, target: &str) -> Value {
    match crate::targets::passculture::offer_statuses(store, target) {
        Ok(offers) => {
            let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
            for o in &offers {
                *by_status
                    .entry(o.status.clone().unwrap_or_else(|| "UNKNOWN".to_owned()))
                    .or_default() += 1;
            }
            json!({
                "offers": offers.len(),
                "by_status": by_status,
                "statuses_read_at": offers.iter().filter_map(|o| o.status_at).max(),
                "list": offers,
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}
