//! `secutix-sync resync`: ask the daemon for a run (all, catalogue, availability, one product, push), and follow it.

use super::*;

/// `resync --wait`'s default limit, also for the commands that hand their work to the daemon.
pub(crate) const RESYNC_WAIT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub(crate) fn resync_command(
    sources: &Sources,
    scope: secutix_sync::daemon::documents::ResyncScope,
    force: bool,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::ClientError;
    let config = load_config_without_credentials(sources)?.config;
    let rt = runtime()?;
    let absence = match find_daemon(&config)? {
        Daemon::Running(client) => match rt.block_on(client.health()) {
            Ok(()) => return resync_through(&rt, &client, scope, force, wait, timeout),
            Err(e @ ClientError::NotRunning { .. }) => NoDaemon::from_error(&e),
            Err(e) => return Err(e.into()),
        },
        Daemon::Absent(absence) => absence,
    };
    anyhow::bail!(
        "{}. resync asks the running daemon; start it (systemctl start secutix-sync), or run one cycle without \
         it: secutix-sync run --once",
        absence.why
    )
}

/// Asks `client`'s daemon for a resync of `scope`; with `wait`, follows it to the end (or `timeout`).
pub(crate) fn resync_through(
    rt: &tokio::runtime::Runtime,
    client: &secutix_sync::cli_client::ControlClient,
    scope: secutix_sync::daemon::documents::ResyncScope,
    force: bool,
    wait: bool,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use secutix_sync::cli_client::{ClientError, WaitOptions, WaitOutcome, wait_for};
    let request = secutix_sync::daemon::documents::ResyncRequest {
        scope: scope.as_text(),
        force,
    };
    // What the targets had received before: the push counts what they receive from now on.
    let baseline = if wait { rt.block_on(client.status()).ok() } else { None };
    let answer = match rt.block_on(client.resync(&request)) {
        Ok(a) => a,
        Err(e @ ClientError::NotRunning { .. }) => {
            anyhow::bail!("{e}. Start the daemon, or run one cycle without it: secutix-sync run --once")
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", answer.message);
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let view = ProgressView::new();
    let opts = WaitOptions {
        every: std::time::Duration::from_millis(500),
        timeout,
        retry_wait: std::time::Duration::ZERO,
        targets: None,
        baseline,
    };
    let outcome = rt.block_on(wait_for(client, &answer, &opts, |p| view.show(p)));
    view.finish();
    let outcome = outcome?;
    Ok(match outcome {
        WaitOutcome::Done => ExitCode::SUCCESS,
        WaitOutcome::Failed(e) => {
            eprintln!("resync failed: {e}");
            ExitCode::from(1)
        }
        WaitOutcome::Pending(n) => {
            eprintln!("{n} operations are still pending; see `secutix-sync status`");
            ExitCode::from(1)
        }
        WaitOutcome::TimedOut => {
            eprintln!(
                "still not done after {}; the daemon goes on (see `secutix-sync status`)",
                humantime::format_duration(timeout)
            );
            ExitCode::from(1)
        }
    })
}
