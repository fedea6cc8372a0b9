//! `secutix-sync check`: live checks of the SecuTix credentials and of every target.

use super::*;

pub(crate) fn check_command(sources: &Sources) -> anyhow::Result<ExitCode> {
    let config = load_config(sources)?.config;
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e)
            if e.downcast_ref::<secutix_sync::store::StoreError>()
                .is_some_and(|s| matches!(s, secutix_sync::store::StoreError::Locked { .. })) =>
        {
            eprintln!(
                "note: the running daemon holds the store; this check's SecuTix call is not counted in its ledger"
            );
            Store::temporary(secutix_sync::clock::system())?
        }
        Err(e) => return Err(e),
    };
    let rt = runtime()?;
    let lines = rt.block_on(secutix_sync::check::run_checks(&config, &store));
    let _ = store.flush();
    let mut ok = true;
    for l in &lines {
        ok &= l.ok;
        println!("{} {}: {}", if l.ok { "OK  " } else { "FAIL" }, l.what, l.detail);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
