//! The `/status` document (also `secutix-sync status`): jobs, catalogue, SecuTix calls against the budget,
//! indicator freshness, outbox and dead letters per target.
//!
//! [`status_document`] also works without a running daemon (the CLI reads the store directly when no daemon
//! answers), so online and offline output have one shape.

use std::collections::BTreeMap;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jobs::{Finished, JobState, Running};
use super::summaries::{CataloguePlan, CatalogueRun, FollowUp, PlanSummary, PollRun, RefreshRun};
use super::{App, Metrics};
use crate::availability::PollRecord;
use crate::config::Config;
use crate::push::Outbox;
use crate::store::ImportReport;
use crate::store::{Store, StoreError};
use crate::targets::passculture::OfferStatus;

/// How fresh the indicators of future performances are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// The `/status` document (also `secutix-sync status`, with or without a daemon).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDocument {
    /// secutix-sync's version.
    pub version: String,
    /// The daemon's clock.
    pub now: DateTime<Utc>,
    /// Whether a daemon answered, and which.
    pub daemon: DaemonState,
    /// The SecuTix institution.
    pub institution: String,
    /// `rest` or `soap`.
    pub transport: String,
    /// The store's folder.
    pub store: PathBuf,
    /// The jobs.
    pub jobs: JobsDocument,
    /// The catalogue in force.
    pub catalogue: CatalogueStatus,
    /// SecuTix calls against the month's budget.
    pub secutix: CallsStatus,
    /// Availability polling and the indicators' freshness.
    pub availability: PollingStatus,
    /// Per configured target.
    pub targets: BTreeMap<String, TargetStatus>,
    /// What could not be read from the store (the figures above it would be part of are left out, never
    /// shown as zeros).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// Whether a daemon runs (it built the document) or the store was read directly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonState {
    /// A daemon answered.
    pub running: bool,
    /// Its process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

/// A job in `/status`: its state and how it is scheduled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDocument<S> {
    /// Running, last run, next run.
    #[serde(flatten)]
    pub state: JobState<S>,
    /// The catalogue's cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The zone the cron expression is read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The refresh's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
}

impl<S> JobDocument<S> {
    fn plain(state: JobState<S>) -> Self {
        Self {
            state,
            schedule: None,
            time_zone: None,
            interval_secs: None,
        }
    }
}

/// The three jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsDocument {
    /// The catalogue import.
    pub catalogue: JobDocument<CatalogueRun>,
    /// The availability poll.
    pub availability: JobDocument<PollRun>,
    /// The refresh of every entry.
    pub refresh: JobDocument<RefreshRun>,
}

impl JobsDocument {
    /// The last finished run of `job` (`catalogue`, `availability`, `refresh`), its number, and its line.
    pub fn last_run(&self, job: &str) -> Option<FinishedRun> {
        fn of<S>(j: &JobDocument<S>, line: impl Fn(&S) -> String) -> Option<FinishedRun> {
            j.state.last.as_ref().map(|l| FinishedRun {
                id: l.id,
                ok: l.ok,
                finished_at: l.finished_at,
                line: l.line(line),
                then: l.then.clone(),
            })
        }
        match job {
            "catalogue" => of(&self.catalogue, CatalogueRun::line),
            "availability" => of(&self.availability, PollRun::line),
            "refresh" => of(&self.refresh, RefreshRun::line),
            _ => None,
        }
    }

    /// The plan the last finished run of `job` made, if it made one.
    pub fn last_plan(&self, job: &str) -> Option<&PlanSummary> {
        match job {
            "catalogue" => match self.catalogue.state.last.as_ref()?.summary.as_ref()?.plan.as_ref()? {
                CataloguePlan::Planned(p) => Some(p),
                CataloguePlan::Deferred(_) => None,
            },
            "availability" => self.availability.state.last.as_ref()?.summary.as_ref()?.plan.as_ref(),
            "refresh" => Some(&self.refresh.state.last.as_ref()?.summary.as_ref()?.plan),
            _ => None,
        }
    }

    /// The run in progress of `job`.
    pub fn running(&self, job: &str) -> Option<&Running> {
        match job {
            "catalogue" => self.catalogue.state.running.as_ref(),
            "availability" => self.availability.state.running.as_ref(),
            "refresh" => self.refresh.state.running.as_ref(),
            _ => None,
        }
    }

    /// The next scheduled run of `job`.
    pub fn next_run_at(&self, job: &str) -> Option<DateTime<Utc>> {
        match job {
            "catalogue" => self.catalogue.state.next_run_at,
            "availability" => self.availability.state.next_run_at,
            "refresh" => self.refresh.state.next_run_at,
            _ => None,
        }
    }
}

/// A finished run of any job, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    /// Its number (none for a run the store remembers from before the daemon).
    pub id: Option<u64>,
    /// It did its job.
    pub ok: bool,
    /// When.
    pub finished_at: DateTime<Utc>,
    /// What it did, or its error.
    pub line: String,
    /// The run it asked for when it ended.
    pub then: Option<FollowUp>,
}

/// The catalogue in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CatalogueStatus {
    /// Its generation (none before the first successful import).
    pub generation: Option<u64>,
    /// When the import that made it finished.
    pub imported_at: Option<DateTime<Utc>>,
    /// Live products.
    pub products: Option<u64>,
    /// Removed products still carried.
    pub tombstones: Option<u64>,
    /// The last import, whatever its outcome.
    pub last_import: Option<ImportReport>,
    /// When the last good import finished.
    pub last_good_import_at: Option<DateTime<Utc>>,
}

/// SecuTix calls against the month's budget.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallsStatus {
    /// Calls this month (the venue's time zone).
    pub calls_this_month: u64,
    /// Calls today.
    pub calls_today: u64,
    /// `availability.monthly_call_budget`.
    pub monthly_call_budget: u64,
    /// Of the budget, to one decimal.
    pub budget_used_percent: f64,
    /// Bytes received this month.
    pub bytes_this_month: u64,
}

/// Availability polling.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollingStatus {
    /// `availability.enabled`.
    pub enabled: bool,
    /// The last poll.
    pub last_poll: Option<PollRecord>,
    /// When an indicator last changed.
    pub last_change_at: Option<DateTime<Utc>>,
    /// How fresh the indicators of future performances are.
    pub indicators: Option<Freshness>,
}

/// One target in `/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Its kind.
    pub kind: String,
    /// `enabled`.
    pub enabled: bool,
    /// Operations waiting in its outbox.
    pub outbox: u64,
    /// Since when the oldest one waits.
    pub oldest_pending_since: Option<DateTime<Utc>>,
    /// The earliest next attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The error of the operation retried most.
    pub last_error: Option<String>,
    /// Dead letters.
    pub dead_letters: u64,
    /// Entries the target acknowledged.
    pub acknowledged: u64,
    /// A `passculture` target's offers and their statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passculture: Option<OffersStatus>,
    /// Operations delivered since the daemon started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_since_start: Option<u64>,
    /// Failed attempts since the daemon started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts_since_start: Option<u64>,
    /// Operations moved to dead letters since the daemon started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_since_start: Option<u64>,
}

/// The pass Culture side of a `passculture` target: its offers with their pass Culture status (`PENDING`
/// while pass Culture validates, `ACTIVE`, `REJECTED`…), counted by status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OffersStatus {
    /// As last read.
    Read {
        /// Offers.
        offers: u64,
        /// Offers per status.
        by_status: BTreeMap<String, u64>,
        /// When the newest status was read.
        statuses_read_at: Option<DateTime<Utc>>,
        /// Every offer.
        list: Vec<OfferStatus>,
    },
    /// The store could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

/// The job states of a daemon that is not running, from what the store remembers.
fn offline_jobs(store: &Store, unreadable: &mut Vec<String>) -> JobsDocument {
    let last_import =
        note(unreadable, "the import history", store.import_history(1)).and_then(|h| h.into_iter().next());
    let last_good = note(unreadable, "the last good import", store.last_good_import()).flatten();
    let last_poll = note(
        unreadable,
        "the last availability poll",
        crate::availability::AvailabilityStore::new(store).and_then(|a| a.last_poll()),
    )
    .flatten();
    let catalogue = JobState {
        last_success_at: last_good.map(|r| r.finished_at),
        last: last_import.map(|r| Finished {
            id: Some(r.id),
            started_at: r.started_at,
            finished_at: r.finished_at,
            trigger: None,
            ok: r.error.is_none(),
            error: r.error.clone(),
            summary: Some(CatalogueRun { import: r, plan: None }),
            then: None,
        }),
        ..JobState::default()
    };
    let availability = JobState {
        last: last_poll.map(|p| Finished {
            id: None,
            started_at: p.started_at,
            finished_at: p.finished_at,
            trigger: None,
            ok: p.ok,
            error: p.error.clone(),
            summary: Some(PollRun {
                calls: p.calls,
                fetched: p.fetched as u64,
                stale: p.stale as u64,
                pending: p.pending as u64,
                changes: p.changed as u64,
                month_calls: p.month_calls,
                error: p.error.clone(),
                ..PollRun::default()
            }),
            then: None,
        }),
        ..JobState::default()
    };
    JobsDocument {
        catalogue: JobDocument::plain(catalogue),
        availability: JobDocument::plain(availability),
        refresh: JobDocument::plain(JobState::default()),
    }
}

/// `result`'s value, or `None` with what could not be read noted in `unreadable`.
fn note<T, E: std::fmt::Display>(unreadable: &mut Vec<String>, what: &str, result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            unreadable.push(format!("{what}: {e}"));
            None
        }
    }
}

/// The `/status` document. With `live` (a running daemon) the jobs' live state and the counters since start
/// are included; without, what the store remembers. What cannot be read is left out and named in
/// `unreadable`.
pub fn status_document(cfg: &Config, store: &Store, outbox: &Outbox, live: Option<&App>) -> StatusDocument {
    let mut unreadable = Vec::new();
    let now = store.clock().now();
    let catalogue = note(&mut unreadable, "the catalogue in force", store.catalog()).flatten();
    let history = note(&mut unreadable, "the import history", store.import_history(1)).unwrap_or_default();
    let last_good = note(&mut unreadable, "the last good import", store.last_good_import()).flatten();
    let avail = note(
        &mut unreadable,
        "the availability records",
        crate::availability::AvailabilityStore::new(store),
    );
    let last_poll = avail
        .as_ref()
        .and_then(|a| note(&mut unreadable, "the last availability poll", a.last_poll()))
        .flatten();
    let recent = avail
        .as_ref()
        .and_then(|a| note(&mut unreadable, "the indicator changes", a.recent_changes(1)))
        .unwrap_or_default();
    let mut targets = BTreeMap::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let mut row = TargetStatus {
            kind: t.kind.name().to_owned(),
            enabled: t.enabled,
            ..TargetStatus::default()
        };
        if let Some(pending) = note(
            &mut unreadable,
            &format!("target {name}'s outbox"),
            outbox.pending(name),
        ) {
            row.outbox = pending.len() as u64;
            row.oldest_pending_since = pending.iter().map(|p| p.enqueued_at).min();
            row.next_attempt_at = pending.iter().map(|p| p.next_attempt_at).min();
            row.last_error = pending
                .iter()
                .filter(|p| p.last_error.is_some())
                .max_by_key(|p| p.attempts)
                .and_then(|p| p.last_error.clone());
        }
        let dead = outbox.dead_letters(&[name.to_owned()]);
        row.dead_letters =
            note(&mut unreadable, &format!("target {name}'s dead letters"), dead).map_or(0, |d| d.len() as u64);
        let acked = outbox.acks(name);
        row.acknowledged =
            note(&mut unreadable, &format!("target {name}'s acknowledgements"), acked).map_or(0, |a| a.len() as u64);
        if t.passculture().is_some() {
            row.passculture = Some(passculture_status(store, name));
        }
        if let Some(app) = live {
            row.delivered_since_start = Some(Metrics::get(&app.metrics.delivered, name));
            row.failed_attempts_since_start = Some(Metrics::get(&app.metrics.retried, name));
            row.dead_since_start = Some(Metrics::get(&app.metrics.dead, name));
        }
        targets.insert(name.to_owned(), row);
    }
    let time_zone = if cfg.daemon.time_zone.is_empty() {
        store.time_zone().name().to_owned()
    } else {
        cfg.daemon.time_zone.clone()
    };
    let (daemon, mut jobs) = match live {
        Some(app) => (
            DaemonState {
                running: true,
                pid: Some(std::process::id()),
                started_at: Some(app.started_at),
            },
            JobsDocument {
                catalogue: JobDocument::plain(app.catalogue.state()),
                availability: JobDocument::plain(app.availability.state()),
                refresh: JobDocument {
                    interval_secs: Some(cfg.daemon.refresh_interval.as_secs()),
                    ..JobDocument::plain(app.refresh.state())
                },
            },
        ),
        None => (
            DaemonState {
                running: false,
                pid: None,
                started_at: None,
            },
            offline_jobs(store, &mut unreadable),
        ),
    };
    jobs.catalogue.schedule = Some(cfg.daemon.catalogue_schedule.clone());
    jobs.catalogue.time_zone = Some(time_zone);
    let calls = store.calls_in_month(now);
    let budget = cfg.availability.monthly_call_budget;
    let indicators = note(&mut unreadable, "the indicators", freshness(store, now));
    unreadable.dedup();
    StatusDocument {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        now,
        daemon,
        institution: cfg.secutix.institution.clone(),
        transport: format!("{:?}", cfg.secutix.transport).to_lowercase(),
        store: cfg.store.path.clone(),
        jobs,
        catalogue: CatalogueStatus {
            generation: catalogue.as_ref().map(|c| c.meta.generation),
            imported_at: catalogue.as_ref().and_then(|c| c.meta.imported_at),
            products: catalogue.as_ref().map(|c| c.meta.live),
            tombstones: catalogue.as_ref().map(|c| c.meta.tombstones),
            last_import: history.into_iter().next(),
            last_good_import_at: last_good.map(|r| r.finished_at),
        },
        secutix: CallsStatus {
            calls_this_month: calls,
            calls_today: store.calls_on_day(now),
            monthly_call_budget: budget,
            budget_used_percent: if budget == 0 {
                0.0
            } else {
                (calls as f64 * 1000.0 / budget as f64).round() / 10.0
            },
            bytes_this_month: store.bytes_in_month(now),
        },
        availability: PollingStatus {
            enabled: cfg.availability.enabled,
            last_poll,
            last_change_at: recent.first().map(|c| c.at),
            indicators,
        },
        targets,
        unreadable,
    }
}

/// The pass Culture side of a `passculture` target in `/status`: its offers with their pass Culture status,
/// counted by status.
fn passculture_status(store: &Store, target: &str) -> OffersStatus {
    match crate::targets::passculture::offer_statuses(store, target) {
        Ok(offers) => {
            let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
            for o in &offers {
                *by_status
                    .entry(o.status.clone().unwrap_or_else(|| "UNKNOWN".to_owned()))
                    .or_default() += 1;
            }
            OffersStatus::Read {
                offers: offers.len() as u64,
                by_status,
                statuses_read_at: offers.iter().filter_map(|o| o.status_at).max(),
                list: offers,
            }
        }
        Err(e) => OffersStatus::Unreadable { error: e.to_string() },
    }
}
