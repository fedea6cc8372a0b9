//! Printing helpers: the human text of the operator documents (status, plans, progress, import reports).

use super::*;

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
pub(crate) fn print_plan_line(name: &str, kind: &str, p: &serde_json::Value) {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    println!(
        "target {name} ({kind}): create {}, update {}, unpublish {}, delete {}; unchanged {}, dead letters {}, \
         dropped {}, not selected {}",
        n("create"),
        n("update"),
        n("unpublish"),
        n("delete"),
        n("unchanged"),
        n("dead"),
        n("dropped"),
        n("skipped")
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

pub(crate) fn print_once(summary: &serde_json::Value) {
    print!("{}", once_text(summary));
    if let Some(failed) = summary["failed"].as_array() {
        for f in failed {
            eprintln!("failed: {}", f.as_str().unwrap_or_default());
        }
    }
}

/// The lines of `run --once` and `demo --once`: each job's summary, the plan of every entry, then per target
/// the operations to send (those the lines above queued, plus any left from before) and what became of them.
pub(crate) fn once_text(summary: &serde_json::Value) -> String {
    use secutix_sync::cli_client::summary_line;
    use std::fmt::Write;
    let mut out = String::new();
    let as_last = |v: &serde_json::Value| match v["error"].as_str() {
        Some(e) => serde_json::json!({"ok": false, "error": e}),
        None => serde_json::json!({"ok": true, "summary": v}),
    };
    for job in ["catalogue", "availability"] {
        if !summary[job].is_null() {
            let _ = writeln!(out, "{job}: {}", summary_line(job, &as_last(&summary[job])));
        }
    }
    if !summary["plan"].is_null() {
        let _ = writeln!(out, "plan: {}", summary_line("plan", &as_last(&summary["plan"])));
    }
    if let Some(pushes) = summary["push"].as_object() {
        for (name, r) in pushes {
            if let Some(e) = r["error"].as_str() {
                let _ = writeln!(out, "push {name}: {e}");
                continue;
            }
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            let before = match n("waiting_before") {
                0 => String::new(),
                b => format!(" ({b} queued before this run)"),
            };
            let retries = match n("retried") {
                0 => String::new(),
                r => format!(" ({r} failed attempts retried)"),
            };
            let _ = writeln!(
                out,
                "push {name}: {} operations to send{before}: {} delivered, {} moved to dead letters, {} still \
                 pending{retries}",
                n("to_send"),
                n("delivered"),
                n("dead"),
                n("pending")
            );
        }
    }
    out
}

pub(crate) fn short_time(v: &serde_json::Value) -> String {
    v.as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map_or("never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub(crate) fn print_status(doc: &serde_json::Value) {
    use secutix_sync::cli_client::summary_line;
    let d = &doc["daemon"];
    if d["running"].as_bool() == Some(true) {
        println!(
            "secutix-sync {}: daemon running (pid {}, since {})",
            doc["version"].as_str().unwrap_or("?"),
            d["pid"],
            short_time(&d["started_at"])
        );
    } else {
        println!(
            "secutix-sync {}: no daemon running; read from the store {}",
            doc["version"].as_str().unwrap_or("?"),
            doc["store"].as_str().unwrap_or("?")
        );
    }
    println!(
        "institution {} ({})",
        doc["institution"].as_str().unwrap_or("?"),
        doc["transport"].as_str().unwrap_or("?")
    );
    let c = &doc["catalogue"];
    match c["generation"].as_u64() {
        Some(g) => println!(
            "catalogue: {} products, {} tombstones (generation {g}); last good import {}",
            c["products"],
            c["tombstones"],
            short_time(&c["last_good_import_at"])
        ),
        None => println!("catalogue: none yet (no successful import)"),
    }
    println!("jobs:");
    for job in ["catalogue", "availability", "refresh"] {
        let j = &doc["jobs"][job];
        let mut parts = Vec::new();
        if !j["running"].is_null() {
            let mut running = format!(
                "running (run {}, since {})",
                j["running"]["id"],
                short_time(&j["running"]["started_at"])
            );
            if let Ok(p) =
                serde_json::from_value::<secutix_sync::availability::PollProgress>(j["running"]["progress"].clone())
            {
                let time =
                    |v: &serde_json::Value| v.as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
                let elapsed = match (time(&doc["now"]), time(&j["running"]["started_at"])) {
                    (Some(now), Some(start)) => (now - start).num_seconds().max(0) as u64,
                    _ => 0,
                };
                running.push_str(&format!(
                    ": {}",
                    secutix_sync::cli_client::poll_progress_text(&p, elapsed)
                ));
            }
            parts.push(running);
        }
        let last = &j["last"];
        if !last.is_null() && !last["finished_at"].is_null() {
            let ok = if last["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            };
            parts.push(format!(
                "last {ok} at {}: {}",
                short_time(&last["finished_at"]),
                summary_line(job, last)
            ));
        } else if j["running"].is_null() {
            parts.push("no run yet".to_owned());
        }
        if !j["next_run_at"].is_null() {
            parts.push(format!("next {}", short_time(&j["next_run_at"])));
        } else if job == "availability" && doc["catalogue"]["generation"].is_null() {
            parts.push("waits for the first catalogue".to_owned());
        }
        let mut line = format!("  {job:<13}{}", parts.join("; "));
        if let Some(s) = j["schedule"].as_str() {
            line.push_str(&format!(" (cron {s}, {})", j["time_zone"].as_str().unwrap_or("UTC")));
        }
        println!("{line}");
    }
    let s = &doc["secutix"];
    println!(
        "SecuTix calls: {} this month of a budget of {} ({} %), {} today",
        s["calls_this_month"], s["monthly_call_budget"], s["budget_used_percent"], s["calls_today"]
    );
    let a = &doc["availability"];
    if a["enabled"].as_bool() == Some(false) {
        println!("availability: polling disabled (availability.enabled = false)");
    }
    let i = &a["indicators"];
    if !i.is_null() {
        let by = by_status(&i["by_status"]);
        println!(
            "indicators: {} future performances{by}; never fetched {}, stale {}, oldest fetch {}; last change {}",
            i["future_performances"],
            i["unknown"],
            i["stale"],
            short_time(&i["oldest_fetched_at"]),
            short_time(&a["last_change_at"])
        );
    }
    println!("targets:");
    match doc["targets"].as_object() {
        Some(m) if !m.is_empty() => {
            for (name, t) in m {
                let enabled = if t["enabled"].as_bool() == Some(false) {
                    ", disabled"
                } else {
                    ""
                };
                println!(
                    "  {name} ({}{enabled}): {} pending, {} dead letters, {} acknowledged",
                    t["kind"].as_str().unwrap_or("?"),
                    t["outbox"],
                    t["dead_letters"],
                    t["acknowledged"]
                );
                if let Some(e) = t["last_error"].as_str() {
                    println!(
                        "    last error: {e} (next attempt {})",
                        short_time(&t["next_attempt_at"])
                    );
                }
                print_offer_statuses(&t["passculture"]);
            }
        }
        _ => println!("  none configured ([[targets]])"),
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

/// The pass Culture lines of a `passculture` target in `status`: offers by status, then those that need a
/// look (rejected, still in validation, with warnings).
/// ` (3 available, 1 sold_out)` from a `{status: count}` object; empty when there is none.
pub(crate) fn by_status(counts: &serde_json::Value) -> String {
    let by: Vec<String> = counts
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
        .unwrap_or_default();
    if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    }
}

pub(crate) fn print_offer_statuses(pc: &serde_json::Value) {
    if let Some(e) = pc["error"].as_str() {
        println!("    pass Culture offers: cannot read them: {e}");
        return;
    }
    let Some(n) = pc["offers"].as_u64() else { return };
    let by = by_status(&pc["by_status"]);
    println!(
        "    pass Culture offers: {n}{by}; statuses read {}",
        short_time(&pc["statuses_read_at"])
    );
    for o in pc["list"].as_array().into_iter().flatten() {
        let id = o["external_id"].as_str().unwrap_or("?");
        let name = o["name"].as_str().unwrap_or("");
        let offer = o["offer_id"]
            .as_u64()
            .map_or_else(|| "not created".to_owned(), |i| format!("offer {i}"));
        match o["status"].as_str() {
            Some("REJECTED") => {
                println!("    REJECTED {id} {name:?} ({offer}): pass Culture refused it; its pro portal says why")
            }
            Some("PENDING") => {
                println!("    PENDING  {id} {name:?} ({offer}): pass Culture is validating it (up to 72 h)")
            }
            _ => {}
        }
        for w in o["warnings"].as_array().into_iter().flatten() {
            println!("    warning  {id} {name:?}: {}", w.as_str().unwrap_or("?"));
        }
        if let Some(r) = o["image_refused"].as_str() {
            println!("    image    {id} {name:?}: not published: {r}");
        }
    }
}
