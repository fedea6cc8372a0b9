//! Hostile SecuTix answers (issue 13): what a broken or malicious server could send, and what must hold.
//!
//! - **Nesting** (item 1): 10,000 and 100,000 nested elements in a product, a season field, a SOAP Fault,
//!   a getPOSConfig answer, an availability answer and the getCatalog XML string, in both transports: a
//!   clear error naming the call and the depth limit, never a stack overflow; an import keeps the
//!   catalogue in force.
//!
//! Everything runs on loopback (127.0.0.1, port 0) and, where time matters, on paused tokio time.

mod common;

use common::*;
use secutix_sync::config::Transport;
use secutix_sync::import::{ImportOptions, run_import};
use secutix_sync::secutix::availability::{AvailabilityMethod, parse_answer};
use secutix_sync::secutix::parse::{CollectSink, MAX_DEPTH, ParseError};
use secutix_sync::secutix::wire::ConvertCtx;
use secutix_sync::secutix::{CallError, decode_result, json as sjson, xml as sxml};
use secutix_sync::store::ImportOutcome;
use secutix_sync::testkit::{MockHttp, Reply};
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
    sxml::parse_soap_result("getPOSConfig", body.as_bytes()).expect("at the limit");
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
        let e = decode_result(Transport::Soap, "getPOSConfig", pos_soap.as_bytes()).expect_err("deep POS");
        assert_too_deep(&e, "getPOSConfig", "SOAP getPOSConfig");
        let pos_rest = format!(r#"{{"statusCode":"success","posConfigData":{json}}}"#);
        let e = decode_result(Transport::Rest, "getPOSConfig", pos_rest.as_bytes()).expect_err("deep POS");
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
    let clock = clock();
    let (store, _dir) = store(&clock);
    let cfg = config(
        &m.uri(),
        "soap",
        "[catalogue]\nmin_interval = \"0s\"\ndeadline = \"1m\"",
    );
    let client = client(&cfg, &store);
    run_import(&client, &store, &cfg.catalogue, ImportOptions::default())
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
        let client = common::client(&cfg, &store);
        let e = run_import(&client, &store, &cfg.catalogue, ImportOptions::default())
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
    let clock = clock();
    let (store, _dir) = store(&clock);
    let cfg = config(&m.uri(), "rest", "");
    let e = run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
        .await
        .expect_err("deep");
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
