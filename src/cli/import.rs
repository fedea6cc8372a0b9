//! `secutix-sync import`: one catalogue import, through the daemon when one runs, else on the store.

use super::*;

pub(crate) fn import_command(sources: &Sources, force: bool) -> anyhow::Result<ExitCode> {
    let loaded = load_config_without_credentials(sources)?;
    let config = &loaded.config;
    let rt = runtime()?;
    if let Some(daemon) = daemon_or_store(config, &rt, Some("importing into"))? {
        return hand_to_daemon(
            &rt,
            &daemon,
            secutix_sync::daemon::documents::ResyncScope::Catalogue,
            force,
        );
    }
    loaded.require_credentials(true, &[])?;
    let store = open_store(config)?;
    let client = Client::new(&config.secutix, Arc::new(store.clone()), store.clock().clone())?
        .with_spool_dir(config.store.path.clone());
    let result = rt.block_on(run_import(&client, &store, &config.catalogue, ImportOptions { force }));
    store.flush()?;
    match result {
        Ok(report) => {
            print_import(&report);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("import failed: {e}");
            if matches!(e, ImportError::Refused(_)) {
                eprintln!("nothing was changed; the previous catalogue stays in force");
            }
            Ok(ExitCode::from(1))
        }
    }
}
