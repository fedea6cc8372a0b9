//! The network side of issue 13 (items 4 to 8 and 20), on loopback only:
//! - redirects are refused by every client that carries credentials (SecuTix REST, SOAP and token endpoint,
//!   the webhook target, pass Culture's API and box office), with an error naming where they pointed, and
//!   nothing reaches that address;
//! - plain HTTP beyond loopback is refused unless `allow_insecure_http` is set on the section;
//! - the control API's listener closes silent, slow and stalled connections and caps how many are open
//!   (paused tokio time, limits set small by the test), and both systemd units raise `LimitNOFILE=`;
//! - a weak control token is refused beyond loopback; secret files others may read are warned about;
//! - credentials written into URLs never reach errors, `status`, the store or `validate-config`'s output;
//! - every error of the control API is JSON, and an unknown filter value is a 400.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secutix_sync::config::{Config, ConfigError, Problem, Sources};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::net::ListenerLimits;
use secutix_sync::push::{DeletePolicy, Outbox};
use secutix_sync::secutix::{CallError, RetryPolicy};
use secutix_sync::targets::webhook::{WebhookMode, WebhookSettings, WebhookTarget};
use secutix_sync::targets::{OpKind, Operation, Target, TargetError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A configuration from `toml` after the tests' SecuTix and store sections, or its problems.
fn load(toml: &str) -> Result<Config, Vec<Problem>> {
    load_with("", toml)
}

/// [`load`], with `secutix` lines added to the `[secutix]` section.
fn load_with(secutix: &str, toml: &str) -> Result<Config, Vec<Problem>> {
    let base = format!(
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"P\"\nsecret = \"s\"\n{secutix}\n\
         [store]\npath = \"/nonexistent-unused\"\n"
    );
    match Config::load(&Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(format!("{base}{toml}")),
    }) {
        Ok(l) => Ok(l.config),
        Err(ConfigError::Invalid(p)) => Err(p),
        Err(e) => panic!("{e}"),
    }
}

fn problem<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no problem for {key} in {problems:?}"))
}

// ---------------------------------------------------------------------------------------------------------
// Item 4: redirects
// ---------------------------------------------------------------------------------------------------------

/// A server answering every request with `307 Location: <the other one>/stolen`, and that other server,
/// which records whatever reaches it.
async fn redirector() -> (MockHttp, MockHttp) {
    let elsewhere = MockHttp::start().await;
    elsewhere.handle("*", "/", |_| Some(Reply::json(&json!({"statusCode": "success"}))));
    let redirecting = MockHttp::start().await;
    let to = format!("{}/stolen", elsewhere.uri());
    redirecting.handle("*", "/", move |_| Some(Reply::status(307).header("Location", &to)));
    (redirecting, elsewhere)
}

#[tokio::test]
async fn secutix_redirects_are_refused_and_name_the_location() {
    for (transport, auth) in [("rest", "jwt"), ("soap", "jwt"), ("rest", "token_endpoint")] {
        let (redirecting, elsewhere) = redirector().await;
        let clock = common::clock();
        let (store, _dir) = common::store(&clock);
        let cfg = common::config(&redirecting.uri(), transport, "");
        let mut secutix = cfg.secutix.clone();
        secutix.auth = if auth == "jwt" {
            secutix_sync::secutix::settings::AuthMode::Jwt
        } else {
            secutix_sync::secutix::settings::AuthMode::TokenEndpoint
        };
        let client =
            secutix_sync::secutix::Client::new(&secutix, Arc::new(store.clone()), clock.clone()).expect("client");
        let err = client
            .get_pos_config(RetryPolicy::once())
            .await
            .expect_err("a redirect is not an answer");
        let CallError::Redirect { status, location, .. } = &err else {
            panic!("{transport}/{auth}: not a redirect error: {err}")
        };
        assert_eq!(*status, 307);
        assert_eq!(location, &format!("{}/stolen", elsewhere.uri()), "{transport}/{auth}");
        let text = err.to_string();
        assert!(
            text.contains(&elsewhere.uri()) && text.contains("secutix.base_url"),
            "{transport}/{auth}: {text}"
        );
        assert!(
            elsewhere.requests().is_empty(),
            "{transport}/{auth}: the credentials went to the redirect's address: {:?}",
            elsewhere.requests()
        );
        assert_eq!(
            redirecting.requests().len(),
            1,
            "{transport}/{auth}: one call, no retry"
        );
    }
}

/// An upsert without an entry: in `post` mode its envelope is still a signed body.
fn operation() -> Operation {
    Operation {
        kind: OpKind::Upsert,
        external_id: "secutix-1000".into(),
        content_hash: "abc".into(),
        entry: None,
        remote_id: None,
        first_time: true,
        enqueued_at: common::t0(),
    }
}

#[tokio::test]
async fn webhook_redirects_are_refused_and_name_the_location() {
    let (redirecting, elsewhere) = redirector().await;
    let settings = WebhookSettings {
        url: format!("{}/hooks", redirecting.uri()),
        mode: WebhookMode::Post,
        secret: Some("hmac-secret".to_owned().into()),
        secret_file: None,
        headers: BTreeMap::from([("X-Api-Key".to_owned(), "receiver-key".to_owned().into())]),
        allow_insecure_http: false,
    };
    let target = WebhookTarget::new("agency", &settings, Duration::from_secs(20)).expect("target");
    let err = target
        .apply(&operation())
        .await
        .expect_err("a redirect is not a delivery");
    let TargetError::Permanent { message } = &err else {
        panic!("a redirect is a configuration problem, not worth retrying: {err:?}")
    };
    assert!(
        message.contains(&format!("{}/stolen", elsewhere.uri())) && message.contains("targets.webhook.url"),
        "{message}"
    );
    let err = target.check().await.expect_err("check sees the redirect");
    assert!(err.to_string().contains("/stolen"), "{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "the body, signature and headers went to the redirect's address: {:?}",
        elsewhere.requests()
    );
    assert_eq!(redirecting.requests().len(), 2);
}

fn pass_culture_settings(base: &str) -> secutix_sync::targets::passculture::PassCultureSettings {
    toml::from_str(&format!(
        "base_url = \"{base}\"\napi_key = \"pc-test-key\"\nvenue_id = 535"
    ))
    .expect("settings")
}

#[tokio::test]
async fn pass_culture_redirects_are_refused_and_name_the_location() {
    use secutix_sync::targets::passculture::api::{Api, status_error};
    use secutix_sync::targets::passculture::contremarque::{BoxOffice, ContremarqueError};
    let (redirecting, elsewhere) = redirector().await;
    let settings = pass_culture_settings(&redirecting.uri());
    let api = Api::new("passculture", &settings).expect("api");
    let answer = api
        .call(reqwest::Method::GET, "/public/offers/v1/offerer_venues", &[], None)
        .await
        .expect("an answer");
    assert_eq!(answer.status, 307);
    let err = status_error("passculture venues", &answer);
    assert!(
        matches!(&err, TargetError::Permanent { message } if message.contains(&format!("{}/stolen", elsewhere.uri()))),
        "{err:?}"
    );
    let office = BoxOffice::new("passculture", &settings).expect("box office");
    match office.booking("ABCDEF").await {
        Err(ContremarqueError::Unavailable { detail }) => assert!(detail.contains("/stolen"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(
        elsewhere.requests().is_empty(),
        "the API key went to the redirect's address: {:?}",
        elsewhere.requests()
    );
}

// ---------------------------------------------------------------------------------------------------------
// Item 5: clear text beyond loopback
// ---------------------------------------------------------------------------------------------------------

#[test]
fn plain_http_beyond_loopback_is_refused_unless_the_section_allows_it() {
    let p = load_with("base_url = \"http://mosa.secutix.internal\"", "").expect_err("refused");
    let m = &problem(&p, "secutix.base_url").message;
    assert!(
        m.contains("secutix.allow_insecure_http") && m.contains("in clear"),
        "{m}"
    );
    let p = load_with("token_endpoint = \"http://auth.example.org/token\"", "").expect_err("refused");
    problem(&p, "secutix.token_endpoint");
    load_with(
        "base_url = \"http://mosa.secutix.internal\"\nallow_insecure_http = true",
        "",
    )
    .expect("allowed explicitly");
    for loopback in ["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"] {
        load_with(&format!("base_url = \"{loopback}\""), "").expect("loopback is always allowed");
    }

    let webhook = |url: &str, allow: bool| {
        format!(
            "[[targets]]\nname = \"agency\"\nkind = \"webhook\"\n[targets.webhook]\nurl = \"{url}\"\n\
             allow_insecure_http = {allow}\n"
        )
    };
    let p = load(&webhook("http://cms.example.org/hooks", false)).expect_err("refused");
    let m = &problem(&p, "targets[0].webhook.url").message;
    assert!(m.contains("targets.webhook.allow_insecure_http"), "{m}");
    load(&webhook("http://cms.example.org/hooks", true)).expect("allowed explicitly");
    load(&webhook("http://127.0.0.1:8080/hooks", false)).expect("loopback");
    load(&webhook("https://cms.example.org/hooks", false)).expect("https");

    let pc = |base: &str| {
        format!(
            "[[targets]]\nname = \"pc\"\nkind = \"passculture\"\n[targets.passculture]\nbase_url = \"{base}\"\n\
             api_key = \"k\"\nvenue_id = 1\ntariff_codes = [\"J26\"]\nquota = 1\n"
        )
    };
    let p = load(&pc("http://backend.passculture.example")).expect_err("refused");
    problem(&p, "targets[0].passculture.base_url");
    load(&pc("http://127.0.0.1:7000")).expect("loopback");
}

#[test]
fn the_clients_themselves_refuse_plain_http_beyond_loopback() {
    let clock = common::clock();
    let (store, _dir) = common::store(&clock);
    let mut cfg = common::config("http://127.0.0.1:9", "soap", "").secutix;
    cfg.base_url = "http://mosa.secutix.internal".into();
    let err = secutix_sync::secutix::Client::new(&cfg, Arc::new(store.clone()), clock.clone()).expect_err("refused");
    assert!(err.to_string().contains("secutix.allow_insecure_http"), "{err}");
    cfg.allow_insecure_http = true;
    secutix_sync::secutix::Client::new(&cfg, Arc::new(store), clock).expect("allowed explicitly");

    let mut settings = WebhookSettings {
        url: "http://cms.example.org/hooks".into(),
        mode: WebhookMode::Put,
        secret: None,
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    let err = WebhookTarget::new("agency", &settings, Duration::from_secs(1))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("allow_insecure_http"), "{err}");
    settings.allow_insecure_http = true;
    WebhookTarget::new("agency", &settings, Duration::from_secs(1)).expect("allowed explicitly");
}

// ---------------------------------------------------------------------------------------------------------
// Item 6: listener limits
// ---------------------------------------------------------------------------------------------------------

fn small_limits() -> ListenerLimits {
    ListenerLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
    }
}

/// Serves a small router (health, a JSON echo, an endless body) within `limits`; its address.
async fn limited_server(limits: ListenerLimits) -> (String, tokio_util::sync::CancellationToken) {
    use axum::routing::{get, post};
    let router = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .route(
            "/endless",
            get(|| async {
                let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                axum::body::Body::from_stream(stream)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(secutix_sync::net::serve(
        "the test listener",
        listener,
        router,
        limits,
        stop.clone(),
    ));
    (addr, stop)
}

/// Everything the server sends until it closes the connection (a reset included). Paused time runs
/// forward while the test waits; a server that never closes fails the test after ten minutes of it, or
/// after 64 MiB (an endless answer keeps the runtime busy, so paused time would not move).
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            assert!(out.len() < 64 << 20, "the server is still sending after 64 MiB");
        }
    };
    tokio::time::timeout(Duration::from_secs(600), read_all)
        .await
        .expect("the server closed the connection");
    out
}

async fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    String::from_utf8_lossy(&read_to_close(&mut s).await).into_owned()
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_capped_and_closed_and_the_listener_answers_again() {
    let limits = small_limits();
    let (addr, stop) = limited_server(limits).await;
    // As many silent connections as the cap allows (they are accepted in order)…
    let mut idle = Vec::new();
    for _ in 0..limits.max_connections {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    // …then a few more, and a health check: each is answered 503 (JSON) and closed at once.
    for _ in 0..3 {
        let mut extra = TcpStream::connect(&addr).await.expect("connect");
        let answer = String::from_utf8_lossy(&read_to_close(&mut extra).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.contains("application/json") && answer.contains("\"error\""),
            "{answer}"
        );
    }
    let refused = get(&addr, "/healthz").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    // The silent ones are closed by the header-read timeout (paused time runs to it)…
    for mut s in idle {
        let sent = read_to_close(&mut s).await;
        assert!(!String::from_utf8_lossy(&sent).contains("200 OK"), "nothing was asked");
    }
    // …which frees the listener for real requests.
    let ok = get(&addr, "/healthz").await;
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("ok\n"), "{ok}");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn slow_headers_a_stalled_body_and_an_unread_answer_are_cut() {
    let (addr, stop) = limited_server(small_limits()).await;

    // Headers a byte at a time: the whole head is due within header_read_timeout.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
    let mut trickled = 0;
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if slow.write_all(b"X").await.is_err() {
            break true;
        }
        if trickled == 100 {
            break false;
        }
        trickled += 1;
        let mut probe = [0u8; 1];
        match tokio::time::timeout(Duration::ZERO, slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
    };
    assert!(
        closed,
        "the server kept a connection whose headers never ended ({trickled} bytes)"
    );

    // A body announced and never finished: the request fails once no byte came for idle_timeout.
    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    let answer = String::from_utf8_lossy(&read_to_close(&mut stalled).await).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("request body"),
        "{answer}"
    );

    // An answer the client never reads: once nothing moves for idle_timeout the connection is dropped.
    let mut unread = TcpStream::connect(&addr).await.expect("connect");
    unread
        .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let sent = read_to_close(&mut unread).await;
    assert!(sent.starts_with(b"HTTP/1.1 200"), "the answer started");

    // And the listener still answers.
    assert!(get(&addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    stop.cancel();
}

#[test]
fn both_units_raise_the_open_files_limit_above_the_connection_cap() {
    let needed = ListenerLimits::default().max_connections as u64 + secutix_sync::net::FILES_RESERVED;
    for unit in [
        include_str!("../../systemd/secutix-sync.service"),
        include_str!("../../systemd/secutix-sync@.service"),
    ] {
        let limit: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .expect("LimitNOFILE= in the unit")
            .trim()
            .parse()
            .expect("a number");
        assert!(limit >= needed, "LimitNOFILE={limit} < {needed}");
    }
    let defaults = load("").expect("defaults");
    assert_eq!(defaults.control.listener_limits(), ListenerLimits::default());
}

#[test]
fn the_listener_limits_are_bounded() {
    for (toml, key) in [
        ("max_connections = 0", "control.max_connections"),
        ("max_connections = 1000000000000", "control.max_connections"),
        ("header_read_timeout = \"0s\"", "control.header_read_timeout"),
        ("idle_timeout = \"100days\"", "control.idle_timeout"),
    ] {
        let p = load(&format!("[control]\n{toml}\n")).expect_err(toml);
        assert!(problem(&p, key).message.contains("1"), "{toml}: {p:?}");
    }
    load("[control]\nmax_connections = 1\nheader_read_timeout = \"1s\"\nidle_timeout = \"24h\"\n").expect("bounds");
}

// ---------------------------------------------------------------------------------------------------------
// Item 7: weak tokens, readable secret files
// ---------------------------------------------------------------------------------------------------------

#[test]
fn a_short_control_token_is_refused_beyond_loopback() {
    let p = load("[control]\nlisten = \"0.0.0.0:8087\"\ntoken = \"a\"\n").expect_err("refused");
    let m = &problem(&p, "control.token").message;
    assert!(m.contains("at least 32") && m.contains("0.0.0.0:8087"), "{m}");
    assert!(!m.contains("\"a\""), "the token itself is never quoted: {m}");
    load("[control]\nlisten = \"127.0.0.1:8087\"\ntoken = \"a\"\n").expect("loopback: any token");
    load(&format!(
        "[control]\nlisten = \"0.0.0.0:8087\"\ntoken = \"{}\"\n",
        "k".repeat(32)
    ))
    .expect("32 characters beyond loopback");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("control-token");
    std::fs::write(&file, "short\n").expect("write");
    let toml = format!(
        "[control]\nlisten = \"[::]:8087\"\ntoken_file = \"{}\"\n",
        file.display()
    );
    let p = load(&toml).expect_err("refused");
    problem(&p, "control.token_file");

    // The daemon refuses it too (a file changed after validation, a reload).
    let mut cfg = load(&format!(
        "[control]\nlisten = \"127.0.0.1:8087\"\ntoken_file = \"{}\"\n",
        file.display()
    ))
    .expect("loopback");
    secutix_sync::daemon::control_token(&cfg).expect("loopback: accepted");
    cfg.control.listen = "0.0.0.0:8087".into();
    let err = secutix_sync::daemon::control_token(&cfg).expect_err("refused");
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[test]
fn secret_files_and_configurations_others_can_read_are_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secutix-secret");
    std::fs::write(&secret, "s3cret\n").expect("write");
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let config_file = dir.path().join("config.toml");
    let write_config = |inline: bool| {
        let secret_line = if inline {
            "secret = \"inline-s3cret\"".to_owned()
        } else {
            format!("secret_file = \"{}\"", secret.display())
        };
        std::fs::write(
            &config_file,
            format!(
                "[secutix]\ninstitution = \"MOSA\"\noperator = \"O\"\npartner = \"P\"\n{secret_line}\n\
                 [store]\npath = \"/nonexistent-unused\"\n"
            ),
        )
        .expect("write config");
    };
    let loaded = |file: &std::path::Path| {
        Config::load(&Sources {
            file: Some(file.to_owned()),
            env: Some(BTreeMap::new()),
            overrides: None,
        })
        .expect("loads")
    };
    let warnings =
        |l: &secutix_sync::config::Loaded| secutix_sync::config::exposed_secret_files(&l.config, l.file.as_deref());

    write_config(false);
    chmod(&config_file, 0o644);
    chmod(&secret, 0o644);
    let w = warnings(&loaded(&config_file));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "secutix.secret_file");
    assert!(
        w[0].message.contains("0644") && w[0].message.contains("every user"),
        "{}",
        w[0]
    );
    chmod(&secret, 0o640);
    let w = warnings(&loaded(&config_file));
    assert!(w[0].message.contains("its group"), "{w:?}");
    chmod(&secret, 0o600);
    assert!(
        warnings(&loaded(&config_file)).is_empty(),
        "a 0644 file without secrets is fine"
    );

    write_config(true);
    chmod(&config_file, 0o644);
    let w = warnings(&loaded(&config_file));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "secutix.secret");
    assert!(
        w[0].message.contains("config.toml") && !w[0].message.contains("inline-s3cret"),
        "{}",
        w[0]
    );
    chmod(&config_file, 0o600);
    assert!(warnings(&loaded(&config_file)).is_empty());

    // The control token file and the targets' secret files alike.
    let token = dir.path().join("control-token");
    std::fs::write(&token, format!("{}\n", "t".repeat(40))).expect("write");
    chmod(&token, 0o644);
    let hook = dir.path().join("webhook-secret");
    std::fs::write(&hook, "hmac\n").expect("write");
    chmod(&hook, 0o604);
    let cfg = load(&format!(
        "[control]\ntoken_file = \"{}\"\n[[targets]]\nname = \"agency\"\nkind = \"webhook\"\n\
         [targets.webhook]\nurl = \"https://cms.example.org\"\nsecret_file = \"{}\"\n",
        token.display(),
        hook.display()
    ))
    .expect("loads");
    let keys: Vec<String> = secutix_sync::config::exposed_secret_files(&cfg, None)
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, ["control.token_file", "targets[0].webhook.secret_file"]);
}

#[test]
fn validate_config_prints_the_warning_and_never_the_credentials_of_a_url() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("config.toml");
    std::fs::write(
        &config_file,
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"O\"\npartner = \"P\"\nsecret = \"inline-s3cret\"\n\
         base_url = \"http://proxy-user:proxy-pa55@127.0.0.1:9\"\n[store]\npath = \"/nonexistent-unused\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secutix-sync"))
        .arg("--config")
        .arg(&config_file)
        .arg("validate-config")
        .env_clear()
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("warning:") && text.contains("secutix.secret"), "{text}");
    assert!(text.contains("http://***@127.0.0.1:9"), "{text}");
    assert!(
        !text.contains("proxy-pa55") && !text.contains("inline-s3cret"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Item 8: credentials in URLs
// ---------------------------------------------------------------------------------------------------------

/// `http://user:<password>@127.0.0.1:<a port nobody listens on>`.
async fn refusing_url(password: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://user:{password}@127.0.0.1:{port}")
}

#[tokio::test(start_paused = true)]
async fn secutix_url_credentials_never_reach_errors_status_or_the_store() {
    let base = refusing_url("base-pa55").await;
    let clock = common::clock();
    let (store, _dir) = common::store(&clock);
    let cfg = common::config(&base, "rest", "");
    let client = common::client(&cfg, &store);
    assert_eq!(client.base_url(), base.replace("user:base-pa55@", "***@"));
    assert!(!format!("{client:?}").contains("base-pa55"));
    let err = secutix_sync::import::run_import(
        &client,
        &store,
        &cfg.catalogue,
        secutix_sync::import::ImportOptions::default(),
    )
    .await
    .expect_err("nobody listens");
    let shown = err.to_string();
    assert!(shown.contains("***@127.0.0.1"), "{shown}");
    let history = serde_json::to_string(&store.import_history(10).expect("history")).expect("json");
    let outbox = Outbox::open(&store).expect("outbox");
    let status = serde_json::to_string(&secutix_sync::daemon::status::status_document(
        &cfg, &store, &outbox, None,
    ))
    .expect("the status document serialises");
    for (what, text) in [("error", &shown), ("import history", &history), ("status", &status)] {
        assert!(!text.contains("base-pa55"), "the password is in the {what}: {text}");
    }
}

#[tokio::test]
async fn webhook_url_credentials_are_sent_but_never_shown_nor_stored() {
    let secutix = common::cms::SecuTix::start(common::catalog_n(2)).await;
    let receiver = MockHttp::start().await;
    let url = format!("{}/hooks", receiver.uri().replace("http://", "http://user:hook-pa55@"));
    // A receiver (or a proxy in front of it) whose error pages quote the URL it was called with.
    let quoted = url.clone();
    receiver.handle("PUT", "/hooks/", move |_| {
        Some(Reply::status(500).body(format!("upstream {quoted} is not answering")))
    });
    receiver.handle("HEAD", "/hooks", |_| Some(Reply::status(503)));
    let settings = WebhookSettings {
        url,
        mode: WebhookMode::Put,
        secret: None,
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    let target: Arc<dyn Target> =
        Arc::new(WebhookTarget::new("agency", &settings, Duration::from_secs(5)).expect("target"));
    let err = target.check().await.expect_err("503");
    assert!(
        err.to_string().contains("http://***@127.0.0.1") && !err.to_string().contains("hook-pa55"),
        "{err}"
    );
    let daemon = common::cms::Daemon::new(
        &secutix,
        target,
        common::cms::clock_at(chrono::Duration::zero()),
        DeletePolicy::Unpublish,
    );
    daemon.import().await;
    daemon.plan();
    let report = daemon.drain().await;
    assert_eq!(report.delivered, 0);
    // The credentials are used (Basic authentication)…
    let put = receiver.requests_to("/hooks/");
    assert!(!put.is_empty());
    assert!(put[0].header("authorization").is_some_and(|a| a.starts_with("Basic ")));
    // …and never stored: outbox, dead letters.
    let pending = daemon.outbox.pending("agency").expect("pending");
    let dead = daemon
        .outbox
        .dead_letters(&["agency".to_owned()])
        .expect("dead letters");
    assert!(!pending.is_empty() || !dead.is_empty());
    for e in pending.iter().filter_map(|p| p.last_error.as_deref()) {
        assert!(e.contains("upstream http://***@127.0.0.1"), "{e}");
    }
    let stored = format!(
        "{}{}",
        serde_json::to_string(&pending).expect("json"),
        serde_json::to_string(&dead).expect("json")
    );
    assert!(!stored.contains("hook-pa55"), "{stored}");
}

// ---------------------------------------------------------------------------------------------------------
// Item 20: JSON errors
// ---------------------------------------------------------------------------------------------------------

/// The control API's router on an app whose SecuTix is never called, and the folder (keep it).
fn control_router() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("store");
    std::fs::create_dir_all(&store_path).expect("store dir");
    let toml = format!(
        "[secutix]\ninstitution = \"MOSA\"\nbase_url = \"http://127.0.0.1:9\"\noperator = \"O\"\npartner = \"P\"\n\
         secret = \"s\"\n[store]\npath = \"{}\"\n[control]\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"website\"\n\
         kind = \"files\"\n[targets.files]\npath = \"{}\"\n",
        store_path.display(),
        dir.path().join("out").display()
    );
    let sources = Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(toml),
    };
    let config = Config::load(&sources).expect("config").config;
    let store = secutix_sync::store::Store::open(&store_path, 16, common::clock()).expect("store");
    let app = secutix_sync::daemon::App::build(config, sources, store).expect("app");
    (secutix_sync::control::router(app), dir)
}

const TOKEN: &str = "a-test-control-token-of-some-length";

async fn call(router: &axum::Router, req: axum::http::Request<axum::body::Body>) -> (u16, String, Value) {
    use tower::ServiceExt as _;
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, ct, json)
}

fn request(
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let mut b = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).expect("request")
}

#[tokio::test(start_paused = true)]
async fn every_control_api_error_is_json_and_unknown_filters_are_refused() {
    let (router, _dir) = control_router();
    let json_ct = Some("application/json");
    let big = format!("{{\"scope\": \"{}\"}}", "x".repeat(100 * 1024));
    let cases: Vec<(&str, axum::http::Request<axum::body::Body>, u16, &str)> = vec![
        (
            "unknown availability",
            request("GET", "/entries?availability=bogus", None, ""),
            400,
            "almost_full",
        ),
        (
            "limit not a number",
            request("GET", "/entries?limit=abc", None, ""),
            400,
            "limit",
        ),
        (
            "no content type",
            request("POST", "/resync", None, "{\"scope\": \"all\"}"),
            415,
            "Content-Type: application/json",
        ),
        ("not JSON", request("POST", "/resync", json_ct, "{scope"), 400, "JSON"),
        (
            "wrong type",
            request("POST", "/resync", json_ct, "{\"scope\": 5}"),
            422,
            "scope",
        ),
        ("too large", request("POST", "/resync", json_ct, big), 413, "64 KiB"),
        (
            "unknown route",
            request("GET", "/nope", None, ""),
            404,
            "no route GET /nope",
        ),
        ("wrong method", request("DELETE", "/status", None, ""), 405, "GET"),
        (
            "id not a number",
            request("POST", "/dlq/website/abc/replay", None, ""),
            400,
            "abc",
        ),
    ];
    for (what, req, code, says) in cases {
        let (status, ct, body) = call(&router, req).await;
        assert_eq!(status, code, "{what}: {body}");
        assert!(ct.starts_with("application/json"), "{what}: content-type {ct}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
        assert!(error.contains(says), "{what}: {error}");
    }
    let (status, _, body) = call(&router, request("GET", "/entries?availability=sold_out", None, "")).await;
    assert_eq!((status, &body["total"]), (200, &json!(0)), "a known value still works");
}

#[test]
fn the_new_keys_are_documented_where_operators_look() {
    const README: &str = include_str!("../../README.md");
    const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
    const PASS_CULTURE: &str = include_str!("../../docs/passculture.md");
    for key in [
        "secutix.allow_insecure_http",
        "webhook.allow_insecure_http",
        "control.max_connections",
        "control.header_read_timeout",
        "control.idle_timeout",
    ] {
        assert!(README.contains(&format!("`{key}`")), "README: {key}");
    }
    for line in [
        "\nallow_insecure_http = false\n",
        "\nmax_connections = 256\n",
        "\nheader_read_timeout = \"10s\"\n",
        "\nidle_timeout = \"60s\"\n",
        "# allow_insecure_http = false                    #",
        "# allow_insecure_http = false            #",
    ] {
        assert!(DEFAULT_TOML.contains(line), "default.toml: {line:?}");
    }
    assert!(PASS_CULTURE.contains("| `allow_insecure_http` |"));
    let robustness = README.split("\n## Robustness\n").nth(1).expect("Robustness section");
    for limit in [
        "control.max_connections",
        "64 KiB",
        "LimitNOFILE=8192",
        "allow_insecure_http",
        "32 characters",
    ] {
        assert!(robustness.contains(limit), "Robustness names {limit}");
    }
}
