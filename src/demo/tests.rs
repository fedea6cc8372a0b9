use super::*;

#[test]
fn urls_of_wildcard_addresses_are_on_loopback() {
    for (addr, url) in [
        ("0.0.0.0:8087", "http://127.0.0.1:8087"),
        ("[::]:8087", "http://[::1]:8087"),
        ("127.0.0.1:9", "http://127.0.0.1:9"),
        ("[::1]:9", "http://[::1]:9"),
    ] {
        assert_eq!(url_of(addr.parse().expect("address")), url);
    }
}

#[test]
fn entry_files_are_recognised_and_nothing_else() {
    for ok in ["index.json", "secutix-1000.json", "secutix-10000000000001.json"] {
        assert!(is_entry_file(ok), "{ok}");
    }
    for no in [
        "index.html",
        "secutix-1.json.tmp",
        "../secutix-1.json",
        "secutix-a b.json",
        "notes.json",
    ] {
        assert!(!is_entry_file(no), "{no}");
    }
}

#[test]
fn the_demo_configuration_loads_through_the_normal_loader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(CONFIG_FILE);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "x\n").expect("secret");
    let toml = render_config(&Settings {
        config_file: &file,
        secutix_url: "http://127.0.0.1:1".into(),
        soap: true,
        secret_file: &secret,
        store: &dir.path().join("store"),
        output: &dir.path().join("out \"quoted\""),
        listen: "127.0.0.1:8087".into(),
        website: "http://127.0.0.1:8088".into(),
    });
    std::fs::write(&file, toml).expect("write");
    let loaded = Config::load(&Sources {
        file: Some(file),
        env: Some(Default::default()),
        overrides: None,
    })
    .expect("the demo configuration is valid");
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let c = loaded.config;
    assert_eq!(c.secutix.transport, crate::secutix::settings::Transport::Soap);
    assert_eq!(
        c.availability.min_interval,
        Duration::from_secs(60),
        "SecuTix's floor is kept"
    );
    assert_eq!(c.targets.len(), 1);
    assert_eq!(
        c.targets[0].files().map(|f| f.path.clone()),
        Some(dir.path().join("out \"quoted\""))
    );
    assert_eq!(c.control.cors_origins, vec!["http://127.0.0.1:8088".to_owned()]);
}
