//! `secutix-sync demo` with the real binary, in a temporary working directory: `demo --once` writes one entry
//! file per product and `index.json` into `./demo-output/`, with indicators and booking links, over REST and
//! over SOAP (the same catalogue); the long-running demo falls back to a free port when 8087 is taken and says
//! so, answers `/readyz`, serves its page and `/public/availability` to it (CORS), is found by
//! `secutix-sync status` through the configuration it prints, and exits 0 on SIGTERM, removing its temporary
//! folder and keeping the entry files; a second demo on the same `--dir` is refused without touching the first
//! one's configuration.
//!
//! Real time (another process is involved): every wait is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The longest any wait lasts.
const DEADLINE: Duration = Duration::from_secs(90);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_secutix-sync")
}

/// The binary in `cwd`, with a clean environment.
fn command(cwd: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("SECUTIX_SYNC_LOG", "info")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn run(cwd: &Path, args: &[&str]) -> Output {
    let child = command(cwd)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("the command finishes in time")
        .expect("output")
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()))
}

/// The entry files of `demo-output/` in `cwd`, by file name.
fn entry_files(cwd: &Path) -> BTreeMap<String, Value> {
    let dir = cwd.join("demo-output");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("secutix-") && n.ends_with(".json"))
        .map(|n| (n.clone(), read_json(&dir.join(&n))))
        .collect()
}

const STATUSES: [&str; 5] = ["available", "almost_full", "sold_out", "not_on_sale", "unknown"];

/// Checks what `demo --once` left in `cwd/demo-output/` for a venue of `products` products.
fn check_output(cwd: &Path, products: usize) -> BTreeMap<String, Value> {
    let files = entry_files(cwd);
    assert_eq!(files.len(), products, "one entry file per product: {:?}", files.keys());
    let index = read_json(&cwd.join("demo-output/index.json"));
    assert_eq!(index["count"], products as u64, "{index}");
    let listed: Vec<&str> = index["entries"]
        .as_array()
        .expect("index entries")
        .iter()
        .filter_map(|e| e["file"].as_str())
        .collect();
    assert_eq!(listed, files.keys().map(String::as_str).collect::<Vec<_>>());

    let (mut booked, mut fetched) = (0, 0);
    for (name, e) in &files {
        let id = e["product_id"].as_str().expect("product_id");
        assert_eq!(name, &format!("secutix-{id}.json"));
        assert_eq!(e["published"], true);
        assert!(
            e["title"]["fr"].is_string() && e["title"]["en"].is_string(),
            "{name}: titles in fr and en"
        );
        let status = e["availability"]["status"].as_str().expect("availability status");
        assert!(STATUSES.contains(&status), "{name}: {status}");
        let links = e["booking_url"].as_object().expect("booking_url");
        if e["on_sale"] == true && (status == "available" || status == "almost_full") {
            booked += 1;
            for lang in ["fr", "en"] {
                let link = links[lang].as_str().expect("a Book link per language");
                assert!(
                    link.starts_with("http://127.0.0.1:")
                        && link.ends_with(&format!("/api/1/redirect/product?id={id}&lang={lang}")),
                    "{name}: {link}"
                );
            }
        } else {
            assert!(links.is_empty(), "{name} ({status}) has no Book link: {links:?}");
        }
        let perfs = e["performances"].as_array().expect("performances");
        assert!(!perfs.is_empty(), "{name} has performances");
        for p in perfs {
            let code = &p["availability"]["code"];
            if code.as_u64().is_some_and(|c| (1..=3).contains(&c)) {
                fetched += 1;
            }
        }
    }
    assert!(booked > 0, "some products are on sale with Book links");
    assert!(fetched > 0, "the availability poll gave performances their indicators");
    files
}

/// What identifies the catalogue in an entry (not the indicators, which move with time).
fn catalogue_part(e: &Value) -> Value {
    let perfs: Vec<Value> = e["performances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| serde_json::json!([p["id"], p["start"], p["prices"]]))
        .collect();
    serde_json::json!([e["external_id"], e["title"], e["price_range"], e["season"], perfs])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_once_writes_an_entry_file_per_product_over_rest_and_the_same_catalogue_over_soap() {
    let rest = tempfile::tempdir().expect("tempdir");
    let out = run(rest.path(), &["demo", "--once", "--products", "7"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("7 entry files and index.json"), "{stdout}");
    assert!(
        stdout.contains("push demo-output: 7 operations to send: 7 delivered"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("in_progress"),
        "the simulator answered in_progress once"
    );
    let over_rest = check_output(rest.path(), 7);

    let soap = tempfile::tempdir().expect("tempdir");
    let kept = soap.path().join("kept");
    let kept_arg = kept.to_string_lossy().into_owned();
    let out = run(
        soap.path(),
        &["demo", "--once", "--soap", "--products", "7", "--dir", &kept_arg],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let over_soap = check_output(soap.path(), 7);
    let config = std::fs::read_to_string(kept.join("demo.toml")).expect("--dir keeps the demo configuration");
    assert!(config.contains("transport = \"soap\""), "{config}");
    assert!(kept.join("store").is_dir(), "--dir keeps the store");
    assert_eq!(
        over_rest.values().map(catalogue_part).collect::<Vec<_>>(),
        over_soap.values().map(catalogue_part).collect::<Vec<_>>(),
        "SOAP brings the same catalogue as REST"
    );

    // Again on the kept folder: the store is reused, the output stays complete.
    let out = run(
        soap.path(),
        &["demo", "--once", "--soap", "--products", "7", "--dir", &kept_arg],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    check_output(soap.path(), 7);
}

/// The value after `label` on the banner line that starts with it (after indentation).
fn banner_value(banner: &[String], label: &str) -> String {
    banner
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_else(|| panic!("no {label:?} line in the banner:\n{}", banner.join("\n")))
}

async fn get(url: &str, origin: Option<&str>) -> Option<reqwest::Response> {
    let mut r = reqwest::Client::new().get(url).timeout(Duration::from_secs(5));
    if let Some(o) = origin {
        r = r.header("Origin", o);
    }
    r.send().await.ok()
}

/// The rest of a demo's stdout.
type StdoutLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts the long-running demo in `cwd` with `args`; returns it, its banner (up to the `Ctrl-C` line), the
/// file its stderr goes to and the rest of its stdout.
async fn start_demo(cwd: &Path, args: &[&str]) -> (tokio::process::Child, Vec<String>, PathBuf, StdoutLines) {
    let log_path = cwd.join("demo.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = command(cwd)
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("the demo starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            let last = line.starts_with("Ctrl-C");
            banner.push(line);
            if last {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(read, Ok(true)),
        "no banner in time:\n{}\nlog:\n{}",
        banner.join("\n"),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    (child, banner, log_path, lines)
}

/// Sends SIGTERM to `child` and returns its exit code.
async fn terminate(child: &mut tokio::process::Child, log: &Path) -> Option<i32> {
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the demo did not stop; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .expect("wait");
    status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_demo_is_ready_found_by_the_cli_serves_its_page_and_stops_on_sigterm() {
    // 8087 taken (by this test, or by anything else): the demo says so and takes a free port.
    let _held = std::net::TcpListener::bind("127.0.0.1:8087");
    let cwd = tempfile::tempdir().expect("tempdir");
    let (mut child, banner, log_path, mut rest) = start_demo(cwd.path(), &["--products", "6"]).await;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let text_banner = banner.join("\n");
    assert!(text_banner.contains("Ctrl-C"), "{text_banner}\nlog:\n{}", log());
    assert!(
        text_banner.contains("127.0.0.1:8087 is taken: a free port instead"),
        "{text_banner}"
    );
    assert!(text_banner.contains("Indicators refresh every minute"), "{text_banner}");
    for command in ["status", "resync --wait", "entries show", "dlq list"] {
        assert!(
            text_banner.contains(&format!("secutix-sync {command}")),
            "{command}: {text_banner}"
        );
    }
    let control = banner_value(&banner, "control API");
    let website = banner_value(&banner, "web server");
    assert!(
        control.starts_with("http://127.0.0.1:") && !control.ends_with(":8087"),
        "{control}"
    );
    let config = PathBuf::from(banner_value(&banner, "export SECUTIX_SYNC_CONFIG="));
    let folder = PathBuf::from(banner_value(&banner, "demo folder"));
    assert!(config.starts_with(&folder) && config.is_file(), "{}", config.display());

    // Ready once the first import is in.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if get(&format!("{control}/readyz"), None)
            .await
            .is_some_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered 200; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The page, and the public endpoint it reads (allowed to the page's origin), once the first poll planned
    // the entries.
    let page = get(&format!("{website}/"), None).await.expect("the page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("page text");
    assert!(page.contains(&format!("{control}/public/availability")), "{page}");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let public = loop {
        let r = get(&format!("{control}/public/availability"), Some(&website))
            .await
            .expect("/public/availability");
        let allowed = r
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let doc: Value = r.json().await.expect("JSON");
        if doc["products"].as_array().is_some_and(|p| p.len() == 6) {
            assert_eq!(allowed.as_deref(), Some(website.as_str()), "CORS for the page's origin");
            break doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no products published; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The CLI finds the demo through the printed configuration, by --config and by SECUTIX_SYNC_CONFIG.
    let config_arg = config.to_string_lossy().into_owned();
    let out = run(cwd.path(), &["--config", &config_arg, "status"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("daemon running"), "{stdout}");
    assert!(stdout.contains("catalogue: 6 products"), "{stdout}");
    assert!(stdout.contains("demo-output (files)"), "{stdout}");
    let out = command(cwd.path())
        .env("SECUTIX_SYNC_CONFIG", &config)
        .args(["entries", "list"])
        .output()
        .await
        .expect("entries list");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("6 entries"), "{stdout}");

    let id = public["products"][0]["external_id"].as_str().expect("external id");
    let file = get(&format!("{website}/{id}.json"), None).await.expect("entry file");
    assert_eq!(file.status(), 200, "the web server serves the entry files");
    let book = public["products"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|p| p["booking_url"]["fr"].as_str())
        .expect("a Book link");
    assert!(book.starts_with(&website), "{book}");
    let shop = get(book, None).await.expect("the shop stand-in");
    assert_eq!(shop.status(), 200);

    // SIGTERM: exit 0, the temporary folder goes, the entry files stay.
    assert_eq!(terminate(&mut child, &log_path).await, Some(0), "log:\n{}", log());
    let mut after = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = rest.next_line().await.expect("stdout") {
            after.push(line);
        }
    })
    .await
    .expect("stdout closes");
    assert!(
        after.iter().any(|l| l.starts_with("demo stopped")),
        "the demo says it stopped: {after:?}"
    );
    assert!(!folder.exists(), "the temporary demo folder is removed");
    assert_eq!(entry_files(cwd.path()).len(), 6, "the entry files stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_on_the_same_folder_is_refused_and_leaves_the_first_ones_configuration_alone() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir = cwd.path().join("kept");
    let dir_arg = dir.to_string_lossy().into_owned();
    // Its stdout is not read beyond the banner: a closed pipe must not change how it stops.
    let (mut child, _banner, log_path, stdout) = start_demo(
        cwd.path(),
        &["--products", "3", "--listen", "127.0.0.1:0", "--dir", &dir_arg],
    )
    .await;
    drop(stdout);
    let config = std::fs::read(dir.join("demo.toml")).expect("demo.toml");
    let secret = std::fs::read(dir.join("secutix-secret")).expect("secret");

    let out = run(cwd.path(), &["demo", "--once", "--dir", &dir_arg]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("another secutix-sync demo runs on {}", dir.display())) && stderr.contains("--dir"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.join("demo.toml")).expect("demo.toml"), config);
    assert_eq!(std::fs::read(dir.join("secutix-secret")).expect("secret"), secret);

    assert_eq!(terminate(&mut child, &log_path).await, Some(0));
    assert!(dir.join("store").is_dir(), "--dir is kept");
}
