//! `secutix-sync run` (and `run --once`): the daemon.

use super::*;

pub(crate) fn run_command(sources: &Sources, once: bool, push_wait: std::time::Duration) -> anyhow::Result<ExitCode> {
    use secutix_sync::daemon::{self, App, DaemonError};
    let config = load_config(sources)?.config;
    let store = open_store(&config).context("while opening the store (one secutix-sync daemon per store)")?;
    let rt = runtime()?;
    rt.block_on(async {
        let app = App::build(config.clone(), sources.clone(), store)?;
        if once {
            let (code, summary) = match daemon::run_once(app, push_wait).await {
                Ok(v) => (ExitCode::SUCCESS, v),
                Err(v) => (ExitCode::from(1), v),
            };
            print_once(&summary);
            return Ok(code);
        }
        let listener = tokio::net::TcpListener::bind(&config.control.listen)
            .await
            .map_err(|e| DaemonError::Listen {
                addr: config.control.listen.clone(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().context("while reading the control API address")?;
        tracing::info!(%addr, "control API listening");
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the control API listens beyond loopback: private endpoints need the token, but keep the port \
                 behind a firewall and expose only /public/ through a reverse proxy"
            );
        }
        // Registered before anything runs, so an early signal is not lost.
        let (shutdown, reload) = signals()?;
        daemon::run(
            app.clone(),
            listener,
            secutix_sync::control::router(app),
            shutdown,
            reload,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
