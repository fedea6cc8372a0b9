//! `secutix-sync push`: plan and send entries to the targets, through the daemon when one runs.

use super::*;

pub(crate) fn push_command(sources: &Sources, args: PushArgs) -> anyhow::Result<ExitCode> {
    use secutix_sync::push::Outbox;
    let loaded = match load_config_without_credentials(sources) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let config = &loaded.config;
    let targets = match secutix_sync::pipeline::select_targets(config, args.target.as_deref()) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let rt = runtime()?;
    let doing = (!args.dry_run).then_some("pushing from");
    if let Some(client) = daemon_or_store(config, &rt, doing)? {
        return push_through_daemon(&rt, &client, &targets, &args);
    }
    // Sending needs the targets' credentials (a dry run sends nothing).
    if !args.dry_run {
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        if let Err(e) = loaded.require_credentials(false, &names) {
            eprintln!("{e}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    }
    let store = match open_store(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("push failed: {e:#}");
            return Ok(ExitCode::from(push_exit::FAILED));
        }
    };
    let Some(view) = store.catalog()? else {
        eprintln!(
            "the store at {} has no catalogue yet: run `secutix-sync import` first",
            config.store.path.display()
        );
        return Ok(ExitCode::from(push_exit::FAILED));
    };
    // Build every target before anything is planned: a bad one stops the push with nothing queued.
    let built = if args.dry_run {
        Vec::new()
    } else {
        match secutix_sync::pipeline::build_targets(&targets, &store) {
            Ok(built) => built,
            Err((name, e)) => {
                eprintln!("target {name}: {e}");
                return Ok(ExitCode::from(push_exit::CONFIG));
            }
        }
    };
    let outbox = Outbox::open(&store)?;
    // Statuses as the daemon plans them: the catalogue combined with the last polled availability.
    let plan = secutix_sync::pipeline::plan(config, &store, &outbox, &targets, args.dry_run)
        .context("while planning the entries")?;
    let options = config.entries.options();
    if args.dry_run {
        println!("dry run: nothing is written to the store and nothing is sent");
    }
    let doc = secutix_sync::daemon::documents::plan_document(&targets, &plan, &outbox, &view, &options);
    print_plan(&doc, args.dry_run);
    if args.dry_run {
        return Ok(ExitCode::from(push_exit::OK));
    }

    let results = rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the requests in flight; the rest stays in the outbox");
                on_signal.cancel();
            }
        });
        secutix_sync::pipeline::drain_all(&outbox, built, args.wait, Some(stop)).await
    });
    store.flush()?;
    let (mut dead, mut pending, mut failed) = (0u64, 0u64, false);
    let tz = store.time_zone();
    for cfg in &targets {
        match results.get(&cfg.name) {
            Some(Ok(r)) => {
                println!(
                    "target {}: delivered {}, retried {}, moved to dead letters {}, still pending {}",
                    cfg.name, r.delivered, r.retried, r.dead, r.pending
                );
                if let Some(next) = r.next_attempt_at.filter(|_| r.pending > 0) {
                    println!(
                        "  next attempt at {}: run `secutix-sync push` again (or let the daemon retry)",
                        next.with_timezone(&tz)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                let letters = outbox.dead_letters(std::slice::from_ref(&cfg.name))?.len();
                if letters > 0 {
                    println!(
                        "  {letters} dead letter(s): see `secutix-sync dlq list --target {}`",
                        cfg.name
                    );
                }
                dead += r.dead;
                pending += r.pending;
            }
            Some(Err(e)) => {
                eprintln!("target {}: the push failed: {e}", cfg.name);
                failed = true;
            }
            None => {
                eprintln!("target {}: the push worker stopped unexpectedly", cfg.name);
                failed = true;
            }
        }
    }
    Ok(ExitCode::from(if failed {
        push_exit::FAILED
    } else if dead > 0 {
        push_exit::DEAD
    } else if pending > 0 {
        push_exit::PENDING
    } else {
        push_exit::OK
    }))
}

/// How long `push` follows the daemon's push (plus `--wait`) before it stops waiting; the daemon goes on.
pub(crate) const PUSH_THROUGH_DAEMON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// `push` while a daemon runs: the daemon owns the store, so it plans and sends (`resync` scope `push`), and
/// this follows it like `resync --wait`. `--dry-run` shows the daemon's own plan (`GET /push/plan`).
pub(crate) fn push_through_daemon(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    targets: &[&secutix_sync::targets::registry::TargetConfig],
    args: &PushArgs,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::{ClientError, WaitOptions, WaitOutcome, wait_for};
    let api_error = |e: ClientError| -> anyhow::Result<ExitCode> {
        match e {
            ClientError::Api {
                status: 400 | 404,
                message,
            } => {
                eprintln!("{message}");
                Ok(ExitCode::from(push_exit::CONFIG))
            }
            ClientError::Api { message, .. } => {
                eprintln!("push failed: {message}");
                Ok(ExitCode::from(push_exit::FAILED))
            }
            other => Err(other.into()),
        }
    };
    if args.dry_run {
        let doc = match rt.block_on(client.push_plan(args.target.as_deref())) {
            Ok(d) => d,
            Err(e) => return api_error(e),
        };
        println!(
            "dry run by the running daemon (pid {}, control API {}): the plan is computed from the daemon's \
             configuration and entries; nothing is written and nothing is sent",
            doc.daemon.as_ref().map_or("?".to_owned(), |d| d.pid.to_string()),
            client.base_url()
        );
        print_plan(&doc, true);
        return Ok(ExitCode::from(push_exit::OK));
    }
    eprintln!(
        "a secutix-sync daemon runs on this store (control API {}): it plans and sends the push; following it",
        client.base_url()
    );
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let counter = |status: &secutix_sync::daemon::status::StatusDocument,
                   name: &str,
                   count: fn(&secutix_sync::daemon::status::TargetStatus) -> Option<u64>| {
        status.targets.get(name).and_then(count).unwrap_or(0)
    };
    let before = rt.block_on(client.status())?;
    let request = secutix_sync::daemon::documents::ResyncRequest {
        scope: secutix_sync::daemon::documents::ResyncScope::Push.as_text(),
        force: false,
    };
    let answer = match rt.block_on(client.resync(&request)) {
        Ok(a) => a,
        Err(e) => return api_error(e),
    };
    println!("{}", answer.message);
    if args.target.is_some() {
        println!(
            "the daemon plans every enabled target, as its own refresh does; this waits for {}",
            names.join(", ")
        );
    }
    let opts = WaitOptions {
        every: std::time::Duration::from_millis(500),
        timeout: PUSH_THROUGH_DAEMON_TIMEOUT + args.wait,
        retry_wait: args.wait,
        targets: Some(names.clone()),
        baseline: Some(before.clone()),
    };
    let view = ProgressView::new();
    let outcome = rt.block_on(wait_for(client, &answer, &opts, |p| view.show(p)));
    view.finish();
    let outcome = outcome?;
    let after = rt.block_on(client.status())?;
    let plan = after.jobs.last_plan(&answer.job);
    let (mut dead, mut pending) = (0u64, 0u64);
    for t in targets {
        let name = t.name.as_str();
        if let Some(counts) = plan.and_then(|p| p.targets.get(name)) {
            print_plan_line(name, &format!("{:?}", t.kind).to_lowercase(), counts);
        }
        let delivered =
            counter(&after, name, |t| t.delivered_since_start)
                .saturating_sub(counter(&before, name, |t| t.delivered_since_start));
        let new_dead = counter(&after, name, |t| t.dead_since_start)
            .saturating_sub(counter(&before, name, |t| t.dead_since_start));
        let waiting = counter(&after, name, |t| Some(t.outbox));
        println!(
            "target {name}: delivered {delivered}, moved to dead letters {new_dead}, still pending {waiting} (by the \
             daemon while this push ran)"
        );
        let row = after.targets.get(name);
        if let Some(e) = row.and_then(|r| r.last_error.as_deref()).filter(|_| waiting > 0) {
            println!("  last error: {e}; the daemon retries");
        }
        let dead_letters = row.map_or(0, |r| r.dead_letters);
        if dead_letters > 0 {
            println!("  {dead_letters} dead letter(s): see `secutix-sync dlq list --target {name}`");
        }
        dead += new_dead;
        pending += waiting;
    }
    Ok(ExitCode::from(match outcome {
        WaitOutcome::Failed(e) => {
            eprintln!("push failed: {e}");
            push_exit::FAILED
        }
        _ if dead > 0 => push_exit::DEAD,
        WaitOutcome::TimedOut => {
            eprintln!(
                "still not delivered after {}; the daemon goes on (see `secutix-sync status`)",
                humantime::format_duration(opts.timeout)
            );
            push_exit::PENDING
        }
        WaitOutcome::Pending(_) => push_exit::PENDING,
        WaitOutcome::Done if pending > 0 => push_exit::PENDING,
        WaitOutcome::Done => push_exit::OK,
    }))
}
