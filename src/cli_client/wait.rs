//! Following a run the daemon accepted (`resync --wait`, `push` through the daemon): polling `/status` until the run ends, with its progress in words.

#[allow(unused_imports)]
use super::*;
use crate::daemon::status::{StatusDocument, TargetStatus};

/// What [`wait_resync`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The run is queued (another run of the job finishes first, or the loop has not picked it up).
    Queued {
        /// Job.
        job: String,
        /// Run.
        run: u64,
    },
    /// The run is in progress.
    Running {
        /// Job.
        job: String,
        /// Run.
        run: u64,
        /// Seconds since it started.
        elapsed_secs: i64,
        /// How far it is, when the job says (an availability poll).
        progress: Option<PollProgress>,
    },
    /// The run finished.
    Finished {
        /// Job.
        job: String,
        /// Run.
        run: u64,
        /// It succeeded.
        ok: bool,
        /// A one-line summary (counts, or the error).
        line: String,
    },
    /// The targets are receiving the operations: those delivered since the request, out of those delivered,
    /// moved to dead letters and still waiting (the operations the runs queued, plus any queued before).
    Pushing {
        /// Delivered since the request.
        delivered: u64,
        /// Moved to dead letters since the request.
        dead: u64,
        /// Delivered + dead + still waiting.
        total: u64,
    },
    /// The outboxes are empty.
    Delivered {
        /// Operations delivered since the request.
        delivered: u64,
        /// Moved to dead letters since the request.
        dead: u64,
    },
    /// Operations wait for a retry (the target fails); the daemon keeps trying.
    Waiting {
        /// Pending operations.
        pending: u64,
        /// The targets' last errors.
        errors: Vec<String>,
    },
}

/// How [`wait_resync`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every run succeeded and the outboxes are empty.
    Done,
    /// A run failed (its error).
    Failed(String),
    /// Runs succeeded; operations still wait for retries.
    Pending(u64),
    /// The time limit came first.
    TimedOut,
}

/// How far a poll is, in words: products done of those to do, SecuTix calls spent (of those planned), an
/// estimate of the time left, and the time since it started.
pub fn poll_progress_text(p: &PollProgress, elapsed_secs: u64) -> String {
    let human = |secs: u64| crate::text::human(Duration::from_secs(secs));
    let calls = if p.calls == 1 {
        "1 SecuTix call".to_owned()
    } else {
        format!("{} SecuTix calls", p.calls)
    };
    if p.phase == "asking" {
        return format!(
            "asking SecuTix which products changed: {} of {} products asked, {calls} so far (running for {})",
            p.products_done,
            p.products_total,
            human(elapsed_secs)
        );
    }
    let planned = p.calls_planned.map(|c| format!(" of {c}")).unwrap_or_default();
    let eta = p
        .eta_secs
        .filter(|s| *s > 0 && p.products_done < p.products_total)
        .map(|s| format!(", about {} left", human(s)))
        .unwrap_or_default();
    format!(
        "{} of {} products fetched, {calls}{planned}{eta} (running for {})",
        p.products_done,
        p.products_total,
        human(elapsed_secs)
    )
}

/// One line of what [`wait_for`] reports, in words (the CLI prints it, or shows it next to its bar).
pub fn progress_line(p: &Progress) -> String {
    let human = |secs: u64| crate::text::human(Duration::from_secs(secs));
    let dead = |n: u64| {
        if n == 0 {
            String::new()
        } else {
            format!(", {n} moved to dead letters")
        }
    };
    match p {
        Progress::Queued { job, run } => format!("{job} run {run}: queued"),
        Progress::Running {
            job,
            run,
            elapsed_secs,
            progress,
        } => {
            let elapsed = u64::try_from(*elapsed_secs).unwrap_or(0);
            match progress {
                None => format!("{job} run {run}: running for {}", human(elapsed)),
                Some(p) => format!("{job} run {run}: {}", poll_progress_text(p, elapsed)),
            }
        }
        Progress::Finished { job, run, ok, line } => {
            format!("{job} run {run}: {} {line}", if *ok { "done:" } else { "FAILED:" })
        }
        Progress::Pushing {
            delivered,
            dead: d,
            total,
        } => {
            format!("push: {delivered} of {total} operations delivered{}", dead(*d))
        }
        Progress::Delivered { delivered: 0, dead: 0 } => "push: nothing left to send".to_owned(),
        Progress::Delivered { delivered, dead: d } => {
            format!(
                "push: the outboxes are empty: {delivered} operations delivered{}",
                dead(*d)
            )
        }
        Progress::Waiting { pending, errors } => format!(
            "push: {pending} operations wait for a retry ({}); the daemon keeps trying",
            errors.join("; ")
        ),
    }
}

/// How [`wait_for`] follows a resync.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Time between two looks at `/status`.
    pub every: Duration,
    /// Give up after this long (the daemon goes on).
    pub timeout: Duration,
    /// How long to go on waiting once every pending operation waits for a retry (the target fails);
    /// zero = report [`WaitOutcome::Pending`] at once.
    pub retry_wait: Duration,
    /// Only these targets' outboxes count; `None` = every target.
    pub targets: Option<Vec<String>>,
    /// `/status` from before the request, so that the operations delivered in between count too; `None`
    /// = the first status read while waiting.
    pub baseline: Option<StatusDocument>,
}

/// Follows `answer` to its end: the run (and the run it chains into), then the outboxes, polling `/status`
/// every `every`, for at most `timeout`. `on` receives every change.
pub async fn wait_resync(
    client: &ControlClient,
    answer: &ResyncAnswer,
    every: Duration,
    timeout: Duration,
    on: impl FnMut(&Progress),
) -> Result<WaitOutcome, ClientError> {
    let opts = WaitOptions {
        every,
        timeout,
        retry_wait: Duration::ZERO,
        targets: None,
        baseline: None,
    };
    wait_for(client, answer, &opts, on).await
}

/// [`wait_resync`] with every option: the outboxes of `opts.targets` only, and waiting up to
/// `opts.retry_wait` for operations in back-off.
pub async fn wait_for(
    client: &ControlClient,
    answer: &ResyncAnswer,
    opts: &WaitOptions,
    mut on: impl FnMut(&Progress),
) -> Result<WaitOutcome, ClientError> {
    let every = opts.every;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut last_event: Option<Progress> = None;
    let mut emit = |p: Progress, on: &mut dyn FnMut(&Progress)| {
        if last_event.as_ref() != Some(&p) {
            on(&p);
            last_event = Some(p);
        }
    };
    let mut runs = vec![(answer.job.clone(), answer.run)];
    let mut failure = None;
    let mut baseline = opts.baseline.clone();
    while let Some((job, run)) = runs.pop() {
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Ok(WaitOutcome::TimedOut);
            }
            let status = client.status().await?;
            if baseline.is_none() {
                baseline = Some(status.clone());
            }
            if let Some(last) = status.jobs.last_run(&job).filter(|l| l.id.is_some_and(|id| id >= run)) {
                emit(
                    Progress::Finished {
                        job: job.clone(),
                        run,
                        ok: last.ok,
                        line: last.line.clone(),
                    },
                    &mut on,
                );
                if !last.ok {
                    failure = Some(format!("{job}: {}", last.line));
                }
                if let Some(then) = last.then {
                    runs.push((then.job, then.run));
                }
                break;
            }
            match status.jobs.running(&job).filter(|r| r.id == run) {
                Some(running) => emit(
                    Progress::Running {
                        job: job.clone(),
                        run,
                        elapsed_secs: (status.now - running.started_at).num_seconds().max(0),
                        progress: running.progress.clone(),
                    },
                    &mut on,
                ),
                None => emit(Progress::Queued { job: job.clone(), run }, &mut on),
            }
            tokio::time::sleep(every).await;
        }
    }
    if let Some(f) = failure {
        return Ok(WaitOutcome::Failed(f));
    }
    let mut retry_deadline: Option<tokio::time::Instant> = None;
    loop {
        let status = client.status().await?;
        let now = status.now;
        let mut targets = status.targets;
        if let Some(only) = &opts.targets {
            targets.retain(|name, _| only.contains(name));
        }
        let since = |count: fn(&TargetStatus) -> Option<u64>| -> u64 {
            targets
                .iter()
                .map(|(name, t)| {
                    let before = baseline
                        .as_ref()
                        .and_then(|b| b.targets.get(name))
                        .and_then(count)
                        .unwrap_or(0);
                    count(t).unwrap_or(0).saturating_sub(before)
                })
                .sum()
        };
        let delivered = since(|t| t.delivered_since_start);
        let dead = since(|t| t.dead_since_start);
        let pending: u64 = targets.values().map(|t| t.outbox).sum();
        if pending == 0 {
            emit(Progress::Delivered { delivered, dead }, &mut on);
            return Ok(WaitOutcome::Done);
        }
        // Every pending operation waits for a retry later than the next poll: the target is failing.
        let waiting = targets.values().filter(|t| t.outbox > 0).all(|t| {
            t.next_attempt_at
                .is_some_and(|n| n > now + chrono::Duration::seconds(30))
                && t.last_error.is_some()
        });
        if waiting {
            let errors = targets
                .iter()
                .filter_map(|(name, t)| t.last_error.as_ref().map(|e| format!("{name}: {e}")))
                .collect();
            emit(Progress::Waiting { pending, errors }, &mut on);
            let until = *retry_deadline.get_or_insert_with(|| tokio::time::Instant::now() + opts.retry_wait);
            if tokio::time::Instant::now() >= until.min(deadline) {
                return Ok(WaitOutcome::Pending(pending));
            }
            tokio::time::sleep(every).await;
            continue;
        }
        retry_deadline = None;
        emit(
            Progress::Pushing {
                delivered,
                dead,
                total: delivered + dead + pending,
            },
            &mut on,
        );
        if tokio::time::Instant::now() >= deadline {
            return Ok(WaitOutcome::TimedOut);
        }
        tokio::time::sleep(every).await;
    }
}
