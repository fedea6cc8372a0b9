//! The CI's WordPress (`.ci/wordpress.sh`, issue 13, item 21): two instances started at the same time on one
//! machine (as two checkouts' CI, or CI beside a developer's own WordPress) each answer for their own database
//! and take their own credentials; an instance that answers for another database anyway is named as such by
//! `.ci/wordpress.sh check` (and by the smoke test and `tests/wordpress.rs`, which use the same site name).
//!
//! Needs root and the Debian packages (`bash .ci/wordpress.sh install`, as `.ci/run` does); elsewhere the test
//! prints `SKIPPED:` and why. Each instance is stopped when the test ends, also when it fails.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/wordpress.sh")
}

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (MariaDB runs as user mysql, the configuration goes to /etc/wordpress)".into());
    }
    let mariadbd = std::process::Command::new("sh")
        .args(["-c", "command -v mariadbd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mariadbd || !Path::new("/usr/share/wordpress/wp-load.php").exists() {
        return Some("the WordPress packages are not installed: run `bash .ci/wordpress.sh install`".into());
    }
    None
}

async fn wordpress_sh(command: &str, dir: &Path) -> Output {
    tokio::process::Command::new("bash")
        .arg(script())
        .arg(command)
        .arg(dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("bash runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One instance's folder; stopped when dropped.
struct Instance {
    dir: tempfile::TempDir,
}

impl Instance {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `DIR/env` as a map (`export K=V` or `export K='V'` lines).
    fn env(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.path().join("env"))
            .expect("DIR/env")
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect()
    }

    fn var(&self, key: &str) -> String {
        self.env()
            .remove(key)
            .unwrap_or_else(|| panic!("{key} in {}/env", self.path().display()))
    }

    /// The logs `start` leaves in DIR, for a failure's message.
    fn logs(&self) -> String {
        [
            "mysql/install-db.log",
            "mysql/error.log",
            "wp-install.log",
            "wp-setup.log",
            "php-server.log",
        ]
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(self.path().join(f)).ok()?;
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            Some(format!(
                "--- {f}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        })
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Its configuration file in /etc/wordpress.
    fn config(&self) -> PathBuf {
        let name = std::fs::read_to_string(self.path().join("config-name")).expect("DIR/config-name");
        PathBuf::from(format!("/etc/wordpress/config-{}.php", name.trim()))
    }

    /// The site name its REST index gives, and the status of an authenticated request with its credentials.
    async fn answers(&self, http: &reqwest::Client) -> (String, u16) {
        let url = self.var("SECUTIX_SYNC_TEST_WP_URL");
        let index: serde_json::Value = http
            .get(format!("{url}/wp-json/"))
            .send()
            .await
            .expect("the site answers")
            .json()
            .await
            .expect("a REST index");
        let me = http
            .get(format!("{url}/wp-json/wp/v2/users/me"))
            .basic_auth(
                self.var("SECUTIX_SYNC_TEST_WP_USER"),
                Some(self.var("SECUTIX_SYNC_TEST_WP_APP_PASSWORD")),
            )
            .send()
            .await
            .expect("the site answers");
        (
            index["name"].as_str().unwrap_or_default().to_owned(),
            me.status().as_u16(),
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_machine_each_answer_for_their_own_database() {
    if let Some(why) = skip_reason() {
        let line = format!("SKIPPED: ci_wordpress: {why}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let (a, b) = (Instance::new(), Instance::new());

    // Started at the same time, as two CI runs would.
    let (started_a, started_b) = tokio::join!(wordpress_sh("start", a.path()), wordpress_sh("start", b.path()));
    for (what, instance, started) in [("A", &a, &started_a), ("B", &b, &started_b)] {
        assert!(
            started.status.success(),
            "start {what}: {}\n{}",
            stderr(started),
            instance.logs()
        );
    }
    // Each takes its own credentials (with one configuration for both, one of them answered 401).
    let (answer_a, answer_b) = (a.answers(&http).await, b.answers(&http).await);
    assert_eq!(answer_a.1, 200, "A takes its credentials");
    assert_eq!(answer_b.1, 200, "B takes its credentials");
    let (site_a, site_b) = (
        a.var("SECUTIX_SYNC_TEST_WP_SITE_NAME"),
        b.var("SECUTIX_SYNC_TEST_WP_SITE_NAME"),
    );
    assert_ne!(site_a, site_b, "each run names its own site");
    assert_eq!(
        (answer_a.0, answer_b.0),
        (site_a.clone(), site_b.clone()),
        "each answers for its database"
    );
    assert_ne!(a.config(), b.config(), "each run has its own configuration file");
    let check = wordpress_sh("check", a.path()).await;
    assert!(check.status.success(), "check A: {}", stderr(&check));

    // Something takes over A's configuration anyway (an older script, a hand edit): A's server now answers
    // for B's database, and `check` says so instead of leaving a 401 to be read as wrong credentials.
    let own = std::fs::read(a.config()).expect("A's configuration");
    std::fs::copy(b.config(), a.config()).expect("B's configuration over A's");
    let check = wordpress_sh("check", a.path()).await;
    let text = stderr(&check);
    assert!(!check.status.success(), "check A on B's database: {text}");
    assert!(text.contains("answers for another database"), "{text}");
    assert!(
        text.contains(&site_a) && text.contains(&site_b),
        "names both sites: {text}"
    );
    std::fs::write(a.config(), own).expect("A's configuration back");
    assert_eq!(a.answers(&http).await, (site_a, 200));

    // Stopping one leaves the other running, and takes only its own configuration away.
    let (config_a, config_b) = (a.config(), b.config());
    let stopped = wordpress_sh("stop", a.path()).await;
    assert!(stopped.status.success(), "stop A: {}", stderr(&stopped));
    assert!(!config_a.exists() && config_b.exists());
    assert_eq!(b.answers(&http).await, (site_b, 200), "B still answers");
}
