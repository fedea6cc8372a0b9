//! `secutix-sync availability`: one availability poll, through the daemon when one runs, else on the store.

use super::*;

pub(crate) fn availability_command(sources: &Sources, product: Option<i64>) -> anyhow::Result<ExitCode> {
    use secutix_sync::availability::{PollOptions, Poller};
    let loaded = load_config_without_credentials(sources)?;
    let rt = runtime()?;
    if let Some(daemon) = daemon_or_store(&loaded.config, &rt, Some("polling into"))? {
        use secutix_sync::daemon::documents::ResyncScope;
        let scope = product.map_or(ResyncScope::Availability, ResyncScope::Product);
        return hand_to_daemon(&rt, &daemon, scope, false);
    }
    loaded.require_credentials(true, &[])?;
    let config = loaded.config;
    if !config.availability.enabled {
        eprintln!("note: availability.enabled = false: the daemon does not poll; running this one poll anyway");
    }
    let store = open_store(&config)?;
    let sink = secutix_sync::availability::ProgressSink::default();
    let poller = Poller::from_config(&config.secutix, &config.availability, store.clone())
        .context("while preparing the availability poll")?
        .with_progress(sink.clone());
    let view = ProgressView::on_stderr();
    let result = rt.block_on(show_poll_progress(
        poller.poll_once(PollOptions { product }),
        &sink,
        &view,
    ));
    view.finish();
    store.flush()?;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("availability poll failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let budget = config.availability.monthly_call_budget;
    println!(
        "{} SecuTix call(s) spent (allowed {}): asked about {} product(s), {} reported changed, {} fetched",
        report.calls,
        report.allowance,
        report.asked,
        report.reported,
        report.fetched.len()
    );
    if report.changes.is_empty() {
        println!("no indicator changed");
    }
    for c in &report.changes {
        let perf = c
            .performance_id
            .map_or_else(|| "(product)".to_owned(), |p| format!("performance {p}"));
        println!(
            "  product {} {perf}: {} -> {}",
            c.product_id,
            c.before.as_str(),
            c.after.as_str()
        );
    }
    if !report.dirty.is_empty() {
        println!(
            "{} product(s) marked dirty: the daemon's next plan sends their entries to the targets",
            report.dirty.len()
        );
    }
    if report.unrecognised > 0 {
        println!(
            "{} record(s) had a level this version does not know: left as they were (see the warnings above)",
            report.unrecognised
        );
    }
    if !report.stale.is_empty() {
        println!(
            "{} product(s) could not be refreshed and keep their previous indicator, marked stale: {} {}",
            report.stale.len(),
            if report.stale.len() == 1 { "product" } else { "products" },
            report
                .stale
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "{} product(s) still pending; {} SecuTix calls this month of a budget of {budget} ({} left for availability)",
        report.pending, report.month_calls, report.budget_left
    );
    println!("next poll in {}", secutix_sync::text::human(report.next_poll_in));
    match &report.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("availability poll failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
