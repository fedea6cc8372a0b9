//! `secutix-sync status`: the daemon's status, or what the store remembers when no daemon runs.

use super::*;

pub(crate) fn status_command(sources: &Sources, json: bool) -> anyhow::Result<ExitCode> {
    let config = load_config_without_credentials(sources)?.config;
    let (doc, _) = with_daemon_or_store(
        &config,
        async |c| c.status().await,
        |store| {
            let outbox = secutix_sync::push::Outbox::open(store)?;
            Ok(secutix_sync::daemon::status::status_document(
                &config, store, &outbox, None,
            ))
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_status(&doc);
    }
    Ok(ExitCode::SUCCESS)
}
