//! `secutix-sync state`: the store's records, read directly.

use super::*;

pub(crate) fn state_command(sources: &Sources, product: Option<i64>, limit: usize) -> anyhow::Result<ExitCode> {
    use secutix_sync::state::{StateQuery, state_document};
    let config = load_config_without_credentials(sources)?.config;
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e:#}");
            eprintln!(
                "`state` reads the store itself; while the daemon runs, use `secutix-sync status` and \
                 `secutix-sync entries show ID`"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let doc = state_document(&config, &store, &StateQuery { limit, product }, store.clock().now())
        .context("while reading the store")?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
