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
    let job: Job<u64> = Job::new("catalogue");
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
    job.finish(guard, Utc::now(), Ok(3));
    let st = job.state();
    assert!(st.running.is_none());
    assert_eq!(st.runs, 1, "the coalesced requests made no second run");
    assert!(job.start(None, Utc::now()).is_none(), "nothing pending after the run");
    assert_eq!(job.request(manual), Requested::Accepted { run: 2 });
}

#[test]
fn a_request_as_the_schedule_fires_makes_one_run_and_a_forced_request_wins() {
    let job: Job<u64> = Job::new("catalogue");
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
    let job: Job<u64> = Job::new("availability");
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
    job.finish(guard, Utc::now(), Ok(0));
    let guard = job.start(None, Utc::now()).expect("run 2");
    assert_eq!(guard.trigger().products(), &[2, 3]);
    // A run for everything covers any product.
    job.finish(guard, Utc::now(), Ok(0));
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
    let job: Job<u64> = Job::new("catalogue");
    let guard = job.start(Some(Trigger::Scheduled), Utc::now()).expect("scheduled run");
    let all = Trigger::Manual {
        force: false,
        products: Vec::new(),
        then_availability: true,
    };
    assert_eq!(job.request(all), Requested::AlreadyRunning { run: 1 });
    job.finish(guard, Utc::now(), Ok(0));
    assert!(job.take_chain(), "the poll is chained after the running import");
    assert!(!job.take_chain(), "once");
}

#[tokio::test]
async fn wait_finished_returns_once_the_run_is_done() {
    let job: std::sync::Arc<Job<u64>> = std::sync::Arc::new(Job::new("refresh"));
    assert_eq!(job.request(Trigger::manual()), Requested::Accepted { run: 1 });
    let waiter = {
        let job = job.clone();
        tokio::spawn(async move { job.wait_finished(1).await })
    };
    job.requested().await;
    let guard = job.start(None, Utc::now()).expect("run");
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    job.finish(guard, Utc::now(), Ok(0));
    waiter.await.expect("waiter");
}
