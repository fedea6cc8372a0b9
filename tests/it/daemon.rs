//! The daemon in process, on paused time, against a mock SecuTix and a mock CMS (webhook target) on
//! loopback: catch-up, single-flight, the cron schedule across DST changes, shutdown with a grace period,
//! reload, and the control API (auth, public endpoint with ETag/CORS, status, resync scopes, entries,
//! dead letters, metrics, pass Culture's box office and offer statuses against the fake pass Culture API).
//! Shaped after zero2prod's `spawn_app`.

use crate::common;
use crate::common::passculture_fake;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::secutix_mock::{MockSecutix, catalogue_of};
use crate::common::t0;
use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;
use secutix_sync::cli_client::ControlClient;
use secutix_sync::clock::{SharedClock, TokioClock};
use secutix_sync::config::{Config, Sources};
use secutix_sync::daemon::jobs::{Requested, Trigger};
use secutix_sync::daemon::{self, App, DaemonError};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::import::{ImportOptions, run_import};
use secutix_sync::push::Outbox;
use secutix_sync::store::Store;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

const TOKEN: &str = "test-control-token-0123456789";
const ORIGIN: &str = "https://www.theatre.fr";

fn paris(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(y, m, d, h, mi, 0)
        .earliest()
        .expect("local time")
        .with_timezone(&Utc)
}

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0).single().expect("utc")
}

/// How to start the app.
struct Spawn {
    catalogue: Value,
    /// Calendar time at start.
    start: DateTime<Utc>,
    /// Lines for `[daemon]`.
    daemon: &'static str,
    /// Extra tables at the end.
    extra: String,
    /// An import done before start, at this time.
    seed_import_at: Option<DateTime<Utc>>,
    /// getCatalogDetailed answers after this long.
    catalogue_delay: Duration,
}

impl Default for Spawn {
    fn default() -> Self {
        Self {
            catalogue: catalogue_of(&[(1000, "Hamlet"), (1001, "Phèdre"), (1002, "Tartuffe")]),
            start: t0(),
            daemon: "",
            extra: String::new(),
            seed_import_at: None,
            catalogue_delay: Duration::ZERO,
        }
    }
}

struct TestApp {
    app: Arc<App>,
    base: String,
    http: reqwest::Client,
    secutix: MockSecutix,
    cms: MockHttp,
    /// External ids the CMS refuses with 422.
    failing: Arc<Mutex<BTreeSet<String>>>,
    reload: mpsc::UnboundedSender<()>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), DaemonError>>>,
    config_file: PathBuf,
    store_path: PathBuf,
    spawn: SpawnText,
    /// Taken by tests that look at the store after shutdown.
    dir: Option<tempfile::TempDir>,
}

/// What is needed to rewrite the configuration file.
struct SpawnText {
    secutix: String,
    cms: String,
}

fn config_toml(t: &SpawnText, store: &Path, daemon_lines: &str, extra: &str) -> String {
    format!(
        r#"
[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
request_timeout = "30s"
[catalogue]
min_interval = "0s"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
token = "{TOKEN}"
cors_origins = ["{ORIGIN}"]
[daemon]
time_zone = "Europe/Paris"
{daemon_lines}
[[targets]]
name = "website"
kind = "webhook"
backoff_initial = "1s"
backoff_max = "2s"
max_attempts = 2
[targets.webhook]
url = "{cms}/hooks"
{extra}
"#,
        secutix = t.secutix,
        cms = t.cms,
        store = store.display(),
    )
}

async fn seed_import(store_path: &Path, at: DateTime<Utc>, secutix: &MockSecutix) {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(at));
    let store = Store::open(store_path, 16, clock).expect("store opens");
    let cfg = common::config(&secutix.uri(), "rest", "");
    let client = common::client(&cfg, &store);
    run_import(&client, &store, &cfg.catalogue, ImportOptions::default())
        .await
        .expect("seed import");
    store.flush().expect("flush");
}

async fn spawn_app(s: Spawn) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("store");
    let clock: SharedClock = Arc::new(TokioClock::starting_at(s.start));
    let secutix = MockSecutix::start(s.catalogue.clone(), clock.clone()).await;
    if let Some(at) = s.seed_import_at {
        seed_import(&store_path, at, &secutix).await;
    }
    secutix.set_catalogue_delay(s.catalogue_delay);
    let cms = MockHttp::start().await;
    let failing: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    {
        let failing = failing.clone();
        cms.handle("PUT", "/hooks/", move |r| {
            let id = r.uri.trim_start_matches("/hooks/").to_owned();
            if failing.lock().expect("failing").contains(&id) {
                Some(Reply::status(422).body(r#"{"error":"title too long"}"#))
            } else {
                Some(Reply::status(200))
            }
        });
    }
    let text = SpawnText {
        secutix: secutix.uri(),
        cms: cms.uri(),
    };
    let config_file = dir.path().join("config.toml");
    std::fs::write(&config_file, config_toml(&text, &store_path, s.daemon, &s.extra)).expect("write config");
    let sources = Sources {
        file: Some(config_file.clone()),
        env: Some(BTreeMap::new()),
        overrides: None,
    };
    let config: Config = Config::load(&sources).expect("config").config;
    std::fs::create_dir_all(&store_path).expect("store dir");
    let store = Store::open(&store_path, 16, clock).expect("store opens");
    let app = App::build(config, sources, store).expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel::<()>();
    let reload = Box::pin(futures_util::stream::unfold(reload_rx, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    }));
    let task = tokio::spawn(daemon::run(
        app.clone(),
        listener,
        secutix_sync::control::router(app.clone()),
        async move {
            let _ = stop_rx.await;
        },
        reload,
    ));
    TestApp {
        app,
        base,
        http: reqwest::Client::new(),
        secutix,
        cms,
        failing,
        reload: reload_tx,
        stop: Some(stop_tx),
        task: Some(task),
        config_file,
        store_path,
        spawn: text,
        dir: Some(dir),
    }
}

impl TestApp {
    /// The start-up import, then the availability poll that follows it and plans every entry.
    async fn synced(&self) {
        self.app.catalogue.wait_finished(1).await;
        self.app.availability.wait_finished(1).await;
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    async fn status(&self) -> Value {
        self.authed(reqwest::Method::GET, "/status")
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    fn client(&self) -> ControlClient {
        ControlClient::new(self.base.clone(), SecretString::from(TOKEN.to_owned()))
    }

    async fn resync(&self, scope: &str) -> (u16, Value) {
        let resp = self
            .authed(reqwest::Method::POST, "/resync")
            .json(&json!({ "scope": scope }))
            .send()
            .await
            .expect("resync");
        let code = resp.status().as_u16();
        (code, resp.json().await.expect("json"))
    }

    fn puts(&self, external_id: &str) -> usize {
        self.cms
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.uri == format!("/hooks/{external_id}"))
            .count()
    }

    fn depth(&self) -> usize {
        self.app.outbox.depth("website").expect("depth")
    }

    /// Waits (tokio time) until the outbox is empty.
    async fn drained(&self) {
        until("the outbox to drain", || self.depth() == 0).await;
    }

    async fn shutdown(mut self) -> Result<(), DaemonError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.take().expect("task").await.expect("join")
    }
}

/// Polls `f` every 10 ms of tokio time, for at most 100 s of it.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn last_trigger(app: &App) -> Trigger {
    app.catalogue
        .state()
        .last
        .expect("a finished run")
        .trigger
        .expect("a live run has its trigger")
}

#[tokio::test(start_paused = true)]
async fn catch_up_imports_at_start_when_a_scheduled_run_was_missed() {
    // The last good import was two days ago: today's 05:30 run was missed while the daemon was down.
    let t = spawn_app(Spawn {
        seed_import_at: Some(t0() - chrono::Duration::days(2)),
        ..Spawn::default()
    })
    .await;
    t.app.catalogue.wait_finished(1).await;
    assert_eq!(last_trigger(&t.app), Trigger::CatchUp);
    assert!(t.app.catalogue.state().last.expect("last").ok);
    assert_eq!(t.secutix.calls("getCatalogDetailed").len(), 2, "seed + catch-up");
    t.drained().await;
    assert_eq!(t.puts("secutix-1000"), 1, "the entries reached the CMS");
    // Next run: tomorrow 05:30 in Paris.
    assert_eq!(t.app.catalogue.state().next_run_at, Some(paris(2026, 3, 3, 5, 30)));
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn no_catch_up_when_the_last_import_followed_the_last_scheduled_run() {
    // Imported at 10:00 Paris today, after today's 05:30 run: nothing to catch up.
    let t = spawn_app(Spawn {
        seed_import_at: Some(paris(2026, 3, 2, 10, 0)),
        ..Spawn::default()
    })
    .await;
    until("the first schedule", || t.app.catalogue.state().next_run_at.is_some()).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(t.secutix.calls("getCatalogDetailed").len(), 1, "only the seed import");
    assert_eq!(t.app.catalogue.state().runs, 0);
    assert_eq!(t.app.catalogue.state().next_run_at, Some(paris(2026, 3, 3, 5, 30)));
    // The scheduled run comes at 05:30 Paris tomorrow.
    t.app.catalogue.wait_finished(1).await;
    let last = t.app.catalogue.state().last.expect("last");
    assert_eq!(last.trigger, Some(Trigger::Scheduled));
    assert!(
        (last.started_at - paris(2026, 3, 3, 5, 30)).num_seconds().abs() <= 1,
        "{}",
        last.started_at
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_trigger_during_a_run_is_merged_and_answered_already_running() {
    let t = spawn_app(Spawn {
        catalogue_delay: Duration::from_secs(20),
        ..Spawn::default()
    })
    .await;
    // No import yet: the catch-up import starts at once and takes 20 s.
    until("the catch-up run", || t.app.catalogue.state().running.is_some()).await;
    let (code, body) = t.resync("catalogue").await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["status"], "already_running");
    assert_eq!(body["run"], 1);
    assert!(body["message"].as_str().expect("message").contains("already running"));
    let (code, body) = t.resync("all").await;
    assert_eq!((code, body["run"].as_u64()), (409, Some(1)));
    assert_eq!(
        t.app.catalogue.request(Trigger::manual()),
        Requested::AlreadyRunning { run: 1 }
    );
    t.app.catalogue.wait_finished(1).await;
    let last = t.app.catalogue.state().last.expect("run 1");
    assert_eq!(
        last.then.as_ref().map(|t| t.job.as_str()),
        Some("availability"),
        "`resync all` merged into the running import still gets its poll"
    );
    // Let the loop come round: the merged requests made no second run.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(t.app.catalogue.state().runs, 1);
    assert_eq!(t.secutix.calls("getCatalogDetailed").len(), 1);
    // Once idle, a request is a new run.
    let (code, body) = t.resync("catalogue").await;
    assert_eq!(
        (code, body["status"].as_str(), body["run"].as_u64()),
        (202, Some("accepted"), Some(2))
    );
    t.app.catalogue.wait_finished(2).await;
    assert_eq!(t.secutix.calls("getCatalogDetailed").len(), 2);
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn resync_all_imports_then_polls_then_pushes_the_change() {
    let t = spawn_app(Spawn::default()).await;
    t.app.catalogue.wait_finished(1).await;
    t.drained().await;
    assert_eq!(t.puts("secutix-1003"), 0);
    t.secutix.set_catalogue(catalogue_of(&[
        (1000, "Hamlet"),
        (1001, "Phèdre"),
        (1002, "Tartuffe"),
        (1003, "Le Cid"),
    ]));
    let (code, body) = t.resync("all").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["then"], "availability");
    let run = body["run"].as_u64().expect("run");
    t.app.catalogue.wait_finished(run).await;
    let last = t.app.catalogue.state().last.expect("last");
    assert!(last.ok, "{:?}", last.error);
    let then = last.then.as_ref().expect("chained availability run").run;
    t.app.availability.wait_finished(then).await;
    let poll = t.app.availability.state().last.expect("poll");
    assert!(poll.ok, "{:?}", poll.error);
    assert!(matches!(poll.trigger, Some(Trigger::Manual { .. })));
    t.drained().await;
    assert_eq!(t.puts("secutix-1003"), 1, "the new product reached the CMS");
    assert_eq!(t.puts("secutix-1000"), 1, "an unchanged entry is not sent again");
    t.shutdown().await.expect("clean shutdown");
}

async fn dst_runs(start: DateTime<Utc>, seed: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let t = spawn_app(Spawn {
        start,
        seed_import_at: Some(seed),
        daemon: "catalogue_schedule = \"30 2 * * *\"",
        ..Spawn::default()
    })
    .await;
    t.app.catalogue.wait_finished(1).await;
    let first = t.app.catalogue.state().last.expect("run 1");
    assert_eq!(first.trigger, Some(Trigger::Scheduled));
    t.app.catalogue.wait_finished(2).await;
    let second = t.app.catalogue.state().last.expect("run 2");
    assert_eq!(second.trigger, Some(Trigger::Scheduled));
    t.shutdown().await.expect("clean shutdown");
    (first.started_at, second.started_at)
}

fn near(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_seconds().abs() <= 1
}

#[tokio::test(start_paused = true)]
async fn the_cron_schedule_crosses_the_spring_change_on_tokio_time() {
    // Europe/Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night.
    let (first, second) = dst_runs(utc(2026, 3, 28, 12, 0), utc(2026, 3, 28, 11, 0)).await;
    assert!(
        near(first, utc(2026, 3, 29, 1, 0)),
        "03:00 CEST, right after the gap: {first}"
    );
    assert!(
        near(second, utc(2026, 3, 30, 0, 30)),
        "02:30 CEST the next night: {second}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cron_schedule_runs_once_in_the_autumn_overlap_on_tokio_time() {
    // Europe/Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice that night.
    let (first, second) = dst_runs(utc(2026, 10, 24, 12, 0), utc(2026, 10, 24, 11, 0)).await;
    assert!(near(first, utc(2026, 10, 25, 0, 30)), "the first 02:30 (CEST): {first}");
    assert!(
        near(second, utc(2026, 10, 26, 1, 30)),
        "no second run at 02:30 CET the same night; next is 02:30 CET the next day: {second}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_import_in_flight_finish_within_the_grace_period() {
    let t = spawn_app(Spawn {
        catalogue_delay: Duration::from_secs(5),
        ..Spawn::default()
    })
    .await;
    until("the catch-up run", || t.app.catalogue.state().running.is_some()).await;
    let mut t = t;
    let _dir = t.dir.take();
    let store_path = t.store_path.clone();
    let app = t.app.clone();
    let started = tokio::time::Instant::now();
    t.shutdown().await.expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "did not need the whole grace period"
    );
    let last = app.catalogue.state().last.expect("the import finished");
    assert!(last.ok, "{:?}", last.error);
    assert!(
        app.store.generation().expect("generation").is_some(),
        "its catalogue is in force"
    );
    drop(app);
    assert!(!store_path.join(daemon::ADDRESS_FILE).exists(), "address file removed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_work_beyond_the_grace_period_and_changes_nothing() {
    let t = spawn_app(Spawn {
        catalogue_delay: Duration::from_secs(600),
        daemon: "shutdown_grace = \"3s\"",
        ..Spawn::default()
    })
    .await;
    until("the catch-up run", || t.app.catalogue.state().running.is_some()).await;
    let app = t.app.clone();
    let started = tokio::time::Instant::now();
    t.shutdown().await.expect("shutdown still returns Ok");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(
        app.store.generation().expect("generation"),
        None,
        "no half-imported catalogue"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_with_an_invalid_configuration_keeps_the_old_one() {
    let t = spawn_app(Spawn::default()).await;
    t.app.catalogue.wait_finished(1).await;
    std::fs::write(&t.config_file, "[daemon]\ncatalogue_schedule = \"every morning\"\n").expect("write");
    t.reload.send(()).expect("reload");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        t.app.config().daemon.catalogue_schedule,
        "30 5 * * *",
        "old configuration kept"
    );
    assert_eq!(t.app.config().control.cors_origins, vec![ORIGIN.to_owned()]);
    // A valid file is applied.
    let valid = config_toml(&t.spawn, &t.store_path, "catalogue_schedule = \"0 6 * * *\"", "")
        .replace(ORIGIN, "https://new.theatre.fr");
    std::fs::write(&t.config_file, valid).expect("write");
    t.reload.send(()).expect("reload");
    until("the reload", || t.app.config().daemon.catalogue_schedule == "0 6 * * *").await;
    until("the new schedule", || {
        t.app.catalogue.state().next_run_at == Some(paris(2026, 3, 3, 6, 0))
    })
    .await;
    let resp = t
        .get("/public/availability")
        .header("Origin", "https://new.theatre.fr")
        .send()
        .await
        .expect("public");
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://new.theatre.fr")
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn private_endpoints_need_the_bearer_token() {
    let t = spawn_app(Spawn::default()).await;
    t.app.catalogue.wait_finished(1).await;
    let routes = [
        (reqwest::Method::GET, "/status"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::GET, "/entries"),
        (reqwest::Method::GET, "/entries/secutix-1000"),
        (reqwest::Method::GET, "/dlq"),
        (reqwest::Method::POST, "/resync"),
        (reqwest::Method::POST, "/dlq/website/replay"),
        (reqwest::Method::POST, "/dlq/website/1/replay"),
        (reqwest::Method::DELETE, "/dlq/website/1"),
    ];
    for (method, path) in routes {
        let url = format!("{}{path}", t.base);
        let none = t.http.request(method.clone(), &url).send().await.expect("send");
        assert_eq!(none.status(), 401, "{method} {path} without a token");
        assert!(none.headers().contains_key("www-authenticate"));
        let body: Value = none.json().await.expect("json");
        assert!(body["error"].as_str().expect("error").contains("Bearer"), "{body}");
        let wrong = t
            .http
            .request(method.clone(), &url)
            .bearer_auth("test-control-token-0123456788")
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
        let right = t
            .http
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .json(&json!({"scope": "push"}))
            .send()
            .await
            .expect("send");
        assert_ne!(right.status(), 401, "{method} {path} with the token");
    }
    for path in [
        "/healthz",
        "/readyz",
        "/public/availability",
        "/public/availability/1000",
    ] {
        let r = t.get(path).send().await.expect("send");
        assert_eq!(r.status(), 200, "{path} needs no token");
    }
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn public_availability_has_etag_cache_control_and_304() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    let resp = t.get("/public/availability").send().await.expect("public");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=30");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let doc: Value = resp.json().await.expect("json");
    let products = doc["products"].as_array().expect("products");
    assert_eq!(products.len(), 3);
    let hamlet = products.iter().find(|p| p["product_id"] == "1000").expect("1000");
    assert_eq!(hamlet["external_id"], "secutix-1000");
    assert!(hamlet["availability"]["status"].is_string());
    assert_eq!(hamlet["performances"][0]["id"], "5000");

    let again = t
        .get("/public/availability")
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().expect("etag"), etag);
    assert!(again.bytes().await.expect("body").is_empty());

    let one = t.get("/public/availability/1000").send().await.expect("one");
    assert_eq!(one.status(), 200);
    let one_etag = one.headers()["etag"].to_str().expect("etag").to_owned();
    assert_ne!(one_etag, etag);
    let one_doc: Value = one.json().await.expect("json");
    assert_eq!(one_doc["product_id"], "1000");
    let cond = t
        .get("/public/availability/secutix-1000")
        .header("If-None-Match", &one_etag)
        .send()
        .await
        .expect("conditional one");
    assert_eq!(cond.status(), 304);
    assert_eq!(
        t.get("/public/availability/999").send().await.expect("404").status(),
        404
    );

    // A change in the catalogue gives a new validator: the old one no longer matches.
    t.secutix.set_catalogue(catalogue_of(&[
        (1000, "Hamlet (reprise)"),
        (1001, "Phèdre"),
        (1002, "Tartuffe"),
    ]));
    let (code, _) = t.resync("catalogue").await;
    assert_eq!(code, 202);
    t.app.catalogue.wait_finished(2).await;
    // The poll after the import plans the entries.
    t.app.availability.wait_finished(2).await;
    let changed = t
        .get("/public/availability")
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("after change");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), etag);
    assert_eq!(
        t.secutix.calls("getCatalogDetailed").len(),
        2,
        "visitors' requests never cause SecuTix calls"
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn cors_headers_only_for_configured_origins() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    let ok = t
        .get("/public/availability")
        .header("Origin", ORIGIN)
        .send()
        .await
        .expect("cors");
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(ok.headers()["access-control-expose-headers"], "ETag");
    assert_eq!(ok.headers()["vary"], "Origin");
    let other = t
        .get("/public/availability/1000")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("other origin");
    assert_eq!(
        other.status(),
        200,
        "the data is public; only the browser's CORS check differs"
    );
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let preflight = t
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/public/availability", t.base))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(preflight.headers()["access-control-allow-methods"], "GET, OPTIONS");
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .expect("headers")
            .contains("If-None-Match")
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn readyz_waits_for_the_first_good_import() {
    let t = spawn_app(Spawn {
        catalogue_delay: Duration::from_secs(10),
        ..Spawn::default()
    })
    .await;
    until("the catch-up run", || t.app.catalogue.state().running.is_some()).await;
    let r = t.get("/readyz").send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["ready"], false);
    assert!(
        body["reason"]
            .as_str()
            .expect("reason")
            .contains("no good catalogue import"),
        "{body}"
    );
    assert_eq!(
        t.get("/healthz").send().await.expect("healthz").status(),
        200,
        "alive meanwhile"
    );
    t.app.catalogue.wait_finished(1).await;
    let r = t.get("/readyz").send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn status_shows_jobs_calls_budget_outbox_and_indicators() {
    let t = spawn_app(Spawn {
        extra: "[availability]\nmonthly_call_budget = 8000".into(),
        ..Spawn::default()
    })
    .await;
    t.app.catalogue.wait_finished(1).await;
    t.drained().await;
    // The first poll follows the first catalogue.
    t.app.availability.wait_finished(1).await;
    let s = t.status().await;
    assert_eq!(s["daemon"]["running"], true);
    let cat = &s["jobs"]["catalogue"];
    assert_eq!(cat["last"]["ok"], true);
    assert_eq!(cat["last"]["trigger"]["kind"], "catch_up");
    assert_eq!(cat["last"]["summary"]["counts"]["products"], 3);
    assert_eq!(cat["schedule"], "30 5 * * *");
    assert_eq!(cat["time_zone"], "Europe/Paris");
    assert!(cat["next_run_at"].is_string());
    assert_eq!(
        s["jobs"]["availability"]["last"]["ok"], true,
        "{}",
        s["jobs"]["availability"]
    );
    assert!(s["jobs"]["availability"]["next_run_at"].is_string());
    assert!(s["jobs"]["refresh"]["next_run_at"].is_string());
    assert_eq!(s["catalogue"]["products"], 3);
    assert!(
        s["secutix"]["calls_this_month"].as_u64().expect("calls") >= 2,
        "getPOSConfig + getCatalogDetailed"
    );
    assert_eq!(s["secutix"]["monthly_call_budget"], 8000);
    let w = &s["targets"]["website"];
    assert_eq!(
        (w["kind"].as_str(), w["outbox"].as_u64(), w["dead_letters"].as_u64()),
        (Some("webhook"), Some(0), Some(0))
    );
    assert_eq!(w["acknowledged"], 3);
    assert_eq!(w["delivered_since_start"], 3);
    let ind = &s["availability"]["indicators"];
    assert_eq!(ind["future_performances"], 3);
    assert_eq!(
        ind["known"].as_u64().expect("known") + ind["unknown"].as_u64().expect("unknown"),
        3
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn resync_scopes_product_push_and_full_push() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    t.drained().await;
    let (code, body) = t.resync("everything").await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().expect("error").contains("product:<id>"),
        "{body}"
    );
    let (code, body) = t.resync("product:abc").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = t.resync("product:999").await;
    assert_eq!(code, 404);
    assert!(
        body["error"].as_str().expect("error").contains("not in the catalogue"),
        "{body}"
    );

    // One product: fresh availability, then its entry re-sent.
    let (code, body) = t.resync("product:1001").await;
    assert_eq!((code, body["job"].as_str()), (202, Some("availability")), "{body}");
    t.app
        .availability
        .wait_finished(body["run"].as_u64().expect("run"))
        .await;
    assert!(t.app.availability.state().last.expect("poll").ok);
    t.drained().await;
    assert_eq!((t.puts("secutix-1000"), t.puts("secutix-1001")), (1, 2));

    // push: nothing is missing, nothing is sent.
    let (code, body) = t.resync("push").await;
    assert_eq!((code, body["job"].as_str()), (202, Some("refresh")));
    t.app.refresh.wait_finished(body["run"].as_u64().expect("run")).await;
    t.drained().await;
    assert_eq!(t.puts("secutix-1000"), 1);

    // push --full: everything again.
    let (code, body) = t.resync("push --full").await;
    assert_eq!(code, 202);
    t.app.refresh.wait_finished(body["run"].as_u64().expect("run")).await;
    t.drained().await;
    assert_eq!(
        (t.puts("secutix-1000"), t.puts("secutix-1001"), t.puts("secutix-1002")),
        (2, 3, 2)
    );
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn entries_endpoints_show_the_sync_state() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    t.drained().await;
    let c = t.client();
    // The typed documents, read as the JSON the control API sends.
    fn json(doc: impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(doc).expect("a JSON document")
    }
    let all = json(c.entries(&Default::default()).await.expect("entries"));
    assert_eq!(all["total"], 3);
    assert_eq!(all["entries"][0]["targets"]["website"], "synced");
    let q = secutix_sync::daemon::documents::EntriesQuery {
        q: Some("phèdre".into()),
        ..Default::default()
    };
    let found = json(c.entries(&q).await.expect("entries"));
    assert_eq!(found["total"], 1);
    assert_eq!(found["entries"][0]["external_id"], "secutix-1001");
    let one = json(c.entry("1000").await.expect("entry").expect("exists"));
    assert_eq!(one["entry"]["external_id"], "secutix-1000");
    assert_eq!(one["targets"]["website"]["state"], "synced");
    assert_eq!(one["targets"]["website"]["acked"]["kind"], "upsert");
    assert_eq!(one["content_hash"], one["targets"]["website"]["acked"]["content_hash"]);
    assert!(c.entry("secutix-42").await.expect("no error").is_none());
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn dead_letters_are_listed_replayed_and_dropped_through_the_api() {
    let t = spawn_app(Spawn::default()).await;
    t.failing
        .lock()
        .expect("failing")
        .extend(["secutix-1001".to_owned(), "secutix-1002".to_owned()]);
    t.synced().await;
    t.drained().await;
    let c = t.client();
    let dead = c.dead_letters(Some("website")).await.expect("dlq");
    assert_eq!(dead.len(), 2, "422 is permanent: straight to dead letters");
    assert!(dead[0].error.contains("422"), "{}", dead[0].error);
    let s = t.status().await;
    assert_eq!(s["targets"]["website"]["dead_letters"], 2);
    assert!(matches!(
        c.dead_letters(Some("nope")).await,
        Err(secutix_sync::cli_client::ClientError::Api { status: 404, .. })
    ));

    // The CMS is fixed: replay one, drop the other.
    t.failing.lock().expect("failing").clear();
    let one = dead
        .iter()
        .find(|d| d.item.external_id == "secutix-1001")
        .expect("1001");
    assert_eq!(c.replay("website", Some(one.id)).await.expect("replay"), (1, 0));
    t.drained().await;
    assert_eq!(t.puts("secutix-1001"), 2);
    assert_eq!(
        t.app
            .outbox
            .acked("website", "secutix-1001")
            .expect("ack")
            .map(|a| a.kind),
        Some(secutix_sync::targets::OpKind::Upsert)
    );
    let other = dead
        .iter()
        .find(|d| d.item.external_id == "secutix-1002")
        .expect("1002");
    let dropped = c.drop_dead_letter("website", other.id).await.expect("drop");
    assert_eq!(dropped.item.external_id, "secutix-1002");
    assert!(c.dead_letters(None).await.expect("dlq").is_empty());
    assert!(matches!(
        c.drop_dead_letter("website", other.id).await,
        Err(secutix_sync::cli_client::ClientError::Api { status: 404, .. })
    ));
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn metrics_are_prometheus_text() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    t.drained().await;
    let text = t.client().metrics().await.expect("metrics");
    for line in [
        "# TYPE secutix_sync_outbox_depth gauge",
        "secutix_sync_outbox_depth{target=\"website\"} 0",
        "secutix_sync_dead_letters{target=\"website\"} 0",
        "# TYPE secutix_sync_push_delivered_total counter",
        "secutix_sync_push_delivered_total{target=\"website\"} 3",
        "secutix_sync_catalogue_products{state=\"live\"} 3",
        "secutix_sync_secutix_call_budget_month 10000",
        "secutix_sync_job_running{job=\"catalogue\"} 0",
        "secutix_sync_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Every sample line is `name{labels} value` with a number.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().expect("value");
        assert!(value.parse::<f64>().is_ok(), "{l}");
    }
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn the_store_is_consistent_after_shutdown() {
    let t = spawn_app(Spawn::default()).await;
    t.synced().await;
    t.drained().await;
    let mut t = t;
    let _dir = t.dir.take();
    let store_path = t.store_path.clone();
    let app = t.app.clone();
    t.shutdown().await.expect("clean shutdown");
    drop(app);
    let store = Store::open(&store_path, 16, Arc::new(TokioClock::starting_at(t0()))).expect("store reopens");
    let outbox = Outbox::open(&store).expect("outbox");
    assert_eq!(outbox.depth("website").expect("depth"), 0);
    let entries = outbox.entries().expect("entries");
    assert_eq!(entries.len(), 3);
    for e in entries {
        let ack = outbox
            .acked("website", &e.entry.external_id)
            .expect("ack")
            .expect("acked");
        assert_eq!(ack.content_hash, e.content_hash, "{}", e.entry.external_id);
    }
}

// ---------------------------------------------------------------------------------------------------------
// pass Culture through the control API
// ---------------------------------------------------------------------------------------------------------

/// Log lines written while it is the thread's subscriber (the paused-time runtime runs every task here).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

/// A daemon with a `passculture` target publishing the season's theatre to the fake pass Culture API.
async fn spawn_with_pass_culture(pc: &MockHttp) -> TestApp {
    use passculture_fake::{SELECT_THEATRE, show, target_toml, venue_catalog};
    spawn_app(Spawn {
        catalogue: venue_catalog(vec![
            show(1, "Hamlet", "TH", &[(11, 5, 35000, 10000), (12, 6, 35000, 10000)]),
            show(2, "Phèdre", "TH", &[(21, 7, 30000, 8000)]),
        ]),
        daemon: "refresh_interval = \"5m\"",
        extra: target_toml(&pc.uri(), SELECT_THEATRE),
        ..Spawn::default()
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_box_office_checks_and_validates_contremarques_through_the_control_api() {
    use passculture_fake::{booking_json, fake_pass_culture, script};
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let _logs = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let (pc, fake) = fake_pass_culture().await;
    let t = spawn_with_pass_culture(&pc).await;
    t.synced().await;
    let call = |method: reqwest::Method, path: &str| {
        let r = t.authed(method, path);
        async move {
            let resp = r.send().await.expect("box office");
            let code = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (code, resp.json::<Value>().await.expect("json"), retry_after)
        }
    };
    let on = |method: &'static str, path: String, reply: Reply| {
        script(&fake, move |r| r.method == method && r.uri.starts_with(&path), reply)
    };

    // The token protects the box office like every private endpoint.
    let r = t.get("/passculture/bookings/ABC123").send().await.expect("get");
    assert_eq!(r.status(), 401);

    // Look a booking up: the offer, the date in the venue's time, the tariff, the young person's name.
    on(
        "GET",
        "/public/bookings/v1/token/ABC123".into(),
        Reply::json(&booking_json("CONFIRMED")),
    );
    on(
        "GET",
        "/public/offers/v1/events/1001/dates".into(),
        Reply::json(
            &json!({"dates": [{"id": 1003, "beginningDatetime": "2026-03-07T19:00:00Z",
            "bookingLimitDatetime": "2026-03-07T17:00:00Z", "idAtProvider": "11-306159079", "priceCategory": null,
            "quantity": 10, "bookedQuantity": 2}]}),
        ),
    );
    let (code, b, _) = call(reqwest::Method::GET, "/passculture/bookings/abc123").await;
    assert_eq!(code, 200, "{b}");
    assert_eq!(
        (&b["ok"], &b["action"], &b["token"], &b["outcome"], &b["exit_code"]),
        (
            &json!(true),
            &json!("booking"),
            &json!("ABC123"),
            &json!("found"),
            &json!(0)
        )
    );
    assert_eq!(b["message"], "Contremarque ABC123 trouvée.");
    assert_eq!(b["booking"]["offer_name"], "Hamlet");
    assert_eq!(b["booking"]["tariff"], "Moins de 26 ans");
    assert_eq!(b["booking"]["quantity"], 2);
    assert_eq!(b["booking"]["first_name"], "Jeanne");
    assert_eq!(b["booking"]["date_local"], "2026-03-07T20:00:00+01:00");
    assert_eq!(b["booking"]["status_text"], "confirmée, à valider à l'entrée");
    assert!(b["booking"].get("userEmail").is_none() && !b.to_string().contains("jeanne@example.org"));

    // Use it: pass Culture says it was already used. Plain words in both languages, the CLI's exit code.
    let already = r#"{"booking": "This booking has already been validated"}"#;
    on(
        "PATCH",
        "/public/bookings/v1/use/token/ABC123".into(),
        Reply::status(410).body(already),
    );
    let (code, b, _) = call(reqwest::Method::POST, "/passculture/bookings/ABC123/use").await;
    assert_eq!(code, 409, "{b}");
    assert_eq!(
        (&b["ok"], &b["outcome"], &b["exit_code"]),
        (&json!(false), &json!("already_used"), &json!(4))
    );
    assert!(
        b["message"].as_str().expect("message").starts_with("Déjà utilisée"),
        "{b}"
    );
    on(
        "PATCH",
        "/public/bookings/v1/use/token/ABC123".into(),
        Reply::status(410).body(already),
    );
    let (_, b, _) = call(reqwest::Method::POST, "/passculture/bookings/ABC123/use?lang=en").await;
    assert!(
        b["message"].as_str().expect("message").starts_with("already used"),
        "{b}"
    );
    assert_eq!(b["lang"], "en");

    // Keep (undo a use) succeeds; cancel is too late; pass Culture rate-limits; it is down.
    on(
        "PATCH",
        "/public/bookings/v1/keep/token/ABC123".into(),
        Reply::status(204),
    );
    let (code, b, _) = call(reqwest::Method::POST, "/passculture/bookings/ABC123/keep").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (200, &json!("done"), &json!(0)),
        "{b}"
    );
    assert!(b["message"].as_str().expect("message").contains("ABC123"), "{b}");
    on(
        "PATCH",
        "/public/bookings/v1/cancel/token/ABC123".into(),
        Reply::status(403).body(r#"{"booking": "This booking cannot be cancelled anymore"}"#),
    );
    let (code, b, _) = call(reqwest::Method::POST, "/passculture/bookings/ABC123/cancel").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (409, &json!("too_late"), &json!(9)),
        "{b}"
    );
    on(
        "PATCH",
        "/public/bookings/v1/use/token/ABC123".into(),
        Reply::status(429).header("retry-after", "30").body("{}"),
    );
    let (code, b, retry) = call(reqwest::Method::POST, "/passculture/bookings/ABC123/use").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (503, &json!("rate_limited"), &json!(12)),
        "{b}"
    );
    assert_eq!(
        (b["retry_after_secs"].as_u64(), retry.as_deref()),
        (Some(30), Some("30"))
    );
    on(
        "GET",
        "/public/bookings/v1/token/ZZZ999".into(),
        Reply::status(404).body(r#"{"global": "not found"}"#),
    );
    let (code, b, _) = call(reqwest::Method::GET, "/passculture/bookings/zzz999").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (404, &json!("not_found"), &json!(3)),
        "{b}"
    );

    // Checked before any call: a code that is not a contremarque, an unknown target, an unknown action.
    let before = pc.requests_to("/public/bookings/").len();
    let (code, b, _) = call(reqwest::Method::POST, "/passculture/bookings/AB-12/use").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (400, &json!("invalid_token"), &json!(13)),
        "{b}"
    );
    let (code, b, _) = call(reqwest::Method::GET, "/passculture/bookings/ABC123?target=nope").await;
    assert_eq!(
        (code, &b["outcome"], &b["exit_code"]),
        (404, &json!("configuration"), &json!(2)),
        "{b}"
    );
    assert!(b["message"].as_str().expect("message").contains("\"nope\""), "{b}");
    let r = t
        .authed(reqwest::Method::POST, "/passculture/bookings/ABC123/validate")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    assert_eq!(
        pc.requests_to("/public/bookings/").len(),
        before,
        "no call for what is refused first"
    );

    // No personal data in the logs.
    let text = logs.text();
    assert!(
        text.contains("pass Culture booking looked up"),
        "the box office logs: {text}"
    );
    for personal in ["Jeanne", "Dupont", "jeanne@example.org", "+33600000000", "2007-01-01"] {
        assert!(!text.contains(personal), "{personal} in the logs:\n{text}");
    }
    t.shutdown().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn status_shows_the_pass_culture_offer_statuses_and_reads_them_again() {
    use passculture_fake::fake_pass_culture;
    let (pc, fake) = fake_pass_culture().await;
    let t = spawn_with_pass_culture(&pc).await;
    t.synced().await;
    until("the offers published", || {
        t.app.outbox.depth("passculture").expect("depth") == 0 && fake.lock().expect("fake").events.len() == 2
    })
    .await;
    let s = t.status().await;
    let p = &s["targets"]["passculture"];
    assert_eq!(p["kind"], "passculture");
    assert_eq!(p["passculture"]["offers"], 2, "{p}");
    assert_eq!(p["passculture"]["by_status"], json!({"PENDING": 2}), "{p}");
    let hamlet = p["passculture"]["list"]
        .as_array()
        .expect("list")
        .iter()
        .find(|o| o["external_id"] == "secutix-1")
        .expect("Hamlet")
        .clone();
    assert_eq!((&hamlet["name"], &hamlet["open_dates"]), (&json!("Hamlet"), &json!(2)));
    assert!(hamlet["offer_id"].as_u64().is_some());
    assert!(
        s["targets"]["website"].get("passculture").is_none(),
        "only passculture targets"
    );

    // pass Culture validates one offer and rejects the other: the next scheduled refresh reads it.
    {
        let mut f = fake.lock().expect("fake");
        let ids: Vec<u64> = f.events.keys().copied().collect();
        f.events
            .get_mut(&ids[0])
            .expect("offer")
            .insert("status".into(), json!("ACTIVE"));
        f.events
            .get_mut(&ids[1])
            .expect("offer")
            .insert("status".into(), json!("REJECTED"));
    }
    let runs = t.app.refresh.state().runs;
    t.app.refresh.wait_finished(runs + 1).await;
    let last = t.app.refresh.state().last.expect("a refresh run");
    let statuses = last.summary.as_ref().and_then(|s| s.passculture_statuses.as_ref());
    assert_eq!(
        statuses.and_then(|s| s.get("passculture")),
        Some(&secutix_sync::daemon::summaries::OfferStatusRefresh::Updated(2)),
        "{:?}",
        last.summary
    );
    let s = t.status().await;
    let p = &s["targets"]["passculture"]["passculture"];
    assert_eq!(p["by_status"], json!({"ACTIVE": 1, "REJECTED": 1}), "{p}");
    assert!(p["statuses_read_at"].is_string());
    t.shutdown().await.expect("clean shutdown");
}
