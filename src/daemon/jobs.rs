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
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::availability::{PollProgress, ProgressSink};
use crate::catalog::Id;

/// Why a run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// Run number.
    pub id: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Why.
    pub trigger: Trigger,
    /// How far it is, for runs that say (an availability poll: products done and to do, calls, estimate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<PollProgress>,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    /// Run number.
    pub id: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Why it ran.
    pub trigger: Trigger,
    /// True when it did its job.
    pub ok: bool,
    /// Counts and facts (job-specific).
    pub summary: serde_json::Value,
    /// The error, for operators.
    pub error: Option<String>,
}

/// What `/status` shows of a job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobState {
    /// The run in progress.
    pub running: Option<Running>,
    /// The last finished run.
    pub last: Option<Finished>,
    /// The last run that succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Next scheduled run.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Runs started since the process started.
    pub runs: u64,
    /// Failed runs in a row.
    pub consecutive_failures: u32,
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
pub struct Job {
    /// Name (`catalogue`, `availability`, `refresh`).
    pub name: &'static str,
    /// std mutex: held for field updates only, never across `.await`.
    inner: Mutex<Inner>,
    /// Wakes the job's loop when a trigger is pending.
    wake: Notify,
    /// Number of the last finished run: `wait_finished` watches it.
    finished: watch::Sender<u64>,
    /// Where the run in progress reports how far it is ([`Job::progress_sink`]); shown in [`Job::state`].
    progress: ProgressSink,
}

#[derive(Debug, Default)]
struct Inner {
    state: JobState,
    /// At most one trigger waits; later requests are merged into it.
    pending: Option<Trigger>,
    /// The run in progress should be followed by an availability poll (`resync all`, also when the request
    /// was merged into a run that had not asked for one).
    chain: bool,
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

impl Job {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> JobState {
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
    pub fn finish(&self, guard: RunGuard, now: DateTime<Utc>, result: Result<serde_json::Value, String>) {
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
            Ok(v) => (v, None),
            Err(e) => (serde_json::Value::Null, Some(e)),
        };
        st.last = Some(Finished {
            id: guard.id,
            started_at: guard.started_at,
            finished_at: now,
            trigger: guard.trigger,
            ok,
            summary,
            error,
        });
        drop(inner);
        self.finished.send_replace(guard.id);
    }

    /// Whether the run in progress (or just finished) should be followed by an availability poll; reading
    /// clears it.
    pub fn take_chain(&self) -> bool {
        std::mem::take(&mut self.lock().chain)
    }

    /// Adds facts to the summary of the last finished run (e.g. the follow-up run it requested).
    pub fn annotate_last(&self, key: &str, value: serde_json::Value) {
        if let Some(last) = self.lock().state.last.as_mut() {
            if !last.summary.is_object() {
                last.summary = serde_json::json!({});
            }
            last.summary[key] = value;
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
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn paris() -> chrono_tz::Tz {
        chrono_tz::Europe::Paris
    }

    fn local(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        paris()
            .with_ymd_and_hms(y, m, d, h, mi, 0)
            .single()
            .expect("unambiguous")
            .with_timezone(&Utc)
    }

    #[test]
    fn daily_run_stays_at_local_time_across_dst_changes() {
        let s = Schedule::new("30 5 * * *", paris()).expect("cron");
        // Spring forward: 2026-03-29 02:00 → 03:00 in Paris.
        let mut t = local(2026, 3, 27, 12, 0);
        let mut runs = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).expect("next");
            runs.push(t);
        }
        let expected: Vec<_> = (28..=31).map(|d| local(2026, 3, d, 5, 30)).collect();
        assert_eq!(runs, expected);
        // In UTC the run moves from 04:30 to 03:30.
        assert_eq!(runs[0].format("%H:%M").to_string(), "04:30");
        assert_eq!(runs[1].format("%H:%M").to_string(), "03:30");
        // Fall back: 2026-10-25 03:00 → 02:00.
        let t = s.next_after(local(2026, 10, 24, 12, 0)).expect("next");
        let u = s.next_after(t).expect("next");
        assert_eq!((t, u), (local(2026, 10, 25, 5, 30), local(2026, 10, 26, 5, 30)));
        assert_eq!((u - t).num_hours(), 24);
        assert_eq!(
            (t - local(2026, 10, 24, 5, 30)).num_hours(),
            25,
            "the fall-back day is 25 hours long"
        );
    }

    #[test]
    fn a_run_in_the_spring_forward_gap_happens_once_right_after_it() {
        let s = Schedule::new("30 2 * * *", paris()).expect("cron");
        let t = s.next_after(local(2026, 3, 28, 12, 0)).expect("next");
        assert_eq!(
            t,
            paris()
                .with_ymd_and_hms(2026, 3, 29, 3, 0, 0)
                .single()
                .expect("t")
                .with_timezone(&Utc)
        );
        let u = s.next_after(t).expect("next");
        assert_eq!(u, local(2026, 3, 30, 2, 30));
    }

    #[test]
    fn a_run_in_the_fall_back_overlap_happens_once() {
        let s = Schedule::new("30 2 * * *", paris()).expect("cron");
        let t = s.next_after(local(2026, 10, 24, 12, 0)).expect("next");
        let u = s.next_after(t).expect("next");
        assert!(
            u - t > chrono::Duration::hours(23),
            "no second run an hour later: {t} then {u}"
        );
    }

    #[test]
    fn catch_up_when_a_scheduled_run_was_missed() {
        let s = Schedule::new("30 5 * * *", paris()).expect("cron");
        let now = local(2026, 3, 2, 9, 0);
        assert!(s.missed(None, now), "never imported");
        assert!(
            s.missed(Some(local(2026, 3, 1, 5, 31)), now),
            "today's 05:30 was missed"
        );
        assert!(!s.missed(Some(local(2026, 3, 2, 5, 31)), now), "today's run happened");
    }

    #[test]
    fn single_flight_coalesces_triggers() {
        let job = Job::new("catalogue");
        let manual = Trigger::manual();
        assert_eq!(job.request(manual.clone()), Requested::Accepted { run: 1 });
        assert_eq!(
            job.request(manual.clone()),
            Requested::AlreadyRunning { run: 1 },
            "already requested"
        );
        let guard = job.start(None, Utc::now()).expect("the pending trigger starts a run");
        assert_eq!(guard.id(), 1);
        assert_eq!(guard.trigger(), &manual);
        assert_eq!(
            job.request(manual.clone()),
            Requested::AlreadyRunning { run: 1 },
            "running"
        );
        assert!(
            job.start(Some(Trigger::Scheduled), Utc::now()).is_none(),
            "one run at a time"
        );
        assert!(job.state().running.is_some());
        job.finish(guard, Utc::now(), Ok(serde_json::json!({"products": 3})));
        let st = job.state();
        assert!(st.running.is_none());
        assert_eq!(st.runs, 1, "the coalesced requests made no second run");
        assert!(job.start(None, Utc::now()).is_none(), "nothing pending after the run");
        assert_eq!(job.request(manual), Requested::Accepted { run: 2 });
    }

    #[test]
    fn a_request_as_the_schedule_fires_makes_one_run_and_a_forced_request_wins() {
        let job = Job::new("catalogue");
        assert_eq!(job.request(Trigger::manual()), Requested::Accepted { run: 1 });
        let forced = Trigger::Manual {
            force: true,
            products: Vec::new(),
            then_availability: false,
        };
        assert_eq!(job.request(forced.clone()), Requested::AlreadyRunning { run: 1 });
        let guard = job.start(Some(Trigger::Scheduled), Utc::now()).expect("run");
        assert_eq!(
            guard.trigger(),
            &forced,
            "the manual request, made forced, is the run's trigger"
        );
        job.finish(guard, Utc::now(), Err("boom".into()));
        let st = job.state();
        assert_eq!((st.runs, st.consecutive_failures), (1, 1));
        assert_eq!(st.last.as_ref().and_then(|l| l.error.as_deref()), Some("boom"));
        assert!(job.start(None, Utc::now()).is_none());
    }

    fn products(ids: &[Id]) -> Trigger {
        Trigger::Manual {
            force: true,
            products: ids.to_vec(),
            then_availability: false,
        }
    }

    #[test]
    fn a_request_for_another_product_during_a_run_is_kept_for_the_next_run() {
        let job = Job::new("availability");
        assert_eq!(job.request(products(&[1])), Requested::Accepted { run: 1 });
        let guard = job.start(None, Utc::now()).expect("run 1");
        assert_eq!(
            job.request(products(&[1])),
            Requested::AlreadyRunning { run: 1 },
            "covered"
        );
        assert_eq!(
            job.request(products(&[2])),
            Requested::Accepted { run: 2 },
            "not covered"
        );
        assert_eq!(
            job.request(products(&[3])),
            Requested::AlreadyRunning { run: 2 },
            "joins run 2"
        );
        job.finish(guard, Utc::now(), Ok(serde_json::Value::Null));
        let guard = job.start(None, Utc::now()).expect("run 2");
        assert_eq!(guard.trigger().products(), &[2, 3]);
        // A run for everything covers any product.
        job.finish(guard, Utc::now(), Ok(serde_json::Value::Null));
        assert_eq!(job.request(Trigger::manual()), Requested::Accepted { run: 3 });
        assert_eq!(job.request(products(&[4])), Requested::AlreadyRunning { run: 3 });
        let guard = job.start(None, Utc::now()).expect("run 3");
        assert!(guard.trigger().products().is_empty(), "everything wins");
        assert!(
            matches!(guard.trigger(), Trigger::Manual { force: true, .. }),
            "forced stays forced"
        );
        assert_eq!(job.request(products(&[5])), Requested::AlreadyRunning { run: 3 });
        assert!(Trigger::Scheduled.covers(&products(&[9])));
    }

    #[test]
    fn resync_all_merged_into_a_running_import_still_chains_a_poll() {
        let job = Job::new("catalogue");
        let guard = job.start(Some(Trigger::Scheduled), Utc::now()).expect("scheduled run");
        let all = Trigger::Manual {
            force: false,
            products: Vec::new(),
            then_availability: true,
        };
        assert_eq!(job.request(all), Requested::AlreadyRunning { run: 1 });
        job.finish(guard, Utc::now(), Ok(serde_json::Value::Null));
        assert!(job.take_chain(), "the poll is chained after the running import");
        assert!(!job.take_chain(), "once");
    }

    #[tokio::test]
    async fn wait_finished_returns_once_the_run_is_done() {
        let job = std::sync::Arc::new(Job::new("refresh"));
        assert_eq!(job.request(Trigger::manual()), Requested::Accepted { run: 1 });
        let waiter = {
            let job = job.clone();
            tokio::spawn(async move { job.wait_finished(1).await })
        };
        job.requested().await;
        let guard = job.start(None, Utc::now()).expect("run");
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        job.finish(guard, Utc::now(), Ok(serde_json::Value::Null));
        waiter.await.expect("waiter");
    }
}
