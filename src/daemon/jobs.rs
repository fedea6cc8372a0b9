//! Jobs: single-flight runs with live state, and the catalogue schedule.
//!
//! A [`Job`] runs one thing at a time. A manual trigger while a run is in progress (or already requested) is
//! coalesced and answered [`Requested::AlreadyRunning`]; otherwise the job's loop picks it up at once.
//! The state ([`JobState`]) is what `/status` shows: running since when, the last run and its outcome, the
//! next scheduled run.
//!
//! The schedule is computed here rather than by tokio-cron-scheduler: that crate ticks on the system clock
//! (tests cannot drive it with paused time) and has had DST bugs. croner (the cron engine it uses) finds
//! the next occurrence in the venue's time zone, handling DST gaps (a 02:30 job on the spring-forward night
//! runs at 03:00) and overlaps (it runs once); the job then sleeps on tokio's clock.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::availability::{PollProgress, ProgressSink};
use crate::catalog::Id;

/// Why a run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// The schedule.
    Scheduled,
    /// Start-up catch-up (the last good run is older than the last scheduled one).
    CatchUp,
    /// A retry after a failed run (growing back-off, or the time SecuTix allows the next call).
    Retry,
    /// An operator (`resync`).
    Manual {
        /// Bypass guards (shrink guard, identical-response shortcut) or re-send everything.
        force: bool,
        /// Limit to these products; empty = everything.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        products: Vec<Id>,
        /// After this catalogue import, run an availability poll (`resync all`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        then_availability: bool,
    },
}

/// In words, for logs: "the schedule", "a resync (forced, products 12, 13)".
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Scheduled => f.write_str("the schedule"),
            Trigger::CatchUp => f.write_str("the catch-up at start"),
            Trigger::Retry => f.write_str("a retry after a failed run"),
            Trigger::Manual {
                force,
                products,
                then_availability,
            } => {
                let mut options = Vec::new();
                if *force {
                    options.push("forced".to_owned());
                }
                if !products.is_empty() {
                    let ids: Vec<String> = products.iter().map(ToString::to_string).collect();
                    options.push(format!("product {}", ids.join(", ")));
                }
                if *then_availability {
                    options.push("then an availability poll".to_owned());
                }
                if options.is_empty() {
                    f.write_str("a resync")
                } else {
                    write!(f, "a resync ({})", options.join(", "))
                }
            }
        }
    }
}

impl Trigger {
    /// A manual trigger without options.
    pub fn manual() -> Self {
        Trigger::Manual {
            force: false,
            products: Vec::new(),
            then_availability: false,
        }
    }

    /// True for `resync all`: an availability poll follows the import.
    pub fn then_availability(&self) -> bool {
        matches!(
            self,
            Trigger::Manual {
                then_availability: true,
                ..
            }
        )
    }

    /// The products a run limits itself to; empty = everything.
    pub fn products(&self) -> &[Id] {
        match self {
            Trigger::Manual { products, .. } => products,
            _ => &[],
        }
    }

    /// True when a run with this trigger does what `other` asks (for coalescing): it covers every product
    /// `other` names (or everything).
    pub fn covers(&self, other: &Trigger) -> bool {
        let mine = self.products();
        mine.is_empty() || (!other.products().is_empty() && other.products().iter().all(|p| mine.contains(p)))
    }

    /// Merges `other` into this pending trigger: the union of the products (everything wins), and a forced
    /// or chained request stays forced or chained.
    fn absorb(&mut self, other: Trigger) {
        let covered = self.covers(&other);
        match (self, other) {
            (
                Trigger::Manual {
                    force,
                    products,
                    then_availability,
                },
                Trigger::Manual {
                    force: f2,
                    products: p2,
                    then_availability: t2,
                },
            ) => {
                *force |= f2;
                *then_availability |= t2;
                if p2.is_empty() {
                    products.clear();
                } else if !covered {
                    for p in p2 {
                        if !products.contains(&p) {
                            products.push(p);
                        }
                    }
                }
            }
            (me, other @ Trigger::Manual { .. }) => *me = other,
            _ => {}
        }
    }
}

/// A run in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Running {
    /// Run number.
    pub id: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Why.
    pub trigger: Trigger,
    /// How far it is, for runs that say (an availability poll: products done and to do, calls, estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<PollProgress>,
}

/// A finished run; `S` is what the job's runs report ([`super::summaries`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished<S> {
    /// Run number (none for what the store remembers of a run before this process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Why it ran (none for what the store remembers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// True when it did its job.
    pub ok: bool,
    /// What it did (none when it failed before doing anything).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<S>,
    /// The error, for operators.
    pub error: Option<String>,
    /// The run it asked for when it ended (`resync all`: the availability poll after the import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<super::summaries::FollowUp>,
}

impl<S> Finished<S> {
    /// The summary in one line (`line` words it), or the error.
    pub fn line(&self, line: impl Fn(&S) -> String) -> String {
        match (&self.error, &self.summary) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => line(s),
            (None, None) => String::new(),
        }
    }
}

/// What `/status` shows of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState<S> {
    /// The run in progress.
    pub running: Option<Running>,
    /// The last finished run.
    pub last: Option<Finished<S>>,
    /// The last run that succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Next scheduled run.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Runs started since the process started.
    #[serde(default)]
    pub runs: u64,
    /// Failed runs in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
}

impl<S> JobState<S> {
    /// The same state without the last run's summary (what every job has in common: `/metrics`).
    pub fn facts(&self) -> JobState<()> {
        JobState {
            running: self.running.clone(),
            last: None,
            last_success_at: self.last_success_at,
            next_run_at: self.next_run_at,
            runs: self.runs,
            consecutive_failures: self.consecutive_failures,
        }
    }
}

impl<S> Default for JobState<S> {
    fn default() -> Self {
        Self {
            running: None,
            last: None,
            last_success_at: None,
            next_run_at: None,
            runs: 0,
            consecutive_failures: 0,
        }
    }
}

/// The answer to a manual trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Requested {
    /// Accepted: the run will have this number.
    Accepted {
        /// Run number to wait for.
        run: u64,
    },
    /// A run is in progress or already requested: this trigger is merged into it.
    AlreadyRunning {
        /// The run that covers the request.
        run: u64,
    },
}

/// A single-flight job.
///
/// The pending trigger and the run in progress live under one lock, so there is no window between "a
/// trigger was taken" and "the run started" in which a second request could be accepted as a new run.
#[derive(Debug)]
pub struct Job<S> {
    /// Name (`catalogue`, `availability`, `refresh`).
    pub name: &'static str,
    /// std mutex: held for field updates only, never across `.await`.
    inner: Mutex<Inner<S>>,
    /// Wakes the job's loop when a trigger is pending.
    wake: Notify,
    /// Number of the last finished run: `wait_finished` watches it.
    finished: watch::Sender<u64>,
    /// Where the run in progress reports how far it is ([`Job::progress_sink`]); shown in [`Job::state`].
    progress: ProgressSink,
}

#[derive(Debug)]
struct Inner<S> {
    state: JobState<S>,
    /// At most one trigger waits; later requests are merged into it.
    pending: Option<Trigger>,
    /// The run in progress should be followed by an availability poll (`resync all`, also when the request
    /// was merged into a run that had not asked for one).
    chain: bool,
}

impl<S> Default for Inner<S> {
    fn default() -> Self {
        Self {
            state: JobState::default(),
            pending: None,
            chain: false,
        }
    }
}

/// Marks a run in progress; [`Job::finish`] consumes it.
#[derive(Debug)]
pub struct RunGuard {
    id: u64,
    started_at: DateTime<Utc>,
    trigger: Trigger,
}

impl RunGuard {
    /// Run number.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Why it runs.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
}

impl<S: Clone> Job<S> {
    /// A new idle job.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            finished: watch::channel(0).0,
            progress: ProgressSink::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> JobState<S> {
        let mut state = self.lock().state.clone();
        if let Some(running) = &mut state.running {
            running.progress = self.progress.get();
        }
        state
    }

    /// Where the run in progress reports its progress (cleared when a run starts).
    pub fn progress_sink(&self) -> ProgressSink {
        self.progress.clone()
    }

    /// Asks for a run now. A request that the run in progress covers (the same products, or it runs for
    /// everything), or that another waiting request already holds, is merged and answered
    /// [`Requested::AlreadyRunning`] with the run that will do it; otherwise it is accepted for the next run.
    pub fn request(&self, trigger: Trigger) -> Requested {
        let mut inner = self.lock();
        if let Some(r) = &inner.state.running
            && r.trigger.covers(&trigger)
        {
            let id = r.id;
            inner.chain |= trigger.then_availability();
            return Requested::AlreadyRunning { run: id };
        }
        let run = inner.state.runs + 1;
        if let Some(pending) = &mut inner.pending {
            pending.absorb(trigger);
            return Requested::AlreadyRunning { run };
        }
        inner.pending = Some(trigger);
        drop(inner);
        self.wake.notify_one();
        Requested::Accepted { run }
    }

    /// Waits until a trigger is pending (the job's loop selects on it next to its timer).
    pub async fn requested(&self) {
        loop {
            let notified = self.wake.notified();
            if self.lock().pending.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Starts a run: a pending manual trigger is taken (it wins over `fallback`, so a request arriving as
    /// the schedule fires makes one run, not two); without one, `fallback` (schedule, catch-up) is used.
    /// `None` when a run is already in progress.
    pub fn start(&self, fallback: Option<Trigger>, now: DateTime<Utc>) -> Option<RunGuard> {
        let mut inner = self.lock();
        if inner.state.running.is_some() {
            return None;
        }
        let trigger = inner.pending.take().or(fallback)?;
        inner.chain = trigger.then_availability();
        inner.state.runs += 1;
        let id = inner.state.runs;
        inner.state.next_run_at = None;
        inner.state.running = Some(Running {
            id,
            started_at: now,
            trigger: trigger.clone(),
            progress: None,
        });
        self.progress.clear();
        Some(RunGuard {
            id,
            started_at: now,
            trigger,
        })
    }

    /// Records the end of a run.
    pub fn finish(&self, guard: RunGuard, now: DateTime<Utc>, result: Result<S, String>) {
        let mut inner = self.lock();
        let st = &mut inner.state;
        st.running = None;
        let ok = result.is_ok();
        if ok {
            st.last_success_at = Some(now);
            st.consecutive_failures = 0;
        } else {
            st.consecutive_failures += 1;
        }
        let (summary, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        st.last = Some(Finished {
            id: Some(guard.id),
            started_at: guard.started_at,
            finished_at: now,
            trigger: Some(guard.trigger),
            ok,
            summary,
            error,
            then: None,
        });
        drop(inner);
        self.finished.send_replace(guard.id);
    }

    /// Whether the run in progress (or just finished) should be followed by an availability poll; reading
    /// clears it.
    pub fn take_chain(&self) -> bool {
        std::mem::take(&mut self.lock().chain)
    }

    /// Records the run the last finished run asked for (`resync all`: the poll after the import).
    pub fn follow_up(&self, then: super::summaries::FollowUp) {
        if let Some(last) = self.lock().state.last.as_mut() {
            last.then = Some(then);
        }
    }

    /// Waits until run `run` (or a later one) has finished.
    pub async fn wait_finished(&self, run: u64) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|last| *last >= run).await;
    }

    /// Records the next scheduled run.
    pub fn set_next(&self, at: Option<DateTime<Utc>>) {
        self.lock().state.next_run_at = at;
    }

    /// Seeds the last success (from the store at start-up).
    pub fn set_last_success(&self, at: Option<DateTime<Utc>>) {
        self.lock().state.last_success_at = at;
    }
}

/// A parsed cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    /// The expression as configured.
    pub expression: String,
    /// The zone it is read in.
    pub time_zone: chrono_tz::Tz,
}

impl Schedule {
    /// Parses `expression` (5 fields, or 6 with seconds first) for `time_zone`.
    pub fn new(expression: &str, time_zone: chrono_tz::Tz) -> Result<Self, String> {
        let cron = expression
            .parse::<croner::Cron>()
            .map_err(|e| format!("daemon.catalogue_schedule {expression:?} is not a cron expression: {e}"))?;
        Ok(Self {
            cron,
            expression: expression.to_owned(),
            time_zone,
        })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.time_zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last run at or before `at`.
    pub fn previous(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.time_zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Catch-up rule: run now when the last good run is older than the last scheduled occurrence (a run was
    /// missed while the daemon was down), or when there never was one.
    pub fn missed(&self, last_good: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match (last_good, self.previous(now)) {
            (None, _) => true,
            (Some(last), Some(prev)) => last < prev,
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests;
