//! `GET /metrics`: the Prometheus text format, computed at scrape time from the store, the outbox and the daemon's counters.

#[allow(unused_imports)]
use super::*;

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    use std::fmt::Write;
    let now = app.clock.now();
    let cfg = app.config();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(
            out,
            "# HELP secutix_sync_{name} {help}\n# TYPE secutix_sync_{name} gauge"
        );
        for (labels, v) in samples {
            let _ = writeln!(out, "secutix_sync_{name}{labels} {v}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    let cat = app.store.catalog().ok().flatten();
    gauge("up", "1 while the daemon runs.", one(1.0));
    gauge(
        "catalogue_products",
        "Products in the catalogue in force, by state.",
        vec![
            (
                "{state=\"live\"}".into(),
                cat.as_ref().map_or(0.0, |c| c.meta.live as f64),
            ),
            (
                "{state=\"tombstone\"}".into(),
                cat.as_ref().map_or(0.0, |c| c.meta.tombstones as f64),
            ),
        ],
    );
    let ts = |t: Option<DateTime<Utc>>| t.map_or(0.0, |t| t.timestamp() as f64);
    gauge(
        "catalogue_last_success_timestamp_seconds",
        "End of the last good import (Unix time; 0 = never).",
        one(ts(app.catalogue.state().last_success_at)),
    );
    gauge(
        "secutix_calls_month",
        "SecuTix calls this month (venue time zone).",
        one(app.store.calls_in_month(now) as f64),
    );
    gauge(
        "secutix_calls_day",
        "SecuTix calls today (venue time zone).",
        one(app.store.calls_on_day(now) as f64),
    );
    gauge(
        "secutix_call_budget_month",
        "Configured monthly SecuTix call budget (availability.monthly_call_budget).",
        one(cfg.availability.monthly_call_budget as f64),
    );
    gauge(
        "secutix_bytes_month",
        "Bytes received from SecuTix this month.",
        one(app.store.bytes_in_month(now) as f64),
    );
    let states: [(&str, JobState<()>); 3] = [
        ("catalogue", app.catalogue.state().facts()),
        ("availability", app.availability.state().facts()),
        ("refresh", app.refresh.state().facts()),
    ];
    let per_job = |f: &dyn Fn(&JobState<()>) -> f64| -> Vec<(String, f64)> {
        states.iter().map(|(n, s)| (format!("{{job=\"{n}\"}}"), f(s))).collect()
    };
    gauge(
        "job_running",
        "1 while the job runs.",
        per_job(&|s| if s.running.is_some() { 1.0 } else { 0.0 }),
    );
    gauge(
        "job_consecutive_failures",
        "Failed runs in a row.",
        per_job(&|s| f64::from(s.consecutive_failures)),
    );
    gauge(
        "job_last_success_timestamp_seconds",
        "End of the job's last successful run (Unix time; 0 = none since start).",
        per_job(&|s| ts(s.last_success_at)),
    );
    gauge(
        "job_next_run_timestamp_seconds",
        "Next scheduled run (Unix time; 0 = none scheduled).",
        per_job(&|s| ts(s.next_run_at)),
    );
    if let Ok(f) = freshness(&app.store, now) {
        gauge(
            "indicator_performances",
            "Future performances by indicator.",
            f.by_status
                .iter()
                .map(|(k, v)| (format!("{{status=\"{k}\"}}"), *v as f64))
                .collect(),
        );
        gauge(
            "indicator_stale_performances",
            "Future performances whose last availability refresh failed.",
            one(f.stale as f64),
        );
        gauge(
            "indicator_oldest_fetch_timestamp_seconds",
            "Oldest availability fetch among future performances (Unix time; 0 = none).",
            one(ts(f.oldest_fetched_at)),
        );
    }
    let mut depth = Vec::new();
    let mut dead = Vec::new();
    for t in &cfg.targets {
        let n = &t.name;
        depth.push((format!("{{target=\"{n}\"}}"), app.outbox.depth(n).unwrap_or(0) as f64));
        dead.push((
            format!("{{target=\"{n}\"}}"),
            app.outbox
                .dead_letters(std::slice::from_ref(n))
                .map(|d| d.len())
                .unwrap_or(0) as f64,
        ));
    }
    gauge("outbox_depth", "Operations waiting to be sent, per target.", depth);
    gauge("dead_letters", "Operations that failed for good, per target.", dead);
    for (metric, help, m) in [
        (
            "push_delivered_total",
            "Operations acknowledged since start.",
            &app.metrics.delivered,
        ),
        (
            "push_failed_attempts_total",
            "Failed attempts since start.",
            &app.metrics.retried,
        ),
        (
            "push_dead_total",
            "Operations moved to dead letters since start.",
            &app.metrics.dead,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP secutix_sync_{metric} {help}\n# TYPE secutix_sync_{metric} counter"
        );
        for t in &cfg.targets {
            let _ = writeln!(
                out,
                "secutix_sync_{metric}{{target=\"{}\"}} {}",
                t.name,
                Metrics::get(m, &t.name)
            );
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
