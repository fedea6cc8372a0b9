//! Which products are public (issue 13, item 9): only products whose SecuTix state is one of
//! `entries.published_states` (by default `RUNNING` and `SUSPENDED`) are published. A product being prepared
//! (`PREPARING`, not announced yet) is never sent as published, is unpublished on every target once it goes
//! back there (never deleted, whatever the target's `delete_policy`), and is absent from the public
//! availability document.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use secutix_sync::catalog::{Performance, Product};
use secutix_sync::config::{Config, ConfigError, Sources};
use secutix_sync::fakes::testkit::{MockHttp, Recorded, Reply};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::public::PublicSnapshot;
use secutix_sync::push::{DeletePolicy, DrainOptions, Outbox, PlanTarget, PushSettings, Scope, Worker};
use secutix_sync::targets::Target;
use secutix_sync::targets::webhook::{WebhookMode, WebhookSettings, WebhookTarget};
use serde_json::Value;

fn green(_: &Product, _: &Performance, _: chrono::DateTime<chrono::Utc>) -> PerformanceStatus {
    PerformanceStatus {
        level: Some(1),
        on_sale: true,
    }
}

/// Products 1 to 4 in the given states.
fn catalogue(states: [&str; 4]) -> Value {
    let products = states
        .iter()
        .zip(1..)
        .map(|(state, id)| {
            let mut p = product(id, &format!("Spectacle {id}"), &[(id * 10, 10)]);
            p["state"] = (*state).into();
            p
        })
        .collect();
    catalog(vec![season(1, "S26", -30, products)])
}

fn webhook(name: &str, m: &MockHttp) -> Arc<dyn Target> {
    let settings = WebhookSettings {
        url: format!("{}/hook", m.uri()),
        mode: WebhookMode::Put,
        secret: None,
        secret_file: None,
        headers: BTreeMap::new(),
        allow_insecure_http: false,
    };
    Arc::new(WebhookTarget::new(name, &settings, Duration::from_secs(20)).expect("webhook target"))
}

/// What a receiver was sent since the last call: `(event, external id, published)` in order.
fn sent(m: &MockHttp) -> Vec<(String, String, Option<bool>)> {
    let out = m
        .requests()
        .iter()
        .map(|r: &Recorded| {
            (
                r.header("x-secutix-sync-event").unwrap_or_default(),
                r.uri.trim_start_matches("/hook/").to_owned(),
                r.json()["entry"]["published"]
                    .as_bool()
                    .or(r.json()["published"].as_bool()),
            )
        })
        .collect();
    m.clear_requests();
    out
}

async fn push(outbox: &Outbox, options: &EntryOptions, targets: &[(PlanTarget, Arc<dyn Target>)]) {
    let plan: Vec<PlanTarget> = targets.iter().map(|(p, _)| p.clone()).collect();
    outbox
        .plan(&plan, options, &green, &Scope::All, false, false)
        .expect("plan");
    for (_, target) in targets {
        Worker::new(outbox, target.clone(), PushSettings::default())
            .expect("worker")
            .drain(DrainOptions::now())
            .await
            .expect("drain");
    }
}

fn public_ids(outbox: &Outbox) -> BTreeSet<String> {
    let doc: Value = serde_json::from_slice(
        &PublicSnapshot::build(outbox)
            .expect("public document")
            .body()
            .expect("read"),
    )
    .expect("JSON");
    doc["products"]
        .as_array()
        .expect("products")
        .iter()
        .map(|p| p["external_id"].as_str().expect("id").to_owned())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_product_not_announced_yet_is_published_on_no_target_and_not_in_the_public_document() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    let outbox = Outbox::open(&store).expect("outbox");
    // The defaults of config/default.toml, as the daemon builds them.
    let options = config("https://mosa.ws.secutix.com", "rest", "").entries.options();
    // Every delete policy: a product in preparation is hidden, never deleted nor left published.
    let receivers = [
        MockHttp::start().await,
        MockHttp::start().await,
        MockHttp::start().await,
    ];
    for m in &receivers {
        m.handle("PUT", "/hook/", |_| Some(Reply::status(204)));
        m.handle("DELETE", "/hook/", |_| Some(Reply::status(204)));
    }
    let targets: Vec<(PlanTarget, Arc<dyn Target>)> =
        [DeletePolicy::Unpublish, DeletePolicy::Delete, DeletePolicy::Keep]
            .into_iter()
            .zip(&receivers)
            .enumerate()
            .map(|(i, (policy, m))| {
                let name = format!("t{i}");
                (PlanTarget::new(name.clone(), policy), webhook(&name, m))
            })
            .collect();

    import_body(
        &store,
        &catalogue(["RUNNING", "PREPARING", "SUSPENDED", "CANCELED"]),
        false,
    );
    push(&outbox, &options, &targets).await;
    for m in &receivers {
        let got = sent(m);
        let upserted: BTreeSet<String> = got.iter().map(|(_, id, _)| id.clone()).collect();
        assert_eq!(upserted, ids(&["secutix-1", "secutix-3"]), "{got:?}");
        assert!(got.iter().all(|(e, _, p)| e == "upsert" && *p == Some(true)), "{got:?}");
    }
    let preparing = outbox.entry("secutix-2").expect("entry").expect("built");
    assert!(!preparing.entry.published, "PREPARING is not published");
    assert!(
        !outbox
            .entry("secutix-4")
            .expect("entry")
            .expect("built")
            .entry
            .published
    );
    assert_eq!(public_ids(&outbox), ids(&["secutix-1", "secutix-3"]));

    // Announced: it goes on sale, and is published everywhere.
    import_body(
        &store,
        &catalogue(["RUNNING", "RUNNING", "SUSPENDED", "CANCELED"]),
        false,
    );
    push(&outbox, &options, &targets).await;
    for m in &receivers {
        assert_eq!(sent(m), [("upsert".into(), "secutix-2".into(), Some(true))]);
    }
    assert_eq!(public_ids(&outbox), ids(&["secutix-1", "secutix-2", "secutix-3"]));

    // Back in preparation (withdrawn before its opening): unpublished on every target, deleted on none.
    import_body(
        &store,
        &catalogue(["RUNNING", "PREPARING", "SUSPENDED", "CANCELED"]),
        false,
    );
    push(&outbox, &options, &targets).await;
    for m in &receivers {
        assert_eq!(sent(m), [("unpublish".into(), "secutix-2".into(), Some(false))]);
    }
    assert_eq!(public_ids(&outbox), ids(&["secutix-1", "secutix-3"]));
    assert_eq!(
        outbox.acked("t1", "secutix-2").expect("ack").map(|a| a.kind),
        Some(secutix_sync::targets::OpKind::Unpublish),
        "delete_policy = \"delete\" does not delete a live product"
    );
}

#[tokio::test(start_paused = true)]
async fn the_published_states_are_a_setting() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    let outbox = Outbox::open(&store).expect("outbox");
    let options = config(
        "https://mosa.ws.secutix.com",
        "rest",
        "[entries]\npublished_states = [\"running\", \"PREPARING\", \"CANCELED\"]",
    )
    .entries
    .options();
    let m = MockHttp::start().await;
    m.handle("PUT", "/hook/", |_| Some(Reply::status(204)));
    let targets = [(PlanTarget::new("site", DeletePolicy::Unpublish), webhook("site", &m))];

    import_body(
        &store,
        &catalogue(["RUNNING", "PREPARING", "SUSPENDED", "CANCELED"]),
        false,
    );
    push(&outbox, &options, &targets).await;
    let upserted: BTreeSet<String> = sent(&m).into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(upserted, ids(&["secutix-1", "secutix-2", "secutix-4"]));
    assert_eq!(public_ids(&outbox), ids(&["secutix-1", "secutix-2", "secutix-4"]));
}

fn load(extra: &str) -> Result<Config, ConfigError> {
    let toml = format!(
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"P\"\nsecret = \"s3cret-value\"\n{extra}"
    );
    Config::load(&Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(toml),
    })
    .map(|l| l.config)
}

#[test]
fn a_state_secutix_does_not_have_or_an_empty_list_is_refused_with_the_valid_states() {
    let defaults = load("").expect("the defaults are valid");
    assert_eq!(defaults.entries.published_states, ["RUNNING", "SUSPENDED"]);

    let e = load("[entries]\npublished_states = [\"RUNNING\", \"ANNOUNCED\"]")
        .expect_err("unknown state")
        .to_string();
    assert!(e.contains("entries.published_states"), "{e}");
    assert!(e.contains("\"ANNOUNCED\" is not a SecuTix product state"), "{e}");
    assert!(
        e.contains("PREPARING, VALIDATED, RUNNING, SUSPENDED, CANCELED, CLOSED, CANCELED_CLOSED"),
        "{e}"
    );

    let e = load("[entries]\npublished_states = []").expect_err("empty").to_string();
    assert!(
        e.contains("entries.published_states") && e.contains("no product would be published"),
        "{e}"
    );
}
