//! Printing helpers: the human text of the operator documents (status, plans, progress, import reports).

use super::*;
use secutix_sync::daemon::status::{OffersStatus, StatusDocument};
use secutix_sync::daemon::summaries::{CatalogueRun, OnceReport, PollRun};

/// What `validate-config` prints: where the configuration comes from, then every problem (type, value,
/// credentials, unknown keys) and warning at once, then the verdict.
pub(crate) fn validation_text(report: &secutix_sync::config::Report) -> String {
    use secutix_sync::config::DEFAULT_CONFIG_PATH;
    use secutix_sync::secutix::settings::Transport;
    use std::fmt::Write;
    let mut out = String::new();
    let _ = match &report.file {
        Some(f) => writeln!(out, "configuration file: {}", f.display()),
        None => writeln!(
            out,
            "configuration file: none read ({DEFAULT_CONFIG_PATH} does not exist; name one with --config): the \
             built-in defaults and SECUTIX_SYNC__ variables only"
        ),
    };
    let c = &report.config;
    if report.problems.is_empty() {
        let transport = match c.secutix.transport {
            Transport::Rest => "REST (JSON)",
            Transport::Soap => "SOAP (XML)",
        };
        let _ = writeln!(
            out,
            "institution {} on {} over {transport}",
            c.secutix.institution,
            secutix_sync::http::redact_credentials(&c.secutix.base_url())
        );
        let _ = writeln!(out, "store: {}", c.store.path.display());
        let targets: Vec<String> = c
            .targets
            .iter()
            .map(|t| {
                let kind = format!("{:?}", t.kind).to_lowercase();
                let off = if t.enabled { "" } else { ", disabled" };
                format!("{} ({kind}{off})", t.name)
            })
            .collect();
        if !targets.is_empty() {
            let _ = writeln!(out, "targets: {}", targets.join(", "));
        }
    }
    for p in &report.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    for p in &report.credentials {
        let _ = writeln!(out, "problem: {}", p.problem);
    }
    if !report.credentials.is_empty() {
        let _ = writeln!(
            out,
            "  (credentials are needed by run, import, availability, check, push and passculture) {}",
            secutix_sync::config::credentials_hint()
        );
    }
    for p in &report.unknown_keys {
        let _ = writeln!(out, "problem: {p}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let exposed = secutix_sync::config::exposed_secret_files(c, report.file.as_deref());
    for w in &exposed {
        let _ = writeln!(out, "warning: {w}");
    }
    let problems = report.problems.len() + report.credentials.len() + report.unknown_keys.len();
    let _ = match (problems, report.warnings.len() + exposed.len()) {
        (0, 0) => writeln!(out, "configuration OK"),
        (0, w) => writeln!(out, "configuration OK, with {w} warning(s)"),
        (n, _) => writeln!(out, "{n} problem(s)"),
    };
    out
}

pub(crate) fn print_import(r: &ImportReport) {
    let c = &r.counts;
    match r.outcome {
        ImportOutcome::Unchanged => println!(
            "catalogue unchanged: SecuTix sent the same {} bytes as last time ({} products in force)",
            r.bytes, c.products
        ),
        _ => {
            println!(
                "import #{} done in {:.1}s: generation {}",
                r.id,
                (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0,
                r.generation.unwrap_or(0)
            );
            println!(
                "  products {} (added {}, changed {}, unchanged {}, removed {}), performances {}, seasons {}",
                c.products, c.added, c.changed, c.unchanged, c.removed, c.performances, c.seasons
            );
            println!(
                "  skipped by filters {}, listed in two seasons {}, past performances kept {}",
                c.skipped, c.duplicates, c.retained_performances
            );
            if c.flagged > 0 {
                println!("  {} value(s) left out because they cannot be right:", c.flagged);
                for f in &r.flagged {
                    println!("    {f}");
                }
            }
        }
    }
    println!("  {} bytes received in {} SecuTix call(s)", r.bytes, r.calls);
}

/// Runs `poll`, showing its progress (from `sink`) every half second.
pub(crate) async fn show_poll_progress<T>(
    poll: impl std::future::Future<Output = T>,
    sink: &ProgressSink,
    view: &ProgressView,
) -> T {
    use secutix_sync::cli_client::poll_progress_text;
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tokio::pin!(poll);
    loop {
        tokio::select! {
            result = &mut poll => return result,
            _ = tick.tick() => {
                if let Some(p) = sink.get() {
                    let line = format!("availability poll: {}", poll_progress_text(&p, started.elapsed().as_secs()));
                    let counts = (p.phase == "fetching").then_some((p.products_done, p.products_total));
                    view.update(&line, counts, Some(format!("poll {}", p.phase)), false);
                }
            }
        }
    }
}

/// One target's plan line: `target NAME (kind): create …; unchanged …`.
pub(crate) fn print_plan_line(name: &str, kind: &str, p: &secutix_sync::daemon::summaries::PlanCounts) {
    println!(
        "target {name} ({kind}): create {}, update {}, unpublish {}, delete {}; unchanged {}, dead letters {}, \
         dropped {}, not selected {}",
        p.create, p.update, p.unpublish, p.delete, p.unchanged, p.dead, p.dropped, p.skipped
    );
}

/// Prints a plan document ([`secutix_sync::daemon::documents::PlanDocument`]); with `operations`, one line each.
pub(crate) fn print_plan(doc: &secutix_sync::daemon::documents::PlanDocument, operations: bool) {
    println!(
        "entries: {} built, {} changed since the last plan",
        doc.entries, doc.changed_entries
    );
    for t in &doc.targets {
        println!(
            "target {} ({}): create {}, update {}, unpublish {}, delete {}; unchanged {}, dead letters {}, \
             dropped {}, not selected {}",
            t.name, t.kind, t.create, t.update, t.unpublish, t.delete, t.unchanged, t.dead, t.dropped, t.skipped
        );
        if operations {
            for op in &t.operations {
                println!("  {:<9} {:<24} {}", op.op, op.external_id, op.title);
            }
            if t.waiting > 0 {
                println!("  {} operation(s) already in the outbox would be sent too", t.waiting);
            }
        }
    }
}

/// A time for people (`2026-03-01 19:00:00 UTC`), or `never`.
pub(crate) fn short_utc(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub(crate) fn print_once(summary: &OnceReport) {
    print!("{}", once_text(summary));
    for f in &summary.failed {
        eprintln!("failed: {f}");
    }
}

/// The lines of `run --once` and `demo --once`: each job's summary, the plan of every entry, then per target
/// the operations to send (those the lines above queued, plus any left from before) and what became of them.
pub(crate) fn once_text(summary: &OnceReport) -> String {
    use secutix_sync::daemon::summaries::{OncePush, OnceStep};
    use std::fmt::Write;
    let mut out = String::new();
    fn step<T>(s: &OnceStep<T>, line: impl Fn(&T) -> String) -> String {
        match s {
            OnceStep::Ran(r) => line(r),
            OnceStep::Failed { error } => error.clone(),
        }
    }
    if let Some(c) = &summary.catalogue {
        let _ = writeln!(out, "catalogue: {}", step(c, CatalogueRun::line));
    }
    if let Some(a) = &summary.availability {
        let _ = writeln!(out, "availability: {}", step(a, PollRun::line));
    }
    if let Some(p) = &summary.plan {
        let _ = writeln!(out, "plan: {}", p.clause().trim_start_matches("; "));
    }
    for (name, r) in &summary.push {
        let (report, to_send, waiting_before) = match r {
            OncePush::Failed { error } => {
                let _ = writeln!(out, "push {name}: {error}");
                continue;
            }
            OncePush::Drained {
                report,
                to_send,
                waiting_before,
            } => (report, to_send, waiting_before),
        };
        let before = match waiting_before {
            0 => String::new(),
            b => format!(" ({b} queued before this run)"),
        };
        let retries = match report.retried {
            0 => String::new(),
            r => format!(" ({r} failed attempts retried)"),
        };
        let _ = writeln!(
            out,
            "push {name}: {to_send} operations to send{before}: {} delivered, {} moved to dead letters, {} still \
             pending{retries}",
            report.delivered, report.dead, report.pending
        );
    }
    out
}

pub(crate) fn print_status(doc: &StatusDocument) {
    let d = &doc.daemon;
    if d.running {
        println!(
            "secutix-sync {}: daemon running (pid {}, since {})",
            doc.version,
            d.pid.map_or("?".to_owned(), |p| p.to_string()),
            short_utc(d.started_at)
        );
    } else {
        println!(
            "secutix-sync {}: no daemon running; read from the store {}",
            doc.version,
            doc.store.display()
        );
    }
    println!("institution {} ({})", doc.institution, doc.transport);
    let c = &doc.catalogue;
    match c.generation {
        Some(g) => println!(
            "catalogue: {} products, {} tombstones (generation {g}); last good import {}",
            c.products.unwrap_or(0),
            c.tombstones.unwrap_or(0),
            short_utc(c.last_good_import_at)
        ),
        None => println!("catalogue: none yet (no successful import)"),
    }
    println!("jobs:");
    for job in ["catalogue", "availability", "refresh"] {
        let mut parts = Vec::new();
        let running = doc.jobs.running(job);
        if let Some(r) = running {
            let mut line = format!("running (run {}, since {})", r.id, short_utc(Some(r.started_at)));
            if let Some(p) = &r.progress {
                let elapsed = (doc.now - r.started_at).num_seconds().max(0) as u64;
                line.push_str(&format!(
                    ": {}",
                    secutix_sync::cli_client::poll_progress_text(p, elapsed)
                ));
            }
            parts.push(line);
        }
        match doc.jobs.last_run(job) {
            Some(last) => {
                let ok = if last.ok { "ok" } else { "FAILED" };
                parts.push(format!(
                    "last {ok} at {}: {}",
                    short_utc(Some(last.finished_at)),
                    last.line
                ));
            }
            None if running.is_none() => parts.push("no run yet".to_owned()),
            None => {}
        }
        match doc.jobs.next_run_at(job) {
            Some(t) => parts.push(format!("next {}", short_utc(Some(t)))),
            None if job == "availability" && doc.catalogue.generation.is_none() => {
                parts.push("waits for the first catalogue".to_owned())
            }
            None => {}
        }
        let mut line = format!("  {job:<13}{}", parts.join("; "));
        if job == "catalogue"
            && let Some(s) = &doc.jobs.catalogue.schedule
        {
            let tz = doc.jobs.catalogue.time_zone.as_deref().unwrap_or("UTC");
            line.push_str(&format!(" (cron {s}, {tz})"));
        }
        println!("{line}");
    }
    let s = &doc.secutix;
    println!(
        "SecuTix calls: {} this month of a budget of {} ({} %), {} today",
        s.calls_this_month, s.monthly_call_budget, s.budget_used_percent, s.calls_today
    );
    let a = &doc.availability;
    if !a.enabled {
        println!("availability: polling disabled (availability.enabled = false)");
    }
    if let Some(i) = &a.indicators {
        let by = by_status(&i.by_status);
        println!(
            "indicators: {} future performances{by}; never fetched {}, stale {}, oldest fetch {}; last change {}",
            i.future_performances,
            i.unknown,
            i.stale,
            short_utc(i.oldest_fetched_at),
            short_utc(a.last_change_at)
        );
    }
    println!("targets:");
    if doc.targets.is_empty() {
        println!("  none configured ([[targets]])");
    }
    for (name, t) in &doc.targets {
        let enabled = if t.enabled { "" } else { ", disabled" };
        println!(
            "  {name} ({}{enabled}): {} pending, {} dead letters, {} acknowledged",
            t.kind, t.outbox, t.dead_letters, t.acknowledged
        );
        if let Some(e) = &t.last_error {
            println!("    last error: {e} (next attempt {})", short_utc(t.next_attempt_at));
        }
        if let Some(pc) = &t.passculture {
            print_offer_statuses(pc);
        }
    }
    for what in &doc.unreadable {
        println!("could not read {what}");
    }
}

/// How `resync --wait`, `push` (through the daemon) and `availability` show progress: a bar on a terminal
/// (products of a poll, operations of a push; a spinner otherwise), plain lines elsewhere, where a run in
/// progress is said again every [`PLAIN_PROGRESS_EVERY`] (or when it moves to another phase), not at every
/// look at the daemon.
pub(crate) struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    /// Plain mode: what the last progress line was about and when it was printed (std mutex: never held
    /// across an await).
    last_plain: std::sync::Mutex<Option<(String, std::time::Instant)>>,
    /// Plain lines go to stderr (the command's own report is on stdout) instead of stdout.
    plain_on_stderr: bool,
}

/// How often plain mode repeats the line of a run in progress.
pub(crate) const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl ProgressView {
    pub(crate) fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Self {
            bar,
            last_plain: std::sync::Mutex::new(None),
            plain_on_stderr: false,
        }
    }

    /// A view whose plain lines go to stderr, next to a report on stdout.
    pub(crate) fn on_stderr() -> Self {
        Self {
            plain_on_stderr: true,
            ..Self::new()
        }
    }

    pub(crate) fn show(&self, p: &secutix_sync::cli_client::Progress) {
        use secutix_sync::cli_client::{Progress, progress_line};
        // (position, length) of a bar, and the topic of a progress line.
        let (counts, topic) = match p {
            Progress::Running {
                job,
                run,
                progress: Some(pr),
                ..
            } => (
                Some((pr.products_done, pr.products_total)),
                Some(format!("{job} {run} {}", pr.phase)),
            ),
            Progress::Running { job, run, .. } => (None, Some(format!("{job} {run}"))),
            Progress::Pushing { delivered, dead, total } => (Some((delivered + dead, *total)), Some("push".into())),
            _ => (None, None),
        };
        let done = matches!(
            p,
            Progress::Finished { .. } | Progress::Delivered { .. } | Progress::Waiting { .. }
        );
        self.update(&progress_line(p), counts, topic, done);
    }

    /// Shows `line`: with `counts` (position, length) as a bar on a terminal; a `topic` marks a line of
    /// progress, repeated in plain mode only when the topic changes or every [`PLAIN_PROGRESS_EVERY`]; a
    /// `done` line stays above the bar.
    pub(crate) fn update(&self, line: &str, counts: Option<(u64, u64)>, topic: Option<String>, done: bool) {
        let Some(b) = &self.bar else {
            let mut last = self.last_plain.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(topic) = topic {
                let due = match &*last {
                    Some((t, at)) => *t != topic || at.elapsed() >= PLAIN_PROGRESS_EVERY,
                    None => true,
                };
                if !due {
                    return;
                }
                *last = Some((topic, std::time::Instant::now()));
            } else {
                *last = None;
            }
            if self.plain_on_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            return;
        };
        match (done, counts) {
            (true, _) => {
                b.println(line);
                b.set_style(indicatif::ProgressStyle::default_spinner());
                b.unset_length();
                b.set_message("");
            }
            (_, Some((position, length))) => {
                if b.length().is_none() {
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {wide_msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                }
                b.set_length(length);
                b.set_position(position);
                b.set_message(line.to_owned());
            }
            _ => {
                if b.length().is_some() {
                    b.set_style(indicatif::ProgressStyle::default_spinner());
                    b.unset_length();
                }
                b.set_message(line.to_owned());
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// ` (3 available, 1 sold_out)` from `{status: count}`; empty when there is none.
pub(crate) fn by_status(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let by: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    }
}

/// The pass Culture lines of a `passculture` target in `status`: offers by status, then those that need a
/// look (rejected, still in validation, with warnings).
pub(crate) fn print_offer_statuses(pc: &OffersStatus) {
    let (n, by, read_at, list) = match pc {
        OffersStatus::Unreadable { error } => {
            println!("    pass Culture offers: cannot read them: {error}");
            return;
        }
        OffersStatus::Read {
            offers,
            by_status: by,
            statuses_read_at,
            list,
        } => (offers, by, statuses_read_at, list),
    };
    println!(
        "    pass Culture offers: {n}{}; statuses read {}",
        by_status(by),
        short_utc(*read_at)
    );
    for o in list {
        let id = &o.external_id;
        let name = o.name.as_deref().unwrap_or("");
        let offer = o
            .offer_id
            .map_or_else(|| "not created".to_owned(), |i| format!("offer {i}"));
        match o.status.as_deref() {
            Some("REJECTED") => {
                println!("    REJECTED {id} {name:?} ({offer}): pass Culture refused it; its pro portal says why")
            }
            Some("PENDING") => {
                println!("    PENDING  {id} {name:?} ({offer}): pass Culture is validating it (up to 72 h)")
            }
            _ => {}
        }
        for w in &o.warnings {
            println!("    warning  {id} {name:?}: {w}");
        }
        if let Some(r) = &o.image_refused {
            println!("    image    {id} {name:?}: not published: {r}");
        }
    }
}
