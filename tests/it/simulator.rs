//! The built-in SecuTix simulator against the real client, under paused time: catalogue imports over REST and
//! SOAP (getCatalogDetailed and getCatalog), `in_progress` once then success, call counts, credentials, and
//! the availability methods in the shape of contract B, moving on tokio's clock, deterministic by seed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use secutix_sync::catalog::Product;
use secutix_sync::fakes::simulator::{Simulator, SimulatorOptions};
use secutix_sync::import::{ImportError, ImportOptions, run_import};
use secutix_sync::secutix::{CallError, RetryPolicy, Service};
use secutix_sync::store::{ImportOutcome, Store};
use serde_json::{Value, json};

fn options(products: usize, perfs: usize) -> SimulatorOptions {
    SimulatorOptions {
        products,
        performances_per_product: perfs,
        seed: 42,
        now: Some(t0()),
        ..SimulatorOptions::default()
    }
}

/// The generator's catalogue as the store keeps it: products with their season's id and code, by id.
fn expected_products(sim: &Simulator) -> Vec<Product> {
    let cat = sim.generator().collect();
    let seasons: BTreeMap<u32, _> = cat.seasons.iter().cloned().collect();
    let mut out: Vec<Product> = cat
        .products
        .into_iter()
        .map(|(k, mut p)| {
            let s = k.and_then(|k| seasons.get(&k));
            p.season_id = s.and_then(|s| s.id);
            p.season_code = s.and_then(|s| s.code.clone());
            p
        })
        .collect();
    out.sort_by_key(|p| p.id);
    out
}

fn stored_products(store: &Store) -> Vec<Product> {
    store
        .catalog()
        .expect("store")
        .expect("a catalogue")
        .products()
        .map(|r| r.expect("record").product)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn rest_import_answers_in_progress_once_then_imports_the_generated_catalogue() {
    let sim = Simulator::start(options(12, 3)).await.expect("simulator starts");
    let venue = Venue::new(&sim.base_url(), "rest", "");
    let (store, cfg) = (&venue.store, &venue.cfg);
    let client = client(cfg, store);
    let started = tokio::time::Instant::now();
    let report = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("import succeeds after in_progress");
    assert_eq!(report.outcome, ImportOutcome::Success);
    assert_eq!(report.counts.products, 12);
    assert_eq!(report.counts.performances, 36);
    assert_eq!(report.calls, 3, "getPOSConfig + getCatalogDetailed twice");
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "the client waited its in_progress back-off"
    );
    assert_eq!(
        sim.calls(),
        BTreeMap::from([("getCatalogDetailed".to_owned(), 2), ("getPOSConfig".to_owned(), 1)])
    );
    assert_eq!(stored_products(store), expected_products(&sim));
    let pos = store.pos_config().expect("store").expect("pos config");
    assert_eq!(pos, sim.generator().pos_config());

    // The same catalogue again: byte-identical, recognised without parsing.
    tokio::time::advance(Duration::from_secs(601)).await;
    let again = venue
        .import_with(&client, ImportOptions::default())
        .await
        .expect("second import");
    assert_eq!(again.outcome, ImportOutcome::Unchanged);
    assert_eq!(sim.calls()["getCatalogDetailed"], 3, "no second in_progress");
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn soap_get_catalog_detailed_and_get_catalog_give_the_same_catalogue_as_rest() {
    for (transport, extra) in [
        ("rest", ""),
        ("soap", ""),
        ("soap", "[catalogue]\nmethod = \"getCatalog\""),
        ("rest", "[catalogue]\nmethod = \"getCatalog\""),
    ] {
        // A tiny memory limit: the catalogue is rendered to a file and streamed from it.
        let sim = Simulator::start(SimulatorOptions {
            memory_limit: 4096,
            ..options(15, 4)
        })
        .await
        .expect("simulator starts");
        let venue = Venue::new(&sim.base_url(), transport, extra);
        let (store, cfg) = (&venue.store, &venue.cfg);
        let report = venue
            .import()
            .await
            .unwrap_or_else(|e| panic!("{transport} {extra}: {e}"));
        assert_eq!(report.counts.products, 15, "{transport} {extra}");
        assert_eq!(stored_products(store), expected_products(&sim), "{transport} {extra}");
        let method = cfg.catalogue.method.as_str();
        assert_eq!(
            sim.calls()[method],
            2,
            "{transport} {extra}: in_progress once, then the catalogue"
        );
        sim.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_simulator_with_a_secret_refuses_other_credentials() {
    let opts = SimulatorOptions {
        secret: Some("another-secret".to_owned().into()),
        in_progress_once: false,
        ..options(3, 2)
    };
    let sim = Simulator::start(opts.clone()).await.expect("simulator starts");
    let clock = clock();
    for transport in ["rest", "soap"] {
        let (store, _dir) = store(&clock);
        let cfg = config(&sim.base_url(), transport, "");
        let err = run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
            .await
            .expect_err("wrong secret");
        let msg = err.to_string();
        match transport {
            "rest" => assert!(matches!(err, ImportError::Call(CallError::Auth { .. })), "{msg}"),
            _ => assert!(msg.contains("Authentication failed"), "{msg}"),
        }
    }
    sim.stop().await;

    let sim = Simulator::start(SimulatorOptions {
        secret: Some("test-secret-value".to_owned().into()),
        ..opts
    })
    .await
    .expect("simulator starts");
    for transport in ["rest", "soap"] {
        let (store, _dir) = store(&clock);
        let cfg = config(&sim.base_url(), transport, "");
        let report = run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
            .await
            .expect("the right secret is accepted");
        assert_eq!(report.outcome, ImportOutcome::Success, "{transport}");
    }
    let (store, _dir) = store(&clock);
    let mut cfg = config(&sim.base_url(), "rest", "");
    cfg.secutix.auth = secutix_sync::secutix::settings::AuthMode::TokenEndpoint;
    run_import(&client(&cfg, &store), &store, &cfg.catalogue, ImportOptions::default())
        .await
        .expect("a token from the simulator's token endpoint is accepted");
    assert_eq!(sim.calls()["v1/auth"], 1);
    sim.stop().await;
}

/// Scalars as text, one-element lists as lists: the same value whether it came over REST or SOAP.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        other => other.clone(),
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

struct Both {
    rest: secutix_sync::secutix::Client,
    soap: secutix_sync::secutix::Client,
    _stores: Vec<tempfile::TempDir>,
}

impl Both {
    fn new(sim: &Simulator) -> Self {
        let clock = clock();
        let (rs, rd) = store(&clock);
        let (ss, sd) = store(&clock);
        let rest = client(&config(&sim.base_url(), "rest", ""), &rs);
        let soap = client(&config(&sim.base_url(), "soap", ""), &ss);
        Self {
            rest,
            soap,
            _stores: vec![rd, sd],
        }
    }

    /// Calls `method` over both transports; asserts both answer the same; returns the REST result.
    async fn call(&self, method: &str, params: Value) -> Value {
        let (_, r) = self
            .rest
            .call_small(Service::Availability, method, &params, RetryPolicy::once())
            .await
            .unwrap_or_else(|e| panic!("REST {method}: {e}"));
        let (_, s) = self
            .soap
            .call_small(Service::Availability, method, &params, RetryPolicy::once())
            .await
            .unwrap_or_else(|e| panic!("SOAP {method}: {e}"));
        let strip = |v: &Value| {
            let mut v = normalise(v);
            if let Value::Object(m) = &mut v {
                m.remove("requestId");
                m.remove("statusDetail");
            }
            v
        };
        let (mut rn, mut sn) = (strip(&r), strip(&s));
        // SOAP has no way to say "a list of one" or "an empty list": compare lists as lists.
        for v in [&mut rn, &mut sn] {
            for key in ["availabilityUpdateData", "performanceAvailabilityData"] {
                if v.get(key).is_some() || method == "getUpdatedAvailabilities" && key == "availabilityUpdateData" {
                    let l = list(v.get(key).unwrap_or(&Value::Null));
                    v[key] = Value::Array(l);
                }
            }
            if method == "getEventAvailability" {
                let l = list(
                    v.pointer("/eventAvailabilityData/eventAvailabilities")
                        .unwrap_or(&Value::Null),
                );
                v["eventAvailabilityData"] = json!({"eventAvailabilities": l});
            }
        }
        assert_eq!(rn, sn, "{method}: REST and SOAP answer the same");
        r
    }
}

const LEVELS: &[&str] = &["GOOD", "LIMITED", "SOLD_OUT", "NOT_VISIBLE", "OUTSIDE_SALE_PERIOD"];

fn check_perf(v: &Value) -> (i64, String, u64) {
    let id = v["performanceId"].as_i64().expect("performanceId is a number");
    let level = v["level"].as_str().expect("level").to_owned();
    assert!(LEVELS.contains(&level.as_str()), "{level}");
    let quantity = v["quantity"].as_u64().expect("quantity");
    let quota = v["quota"].as_u64().expect("quota");
    assert!(quantity <= quota && quota > 0, "{v}");
    (id, level, quantity)
}

#[tokio::test(start_paused = true)]
async fn availability_methods_answer_in_the_contract_shape_over_rest_and_soap() {
    let sim = Simulator::start(options(30, 4)).await.expect("simulator starts");
    let both = Both::new(&sim);
    let pos = sim.generator().pos_id();
    let plans: Vec<_> = sim.generator().plans().collect();
    let perf_ids: Vec<i64> = plans.iter().flat_map(|p| p.performances.iter().map(|x| x.id)).collect();
    let product_ids: Vec<i64> = plans.iter().map(|p| p.id).collect();

    let r = both
        .call(
            "getEventAvailability",
            json!({"pointOfSalesId": pos, "performanceIds": perf_ids[..6], "seatCategoryIds": []}),
        )
        .await;
    assert_eq!(r["statusCode"], "success");
    let evs = r["eventAvailabilityData"]["eventAvailabilities"]
        .as_array()
        .expect("a list");
    assert_eq!(evs.iter().map(|v| check_perf(v).0).collect::<Vec<_>>(), perf_ids[..6]);

    let r = both
        .call(
            "getPerformanceAvailability",
            json!({"pointOfSalesId": pos, "performanceIds": [perf_ids[7]]}),
        )
        .await;
    let perfs = r["performanceAvailabilityData"].as_array().expect("a list");
    assert_eq!(check_perf(&perfs[0]).0, perf_ids[7]);
    let simulated = sim.performance_availability(perf_ids[7]).expect("known");
    assert_eq!(perfs[0]["level"], simulated.level);

    let r = both
        .call(
            "getProductAvailability",
            json!({"pointOfSalesId": pos, "productId": product_ids[3]}),
        )
        .await;
    let data = &r["productAvailabilityData"];
    assert_eq!(data["productId"], product_ids[3]);
    assert!(LEVELS.contains(&data["level"].as_str().expect("level")));

    // Before the simulation started every product counts as updated.
    let r = both
        .call(
            "getUpdatedAvailabilities",
            json!({"pointOfSalesId": pos, "productIds": product_ids,
                   "referenceDate": (t0() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    let updated = r["availabilityUpdateData"].as_array().expect("a list");
    assert_eq!(updated.len(), 30);
    assert!(
        updated
            .iter()
            .all(|u| u["productId"].is_i64() && u["lastUpdate"].is_string())
    );

    // Errors are SecuTix-style application errors.
    let err = both
        .rest
        .call_small(
            Service::Availability,
            "getEventAvailability",
            &json!({"pointOfSalesId": 1, "performanceIds": [perf_ids[0]]}),
            RetryPolicy::once(),
        )
        .await
        .expect_err("unknown point of sale");
    assert!(err.to_string().contains("pointOfSalesId 1"), "{err}");

    let calls = sim.calls();
    assert_eq!(calls["getEventAvailability"], 3, "REST, SOAP and the refused one");
    assert_eq!(calls["getPerformanceAvailability"], 2);
    assert_eq!(calls["getProductAvailability"], 2);
    assert_eq!(calls["getUpdatedAvailabilities"], 2);
    sim.stop().await;
}

/// What a poller would see: the products updated since `since`, and every performance's (level, quantity).
async fn observe(
    both: &Both,
    sim: &Simulator,
    since: chrono::DateTime<chrono::Utc>,
) -> (Vec<i64>, Vec<(i64, String, u64)>) {
    let pos = sim.generator().pos_id();
    let plans: Vec<_> = sim.generator().plans().collect();
    let product_ids: Vec<i64> = plans.iter().map(|p| p.id).collect();
    let perf_ids: Vec<i64> = plans.iter().flat_map(|p| p.performances.iter().map(|x| x.id)).collect();
    let r = both
        .call(
            "getUpdatedAvailabilities",
            json!({"pointOfSalesId": pos, "productIds": product_ids,
                   "referenceDate": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
        )
        .await;
    let updated = list(&r["availabilityUpdateData"])
        .iter()
        .map(|u| u["productId"].as_i64().expect("id"))
        .collect();
    let r = both
        .call(
            "getEventAvailability",
            json!({"pointOfSalesId": pos, "performanceIds": perf_ids, "seatCategoryIds": []}),
        )
        .await;
    let perfs = list(&r["eventAvailabilityData"]["eventAvailabilities"])
        .iter()
        .map(check_perf)
        .collect();
    (updated, perfs)
}

#[tokio::test(start_paused = true)]
async fn availabilities_move_every_few_seconds_on_tokio_time_deterministically() {
    // Steps of a minute: the client paces availability calls one per second, which moves paused time too.
    let opts = SimulatorOptions {
        changed_share: 0.3,
        availability_change_every: Duration::from_secs(60),
        ..options(40, 5)
    };
    let a = Simulator::start(opts.clone()).await.expect("simulator a");
    let b = Simulator::start(opts).await.expect("simulator b");
    let (ba, bb) = (Both::new(&a), Both::new(&b));

    let before = a.now();
    let (_, first) = observe(&ba, &a, before).await;
    assert_eq!(
        observe(&bb, &b, before).await.1,
        first,
        "same seed, same availabilities"
    );

    // Nothing moves within a step.
    tokio::time::advance(Duration::from_secs(20)).await;
    let (updated, same) = observe(&ba, &a, before).await;
    assert!(updated.is_empty(), "no change within the first minute: {updated:?}");
    assert_eq!(same, first);

    // A few steps later some products (not all) were updated, and their lastUpdate is after `before`.
    let mark = a.now();
    tokio::time::advance(Duration::from_secs(60 * 3)).await;
    let (updated, later) = observe(&ba, &a, mark).await;
    assert!(
        !updated.is_empty() && updated.len() < 40,
        "{} of 40 updated",
        updated.len()
    );
    assert_eq!(
        observe(&bb, &b, mark).await,
        (updated.clone(), later.clone()),
        "deterministic by seed"
    );
    let plans: Vec<_> = a.generator().plans().collect();
    let changed: Vec<(i64, String, u64)> = later.iter().filter(|x| !first.contains(x)).cloned().collect();
    assert!(!changed.is_empty(), "seats were sold or released");
    for (perf, ..) in &changed {
        let product = plans
            .iter()
            .find(|p| p.performances.iter().any(|x| x.id == *perf))
            .expect("known performance");
        assert!(
            updated.contains(&product.id),
            "performance {perf} moved, so its product is listed as updated"
        );
    }
    a.stop().await;
    b.stop().await;
}
