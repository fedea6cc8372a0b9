//! A mock SecuTix for the daemon tests, on [`MockHttp`] (paused-time safe): catalogService (`getPOSConfig`,
//! `getCatalogDetailed`, `isCatalogServiceAlive`) and availabilityService in the wire shape of contract B
//! (CONTRACTS.md), so the tests keep working when the real availability poller calls it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secutix_sync::clock::SharedClock;
use secutix_sync::fakes::testkit::{MockHttp, Recorded, Reply};
use serde_json::{Value, json};

/// Path prefix of every REST call.
pub const REST: &str = "/tnseb/backend-apis/";

#[derive(Default)]
struct Script {
    catalogue: Value,
    catalogue_delay: Duration,
    /// Served to getCatalogDetailed instead of `catalogue` (garbage, a stalling stream…).
    catalogue_reply: Option<Reply>,
    /// Indicator level names by performance id; `GOOD` when absent.
    levels: BTreeMap<i64, String>,
}

/// The mock and its script.
#[derive(Clone)]
pub struct MockSecutix {
    /// The HTTP mock (requests are recorded there).
    pub http: MockHttp,
    script: Arc<Mutex<Script>>,
    refuse: Arc<AtomicBool>,
}

fn performance_ids(v: &Value) -> Vec<i64> {
    let mut ids = Vec::new();
    for season in v["catalogData"]["seasons"].as_array().into_iter().flatten() {
        for p in season["products"].as_array().into_iter().flatten() {
            for perf in p["event"]["performances"].as_array().into_iter().flatten() {
                ids.extend(perf["id"].as_i64());
            }
        }
    }
    ids
}

fn product_ids(v: &Value) -> Vec<i64> {
    v["catalogData"]["seasons"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["products"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["id"].as_i64())
        .collect()
}

impl MockSecutix {
    /// Starts on 127.0.0.1:0 serving `catalogue` (a getCatalogDetailed body). `clock` stamps `lastUpdate`.
    pub async fn start(catalogue: Value, clock: SharedClock) -> Self {
        let http = MockHttp::start().await;
        let script = Arc::new(Mutex::new(Script {
            catalogue,
            ..Script::default()
        }));
        let refuse = Arc::new(AtomicBool::new(false));
        let (s, r) = (script.clone(), refuse.clone());
        http.handle("POST", REST, move |req| Some(answer(&s, &r, &clock, req)));
        Self { http, script, refuse }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.http.uri()
    }

    /// Replaces the catalogue served from now on.
    pub fn set_catalogue(&self, v: Value) {
        self.script.lock().expect("script").catalogue = v;
    }

    /// Delays every getCatalogDetailed answer (tokio time).
    pub fn set_catalogue_delay(&self, d: Duration) {
        self.script.lock().expect("script").catalogue_delay = d;
    }

    /// Answers getCatalogDetailed with `reply` from now on (`None`: the catalogue again). Availability
    /// calls still answer from the catalogue set with [`MockSecutix::set_catalogue`].
    pub fn set_catalogue_reply(&self, reply: Option<Reply>) {
        self.script.lock().expect("script").catalogue_reply = reply;
    }

    /// Answers 401 to everything while `yes`.
    pub fn refuse_credentials(&self, yes: bool) {
        self.refuse.store(yes, Ordering::SeqCst);
    }

    /// Calls of `method` received.
    pub fn calls(&self, method: &str) -> Vec<Recorded> {
        self.http
            .requests()
            .into_iter()
            .filter(|r| r.uri.starts_with(REST) && r.uri.ends_with(&format!("/{method}")))
            .collect()
    }
}

fn answer(script: &Mutex<Script>, refuse: &AtomicBool, clock: &SharedClock, req: &Recorded) -> Reply {
    if refuse.load(Ordering::SeqCst) {
        return Reply::status(401).body("Unauthorized");
    }
    let method = req.uri.rsplit('/').next().unwrap_or("").to_owned();
    let body = req.json();
    let st = script.lock().expect("script");
    let level = |id: i64| st.levels.get(&id).cloned().unwrap_or_else(|| "GOOD".to_owned());
    let perf = |id: i64| json!({"performanceId": id, "level": level(id), "quantity": 120, "quota": 400});
    let ids = |key: &str| -> Vec<i64> {
        body[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    };
    match method.as_str() {
        "getPOSConfig" => Reply::json(&crate::common::pos_config()),
        "isCatalogServiceAlive" => Reply::json(&json!({"statusCode": "success", "requestId": null})),
        "getCatalogDetailed" => match &st.catalogue_reply {
            Some(r) => r.clone(),
            None => Reply::json(&st.catalogue).delay(st.catalogue_delay),
        },
        "getUpdatedAvailabilities" => {
            let mut products = ids("productIds");
            if products.is_empty() {
                products = product_ids(&st.catalogue);
            }
            let now = clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Reply::json(&json!({"statusCode": "success", "requestId": "mock-1",
                "availabilityUpdateData": products.iter().map(|p| json!({"productId": p, "lastUpdate": now})).collect::<Vec<_>>()}))
        }
        "getEventAvailability" => {
            let mut perfs = ids("performanceIds");
            if perfs.is_empty() {
                perfs = performance_ids(&st.catalogue);
            }
            Reply::json(&json!({"statusCode": "success",
                "eventAvailabilityData": {"eventAvailabilities": perfs.into_iter().map(perf).collect::<Vec<_>>()}}))
        }
        "getPerformanceAvailability" => Reply::json(&json!({"statusCode": "success",
            "performanceAvailabilityData": ids("performanceIds").into_iter().map(perf).collect::<Vec<_>>()})),
        "getProductAvailability" => {
            let product = body["productId"].as_i64().unwrap_or_default();
            Reply::json(&json!({"statusCode": "success",
                "productAvailabilityData": {"productId": product, "level": "GOOD", "quantity": 120, "quota": 400}}))
        }
        other => Reply::status(404).body(format!("mock SecuTix: unknown method {other}")),
    }
}

/// `body` with every performance start moved from `common::t0()` to `base` (for tests on real time).
pub fn shifted(mut body: Value, base: DateTime<Utc>) -> Value {
    let offset = (base - crate::common::t0()).num_milliseconds();
    for season in body["catalogData"]["seasons"].as_array_mut().into_iter().flatten() {
        for key in ["start", "end"] {
            if let Some(t) = season[key].as_i64() {
                season[key] = json!(t + offset);
            }
        }
        for p in season["products"].as_array_mut().into_iter().flatten() {
            for perf in p["event"]["performances"].as_array_mut().into_iter().flatten() {
                if let Some(t) = perf["start"].as_i64() {
                    perf["start"] = json!(t + offset);
                }
            }
        }
    }
    body
}

/// A catalogue of products `(id, title)`, each with one performance (id + 4000) ten days after t0.
pub fn catalogue_of(products: &[(i64, &str)]) -> Value {
    crate::common::catalog(vec![crate::common::season(
        1,
        "S26",
        -30,
        products
            .iter()
            .map(|(id, title)| crate::common::product(*id, title, &[(id + 4000, 10)]))
            .collect(),
    )])
}
