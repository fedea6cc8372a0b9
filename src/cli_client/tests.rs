use super::*;
use std::collections::BTreeMap;

fn cfg(listen: &str, store: &std::path::Path) -> Config {
    Config::load(&crate::config::Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(format!(
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"P\"\nsecret = \"s\"\n\
             [store]\npath = {:?}\n[control]\nlisten = {listen:?}\n",
            store.display().to_string()
        )),
    })
    .expect("config")
    .config
}

#[test]
fn the_daemon_address_comes_from_the_config_or_the_address_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(daemon_address(&cfg("127.0.0.1:8087", dir.path())), "127.0.0.1:8087");
    assert_eq!(daemon_address(&cfg("0.0.0.0:9000", dir.path())), "127.0.0.1:9000");
    let c = cfg("127.0.0.1:0", dir.path());
    assert_eq!(daemon_address(&c), "127.0.0.1:0", "no address file yet");
    std::fs::write(dir.path().join(crate::daemon::ADDRESS_FILE), "127.0.0.1:41234\n").expect("write");
    assert_eq!(daemon_address(&c), "127.0.0.1:41234");
}

#[test]
fn no_token_means_no_daemon_ever_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ControlClient::from_config(&cfg("127.0.0.1:8087", dir.path())).expect_err("no token");
    assert!(matches!(err, ClientError::NoToken { .. }), "{err}");
}

#[test]
fn progress_lines_say_what_they_count() {
    let poll = PollProgress {
        phase: "fetching".into(),
        products_done: 120,
        products_total: 480,
        calls: 131,
        calls_planned: Some(492),
        eta_secs: Some(361),
    };
    let running = Progress::Running {
        job: "availability".into(),
        run: 5,
        elapsed_secs: 131,
        progress: Some(poll),
    };
    assert_eq!(
        progress_line(&running),
        "availability run 5: 120 of 480 products fetched, 131 SecuTix calls of 492, about 6m 1s left (running \
         for 2m 11s)"
    );
    let asking = PollProgress {
        phase: "asking".into(),
        products_done: 200,
        products_total: 480,
        calls: 1,
        calls_planned: None,
        eta_secs: None,
    };
    assert_eq!(
        poll_progress_text(&asking, 2),
        "asking SecuTix which products changed: 200 of 480 products asked, 1 SecuTix call so far (running for 2s)"
    );
    assert_eq!(
        progress_line(&Progress::Pushing {
            delivered: 10,
            dead: 1,
            total: 11
        }),
        "push: 10 of 11 operations delivered, 1 moved to dead letters"
    );
    assert_eq!(
        progress_line(&Progress::Delivered { delivered: 11, dead: 0 }),
        "push: the outboxes are empty: 11 operations delivered"
    );
}
