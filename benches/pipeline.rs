//! `cargo bench --bench pipeline`: the catalogue pipeline's speed and memory, printed as tables.
//!
//! For 200×10, 2,000×25 and 10,000×25 generated catalogues (`secutix_sync::fakes::generator`), in REST JSON, SOAP XML
//! (`getCatalogDetailed`) and `getCatalog` (the catalogue XML string, over SOAP):
//! - bytes of the response; parse-only throughput (the production parser over the bytes in memory, products
//!   converted to the domain model and dropped) next to a bare pass over the same bytes (serde_json into
//!   `IgnoredAny`, or quick-xml reading every event), the floor;
//! - full import throughput: `import::run_import` through the real client against the built-in simulator
//!   on loopback (getPOSConfig + the catalogue call, spooling, hashing, parsing, the store's new generation);
//! - peak RSS of that importing process: every scenario runs in its own child process (this binary
//!   re-executed with `--scenario …`), which reads `VmHWM` from `/proc/self/status`; the simulator runs in
//!   the parent, so the figure is the daemon's alone;
//! - the no-change path: a second import of byte-identical bytes, and a forced re-import that re-parses the
//!   same catalogue; each followed by a plan to a webhook target that already has every entry (operations
//!   planned, CMS requests made: both must be zero);
//! - push throughput to a mock CMS on loopback answering after 20 ms (webhook target, real HTTP), against the
//!   ideal entries × latency / concurrency.
//!
//! Options (after `--`): `--sizes 200x10,2000x25` to choose catalogues, `--push-concurrency N` (default 8),
//! `--skip-push`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secutix_sync::availability::{PollOptions, Poller};
use secutix_sync::catalog::{Performance, Product, Season};
use secutix_sync::clock::{SharedClock, SystemClock, TokioClock};
use secutix_sync::config::{Config, Sources};
use secutix_sync::fakes::generator::{Generator, GeneratorOptions};
use secutix_sync::fakes::simulator::{CatalogueBody, Simulator, SimulatorOptions};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::import::{ImportOptions, run_import};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::public::PublicSnapshot;
use secutix_sync::push::{DeletePolicy, DrainOptions, Outbox, PlanTarget, PushSettings, Scope, Worker};
use secutix_sync::secutix::parse::{CatalogSink, SinkError};
use secutix_sync::secutix::wire::ConvertCtx;
use secutix_sync::secutix::{Client, json as sjson, xml as sxml};
use secutix_sync::store::{FinishOptions, ImportOutcome, Store};
use secutix_sync::targets::Target;
use secutix_sync::targets::webhook::{WebhookMode, WebhookSettings, WebhookTarget};
use serde::{Deserialize, Serialize};

const SEED: u64 = 2026;
const CMS_LATENCY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Format {
    RestJson,
    SoapXml,
    GetCatalogXml,
}

impl Format {
    const ALL: [Format; 3] = [Format::RestJson, Format::SoapXml, Format::GetCatalogXml];

    fn label(self) -> &'static str {
        match self {
            Format::RestJson => "REST JSON",
            Format::SoapXml => "SOAP XML",
            Format::GetCatalogXml => "getCatalog XML",
        }
    }
    fn arg(self) -> &'static str {
        match self {
            Format::RestJson => "rest",
            Format::SoapXml => "soap",
            Format::GetCatalogXml => "getcatalog",
        }
    }
    fn from_arg(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.arg() == s)
    }
    fn body(self) -> CatalogueBody {
        match self {
            Format::RestJson => CatalogueBody::RestDetailed,
            Format::SoapXml => CatalogueBody::SoapDetailed,
            Format::GetCatalogXml => CatalogueBody::SoapGetCatalog,
        }
    }
    fn config(self) -> (&'static str, &'static str) {
        match self {
            Format::RestJson => ("rest", "getCatalogDetailed"),
            Format::SoapXml => ("soap", "getCatalogDetailed"),
            Format::GetCatalogXml => ("soap", "getCatalog"),
        }
    }
}

/// What one scenario child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScenarioResult {
    products: usize,
    performances: usize,
    format: Format,
    bytes: u64,
    bare_secs: f64,
    parse_secs: f64,
    /// Parse + store from the spooled body (the import path after the download), into an empty store.
    spooled_secs: f64,
    import_secs: f64,
    import_products: u64,
    rss_import_kib: u64,
    /// VmRSS once every entry was planned and pushed and the public document built, the process idle: what
    /// a daemon holds between runs.
    rss_after_push_kib: u64,
    /// VmHWM at that point (the plan and the push included).
    hwm_after_push_kib: u64,
    /// VmRSS after the two no-change imports and their plans.
    rss_end_kib: u64,
    same_bytes_secs: f64,
    same_bytes_outcome: String,
    same_bytes_ops: u64,
    same_bytes_requests: u64,
    reparse_secs: f64,
    reparse_unchanged: u64,
    reparse_ops: u64,
    reparse_requests: u64,
    first_push_delivered: u64,
}

/// What one availability child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AvailabilityResult {
    products: usize,
    performances: usize,
    /// The first poll after the import (every product needs a first fetch).
    first: PollFigures,
    /// Steady state, by share of products changed at each step (1 %, 10 %, 100 %): the mean of a few polls.
    steady: Vec<(f64, PollFigures)>,
    /// VmRSS after the polls of the 1 % run (the simulator is in the same process), and VmHWM then.
    rss_kib: u64,
    hwm_kib: u64,
}

/// Calls and products of one poll (or a mean of polls).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PollFigures {
    calls: f64,
    /// `getUpdatedAvailabilities` calls among them.
    asks: f64,
    fetched: f64,
    /// Products SecuTix reported as changed.
    reported: f64,
    /// Products left pending after the poll (must be 0: the budget is out of the way).
    pending: f64,
}

/// What one push child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PushResult {
    entries: u64,
    concurrency: usize,
    latency_ms: u64,
    secs: f64,
    requests: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if let Some(i) = args.iter().position(|a| a == "--scenario") {
        scenario_child(&args[i + 1..]).map(|r| println!("RESULT {}", serde_json::to_string(&r).unwrap_or_default()))
    } else if let Some(i) = args.iter().position(|a| a == "--availability") {
        availability_child(&args[i + 1..]).map(|r| println!("RESULT {}", serde_json::to_string(&r).unwrap_or_default()))
    } else if let Some(i) = args.iter().position(|a| a == "--push") {
        push_child(&args[i + 1..]).map(|r| println!("RESULT {}", serde_json::to_string(&r).unwrap_or_default()))
    } else {
        parent(&args)
    };
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

type BenchResult<T> = Result<T, String>;

fn runtime() -> BenchResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))
}

fn parse_size(s: &str) -> BenchResult<(usize, usize)> {
    let (a, b) = s
        .split_once('x')
        .ok_or_else(|| format!("size {s:?}: expected PRODUCTSxPERFORMANCES"))?;
    let n = |v: &str| {
        v.replace([',', '_'], "")
            .parse::<usize>()
            .map_err(|e| format!("size {s:?}: {e}"))
    };
    Ok((n(a)?, n(b)?))
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

// ---------------------------------------------------------------------------------------------------------
// Parent: simulator, children, tables
// ---------------------------------------------------------------------------------------------------------

fn parent(args: &[String]) -> BenchResult<()> {
    let sizes: Vec<(usize, usize)> = match option(args, "--sizes") {
        Some(s) => s.split(',').map(parse_size).collect::<BenchResult<_>>()?,
        None => vec![(200, 10), (2_000, 25), (10_000, 25)],
    };
    let concurrency: usize = option(args, "--push-concurrency")
        .map(|c| c.parse().map_err(|e| format!("--push-concurrency: {e}")))
        .transpose()?
        .unwrap_or(8);
    let skip_push = args.iter().any(|a| a == "--skip-push");
    let skip_availability = args.iter().any(|a| a == "--skip-availability");
    let formats: Vec<Format> = match option(args, "--formats") {
        Some(s) => s
            .split(',')
            .map(|f| {
                Format::from_arg(f).ok_or_else(|| format!("--formats: unknown format {f:?} (rest, soap, getcatalog)"))
            })
            .collect::<BenchResult<_>>()?,
        None => Format::ALL.to_vec(),
    };
    println!("{}", machine());
    let rt = runtime()?;
    let mut results = Vec::new();
    let mut pushes = Vec::new();
    let mut polls = Vec::new();
    for &(products, perfs) in &sizes {
        let sim = rt
            .block_on(Simulator::start(SimulatorOptions {
                products,
                performances_per_product: perfs,
                seed: SEED,
                in_progress_once: false,
                ..SimulatorOptions::default()
            }))
            .map_err(|e| format!("simulator: {e}"))?;
        for &format in &formats {
            let started = Instant::now();
            let bytes = rt
                .block_on(sim.prepare(format.body()))
                .map_err(|e| format!("rendering {products}×{perfs} {}: {e}", format.label()))?;
            eprintln!(
                "== {products}×{perfs} {}: {} rendered in {:.1}s",
                format.label(),
                mb(bytes),
                started.elapsed().as_secs_f64()
            );
            let r: ScenarioResult = run_child(&[
                "--scenario".into(),
                sim.base_url(),
                products.to_string(),
                perfs.to_string(),
                format.arg().into(),
            ])?;
            results.push(r);
        }
        rt.block_on(sim.stop());
        if !skip_push {
            eprintln!("== push {products} entries, concurrency {concurrency}");
            let r: PushResult = run_child(&[
                "--push".into(),
                products.to_string(),
                perfs.to_string(),
                concurrency.to_string(),
                CMS_LATENCY.as_millis().to_string(),
            ])?;
            pushes.push(r);
        }
        if !skip_availability {
            eprintln!("== availability refreshes of {products}×{perfs}");
            let r: AvailabilityResult = run_child(&["--availability".into(), products.to_string(), perfs.to_string()])?;
            polls.push(r);
        }
    }
    print_tables(&results, &pushes, &polls);
    Ok(())
}

fn run_child<T: for<'de> Deserialize<'de>>(args: &[String]) -> BenchResult<T> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let out = Command::new(exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the scenario process: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("scenario {args:?} failed ({}): {stdout}", out.status));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("scenario {args:?} printed no result: {stdout}"))?;
    serde_json::from_str(line).map_err(|e| format!("scenario {args:?}: unreadable result: {e}"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "machine: {cpu}, {cores} cores, {:.1} GiB RAM, Linux {}, {rustc}, release profile",
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

fn print_tables(results: &[ScenarioResult], pushes: &[PushResult], polls: &[AvailabilityResult]) {
    let mut out = String::new();
    let size = |r: &ScenarioResult| format!("{}×{}", group(r.products), r.performances);
    out.push_str("\n### Catalogue import\n\n");
    out.push_str("| catalogue | format | bytes | bare pass | parse-only | import from spooled bytes (/ bare) | import via simulator (/ bare) | import time | peak RSS of the import | RSS after plan + push, idle (peak) |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let bare = mbps(r.bytes, r.bare_secs);
        let import = mbps(r.bytes, r.import_secs);
        let spooled = mbps(r.bytes, r.spooled_secs);
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} MB/s | {:.0} MB/s | {:.0} MB/s ({:.0} %) | {:.0} MB/s ({:.0} %) | {:.2} s | {:.0} MB | {:.0} MB ({:.0} MB) |\n",
            size(r),
            r.format.label(),
            mb(r.bytes),
            bare,
            mbps(r.bytes, r.parse_secs),
            spooled,
            spooled / bare * 100.0,
            import,
            import / bare * 100.0,
            r.import_secs,
            r.rss_import_kib as f64 / 1024.0,
            r.rss_after_push_kib as f64 / 1024.0,
            r.hwm_after_push_kib as f64 / 1024.0,
        ));
    }
    out.push_str("\n### Second import of the same catalogue (no-change path)\n\n");
    out.push_str("| catalogue | format | first import | same bytes again | speed-up | re-parsed (forced) | speed-up | operations planned | CMS requests |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {:.2} s | {:.3} s ({}) | {:.0}× | {:.2} s ({} unchanged) | {:.1}× | {} + {} | {} + {} |\n",
            size(r),
            r.format.label(),
            r.import_secs,
            r.same_bytes_secs,
            r.same_bytes_outcome,
            r.import_secs / r.same_bytes_secs.max(1e-9),
            r.reparse_secs,
            r.reparse_unchanged,
            r.import_secs / r.reparse_secs.max(1e-9),
            r.same_bytes_ops,
            r.reparse_ops,
            r.same_bytes_requests,
            r.reparse_requests,
        ));
    }
    out.push_str("\n### Push to a mock CMS (webhook target, real HTTP on loopback, 20 ms per request)\n\n");
    out.push_str(
        "| entries | concurrency | measured | ideal (entries × latency / concurrency) | ratio | entries/s |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for p in pushes {
        let ideal = p.entries as f64 * p.latency_ms as f64 / 1000.0 / p.concurrency as f64;
        out.push_str(&format!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2}× | {:.0} |\n",
            group(p.entries as usize),
            p.concurrency,
            p.secs,
            ideal,
            p.secs / ideal.max(1e-9),
            p.entries as f64 / p.secs.max(1e-9)
        ));
    }
    out.push_str("\n### SecuTix calls per availability refresh (simulator, budget out of the way, every tier asked each poll)\n\n");
    out.push_str("| catalogue | first poll after the import | 1 % changed | 10 % changed | 100 % changed |\n|---|---:|---:|---:|---:|\n");
    let cell = |f: &PollFigures| {
        format!(
            "{:.0} calls ({:.0} asks + {:.0} fetches; {:.0} products fetched{})",
            f.calls,
            f.asks,
            f.calls - f.asks,
            f.fetched,
            if f.pending > 0.0 {
                format!(", {:.0} left pending", f.pending)
            } else {
                String::new()
            }
        )
    };
    for p in polls {
        let share = |s: f64| {
            p.steady
                .iter()
                .find(|(x, _)| (x - s).abs() < 1e-9)
                .map_or_else(|| "n/a".to_owned(), |(_, f)| cell(f))
        };
        out.push_str(&format!(
            "| {}×{} | {} | {} | {} | {} |\n",
            group(p.products),
            p.performances,
            cell(&p.first),
            share(0.01),
            share(0.1),
            share(1.0)
        ));
    }

    out.push_str("\n### Targets\n\n");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for (label, secs) in [
        (
            "from spooled bytes",
            (|r: &ScenarioResult| r.spooled_secs) as fn(&ScenarioResult) -> f64,
        ),
        ("via the simulator", |r: &ScenarioResult| r.import_secs),
    ] {
        let met: Vec<String> = results
            .iter()
            .filter(|r| r.bare_secs / secs(r) >= 0.5)
            .map(|r| format!("{} {}", size(r), r.format.label()))
            .collect();
        let worst = results
            .iter()
            .map(|r| (r.bare_secs / secs(r), r))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((ratio, r)) = worst {
            out.push_str(&format!(
                "- full import ({label}) ≥ 50 % of the bare parse throughput: {} (lowest {:.0} %, {} {}; met for: {})\n",
                verdict(ratio >= 0.5),
                ratio * 100.0,
                size(r),
                r.format.label(),
                if met.is_empty() { "none".to_owned() } else { met.join(", ") }
            ));
        }
    }
    if let Some(r) = results
        .iter()
        .find(|r| r.products == 10_000 && r.performances == 25 && r.format == Format::SoapXml)
    {
        let mib = r.rss_import_kib as f64 / 1024.0;
        out.push_str(&format!(
            "- peak RSS of the 10,000×25 SOAP import < 150 MB: {} ({mib:.0} MB)\n",
            verdict(mib < 150.0)
        ));
    }
    if let Some(worst) = pushes
        .iter()
        .map(|p| {
            let ideal = p.entries as f64 * p.latency_ms as f64 / 1000.0 / p.concurrency as f64;
            p.secs / ideal
        })
        .max_by(f64::total_cmp)
    {
        out.push_str(&format!(
            "- push within 1.3× of the ideal: {} (worst {worst:.2}×)\n",
            verdict(worst <= 1.3)
        ));
    }
    let worst_same = results
        .iter()
        .map(|r| r.import_secs / r.same_bytes_secs)
        .min_by(f64::total_cmp);
    let worst_reparse = results
        .iter()
        .map(|r| r.import_secs / r.reparse_secs)
        .min_by(f64::total_cmp);
    if let (Some(a), Some(b)) = (worst_same, worst_reparse) {
        out.push_str(&format!(
            "- no-change import ≥ 5× faster than the first: {} (lowest {a:.1}×, the daemon's path for an unchanged \
             catalogue: identical bytes, recognised by their hash); forced re-parse of the same catalogue: lowest {b:.1}× ({})\n",
            verdict(a >= 5.0),
            verdict(b >= 5.0)
        ));
    }
    let zero = results
        .iter()
        .all(|r| r.same_bytes_ops + r.reparse_ops + r.same_bytes_requests + r.reparse_requests == 0);
    out.push_str(&format!("- zero pushes after a no-change import: {}\n", verdict(zero)));
    if let Some(r) = results
        .iter()
        .filter(|r| r.products == 10_000 && r.performances == 25)
        .max_by_key(|r| r.rss_after_push_kib)
    {
        let mib = r.rss_after_push_kib as f64 / 1024.0;
        out.push_str(&format!(
            "- RSS of a 10,000×25 venue after plan + push, idle, < 150 MB: {} (highest {mib:.0} MB, {})\n",
            verdict(mib < 150.0),
            r.format.label()
        ));
    }
    for p in polls {
        let lines: Vec<String> = p
            .steady
            .iter()
            .map(|(s, f)| format!("{:.0} % changed: {:.0}", s * 100.0, f.calls))
            .collect();
        out.push_str(&format!(
            "- SecuTix calls per availability refresh, {}×{}: first poll {:.0}; {} (measured, no target)\n",
            group(p.products),
            p.performances,
            p.first.calls,
            lines.join(", ")
        ));
    }
    println!("{out}");
}

fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------------------

/// Peak resident set size of this process (KiB), from `/proc/self/status`.
fn vm_hwm_kib() -> u64 {
    vm_kib("VmHWM:")
}

/// A `/proc/self/status` figure in KiB (`VmRSS:` resident now, `VmHWM:` peak).
fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn bench_config(base: &str, transport: &str, method: &str) -> BenchResult<Config> {
    let toml = format!(
        r#"
[secutix]
institution = "SIMU"
base_url = "{base}"
transport = "{transport}"
operator = "SIMU_WEBSYNC"
partner = "secutix-sync bench"
secret = "bench-secret"
request_timeout = "30m"
max_response_mib = 8192
# SecuTix's pacing (60 calls a minute, one call per second) is a wait, not work: the bench measures our side.
calls_per_minute = 1000000
[catalogue]
method = "{method}"
min_interval = "0s"
deadline = "1h"
[store]
path = "/nonexistent-unused"
"#
    );
    Config::load(&Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(toml),
    })
    .map(|l| l.config)
    .map_err(|e| format!("bench configuration: {e}"))
}

fn entry_options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into(), "en".into()],
        mapping_version: 1,
        shop_url: "https://simu.shop.secutix.com".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: "{shop}/api/1/redirect/product/performance?id={performance_id}&lang={LANGUAGE}".into(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

fn status(_p: &Product, perf: &Performance, now: chrono::DateTime<chrono::Utc>) -> PerformanceStatus {
    PerformanceStatus {
        level: Some(1),
        on_sale: !perf.is_past(now),
    }
}

fn webhook(url: &str) -> BenchResult<Arc<dyn Target>> {
    let settings = WebhookSettings {
        url: url.to_owned(),
        mode: WebhookMode::Put,
        secret: Some("bench-hmac".to_owned().into()),
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    Ok(Arc::new(
        WebhookTarget::new("cms", &settings, Duration::from_secs(30)).map_err(|e| e.to_string())?,
    ))
}

fn push_settings(concurrency: usize) -> PushSettings {
    PushSettings {
        concurrency,
        rate_per_second: 100_000,
        request_timeout: Duration::from_secs(30),
        ..PushSettings::default()
    }
}

/// Plans every entry to target `cms`.
fn plan_all(outbox: &Outbox) -> BenchResult<secutix_sync::push::PlanReport> {
    outbox
        .plan(
            &[PlanTarget::new("cms", DeletePolicy::Unpublish)],
            &entry_options(),
            &status,
            &Scope::All,
            false,
            false,
        )
        .map_err(|e| format!("plan: {e}"))
}

/// Plans every entry to target `cms` and drains it; returns (operations planned, delivered).
async fn plan_and_drain(outbox: &Outbox, target: Arc<dyn Target>, concurrency: usize) -> BenchResult<(u64, u64)> {
    let plan = plan_all(outbox)?;
    let ops = plan.targets.get("cms").map_or(0, |t| t.operations.len() as u64);
    let report = Worker::new(outbox, target, push_settings(concurrency))
        .map_err(|e| format!("worker: {e}"))?
        .drain(DrainOptions::now())
        .await
        .map_err(|e| format!("drain: {e}"))?;
    Ok((ops, report.delivered))
}

fn scenario_child(args: &[String]) -> BenchResult<ScenarioResult> {
    let [base, products, perfs, format, ..] = args else {
        return Err("usage: --scenario BASE_URL PRODUCTS PERFORMANCES FORMAT".into());
    };
    let products: usize = products.parse().map_err(|e| format!("products: {e}"))?;
    let perfs: usize = perfs.parse().map_err(|e| format!("performances: {e}"))?;
    let format = Format::from_arg(format).ok_or_else(|| format!("unknown format {format}"))?;
    let (transport, method) = format.config();
    let cfg = bench_config(base, transport, method)?;
    let dir = tempfile::Builder::new()
        .prefix("secutix-bench-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Store::open(dir.path(), 64, clock.clone()).map_err(|e| e.to_string())?;
    let client = Client::new(&cfg.secutix, Arc::new(store.clone()), clock)
        .map_err(|e| e.to_string())?
        .with_spool_dir(dir.path().to_owned());
    let rt = runtime()?;
    // A CMS that counts requests and keeps nothing (`MockHttp` records every body: the measured process
    // would hold every entry it sent).
    let cms = rt.block_on(CountingCms::start())?;
    let target = webhook(&format!("{}/hook", cms.uri()))?;
    let outbox = Outbox::open(&store).map_err(|e| e.to_string())?;

    // First import.
    let t = Instant::now();
    let first = rt
        .block_on(run_import(&client, &store, &cfg.catalogue, ImportOptions::default()))
        .map_err(|e| format!("first import: {e}"))?;
    if first.counts.products != products as u64 {
        return Err(format!(
            "the first import kept {} of {products} products",
            first.counts.products
        ));
    }
    let import_secs = t.elapsed().as_secs_f64();
    let rss_import_kib = vm_hwm_kib();
    let bytes = first.bytes;
    eprintln!(
        "   first import: {import_secs:.2}s, {} products, peak RSS {} MB",
        first.counts.products,
        rss_import_kib / 1024
    );

    // Every entry delivered once, so that the target is up to date.
    let (_, first_push_delivered) = rt.block_on(plan_and_drain(&outbox, target.clone(), 16))?;
    // The daemon rebuilds the public availability document after a plan that changed entries, and keeps it.
    let mut public = PublicSnapshot::build(&outbox).map_err(|e| format!("public document: {e}"))?;
    std::hint::black_box(&public);
    let (rss_after_push_kib, hwm_after_push_kib) = (vm_kib("VmRSS:"), vm_hwm_kib());
    let (log_bytes, live_bytes) = outbox.entry_store().usage();
    eprintln!(
        "   plan + push of {first_push_delivered} entries: RSS {} MB (peak {} MB); entries {} (log {}), public document {}",
        rss_after_push_kib / 1024,
        hwm_after_push_kib / 1024,
        mb(live_bytes),
        mb(log_bytes),
        mb(public.len())
    );

    // Same bytes again.
    let before = cms.requests();
    let t = Instant::now();
    let same = rt
        .block_on(run_import(&client, &store, &cfg.catalogue, ImportOptions::default()))
        .map_err(|e| format!("second import: {e}"))?;
    let same_bytes_secs = t.elapsed().as_secs_f64();
    let (same_bytes_ops, _) = rt.block_on(plan_and_drain(&outbox, target.clone(), 16))?;
    public = PublicSnapshot::build(&outbox).map_err(|e| format!("public document: {e}"))?;
    std::hint::black_box(&public);
    let same_bytes_requests = cms.requests() - before;

    // The same catalogue, parsed and compared again (as when SecuTix's bytes differ, e.g. another requestId).
    let before = cms.requests();
    let t = Instant::now();
    let reparsed = rt
        .block_on(run_import(
            &client,
            &store,
            &cfg.catalogue,
            ImportOptions { force: true },
        ))
        .map_err(|e| format!("forced import: {e}"))?;
    let reparse_secs = t.elapsed().as_secs_f64();
    let (reparse_ops, _) = rt.block_on(plan_and_drain(&outbox, target, 16))?;
    public = PublicSnapshot::build(&outbox).map_err(|e| format!("public document: {e}"))?;
    std::hint::black_box(&public);
    let reparse_requests = cms.requests() - before;
    let rss_end_kib = vm_kib("VmRSS:");
    drop(public);
    eprintln!("   same bytes: {same_bytes_secs:.3}s, re-parsed: {reparse_secs:.2}s");
    cms.stop.cancel();
    // sled flushes when its last handle goes: every handle before the folder.
    drop((outbox, client, store));
    drop(rt);
    drop(dir);

    // Parse-only and the bare pass, on the same bytes in memory (regenerated: the generator is deterministic).
    let generator = Generator::new(GeneratorOptions::new(products, perfs, SEED, chrono::Utc::now()));
    let mut body = Vec::with_capacity(bytes as usize);
    match format {
        Format::RestJson => generator.write_rest_json(&mut body, None),
        Format::SoapXml => generator.write_soap_xml(&mut body, None),
        Format::GetCatalogXml => generator.write_get_catalog_soap(&mut body, None),
    }
    .map_err(|e| format!("generating the body: {e}"))?;
    if body.len() as u64 != bytes {
        return Err(format!("regenerated {} bytes, imported {bytes}", body.len()));
    }
    let spooled_secs = import_spooled(format, &body)?;
    let (parse_secs, bare_secs) = parse_passes(format, &body)?;
    Ok(ScenarioResult {
        products,
        performances: perfs,
        format,
        bytes,
        bare_secs,
        parse_secs,
        spooled_secs,
        import_secs,
        import_products: first.counts.products,
        rss_import_kib,
        rss_after_push_kib,
        hwm_after_push_kib,
        rss_end_kib,
        same_bytes_secs,
        same_bytes_outcome: match same.outcome {
            ImportOutcome::Unchanged => "unchanged".into(),
            other => format!("{other:?}"),
        },
        same_bytes_ops,
        same_bytes_requests,
        reparse_secs,
        reparse_unchanged: reparsed.counts.unchanged,
        reparse_ops,
        reparse_requests,
        first_push_delivered,
    })
}

/// Parse + store of a body already on disk, as `secutix::Client` does once the response is spooled: the
/// same readers, the same store calls, a fresh store. Returns the time.
fn import_spooled(format: Format, body: &[u8]) -> BenchResult<f64> {
    let dir = tempfile::Builder::new()
        .prefix("secutix-bench-spooled-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let path = dir.path().join("response");
    std::fs::write(&path, body).map_err(|e| format!("writing the body: {e}"))?;
    let store = Store::open(&dir.path().join("store"), 64, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    let ctx = ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    };
    let open = || {
        std::fs::File::open(&path)
            .map(|f| std::io::BufReader::with_capacity(256 * 1024, f))
            .map_err(|e| e.to_string())
    };
    let t = Instant::now();
    let mut txn = store
        .begin_import(&["SINGLE_ENTRY".to_owned()])
        .map_err(|e| e.to_string())?;
    match format {
        Format::RestJson => {
            sjson::parse_catalog_reader("getCatalogDetailed", open()?, &ctx, &mut txn).map_err(|e| e.to_string())?;
        }
        Format::SoapXml => {
            sxml::parse_catalog_soap("getCatalogDetailed", open()?, &ctx, &mut txn, None).map_err(|e| e.to_string())?;
        }
        Format::GetCatalogXml => {
            let mut doc = tempfile::tempfile_in(dir.path()).map_err(|e| e.to_string())?;
            {
                let mut w = std::io::BufWriter::new(&mut doc);
                sxml::parse_catalog_soap("getCatalog", open()?, &ctx, &mut txn, Some(&mut w))
                    .map_err(|e| e.to_string())?;
                w.flush().map_err(|e| e.to_string())?;
            }
            std::io::Seek::rewind(&mut doc).map_err(|e| e.to_string())?;
            sxml::parse_catalog_document("getCatalog", std::io::BufReader::new(doc), &ctx, &mut txn)
                .map_err(|e| e.to_string())?;
        }
    }
    txn.finish(&FinishOptions {
        force: false,
        shrink_guard_ratio: 0.5,
        season_codes: vec![],
        product_codes: vec![],
        pos: None,
        body_hash: None,
    })
    .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    drop(store);
    Ok(secs)
}

/// A sink that converts and drops: parse-only throughput.
#[derive(Default)]
struct DropSink {
    products: u64,
}

impl CatalogSink for DropSink {
    fn reset(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn season(&mut self, _index: u32, season: Season) -> Result<(), SinkError> {
        std::hint::black_box(season);
        Ok(())
    }
    fn product(&mut self, _season_index: Option<u32>, product: Product) -> Result<(), SinkError> {
        self.products += 1;
        std::hint::black_box(product);
        Ok(())
    }
}

/// Runs `f` until at least a second has passed (at least once) and returns the best time.
fn best_of(mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<f64> {
    let started = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 1 || (started.elapsed() < Duration::from_secs(1) && runs < 20) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    Ok(best)
}

fn bare_xml(bytes: &[u8]) -> BenchResult<u64> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::with_capacity(4096);
    let mut events = 0u64;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Eof) => return Ok(events),
            Ok(_) => events += 1,
            Err(e) => return Err(format!("bare XML pass: {e}")),
        }
        buf.clear();
    }
}

fn parse_passes(format: Format, body: &[u8]) -> BenchResult<(f64, f64)> {
    let ctx = ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    };
    let parse = best_of(|| {
        let mut sink = DropSink::default();
        match format {
            Format::RestJson => {
                sjson::parse_catalog_slice("getCatalogDetailed", body, &ctx, &mut sink).map_err(|e| e.to_string())?;
            }
            Format::SoapXml => {
                sxml::parse_catalog_soap("getCatalogDetailed", body, &ctx, &mut sink, None)
                    .map_err(|e| e.to_string())?;
            }
            Format::GetCatalogXml => {
                let mut doc = Vec::with_capacity(body.len());
                sxml::parse_catalog_soap("getCatalog", body, &ctx, &mut sink, Some(&mut doc))
                    .map_err(|e| e.to_string())?;
                sxml::parse_catalog_document("getCatalog", doc.as_slice(), &ctx, &mut sink)
                    .map_err(|e| e.to_string())?;
            }
        }
        if sink.products == 0 {
            return Err("the parser saw no product".into());
        }
        Ok(())
    })?;
    let bare = best_of(|| {
        match format {
            Format::RestJson => {
                let v: serde::de::IgnoredAny = serde_json::from_slice(body).map_err(|e| e.to_string())?;
                std::hint::black_box(v);
            }
            Format::SoapXml => {
                std::hint::black_box(bare_xml(body)?);
            }
            Format::GetCatalogXml => {
                // The floor of the same two stages: the envelope (its text unescaped), then the document.
                let mut reader = quick_xml::Reader::from_reader(body);
                let mut buf = Vec::new();
                let mut doc = String::new();
                loop {
                    match reader.read_event_into(&mut buf) {
                        Ok(quick_xml::events::Event::Eof) => break,
                        Ok(quick_xml::events::Event::Text(t)) => doc.push_str(&t.xml10_content()),
                        Ok(quick_xml::events::Event::GeneralRef(r)) => {
                            let name: &str = r.as_ref();
                            doc.push_str(quick_xml::escape::resolve_predefined_entity(name).unwrap_or(""));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(format!("bare XML pass: {e}")),
                    }
                    buf.clear();
                }
                std::hint::black_box(bare_xml(doc.as_bytes())?);
            }
        }
        Ok(())
    })?;
    Ok((parse, bare))
}

fn push_child(args: &[String]) -> BenchResult<PushResult> {
    let [products, perfs, concurrency, latency_ms, ..] = args else {
        return Err("usage: --push PRODUCTS PERFORMANCES CONCURRENCY LATENCY_MS".into());
    };
    let parse = |v: &str, what: &str| v.parse::<u64>().map_err(|e| format!("{what}: {e}"));
    let products = parse(products, "products")? as usize;
    let perfs = parse(perfs, "performances")? as usize;
    let concurrency = parse(concurrency, "concurrency")? as usize;
    let latency_ms = parse(latency_ms, "latency")?;
    let dir = tempfile::Builder::new()
        .prefix("secutix-bench-push-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let store = Store::open(dir.path(), 64, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    import_generated(&store, products, perfs, dir.path())?;
    let rt = runtime()?;
    let cms = rt.block_on(MockHttp::start());
    cms.handle("PUT", "/hook/", move |_| {
        Some(Reply::status(204).delay(Duration::from_millis(latency_ms)))
    });
    let target = webhook(&format!("{}/hook", cms.uri()))?;
    let outbox = Outbox::open(&store).map_err(|e| e.to_string())?;
    plan_all(&outbox)?;
    let worker = Worker::new(&outbox, target, push_settings(concurrency)).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let report = rt
        .block_on(worker.drain(DrainOptions::now()))
        .map_err(|e| format!("drain: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if report.pending > 0 || report.dead > 0 {
        return Err(format!("push incomplete: {report:?}"));
    }
    Ok(PushResult {
        entries: report.delivered,
        concurrency,
        latency_ms,
        secs,
        requests: cms.requests().len() as u64,
    })
}

/// Puts a generated catalogue in the store without SecuTix (the push benchmark only needs entries).
fn import_generated(store: &Store, products: usize, perfs: usize, dir: &Path) -> BenchResult<()> {
    import_generated_at(store, products, perfs, dir, chrono::Utc::now())
}

/// [`import_generated`] of the catalogue laid out around `base` (a simulator's start).
fn import_generated_at(
    store: &Store,
    products: usize,
    perfs: usize,
    dir: &Path,
    base: chrono::DateTime<chrono::Utc>,
) -> BenchResult<()> {
    let generator = Generator::new(GeneratorOptions::new(products, perfs, SEED, base));
    let path = dir.join("catalogue.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    generator.write_rest_json(&mut file, None).map_err(|e| e.to_string())?;
    file.flush().map_err(|e| e.to_string())?;
    drop(file);
    let reader = std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| e.to_string())?);
    let mut txn = store
        .begin_import(&["SINGLE_ENTRY".to_owned()])
        .map_err(|e| e.to_string())?;
    let ctx = ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    };
    sjson::parse_catalog_reader("getCatalogDetailed", reader, &ctx, &mut txn).map_err(|e| e.to_string())?;
    txn.finish(&FinishOptions {
        force: false,
        shrink_guard_ratio: 0.5,
        season_codes: vec![],
        product_codes: vec![],
        pos: Some(generator.pos_config()),
        body_hash: None,
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Availability refreshes against the simulator on paused tokio time: the catalogue of the simulator put in a
/// store, then the first poll after the import, then polls one simulator step apart for 1 %, 10 % and
/// 100 % of the products changing at each step. The budget is out of the way (a huge monthly budget, no
/// cap per poll, every tier asked at every poll), so the figure is what a complete refresh costs.
fn availability_child(args: &[String]) -> BenchResult<AvailabilityResult> {
    let [products, perfs, ..] = args else {
        return Err("usage: --availability PRODUCTS PERFORMANCES".into());
    };
    let products: usize = products.parse().map_err(|e| format!("products: {e}"))?;
    let perfs: usize = perfs.parse().map_err(|e| format!("performances: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    rt.block_on(async {
        const STEP: Duration = Duration::from_secs(600);
        const STEADY_POLLS: usize = 3;
        let base = chrono::Utc::now();
        let mut result = AvailabilityResult {
            products,
            performances: perfs,
            first: PollFigures::default(),
            steady: Vec::new(),
            rss_kib: 0,
            hwm_kib: 0,
        };
        for share in [0.01, 0.1, 1.0] {
            let sim = Simulator::start(SimulatorOptions {
                products,
                performances_per_product: perfs,
                seed: SEED,
                in_progress_once: false,
                availability_change_every: STEP,
                changed_share: share,
                now: Some(base),
                ..SimulatorOptions::default()
            })
            .await
            .map_err(|e| format!("simulator: {e}"))?;
            let dir = tempfile::Builder::new()
                .prefix("secutix-bench-availability-")
                .tempdir()
                .map_err(|e| format!("temporary folder: {e}"))?;
            let clock: SharedClock = Arc::new(TokioClock::starting_at(base));
            let store = Store::open(dir.path(), 64, clock).map_err(|e| e.to_string())?;
            import_generated_at(&store, products, perfs, dir.path(), base)?;
            let mut cfg = bench_config(&sim.base_url(), "rest", "getCatalogDetailed")?;
            cfg.availability.monthly_call_budget = 100_000_000;
            cfg.availability.reserve_share = 0.0;
            cfg.availability.max_calls_per_poll = u32::MAX;
            cfg.availability.mid_every = 1;
            cfg.availability.far_every = 1;
            let poller =
                Poller::from_config(&cfg.secutix, &cfg.availability, store.clone()).map_err(|e| e.to_string())?;
            let poll = async || -> BenchResult<PollFigures> {
                let asks_before = sim.calls().get("getUpdatedAvailabilities").copied().unwrap_or(0);
                let r = poller
                    .poll_once(PollOptions::default())
                    .await
                    .map_err(|e| format!("poll: {e}"))?;
                if let Some(e) = &r.error {
                    return Err(format!("the poll failed: {e}"));
                }
                let asks = sim.calls().get("getUpdatedAvailabilities").copied().unwrap_or(0) - asks_before;
                Ok(PollFigures {
                    calls: r.calls as f64,
                    asks: asks as f64,
                    fetched: r.fetched.len() as f64,
                    reported: r.reported as f64,
                    pending: r.pending as f64,
                })
            };
            // The first poll comes a while after the simulator's step 0 (as a first poll comes after an import),
            // beyond the 10 s overlap with which products are asked about.
            tokio::time::advance(Duration::from_secs(60)).await;
            let first = poll().await?;
            eprintln!(
                "   {:.0} % changing: first poll {} calls, {} products fetched",
                share * 100.0,
                first.calls,
                first.fetched
            );
            result.first = first;
            let mut sum = PollFigures::default();
            for _ in 0..STEADY_POLLS {
                tokio::time::advance(STEP).await;
                let f = poll().await?;
                sum.calls += f.calls / STEADY_POLLS as f64;
                sum.asks += f.asks / STEADY_POLLS as f64;
                sum.fetched += f.fetched / STEADY_POLLS as f64;
                sum.reported += f.reported / STEADY_POLLS as f64;
                sum.pending += f.pending / STEADY_POLLS as f64;
            }
            eprintln!(
                "   {:.0} % changing: steady {:.0} calls, {:.0} products reported, {:.0} fetched",
                share * 100.0,
                sum.calls,
                sum.reported,
                sum.fetched
            );
            result.steady.push((share, sum));
            if result.rss_kib == 0 {
                (result.rss_kib, result.hwm_kib) = (vm_kib("VmRSS:"), vm_hwm_kib());
                eprintln!(
                    "   RSS after the polls {} MB (peak {} MB)",
                    result.rss_kib / 1024,
                    result.hwm_kib / 1024
                );
            }
            drop(poller);
            drop(store);
            sim.stop().await;
        }
        Ok(result)
    })
}

/// A CMS on loopback that answers every `PUT /hook/…` with 204 and only counts the requests.
struct CountingCms {
    addr: std::net::SocketAddr,
    count: Arc<std::sync::atomic::AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
}

impl CountingCms {
    async fn start() -> BenchResult<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("mock CMS: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("mock CMS: {e}"))?;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = count.clone();
        let app = axum::Router::new().route(
            "/hook/{id}",
            axum::routing::put(move |body: axum::body::Bytes| {
                let counted = counted.clone();
                async move {
                    std::hint::black_box(body.len());
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        Ok(Self { addr, count, stop })
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}
