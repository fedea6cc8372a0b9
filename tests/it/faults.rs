//! Fault injection (DESIGN §4, invariants 1, 3, 7, 8), loopback only.
//!
//! - **kill -9 during an import** (real binary, real time): the daemon imports a catalogue of a few MB
//!   that the mock SecuTix streams in pieces; each seed picks the kill point: while the body is on its way
//!   (the mock stops after a seed-chosen byte and the test kills at that exact point), or a seed-chosen
//!   moment of the parse, the new generation's writing, the switch or the report (a fraction of the time
//!   the same import took unharmed). After the restart the store holds the old catalogue or the new one,
//!   product by product, never a mix; the history records the interrupted import; a later import completes.
//! - **kill -9 during a push** (real binary, real time): a webhook receiver on raw TCP answers the first
//!   K requests, then hangs or hangs up (before or after applying the request) on the next ones; the test
//!   kills the daemon at the seed's point (an acknowledgement just answered, requests in flight), restarts
//!   it with `run --once` and checks that the receiver holds every entry at its latest content hash, and
//!   that every re-delivery repeated an earlier request exactly (same `Idempotency-Key`, same body).
//! - **CMS down for three days** (in process, the daemon's `App` and `run` on paused tokio time, the only
//!   way to let days pass in a test): unreachable, every entry arrives exactly once when it is back, no
//!   attempt used up; answering 503, attempts stop at `max_attempts`, the dead letters are replayed through
//!   the control API and then delivered exactly once.
//! - **SecuTix answering garbage** to the running daemon (real binary): an HTML page, truncated JSON,
//!   wrong types, a SOAP fault, an empty 200. The catalogue in force and the CMS stay as they were; `status`
//!   (CLI and `/status`) shows the error, naming the call and what to do.
//! - **SecuTix hanging mid-answer** (real binary): `status` shows the import running while it hangs, then
//!   `secutix.request_timeout` ends the call and `catalogue.deadline` the run; nothing changes.
//!
//! Seeds: `FAULT_SEEDS=1,2,3` replays chosen seeds, `FAULT_SEED_COUNT=50` runs more. A failing seed is
//! printed with its kill point. The tests run one at a time (`serial`): the kill points after the body
//! are a share of a duration measured at the start, which other tests running alongside would distort.

use crate::common;
use crate::common::binary;
use crate::common::secutix_mock;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::binary::{Site, cli, exit_of, log, ready, start, text};
use crate::common::secutix_mock::{MockSecutix, shifted};
use futures_util::FutureExt;
use secutix_sync::fakes::testkit::Reply;
use secutix_sync::store::{ImportOutcome, Store};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------
// Seeds

/// The seeds to run: `FAULT_SEEDS` (comma-separated), else `FAULT_SEED_COUNT` seeds from 1, else `default`.
fn seeds(default: u64) -> Vec<u64> {
    if let Ok(list) = std::env::var("FAULT_SEEDS") {
        return list.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    let n = std::env::var("FAULT_SEED_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// splitmix64: a seed gives the same kill points on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `run(seed)` for every seed, one after the other; a failure names its seed and the description
/// the run gave of its kill point before failing.
async fn for_each_seed<F, Fut>(name: &str, seeds: Vec<u64>, run: F)
where
    F: Fn(u64, Arc<std::sync::Mutex<String>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for seed in seeds {
        let point = Arc::new(std::sync::Mutex::new(String::new()));
        let outcome = std::panic::AssertUnwindSafe(run(seed, point.clone()))
            .catch_unwind()
            .await;
        let point = point.lock().map(|p| p.clone()).unwrap_or_default();
        match outcome {
            Ok(()) => eprintln!("{name}: seed {seed} ok ({point})"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{name}: seed {seed} failed ({point}); replay with FAULT_SEEDS={seed}\n{msg}");
            }
        }
    }
}

fn describe(point: &std::sync::Mutex<String>, what: String) {
    if let Ok(mut p) = point.lock() {
        *p = what;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sites and catalogues

/// The base of the catalogues: performances are ten days after it (whole seconds, fixed for the run).
fn catalogue_base() -> chrono::DateTime<chrono::Utc> {
    static BASE: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap_or_default())
}

/// The configuration of a site: the mock SecuTix, a control API on port 0, and `extra` (targets,
/// `[availability]`…).
fn configure(s: &Site, secutix: &str, extra: &str) {
    s.write_config(&format!(
        r#"[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
request_timeout = "20s"
calls_per_minute = 60000
[catalogue]
min_interval = "0s"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
[daemon]
time_zone = "Europe/Paris"
catalogue_schedule = "30 5 * * *"
shutdown_grace = "10s"
{extra}
"#,
        store = s.store.display()
    ));
}

/// A catalogue of `ids` titled `"{version} {id}"`, two performances each and a longer description, so
/// that a few thousand products make a few MB.
fn catalogue(version: &str, ids: impl Iterator<Item = i64>) -> Value {
    let products = ids
        .map(|id| {
            let mut p = common::product(id, &format!("{version} {id}"), &[(id * 10, 10), (id * 10 + 1, 12)]);
            p["externalDescription"] = json!({"translations": [
                {"locale": "fr", "value": format!("<p>{version} {id}: {}</p>", "Une soirée au théâtre. ".repeat(20))},
                {"locale": "en", "value": format!("<p>{version} {id}: {}</p>", "An evening at the theatre. ".repeat(20))}]});
            p
        })
        .collect();
    shifted(
        common::catalog(vec![common::season(1, "S26", -30, products)]),
        catalogue_base(),
    )
}

/// What a reader sees of a catalogue: product id → (French title, tombstone).
type Seen = BTreeMap<i64, (String, bool)>;

fn seen_in_store(store: &Store) -> Seen {
    let Some(view) = store.catalog().expect("catalogue view") else {
        return Seen::new();
    };
    view.products()
        .map(|r| {
            let r = r.expect("product record");
            let title = r.product.name.get("fr", &[]).unwrap_or_default().to_owned();
            (r.product.id, (title, r.removed_at.is_some()))
        })
        .collect()
}

/// What a reader should see after importing `body` over `before`: its products, plus the products of
/// `before` it no longer lists, as tombstones.
fn seen_after(body: &Value, before: &Seen) -> Seen {
    let mut seen: Seen = before.iter().map(|(id, (t, _))| (*id, (t.clone(), true))).collect();
    for season in body["catalogData"]["seasons"].as_array().into_iter().flatten() {
        for p in season["products"].as_array().into_iter().flatten() {
            let title = p["externalName"]["translations"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            seen.insert(p["id"].as_i64().unwrap_or_default(), (title, false));
        }
    }
    seen
}

/// Names the first products where `got` differs from `want`.
fn differences(got: &Seen, want: &Seen) -> String {
    let ids: std::collections::BTreeSet<&i64> = got.keys().chain(want.keys()).collect();
    let diffs: Vec<String> = ids
        .into_iter()
        .filter(|id| got.get(id) != want.get(id))
        .take(5)
        .map(|id| format!("{id}: store {:?}, expected {:?}", got.get(id), want.get(id)))
        .collect();
    format!(
        "{} products differ, first: {diffs:?}",
        got.len().abs_diff(want.len()).max(diffs.len())
    )
}

/// A catalogue reply as the mock SecuTix streams it: 64 KiB pieces, 2 ms apart.
fn streamed(body: &bytes::Bytes, sent: &Arc<tokio::sync::Notify>) -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.clone())
        .chunked(64 * 1024, Duration::from_millis(2))
        .notify_sent(sent.clone())
}

// ---------------------------------------------------------------------------------------------------------
// 1. kill -9 during an import

/// Products of the old catalogue (A) and of the new one (B): B changes every title, drops the first
/// tenth of A's products and adds as many, so that a mix of the two is visible product by product.
const PRODUCTS: i64 = 1500;

/// Copies a folder (a store at rest) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for e in std::fs::read_dir(from).expect("read folder").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// `secutix-sync import` on `s` while the mock streams `body`; returns how long the import went on after
/// the body was sent (parse, new generation, switch, report, exit).
async fn timed_import(s: &Site, secutix: &MockSecutix, body: &bytes::Bytes) -> Duration {
    let sent = Arc::new(tokio::sync::Notify::new());
    secutix.set_catalogue_reply(Some(streamed(body, &sent)));
    let import = tokio::spawn(binary::command(&s.config).arg("import").output());
    sent.notified().await;
    let body_sent = Instant::now();
    let out = import.await.expect("join").expect("import");
    assert!(
        out.status.success(),
        "import: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    body_sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial_test::serial]
async fn kill_9_during_an_import_leaves_the_old_catalogue_or_the_new_one_never_a_mix() {
    let a = catalogue("A", 100_000..100_000 + PRODUCTS);
    let b = catalogue("B", 100_000 + PRODUCTS / 10..100_000 + PRODUCTS + PRODUCTS / 10);
    let a_bytes = bytes::Bytes::from(a.to_string());
    let b_bytes = bytes::Bytes::from(b.to_string());
    let seen_a = seen_after(&a, &Seen::new());
    let seen_b = seen_after(&b, &seen_a);

    // Once: a store holding A, to start every seed from; and how long importing B over A takes unharmed,
    // the range of the kill points after the body.
    let secutix = MockSecutix::start(a.clone(), secutix_sync::clock::system()).await;
    let calibration = Site::new();
    configure(&calibration, &secutix.uri(), "[availability]\nenabled = false");
    timed_import(&calibration, &secutix, &a_bytes).await;
    let with_a = tempfile::tempdir().expect("tempdir");
    copy_dir(&calibration.store, with_a.path());
    secutix.set_catalogue(b.clone());
    let processing = timed_import(&calibration, &secutix, &b_bytes).await;

    let shared = Arc::new((secutix, with_a, b_bytes, seen_a, seen_b));
    for_each_seed("kill during import", seeds(6), |seed, point| {
        let shared = shared.clone();
        async move {
            let (secutix, with_a, b_bytes, seen_a, seen_b) = &*shared;
            let mut rng = Rng::new(seed);
            let s = Site::new();
            configure(&s, &secutix.uri(), "[availability]\nenabled = false");
            copy_dir(with_a.path(), &s.store);

            // Importing B through the daemon, killed at the seed's point.
            let sent = Arc::new(tokio::sync::Notify::new());
            // Seeds take turns: in the body, early in the processing, around the switch.
            let (reply, after_body) = match seed % 3 {
                0 => {
                    let at = rng.below(b_bytes.len() as u64) as usize;
                    describe(
                        &point,
                        format!("kill after {at} of {} bytes of the body", b_bytes.len()),
                    );
                    (streamed(b_bytes, &sent).stall_after(at), Duration::ZERO)
                }
                turn => {
                    let share = if turn == 1 {
                        rng.unit() * 0.8
                    } else {
                        0.8 + rng.unit() * 0.45
                    };
                    let wait = processing.mul_f64(share);
                    describe(
                        &point,
                        format!("kill {wait:?} after the body was sent (the import takes {processing:?})"),
                    );
                    (streamed(b_bytes, &sent), wait)
                }
            };
            secutix.set_catalogue_reply(Some(reply));
            let mut daemon = start(&s);
            let (base, token) = ready(&s).await;
            let r = reqwest::Client::new()
                .post(format!("{base}/resync"))
                .bearer_auth(&token)
                .json(&json!({"scope": "catalogue"}))
                .send()
                .await
                .expect("resync");
            // 409: the catch-up import at start is this import already.
            assert!(
                matches!(r.status().as_u16(), 202 | 409),
                "{}",
                r.text().await.unwrap_or_default()
            );
            sent.notified().await;
            tokio::time::sleep(after_body).await;
            daemon.start_kill().expect("kill -9");
            exit_of(&s, &mut daemon).await;

            // After the restart: one catalogue or the other, whole; the history says what happened.
            let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen");
            let seen = seen_in_store(&store);
            let switched = if seen == *seen_a {
                false
            } else if seen == *seen_b {
                true
            } else {
                panic!(
                    "a mix: against the old catalogue {}; against the new one {}",
                    differences(&seen, seen_a),
                    differences(&seen, seen_b)
                );
            };
            let generation = store.generation().expect("generation");
            assert_eq!(generation, Some(if switched { 2 } else { 1 }));
            let leftovers: Vec<String> = store
                .db()
                .tree_names()
                .into_iter()
                .map(|n| String::from_utf8_lossy(&n).into_owned())
                .filter(|n| n.starts_with("cat.") && !n.starts_with(&format!("cat.{}.", generation.unwrap_or(0))))
                .collect();
            assert!(leftovers.is_empty(), "partial generation trees left: {leftovers:?}");
            let history = store.import_history(10).expect("history");
            let rebuilt = history
                .first()
                .is_some_and(|r| r.counts.added == 0 && r.counts.changed == 0);
            let was = point.lock().map(|p| p.clone()).unwrap_or_default();
            describe(
                &point,
                format!(
                    "{was}: {}",
                    match (switched, rebuilt) {
                        (false, _) => "the old catalogue in force",
                        (true, true) => "the new catalogue in force, its report rebuilt at the restart",
                        (true, false) => "the new catalogue in force, its report written",
                    }
                ),
            );
            let summary: Vec<(u64, ImportOutcome, Option<u64>)> =
                history.iter().map(|r| (r.id, r.outcome, r.generation)).collect();
            let killed = if switched {
                ImportOutcome::Success
            } else {
                ImportOutcome::Failed
            };
            assert_eq!(
                summary,
                vec![(2, killed, generation), (1, ImportOutcome::Success, Some(1))],
                "history: {history:#?}"
            );
            if !switched {
                let error = history[0].error.as_deref().unwrap_or_default();
                assert!(
                    error.contains("import #2 was interrupted") && error.contains("previous catalogue stayed in force"),
                    "{error}"
                );
            }
            drop(store);
            // `status` without a daemon (the killed one left its control address behind) reads the store.
            let out = cli(&s, &["status"]).await;
            let stdout = text(&out.stdout);
            assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
            assert!(stdout.contains("no daemon running"), "{stdout}");
            if !switched {
                assert!(
                    stdout.contains("last FAILED") && stdout.contains("import #2 was interrupted"),
                    "{stdout}"
                );
            }

            // A later import completes, and the new catalogue is in force.
            secutix.set_catalogue_reply(None);
            let out = cli(&s, &["import"]).await;
            assert!(
                out.status.success(),
                "{}\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr),
                log(&s)
            );
            let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen");
            let seen = seen_in_store(&store);
            assert!(seen == *seen_b, "after the next import: {}", differences(&seen, seen_b));
            let last = &store.import_history(1).expect("history")[0];
            let expected = if switched {
                ImportOutcome::Unchanged
            } else {
                ImportOutcome::Success
            };
            assert_eq!(
                (last.id, last.outcome, last.generation),
                (3, expected, Some(2)),
                "{last:#?}"
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------------------
// 2. kill -9 during a push

/// What the receiver does with a request once its first `healthy` requests were answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Applies it, then never answers: the answer is lost on the way back.
    ApplyThenHang,
    /// Hangs before applying it.
    Hang,
    /// Applies it, then closes the connection without answering.
    ApplyThenClose,
    /// Reads half of the body, then closes the connection.
    CloseMidBody,
}

/// A request the receiver read in full.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    external_id: String,
    key: String,
    body: Vec<u8>,
    /// Answered 200.
    answered: bool,
}

#[derive(Debug, Default)]
struct CmsState {
    /// Every request read in full, in order.
    requests: Vec<Received>,
    /// What the CMS holds: external id → (idempotency key, body) of the last request it applied.
    applied: BTreeMap<String, (String, Vec<u8>)>,
    /// Requests answered normally before the fault applies (`usize::MAX`: no fault).
    healthy: usize,
    fault: Option<Fault>,
}

/// Counters the test waits on: (requests answered 200, requests faulted).
type Progress = (usize, usize);

/// A webhook receiver (`PUT /hooks/{id}`) on raw TCP, HTTP/1.1 with keep-alive, that can hang or hang up
/// in the middle of a request, which a handler of an HTTP framework cannot do.
struct RawCms {
    addr: std::net::SocketAddr,
    state: Arc<std::sync::Mutex<CmsState>>,
    progress: tokio::sync::watch::Receiver<Progress>,
}

impl RawCms {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(std::sync::Mutex::new(CmsState {
            healthy: usize::MAX,
            ..CmsState::default()
        }));
        let (tx, progress) = tokio::sync::watch::channel((0, 0));
        let tx = Arc::new(tx);
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(socket, st.clone(), tx.clone()));
            }
        });
        Self { addr, state, progress }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// From now on: answer `healthy` more requests, then apply `fault` to every other one.
    fn script(&self, healthy: usize, fault: Fault) {
        let mut st = self.state.lock().expect("cms");
        let answered = self.progress.borrow().0;
        st.healthy = answered + healthy;
        st.fault = Some(fault);
    }

    /// Answers every request from now on.
    fn heal(&self) {
        let mut st = self.state.lock().expect("cms");
        st.healthy = usize::MAX;
        st.fault = None;
    }

    /// Waits (at most a minute) until `done` holds for the counters.
    async fn wait_for(&self, what: &str, done: impl FnMut(&Progress) -> bool) {
        let mut rx = self.progress.clone();
        match tokio::time::timeout(binary::DEADLINE, rx.wait_for(done)).await {
            Ok(Ok(_)) => {}
            _ => panic!("the receiver never saw {what}; it saw {:?}", *self.progress.borrow()),
        }
    }
}

async fn serve_connection(
    socket: tokio::net::TcpStream,
    state: Arc<std::sync::Mutex<CmsState>>,
    progress: Arc<tokio::sync::watch::Sender<Progress>>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::io::BufReader::new(socket);
    loop {
        // The head: request line and headers.
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match conn.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let mut parts = head.first().map(|l| l.split(' ')).into_iter().flatten();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let header = |name: &str| {
            head.iter().skip(1).find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let key = header("idempotency-key").unwrap_or_default();
        let fault = {
            let st = state.lock().expect("cms");
            (progress.borrow().0 >= st.healthy).then_some(st.fault).flatten()
        };
        let faulted = || progress.send_modify(|p| p.1 += 1);
        if fault == Some(Fault::CloseMidBody) {
            let mut half = vec![0u8; length / 2];
            let _ = conn.read_exact(&mut half).await;
            faulted();
            return;
        }
        let mut body = vec![0u8; length];
        if conn.read_exact(&mut body).await.is_err() {
            return;
        }
        let external_id = path.trim_start_matches("/hooks/").to_owned();
        let index = {
            let mut st = state.lock().expect("cms");
            st.requests.push(Received {
                method: method.clone(),
                external_id: external_id.clone(),
                key: key.clone(),
                body: body.clone(),
                answered: false,
            });
            if fault != Some(Fault::Hang) {
                match method.as_str() {
                    "DELETE" => {
                        st.applied.remove(&external_id);
                    }
                    _ => {
                        st.applied.insert(external_id, (key, body));
                    }
                }
            }
            st.requests.len() - 1
        };
        match fault {
            None => {
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if conn.get_mut().write_all(ok).await.is_err() || conn.get_mut().flush().await.is_err() {
                    return;
                }
                state.lock().expect("cms").requests[index].answered = true;
                progress.send_modify(|p| p.0 += 1);
            }
            Some(Fault::ApplyThenClose) => {
                faulted();
                return;
            }
            Some(_) => {
                // Hang until the client goes away.
                faulted();
                let mut sink = Vec::new();
                let _ = conn.read_to_end(&mut sink).await;
                return;
            }
        }
    }
}

/// Products of the push test.
const PUSHED: i64 = 40;

fn push_site(secutix: &MockSecutix, cms: &RawCms) -> Site {
    let s = Site::new();
    configure(
        &s,
        &secutix.uri(),
        &format!(
            r#"[[targets]]
name = "website"
kind = "webhook"
concurrency = 4
rate_per_second = 1000
request_timeout = "30s"
max_attempts = 1000
backoff_initial = "50ms"
backoff_max = "200ms"
[targets.webhook]
url = "{}"
"#,
            cms.url()
        ),
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial_test::serial]
async fn kill_9_during_a_push_loses_nothing_and_re_delivers_only_identical_requests() {
    use secutix_sync::targets::webhook::idempotency_key;
    let body = catalogue("P", 2000..2000 + PUSHED);
    for_each_seed("kill during push", seeds(8), |seed, point| {
        let body = body.clone();
        async move {
            let mut rng = Rng::new(seed);
            let secutix = MockSecutix::start(body, secutix_sync::clock::system()).await;
            let cms = RawCms::start().await;
            let s = push_site(&secutix, &cms);
            let healthy = rng.below(PUSHED as u64 - 4) as usize;
            let fault = [
                Fault::ApplyThenHang,
                Fault::Hang,
                Fault::ApplyThenClose,
                Fault::CloseMidBody,
            ][(seed % 4) as usize];
            let in_flight = 1 + rng.below(4) as usize;
            let right_after_an_answer = healthy > 0 && rng.below(2) == 0;
            cms.script(healthy, fault);
            let mut daemon = start(&s);
            if right_after_an_answer {
                describe(&point, format!("kill right after answer {healthy}, then {fault:?}"));
                cms.wait_for(&format!("{healthy} answers"), |p| p.0 >= healthy).await;
            } else {
                describe(
                    &point,
                    format!("kill after {healthy} answers and {in_flight} requests {fault:?}"),
                );
                cms.wait_for(&format!("{in_flight} faulted requests"), |p| p.1 >= in_flight)
                    .await;
            }
            daemon.start_kill().expect("kill -9");
            exit_of(&s, &mut daemon).await;

            // Restart, one cycle: whatever is pending is delivered.
            cms.heal();
            let out = cli(&s, &["run", "--once", "--push-wait", "30s"]).await;
            assert!(
                out.status.success(),
                "run --once: {}\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr),
                log(&s)
            );

            let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen");
            let outbox = secutix_sync::push::Outbox::open(&store).expect("outbox");
            let entries = outbox.entries().expect("entries");
            assert_eq!(entries.len(), PUSHED as usize);
            assert_eq!(outbox.depth("website").expect("depth"), 0, "nothing pending");
            assert!(outbox.dead_letters(&["website".into()]).expect("dead").is_empty());
            let st = cms.state.lock().expect("cms");
            assert_eq!(
                st.applied.len(),
                entries.len(),
                "every entry reached the CMS: {:?}",
                st.applied.keys()
            );
            for e in &entries {
                let id = &e.entry.external_id;
                let (key, body) = st
                    .applied
                    .get(id)
                    .unwrap_or_else(|| panic!("{id} never reached the CMS"));
                assert_eq!(
                    *key,
                    idempotency_key(id, &e.content_hash),
                    "{id}: the CMS holds another version"
                );
                let held: Value = serde_json::from_slice(body).expect("json body");
                assert_eq!(
                    held,
                    serde_json::to_value(&e.entry).expect("entry"),
                    "{id}: the CMS holds another body"
                );
                let ack = outbox.acked("website", id).expect("ack").expect("acknowledged");
                assert_eq!(ack.content_hash, e.content_hash, "{id}");
            }
            // Re-deliveries repeat a request exactly; no entry was sent in two versions.
            let mut by_key: BTreeMap<&str, &Received> = BTreeMap::new();
            let mut keys_of: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
            for r in &st.requests {
                assert_eq!(r.method, "PUT");
                keys_of.entry(&r.external_id).or_default().insert(&r.key);
                if let Some(first) = by_key.insert(&r.key, r) {
                    assert_eq!(first.external_id, r.external_id);
                    assert!(
                        first.body == r.body,
                        "{}: a re-delivery with another body",
                        r.external_id
                    );
                }
            }
            assert!(
                keys_of.values().all(|k| k.len() == 1),
                "one version per entry: {keys_of:?}"
            );
            let mut answered = std::collections::BTreeSet::new();
            let mut answered_then_resent = std::collections::BTreeSet::new();
            for r in &st.requests {
                if answered.contains(&r.external_id) {
                    answered_then_resent.insert(&r.external_id);
                }
                if r.answered {
                    answered.insert(&r.external_id);
                }
            }
            let was = point.lock().map(|p| p.clone()).unwrap_or_default();
            describe(
                &point,
                format!(
                    "{was}: {} requests for {} entries; {} answered ones sent again (acknowledgement lost)",
                    st.requests.len(),
                    entries.len(),
                    answered_then_resent.len()
                ),
            );
            secutix.http.stop();
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------------------
// 4. SecuTix answering garbage

/// A mock CMS (webhook receiver) on [`secutix_sync::fakes::testkit::MockHttp`] accepting every PUT under /hooks.
async fn accepting_cms() -> secutix_sync::fakes::testkit::MockHttp {
    let m = secutix_sync::fakes::testkit::MockHttp::start().await;
    m.handle("PUT", "/hooks/", |_| Some(Reply::status(200)));
    m
}

/// The webhook target for `cms`.
fn webhook_target(cms: &str) -> String {
    format!(
        "[[targets]]\nname = \"website\"\nkind = \"webhook\"\nrate_per_second = 1000\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
         [targets.webhook]\nurl = \"{cms}/hooks\"\n"
    )
}

/// Waits until the daemon's catalogue job finished `run` and its outbox is empty; returns `/status`.
async fn settled(s: &Site, base: &str, token: &str, run: u64) -> Value {
    let http = reqwest::Client::new();
    binary::eventually(s, &format!("catalogue run {run} and an empty outbox"), || async {
        let st: Value = http
            .get(format!("{base}/status"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let job = &st["jobs"]["catalogue"];
        let done = job["running"].is_null() && job["last"]["id"].as_u64() >= Some(run);
        (done && st["targets"]["website"]["outbox"] == 0).then_some(st)
    })
    .await
}

/// Feeds each garbage answer to the running daemon's import and checks what an operator sees.
async fn garbage_is_refused(
    s: &Site,
    cms: &secutix_sync::fakes::testkit::MockHttp,
    set_reply: impl Fn(Option<Reply>),
    cases: Vec<(&str, Reply, &str)>,
) {
    let mut daemon = start(s);
    let (base, token) = ready(s).await;
    let before = settled(s, &base, &token, 1).await;
    let generation = before["catalogue"]["generation"].clone();
    assert_eq!(generation, 1, "{before:#}");
    let sent = cms.requests().len();
    assert!(sent > 0, "the good catalogue reached the CMS");
    for (run, (name, reply, fragment)) in (2u64..).zip(cases) {
        set_reply(Some(reply));
        let out = cli(s, &["resync", "--catalogue", "--wait", "--timeout", "30s"]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {}\n{stderr}", text(&out.stdout));
        assert!(stderr.contains("resync failed: "), "{name}: {stderr}");
        let status = settled(s, &base, &token, run).await;
        let error = status["jobs"]["catalogue"]["last"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(status["jobs"]["catalogue"]["last"]["ok"], false, "{name}: {status:#}");
        for (what, text) in [("/status", error.as_str()), ("resync --wait", stderr.as_str())] {
            assert!(
                text.contains("getCatalogDetailed"),
                "{name}: {what} names the call: {text}"
            );
            assert!(text.contains(fragment), "{name}: {what} says what went wrong: {text}");
            assert!(
                text.contains("the catalogue in force is unchanged") && text.contains("the daemon retries at"),
                "{name}: {what} says what happens and what to do: {text}"
            );
        }
        let last_import = &status["catalogue"]["last_import"];
        assert_eq!(last_import["outcome"], "failed", "{name}: {last_import:#}");
        assert_eq!(
            status["catalogue"]["generation"], generation,
            "{name}: the catalogue in force stays"
        );
        let out = cli(s, &["status"]).await;
        let stdout = text(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("  catalogue "))
            .unwrap_or_default();
        assert!(
            line.contains("last FAILED") && line.contains(&error),
            "{name}: `status`: {stdout}"
        );
        assert!(stdout.contains("(generation 1)"), "{name}: `status`: {stdout}");
        assert_eq!(cms.requests().len(), sent, "{name}: the CMS saw no change");
    }
    set_reply(None);
    binary::kill(&daemon, "TERM");
    assert_eq!(exit_of(s, &mut daemon).await.code(), Some(0), "{}", log(s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial_test::serial]
async fn secutix_answering_garbage_keeps_the_catalogue_and_status_says_what_failed() {
    let good = catalogue("G", 3000..3005);
    let secutix = MockSecutix::start(good.clone(), secutix_sync::clock::system()).await;
    let cms = accepting_cms().await;
    let s = Site::new();
    configure(&s, &secutix.uri(), &webhook_target(&cms.uri()));
    let body = good.to_string();
    let mut wrong_type = good.clone();
    wrong_type["catalogData"]["seasons"][0]["products"][2]["event"]["performances"][0]["start"] = json!({"at": "soon"});
    garbage_is_refused(
        &s,
        &cms,
        |r| secutix.set_catalogue_reply(r),
        vec![
            (
                "an HTML error page",
                Reply::status(200)
                    .header("content-type", "text/html")
                    .body("<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"),
                "an HTML page",
            ),
            (
                "truncated JSON",
                Reply::json(&good).body(body.as_bytes()[..body.len() / 2].to_vec()),
                "malformed response",
            ),
            (
                "wrong types",
                Reply::json(&wrong_type),
                "catalogData.seasons[0].products[2]",
            ),
            ("a 200 with an empty body", Reply::status(200), "an empty body"),
        ],
    )
    .await;
    let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen");
    assert_eq!(seen_in_store(&store), seen_after(&good, &Seen::new()));
    let outcomes: Vec<ImportOutcome> = store
        .import_history(10)
        .expect("history")
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [[ImportOutcome::Failed; 4].as_slice(), &[ImportOutcome::Success]].concat()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial_test::serial]
async fn a_soap_fault_keeps_the_catalogue_and_status_says_what_failed() {
    let good = catalogue("G", 3000..3003);
    let secutix = MockSecutix::start(good.clone(), secutix_sync::clock::system()).await;
    // SOAP: getPOSConfig and getCatalogDetailed in JAX-WS shape, or the scripted fault.
    let fault: Arc<std::sync::Mutex<Option<Reply>>> = Arc::default();
    {
        let fault = fault.clone();
        let good = good.clone();
        secutix.http.handle("POST", "/tnseb/external-remoting/", move |req| {
            let body = req.text();
            if body.contains("getPOSConfig") {
                return Some(Reply::xml(common::soap_response("getPOSConfig", &common::pos_config())));
            }
            if body.contains("getCatalogDetailed") {
                let scripted = fault.lock().expect("fault").clone();
                return Some(
                    scripted.unwrap_or_else(|| Reply::xml(common::soap_response("getCatalogDetailed", &good))),
                );
            }
            None
        });
    }
    let cms = accepting_cms().await;
    let s = Site::new();
    configure(
        &s,
        &secutix.uri(),
        &format!("[availability]\nenabled = false\n{}", webhook_target(&cms.uri())),
    );
    let config = std::fs::read_to_string(&s.config).expect("config");
    s.write_config(&config.replace(
        "request_timeout = \"20s\"",
        "request_timeout = \"20s\"\ntransport = \"soap\"",
    ));
    let soap_fault = |status: u16| {
        Reply::status(status).header("content-type", "text/xml; charset=utf-8").body(
            r#"<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>S:Server</faultcode><faultstring>java.lang.IllegalStateException: catalogue cache not ready</faultstring></S:Fault></S:Body></S:Envelope>"#,
        )
    };
    garbage_is_refused(
        &s,
        &cms,
        |r| *fault.lock().expect("fault") = r,
        vec![
            ("a SOAP fault (HTTP 500)", soap_fault(500), "catalogue cache not ready"),
            ("a SOAP fault (HTTP 200)", soap_fault(200), "catalogue cache not ready"),
        ],
    )
    .await;
    let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen");
    assert_eq!(seen_in_store(&store), seen_after(&good, &Seen::new()));
}

// ---------------------------------------------------------------------------------------------------------
// 3. The CMS down for three days (in process, paused time)

const TOKEN: &str = "fault-suite-control-token-0123456789";

/// The daemon in this process (`App` + `daemon::run`) on paused tokio time, as `tests/daemon.rs` runs it.
struct InProcess {
    app: Arc<secutix_sync::daemon::App>,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), secutix_sync::daemon::DaemonError>>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts it against `secutix`, pushing to a webhook at `cms` with the default push settings (5 s
    /// first back-off, 30 min at most, 8 attempts); availability polling off.
    async fn start(secutix: &MockSecutix, cms: &str, clock: secutix_sync::clock::SharedClock) -> Self {
        use secutix_sync::config::{Config, Sources};
        let dir = tempfile::tempdir().expect("tempdir");
        let store_path = dir.path().join("store");
        let config_file = dir.path().join("config.toml");
        std::fs::write(
            &config_file,
            format!(
                r#"[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
[catalogue]
min_interval = "0s"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[daemon]
time_zone = "Europe/Paris"
[availability]
enabled = false
[[targets]]
name = "website"
kind = "webhook"
[targets.webhook]
url = "{cms}/hooks"
"#,
                secutix = secutix.uri(),
                store = store_path.display(),
            ),
        )
        .expect("write config");
        let sources = Sources {
            file: Some(config_file),
            env: Some(BTreeMap::new()),
            overrides: None,
        };
        let config: Config = Config::load(&sources).expect("config").config;
        std::fs::create_dir_all(&store_path).expect("store dir");
        let store = Store::open(&store_path, 16, clock).expect("store");
        let app = secutix_sync::daemon::App::build(config, sources, store).expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(secutix_sync::daemon::run(
            app.clone(),
            listener,
            secutix_sync::control::router(app.clone()),
            async move {
                let _ = stop_rx.await;
            },
            futures_util::stream::pending(),
        ));
        Self {
            app,
            base,
            stop: Some(stop_tx),
            task: Some(task),
            _dir: dir,
        }
    }

    fn pending(&self) -> Vec<secutix_sync::push::OutboxItem> {
        self.app.outbox.pending("website").expect("pending")
    }

    fn dead(&self) -> usize {
        self.app.outbox.dead_letters(&["website".into()]).expect("dead").len()
    }

    /// Waits, on tokio time, until `done` holds, for at most `within` of it.
    async fn until(&self, what: &str, within: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen within {within:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task
            .take()
            .expect("task")
            .await
            .expect("join")
            .expect("clean shutdown");
    }
}

/// `requests` (PUTs under `/hooks/`, all answered 2xx) applied every entry of the catalogue in force
/// exactly once, at its current hash.
fn delivered_once(app: &secutix_sync::daemon::App, requests: &[secutix_sync::fakes::testkit::Recorded]) {
    use secutix_sync::targets::webhook::idempotency_key;
    let entries = app.outbox.entries().expect("entries");
    let mut applied: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in requests {
        let id = r.uri.trim_start_matches("/hooks/").to_owned();
        applied
            .entry(id)
            .or_default()
            .push(r.header("idempotency-key").unwrap_or_default());
    }
    assert_eq!(applied.len(), entries.len(), "{applied:?}");
    for e in &entries {
        let id = &e.entry.external_id;
        assert_eq!(
            applied.get(id),
            Some(&vec![idempotency_key(id, &e.content_hash)]),
            "{id}: applied exactly once, at its current hash"
        );
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(start_paused = true)]
#[serial_test::serial]
async fn a_cms_unreachable_for_three_days_gets_everything_once_when_back_without_using_up_attempts() {
    let clock: secutix_sync::clock::SharedClock = Arc::new(secutix_sync::clock::TokioClock::starting_at(common::t0()));
    let products: Vec<(i64, String)> = (1000..1020).map(|i| (i, format!("Spectacle {i}"))).collect();
    let refs: Vec<(i64, &str)> = products.iter().map(|(i, t)| (*i, t.as_str())).collect();
    let secutix = MockSecutix::start(secutix_mock::catalogue_of(&refs), clock.clone()).await;
    // The CMS's port is bound but not listening: every connection is refused, until it listens.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let cms_url = format!("http://{}", socket.local_addr().expect("addr"));
    let d = InProcess::start(&secutix, &cms_url, clock.clone()).await;
    d.until("the first plan", Duration::from_secs(600), |d| {
        d.pending().len() == refs.len()
    })
    .await;

    tokio::time::sleep(3 * DAY).await;
    let pending = d.pending();
    assert_eq!(pending.len(), refs.len(), "nothing dropped in three days");
    assert_eq!(d.dead(), 0, "an unreachable CMS kills no operation");
    for item in &pending {
        assert_eq!(item.attempts, 0, "{}: the outage used no attempt", item.external_id);
        let error = item.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("cannot connect"), "{error}");
        assert!(
            item.next_attempt_at <= clock.now() + chrono::Duration::minutes(30),
            "{}: probed at least every backoff_max (30 min)",
            item.external_id
        );
    }

    // Back: the next probe gets through and everything follows.
    let back = tokio::time::Instant::now();
    let cms = secutix_sync::fakes::testkit::MockHttp::serve(socket.listen(64).expect("listen"));
    cms.handle("PUT", "/hooks/", |_| Some(Reply::status(200)));
    d.until("the outbox to drain", Duration::from_secs(3600), |d| {
        d.pending().is_empty()
    })
    .await;
    let requests = cms.requests();
    let first = requests.iter().map(|r| r.at).min().expect("a request");
    assert!(
        first - back <= Duration::from_secs(30 * 60),
        "probed again within backoff_max"
    );
    assert_eq!(requests.len(), refs.len(), "one request per entry, no duplicate");
    delivered_once(&d.app, &requests);
    assert_eq!(d.dead(), 0);
    d.stop().await;
}

#[tokio::test(start_paused = true)]
#[serial_test::serial]
async fn a_cms_answering_503_for_three_days_stops_at_max_attempts_and_dlq_replay_delivers_once() {
    let clock: secutix_sync::clock::SharedClock = Arc::new(secutix_sync::clock::TokioClock::starting_at(common::t0()));
    let products: Vec<(i64, String)> = (1000..1010).map(|i| (i, format!("Spectacle {i}"))).collect();
    let refs: Vec<(i64, &str)> = products.iter().map(|(i, t)| (*i, t.as_str())).collect();
    let secutix = MockSecutix::start(secutix_mock::catalogue_of(&refs), clock.clone()).await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cms = secutix_sync::fakes::testkit::MockHttp::start().await;
    {
        let down = down.clone();
        cms.handle("PUT", "/hooks/", move |_| {
            Some(if down.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::status(503).body("<html><body>Maintenance</body></html>")
            } else {
                Reply::status(200)
            })
        });
    }
    let d = InProcess::start(&secutix, &cms.uri(), clock.clone()).await;
    tokio::time::sleep(3 * DAY).await;

    // Attempts ran out (8 each, with back-off), then nothing more was sent for days.
    assert!(d.pending().is_empty(), "{:?}", d.pending());
    assert_eq!(d.dead(), refs.len());
    let mut per_entry: BTreeMap<String, usize> = BTreeMap::new();
    for r in cms.requests() {
        *per_entry
            .entry(r.uri.trim_start_matches("/hooks/").to_owned())
            .or_default() += 1;
    }
    assert!(
        per_entry.values().all(|n| *n == 8),
        "max_attempts = 8 each: {per_entry:?}"
    );
    let last = cms.requests().iter().map(|r| r.at).max().expect("requests");
    assert!(
        tokio::time::Instant::now() - last > 2 * DAY,
        "no request after the attempts ran out (the planner does not resend a dead version)"
    );
    let status: Value = reqwest::Client::new()
        .get(format!("{}/status", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["targets"]["website"]["dead_letters"], refs.len(), "{status:#}");

    // Back, and the operator replays the dead letters: each entry is delivered once.
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    cms.clear_requests();
    let r = reqwest::Client::new()
        .post(format!("{}/dlq/website/replay", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("replay");
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    d.until(
        "the replayed operations to be delivered",
        Duration::from_secs(600),
        |d| d.pending().is_empty() && d.dead() == 0,
    )
    .await;
    tokio::time::sleep(DAY).await;
    let requests = cms.requests();
    assert_eq!(requests.len(), refs.len(), "one request per entry after the replay");
    delivered_once(&d.app, &requests);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial_test::serial]
async fn a_secutix_that_stalls_mid_answer_is_timed_out_and_status_shows_the_live_run() {
    let good = catalogue("G", 3000..3020);
    let body = bytes::Bytes::from(good.to_string());
    let secutix = MockSecutix::start(good.clone(), secutix_sync::clock::system()).await;
    let cms = accepting_cms().await;
    let s = Site::new();
    configure(
        &s,
        &secutix.uri(),
        &format!("[availability]\nenabled = false\n{}", webhook_target(&cms.uri())),
    );
    let config = std::fs::read_to_string(&s.config).expect("config");
    s.write_config(
        &config
            .replace("request_timeout = \"20s\"", "request_timeout = \"2s\"")
            .replace("min_interval = \"0s\"", "min_interval = \"0s\"\ndeadline = \"4s\""),
    );
    let mut daemon = start(&s);
    let (base, token) = ready(&s).await;
    settled(&s, &base, &token, 1).await;
    let sent = cms.requests().len();

    let stalled = Arc::new(tokio::sync::Notify::new());
    secutix.set_catalogue_reply(Some(streamed(&body, &stalled).stall_after(body.len() / 2)));
    let out = cli(&s, &["resync", "--catalogue"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    stalled.notified().await;
    // While SecuTix hangs, the run is live in `status`.
    let out = cli(&s, &["status"]).await;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("catalogue    running (run 2"), "{stdout}");
    // Then secutix.request_timeout ends the call, and the run's deadline the retries.
    let status = settled(&s, &base, &token, 2).await;
    let error = status["jobs"]["catalogue"]["last"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("catalogService/getCatalogDetailed") && error.contains("secutix.request_timeout"),
        "{error}"
    );
    assert!(error.contains("the catalogue in force is unchanged"), "{error}");
    assert_eq!(status["catalogue"]["generation"], 1);
    assert_eq!(cms.requests().len(), sent, "the CMS saw no change");
    secutix.set_catalogue_reply(None);
    binary::kill(&daemon, "TERM");
    assert_eq!(exit_of(&s, &mut daemon).await.code(), Some(0), "{}", log(&s));
}
