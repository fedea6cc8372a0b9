//! The loops of the jobs: the catalogue cron with catch-up and its jittered retry, the availability polls at the planner's pace, the periodic refresh, the push workers and their supervisor.

#[allow(unused_imports)]
use super::*;

pub(super) async fn sleep_until(clock: &SharedClock, at: DateTime<Utc>) {
    tokio::time::sleep((at - clock.now()).to_std().unwrap_or(Duration::ZERO)).await;
}

pub(super) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a loop woke up for.
pub(super) enum Wake {
    Stop,
    Requested,
    Timer,
    Reconfigured,
}

/// Waits for the first of: shutdown, a manual request, a reload (`config`), `extra` changing, or `at`.
pub(super) async fn wait<S: Clone>(
    app: &App,
    job: &Job<S>,
    at: Option<DateTime<Utc>>,
    config: &mut watch::Receiver<u64>,
    extra: Option<&mut watch::Receiver<u64>>,
) -> Wake {
    let extra_changed = async {
        match extra {
            Some(rx) => {
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    let timer = async {
        match at {
            Some(at) => sleep_until(&app.clock, at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = app.shutdown.cancelled() => Wake::Stop,
        _ = job.requested() => Wake::Requested,
        _ = config.changed() => Wake::Reconfigured,
        _ = extra_changed => Wake::Reconfigured,
        _ = timer => Wake::Timer,
    }
}

pub(super) async fn catalogue_loop(app: Arc<App>) {
    let mut retry = app.config().daemon.catalogue_retry;
    // A retry (back-off or SecuTix's 10-minute rule) due before the next scheduled run.
    let mut deferred: Option<DateTime<Utc>> = None;
    let mut at_start = true;
    let mut config = app.config_version.subscribe();
    loop {
        let now = app.clock.now();
        let (at, fallback) = match app.schedule() {
            Ok(s) if at_start && s.missed(app.catalogue.state().last_success_at, now) => {
                match app.catalogue.state().last_success_at {
                    None => tracing::info!("no catalogue has been imported yet: importing now"),
                    Some(last) => tracing::info!(
                        last_good_import = %last,
                        "the last good import is older than the last scheduled one: importing now (catch-up)"
                    ),
                }
                (now, Trigger::CatchUp)
            }
            Ok(s) => {
                let scheduled = s.next_after(now);
                match (deferred, scheduled) {
                    (Some(d), Some(n)) if n <= d => (n, Trigger::Scheduled),
                    (Some(d), _) => (d, Trigger::Retry),
                    (None, Some(n)) => (n, Trigger::Scheduled),
                    (None, None) => (after(now, Duration::from_secs(86_400)), Trigger::Scheduled),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot compute the catalogue schedule; trying again in an hour");
                (after(now, Duration::from_secs(3600)), Trigger::Retry)
            }
        };
        app.catalogue.set_next(Some(at));
        let fallback = match wait(&app, &app.catalogue, Some(at), &mut config, None).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(fallback),
        };
        let Some(guard) = app.catalogue.start(fallback, app.clock.now()) else {
            continue;
        };
        at_start = false;
        let force = matches!(guard.trigger(), Trigger::Manual { force: true, .. });
        tracing::info!(run = guard.id(), trigger = %guard.trigger(), "catalogue import starting");
        let result = app.run_catalogue(force).await;
        let now = app.clock.now();
        let cfg = app.config();
        match &result {
            Ok(_) => {
                retry = cfg.daemon.catalogue_retry;
                deferred = None;
            }
            // Stopped by the shutdown: nothing to retry.
            Err(_) if app.shutdown.is_cancelled() => deferred = None,
            Err(f) => match f.retry {
                Retry::Backoff => {
                    let wait = crate::backoff::half_jitter(retry);
                    tracing::warn!(retry_in = %crate::text::human(wait), "catalogue import failed; will retry");
                    deferred = Some(after(now, wait));
                    retry = crate::backoff::grow_jittered(retry, cfg.daemon.catalogue_retry_max);
                }
                Retry::At(t) => deferred = Some(t),
                Retry::Schedule => deferred = None,
            },
        }
        let result = result.map_err(|f| match (f.retry, deferred) {
            (Retry::Backoff | Retry::At(_), Some(at)) => {
                format!(
                    "{}; the daemon retries at {}",
                    f.message,
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                )
            }
            _ => f.message,
        });
        app.catalogue.finish(guard, now, result);
        if app.catalogue.take_chain() && cfg.availability.enabled {
            let r = app.availability.request(Trigger::manual());
            app.catalogue.follow_up(super::summaries::FollowUp {
                job: "availability".to_owned(),
                run: r.run(),
            });
        }
    }
}

pub(super) async fn availability_loop(app: Arc<App>) {
    let mut catalogues = app.catalogue_version.subscribe();
    // The catalogue version whose entries were last planned; `run` plans the one in force at start.
    let mut planned_for = *catalogues.borrow_and_update();
    let mut next = app.clock.now();
    let mut config = app.config_version.subscribe();
    loop {
        let enabled = app.config().availability.enabled;
        let imported = *catalogues.borrow_and_update();
        if imported != planned_for {
            if enabled {
                // The first poll after an import comes at once; it plans every entry.
                next = next.min(app.clock.now());
            } else {
                // The import planned its entries itself.
                planned_for = imported;
            }
        }
        let has_catalogue = app.store.generation().ok().flatten().is_some();
        let at = (enabled && has_catalogue).then_some(next);
        app.availability.set_next(at);
        let fallback = match wait(&app, &app.availability, at, &mut config, Some(&mut catalogues)).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(Trigger::Scheduled),
        };
        let Some(guard) = app.availability.start(fallback, app.clock.now()) else {
            continue;
        };
        let products = guard.trigger().products().to_vec();
        let imported = *catalogues.borrow();
        let result = app.run_availability(&products, imported != planned_for).await;
        planned_for = imported;
        let now = app.clock.now();
        let wait = match &result {
            Ok(summary) => summary
                .next_poll_at
                .map_or(POLL_RETRY, |t| (t - now).to_std().unwrap_or_default()),
            Err(RunFailure {
                retry: Retry::At(t), ..
            }) => (*t - now).to_std().unwrap_or_default(),
            Err(_) => POLL_RETRY,
        };
        app.availability.finish(guard, now, result.map_err(|f| f.message));
        next = after(now, wait.max(MIN_POLL_GAP));
    }
}

pub(super) async fn refresh_loop(app: Arc<App>) {
    let mut config = app.config_version.subscribe();
    loop {
        let at = after(app.clock.now(), app.config().daemon.refresh_interval);
        app.refresh.set_next(Some(at));
        let fallback = match wait(&app, &app.refresh, Some(at), &mut config, None).await {
            Wake::Stop => return,
            Wake::Reconfigured => continue,
            Wake::Requested => None,
            Wake::Timer => Some(Trigger::Scheduled),
        };
        let Some(guard) = app.refresh.start(fallback, app.clock.now()) else {
            continue;
        };
        let (full, scope) = match guard.trigger() {
            Trigger::Manual { force, products, .. } if !products.is_empty() => {
                (*force, Scope::Products(products.clone()))
            }
            Trigger::Manual { force, .. } => (*force, Scope::All),
            _ => (false, Scope::All),
        };
        let scheduled = matches!(guard.trigger(), Trigger::Scheduled);
        let result = match app.plan(&scope, full) {
            Ok(p) => {
                let mut summary = super::summaries::RefreshRun {
                    plan: super::summaries::PlanSummary::from(&p),
                    passculture_statuses: None,
                };
                if scheduled && !app.passculture().is_empty() {
                    // pass Culture validates new offers within 72 h: its verdict shows in /status.
                    summary.passculture_statuses = Some(app.refresh_offer_statuses().await);
                }
                Ok(summary)
            }
            Err(e) => Err(e.to_string()),
        };
        app.refresh.finish(guard, app.clock.now(), result);
    }
}

/// Runs one worker per enabled target until `stop`.
pub(super) async fn workers(app: Arc<App>, stop: CancellationToken) {
    let mut set = tokio::task::JoinSet::new();
    for t in app.targets().iter().filter(|t| t.enabled).cloned() {
        let app = app.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let name = t.target.name().to_owned();
            // The counters of /status and /metrics move as each operation settles.
            let counted = {
                let (app, name) = (app.clone(), name.clone());
                Arc::new(move |settled: &crate::push::DrainReport| app.metrics.add(&name, settled))
            };
            let worker = match Worker::new(&app.outbox, t.target.clone(), t.settings.clone()) {
                Ok(w) => w.on_settled(counted),
                Err(e) => {
                    tracing::error!(target_name = %name, error = %e, "cannot start the push worker");
                    return;
                }
            };
            let mut plans = app.plan_version.subscribe();
            loop {
                plans.borrow_and_update();
                let opts = DrainOptions {
                    max_wait: Duration::ZERO,
                    stop: Some(stop.clone()),
                };
                let next = match worker.drain(opts).await {
                    Ok(report) => report.next_attempt_at,
                    Err(e) => {
                        tracing::error!(target_name = %name, error = %e, "push worker failed on the store; retrying in a minute");
                        Some(after(app.clock.now(), Duration::from_secs(60)))
                    }
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = plans.changed() => {}
                    _ = async { match next { Some(at) => sleep_until(&app.clock, at).await, None => std::future::pending().await } } => {}
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Runs the workers; restarts them on the new targets after a reload; stops them on shutdown (operations
/// in flight finish first).
pub(super) async fn worker_supervisor(app: Arc<App>) {
    let mut versions = app.config_version.subscribe();
    loop {
        let stop = app.shutdown.child_token();
        let run = tokio::spawn(workers(app.clone(), stop.clone()));
        tokio::select! {
            _ = app.shutdown.cancelled() => { let _ = run.await; return; }
            _ = versions.changed() => { stop.cancel(); let _ = run.await; }
        }
    }
}

/// Feeds the systemd watchdog and `STATUS=` while the store answers.
pub(super) async fn supervisor(app: Arc<App>) {
    let period = notify::watchdog_interval().unwrap_or(Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {
                // A store that no longer answers stops the pings: systemd restarts the service.
                match app.store.generation() {
                    Ok(_) => notify::watchdog(),
                    Err(e) => tracing::error!(error = %e, "the store does not answer; not feeding the watchdog"),
                }
                notify::status(&app.status_line());
            }
        }
    }
}
