//! The systemd units in `systemd/`: what the service needs is there (notify, watchdog, restart, a system
//! user or a dynamic one per instance, state and configuration directories, the secret through `LoadCredential=`, the store path and the
//! config file of the template's instance), their `SECUTIX_SYNC__…` variables are real configuration keys,
//! and, where `systemd-analyze` is installed (Debian's `systemd` package; no running systemd is needed),
//! `systemd-analyze verify` accepts them without a warning and `systemd-analyze security --offline=true`
//! rates them "OK" or better, with the exposure written in their header.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Says that a check did not run, on a `SKIPPED: ` line written straight to stderr (not the captured test
/// output) in one write, so `.ci/run`'s summary lists it, like the WordPress tests.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("SKIPPED: {why}\n").as_bytes());
}

const SERVICE: &str = include_str!("../../systemd/secutix-sync.service");
const TEMPLATE: &str = include_str!("../../systemd/secutix-sync@.service");

/// section → key → values (a key may repeat), comments and blank lines dropped.
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line: {line}"));
        assert!(!section.is_empty(), "{k} outside of a section");
        unit.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    unit
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    match unit.get(section).and_then(|s| s.get(key)).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("[{section}] {key} once, found {other:?}"),
    }
}

fn all<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a [String] {
    unit.get(section)
        .and_then(|s| s.get(key))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn common_checks(name: &str, unit: &Unit) {
    let s = "Service";
    assert_eq!(one(unit, s, "Type"), "notify", "{name}");
    assert_eq!(one(unit, s, "NotifyAccess"), "main", "{name}");
    assert_eq!(one(unit, s, "Restart"), "on-failure", "{name}");
    assert!(one(unit, s, "WatchdogSec").ends_with('s'), "{name}: WatchdogSec");
    assert!(
        one(unit, s, "ConfigurationDirectory").starts_with("secutix-sync"),
        "{name}"
    );
    assert_eq!(
        one(unit, s, "ExecReload"),
        "/bin/kill -HUP $MAINPID",
        "{name}: SIGHUP reloads"
    );
    assert!(
        all(unit, s, "LoadCredential")
            .iter()
            .any(|c| c.starts_with("secutix-secret:/etc/secutix-sync/")),
        "{name}: the SecuTix secret comes through LoadCredential="
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(one(unit, s, key), value, "{name}: {key}");
    }
    assert_eq!(one(unit, "Install", "WantedBy"), "multi-user.target", "{name}");
    // Every SECUTIX_SYNC__ variable set by the unit is a key the configuration knows.
    let env: BTreeMap<String, String> = all(unit, s, "Environment")
        .iter()
        .filter_map(|e| e.split_once('='))
        .filter(|(k, _)| k.starts_with("SECUTIX_SYNC__"))
        .map(|(k, v)| (k.to_owned(), v.replace("%S", "/var/lib").replace("%i", "mosa")))
        .collect();
    assert!(
        env.contains_key("SECUTIX_SYNC__STORE__PATH"),
        "{name}: the store is in StateDirectory"
    );
    let loaded = secutix_sync::config::Config::load(&secutix_sync::config::Sources {
        file: None,
        env: Some(env),
        overrides: Some(
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"p\"\nsecret = \"s\"\n".into(),
        ),
    })
    .expect("configuration loads");
    assert!(loaded.unknown_keys.is_empty(), "{name}: {:?}", loaded.unknown_keys);
}

#[test]
fn the_service_has_what_the_daemon_needs() {
    let unit = parse(SERVICE);
    common_checks("secutix-sync.service", &unit);
    assert_eq!(
        one(&unit, "Service", "ExecStart"),
        "/usr/local/bin/secutix-sync run --config ${CONFIGURATION_DIRECTORY}/config.toml"
    );
    assert_eq!(one(&unit, "Service", "StateDirectory"), "secutix-sync");
    // A static system user (see secutix-sync.sysusers), so operators can run the store commands as it.
    assert_eq!(one(&unit, "Service", "User"), "secutix-sync");
    assert!(all(&unit, "Service", "DynamicUser").is_empty());
    assert_eq!(
        one(&unit, "Service", "Environment"),
        "SECUTIX_SYNC__STORE__PATH=%S/secutix-sync"
    );
}

#[test]
fn the_template_runs_one_institution_per_instance() {
    let unit = parse(TEMPLATE);
    common_checks("secutix-sync@.service", &unit);
    assert_eq!(
        one(&unit, "Service", "ExecStart"),
        "/usr/local/bin/secutix-sync run --config ${CONFIGURATION_DIRECTORY}/%i.toml",
        "config /etc/secutix-sync/%i.toml"
    );
    assert_eq!(
        one(&unit, "Service", "StateDirectory"),
        "secutix-sync/%i",
        "state /var/lib/secutix-sync/%i"
    );
    assert_eq!(one(&unit, "Service", "DynamicUser"), "yes");
    assert_eq!(
        one(&unit, "Service", "User"),
        "secutix-sync-%i",
        "one user per institution"
    );
    assert!(all(&unit, "Service", "Environment").contains(&"SECUTIX_SYNC__STORE__PATH=%S/secutix-sync/%i".to_owned()));
    assert_eq!(
        one(&unit, "Service", "EnvironmentFile"),
        "-/etc/secutix-sync/%i.env",
        "per-instance settings such as the control port"
    );
    assert!(
        all(&unit, "Service", "LoadCredential")
            .iter()
            .all(|c| c.contains("/etc/secutix-sync/%i/")),
        "each institution has its own secrets"
    );
    assert!(
        TEMPLATE.contains("listen = \"127.0.0.1:8088\""),
        "the header says how to give each instance its control port"
    );
}

/// The exposure the unit's header claims ("overall exposure level 1.1 OK").
fn claimed_exposure(text: &str) -> String {
    let i = text
        .find("overall exposure level ")
        .expect("the header states the exposure");
    text[i + 23..]
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches([',', '.']))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn systemd_analyze_verifies_and_rates_the_units() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        // The structural checks above still run; this one needs the tool.
        skipped(
            "systemd::systemd_analyze_verifies_and_rates_the_units: systemd-analyze is not installed (Debian: \
             apt-get install systemd); verify and security not run",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // `verify` checks that ExecStart's program exists: point it at the binary just built.
    for (file, text) in [("secutix-sync.service", SERVICE), ("secutix-sync@.service", TEMPLATE)] {
        let text = text.replace("/usr/local/bin/secutix-sync", env!("CARGO_BIN_EXE_secutix-sync"));
        std::fs::write(dir.path().join(file), text).expect("write unit");
    }
    for unit in [
        "secutix-sync.service",
        "secutix-sync@.service",
        "secutix-sync@mosa.service",
    ] {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.path().join(unit))
            .output()
            .expect("systemd-analyze runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("secutix-sync")).collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify {unit}:\n{stderr}"
        );
    }
    for (file, text) in [("secutix-sync.service", SERVICE), ("secutix-sync@.service", TEMPLATE)] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(Path::new("systemd").join(file))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("systemd-analyze runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| {
                panic!(
                    "no rating for {file}:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let rating: Vec<&str> = line.rsplit(':').next().unwrap_or("").split_whitespace().collect();
        let (score, level) = (rating[0], rating[1]);
        assert!(matches!(level, "OK" | "SAFE"), "{file}: {line}");
        assert_eq!(
            claimed_exposure(text),
            format!("{score} {level}"),
            "{file}: the header's figure is current"
        );
    }
}

#[test]
fn systemd_sysusers_creates_the_service_user() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/secutix-sync.sysusers");
    if Command::new("systemd-sysusers").arg("--version").output().is_err() {
        skipped(
            "systemd::systemd_sysusers_creates_the_service_user: systemd-sysusers is not installed (Debian: \
             apt-get install systemd); the service user is not created in a scratch root",
        );
        return;
    }
    // Into an empty root: nothing on this machine changes.
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(file)
        .output()
        .expect("systemd-sysusers runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd written");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("secutix-sync:"))
        .unwrap_or_else(|| panic!("no secutix-sync user in {passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    assert!(
        fields[2].parse::<u32>().is_ok_and(|uid| uid > 0 && uid < 1000),
        "a system uid: {line}"
    );
    assert_eq!(
        (fields[5], fields[6]),
        ("/var/lib/secutix-sync", "/usr/sbin/nologin"),
        "{line}"
    );
}
