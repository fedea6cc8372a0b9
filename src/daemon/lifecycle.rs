//! `secutix-sync run` and `run --once`: the daemon until shutdown (the control API's listener, the jobs, reload, the grace period), or one cycle of every job.

use super::summaries::{OncePush, OnceReport, OnceStep, PlanSummary};
#[allow(unused_imports)]
use super::*;

/// Runs the daemon until `shutdown` completes; `listener` serves `api` (the control API's router, built by
/// the caller: the daemon does not know the control API, which sits above it), every item of `reload`
/// reloads the configuration.
pub async fn run(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    api: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
) -> Result<(), DaemonError> {
    let address_file = app.config().store.path.join(ADDRESS_FILE);
    if let Ok(addr) = listener.local_addr()
        && let Err(e) = std::fs::write(&address_file, format!("{addr}\n"))
    {
        tracing::warn!(path = %address_file.display(), error = %e, "cannot write the control address file");
    }
    let mut tasks = tokio::task::JoinSet::new();
    // A connection cap, header-read and idle timeouts: idle or slow clients cannot use up the open files.
    let limits = app.config().control.listener_limits();
    if let Some(w) = crate::net::open_files_warning(limits.max_connections) {
        tracing::warn!("{w}");
    }
    tasks.spawn(crate::net::serve(
        "the control API",
        listener,
        api,
        limits,
        app.shutdown.clone(),
    ));
    // A first plan: entries may be due (time passed, a target was added) before any job runs.
    if let Err(e) = app.plan(&Scope::All, false) {
        tracing::error!(error = %e, "initial plan failed");
    }
    tasks.spawn(catalogue_loop(app.clone()));
    tasks.spawn(availability_loop(app.clone()));
    tasks.spawn(refresh_loop(app.clone()));
    tasks.spawn(worker_supervisor(app.clone()));
    tasks.spawn(supervisor(app.clone()));
    {
        let app = app.clone();
        let mut reload = reload;
        tasks.spawn(async move {
            use futures_util::StreamExt;
            loop {
                tokio::select! {
                    _ = app.shutdown.cancelled() => return,
                    r = reload.next() => match r {
                        Some(()) => {
                            notify::reloading();
                            if let Err(e) = app.reload() {
                                tracing::error!(error = %e, "configuration reload refused; the previous configuration stays");
                            }
                            notify::ready(&app.status_line());
                        }
                        None => return,
                    }
                }
            }
        });
    }
    notify::ready(&app.status_line());
    tracing::info!(status = %app.status_line(), "secutix-sync is running");
    shutdown.await;
    tracing::info!("shutting down: no new work; work in flight may finish");
    notify::stopping();
    app.shutdown.cancel();
    let grace = app.config().daemon.shutdown_grace;
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            grace = %crate::text::human(grace),
            "work still in flight after daemon.shutdown_grace; abandoned (unsent operations stay in the outbox)"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let _ = std::fs::remove_file(&address_file);
    app.store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// `run --once`: import, availability poll, plan, push (waiting up to `push_wait` for retries), then
/// return. `Ok` when every step succeeded; the report either way.
pub async fn run_once(app: Arc<App>, push_wait: Duration) -> Result<OnceReport, OnceReport> {
    let mut out = OnceReport::default();
    // Operations already waiting before this cycle: the push counts them with those the cycle queues.
    let waiting_before: BTreeMap<String, usize> = app
        .targets()
        .iter()
        .map(|t| {
            (
                t.target.name().to_owned(),
                app.outbox.depth(t.target.name()).unwrap_or(0),
            )
        })
        .collect();
    out.catalogue = Some(match app.run_catalogue(false).await {
        Ok(v) => OnceStep::Ran(v),
        Err(e) => {
            out.failed.push(format!("catalogue: {}", e.message));
            OnceStep::Failed { error: e.message }
        }
    });
    let has_catalogue = app.store.generation().ok().flatten().is_some();
    if has_catalogue && app.config().availability.enabled {
        out.availability = Some(match app.run_availability(&[], false).await {
            Ok(v) => OnceStep::Ran(v),
            Err(e) => {
                out.failed.push(format!("availability: {}", e.message));
                OnceStep::Failed { error: e.message }
            }
        });
    }
    match app.plan(&Scope::All, false) {
        Ok(plan) => out.plan = Some(PlanSummary::from(&plan)),
        Err(e) => out.failed.push(format!("plan: {e}")),
    }
    // Every enabled target drained side by side, by the same step as `secutix-sync push`.
    let enabled: Vec<crate::pipeline::BuiltTarget> = app
        .targets()
        .iter()
        .filter(|t| t.enabled)
        .map(|t| crate::pipeline::BuiltTarget {
            name: t.target.name().to_owned(),
            target: t.target.clone(),
            settings: t.settings.clone(),
        })
        .collect();
    let to_send: BTreeMap<String, usize> = enabled
        .iter()
        .map(|t| (t.name.clone(), app.outbox.depth(&t.name).unwrap_or(0)))
        .collect();
    let drained = crate::pipeline::drain_all(&app.outbox, enabled, push_wait, None).await;
    for (name, to_send) in to_send {
        let before = waiting_before.get(&name).copied().unwrap_or(0).min(to_send);
        let push = match drained.get(&name) {
            Some(Ok(r)) => {
                if r.dead > 0 || r.pending > 0 {
                    out.failed.push(format!(
                        "target {name}: {} new dead letters, {} operations still pending",
                        r.dead, r.pending
                    ));
                }
                OncePush::Drained {
                    report: r.clone(),
                    to_send: to_send as u64,
                    waiting_before: before as u64,
                }
            }
            Some(Err(e)) => {
                out.failed.push(format!("target {name}: {e}"));
                OncePush::Failed { error: e.to_string() }
            }
            None => {
                let error = "the push worker stopped unexpectedly".to_owned();
                out.failed.push(format!("target {name}: {error}"));
                OncePush::Failed { error }
            }
        };
        out.push.insert(name, push);
    }
    if let Err(e) = app.store.flush() {
        out.failed.push(format!("store: {e}"));
    }
    if out.failed.is_empty() { Ok(out) } else { Err(out) }
}

impl Requested {
    /// The run that covers the request.
    pub fn run(&self) -> u64 {
        match self {
            Requested::Accepted { run } | Requested::AlreadyRunning { run } => *run,
        }
    }
}
