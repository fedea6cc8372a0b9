//! End-to-end with the real binary: `secutix-sync run` against a mock SecuTix and a mock CMS (webhook
//! target) on loopback, driven through the operator CLI (`resync --wait`, `status`, `entries show`),
//! stopped with SIGTERM; SIGHUP reloads; `run --once`; `check`; one daemon per store; pass Culture offer
//! statuses in `status`.
//!
//! These tests run on real time (another process is involved): every wait polls with a bounded deadline.

use crate::common::binary;
use crate::common::passculture_fake;

use crate::common::binary::{DEADLINE, Site, cli, eventually, exit_of, kill, log, ready, start, text};
use crate::common::secutix_mock::{MockSecutix, catalogue_of, shifted};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::push::Outbox;
use secutix_sync::store::Store;
use serde_json::{Value, json};
use std::process::Stdio;

/// The base of the tests' catalogues: performances are ten days after it. Whole seconds, fixed for the
/// test run, so that one catalogue served twice is byte-identical.
fn catalogue_base() -> chrono::DateTime<chrono::Utc> {
    static BASE: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap_or_default())
}

/// A mock SecuTix serving `products`, with performances ten days from [`catalogue_base`].
async fn secutix(products: &[(i64, &str)]) -> MockSecutix {
    MockSecutix::start(
        shifted(catalogue_of(products), catalogue_base()),
        secutix_sync::clock::system(),
    )
    .await
}

/// A mock CMS accepting every PUT and HEAD under /hooks.
async fn cms() -> MockHttp {
    let m = MockHttp::start().await;
    m.handle("PUT", "/hooks/", |_| Some(Reply::status(200)));
    m.on("HEAD", "/hooks", [Reply::status(200)]);
    m
}

fn site(secutix: &str, cms: &str, cors: &str) -> Site {
    let s = Site::new();
    write_config(&s, secutix, cms, cors, "30 5 * * *");
    s
}

fn write_config(s: &Site, secutix: &str, cms: &str, cors: &str, schedule: &str) {
    let toml = format!(
        r#"[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
request_timeout = "20s"
[catalogue]
min_interval = "0s"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
cors_origins = ["{cors}"]
[daemon]
time_zone = "Europe/Paris"
catalogue_schedule = "{schedule}"
shutdown_grace = "10s"
[[targets]]
name = "website"
kind = "webhook"
backoff_initial = "1s"
backoff_max = "2s"
[targets.webhook]
url = "{cms}/hooks"
"#,
        store = s.store.display()
    );
    s.write_config(&toml);
}

fn puts(cms: &MockHttp, id: &str) -> usize {
    cms.requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.uri == format!("/hooks/{id}"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_syncs_resyncs_through_the_cli_and_stops_cleanly_on_sigterm() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre"), (1002, "Tartuffe")]).await;
    let cms = cms().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    let mut daemon = start(&s);
    let (base, token) = ready(&s).await;
    // The catch-up import at start (no import yet) reached the CMS.
    eventually(&s, "the first push", || async {
        (puts(&cms, "secutix-1000") == 1 && puts(&cms, "secutix-1002") == 1).then_some(())
    })
    .await;

    // One daemon per store.
    let second = cli(&s, &["run"]).await;
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("in use by another secutix-sync process"),
        "{}",
        text(&second.stderr)
    );

    // SecuTix changes: a new product, a new title. `resync --wait` imports, polls, pushes.
    secutix.set_catalogue(shifted(
        catalogue_of(&[
            (1000, "Hamlet (reprise)"),
            (1001, "Phèdre"),
            (1002, "Tartuffe"),
            (1003, "Le Cid"),
        ]),
        catalogue_base(),
    ));
    let out = cli(&s, &["resync", "--wait", "--timeout", "1m"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", text(&out.stderr), log(&s));
    assert!(stdout.contains("catalogue run 2 requested"), "{stdout}");
    assert!(
        stdout.contains("catalogue run 2: done: import #2: 4 products (added 1, changed 1"),
        "{stdout}"
    );
    assert!(stdout.contains("availability run"), "the chained poll: {stdout}");
    // The operations the runs queued are those the push delivered.
    let queued: u64 = stdout
        .lines()
        .filter_map(|l| {
            l.split(" operations queued for the targets")
                .next()
                .filter(|_| l.contains("queued"))
        })
        .filter_map(|head| head.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        stdout.contains(&format!("push: the outboxes are empty: {queued} operations delivered")),
        "{stdout}"
    );
    assert_eq!(puts(&cms, "secutix-1003"), 1, "the new product reached the CMS");
    assert_eq!(puts(&cms, "secutix-1000"), 2, "the changed one was sent again");
    assert_eq!(puts(&cms, "secutix-1001"), 1, "an unchanged one was not");
    let sent = cms
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.uri == "/hooks/secutix-1003")
        .expect("PUT");
    assert_eq!(sent.json()["title"]["fr"], "Le Cid");

    // Operators' views through the API.
    let out = cli(&s, &["status"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("daemon running"), "{stdout}");
    assert!(stdout.contains("catalogue: 4 products"), "{stdout}");
    assert!(
        stdout.contains("website (webhook): 0 pending, 0 dead letters, 4 acknowledged"),
        "{stdout}"
    );
    assert!(stdout.contains("SecuTix calls:"), "{stdout}");
    let out = cli(&s, &["entries", "show", "1003"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("secutix-1003 \"Le Cid\": published"), "{stdout}");
    assert!(stdout.contains("website: synced"), "{stdout}");
    let out = cli(&s, &["entries", "show", "4242"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no entry secutix-4242"));
    let out = cli(&s, &["resync", "--product", "1003"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("availability run"), "{}", text(&out.stdout));
    // `import` and `availability` hand their work to the daemon that holds the store.
    let out = cli(&s, &["availability"]).await;
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stderr).contains("handing this to it"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("availability run"), "{}", text(&out.stdout));
    let out = cli(&s, &["import"]).await;
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stderr).contains("as `secutix-sync resync --catalogue --wait` does"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("catalogue run 3"), "{}", text(&out.stdout));

    // The token protects the API; the public endpoint needs none.
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/status"))
            .send()
            .await
            .expect("status")
            .status(),
        401
    );
    let r = http
        .get(format!("{base}/status"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), 200);
    let public: Value = http
        .get(format!("{base}/public/availability"))
        .send()
        .await
        .expect("public")
        .json()
        .await
        .expect("json");
    assert_eq!(public["products"].as_array().map(Vec::len), Some(4));

    // SIGTERM: clean exit, store flushed, address file gone.
    eventually(&s, "the product resync to finish", || async {
        (puts(&cms, "secutix-1003") == 2).then_some(())
    })
    .await;
    kill(&daemon, "TERM");
    let status = exit_of(&s, &mut daemon).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log(&s));
    let l = log(&s);
    assert!(
        l.contains("SIGTERM received") && l.contains("stopped; store flushed"),
        "{l}"
    );
    assert!(!s.store.join(secutix_sync::daemon::ADDRESS_FILE).exists());

    // Without a daemon, status reads the store and says so.
    let out = cli(&s, &["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "a store read without a daemon is no news");
    assert!(text(&out.stdout).contains("no daemon running"), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("website (webhook): 0 pending"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&s, &["entries", "show", "secutix-1000", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["entry"]["title"]["fr"], "Hamlet (reprise)");
    let out = cli(&s, &["resync"]).await;
    assert_eq!(out.status.code(), Some(1), "resync needs a daemon");
    assert!(text(&out.stderr).contains("run --once"), "{}", text(&out.stderr));

    // The store is consistent: nothing pending, every entry acknowledged at its current hash.
    let store = Store::open(&s.store, 16, secutix_sync::clock::system()).expect("reopen the store");
    let outbox = Outbox::open(&store).expect("outbox");
    assert_eq!(outbox.depth("website").expect("depth"), 0);
    let entries = outbox.entries().expect("entries");
    assert_eq!(entries.len(), 4);
    for e in &entries {
        let ack = outbox
            .acked("website", &e.entry.external_id)
            .expect("ack")
            .expect("acknowledged");
        assert_eq!(ack.content_hash, e.content_hash, "{}", e.entry.external_id);
    }
    assert_eq!(
        store.import_history(10).expect("history").len(),
        3,
        "the catch-up import, the resync, the handed-over import"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_an_invalid_configuration_keeps_the_old_one() {
    let secutix = secutix(&[(1000, "Hamlet")]).await;
    let cms = cms().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    let mut daemon = start(&s);
    let (base, token) = ready(&s).await;
    let http = reqwest::Client::new();
    let allowed = |origin: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}/public/availability"))
                .header("Origin", origin)
                .send()
                .await
                .expect("public");
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or("").to_owned())
        }
    };
    assert_eq!(
        allowed("https://www.theatre.fr").await.as_deref(),
        Some("https://www.theatre.fr")
    );
    assert_eq!(allowed("https://new.theatre.fr").await, None);

    // An invalid file: refused, the old configuration stays.
    std::fs::write(&s.config, "[daemon]\ncatalogue_schedule = \"every morning\"\n").expect("write");
    kill(&daemon, "HUP");
    eventually(&s, "the refusal in the log", || async {
        log(&s).contains("configuration reload refused").then_some(())
    })
    .await;
    let l = log(&s);
    assert!(l.contains("daemon.catalogue_schedule"), "the log names the key: {l}");
    assert_eq!(
        allowed("https://www.theatre.fr").await.as_deref(),
        Some("https://www.theatre.fr")
    );
    let status: Value = http
        .get(format!("{base}/status"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["jobs"]["catalogue"]["schedule"], "30 5 * * *");

    // A valid file is applied.
    write_config(&s, &secutix.uri(), &cms.uri(), "https://new.theatre.fr", "0 6 * * *");
    kill(&daemon, "HUP");
    eventually(&s, "the new CORS origin", || async {
        (allowed("https://new.theatre.fr").await.as_deref() == Some("https://new.theatre.fr")).then_some(())
    })
    .await;
    assert_eq!(allowed("https://www.theatre.fr").await, None);
    kill(&daemon, "TERM");
    assert_eq!(exit_of(&s, &mut daemon).await.code(), Some(0), "{}", log(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_does_one_cycle_and_reports_failure_with_exit_1() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre")]).await;
    let cms = cms().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    let out = cli(&s, &["run", "--once"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("catalogue: import #1: 2 products"), "{stdout}");
    assert!(
        stdout.contains("push website: 2 operations to send: 2 delivered, 0 moved to dead letters, 0 still pending"),
        "{stdout}"
    );
    assert_eq!((puts(&cms, "secutix-1000"), puts(&cms, "secutix-1001")), (1, 1));

    // SecuTix refuses the credentials: exit 1, and the error says what to check.
    secutix.refuse_credentials(true);
    let out = cli(&s, &["run", "--once"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("failed: catalogue: SecuTix refused the credentials"),
        "{stderr}"
    );
    assert!(stderr.contains("secutix.secret_file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_tests_the_credentials_and_every_target() {
    let secutix = secutix(&[(1000, "Hamlet")]).await;
    let cms = cms().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    let out = cli(&s, &["check"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("OK   secutix: isCatalogServiceAlive answered"),
        "{stdout}"
    );
    assert!(stdout.contains("OK   target website (webhook)"), "{stdout}");
    assert_eq!(secutix.calls("isCatalogServiceAlive").len(), 1);

    secutix.refuse_credentials(true);
    cms.on("HEAD", "/hooks", [Reply::status(403)]);
    let out = cli(&s, &["check"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL secutix: SecuTix refused the credentials"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL target website (webhook)") && stdout.contains("HTTP 403"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_when_secutix_is_unreachable_and_what_to_do() {
    // A port nobody listens on: bind one, then close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let cms = cms().await;
    let s = site(&url, &cms.uri(), "https://www.theatre.fr");
    let out = cli(&s, &["check"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", text(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL secutix"))
        .unwrap_or_else(|| panic!("a secutix line: {stdout}"));
    assert!(line.contains("SecuTix is unreachable from this server"), "{line}");
    assert!(line.contains(&format!("cannot reach SecuTix at {url}")), "{line}");
    assert!(line.contains("secutix.base_url") && line.contains("firewall"), "{line}");
    assert!(!line.contains("gave up") && !line.contains("of retries"), "{line}");
    assert!(stdout.contains("OK   target website (webhook)"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_pass_culture_offers_with_and_without_the_daemon() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre")]).await;
    let cms = cms().await;
    let (pc, fake) = passculture_fake::fake_pass_culture().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    // The test catalogue's only tariff is the adult one.
    let target = passculture_fake::target_toml(&pc.uri(), passculture_fake::SELECT_THEATRE)
        .replace("tariff_codes = [\"J26\"]", "tariff_codes = [\"ADU\"]");
    // A refresh every second reads the offers' statuses again.
    let mut toml = std::fs::read_to_string(&s.config).expect("config").replace(
        "shutdown_grace = \"10s\"",
        "shutdown_grace = \"10s\"\nrefresh_interval = \"1s\"",
    );
    toml.push_str(&target);
    std::fs::write(&s.config, toml).expect("write config");
    let mut daemon = start(&s);
    ready(&s).await;
    eventually(&s, "the offers on pass Culture", || async {
        (fake.lock().expect("fake").events.len() == 2).then_some(())
    })
    .await;
    let status = eventually(&s, "the offers acknowledged", || async {
        let out = cli(&s, &["status"]).await;
        let stdout = text(&out.stdout);
        stdout
            .contains("passculture (passculture): 0 pending")
            .then_some(stdout)
    })
    .await;
    assert!(status.contains("pass Culture offers: 2 (2 PENDING)"), "{status}");
    assert!(
        status.contains("PENDING  secutix-1000 \"Hamlet\"") && status.contains("pass Culture is validating it"),
        "{status}"
    );
    let out = cli(&s, &["status", "--json"]).await;
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["targets"]["passculture"]["passculture"]["by_status"]["PENDING"], 2);

    // pass Culture validates one offer and rejects the other: the daemon's next refresh reads it.
    {
        let mut f = fake.lock().expect("fake");
        for e in f.events.values_mut() {
            let status = if e["idAtProvider"] == "1000" {
                "ACTIVE"
            } else {
                "REJECTED"
            };
            e.insert("status".into(), json!(status));
        }
    }
    let status = eventually(&s, "the new statuses", || async {
        let stdout = text(&cli(&s, &["status"]).await.stdout);
        stdout
            .contains("pass Culture offers: 2 (1 ACTIVE, 1 REJECTED)")
            .then_some(stdout)
    })
    .await;
    assert!(
        status.contains("REJECTED secutix-1001 \"Phèdre\"") && status.contains("its pro portal says why"),
        "{status}"
    );
    assert!(!status.contains("PENDING  "), "{status}");

    // Without the daemon, status reads what the store last knew.
    kill(&daemon, "TERM");
    assert_eq!(exit_of(&s, &mut daemon).await.code(), Some(0), "{}", log(&s));
    let out = cli(&s, &["status"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("no daemon running"), "{stdout}");
    assert!(
        stdout.contains("pass Culture offers: 2 (1 ACTIVE, 1 REJECTED)"),
        "{stdout}"
    );
    assert!(log(&s).contains("pass Culture rejected the offer"), "{}", log(&s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_is_told_ready_status_watchdog_and_stopping() {
    let secutix = secutix(&[(1000, "Hamlet")]).await;
    let cms = cms().await;
    let s = site(&secutix.uri(), &cms.uri(), "https://www.theatre.fr");
    let socket_path = s.store.with_file_name("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let log_file = std::fs::File::create(&s.log).expect("log file");
    let mut daemon = binary::command(&s.config)
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start the daemon");
    let mut seen = String::new();
    let mut buf = vec![0u8; 4096];
    let mut recv_until = async |seen: &mut String, needle: &str| {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !seen.contains(needle) {
            let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} from the daemon; got {seen:?}; log:\n{}", log(&s)))
                .expect("recv");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    };
    recv_until(&mut seen, "READY=1").await;
    assert!(seen.contains("STATUS="), "a status line comes with READY: {seen:?}");
    recv_until(&mut seen, "WATCHDOG=1").await;
    kill(&daemon, "TERM");
    recv_until(&mut seen, "STOPPING=1").await;
    assert_eq!(exit_of(&s, &mut daemon).await.code(), Some(0), "{}", log(&s));
}
