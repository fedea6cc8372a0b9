//! `secutix-sync push` and `secutix-sync dlq`, run as the real binary against a mock SecuTix (the fixtures),
//! a `files` target in a temporary folder and a mock webhook receiver, all on loopback: a dry run sends
//! nothing, a push delivers, a 400 lands in `dlq list` with its error, `replay` re-queues it, `drop` removes
//! it for good, and the exit codes are the documented ones; the same commands while a daemon (`run`) holds
//! the store go through its control API and say so.
//!
//! The daemon test runs on real time (another process is involved): every wait polls with a deadline.

use crate::common::binary;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use secutix_sync::fakes::testkit::{MockHttp, Reply};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secutix-sync");
const RECITAL: &str = "secutix-10229104500120";
const RENCONTRE: &str = "secutix-10229104500411";

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read the fixture {path}: {e}"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `--config cfg` and `args`, in a clean environment.
async fn run(cfg: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_clear()
        .env("SECUTIX_SYNC_LOG", "warn")
        .output()
        .await
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Venue {
    dir: tempfile::TempDir,
    secutix: MockHttp,
    hook: MockHttp,
    /// External ids the webhook receiver refuses with a 400.
    refused: Arc<Mutex<BTreeSet<String>>>,
}

impl Venue {
    async fn start() -> Self {
        let secutix = MockHttp::start().await;
        let json = |name: &str| {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(fixture(name))
        };
        secutix.on(
            "POST",
            "/tnseb/backend-apis/catalogService/v1_33/getPOSConfig",
            [json("pos-config.json")],
        );
        secutix.on(
            "POST",
            "/tnseb/backend-apis/catalogService/v1_33/getCatalogDetailed",
            [json("catalogue-small.json")],
        );
        let hook = MockHttp::start().await;
        let refused: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let r = refused.clone();
        hook.handle("PUT", "/entries/", move |req| {
            let id = req.uri.trim_start_matches("/entries/");
            Some(if r.lock().expect("refused").contains(id) {
                Reply::status(400)
                    .header("content-type", "application/json")
                    .body("{\"error\":\"title too long\"}")
            } else {
                Reply::status(204)
            })
        });
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            secutix,
            hook,
            refused,
        }
    }

    fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// Writes the configuration (with `mapping_version`) and returns its path.
    fn config(&self, mapping_version: u32) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        let text = format!(
            r#"
[secutix]
institution = "GQUAI"
base_url = "{secutix}"
operator = "GQUAI_WEBSYNC"
partner = "Le Grand Quai"
secret = "test-secret-value"

[store]
path = "{store}"
cache_mib = 16

[entries]
shop_url = "https://grandquai.shop.secutix.example"
mapping_version = {mapping_version}
# The cancelled recital stays on the site: these tests push and refuse it.
published_states = ["RUNNING", "SUSPENDED", "CANCELED"]

[catalogue]
min_interval = "0s"

[availability]
enabled = false

[control]
listen = "127.0.0.1:0"

[[targets]]
name = "site"
kind = "files"
[targets.files]
path = "{site}"

[[targets]]
name = "hook"
kind = "webhook"
[targets.webhook]
url = "{hook}/entries"
secret = "hook-secret"
"#,
            secutix = self.secutix.uri(),
            store = self.dir.path().join("store").display(),
            site = self.site().display(),
            hook = self.hook.uri(),
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn refuse(&self, ids: &[&str]) {
        *self.refused.lock().expect("refused") = ids.iter().map(|s| s.to_string()).collect();
    }

    fn puts_to(&self, id: &str) -> usize {
        self.hook.requests_to(&format!("/entries/{id}")).len()
    }

    fn site_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.site())
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// The dead letters as `dlq list --json` prints them.
async fn dead_letters(cfg: &Path) -> Vec<Value> {
    let r = run(cfg, &["dlq", "list", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str::<Value>(&r.stdout)
        .unwrap_or_else(|e| panic!("dlq list --json prints JSON ({e}): {r:?}"))
        .as_array()
        .cloned()
        .expect("an array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_dead_letters_through_the_binary() {
    let v = Venue::start().await;
    let cfg = v.config(1);
    let r = run(&cfg, &["import"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("products 4"), "{r:?}");

    // A dry run prints the plan per target and sends nothing, writes nothing: twice the same plan.
    for _ in 0..2 {
        let r = run(&cfg, &["push", "--dry-run"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("dry run"), "{r:?}");
        assert!(
            r.stdout
                .contains("target site (files): create 4, update 0, unpublish 0"),
            "{r:?}"
        );
        assert!(
            r.stdout
                .contains("target hook (webhook): create 4, update 0, unpublish 0"),
            "{r:?}"
        );
        assert!(
            r.stdout.contains("create    secutix-10229104500017") && r.stdout.contains("Le Misanthrope"),
            "each operation listed with its title: {r:?}"
        );
    }
    assert_eq!(v.hook.requests().len(), 0, "a dry run sends nothing");
    assert!(
        v.site_files().is_empty(),
        "a dry run writes no file: {:?}",
        v.site_files()
    );

    // The push delivers; the receiver refuses one entry for good (400): exit 4, a dead letter.
    v.refuse(&[RECITAL]);
    let r = run(&cfg, &["push"]).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stdout
            .contains("target site: delivered 4, retried 0, moved to dead letters 0, still pending 0"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("target hook: delivered 3, retried 0, moved to dead letters 1, still pending 0"),
        "{r:?}"
    );
    assert!(r.stdout.contains("dlq list --target hook"), "{r:?}");
    assert_eq!(v.hook.requests().len(), 4);
    assert!(
        v.hook
            .requests()
            .iter()
            .all(|q| q.header("x-secutix-sync-signature").is_some()),
        "signed with the configured secret"
    );
    assert_eq!(
        v.site_files(),
        vec![
            "index.json",
            "secutix-10229104500017.json",
            "secutix-10229104500120.json",
            "secutix-10229104500305.json",
            "secutix-10229104500411.json"
        ]
    );

    // dlq list shows it with the receiver's answer.
    let r = run(&cfg, &["dlq", "list"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(RECITAL) && r.stdout.contains("HTTP 400") && r.stdout.contains("title too long"),
        "{r:?}"
    );
    let letters = dead_letters(&cfg).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["target"], "hook");
    assert_eq!(letters[0]["item"]["external_id"], RECITAL);
    let id = letters[0]["id"].as_u64().expect("id").to_string();

    // Replay re-queues it; once the receiver accepts it, the next push delivers it and only it.
    let r = run(&cfg, &["dlq", "replay", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("back in the outbox of hook"), "{r:?}");
    assert!(dead_letters(&cfg).await.is_empty());
    v.refuse(&[]);
    let r = run(&cfg, &["push"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("target hook: delivered 1,"), "{r:?}");
    assert!(r.stdout.contains("target site: delivered 0,"), "{r:?}");
    assert_eq!(v.puts_to(RECITAL), 2);
    assert_eq!(v.hook.requests().len(), 5);

    // Nothing changed: nothing sent. --target limits the push to one target.
    let r = run(&cfg, &["push", "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("target hook (webhook): create 0, update 0, unpublish 0, delete 0; unchanged 4"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("target site"), "{r:?}");
    assert_eq!(v.hook.requests().len(), 5, "zero requests for an unchanged catalogue");

    // A new mapping version re-sends everything; this time another entry is refused, and dropped.
    let cfg = v.config(2);
    v.refuse(&[RENCONTRE]);
    let r = run(&cfg, &["push", "--target", "hook"]).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stdout.contains("target hook (webhook): create 0, update 4"), "{r:?}");
    assert_eq!(v.hook.requests().len(), 9);
    let letters = dead_letters(&cfg).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["item"]["external_id"], RENCONTRE);
    let id = letters[0]["id"].as_u64().expect("id").to_string();
    let r = run(&cfg, &["dlq", "drop", &id, "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("dropped"), "{r:?}");
    let r = run(&cfg, &["dlq", "list"]).await;
    assert!(r.stdout.contains("no dead letters"), "{r:?}");
    // Dropped means dropped: the next plan does not queue that version again.
    v.refuse(&[]);
    let r = run(&cfg, &["push", "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("unchanged 3, dead letters 0, dropped 1"), "{r:?}");
    assert_eq!(v.hook.requests().len(), 9, "the dropped operation is not sent");
    assert_eq!(v.puts_to(RENCONTRE), 2);

    // Documented exit codes for what does not exist.
    let r = run(&cfg, &["dlq", "drop", &id]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("no dead letter {id}")), "{r:?}");
    let r = run(&cfg, &["dlq", "replay", "424242"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    let r = run(&cfg, &["dlq", "replay", "--all"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("0 dead letter(s) replayed"), "{r:?}");
    let r = run(&cfg, &["push", "--target", "cms"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no target named \"cms\"") && r.stderr.contains("site, hook"),
        "{r:?}"
    );
    let r = run(&cfg, &["dlq", "list", "--target", "cms"]).await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_without_a_catalogue_says_to_import_first() {
    let v = Venue::start().await;
    let cfg = v.config(1);
    let r = run(&cfg, &["push"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no catalogue yet") && r.stderr.contains("secutix-sync import"),
        "{r:?}"
    );
    assert_eq!(v.hook.requests().len(), 0);
}

// ---------------------------------------------------------------------------------------------------------
// The same commands while the daemon holds the store
// ---------------------------------------------------------------------------------------------------------

struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// `secutix-sync run`, then waits for its control API to be ready.
    async fn start(v: &Venue, cfg: &Path) -> Self {
        let log = v.dir.path().join("daemon.log");
        let child = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .arg("run")
            .env_clear()
            .env("SECUTIX_SYNC_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start the daemon");
        let d = Self { child, log };
        let addr_file = v.dir.path().join("store").join(secutix_sync::daemon::ADDRESS_FILE);
        let http = reqwest::Client::new();
        d.eventually("the control API to be ready", || async {
            let addr = std::fs::read_to_string(&addr_file).ok()?;
            let r = http.get(format!("http://{}/readyz", addr.trim())).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn eventually<T, F: std::future::Future<Output = Option<T>>>(&self, what: &str, f: impl FnMut() -> F) -> T {
        binary::eventually_logged(&self.log, what, f).await
    }

    fn signal(&self, name: &str) {
        binary::kill(&self.child, name);
    }

    async fn stop(mut self) {
        self.signal("TERM");
        let status = tokio::time::timeout(binary::DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the daemon did not stop; log:\n{}", self.log()))
            .expect("wait");
        assert_eq!(status.code(), Some(0), "log:\n{}", self.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_daemon_running_push_and_dlq_go_through_its_control_api() {
    let v = Venue::start().await;
    let cfg = v.config(1);
    v.refuse(&[RECITAL]);
    // The daemon imports at start (catch-up), plans every entry and sends it; the hook refuses one.
    let daemon = Daemon::start(&v, &cfg).await;
    let letters = daemon
        .eventually("the refused entry in the dead letters", || async {
            let r = run(&cfg, &["dlq", "list", "--json"]).await;
            assert_eq!(r.code, 0, "{r:?}");
            assert!(
                r.stderr.contains("a secutix-sync daemon runs on this store") && r.stderr.contains("control API"),
                "says it goes through the daemon: {r:?}"
            );
            let letters: Vec<Value> = serde_json::from_str(&r.stdout).expect("JSON");
            (letters.len() == 1 && v.puts_to(RENCONTRE) == 1).then_some(letters)
        })
        .await;
    assert_eq!(letters[0]["item"]["external_id"], RECITAL);
    assert_eq!(letters[0]["target"], "hook");
    let id = letters[0]["id"].as_u64().expect("id").to_string();
    let r = run(&cfg, &["dlq", "list"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(RECITAL) && r.stdout.contains("title too long"),
        "{r:?}"
    );

    // The dry run is the daemon's own plan; it sends nothing.
    let sent = v.hook.requests().len();
    let r = run(&cfg, &["push", "--dry-run"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("dry run by the running daemon") && r.stdout.contains("nothing is sent"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("target hook (webhook): create 0, update 0, unpublish 0, delete 0; unchanged 3, dead letters 1"),
        "{r:?}"
    );
    assert!(r.stdout.contains("target site (files): create 0, update 0"), "{r:?}");
    assert_eq!(v.hook.requests().len(), sent);

    // Replay through the daemon: it sends the operation at once.
    v.refuse(&[]);
    let r = run(&cfg, &["dlq", "replay", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("back in the outbox of hook: the daemon sends it now"),
        "{r:?}"
    );
    daemon
        .eventually("the replayed operation delivered", || async {
            (v.puts_to(RECITAL) == 2).then_some(())
        })
        .await;
    assert!(dead_letters(&cfg).await.is_empty());

    // A new mapping version, reloaded by the daemon: `push` asks the daemon and follows it to the end.
    let cfg = v.config(2);
    daemon.signal("HUP");
    daemon
        .eventually("the reload", || async {
            daemon.log().contains("configuration reloaded").then_some(())
        })
        .await;
    let r = run(&cfg, &["push", "--dry-run", "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("target hook (webhook): create 0, update 4"), "{r:?}");
    assert!(
        r.stdout.contains(&format!("update    {RENCONTRE}")),
        "one line per operation: {r:?}"
    );
    assert!(!r.stdout.contains("target site"), "{r:?}");
    v.refuse(&[RENCONTRE]);
    let r = run(&cfg, &["push", "--target", "hook"]).await;
    assert_eq!(r.code, 4, "a dead letter in this push: {r:?}");
    assert!(r.stderr.contains("it plans and sends the push"), "{r:?}");
    assert!(r.stdout.contains("refresh run"), "{r:?}");
    assert!(r.stdout.contains("target hook (webhook): create 0, update 4"), "{r:?}");
    assert!(
        r.stdout
            .contains("target hook: delivered 3, moved to dead letters 1, still pending 0"),
        "{r:?}"
    );
    assert!(r.stdout.contains("dlq list --target hook"), "{r:?}");
    assert_eq!(v.puts_to(RENCONTRE), 2);

    // Drop it through the daemon; the next push sends nothing and exits 0.
    let letters = dead_letters(&cfg).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let id = letters[0]["id"].as_u64().expect("id").to_string();
    let r = run(&cfg, &["dlq", "drop", &id, "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("dropped"), "{r:?}");
    let sent = v.hook.requests().len();
    let r = run(&cfg, &["push", "--target", "hook"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("unchanged 3, dead letters 0, dropped 1"), "{r:?}");
    assert!(r.stdout.contains("push: nothing left to send"), "{r:?}");
    assert_eq!(v.hook.requests().len(), sent, "nothing to send");

    // The documented exit codes, through the daemon.
    let r = run(&cfg, &["dlq", "drop", &id]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("no dead letter {id}")), "{r:?}");
    let r = run(&cfg, &["dlq", "list", "--target", "cms"]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no target \"cms\""), "{r:?}");
    let r = run(&cfg, &["push", "--target", "cms"]).await;
    assert_eq!(r.code, 2, "{r:?}");

    // Once the daemon is stopped, the same commands work on the store and say so.
    daemon.stop().await;
    let r = run(&cfg, &["dlq", "list"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "", "listing on the store is no news: {r:?}");
    assert!(r.stdout.contains("no dead letters"), "{r:?}");
    let r = run(&cfg, &["push", "--dry-run"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("dry run: nothing is written"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_shows_the_store_and_one_product_and_names_the_way_round_a_running_daemon() {
    let v = Venue::start().await;
    let cfg = v.config(1);
    let r = run(&cfg, &["state"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let empty: Value = serde_json::from_str(&r.stdout).expect("state prints JSON");
    assert!(empty["catalogue"].is_null(), "{r:?}");

    assert_eq!(run(&cfg, &["import"]).await.code, 0);
    assert_eq!(run(&cfg, &["push"]).await.code, 0);
    let r = run(&cfg, &["state", "--limit", "3"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).expect("state prints JSON");
    assert_eq!(doc["catalogue"]["products"], 4, "{doc}");
    assert_eq!(doc["imports"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["imports"][0]["outcome"], "success", "{doc}");
    assert_eq!(
        doc["secutix_calls"]["catalogService_this_month"], 2,
        "getPOSConfig + getCatalogDetailed: {doc}"
    );
    assert_eq!(doc["targets"]["hook"]["acknowledged"], 4, "{doc}");
    assert_eq!(doc["targets"]["hook"]["outbox"], 0, "{doc}");

    let id = RECITAL.trim_start_matches("secutix-");
    let r = run(&cfg, &["state", "--product", id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let one: Value = serde_json::from_str(&r.stdout).expect("state prints JSON");
    assert_eq!(
        one["record"]["product"]["id"].to_string().trim_matches('"'),
        id,
        "{one}"
    );
    assert!(one["record"]["feed_hash"].is_string(), "{one}");
    assert_eq!(one["entry"]["entry"]["external_id"], RECITAL, "{one}");

    // While another process holds the store, `state` says what to use instead.
    let store = secutix_sync::store::Store::open(&v.dir.path().join("store"), 16, secutix_sync::clock::system())
        .expect("the test holds the store");
    let r = run(&cfg, &["state"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("secutix-sync status"), "{r:?}");
    drop(store);
}
