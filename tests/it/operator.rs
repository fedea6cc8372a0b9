//! The operator's first day, with the real binary (issue 13): commands that read the store or ask the
//! daemon need no credentials, and those that do say how to get them; `validate-config` says everything at
//! once; list settings come from the environment; logs and output read as sentences, not Rust; the counts
//! of one run add up from line to line; a long poll shows how far it is; a normal run raises no alarm.
//!
//! Real time (another process is involved): every wait polls with a bounded deadline; slow answers of the
//! mock SecuTix only make a poll last long enough to be seen, no assertion depends on a duration.

use crate::common::binary;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::binary::{Site, cli, command, eventually, exit_of, kill, log, ready, text};
use crate::common::secutix_mock::{MockSecutix, REST, catalogue_of, shifted};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use serde_json::{Value, json};
use tokio::process::Child;

/// Performances ten days after now (whole seconds), as the daemon tests do.
fn base() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap_or_default()
}

async fn secutix(products: &[(i64, &str)]) -> MockSecutix {
    MockSecutix::start(shifted(catalogue_of(products), base()), secutix_sync::clock::system()).await
}

/// A CMS accepting every PUT and HEAD under /hooks.
async fn cms() -> MockHttp {
    let m = MockHttp::start().await;
    m.handle("PUT", "/hooks/", |_| Some(Reply::status(200)));
    m.on("HEAD", "/hooks", [Reply::status(200)]);
    m
}

/// A site whose secrets are files, read from `$CREDENTIALS_DIRECTORY` as under systemd: the returned
/// folder holds `secutix-secret` and `webhook-secret`.
fn site_with_credential_files(secutix: &str, cms: &str, extra: &str) -> (Site, PathBuf) {
    let s = Site::new();
    let creds = s.dir.path().join("credentials");
    std::fs::create_dir(&creds).expect("credentials folder");
    std::fs::write(creds.join("secutix-secret"), "test-secret-value\n").expect("secret");
    std::fs::write(creds.join("webhook-secret"), "hook-key\n").expect("secret");
    s.write_config(&format!(
        r#"[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret_file = "secutix-secret"
request_timeout = "20s"
[catalogue]
min_interval = "0s"
in_progress_backoff = "1s"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
[daemon]
time_zone = "Europe/Paris"
shutdown_grace = "10s"
{extra}
[[targets]]
name = "website"
kind = "webhook"
backoff_initial = "1s"
backoff_max = "2s"
[targets.webhook]
url = "{cms}/hooks"
secret_file = "webhook-secret"
"#,
        store = s.store.display()
    ));
    (s, creds)
}

/// `secutix-sync run` with the credentials folder, as systemd's `LoadCredential=` provides it.
fn start_with_credentials(s: &Site, creds: &Path) -> Child {
    let _ = std::fs::remove_file(s.store.join(secutix_sync::daemon::ADDRESS_FILE));
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&s.log)
        .expect("log file");
    command(&s.config)
        .env("CREDENTIALS_DIRECTORY", creds)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the daemon")
}

/// Exit code, stdout, stderr.
async fn run(s: &Site, args: &[&str]) -> (i32, String, String) {
    let out = cli(s, args).await;
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Text a Rust `Debug` would print, never meant for an operator.
const RUST_TEXT: &[&str] = &[
    "Some(",
    "None",
    "Manual {",
    "CatchUp",
    "Scheduled",
    " Rest",
    "Soap",
    "Success",
    "[]",
];

fn assert_no_rust_text(what: &str, text: &str) {
    for line in text.lines() {
        for rust in RUST_TEXT {
            assert!(!line.contains(rust), "{what}: {rust:?} in {line:?}\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_daemon_commands_need_no_credentials_and_the_others_say_how_to_get_them() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre")]).await;
    let cms = cms().await;
    let (s, creds) = site_with_credential_files(&secutix.uri(), &cms.uri(), "");

    // The daemon reads its secrets from $CREDENTIALS_DIRECTORY; the operator's shell has none.
    let mut daemon = start_with_credentials(&s, &creds);
    ready(&s).await;
    for args in [
        &["status"][..],
        &["entries", "list"],
        &["resync", "--wait", "--timeout", "1m"],
        &["import"],
        &["push", "--dry-run"],
        &["dlq", "list"],
    ] {
        let (code, stdout, stderr) = run(&s, args).await;
        assert_eq!(code, 0, "{args:?} through the daemon:\n{stdout}\n{stderr}\n{}", log(&s));
        assert!(!stderr.contains("secret"), "{args:?}: {stderr}");
    }
    kill(&daemon, "TERM");
    assert_eq!(exit_of(&s, &mut daemon).await.code(), Some(0), "{}", log(&s));

    // Without a daemon: the store commands work, calmly.
    for args in [
        &["status"][..],
        &["entries", "list"],
        &["state"],
        &["dlq", "list"],
        &["push", "--dry-run"],
    ] {
        let (code, stdout, stderr) = run(&s, args).await;
        assert_eq!(code, 0, "{args:?} on the store:\n{stdout}\n{stderr}");
        assert_eq!(stderr, "", "{args:?} on the store raises no alarm");
    }
    let (code, _, stderr) = run(&s, &["resync"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("resync asks the running daemon") && !stderr.contains("secret"),
        "{stderr}"
    );

    // The commands that call SecuTix or a target need their credentials, and say how to get them.
    let (code, _, stderr) = run(&s, &["import"]).await;
    assert_eq!(code, 1, "{stderr}");
    for needed in [
        "secutix.secret_file",
        "CREDENTIALS_DIRECTORY",
        "LoadCredential=",
        "(status, entries, resync, state, dlq) need no credentials",
    ] {
        assert!(stderr.contains(needed), "{needed} in {stderr}");
    }
    assert!(
        !stderr.contains("webhook"),
        "import needs no target credential: {stderr}"
    );
    let (code, _, stderr) = run(&s, &["push"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("targets[0].webhook.secret_file") && stderr.contains("LoadCredential="),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secutix.secret_file"),
        "push needs no SecuTix secret: {stderr}"
    );

    // With the credentials, as root with CREDENTIALS_DIRECTORY would: the import runs.
    let out = command(&s.config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .arg("import")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("import");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    let note = format!(
        "no daemon is running on this store: importing into {} directly",
        s.store.display()
    );
    assert_eq!(stderr.lines().next(), Some(note.as_str()), "{stderr}");
    assert_eq!(stderr.matches("daemon").count(), 1, "said once: {stderr}");
    assert!(!stderr.contains("os error"), "calmly: {stderr}");
}

#[tokio::test]
async fn validate_config_names_every_problem_at_once_with_the_valid_values() {
    let s = Site::new();
    s.write_config(&format!(
        r#"[secutix]
institution = "MOSA"
operator = "MOSA_WEBSYNC"
partner = "P"
secret_file = "no-such-secret"
request_timeout = 90
institutoin = "typo"
[store]
path = "{}"
[availability]
reserve_share = 1.5
[[targets]]
name = "site"
kind = "file"
"#,
        s.store.display()
    ));
    let (code, stdout, _) = run(&s, &["validate-config"]).await;
    assert_eq!(code, 2, "{stdout}");
    let expect = [
        format!("configuration file: {}", s.config.display()),
        "problem: secutix.request_timeout: 90 has no unit: write a duration such as \"90s\"".to_owned(),
        "problem: availability.reserve_share: 1.5 is not a share in [0, 1)".to_owned(),
        "problem: targets[0].kind: \"file\" is not one of \"files\", \"webhook\", \"passculture\", \"wordpress\" or \
         \"drupal\" (did you mean \"files\"?)"
            .to_owned(),
        "problem: secutix.secret_file: cannot read the secret file no-such-secret".to_owned(),
        "problem: secutix.institutoin: unknown key (a typo?); it is ignored (did you mean secutix.institution?)"
            .to_owned(),
        "5 problem(s)".to_owned(),
    ];
    for line in &expect {
        assert!(stdout.contains(line.as_str()), "{line:?} missing in:\n{stdout}");
    }
    assert!(!stdout.contains("missing configuration field"), "{stdout}");
    assert_no_rust_text("validate-config", &stdout);

    // No file at all (the default path is absent here): said so; no [[targets]]: warned, still valid.
    if !Path::new(secutix_sync::config::DEFAULT_CONFIG_PATH).exists() {
        let out = tokio::process::Command::new(binary::bin())
            .env_clear()
            .envs([
                ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
                ("SECUTIX_SYNC__SECUTIX__OPERATOR", "MOSA_WEBSYNC"),
                ("SECUTIX_SYNC__SECUTIX__PARTNER", "P"),
                ("SECUTIX_SYNC__SECUTIX__SECRET", "s3cret"),
            ])
            .arg("validate-config")
            .output()
            .await
            .expect("validate-config");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains("configuration file: none read"), "{stdout}");
        assert!(
            stdout.contains("institution MOSA on https://mosa.ws.secutix.com over REST (JSON)"),
            "{stdout}"
        );
        assert!(
            stdout.contains("warning: targets: none declared: entries are built but sent nowhere"),
            "{stdout}"
        );
        assert!(stdout.contains("configuration OK, with 1 warning(s)"), "{stdout}");
        assert!(!stdout.contains("s3cret"), "{stdout}");
    }
}

#[tokio::test]
async fn list_settings_are_read_comma_separated_from_the_environment() {
    let s = Site::new();
    s.write_config(&format!(
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"O\"\npartner = \"P\"\nsecret = \"s\"\n[store]\npath = \"{}\"\n",
        s.store.display()
    ));
    let out = command(&s.config)
        .env(
            "SECUTIX_SYNC__CONTROL__CORS_ORIGINS",
            "https://a.example,https://b.example",
        )
        .env("SECUTIX_SYNC__ENTRIES__LANGUAGES", "fr,en")
        .env("SECUTIX_SYNC__CATALOGUE__PRODUCT_CODES", "1234")
        .arg("validate-config")
        .output()
        .await
        .expect("validate-config");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(!stdout.contains("problem"), "{stdout}");
}

/// Answers getEventAvailability like the mock, `delay` late: a poll that lasts long enough to be watched.
fn slow_availability(secutix: &MockSecutix, delay: Duration) {
    secutix.http.handle(
        "POST",
        &format!("{REST}availabilityService/v1_33/getEventAvailability"),
        move |req| {
            let ids: Vec<i64> = req.json()["performanceIds"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let perfs: Vec<Value> = ids
                .into_iter()
                .map(|id| json!({"performanceId": id, "level": "GOOD", "quantity": 120, "quota": 400}))
                .collect();
            Some(
                Reply::json(&json!({"statusCode": "success", "eventAvailabilityData": {"eventAvailabilities": perfs}}))
                    .delay(delay),
            )
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_shows_products_calls_and_an_estimate_in_status_and_on_the_command_line() {
    let products: Vec<(i64, String)> = (0..4).map(|i| (2000 + i, format!("Pièce {i}"))).collect();
    let named: Vec<(i64, &str)> = products.iter().map(|(id, t)| (*id, t.as_str())).collect();
    let secutix = secutix(&named).await;
    slow_availability(&secutix, Duration::from_millis(1500));
    let cms = cms().await;
    let (s, creds) = site_with_credential_files(&secutix.uri(), &cms.uri(), "");

    // Without a daemon, `availability` prints periodic progress lines (stderr; its report is on stdout).
    let import = command(&s.config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .arg("import")
        .output()
        .await
        .expect("import");
    assert!(import.status.success(), "{}", text(&import.stderr));
    let out = command(&s.config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .arg("availability")
        .output()
        .await
        .expect("availability");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("availability poll: "))
        .collect();
    assert!(
        progress
            .iter()
            .any(|l| l.contains(" of 4 products fetched, ") && l.contains(" SecuTix calls")),
        "{stderr}"
    );
    assert!(
        progress.len() < 4,
        "plain lines are periodic, not one per look: {stderr}"
    );
    assert!(stdout.contains("4 fetched"), "{stdout}");

    // The daemon shows the poll in progress in /status and in `status`: products, calls, an estimate.
    let _ = std::fs::remove_dir_all(&s.store);
    let mut daemon = start_with_credentials(&s, &creds);
    let base = binary::listening(&s).await;
    let token = eventually(&s, "the control token", || async {
        std::fs::read_to_string(s.store.join(secutix_sync::daemon::TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_owned())
    })
    .await;
    let http = reqwest::Client::new();
    let progress = eventually(&s, "a poll fetching, with an estimate", || async {
        let status: Value = http
            .get(format!("{base}/status"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let p = status["jobs"]["availability"]["running"]["progress"].clone();
        (p["phase"] == "fetching" && p["products_done"].as_u64() >= Some(1) && p["eta_secs"].is_u64()).then_some(p)
    })
    .await;
    assert_eq!(progress["products_total"], 4, "{progress}");
    assert!(progress["calls"].as_u64() >= Some(1), "{progress}");
    assert_eq!(progress["calls_planned"], 4, "one call per product: {progress}");
    let (code, stdout, _) = run(&s, &["status"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("availability running (run 1") && stdout.contains("products fetched"),
        "{stdout}"
    );
    kill(&daemon, "TERM");
    exit_of(&s, &mut daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counts_of_one_cycle_add_up_from_line_to_line() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre"), (1002, "Tartuffe")]).await;
    let cms = cms().await;
    let (s, creds) = site_with_credential_files(&secutix.uri(), &cms.uri(), "");
    let out = command(&s.config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .args(["run", "--once"])
        .output()
        .await
        .expect("run --once");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // catalogue: … entries planned after the availability poll; availability: … N operations queued; plan:
    // … M operations queued; push website: N + M operations to send: N + M delivered.
    let queued: u64 = stdout
        .lines()
        .filter_map(|l| l.split_once(" operations queued for the targets").map(|(head, _)| head))
        .filter_map(|head| head.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(queued, 3, "{stdout}");
    assert!(
        stdout.contains("catalogue: import #1: 3 products (added 3, changed 0, removed 0); entries planned after"),
        "no 0 entries, 0 changed for a deferred plan: {stdout}"
    );
    assert!(
        stdout.contains("push website: 3 operations to send: 3 delivered, 0 moved to dead letters, 0 still pending"),
        "{stdout}"
    );
    assert_no_rust_text("run --once", &stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_outputs_read_as_sentences_not_rust() {
    let secutix = secutix(&[(1000, "Hamlet"), (1001, "Phèdre")]).await;
    // The first answer is in_progress with a request id; the client asks again.
    secutix.set_catalogue_reply(Some(Reply::json(
        &json!({"statusCode": "in_progress", "requestId": 4100}),
    )));
    let cms = cms().await;
    let (s, creds) = site_with_credential_files(&secutix.uri(), &cms.uri(), "");
    let mut daemon = start_with_credentials(&s, &creds);
    eventually(&s, "an in_progress answer", || async {
        (!secutix.calls("getCatalogDetailed").is_empty()).then_some(())
    })
    .await;
    secutix.set_catalogue_reply(None);
    ready(&s).await;
    let (code, stdout, stderr) = run(&s, &["resync", "--wait", "--timeout", "1m"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_no_rust_text("resync --wait", &stdout);
    let (code, stdout, _) = run(&s, &["resync", "--product", "1000", "--force", "--wait"]).await;
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = run(&s, &["status"]).await;
    assert_eq!(code, 0);
    assert_no_rust_text("status", &stdout);
    kill(&daemon, "TERM");
    exit_of(&s, &mut daemon).await;

    let l = log(&s);
    assert!(l.contains("request_id=4100"), "{l}");
    assert!(l.contains("no catalogue has been imported yet: importing now"), "{l}");
    assert!(
        !l.contains("older than the last scheduled one"),
        "a first start is no catch-up: {l}"
    );
    assert!(l.contains("trigger=a resync"), "{l}");
    assert_no_rust_text("the daemon log", &l);
}

#[test]
fn a_rate_limit_says_the_wait_secutix_asked_for_and_never_a_made_up_one() {
    use secutix_sync::secutix::CallError;
    let without = CallError::RateLimited {
        call: "availabilityService/getEventAvailability".into(),
        status: 509,
        wait: Duration::ZERO,
    };
    assert_eq!(
        without.to_string(),
        "SecuTix rate limit reached on availabilityService/getEventAvailability (HTTP 509)"
    );
    let with = CallError::RateLimited {
        call: "catalogService/getCatalogDetailed".into(),
        status: 429,
        wait: Duration::from_secs(90),
    };
    assert!(
        with.to_string()
            .ends_with("; SecuTix asks to wait 1m 30s (Retry-After)"),
        "{with}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_counts_deliveries_as_they_happen_not_when_a_drain_ends() {
    let products: Vec<(i64, String)> = (0..8).map(|i| (3000 + i, format!("Pièce {i}"))).collect();
    let named: Vec<(i64, &str)> = products.iter().map(|(id, t)| (*id, t.as_str())).collect();
    let secutix = secutix(&named).await;
    // A slow CMS: one drain lasts seconds, long enough to look at /status in the middle of it.
    let cms = MockHttp::start().await;
    cms.handle("PUT", "/hooks/", |_| {
        Some(Reply::status(200).delay(Duration::from_millis(700)))
    });
    cms.on("HEAD", "/hooks", [Reply::status(200)]);
    let (s, creds) = site_with_credential_files(&secutix.uri(), &cms.uri(), "");
    let mut daemon = start_with_credentials(&s, &creds);
    let base = binary::listening(&s).await;
    let token = eventually(&s, "the control token", || async {
        std::fs::read_to_string(s.store.join(secutix_sync::daemon::TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_owned())
    })
    .await;
    let http = reqwest::Client::new();
    let (delivered, waiting) = eventually(&s, "some delivered while others still wait", || async {
        let status: Value = http
            .get(format!("{base}/status"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let t = &status["targets"]["website"];
        let (delivered, waiting) = (t["delivered_since_start"].as_u64()?, t["outbox"].as_u64()?);
        (delivered > 0 && waiting > 0).then_some((delivered, waiting))
    })
    .await;
    assert!(delivered + waiting <= 8, "{delivered} + {waiting}");
    kill(&daemon, "TERM");
    exit_of(&s, &mut daemon).await;
}
