//! Catalogue import against a mock SecuTix on loopback, under paused time: the `in_progress` protocol,
//! back-off, errors, atomicity, the shrink guard, tombstones, re-imports, both transports.

use std::time::Duration;

use crate::common::*;
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::import::{ImportError, ImportOptions, run_import};
use secutix_sync::secutix::CallError;
use secutix_sync::store::{ImportOutcome, Store};
use serde_json::json;

const POS: &str = "/tnseb/backend-apis/catalogService/v1_33/getPOSConfig";
const CAT: &str = "/tnseb/backend-apis/catalogService/v1_33/getCatalogDetailed";

async fn mock_with(catalogue: Vec<Reply>) -> MockHttp {
    let m = MockHttp::start().await;
    m.on("POST", POS, [Reply::json(&pos_config())]);
    m.on("POST", CAT, catalogue);
    m
}

fn product_ids(store: &Store) -> Vec<i64> {
    store
        .catalog()
        .expect("store")
        .map(|c| c.product_ids().collect())
        .unwrap_or_default()
}

/// Lets the 10-minute rule pass between two imports.
async fn next_slot() {
    tokio::time::advance(Duration::from_secs(601)).await;
}

#[tokio::test(start_paused = true)]
async fn in_progress_recalls_with_request_id_and_growing_backoff() {
    let m = mock_with(vec![
        Reply::json(&json!({"statusCode": "in_progress", "requestId": 42})),
        Reply::json(&json!({"statusCode": "in_progress", "requestId": 42})),
        Reply::json(&catalog_n(3)),
    ])
    .await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let report = venue.import().await.expect("import succeeds after in_progress");
    assert_eq!(report.outcome, ImportOutcome::Success);
    assert_eq!(report.counts.products, 3);
    assert_eq!(report.calls, 4, "getPOSConfig + three getCatalogDetailed");
    let calls = m.requests_to(CAT);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].json().get("requestId"), None);
    assert_eq!(calls[1].json()["requestId"], 42);
    assert_eq!(calls[2].json()["requestId"], 42);
    // Default back-off: 15 s, then doubled.
    assert_eq!((calls[1].at - calls[0].at).as_secs(), 15);
    assert_eq!((calls[2].at - calls[1].at).as_secs(), 30);
}

#[tokio::test(start_paused = true)]
async fn in_progress_past_the_deadline_keeps_the_previous_catalogue() {
    let m = mock_with(vec![Reply::json(&catalog_n(2))]).await;
    let venue = Venue::new(&m.uri(), "rest", "[catalogue]\ndeadline = \"2m\"");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first import");
    let generation = store.generation().expect("generation");

    next_slot().await;
    m.on(
        "POST",
        CAT,
        [Reply::json(&json!({"statusCode": "in_progress", "requestId": 7}))],
    );
    let err = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect_err("deadline");
    let msg = err.to_string();
    assert!(
        matches!(err, ImportError::Call(CallError::InProgressDeadline { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("previous catalogue stays in force") && msg.contains("catalogue.deadline"),
        "{msg}"
    );
    assert_eq!(store.generation().expect("generation"), generation);
    assert_eq!(product_ids(store), vec![1000, 1001]);
    let history = store.import_history(5).expect("history");
    assert_eq!(history[0].outcome, ImportOutcome::Failed);
    assert!(history[0].error.as_deref().unwrap_or("").contains("in progress"));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_509_honours_retry_after_then_succeeds() {
    let m = mock_with(vec![
        Reply::status(509)
            .header("retry-after", "40")
            .body("Bandwidth Limit Exceeded"),
        Reply::json(&catalog_n(1)),
    ])
    .await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let store = &venue.store;
    let report = venue.import().await.expect("import succeeds after 509");
    let calls = m.requests_to(CAT);
    assert_eq!(calls.len(), 2);
    assert!(
        (calls[1].at - calls[0].at).as_secs() >= 40,
        "waited {:?}",
        calls[1].at - calls[0].at
    );
    assert_eq!(report.calls, 3, "the rejected call counts against the quota too");
    assert_eq!(store.calls_in_month(venue.clock.now()), 3);
}

#[tokio::test(start_paused = true)]
async fn auth_error_is_clear_and_not_retried() {
    let m = mock_with(vec![Reply::json(&catalog_n(1))]).await;
    m.on("POST", POS, [Reply::status(401).body("{\"error\":\"invalid token\"}")]);
    let venue = Venue::new(&m.uri(), "rest", "");
    let err = venue.import().await.expect_err("401");
    let msg = err.to_string();
    assert!(
        msg.contains("refused the credentials") && msg.contains("secutix.operator"),
        "{msg}"
    );
    assert!(msg.contains("invalid token"), "quotes the response: {msg}");
    assert!(!msg.contains("test-secret-value"), "{msg}");
    assert_eq!(m.requests().len(), 1, "no retry on 401");
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_until_the_deadline_then_fail_cleanly() {
    let m = mock_with(vec![Reply::json(&catalog_n(2))]).await;
    let venue = Venue::new(&m.uri(), "rest", "[catalogue]\ndeadline = \"3m\"");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first import");

    next_slot().await;
    m.on(
        "POST",
        CAT,
        [Reply::json(&catalog_n(5)).delay(Duration::from_secs(3600))],
    );
    let err = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect_err("times out");
    let msg = err.to_string();
    assert!(msg.contains("gave up") && msg.contains("request_timeout"), "{msg}");
    let tries = m.requests_to(CAT).len();
    assert!(
        (3..=6).contains(&tries),
        "retried within 3 minutes of 30 s timeouts, got {tries} calls"
    );
    assert_eq!(product_ids(store), vec![1000, 1001], "previous catalogue in force");
}

#[tokio::test(start_paused = true)]
async fn every_bad_input_gives_a_clear_error_and_keeps_the_previous_catalogue() {
    let good = catalog_n(2).to_string();
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "truncated",
            Reply::status(200).body(good[..good.len() - 40].to_owned()),
            "truncated",
        ),
        (
            "html page",
            Reply::status(200)
                .header("content-type", "text/html")
                .body("<!DOCTYPE html><html><body>Maintenance</body></html>"),
            "an HTML page",
        ),
        (
            "plain text",
            Reply::status(200).body("Service Unavailable"),
            "First 200 characters: Service Unavailable",
        ),
        (
            "wrong type",
            Reply::json(&catalog(vec![season(1, "S", 0, vec![json!({"id": {"oops": 1}})])])),
            "catalogData.seasons[0].products[0].id",
        ),
        (
            "error status",
            Reply::json(&json!({"statusCode": "error", "statusDetail": "unknown operator"})),
            "unknown operator",
        ),
        ("empty body", Reply::status(200), "an empty body"),
    ];
    for (name, reply, expected) in cases {
        let m = mock_with(vec![Reply::json(&catalog_n(2))]).await;
        let venue = Venue::new(&m.uri(), "rest", "");
        let (store, cfg) = (&venue.store, &venue.cfg);
        let client = client(cfg, store);
        venue
            .import_with(&client, ImportOptions::default())
            .await
            .expect("first import");
        let before = store
            .catalog()
            .expect("view")
            .expect("catalogue")
            .products()
            .map(|r| r.expect("record"))
            .collect::<Vec<_>>();

        next_slot().await;
        m.on("POST", CAT, [reply]);
        let err = venue
            .import_with(&client, ImportOptions::default())
            .await
            .expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(expected), "{name}: {msg}");
        assert!(
            msg.contains("getCatalogDetailed"),
            "{name}: the message names the call: {msg}"
        );
        let after = store
            .catalog()
            .expect("view")
            .expect("catalogue")
            .products()
            .map(|r| r.expect("record"))
            .collect::<Vec<_>>();
        assert_eq!(before, after, "{name}: previous catalogue in force");
        m.stop();
    }
}

#[tokio::test(start_paused = true)]
async fn an_import_failing_after_writing_part_of_a_generation_leaves_the_old_one() {
    // Products 0..4 are fine and streamed into the new generation; product 5 is broken.
    let mut products: Vec<_> = (0..5).map(|i| product(2000 + i, "ok", &[(6000 + i, 3)])).collect();
    products.push(json!({"id": 2005, "event": {"performances": [{"id": "not-a-number"}]}}));
    let m = mock_with(vec![Reply::json(&catalog_n(3))]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first import");
    let generation = store.generation().expect("generation");

    next_slot().await;
    m.on(
        "POST",
        CAT,
        [Reply::json(&catalog(vec![season(1, "S26", 0, products)]))],
    );
    let err = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect_err("broken product");
    assert!(
        err.to_string().contains("products[5].event.performances[0].id"),
        "{err}"
    );
    assert_eq!(store.generation().expect("generation"), generation);
    assert_eq!(product_ids(store), vec![1000, 1001, 1002]);
}

#[test]
fn a_crash_mid_import_leaves_the_old_generation_after_restart() {
    use secutix_sync::catalog::{Product, Translated};
    use secutix_sync::secutix::parse::CatalogSink;
    use secutix_sync::store::FinishOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = secutix_sync::clock::system();
    let mk = |id: i64| Product {
        id,
        code: None,
        season_id: None,
        season_code: None,
        family: Some(secutix_sync::catalog::ProductFamily::SingleEntry),
        family_sub_type: None,
        state: None,
        name: Translated::from_pairs([("fr", "x")]),
        short_name: Translated::default(),
        description: Translated::default(),
        images: Default::default(),
        detail_url: None,
        sale_periods: vec![],
        sub_topic_codes: vec![],
        event: None,
    };
    let opts = FinishOptions::default();
    {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("open");
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        for id in [1, 2, 3] {
            txn.product(Some(0), mk(id)).expect("stage");
        }
        txn.finish(&opts).expect("finish");
        // A second import writes part of generation 2 and "crashes": the transaction and store are dropped
        // without finish.
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        for id in [7, 8] {
            txn.product(Some(0), mk(id)).expect("stage");
        }
        store.flush().expect("flush");
        drop(txn);
        drop(store);
    }
    let store = Store::open(dir.path(), 16, clock).expect("reopen");
    assert_eq!(store.generation().expect("generation"), Some(1));
    assert_eq!(product_ids(&store), vec![1, 2, 3]);
    let leftovers: Vec<String> = store
        .db()
        .tree_names()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .filter(|n| n.starts_with("cat.2."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial generation dropped at open: {leftovers:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_shrink_guard_refuses_then_force_accepts_and_tombstones_are_recorded() {
    let m = mock_with(vec![Reply::json(&catalog_n(10))]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first import");

    next_slot().await;
    m.on("POST", CAT, [Reply::json(&catalog_n(4))]);
    let err = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("remove 6 of 10") && msg.contains("--force") && msg.contains("shrink_guard_ratio"),
        "{msg}"
    );
    assert_eq!(product_ids(store).len(), 10);
    assert_eq!(
        store.import_history(1).expect("history")[0].outcome,
        ImportOutcome::Refused
    );

    next_slot().await;
    let forced_at = venue.clock.now();
    let report = venue
        .import_with(&client, ImportOptions { force: true })
        .await
        .expect("forced");
    assert_eq!(report.counts.removed, 6);
    assert_eq!(report.counts.unchanged, 4);
    let view = store.catalog().expect("view").expect("catalogue");
    let tombstones: Vec<_> = view
        .products()
        .map(|r| r.expect("record"))
        .filter(|r| r.removed_at.is_some())
        .collect();
    assert_eq!(tombstones.len(), 6, "tombstoned, not deleted");
    assert!(tombstones.iter().all(|t| {
        t.removed_at
            .is_some_and(|at| at >= forced_at && at <= venue.clock.now())
    }));
    assert!(
        tombstones.iter().all(|t| t.product.id >= 1004),
        "the products SecuTix stopped listing"
    );

    // An empty catalogue would remove everything: refused even below the ratio.
    next_slot().await;
    m.on("POST", CAT, [Reply::json(&catalog(vec![]))]);
    let err = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect_err("all removed");
    assert!(err.to_string().contains("remove 4 of 4"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn reimporting_the_same_catalogue_changes_nothing() {
    let body = catalog_n(5);
    let m = mock_with(vec![Reply::json(&body)]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    let first = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first");
    assert_eq!(first.counts.added, 5);
    let generation = store.generation().expect("generation");

    // Byte-identical: recognised by its hash, nothing parsed, no new generation.
    next_slot().await;
    let same = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("same bytes");
    assert_eq!(same.outcome, ImportOutcome::Unchanged);
    assert_eq!(same.counts.unchanged, 5);
    assert_eq!(store.generation().expect("generation"), generation);

    // Same content, different bytes (pretty-printed): parsed, every product reported unchanged.
    next_slot().await;
    m.on(
        "POST",
        CAT,
        [Reply::status(200).body(serde_json::to_string_pretty(&body).expect("json"))],
    );
    let reparsed = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("same content");
    assert_eq!(reparsed.outcome, ImportOutcome::Success);
    assert_eq!(
        (
            reparsed.counts.unchanged,
            reparsed.counts.added,
            reparsed.counts.changed
        ),
        (5, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_ten_minute_rule_holds_across_restarts() {
    let m = mock_with(vec![Reply::json(&catalog_n(1))]).await;
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&m.uri(), "rest", "");
    {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("open");
        run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
            .await
            .expect("import");
    }
    tokio::time::advance(Duration::from_secs(120)).await;
    let store = Store::open(dir.path(), 16, clock.clone()).expect("reopen");
    let err = run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
        .await
        .expect_err("too soon");
    let msg = err.to_string();
    assert!(
        msg.contains("one call per 10m") && msg.contains("Try again after 2026-03-02 10:10"),
        "{msg}"
    );
    assert_eq!(m.requests_to(CAT).len(), 1, "no second catalogue call");
}

#[tokio::test(start_paused = true)]
async fn past_performances_are_kept_when_they_drop_out_of_the_feed() {
    let with_past = catalog(vec![season(
        1,
        "S26",
        -30,
        vec![product(1, "Hamlet", &[(11, -5), (12, 5)])],
    )]);
    let without = catalog(vec![season(1, "S26", -30, vec![product(1, "Hamlet", &[(12, 5)])])]);
    let m = mock_with(vec![Reply::json(&with_past)]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("first");
    next_slot().await;
    m.on("POST", CAT, [Reply::json(&without)]);
    let report = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("second");
    assert_eq!(report.counts.retained_performances, 1);
    let rec = store
        .catalog()
        .expect("view")
        .expect("catalogue")
        .product(1)
        .expect("read")
        .expect("product");
    let perfs: Vec<(i64, bool)> = rec.product.performances().iter().map(|p| (p.id, p.retained)).collect();
    assert_eq!(perfs, vec![(11, true), (12, false)]);
}

#[tokio::test(start_paused = true)]
async fn a_product_in_two_seasons_is_taken_from_the_season_that_starts_latest() {
    let body = catalog(vec![
        season(1, "S25", -200, vec![product(7, "Old title", &[(70, 3)])]),
        season(2, "S26", -10, vec![product(7, "New title", &[(70, 3)])]),
        season(3, "S24", -400, vec![product(7, "Oldest title", &[(70, 3)])]),
    ]);
    let m = mock_with(vec![Reply::json(&body)]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    let store = &venue.store;
    let report = venue.import().await.expect("import");
    assert_eq!((report.counts.products, report.counts.duplicates), (1, 1));
    let rec = store
        .catalog()
        .expect("view")
        .expect("catalogue")
        .product(7)
        .expect("read")
        .expect("product");
    assert_eq!(rec.product.name.get("fr", &[]), Some("New title"));
    assert_eq!(rec.product.season_code.as_deref(), Some("S26"));
}

#[tokio::test(start_paused = true)]
async fn filters_keep_only_configured_families_and_seasons() {
    let mut pass = product(9, "Pass musée", &[]);
    pass["productFamilyType"] = json!("PASS");
    let body = catalog(vec![
        season(1, "S25", -200, vec![product(1, "A", &[(10, 3)]), pass]),
        season(2, "S26", -10, vec![product(2, "B", &[(20, 3)])]),
    ]);
    let m = mock_with(vec![Reply::json(&body)]).await;
    let venue = Venue::new(&m.uri(), "rest", "[catalogue]\nseason_codes = [\"S26\"]");
    let store = &venue.store;
    let report = venue.import().await.expect("import");
    assert_eq!(product_ids(store), vec![2]);
    assert_eq!(report.counts.skipped, 2, "the PASS and the other season's product");
    assert_eq!(
        m.requests_to(CAT)[0].json()["seasonCode"],
        "S26",
        "one season code is sent to SecuTix"
    );
}

#[tokio::test(start_paused = true)]
async fn rest_calls_carry_a_signed_jwt_and_ask_for_gzip() {
    let m = mock_with(vec![Reply::json(&catalog_n(1))]).await;
    let venue = Venue::new(&m.uri(), "rest", "");
    venue.import().await.expect("import");
    let req = &m.requests_to(CAT)[0];
    assert_eq!(req.header("accept-encoding").as_deref(), Some("gzip"));
    let token = req
        .header("authorization")
        .expect("authorization")
        .trim_start_matches("Bearer ")
        .to_owned();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["MOSA_WEBSYNC"]);
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"test-secret-value"),
        &v,
    )
    .expect("signed with the operator's secret")
    .claims;
    assert_eq!(claims["sub"], "MOSA");
    assert_eq!(claims["iss"], "Test Partner");
    let iat = claims["iat"].as_i64().expect("iat in seconds");
    assert!(
        iat >= t0().timestamp() && iat <= venue.clock.now().timestamp(),
        "iat {iat} is the time of the call, in seconds"
    );
    assert!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") <= 60);
}

#[tokio::test(start_paused = true)]
async fn the_token_endpoint_mode_fetches_and_reuses_a_token() {
    let m = mock_with(vec![Reply::json(&catalog_n(1))]).await;
    m.on(
        "POST",
        "/tnai/backend-apis/v1/auth",
        [Reply::json(&json!({"token": "tok-123"}))],
    );
    let clock = clock();
    let (store, _dir) = store(&clock);
    let cfg = config(&m.uri(), "rest", "").secutix;
    let cfg = secutix_sync::secutix::settings::SecutixConfig {
        auth: secutix_sync::secutix::settings::AuthMode::TokenEndpoint,
        ..cfg
    };
    let full = config(&m.uri(), "rest", "");
    let client =
        secutix_sync::secutix::Client::new(&cfg, std::sync::Arc::new(store.clone()), clock.clone()).expect("client");
    run_import(&client, &store, &full.catalogue, ImportOptions::default())
        .await
        .expect("import");
    let auth = m.requests_to("/tnai/backend-apis/v1/auth");
    assert_eq!(auth.len(), 1, "one token for both calls");
    assert_eq!(auth[0].json()["operator"], "MOSA_WEBSYNC");
    assert_eq!(
        m.requests_to(CAT)[0].header("authorization").as_deref(),
        Some("Bearer tok-123")
    );
    assert_eq!(
        store.calls_in_month(clock.now()),
        3,
        "the token call counts against the quota"
    );
}

async fn soap_mock(catalogue_body: String) -> MockHttp {
    let m = MockHttp::start().await;
    let pos = soap_response("getPOSConfig", &pos_config());
    m.handle("POST", &soap_path("catalog", "CatalogService"), move |req| {
        let body = req.text();
        if body.contains(":getPOSConfig") {
            Some(Reply::xml(pos.clone()))
        } else if body.contains(":getCatalogDetailed") || body.contains(":getCatalog>") || body.contains(":getCatalog/")
        {
            Some(Reply::xml(catalogue_body.clone()))
        } else {
            Some(Reply::status(500).body("unknown operation"))
        }
    });
    m
}

#[tokio::test(start_paused = true)]
async fn soap_gives_the_same_catalogue_as_rest() {
    let body = catalog(vec![season(
        1,
        "S26",
        -30,
        vec![product(1, "Hamlet", &[(11, 5), (12, 6)]), product(2, "Phèdre", &[])],
    )]);
    let rest_mock = mock_with(vec![Reply::json(&body)]).await;
    let soap_mock = soap_mock(soap_response("getCatalogDetailed", &body)).await;
    let mut catalogues = Vec::new();
    for (uri, transport) in [(rest_mock.uri(), "rest"), (soap_mock.uri(), "soap")] {
        let venue = Venue::new(&uri, transport, "");
        let store = &venue.store;
        venue.import().await.expect(transport);
        let view = store.catalog().expect("view").expect("catalogue");
        catalogues.push((
            view.products().map(|r| r.expect("record").product).collect::<Vec<_>>(),
            view.meta.pos.clone(),
        ));
    }
    assert_eq!(catalogues[0], catalogues[1]);
    assert_eq!(catalogues[0].0.len(), 2);
    let req = soap_mock
        .requests()
        .into_iter()
        .find(|r| r.text().contains("getCatalogDetailed"))
        .expect("catalogue call");
    let text = req.text();
    assert!(text.contains("<wsse:Username>MOSA_WEBSYNC</wsse:Username>"), "{text}");
    assert!(
        text.contains("xmlns:v1=\"http://v1_33.CatalogService.service.secutix.com\""),
        "{text}"
    );
    assert!(req.header("content-type").unwrap_or_default().starts_with("text/xml"));
}

#[tokio::test(start_paused = true)]
async fn soap_fault_is_reported_with_its_message() {
    let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Unknown season code</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
    let m = MockHttp::start().await;
    let pos = soap_response("getPOSConfig", &pos_config());
    let fault = fault.to_owned();
    m.handle("POST", &soap_path("catalog", "CatalogService"), move |req| {
        Some(if req.text().contains(":getPOSConfig") {
            Reply::xml(pos.clone())
        } else {
            Reply::status(500).body(fault.clone())
        })
    });
    let venue = Venue::new(&m.uri(), "soap", "");
    let err = venue.import().await.expect_err("fault");
    let msg = err.to_string();
    assert!(
        msg.contains("SOAP fault") && msg.contains("Unknown season code"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn get_catalog_reads_the_catalogue_xml_string() {
    let body = catalog(vec![season(1, "S26", -30, vec![product(1, "Hamlet & co", &[(11, 5)])])]);
    let mut inner = String::new();
    jaxws("catalog", &body["catalogData"], &mut inner);
    let response = soap_response("getCatalog", &json!({"statusCode": "success", "catalogData": inner}));
    let m = soap_mock(response).await;
    let venue = Venue::new(&m.uri(), "soap", "[catalogue]\nmethod = \"getCatalog\"");
    let store = &venue.store;
    let report = venue.import().await.expect("import");
    assert_eq!(report.counts.products, 1);
    let rec = store
        .catalog()
        .expect("view")
        .expect("catalogue")
        .product(1)
        .expect("read")
        .expect("product");
    assert_eq!(rec.product.name.get("fr", &[]), Some("Hamlet & co"));
}
