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
use tokio::sync::mpsc;

use crate::catalog::Id;

/// Why a run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// The schedule.
    Scheduled,
    /// Start-up catch-up (the last good run is too old).
    CatchUp,
    /// An operator (`resync`).
    Manual {
        /// Bypass guards (shrink guard, identical-response shortcut) or re-send everything.
        force: bool,
        /// Limit to one product.
        product: Option<Id>,
    },
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
#[derive(Debug)]
pub struct Job {
    /// Name (`catalogue`, `availability`, `refresh`).
    pub name: &'static str,
    /// std mutex: held for field updates only, never across `.await`.
    state: Mutex<JobState>,
    /// Capacity one: a second request while one is queued is coalesced.
    trigger_tx: mpsc::Sender<Trigger>,
    /// Taken once by the job's loop.
    trigger_rx: Mutex<Option<mpsc::Receiver<Trigger>>>,
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
        let (trigger_tx, trigger_rx) = mpsc::channel(1);
        Self {
            name,
            state: Mutex::new(JobState::default()),
            trigger_tx,
            trigger_rx: Mutex::new(Some(trigger_rx)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> JobState {
        self.lock().clone()
    }

    /// The receiving end of triggers, for the job's loop (once).
    pub fn take_triggers(&self) -> Option<mpsc::Receiver<Trigger>> {
        self.trigger_rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Asks for a run now.
    pub fn request(&self, trigger: Trigger) -> Requested {
        let st = self.lock();
        if let Some(r) = &st.running {
            return Requested::AlreadyRunning { run: r.id };
        }
        let next = st.runs + 1;
        match self.trigger_tx.try_send(trigger) {
            Ok(()) => Requested::Accepted { run: next },
            Err(_) => Requested::AlreadyRunning { run: next },
        }
    }

    /// Marks a run as started.
    pub fn start(&self, trigger: Trigger, now: DateTime<Utc>) -> RunGuard {
        let mut st = self.lock();
        st.runs += 1;
        st.running = Some(Running {
            id: st.runs,
            started_at: now,
            trigger: trigger.clone(),
        });
        RunGuard {
            id: st.runs,
            started_at: now,
            trigger,
        }
    }

    /// Records the end of a run.
    pub fn finish(&self, guard: RunGuard, now: DateTime<Utc>, result: Result<serde_json::Value, String>) {
        let mut st = self.lock();
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
    }

    /// Records the next scheduled run.
    pub fn set_next(&self, at: Option<DateTime<Utc>>) {
        self.lock().next_run_at = at;
    }

    /// Seeds the last success (from the store at start-up).
    pub fn set_last_success(&self, at: Option<DateTime<Utc>>) {
        self.lock().last_success_at = at;
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
        let mut rx = job.take_triggers().expect("receiver");
        let manual = Trigger::Manual {
            force: false,
            product: None,
        };
        assert_eq!(job.request(manual.clone()), Requested::Accepted { run: 1 });
        assert_eq!(
            job.request(manual.clone()),
            Requested::AlreadyRunning { run: 1 },
            "already requested"
        );
        let t = rx.try_recv().expect("queued trigger");
        let guard = job.start(t, Utc::now());
        assert_eq!(
            job.request(manual.clone()),
            Requested::AlreadyRunning { run: 1 },
            "running"
        );
        assert!(job.state().running.is_some());
        job.finish(guard, Utc::now(), Ok(serde_json::json!({"products": 3})));
        assert!(job.state().running.is_none());
        assert_eq!(job.request(manual), Requested::Accepted { run: 2 });
    }
}
