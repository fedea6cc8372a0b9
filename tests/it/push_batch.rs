//! The worker with a target that takes batches (`Target::max_batch` > 1), under paused time: batches are
//! capped, each operation of a batch is acknowledged, retried or buried on its own outcome, a batch costs
//! one rate-limit token and one timeout, and an unreachable target pauses once per batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::push::{DeletePolicy, DrainOptions, Outbox, PlanTarget, PushSettings, Scope, Worker};
use secutix_sync::targets::{Applied, Operation, Target, TargetError};
use serde_json::Value;

/// What the fake answers for an external id.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Retry,
    Refuse,
    Unreachable,
    /// Takes an hour (the batch times out).
    Hang,
}

struct Batching {
    max: usize,
    answers: Mutex<BTreeMap<String, Answer>>,
    /// External ids of each call, in order.
    calls: Mutex<Vec<Vec<String>>>,
}

impl Batching {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            answers: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
        })
    }
    fn answer(&self, id: &str, a: Answer) {
        self.answers.lock().expect("answers").insert(id.to_owned(), a);
    }
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().expect("calls").clone()
    }
}

#[async_trait::async_trait]
impl Target for Batching {
    fn name(&self) -> &str {
        "batching"
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        self.apply_batch(std::slice::from_ref(op)).await.remove(0)
    }
    fn max_batch(&self) -> usize {
        self.max
    }
    async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        self.calls
            .lock()
            .expect("calls")
            .push(ops.iter().map(|o| o.external_id.clone()).collect());
        let answers: Vec<Answer> = {
            let a = self.answers.lock().expect("answers");
            ops.iter()
                .map(|o| a.get(&o.external_id).copied().unwrap_or(Answer::Ok))
                .collect()
        };
        if answers.contains(&Answer::Hang) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        ops.iter()
            .zip(answers)
            .map(|(op, a)| match a {
                Answer::Ok | Answer::Hang => Ok(Applied {
                    remote_id: Some(format!("remote-{}", op.external_id)),
                }),
                Answer::Retry => Err(TargetError::retry("HTTP 500 inside the batch")),
                Answer::Refuse => Err(TargetError::permanent("HTTP 400 rest_invalid_param inside the batch")),
                Answer::Unreachable => Err(TargetError::Retryable {
                    message: "cannot connect".into(),
                    retry_after: None,
                    unreachable: true,
                }),
            })
            .collect()
    }
    async fn check(&self) -> Result<String, TargetError> {
        Ok("fake".into())
    }
}

fn options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into()],
        mapping_version: 1,
        shop_url: String::new(),
        book_url: String::new(),
        performance_url: String::new(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

fn catalogue(n: i64) -> Value {
    catalog(vec![season(
        1,
        "S",
        -30,
        (1..=n).map(|i| product(i, &format!("P{i}"), &[(i * 10, 5)])).collect(),
    )])
}

fn plan(outbox: &Outbox) {
    let status = |_: &secutix_sync::catalog::Product, _: &secutix_sync::catalog::Performance, _| PerformanceStatus {
        level: Some(1),
        on_sale: true,
    };
    outbox
        .plan(
            &[PlanTarget::new("batching", DeletePolicy::Unpublish)],
            &options(),
            &status,
            &Scope::All,
            false,
            false,
        )
        .expect("plan");
}

fn worker(outbox: &Outbox, target: Arc<Batching>, concurrency: usize, rate: u32) -> Worker {
    Worker::new(
        outbox,
        target,
        PushSettings {
            concurrency,
            rate_per_second: rate,
            request_timeout: Duration::from_secs(30),
            ..PushSettings::default()
        },
    )
    .expect("worker")
}

#[tokio::test(start_paused = true)]
async fn batches_are_capped_and_cost_one_rate_limit_token_each() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &catalogue(12), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let target = Batching::new(5);
    plan(&outbox);
    // One token per second: 12 operations one by one would take 11 s; three batches take 2 s.
    let started = tokio::time::Instant::now();
    let report = worker(&outbox, target.clone(), 1, 1)
        .drain(DrainOptions::now())
        .await
        .expect("drain");
    assert_eq!((report.delivered, report.pending), (12, 0));
    let sizes: Vec<usize> = target.calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![5, 5, 2], "12 operations in batches of at most 5");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "three batches, three tokens: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_operation_of_a_batch_settles_on_its_own_outcome() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &catalogue(12), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let target = Batching::new(5);
    target.answer("secutix-2", Answer::Retry);
    target.answer("secutix-3", Answer::Refuse);
    plan(&outbox);
    let report = worker(&outbox, target.clone(), 1, 100)
        .drain(DrainOptions::now())
        .await
        .expect("drain");
    assert_eq!(
        (report.delivered, report.retried, report.dead, report.pending),
        (10, 1, 1, 1)
    );
    assert_eq!(
        outbox
            .acked("batching", "secutix-1")
            .expect("ack")
            .and_then(|a| a.remote_id)
            .as_deref(),
        Some("remote-secutix-1")
    );
    let pending = outbox.pending("batching").expect("pending");
    assert_eq!((pending[0].external_id.as_str(), pending[0].attempts), ("secutix-2", 1));
    let dead = outbox.dead_letters(&["batching".into()]).expect("dead");
    assert_eq!(dead[0].item.external_id, "secutix-3");
    assert!(dead[0].error.contains("rest_invalid_param"));

    // The retried one goes alone in the next batch once its back-off is over.
    target.answer("secutix-2", Answer::Ok);
    let report = worker(&outbox, target.clone(), 1, 1)
        .drain(DrainOptions {
            max_wait: Duration::from_secs(3600),
            stop: None,
        })
        .await
        .expect("drain");
    assert_eq!((report.delivered, report.pending), (1, 0));
    assert_eq!(target.calls().last().cloned(), Some(vec!["secutix-2".to_owned()]));
}

#[tokio::test(start_paused = true)]
async fn a_batch_times_out_as_a_whole_and_an_unreachable_target_pauses_once_per_batch() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &catalogue(4), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let target = Batching::new(25);
    target.answer("secutix-4", Answer::Hang);
    plan(&outbox);
    let report = worker(&outbox, target.clone(), 2, 10)
        .drain(DrainOptions::now())
        .await
        .expect("drain");
    assert_eq!((report.delivered, report.retried), (0, 4), "the whole batch timed out");
    for item in outbox.pending("batching").expect("pending") {
        assert!(
            item.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within 30s (in a batch of 4)")),
            "{item:?}"
        );
    }

    // Unreachable: one pause for the batch, attempts untouched, then a probe of one operation.
    target.answer("secutix-4", Answer::Ok);
    for i in 1..=4 {
        target.answer(&format!("secutix-{i}"), Answer::Unreachable);
    }
    tokio::time::advance(Duration::from_secs(3600)).await;
    let report = worker(&outbox, target.clone(), 2, 10)
        .drain(DrainOptions::now())
        .await
        .expect("drain");
    assert_eq!((report.delivered, report.retried, report.pending), (0, 4, 4));
    let pending = outbox.pending("batching").expect("pending");
    let next: Vec<_> = pending.iter().map(|i| i.next_attempt_at).collect();
    assert!(
        next.windows(2).all(|w| w[0] == w[1]),
        "one pause for the whole batch: {next:?}"
    );
    assert!(pending.iter().all(|i| i.attempts == 1), "unreachable does not count");
    for i in 1..=4 {
        target.answer(&format!("secutix-{i}"), Answer::Ok);
    }
    let calls_before = target.calls().len();
    let report = worker(&outbox, target.clone(), 2, 10)
        .drain(DrainOptions {
            max_wait: Duration::from_secs(3600),
            stop: None,
        })
        .await
        .expect("drain");
    assert_eq!((report.delivered, report.pending), (4, 0));
    assert!(target.calls().len() > calls_before);
}
