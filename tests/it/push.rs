//! Entries and the durable push: change detection, the outbox, retries, dead letters, durability across a
//! killed runtime, the files and webhook targets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use secutix_sync::catalog::{Performance, Product};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::push::{DeletePolicy, DrainOptions, Outbox, PlanTarget, PushSettings, Scope, Worker};
use secutix_sync::store::Store;
use secutix_sync::targets::Target;
use secutix_sync::targets::files::{FilesSettings, FilesTarget};
use secutix_sync::targets::webhook::{WebhookMode, WebhookSettings, WebhookTarget};
use serde_json::{Value, json};

fn options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into(), "en".into()],
        mapping_version: 1,
        shop_url: "https://mosa.shop.secutix.com".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: "{shop}/api/1/redirect/product/performance?id={performance_id}&lang={LANGUAGE}".into(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

/// Availability levels by performance id, shared with the status function.
type Levels = Arc<Mutex<BTreeMap<i64, u8>>>;

fn status_of(levels: &Levels) -> impl Fn(&Product, &Performance, DateTime<Utc>) -> PerformanceStatus + use<> {
    let levels = levels.clone();
    move |_p, perf, now| PerformanceStatus {
        level: levels.lock().expect("levels").get(&perf.id).copied(),
        on_sale: !perf.is_past(now),
    }
}

fn plan(outbox: &Outbox, targets: &[&str], levels: &Levels) -> secutix_sync::push::PlanReport {
    let targets: Vec<PlanTarget> = targets
        .iter()
        .map(|n| PlanTarget::new(n.to_string(), DeletePolicy::Unpublish))
        .collect();
    let status = status_of(levels);
    outbox
        .plan(&targets, &options(), &status, &Scope::All, false, false)
        .expect("plan")
}

fn webhook(name: &str, url: &str, secret: Option<&str>) -> Arc<dyn Target> {
    let settings = WebhookSettings {
        url: url.to_owned(),
        mode: WebhookMode::Put,
        secret: secret.map(|s| s.to_owned().into()),
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    Arc::new(WebhookTarget::new(name, &settings, Duration::from_secs(20)).expect("webhook target"))
}

fn settings() -> PushSettings {
    PushSettings {
        request_timeout: Duration::from_secs(20),
        ..PushSettings::default()
    }
}

async fn drain(outbox: &Outbox, target: Arc<dyn Target>, max_wait: Duration) -> secutix_sync::push::DrainReport {
    Worker::new(outbox, target, settings())
        .expect("worker")
        .drain(DrainOptions { max_wait, stop: None })
        .await
        .expect("drain")
}

fn three_products() -> Value {
    catalog(vec![season(
        1,
        "S26",
        -30,
        vec![
            product(1, "Hamlet", &[(11, 5), (12, 6)]),
            product(2, "Phèdre", &[(21, 7)]),
            product(3, "Tartuffe", &[(31, 8)]),
        ],
    )])
}

fn ok_receiver(m: &MockHttp) {
    m.handle("PUT", "/hook/", |_| Some(Reply::status(204)));
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_catalogue_sends_nothing_and_a_change_sends_one_upsert_per_target() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    let levels: Levels = Arc::default();
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let a = MockHttp::start().await;
    let b = MockHttp::start().await;
    ok_receiver(&a);
    ok_receiver(&b);
    let ta = webhook("a", &format!("{}/hook", a.uri()), None);
    let tb = webhook("b", &format!("{}/hook", b.uri()), None);

    let first = plan(&outbox, &["a", "b"], &levels);
    assert_eq!(first.targets["a"].create, 3);
    assert_eq!(drain(&outbox, ta.clone(), Duration::ZERO).await.delivered, 3);
    assert_eq!(drain(&outbox, tb.clone(), Duration::ZERO).await.delivered, 3);

    // Same catalogue again (a fresh import of identical content): zero requests.
    tokio::time::advance(Duration::from_secs(3600)).await;
    import_body(&store, &three_products(), false);
    let again = plan(&outbox, &["a", "b"], &levels);
    assert_eq!(
        (again.targets["a"].unchanged, again.targets["a"].operations.len()),
        (3, 0)
    );
    drain(&outbox, ta.clone(), Duration::ZERO).await;
    drain(&outbox, tb.clone(), Duration::ZERO).await;
    assert_eq!((a.requests().len(), b.requests().len()), (3, 3));

    // A changed price: one upsert of that entry per target.
    let mut changed = three_products();
    changed["catalogData"]["seasons"][0]["products"][1]["event"]["performances"][0]["prices"][0]["amount"] =
        json!(28000);
    import_body(&store, &changed, false);
    let p = plan(&outbox, &["a", "b"], &levels);
    assert_eq!(
        p.targets["a"].operations,
        vec![(secutix_sync::targets::OpKind::Upsert, "secutix-2".to_owned(), false)]
    );
    drain(&outbox, ta.clone(), Duration::ZERO).await;
    drain(&outbox, tb.clone(), Duration::ZERO).await;
    let last = a.requests().pop().expect("request");
    assert_eq!(last.uri, "/hook/secutix-2");
    assert_eq!(
        last.json()["price_range"]["min"],
        json!({"amount": "28.00", "minor": 2800})
    );
    assert_eq!((a.requests().len(), b.requests().len()), (4, 4));

    // A changed indicator: one upsert of that entry per target.
    levels.lock().expect("levels").insert(31, 3);
    let p = plan(&outbox, &["a", "b"], &levels);
    assert_eq!(p.targets["b"].operations.len(), 1);
    drain(&outbox, ta, Duration::ZERO).await;
    drain(&outbox, tb, Duration::ZERO).await;
    let last = b.requests().pop().expect("request");
    assert_eq!(last.uri, "/hook/secutix-3");
    assert_eq!(last.json()["availability"], json!({"status": "sold_out", "code": 3}));
    assert_eq!(last.json()["booking_url"], json!({}), "no Book link when sold out");
    assert_eq!((a.requests().len(), b.requests().len()), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_honour_retry_after_and_deliver_once() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(
        &store,
        &catalog(vec![season(1, "S", -30, vec![product(1, "Hamlet", &[(11, 5)])])]),
        false,
    );
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    m.on(
        "PUT",
        "/hook/secutix-1",
        [
            Reply::status(500).body("Internal Server Error"),
            Reply::status(503).header("retry-after", "120").body("maintenance"),
            Reply::status(429).body("slow down"),
            Reply::status(200).delay(Duration::from_secs(60)),
            Reply::status(200),
        ],
    );
    plan(&outbox, &["site"], &Arc::default());
    let report = drain(
        &outbox,
        webhook("site", &format!("{}/hook", m.uri()), None),
        Duration::from_secs(3 * 3600),
    )
    .await;
    assert_eq!((report.delivered, report.dead, report.pending), (1, 0, 0));
    assert_eq!(report.retried, 4, "500, 503, 429 and a timeout");
    let reqs = m.requests();
    assert_eq!(reqs.len(), 5);
    let gap = |i: usize| reqs[i + 1].at - reqs[i].at;
    let within = |d: Duration, lo: f64, hi: f64| d >= Duration::from_secs_f64(lo) && d <= Duration::from_secs_f64(hi);
    // Full jitter: attempt n waits a random time in [0.1 s, backoff_initial × 2^(n-1)] (5 s, 10 s, 20 s, 40 s).
    assert!(
        within(gap(0), 0.1, 5.1),
        "after the 500, a first back-off of at most 5 s: {:?}",
        gap(0)
    );
    assert!(
        within(gap(1), 120.0, 121.0),
        "the 503's Retry-After (120 s) wins over the 10 s back-off: {:?}",
        gap(1)
    );
    assert!(within(gap(2), 0.1, 20.1), "after the 429, at most 20 s: {:?}", gap(2));
    assert!(
        within(gap(3), 20.1, 60.1),
        "the slow answer timed out after request_timeout (20 s), then at most 40 s: {:?}",
        gap(3)
    );
    let keys: Vec<_> = reqs.iter().map(|r| r.header("idempotency-key")).collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "every retry carries the same Idempotency-Key"
    );
    assert!(outbox.acked("site", "secutix-1").expect("ack").is_some());
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_a_permanent_error_goes_to_dead_letters_without_blocking_others() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    m.on("PUT", "/hook/secutix-1", [Reply::status(500).body("boom")]);
    m.on(
        "PUT",
        "/hook/secutix-2",
        [Reply::status(400).body("{\"error\":\"title too long\"}")],
    );
    m.on("PUT", "/hook/secutix-3", [Reply::status(201)]);
    plan(&outbox, &["site"], &Arc::default());
    let report = drain(
        &outbox,
        webhook("site", &format!("{}/hook", m.uri()), None),
        Duration::from_secs(24 * 3600),
    )
    .await;
    assert_eq!((report.delivered, report.dead, report.pending), (1, 2, 0));
    assert_eq!(m.requests_to("/hook/secutix-1").len(), 8, "max_attempts");
    assert!(
        m.requests_to("/hook/secutix-3")[0].at < m.requests_to("/hook/secutix-1")[1].at,
        "the good entry is not queued behind the failing one's retries"
    );
    assert_eq!(m.requests_to("/hook/secutix-2").len(), 1, "a 400 is not retried");
    let dead = outbox.dead_letters(&["site".into()]).expect("dead letters");
    assert_eq!(dead.len(), 2);
    let by_id: BTreeMap<_, _> = dead
        .iter()
        .map(|d| (d.item.external_id.as_str(), d.error.as_str()))
        .collect();
    assert!(by_id["secutix-2"].contains("HTTP 400") && by_id["secutix-2"].contains("title too long"));
    assert!(by_id["secutix-1"].contains("gave up after 8 attempts"));

    // A dead letter is not re-sent by the next plan while its content is the same...
    let again = plan(&outbox, &["site"], &Arc::default());
    assert_eq!(again.targets["site"].dead, 2);
    // ...but an operator can replay it.
    m.on("PUT", "/hook/secutix-2", [Reply::status(200)]);
    let id = dead
        .iter()
        .find(|d| d.item.external_id == "secutix-2")
        .expect("dead letter")
        .id;
    assert_eq!(outbox.replay("site", Some(id)).expect("replay"), (1, 0));
    let report = drain(
        &outbox,
        webhook("site", &format!("{}/hook", m.uri()), None),
        Duration::ZERO,
    )
    .await;
    assert_eq!(report.delivered, 1);
    assert_eq!(outbox.dead_letters(&["site".into()]).expect("dead letters").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_target_is_probed_without_using_up_attempts() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    // A port with nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_url = format!("http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);
    plan(&outbox, &["site"], &Arc::default());
    let report = drain(
        &outbox,
        webhook("site", &dead_url, None),
        Duration::from_secs(48 * 3600),
    )
    .await;
    assert_eq!(
        (report.delivered, report.dead),
        (0, 0),
        "a day of outage does not kill operations"
    );
    assert_eq!(report.pending, 3);
    assert!(outbox.pending("site").expect("pending").iter().all(|i| i.attempts == 0));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_target_drained_again_and_again_is_probed_with_a_growing_back_off() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    // A port bound without listening: every connection is refused.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let url = format!("http://{}/hook", socket.local_addr().expect("addr"));
    plan(&outbox, &["site"], &Arc::default());
    // Drained the way the daemon's worker loop drains: one worker, again and again with `max_wait` 0,
    // sleeping until the `next_attempt_at` each drain reports. Twelve hours down.
    let worker = Worker::new(&outbox, webhook("site", &url, None), settings()).expect("worker");
    let start = tokio::time::Instant::now();
    let mut probes = Vec::new();
    while tokio::time::Instant::now() - start < Duration::from_secs(12 * 3600) {
        let report = worker.drain(DrainOptions::now()).await.expect("drain");
        assert_eq!((report.delivered, report.dead, report.pending), (0, 0, 3));
        let next = report.next_attempt_at.expect("a next attempt");
        probes.push(next);
        let wait = (next - clock.now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
    // 5 s, 10 s, … doubling up to backoff_max (30 min, jittered down to no less than half): a few dozen
    // probes in twelve hours, not one every 5 seconds.
    assert!(probes.len() < 60, "{} probes in twelve hours", probes.len());
    let gaps: Vec<i64> = probes.windows(2).map(|w| (w[1] - w[0]).num_seconds()).collect();
    assert!(
        gaps.iter().rev().take(5).all(|g| *g >= 15 * 60),
        "the back-off reached backoff_max: {gaps:?}"
    );
    assert!(outbox.pending("site").expect("pending").iter().all(|i| i.attempts == 0));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_pauses_the_whole_target_across_drains() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    m.handle("PUT", "/hook/", |_| Some(Reply::status(204)));
    m.on(
        "PUT",
        "/hook/secutix-1",
        [
            Reply::status(503).header("retry-after", "600").body("maintenance"),
            Reply::status(204),
        ],
    );
    plan(&outbox, &["site"], &Arc::default());
    let worker = Worker::new(
        &outbox,
        webhook("site", &format!("{}/hook", m.uri()), None),
        PushSettings {
            concurrency: 1,
            ..settings()
        },
    )
    .expect("worker");
    let report = worker.drain(DrainOptions::now()).await.expect("drain");
    assert_eq!(
        (report.delivered, report.retried),
        (0, 1),
        "secutix-1 goes first and gets the 503"
    );
    let paused = report.next_attempt_at.expect("next attempt");
    assert!(paused >= clock.now() + chrono::Duration::seconds(600), "{paused}");
    // The daemon drains again at every plan: nothing goes out before the pause ends.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let report = worker.drain(DrainOptions::now()).await.expect("drain");
    assert_eq!(
        (report.delivered, m.requests().len()),
        (0, 1),
        "the target is paused for 600 s"
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
    let report = worker.drain(DrainOptions::now()).await.expect("drain");
    assert_eq!((report.delivered, report.pending), (3, 0));
}

#[test]
fn a_push_killed_after_sending_but_before_the_ack_is_resent_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = secutix_sync::clock::system();
    // The receiver runs on its own runtime, alive for the whole test.
    let server_rt = tokio::runtime::Runtime::new().expect("runtime");
    let m = server_rt.block_on(MockHttp::start());
    let (hung_tx, hung_rx) = std::sync::mpsc::channel::<()>();
    let hang = Arc::new(Mutex::new(true));
    let hang_flag = hang.clone();
    let hung_tx = Mutex::new(hung_tx);
    m.handle("PUT", "/hook/", move |req| {
        if req.uri.ends_with("secutix-3") && *hang_flag.lock().expect("flag") {
            let _ = hung_tx.lock().expect("tx").send(());
            return Some(Reply::status(200).delay(Duration::from_secs(3600)));
        }
        Some(Reply::status(200))
    });
    let url = format!("{}/hook", m.uri());
    let products: Vec<Value> = (1..=6).map(|i| product(i, &format!("P{i}"), &[(i * 10, 5)])).collect();
    {
        let push_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = Store::open(dir.path(), 16, system.clone()).expect("store");
        import_body(&store, &catalog(vec![season(1, "S", -30, products)]), false);
        let outbox = Outbox::open(&store).expect("outbox");
        plan(&outbox, &["site"], &Arc::default());
        let worker = Worker::new(
            &outbox,
            webhook("site", &url, None),
            PushSettings {
                concurrency: 1,
                ..settings()
            },
        )
        .expect("worker");
        push_rt.spawn(async move {
            let _ = worker.drain(DrainOptions::now()).await;
        });
        // Wait until the request for secutix-3 reached the receiver, then kill the push mid-flight.
        push_rt.block_on(async {
            tokio::task::spawn_blocking(move || hung_rx.recv())
                .await
                .expect("join")
                .expect("hung")
        });
        push_rt.shutdown_background();
        drop(store);
    }
    *hang.lock().expect("flag") = false;
    let store = Store::open(dir.path(), 16, system).expect("reopen");
    let outbox = Outbox::open(&store).expect("outbox");
    let pending: Vec<String> = outbox
        .pending("site")
        .expect("pending")
        .into_iter()
        .map(|i| i.external_id)
        .collect();
    assert!(
        pending.contains(&"secutix-3".to_owned()),
        "the unacknowledged operation is still there: {pending:?}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async {
        Worker::new(&outbox, webhook("site", &url, None), settings())
            .expect("worker")
            .drain(DrainOptions::now())
            .await
            .expect("drain")
    });
    assert_eq!(report.pending, 0);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in m.requests() {
        *counts.entry(r.uri.trim_start_matches("/hook/").to_owned()).or_default() += 1;
    }
    assert_eq!(counts.len(), 6, "every entry delivered: {counts:?}");
    assert_eq!(counts["secutix-3"], 2, "the one in flight is sent again (idempotently)");
    let resent = m.requests_to("/hook/secutix-3");
    assert_eq!(
        resent[0].header("idempotency-key"),
        resent[1].header("idempotency-key"),
        "the same Idempotency-Key before and after the crash"
    );
    assert_eq!(
        resent[0].body, resent[1].body,
        "the same body: a duplicate, not a new version"
    );
    assert!(
        counts.iter().filter(|(k, _)| *k != "secutix-3").all(|(_, n)| *n == 1),
        "{counts:?}"
    );
    for i in 1..=6 {
        assert!(outbox.acked("site", &format!("secutix-{i}")).expect("ack").is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn the_files_target_writes_atomically_keeps_an_index_and_handles_tombstones() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    let out = tempfile::tempdir().expect("out");
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let files: Arc<dyn Target> = Arc::new(
        FilesTarget::new(
            "site",
            &FilesSettings {
                path: out.path().to_owned(),
                pretty: true,
            },
        )
        .expect("files"),
    );
    plan(&outbox, &["site"], &Arc::default());
    drain(&outbox, files.clone(), Duration::ZERO).await;
    let names: Vec<String> = std::fs::read_dir(out.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["index.json", "secutix-1.json", "secutix-2.json", "secutix-3.json"],
        "no temporary files left"
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("secutix-1.json")).expect("read")).expect("json");
    assert_eq!(doc["title"]["fr"], "Hamlet");
    assert_eq!(doc["performances"][0]["start"], "2026-03-07T11:00:00+01:00");
    assert_eq!(doc["content_hash"].as_str().map(str::len), Some(64));
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).expect("read")).expect("json");
    assert_eq!(index["count"], 3);

    // Tartuffe disappears from SecuTix (forced past the shrink guard): unpublished, out of the index.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let two = catalog(vec![season(
        1,
        "S26",
        -30,
        vec![
            product(1, "Hamlet", &[(11, 5), (12, 6)]),
            product(2, "Phèdre", &[(21, 7)]),
        ],
    )]);
    import_body(&store, &two, true);
    let p = plan(&outbox, &["site"], &Arc::default());
    assert_eq!(p.targets["site"].unpublish, 1);
    drain(&outbox, files, Duration::ZERO).await;
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("secutix-3.json")).expect("read")).expect("json");
    assert_eq!(doc["published"], false);
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).expect("read")).expect("json");
    let ids: Vec<&str> = index["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["external_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["secutix-1", "secutix-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_receiver_verifies_the_webhook_signature_as_the_readme_says() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    ok_receiver(&m);
    plan(&outbox, &["site"], &Arc::default());
    drain(
        &outbox,
        webhook("site", &format!("{}/hook", m.uri()), Some("shared-secret")),
        Duration::ZERO,
    )
    .await;
    let reqs = m.requests();
    assert_eq!(reqs.len(), 3);
    for r in reqs {
        // README: compute HMAC-SHA256 over the raw body with the shared secret, hex-encode it, prefix
        // "sha256=", and compare with X-Secutix-Sync-Signature in constant time.
        let header = r.header("x-secutix-sync-signature").expect("signature header");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shared-secret").expect("key");
        mac.update(&r.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header, expected);
        let mut wrong = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"other").expect("key");
        wrong.update(&r.body);
        assert_ne!(header, format!("sha256={}", hex::encode(wrong.finalize().into_bytes())));
        assert!(
            r.header("x-secutix-sync-timestamp")
                .is_some_and(|t| t.parse::<i64>().is_ok())
        );
        assert_eq!(r.header("x-secutix-sync-event").as_deref(), Some("upsert"));
        assert_eq!(r.json()["external_id"].as_str().map(|s| r.uri.ends_with(s)), Some(true));
    }
}

#[tokio::test(start_paused = true)]
async fn a_target_filter_skips_products_and_withdraws_those_that_leave_it_without_deleting() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let levels: Levels = Arc::default();
    let status = status_of(&levels);
    let only = |ids: &'static [i64], policy: DeletePolicy| {
        let mut t = PlanTarget::new("site", policy);
        t.filter = Some(Arc::new(move |p: &Product| ids.contains(&p.id)));
        t
    };
    let run = |t: PlanTarget| {
        outbox
            .plan(&[t], &options(), &status, &Scope::All, false, false)
            .expect("plan")
            .targets["site"]
            .clone()
    };
    let m = MockHttp::start().await;
    ok_receiver(&m);
    m.handle("DELETE", "/hook/", |_| Some(Reply::status(204)));
    let site = webhook("site", &format!("{}/hook", m.uri()), None);

    // Only products 1 and 2 are wanted: 3 is skipped, never sent.
    let p = run(only(&[1, 2], DeletePolicy::Delete));
    assert_eq!((p.create, p.skipped), (2, 1), "{p:?}");
    drain(&outbox, site.clone(), Duration::ZERO).await;

    // Product 2 leaves the selection: it is withdrawn (unpublish), never deleted, even with "delete".
    let p = run(only(&[1], DeletePolicy::Delete));
    assert_eq!(
        p.operations,
        vec![(secutix_sync::targets::OpKind::Unpublish, "secutix-2".to_owned(), false)]
    );
    assert_eq!((p.unchanged, p.skipped), (1, 1));
    drain(&outbox, site.clone(), Duration::ZERO).await;
    assert!(m.requests().iter().all(|r| r.method != "DELETE"));
    assert_eq!(
        m.requests()
            .last()
            .map(|r| (r.uri.clone(), r.json()["published"].clone())),
        Some(("/hook/secutix-2".to_owned(), json!(false))),
        "the live entry is sent as unpublished"
    );
    // Withdrawn once: nothing more while it stays out.
    let p = run(only(&[1], DeletePolicy::Delete));
    assert_eq!((p.operations.len(), p.skipped), (0, 2));

    // Back in the selection: sent again. With "keep", leaving the selection changes nothing on the target.
    let p = run(only(&[1, 2], DeletePolicy::Keep));
    assert_eq!(p.create + p.update, 1, "{p:?}");
    drain(&outbox, site, Duration::ZERO).await;
    let p = run(only(&[1], DeletePolicy::Keep));
    assert_eq!((p.operations.len(), p.skipped), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn files_are_replaced_whole_so_a_reader_never_sees_half_a_file_and_delete_removes_them() {
    use std::io::Read;
    let clock = clock();
    let (store, _dir) = store(&clock);
    let out = tempfile::tempdir().expect("out");
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let files: Arc<dyn Target> = Arc::new(
        FilesTarget::new(
            "site",
            &FilesSettings {
                path: out.path().to_owned(),
                pretty: false,
            },
        )
        .expect("files"),
    );
    let levels: Levels = Arc::default();
    let status = status_of(&levels);
    let targets = [PlanTarget::new("site", DeletePolicy::Delete)];
    let plan = |outbox: &Outbox| {
        outbox
            .plan(&targets, &options(), &status, &Scope::All, false, false)
            .expect("plan")
            .targets["site"]
            .clone()
    };
    plan(&outbox);
    drain(&outbox, files.clone(), Duration::ZERO).await;

    #[cfg(unix)]
    for file in ["secutix-1.json", "index.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.path().join(file))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{file} is readable by the site generator's user");
    }
    // A site generator has secutix-1.json open while the entry changes.
    let mut reader = std::fs::File::open(out.path().join("secutix-1.json")).expect("open");
    tokio::time::advance(Duration::from_secs(3600)).await;
    let mut changed = three_products();
    changed["catalogData"]["seasons"][0]["products"][0]["externalName"]["translations"][0]["value"] =
        json!("Hamlet, prince de Danemark (version intégrale, avec entracte)");
    import_body(&store, &changed, false);
    assert_eq!(plan(&outbox).update, 1);
    drain(&outbox, files.clone(), Duration::ZERO).await;
    // The open reader still reads the whole previous document: the new one was written beside it and renamed
    // over it. A file rewritten in place would show this reader the new text, or a truncated mix.
    let mut old = String::new();
    reader.read_to_string(&mut old).expect("read");
    let old: Value = serde_json::from_str(&old).expect("the previous file is whole");
    assert_eq!(old["title"]["fr"], "Hamlet");
    let new: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("secutix-1.json")).expect("read")).expect("json");
    assert_eq!(
        new["title"]["fr"],
        "Hamlet, prince de Danemark (version intégrale, avec entracte)"
    );

    // With delete_policy = "delete", a tombstone removes the file and its index line.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let mut two = changed.clone();
    two["catalogData"]["seasons"][0]["products"]
        .as_array_mut()
        .expect("products")
        .pop();
    import_body(&store, &two, true);
    assert_eq!(plan(&outbox).delete, 1);
    drain(&outbox, files, Duration::ZERO).await;
    assert!(!out.path().join("secutix-3.json").exists());
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).expect("read")).expect("json");
    assert_eq!(index["count"], 2);
    assert_eq!(
        outbox.acked("site", "secutix-3").expect("ack").map(|a| a.kind),
        Some(secutix_sync::targets::OpKind::Delete)
    );
}

#[tokio::test(start_paused = true)]
async fn the_post_envelope_carries_the_event_and_a_409_counts_as_already_applied() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    m.on("POST", "/events", [Reply::status(409).body("already received")]);
    let settings = WebhookSettings {
        url: format!("{}/events", m.uri()),
        mode: WebhookMode::Post,
        secret: None,
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    let target: Arc<dyn Target> =
        Arc::new(WebhookTarget::new("events", &settings, Duration::from_secs(20)).expect("webhook target"));
    plan(&outbox, &["events"], &Arc::default());
    let report = drain(&outbox, target, Duration::ZERO).await;
    assert_eq!(
        (report.delivered, report.dead, report.pending),
        (3, 0, 0),
        "409 = already applied"
    );
    for r in m.requests() {
        let body = r.json();
        let id = body["external_id"].as_str().expect("external_id").to_owned();
        let hash = body["content_hash"].as_str().expect("content_hash").to_owned();
        assert_eq!(body["event"], "upsert");
        assert_eq!(body["entry"]["external_id"], id.as_str());
        assert!(
            body["occurred_at"]
                .as_str()
                .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok())
        );
        assert_eq!(
            r.header("idempotency-key"),
            Some(secutix_sync::targets::webhook::idempotency_key(&id, &hash))
        );
        assert_eq!(
            outbox.acked("events", &id).expect("ack").map(|a| a.content_hash),
            Some(hash)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_dead_letter_is_not_planned_again_until_its_entry_changes() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    import_body(&store, &three_products(), false);
    let outbox = Outbox::open(&store).expect("outbox");
    let m = MockHttp::start().await;
    ok_receiver(&m);
    m.on(
        "PUT",
        "/hook/secutix-2",
        [Reply::status(422).body("{\"error\":\"no image\"}")],
    );
    let site = webhook("site", &format!("{}/hook", m.uri()), None);
    plan(&outbox, &["site"], &Arc::default());
    assert_eq!(drain(&outbox, site.clone(), Duration::ZERO).await.dead, 1);
    let dead = outbox.dead_letters(&["site".into()]).expect("dead letters");
    let dropped = outbox.drop_dead_letter("site", dead[0].id).expect("drop");
    assert_eq!(dropped.item.external_id, "secutix-2");
    assert!(outbox.dead_letters(&["site".into()]).expect("dead letters").is_empty());
    assert!(outbox.drop_dead_letter("site", dead[0].id).is_err(), "dropped once");

    // The receiver would take it now, but that version was dropped: not queued again.
    m.on("PUT", "/hook/secutix-2", [Reply::status(204)]);
    let again = plan(&outbox, &["site"], &Arc::default());
    assert_eq!(
        (again.targets["site"].dropped, again.targets["site"].operations.len()),
        (1, 0)
    );
    drain(&outbox, site.clone(), Duration::ZERO).await;
    assert_eq!(m.requests_to("/hook/secutix-2").len(), 1);

    // A change of the entry is sent.
    let mut changed = three_products();
    changed["catalogData"]["seasons"][0]["products"][1]["event"]["performances"][0]["prices"][0]["amount"] =
        json!(30000);
    import_body(&store, &changed, false);
    let p = plan(&outbox, &["site"], &Arc::default());
    assert_eq!((p.targets["site"].create, p.targets["site"].dropped), (1, 0));
    assert_eq!(drain(&outbox, site, Duration::ZERO).await.delivered, 1);
    assert_eq!(m.requests_to("/hook/secutix-2").len(), 2);
}
