//! Hostile SecuTix answers (issue 13): what a broken or malicious server could send, and what must hold.
//!
//! - **Nesting** (item 1): 10,000 and 100,000 nested elements in a product, a season field, a SOAP Fault,
//!   a getPOSConfig answer, an availability answer and the getCatalog XML string, in both transports: a
//!   clear error naming the call and the depth limit, never a stack overflow; an import keeps the
//!   catalogue in force, a poll fails cleanly.
//! - **Size** (item 3): answers other than the catalogue larger than `secutix.max_small_response_mib`, or
//!   holding more values than it allows, are refused without being held; the real binary's peak RSS stays
//!   under 150 MB whatever getPOSConfig or an availability call sends.
//! - **POS configuration** (item 10): a getPOSConfig answer without a point of sale id or a usable time
//!   zone is refused like a bad catalogue; the POS configuration, the time zone and the catalogue in force
//!   stay.
//! - **Implausible values** (item 11): a negative price, a start in year 9999, a duration of centuries
//!   are left out and listed in the import report (and by the `import` command); NUL, escape and
//!   bidirectional override characters are stripped; the entry a CMS receives has none of them, and its
//!   times are RFC 3339.
//! - **Stopping** (item 15): a shutdown during a retry back-off or an `in_progress` wait ends the daemon at
//!   once (not after `daemon.shutdown_grace`), and the import's report keeps the error it was retrying; an
//!   import the process abandons mid-retry is recorded as interrupted with that error.
//!
//! Everything runs on loopback (127.0.0.1, port 0) and, where time matters, on paused tokio time; the
//! tests of the real binary (peak RSS, the `import` command) run on real time without timed assertions.

use crate::common;
use crate::common::binary;

use crate::common::*;
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::import::{ImportOptions, run_import};
use secutix_sync::secutix::availability::{AvailabilityMethod, parse_answer};
use secutix_sync::secutix::parse::{CollectSink, MAX_DEPTH, ParseError};
use secutix_sync::secutix::settings::Transport;
use secutix_sync::secutix::wire::ConvertCtx;
use secutix_sync::secutix::{CallError, RetryPolicy, decode_result, json as sjson, small_values, xml as sxml};
use secutix_sync::store::ImportOutcome;
use serde_json::json;

const POS: &str = "/tnseb/backend-apis/catalogService/v1_33/getPOSConfig";
const CAT: &str = "/tnseb/backend-apis/catalogService/v1_33/getCatalogDetailed";

fn ctx() -> ConvertCtx {
    ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Item 1: nesting
// ---------------------------------------------------------------------------------------------------------

/// `levels` elements `<x>` inside one another (about 7 bytes a level).
fn deep_xml(levels: usize) -> String {
    let mut s = String::with_capacity(levels * 7);
    for _ in 0..levels {
        s.push_str("<x>");
    }
    for _ in 0..levels {
        s.push_str("</x>");
    }
    s
}

/// `levels` JSON arrays inside one another.
fn deep_json(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

fn soap_envelope(method: &str, inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:{method}Response xmlns:ns2="urn:x"><return>{inner}</return></ns2:{method}Response></S:Body></S:Envelope>"#
    )
}

/// Asserts `e` is the depth refusal, naming `call` and the limit.
fn assert_too_deep(e: &dyn std::fmt::Display, call: &str, what: &str) {
    let msg = e.to_string();
    assert!(msg.contains(call), "{what}: the error names the call: {msg}");
    assert!(
        msg.contains(&format!("deeper than {MAX_DEPTH} levels")),
        "{what}: the error names the depth limit: {msg}"
    );
    assert!(
        msg.len() < 1_000,
        "{what}: the error stays readable ({} bytes)",
        msg.len()
    );
}

/// Every SOAP place where a hostile answer could nest, for `levels` levels.
fn soap_cases(levels: usize) -> Vec<(&'static str, String)> {
    let deep = deep_xml(levels);
    vec![
        (
            "product",
            soap_envelope(
                "getCatalogDetailed",
                &format!(
                    "<statusCode>success</statusCode><catalogData><seasons><id>1</id><products><id>1</id>{deep}</products></seasons></catalogData>"
                ),
            ),
        ),
        (
            "product event",
            soap_envelope(
                "getCatalogDetailed",
                &format!(
                    "<statusCode>success</statusCode><catalogData><seasons><products><id>1</id><event><performances><id>2</id>{deep}</performances></event></products></seasons></catalogData>"
                ),
            ),
        ),
        (
            "season field",
            soap_envelope(
                "getCatalogDetailed",
                &format!(
                    "<statusCode>success</statusCode><catalogData><seasons><id>1</id><externalName>{deep}</externalName></seasons></catalogData>"
                ),
            ),
        ),
        (
            "unknown element",
            soap_envelope(
                "getCatalogDetailed",
                &format!("<statusCode>success</statusCode><catalogData><other>{deep}</other></catalogData>"),
            ),
        ),
        (
            "SOAP Fault",
            format!(
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><detail>{deep}</detail></soap:Fault></soap:Body></soap:Envelope>"#
            ),
        ),
        (
            "SOAP Header",
            format!(
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>{deep}</soap:Header><soap:Body/></soap:Envelope>"#
            ),
        ),
    ]
}

#[test]
fn deeply_nested_soap_catalogues_are_refused_with_the_depth() {
    for levels in [MAX_DEPTH + 1, 10_000, 100_000] {
        for (what, body) in soap_cases(levels) {
            let mut sink = CollectSink::default();
            let e = sxml::parse_catalog_soap("getCatalogDetailed", body.as_bytes(), &ctx(), &mut sink, None)
                .expect_err(what);
            assert!(matches!(e, ParseError::TooDeep { .. }), "{what} at {levels}: {e}");
            assert_too_deep(&e, "getCatalogDetailed", what);
            // The getCatalog reader of the same bytes: elements inside catalogData are refused as such
            // (it expects the XML string); the envelope's own levels are limited the same way.
            let mut out = Vec::new();
            let e = sxml::parse_catalog_soap("getCatalog", body.as_bytes(), &ctx(), &mut sink, Some(&mut out))
                .expect_err(what);
            match e {
                ParseError::TooDeep { .. } => assert_too_deep(&e, "getCatalog", what),
                other => assert!(other.to_string().contains("getCatalog: "), "{what}: {other}"),
            }
        }
    }
}

#[test]
fn the_nesting_limit_accepts_everything_up_to_it() {
    // A product whose unknown field nests as deep as the limit allows (envelope levels included) parses:
    // the limit refuses only what no answer needs, and what is accepted does not overflow the stack
    // (this runs on a test thread's 2 MiB stack).
    let wrapper = 7; // Envelope, Body, Response, return, catalogData, seasons, products
    let body = soap_envelope(
        "getCatalogDetailed",
        &format!(
            "<statusCode>success</statusCode><catalogData><seasons><products><id>1</id>{}</products></seasons></catalogData>",
            deep_xml(MAX_DEPTH - wrapper)
        ),
    );
    let mut sink = CollectSink::default();
    sxml::parse_catalog_soap("getCatalogDetailed", body.as_bytes(), &ctx(), &mut sink, None).expect("at the limit");
    assert_eq!(sink.products.len(), 1);
    let body = soap_envelope(
        "getPOSConfig",
        &format!(
            "<statusCode>success</statusCode><posConfigData>{}</posConfigData>",
            deep_xml(MAX_DEPTH - 5)
        ),
    );
    sxml::parse_soap_result("getPOSConfig", body.as_bytes(), small_values(4)).expect("at the limit");
}

#[test]
fn deeply_nested_get_catalog_strings_are_refused() {
    for levels in [10_000, 100_000] {
        let doc = format!(
            "<catalog><seasons><products><id>1</id>{}</products></seasons></catalog>",
            deep_xml(levels)
        );
        let mut sink = CollectSink::default();
        let e = sxml::parse_catalog_document("getCatalog", doc.as_bytes(), &ctx(), &mut sink).expect_err("deep");
        assert_too_deep(&e, "getCatalog", "getCatalog document");
        // The same document carried in a REST getCatalog answer.
        let body = json!({"statusCode": "success", "catalogData": doc}).to_string();
        let mut env = sjson::parse_catalog_slice("getCatalog", body.as_bytes(), &ctx(), &mut sink).expect("envelope");
        let xml = env.catalog_xml.take().expect("the XML string");
        let e = sxml::parse_catalog_document("getCatalog", xml.as_bytes(), &ctx(), &mut sink).expect_err("deep");
        assert_too_deep(&e, "getCatalog", "REST getCatalog document");
    }
}

#[test]
fn deeply_nested_json_catalogues_are_refused_with_the_depth() {
    for levels in [MAX_DEPTH + 1, 10_000, 100_000] {
        let deep = deep_json(levels);
        for (what, body) in [
            (
                "product",
                format!(
                    r#"{{"statusCode":"success","catalogData":{{"seasons":[{{"products":[{{"id":1,"x":{deep}}}]}}]}}}}"#
                ),
            ),
            (
                "season field",
                format!(r#"{{"statusCode":"success","catalogData":{{"seasons":[{{"id":1,"externalName":{deep}}}]}}}}"#),
            ),
            (
                "skipped field",
                format!(r#"{{"statusCode":"success","catalogData":{{"other":{deep}}}}}"#),
            ),
            (
                "status detail",
                format!(r#"{{"statusCode":"error","statusDetail":{deep}}}"#),
            ),
        ] {
            let mut sink = CollectSink::default();
            let e =
                sjson::parse_catalog_slice("getCatalogDetailed", body.as_bytes(), &ctx(), &mut sink).expect_err(what);
            assert!(matches!(e, ParseError::TooDeep { .. }), "{what} at {levels}: {e}");
            assert_too_deep(&e, "getCatalogDetailed", what);
            // The streaming reader with a small buffer.
            let e = sjson::parse_catalog_reader(
                "getCatalogDetailed",
                std::io::BufReader::with_capacity(64, body.as_bytes()),
                &ctx(),
                &mut sink,
            )
            .expect_err(what);
            assert_too_deep(&e, "getCatalogDetailed", what);
        }
    }
}

#[test]
fn deeply_nested_pos_config_and_availability_answers_are_refused() {
    for levels in [10_000, 100_000] {
        let xml = deep_xml(levels);
        let json = deep_json(levels);
        let pos_soap = soap_envelope(
            "getPOSConfig",
            &format!("<statusCode>success</statusCode><posConfigData>{xml}</posConfigData>"),
        );
        let e =
            decode_result(Transport::Soap, "getPOSConfig", pos_soap.as_bytes(), small_values(4)).expect_err("deep POS");
        assert_too_deep(&e, "getPOSConfig", "SOAP getPOSConfig");
        let pos_rest = format!(r#"{{"statusCode":"success","posConfigData":{json}}}"#);
        let e =
            decode_result(Transport::Rest, "getPOSConfig", pos_rest.as_bytes(), small_values(4)).expect_err("deep POS");
        assert_too_deep(&e, "getPOSConfig", "REST getPOSConfig");
        for method in [
            AvailabilityMethod::GetUpdatedAvailabilities,
            AvailabilityMethod::GetEventAvailability,
            AvailabilityMethod::GetPerformanceAvailability,
            AvailabilityMethod::GetProductAvailability,
        ] {
            let field = method.data_field();
            let soap = soap_envelope(
                method.as_str(),
                &format!("<statusCode>success</statusCode><{field}>{xml}</{field}>"),
            );
            let e = parse_answer(Transport::Soap, method, soap.as_bytes()).expect_err("deep SOAP availability");
            assert_too_deep(&e, method.as_str(), "SOAP availability");
            let rest = format!(r#"{{"statusCode":"success","{field}":{json}}}"#);
            let e = parse_answer(Transport::Rest, method, rest.as_bytes()).expect_err("deep REST availability");
            assert_too_deep(&e, method.as_str(), "REST availability");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_deeply_nested_availability_answer_fails_the_poll_cleanly() {
    use secutix_sync::availability::{PollOptions, Poller};
    for transport in ["rest", "soap"] {
        let m = MockHttp::start().await;
        let answer = if transport == "rest" {
            json_text(format!(
                r#"{{"statusCode":"success","eventAvailabilityData":{}}}"#,
                deep_json(100_000)
            ))
        } else {
            Reply::xml(soap_envelope(
                "getEventAvailability",
                &format!(
                    "<statusCode>success</statusCode><eventAvailabilityData>{}</eventAvailabilityData>",
                    deep_xml(100_000)
                ),
            ))
        };
        m.handle("POST", "/", move |_| Some(answer.clone()));
        let clock = clock();
        let (store, _dir) = store(&clock);
        import_body(&store, &catalog_n(3), false);
        let cfg = config(&m.uri(), transport, "");
        let poller = Poller::from_config(&cfg.secutix, &cfg.availability, store.clone()).expect("poller");
        let report = poller
            .poll_once(PollOptions { product: None })
            .await
            .expect("the poll runs");
        assert!(report.calls > 0, "{transport}: SecuTix was asked");
        let error = report.error.unwrap_or_default();
        assert_too_deep(&error, "getEventAvailability", transport);
        assert!(report.changes.is_empty(), "{transport}: nothing changed");
    }
}

async fn soap_catalogue_mock(pos: String, catalogue: String) -> MockHttp {
    let m = MockHttp::start().await;
    m.handle("POST", &soap_path("catalog", "CatalogService"), move |req| {
        Some(if req.text().contains(":getPOSConfig") {
            Reply::xml(pos.clone())
        } else {
            Reply::xml(catalogue.clone())
        })
    });
    m
}

#[tokio::test(start_paused = true)]
async fn a_deeply_nested_import_fails_cleanly_and_keeps_the_catalogue_in_force() {
    let good_pos = soap_response("getPOSConfig", &pos_config());
    let good = soap_response("getCatalogDetailed", &catalog_n(3));
    let m = soap_catalogue_mock(good_pos.clone(), good).await;
    let venue = Venue::new(
        &m.uri(),
        "soap",
        "[catalogue]\nmin_interval = \"0s\"\ndeadline = \"1m\"",
    );
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first import");
    let generation = store.generation().expect("generation");
    let before: Vec<_> = store
        .catalog()
        .expect("view")
        .expect("catalogue")
        .product_ids()
        .collect();

    let deep_product = soap_cases(10_000).remove(0).1;
    let deep_pos = soap_envelope(
        "getPOSConfig",
        &format!(
            "<statusCode>success</statusCode><posConfigData>{}</posConfigData>",
            deep_xml(10_000)
        ),
    );
    let deep_fault = soap_cases(10_000).remove(4).1;
    for (what, pos, catalogue, call) in [
        ("a product", good_pos.clone(), deep_product, "getCatalogDetailed"),
        ("getPOSConfig", deep_pos, String::new(), "getPOSConfig"),
        ("a SOAP Fault", good_pos.clone(), deep_fault, "getCatalogDetailed"),
    ] {
        let m = soap_catalogue_mock(pos, catalogue).await;
        let cfg = config(
            &m.uri(),
            "soap",
            "[catalogue]\nmin_interval = \"0s\"\ndeadline = \"1m\"",
        );
        let client = common::client(&cfg, store);
        let e = venue
            .import_with(&client, ImportOptions::default())
            .await
            .expect_err(what);
        assert_too_deep(&e, call, what);
        assert!(
            e.to_string().contains("the catalogue in force is unchanged"),
            "{what}: {e}"
        );
        assert_eq!(
            store.generation().expect("generation"),
            generation,
            "{what}: nothing switched"
        );
        let after: Vec<_> = store
            .catalog()
            .expect("view")
            .expect("catalogue")
            .product_ids()
            .collect();
        assert_eq!(after, before, "{what}: the catalogue in force is kept");
        let last = store.import_history(1).expect("history").remove(0);
        assert_eq!(last.outcome, ImportOutcome::Failed, "{what}");
        assert_too_deep(&last.error.unwrap_or_default(), call, what);
    }
}

#[tokio::test(start_paused = true)]
async fn a_deeply_nested_rest_import_fails_cleanly() {
    let m = MockHttp::start().await;
    m.on("POST", POS, [Reply::json(&pos_config())]);
    let deep = deep_json(100_000);
    m.on(
        "POST",
        CAT,
        [Reply::status(200)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"statusCode":"success","catalogData":{{"seasons":[{{"products":[{{"id":1,"x":{deep}}}]}}]}}}}"#
            ))],
    );
    let venue = Venue::new(&m.uri(), "rest", "");
    let store = &venue.store;
    let e = venue.import().await.expect_err("deep");
    assert!(
        matches!(
            e,
            secutix_sync::import::ImportError::Call(CallError::Parse(ParseError::TooDeep { .. }))
        ),
        "{e}"
    );
    assert_too_deep(&e, "getCatalogDetailed", "REST import");
    assert_eq!(store.generation().expect("generation"), None);
}

// ---------------------------------------------------------------------------------------------------------
// Item 3: size of the answers other than the catalogue
// ---------------------------------------------------------------------------------------------------------

const MIB: usize = 1024 * 1024;

/// A JSON answer of `bytes` bytes: a valid result whose `posConfigData` (or `field`) is a long list.
fn big_json(field: &str, bytes: usize) -> String {
    let head = format!(r#"{{"statusCode":"success","{field}":["#);
    let n = (bytes.saturating_sub(head.len() + 2)) / 2;
    let mut s = String::with_capacity(bytes);
    s.push_str(&head);
    for i in 0..n {
        s.push_str(if i == 0 { "0" } else { ",0" });
    }
    s.push_str("]}");
    s
}

/// A JSON answer with one object of distinct keys (`"k0":0,"k1":0,…`), about `bytes` long.
fn wide_json(field: &str, bytes: usize) -> String {
    let mut s = format!(r#"{{"statusCode":"success","{field}":{{"#);
    let mut i = 0usize;
    while s.len() + 24 < bytes {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(r#""k{i}":0"#));
        i += 1;
    }
    s.push_str("}}");
    s
}

/// A SOAP answer of about `bytes` bytes made of empty elements with distinct names.
fn big_soap(method: &str, field: &str, bytes: usize) -> String {
    let mut inner = format!("<statusCode>success</statusCode><{field}>");
    let mut i = 0usize;
    while inner.len() + 64 < bytes {
        inner.push_str(&format!("<k{i}/>"));
        i += 1;
    }
    inner.push_str(&format!("</{field}>"));
    soap_envelope(method, &inner)
}

fn assert_answer_too_large(e: &CallError, call: &str, what: &str) {
    assert!(matches!(e, CallError::AnswerTooLarge { .. }), "{what}: {e}");
    let msg = e.to_string();
    assert!(msg.contains(call), "{what}: names the call: {msg}");
    assert!(
        msg.contains("secutix.max_small_response_mib"),
        "{what}: names the setting: {msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn answers_larger_than_the_small_limit_are_refused() {
    let huge = big_json("posConfigData", 40 * MIB);
    for (what, reply) in [
        ("with its length declared", json_text(huge.clone())),
        (
            "streamed without a length",
            json_text(huge.clone()).chunked(64 * 1024, std::time::Duration::ZERO),
        ),
    ] {
        let m = MockHttp::start().await;
        m.on("POST", POS, [reply]);
        let venue = Venue::new(&m.uri(), "rest", "");
        let (store, cfg) = (&venue.store, &venue.cfg);
        let e = client(cfg, store)
            .get_pos_config(RetryPolicy::once())
            .await
            .expect_err(what);
        assert_answer_too_large(&e, "getPOSConfig", what);
        assert_eq!(
            store.calls_in_month(venue.clock.now()),
            1,
            "{what}: the call counts against the quota, once"
        );
    }
    // Availability, both transports, and a limit of 1 MiB.
    for transport in ["rest", "soap"] {
        let m = MockHttp::start().await;
        let body = if transport == "rest" {
            big_json("eventAvailabilityData", 2 * MIB)
        } else {
            big_soap("getEventAvailability", "eventAvailabilityData", 2 * MIB)
        };
        m.handle("POST", "/", move |_| {
            Some(
                Reply::status(200)
                    .header("content-type", "text/plain")
                    .body(body.clone()),
            )
        });
        let clock = clock();
        let (store, _dir) = store(&clock);
        let mut cfg = config(&m.uri(), transport, "");
        cfg.secutix.max_small_response_mib = 1;
        let mut attempts = 0;
        let e = client(&cfg, &store)
            .get_performances_availability(
                AvailabilityMethod::GetEventAvailability,
                1,
                &[1, 2],
                RetryPolicy::once(),
                &mut attempts,
            )
            .await
            .expect_err(transport);
        assert_answer_too_large(&e, "getEventAvailability", transport);
        assert!(e.to_string().contains("more than 1 MiB"), "{e}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_token_endpoint_answer_is_refused() {
    let m = MockHttp::start().await;
    m.on(
        "POST",
        "/tnai/backend-apis/v1/auth",
        [json_text(big_json("token", 8 * MIB))],
    );
    let clock = clock();
    let (store, _dir) = store(&clock);
    let mut cfg = config(&m.uri(), "rest", "");
    cfg.secutix.auth = secutix_sync::secutix::settings::AuthMode::TokenEndpoint;
    let e = client(&cfg, &store)
        .get_pos_config(RetryPolicy::once())
        .await
        .expect_err("too large");
    assert_answer_too_large(&e, "v1/auth", "token endpoint");
}

#[test]
fn dense_answers_within_the_byte_limit_are_refused_by_their_value_count() {
    let limit = small_values(4);
    for (what, body, transport) in [
        (
            "a list of zeros",
            big_json("posConfigData", 4 * MIB - 64),
            Transport::Rest,
        ),
        (
            "an object of many keys",
            wide_json("posConfigData", 4 * MIB - 64),
            Transport::Rest,
        ),
        (
            "many empty elements",
            big_soap("getPOSConfig", "posConfigData", 4 * MIB - 64),
            Transport::Soap,
        ),
    ] {
        let e = decode_result(transport, "getPOSConfig", body.as_bytes(), limit).expect_err(what);
        assert_answer_too_large(&e, "getPOSConfig", what);
    }
    // A real answer is far below: 200 performances with their levels and counts.
    let real = json!({"statusCode": "success", "eventAvailabilityData": {"eventAvailabilities":
        (0..200).map(|i| json!({"performanceId": 10_228_321_399_304_i64 + i, "level": "GOOD", "quantity": 120, "quota": 400}))
        .collect::<Vec<_>>()}});
    let text = real.to_string();
    parse_answer(
        Transport::Rest,
        AvailabilityMethod::GetEventAvailability,
        text.as_bytes(),
    )
    .expect("a real answer");
    assert!(text.len() < 32 * 1024, "{} bytes", text.len());
}

/// 200 with a JSON body given as text.
fn json_text(body: String) -> Reply {
    Reply::status(200).header("content-type", "application/json").body(body)
}

/// What a child process of the real binary did: its exit code, its peak RSS (MB), its stderr.
struct Measured {
    code: i32,
    peak_mb: u64,
    stderr: String,
}

/// Runs the binary with `args` on `site` and measures its peak RSS. Blocking: call it from
/// `spawn_blocking`.
///
/// Linux carries a process's peak RSS across `exec` from the memory it was forked with, so a binary
/// started from this test process would report at least this process's own peak (the hostile bodies it
/// serves). The binary is therefore started by a small helper process (this test executable running
/// only [`peak_rss_helper`]), whose fork is small; the helper reads the binary's `ru_maxrss` with
/// `wait4` and prints it.
fn measured(site: &binary::Site, args: &[&str]) -> Measured {
    let err_path = site.dir.path().join(format!("stderr-{}", args.join("-")));
    let out = std::process::Command::new(std::env::current_exe().expect("test executable"))
        .args([
            "hostile::peak_rss_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOSTILE_BIN", binary::bin())
        .env("HOSTILE_CONFIG", &site.config)
        .env("HOSTILE_ARGS", args.join(" "))
        .env("HOSTILE_STDERR", &err_path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> i64 {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("the helper reports {name}: {stdout}"))
    };
    Measured {
        code: field("HOSTILE_CODE=") as i32,
        peak_mb: (field("HOSTILE_PEAK_KIB=") as u64) / 1024,
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Not a test of its own: the child process of [`measured`]. Runs the binary as `HOSTILE_*` says and
/// prints its exit code and peak RSS (`wait4`'s `ru_maxrss`, in KiB on Linux).
#[test]
#[ignore = "a helper the peak-RSS test runs in a child process"]
fn peak_rss_helper() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the peak-RSS test"));
    let err = std::fs::File::create(var("HOSTILE_STDERR")).expect("stderr file");
    // Waited for with `wait4` below, which also gives its resource usage (`Child::wait` does not).
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(var("HOSTILE_BIN"))
        .env_clear()
        .env("SECUTIX_SYNC_LOG", "info")
        .arg("--config")
        .arg(var("HOSTILE_CONFIG"))
        .args(var("HOSTILE_ARGS").split(' '))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn the binary");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not waited for yet; `status` and `usage` are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    println!("HOSTILE_CODE={code} HOSTILE_PEAK_KIB={}", usage.ru_maxrss);
}

/// What the mock SecuTix answers to getPOSConfig and to the availability calls.
#[derive(Clone)]
struct Hostile {
    pos: Reply,
    availability: Reply,
}

async fn hostile_secutix(transport: &'static str, script: std::sync::Arc<std::sync::Mutex<Hostile>>) -> MockHttp {
    let m = MockHttp::start().await;
    // Performances ten days from now (real time: another process reads the clock).
    let days = (chrono::Utc::now() - t0()).num_days() + 10;
    let catalogue = catalog(vec![season(
        1,
        "S26",
        days - 40,
        (0..3)
            .map(|i| product(1000 + i, &format!("Spectacle {i}"), &[(5000 + i, days)]))
            .collect(),
    )]);
    m.handle("POST", "/", move |req| {
        let text = req.text();
        let h = script.lock().expect("script").clone();
        let method = |name: &str| {
            if transport == "rest" {
                req.uri.ends_with(&format!("/{name}"))
            } else {
                text.contains(&format!(":{name}>")) || text.contains(&format!(":{name}/>"))
            }
        };
        Some(if method("getPOSConfig") {
            h.pos
        } else if method("getCatalogDetailed") {
            if transport == "rest" {
                Reply::json(&catalogue)
            } else {
                Reply::xml(soap_response("getCatalogDetailed", &catalogue))
            }
        } else {
            h.availability
        })
    });
    m
}

/// Peak RSS of the real binary while SecuTix sends hostile answers to getPOSConfig (`import`) and to the
/// availability calls (`availability`). Before the limit, a 40 MiB getPOSConfig answer took 895 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_under_150_mb_whatever_getposconfig_and_availability_send() {
    let normal_pos = |t: &str| {
        if t == "rest" {
            Reply::json(&pos_config())
        } else {
            Reply::xml(soap_response("getPOSConfig", &pos_config()))
        }
    };
    let mut figures = Vec::new();
    let mut peaks = Vec::new();
    for transport in ["rest", "soap"] {
        let script = std::sync::Arc::new(std::sync::Mutex::new(Hostile {
            pos: normal_pos(transport),
            availability: Reply::status(503),
        }));
        let m = hostile_secutix(transport, script.clone()).await;
        // (what, getPOSConfig answer, availability answer, command)
        let cases: Vec<(&str, Reply, Reply, &'static str)> = if transport == "rest" {
            vec![
                (
                    "a 40 MiB getPOSConfig answer, streamed",
                    json_text(big_json("posConfigData", 40 * MIB)).chunked(256 * 1024, std::time::Duration::ZERO),
                    Reply::status(503),
                    "import",
                ),
                (
                    "a dense 4 MiB getPOSConfig answer",
                    json_text(big_json("posConfigData", 4 * MIB - 64)),
                    Reply::status(503),
                    "import",
                ),
                (
                    "a 4 MiB getPOSConfig object of distinct keys",
                    json_text(wide_json("posConfigData", 4 * MIB - 64)),
                    Reply::status(503),
                    "import",
                ),
                (
                    "a 40 MiB availability answer",
                    normal_pos("rest"),
                    json_text(big_json("eventAvailabilityData", 40 * MIB)),
                    "availability",
                ),
                (
                    "a dense 4 MiB availability answer",
                    normal_pos("rest"),
                    json_text(big_json("eventAvailabilityData", 4 * MIB - 64)),
                    "availability",
                ),
            ]
        } else {
            vec![
                (
                    "a 40 MiB SOAP getPOSConfig answer",
                    Reply::xml(big_soap("getPOSConfig", "posConfigData", 40 * MIB)),
                    Reply::status(503),
                    "import",
                ),
                (
                    "a dense 4 MiB SOAP getPOSConfig answer",
                    Reply::xml(big_soap("getPOSConfig", "posConfigData", 4 * MIB - 64)),
                    Reply::status(503),
                    "import",
                ),
                (
                    "a dense 4 MiB SOAP availability answer",
                    normal_pos("soap"),
                    Reply::xml(big_soap("getEventAvailability", "eventAvailabilityData", 4 * MIB - 64)),
                    "availability",
                ),
                (
                    "a 40 MiB SOAP fault with HTTP 500",
                    normal_pos("soap"),
                    Reply::status(500)
                        .header("content-type", "text/xml")
                        .body(big_soap("Fault", "detail", 40 * MIB)),
                    "availability",
                ),
            ]
        };
        for (what, pos, availability, command) in cases {
            let site = binary::Site::new();
            site.write_config(&format!(
                r#"[secutix]
institution = "MOSA"
base_url = "{base}"
transport = "{transport}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
calls_per_minute = 60000
[catalogue]
min_interval = "0s"
[store]
path = "{store}"
"#,
                base = m.uri(),
                store = site.store.display(),
            ));
            let site = std::sync::Arc::new(site);
            let run = |args: &'static [&'static str]| {
                let s = site.clone();
                tokio::task::spawn_blocking(move || measured(&s, args))
            };
            if command == "availability" {
                // A catalogue first, for the poll.
                *script.lock().expect("script") = Hostile {
                    pos: normal_pos(transport),
                    availability: Reply::status(503),
                };
                let first = run(&["import"]).await.expect("join");
                assert_eq!(first.code, 0, "{what}: first import: {}", first.stderr);
                figures.push(format!(
                    "{transport}: a normal import, for reference: {} MB",
                    first.peak_mb
                ));
            }
            *script.lock().expect("script") = Hostile { pos, availability };
            let r = run(if command == "import" {
                &["import"]
            } else {
                &["availability"]
            })
            .await
            .expect("join");
            figures.push(format!("{transport}: {what}: {} MB", r.peak_mb));
            assert_eq!(r.code, 1, "{what}: the command fails cleanly: {}", r.stderr);
            let named = if what.contains("fault") {
                "getEventAvailability"
            } else {
                "max_small_response_mib"
            };
            assert!(
                r.stderr.contains(named),
                "{what}: the error names {named}: {}",
                r.stderr
            );
            peaks.push((what, r.peak_mb));
        }
    }
    println!(
        "peak RSS of the binary under hostile answers:\n  {}",
        figures.join("\n  ")
    );
    for (what, mb) in peaks {
        assert!(mb < 150, "{what}: peak RSS {mb} MB");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Item 10: a degraded getPOSConfig
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_degraded_pos_config_is_refused_and_the_one_in_force_kept() {
    let good = pos_config();
    let mut cases: Vec<(&str, serde_json::Value)> = vec![
        (
            "empty posConfigData",
            json!({"statusCode": "success", "posConfigData": {}}),
        ),
        (
            "no posId",
            json!({"statusCode": "success", "posConfigData": {"organizationTimeZone": "Europe/Paris", "currencyCode": "EUR"}}),
        ),
        (
            "no time zone",
            json!({"statusCode": "success", "posConfigData": {"posId": 123456789, "currencyCode": "EUR"}}),
        ),
        (
            "an empty time zone",
            json!({"statusCode": "success", "posConfigData": {"posId": 123456789, "organizationTimeZone": " "}}),
        ),
        (
            "an unknown time zone",
            json!({"statusCode": "success", "posConfigData": {"posId": 123456789, "organizationTimeZone": "Mars/Olympus"}}),
        ),
        (
            "null posConfigData",
            json!({"statusCode": "success", "posConfigData": null}),
        ),
        ("no posConfigData", json!({"statusCode": "success"})),
    ];
    let mut changed = good.clone();
    changed["posConfigData"]["organizationTimeZone"] = json!("America/New_York");
    for transport in ["rest", "soap"] {
        let m = MockHttp::start().await;
        let answer = |v: &serde_json::Value| {
            if transport == "rest" {
                Reply::json(v)
            } else {
                Reply::xml(soap_response("getPOSConfig", v))
            }
        };
        let cat = if transport == "rest" {
            Reply::json(&catalog_n(3))
        } else {
            Reply::xml(soap_response("getCatalogDetailed", &catalog_n(3)))
        };
        let script = std::sync::Arc::new(std::sync::Mutex::new(answer(&good)));
        {
            let (script, cat) = (script.clone(), cat.clone());
            m.handle("POST", "/", move |req| {
                let pos = req.uri.ends_with("getPOSConfig") || req.text().contains(":getPOSConfig");
                Some(if pos {
                    script.lock().expect("script").clone()
                } else {
                    cat.clone()
                })
            });
        }
        let venue = Venue::new(&m.uri(), transport, "[catalogue]\nmin_interval = \"0s\"");
        let (store, cfg) = (&venue.store, &venue.cfg);
        let client = client(cfg, store);
        venue
            .import_with(&client, ImportOptions::default())
            .await
            .expect("first import");
        let pos_before = store.pos_config().expect("pos").expect("a POS configuration");
        let generation = store.generation().expect("generation");
        assert_eq!(store.time_zone(), chrono_tz::Europe::Paris);
        for (what, v) in cases.iter_mut() {
            *script.lock().expect("script") = answer(v);
            let e = run_import(&client, store, &cfg.catalogue, ImportOptions { force: true })
                .await
                .expect_err(what);
            let msg = e.to_string();
            assert!(
                msg.contains("getPOSConfig"),
                "{transport}, {what}: names the call: {msg}"
            );
            assert!(
                msg.contains("unchanged"),
                "{transport}, {what}: says nothing changed: {msg}"
            );
            assert_eq!(
                store.pos_config().expect("pos").as_ref(),
                Some(&pos_before),
                "{transport}, {what}: POS kept"
            );
            assert_eq!(
                store.time_zone(),
                chrono_tz::Europe::Paris,
                "{transport}, {what}: time zone kept"
            );
            assert_eq!(
                store.generation().expect("generation"),
                generation,
                "{transport}, {what}: catalogue kept"
            );
            let last = store.import_history(1).expect("history").remove(0);
            assert_eq!(last.outcome, ImportOutcome::Failed, "{transport}, {what}");
        }
        // A complete answer with another time zone is taken.
        *script.lock().expect("script") = answer(&changed);
        run_import(&client, store, &cfg.catalogue, ImportOptions { force: true })
            .await
            .expect("a good POS configuration");
        assert_eq!(store.time_zone(), chrono_tz::America::New_York);
        assert_eq!(
            store.pos_config().expect("pos").and_then(|p| p.time_zone).as_deref(),
            Some("America/New_York")
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Item 11: implausible values
// ---------------------------------------------------------------------------------------------------------

/// A product with a negative price, a start in year 9999 (epoch ms), a duration of 31,700 years and
/// control characters in its texts.
fn implausible_product() -> serde_json::Value {
    let mut p = product(1, "Ham\u{0}let \u{202E}tpircs\u{1b}[31m", &[(11, 5), (12, 6), (13, 7)]);
    let perfs = &mut p["event"]["performances"];
    perfs[0]["prices"] = json!([
        {"audSubCatId": 306159078, "amount": -500000},
        {"audSubCatId": 306159078, "amount": 35000}
    ]);
    perfs[1]["start"] = json!(253_402_297_200_000_i64); // 9999-12-31T23:00:00Z
    perfs[2]["duration"] = json!(1_000_000_000_000_i64);
    p["code"] = json!("HAM\u{2066}LET");
    p["externalDescription"] =
        json!({"translations": [{"locale": "fr", "value": "<p>Drame\u{7}</p>\n<p>en deux parties</p>"}]});
    p
}

#[tokio::test(start_paused = true)]
async fn implausible_values_are_reported_left_out_and_stripped() {
    use secutix_sync::push::{DeletePolicy, Outbox, PlanTarget, Scope};
    let body = catalog(vec![season(1, "S26", -30, vec![implausible_product()])]);
    for transport in ["rest", "soap"] {
        let m = MockHttp::start().await;
        let (pos, cat) = if transport == "rest" {
            (Reply::json(&pos_config()), Reply::json(&body))
        } else {
            (
                Reply::xml(soap_response("getPOSConfig", &pos_config())),
                Reply::xml(soap_response("getCatalogDetailed", &body)),
            )
        };
        m.handle("POST", "/", move |req| {
            Some(
                if req.uri.ends_with("getPOSConfig") || req.text().contains(":getPOSConfig") {
                    pos.clone()
                } else {
                    cat.clone()
                },
            )
        });
        let venue = Venue::new(&m.uri(), transport, "");
        let store = &venue.store;
        let report = venue.import().await.expect(transport);
        assert_eq!(
            report.outcome,
            ImportOutcome::Success,
            "{transport}: the product itself is imported"
        );
        assert_eq!(report.counts.flagged, 3, "{transport}: {:?}", report.flagged);
        let flagged = report.flagged.join("\n");
        for expected in [
            "product 1, performance 11: price of -500000 thousandths left out",
            "product 1, performance 12: start 9999-12-31 23:00 UTC left out",
            "product 1, performance 13: duration of 1000000000000 seconds left out",
        ] {
            assert!(
                flagged.contains(expected),
                "{transport}: the report lists {expected:?}:\n{flagged}"
            );
        }
        // The history keeps them.
        let last = store.import_history(1).expect("history").remove(0);
        assert_eq!(last.flagged, report.flagged);

        let rec = store
            .catalog()
            .expect("view")
            .expect("catalogue")
            .product(1)
            .expect("read")
            .expect("product");
        assert_eq!(
            rec.product.name.get("fr", &[]),
            Some("Hamlet tpircs[31m"),
            "{transport}"
        );
        assert_eq!(rec.product.code.as_deref(), Some("HAMLET"));
        assert_eq!(
            rec.product.description.get("fr", &[]),
            Some("<p>Drame</p>\n<p>en deux parties</p>"),
            "{transport}: line breaks stay"
        );

        let outbox = Outbox::open(store).expect("outbox");
        let status = |_: &secutix_sync::catalog::Product,
                      _: &secutix_sync::catalog::Performance,
                      _: chrono::DateTime<chrono::Utc>| {
            secutix_sync::indicator::PerformanceStatus {
                level: Some(1),
                on_sale: true,
            }
        };
        outbox
            .plan(
                &[PlanTarget::new("website", DeletePolicy::Unpublish)],
                &common::cms::options(),
                &status,
                &Scope::All,
                false,
                false,
            )
            .expect("plan");
        let entry = outbox.entry("secutix-1").expect("read").expect("entry").entry;
        let text = serde_json::to_string(&entry).expect("json");
        for bad in [
            "-500", "+10000", "\\u0000", "\\u001b", "\\u0007", "\u{202E}", "\u{2066}",
        ] {
            assert!(!text.contains(bad), "{transport}: the entry has no {bad:?}: {text}");
        }
        for perf in &entry.performances {
            for t in [&perf.start, &perf.end].into_iter().flatten() {
                chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{transport}: {t} is RFC 3339: {e}"));
            }
        }
        assert_eq!(entry.performances.iter().filter(|p| p.start.is_none()).count(), 1);
        assert_eq!(entry.performances.iter().map(|p| p.prices.len()).sum::<usize>(), 3);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Item 15: stopping while waiting
// ---------------------------------------------------------------------------------------------------------

/// The daemon in process on paused time, against `secutix`, with a shutdown the test triggers.
struct Daemon {
    app: std::sync::Arc<secutix_sync::daemon::App>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), secutix_sync::daemon::DaemonError>>,
    dir: tempfile::TempDir,
}

async fn daemon(secutix: &str, extra: &str) -> Daemon {
    use secutix_sync::clock::{SharedClock, TokioClock};
    use secutix_sync::config::{Config, Sources};
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("store");
    std::fs::create_dir_all(&store_path).expect("store folder");
    let toml = format!(
        r#"
[secutix]
institution = "MOSA"
base_url = "{secutix}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
[store]
path = "{store}"
[control]
listen = "127.0.0.1:0"
token = "test-control-token-0123456789abcdef"
[daemon]
time_zone = "Europe/Paris"
shutdown_grace = "10m"
{extra}
"#,
        store = store_path.display()
    );
    let sources = Sources {
        file: None,
        env: Some(Default::default()),
        overrides: Some(toml),
    };
    let config: Config = Config::load(&sources).expect("config").config;
    let clock: SharedClock = std::sync::Arc::new(TokioClock::starting_at(t0()));
    let store = secutix_sync::store::Store::open(&store_path, 16, clock).expect("store");
    let app = secutix_sync::daemon::App::build(config, sources, store).expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(secutix_sync::daemon::run(
        app.clone(),
        listener,
        secutix_sync::control::router(app.clone()),
        async move {
            let _ = stopped.await;
        },
        futures_util::stream::pending(),
    ));
    Daemon { app, stop, task, dir }
}

/// Polls `f` every 10 ms of tokio time, for at most 100 s of it.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_wait_ends_the_daemon_at_once_and_keeps_the_last_error() {
    for (what, pos, catalogue, expected) in [
        (
            "a retry back-off",
            Reply::status(503).body("Service Unavailable (maintenance)"),
            Reply::status(503),
            vec![
                "getPOSConfig: stopped by the shutdown while waiting",
                "HTTP 503",
                "maintenance",
            ],
        ),
        (
            "an in_progress wait",
            Reply::json(&pos_config()),
            Reply::json(&json!({"statusCode": "in_progress", "requestId": 7})),
            vec!["getCatalogDetailed: stopped by the shutdown while SecuTix was preparing the catalogue"],
        ),
    ] {
        let m = MockHttp::start().await;
        m.on("POST", POS, [pos]);
        m.on("POST", CAT, [catalogue]);
        let d = daemon(&m.uri(), "").await;
        let path = if what.contains("in_progress") { CAT } else { POS };
        // The catch-up import at start: its first call has failed, the daemon now waits.
        until("the first answer", || !m.requests_to(path).is_empty()).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            d.app.catalogue.state().running.is_some(),
            "{what}: the import is waiting"
        );
        let calls = m.requests().len();
        let stopped_at = tokio::time::Instant::now();
        d.stop.send(()).expect("stop");
        d.task.await.expect("join").expect("a clean stop");
        let took = stopped_at.elapsed();
        assert!(
            took < std::time::Duration::from_secs(1),
            "{what}: stopped in {took:?}, not after the grace"
        );
        assert_eq!(m.requests().len(), calls, "{what}: no call after the shutdown");
        let last = d.app.catalogue.state().last.expect("the run finished");
        let error = last.error.unwrap_or_default();
        for e in &expected {
            assert!(error.contains(e), "{what}: the job's error says {e:?}: {error}");
        }
        assert!(
            !error.contains("retries at"),
            "{what}: no retry is announced while stopping: {error}"
        );
        let report = d.app.store.import_history(1).expect("history").remove(0);
        let recorded = report.error.unwrap_or_default();
        for e in &expected {
            assert!(recorded.contains(e), "{what}: the history keeps {e:?}: {recorded}");
        }
        assert!(!recorded.contains("interrupted"), "{what}: {recorded}");
        drop(d.dir);
    }
}

#[tokio::test(start_paused = true)]
async fn an_import_abandoned_while_retrying_is_recorded_with_its_last_error() {
    let m = MockHttp::start().await;
    m.on("POST", POS, [Reply::status(503).body("upstream connect error")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let cfg = config(&m.uri(), "rest", "");
    {
        let store = secutix_sync::store::Store::open(dir.path(), 16, clock.clone()).expect("store");
        let client = client(&cfg, &store);
        let catalogue = cfg.catalogue.clone();
        let task = {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = run_import(&client, &store, &catalogue, ImportOptions::default()).await;
            })
        };
        until("the first answer", || !m.requests_to(POS).is_empty()).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // The process goes away in the middle of the back-off (killed, or a shutdown past the grace).
        task.abort();
        let _ = task.await;
        store.flush().expect("flush");
    }
    let store = secutix_sync::store::Store::open(dir.path(), 16, clock).expect("reopen");
    let report = store.import_history(1).expect("history").remove(0);
    assert_eq!(report.outcome, ImportOutcome::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("was interrupted"), "{error}");
    assert!(
        error.contains("HTTP 503") && error.contains("upstream connect error"),
        "the last error: {error}"
    );
}

#[tokio::test]
async fn the_import_command_lists_the_values_left_out() {
    let body = catalog(vec![season(1, "S26", -30, vec![implausible_product()])]);
    let m = MockHttp::start().await;
    m.on("POST", POS, [Reply::json(&pos_config())]);
    m.on("POST", CAT, [Reply::json(&body)]);
    let site = binary::Site::new();
    site.write_config(&format!(
        r#"[secutix]
institution = "MOSA"
base_url = "{base}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
[store]
path = "{store}"
"#,
        base = m.uri(),
        store = site.store.display(),
    ));
    let out = binary::cli(&site, &["import"]).await;
    let stdout = binary::text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", binary::text(&out.stderr));
    assert!(
        stdout.contains("3 value(s) left out because they cannot be right"),
        "{stdout}"
    );
    assert!(
        stdout.contains("product 1, performance 11: price of -500000 thousandths left out"),
        "{stdout}"
    );
}
