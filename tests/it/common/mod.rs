//! Shared helpers for the integration tests: configuration, a store on paused time, SecuTix wire builders;
//! and, one module each, the real binary driven from a test (`binary`), a whole sync around a CMS target
//! (`cms`), a mock SecuTix for the daemon (`secutix_mock`) and a fake pass Culture (`passculture_fake`).

pub mod binary;
pub mod cms;
pub mod passculture_fake;
pub mod secutix_mock;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use secutix_sync::clock::{SharedClock, TokioClock};
use secutix_sync::config::{Config, Sources};
use secutix_sync::secutix::Client;
use secutix_sync::store::Store;
use serde_json::{Value, json};

/// The fixed "now" of the tests: 2026-03-02 10:00 UTC (11:00 in Paris).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().expect("valid date")
}

/// Epoch milliseconds of `t0() + days`.
pub fn ms(days: i64) -> i64 {
    (t0() + chrono::Duration::days(days)).timestamp_millis()
}

/// A configuration pointing at `base` with test-friendly values, plus `extra` TOML lines.
pub fn config(base: &str, transport: &str, extra: &str) -> Config {
    let toml = format!(
        r#"
[secutix]
institution = "MOSA"
base_url = "{base}"
transport = "{transport}"
operator = "MOSA_WEBSYNC"
partner = "Test Partner"
secret = "test-secret-value"
request_timeout = "30s"
[store]
path = "/nonexistent-unused"
{extra}
"#
    );
    Config::load(&Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(toml),
    })
    .expect("test configuration loads")
    .config
}

/// A paused-time clock starting at `t0()`.
pub fn clock() -> SharedClock {
    Arc::new(TokioClock::starting_at(t0()))
}

/// A store in a temporary folder, and the folder (keep it alive).
pub fn store(clock: &SharedClock) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store opens");
    (store, dir)
}

/// A client on `config`, recording calls in `store`.
pub fn client(config: &Config, store: &Store) -> Client {
    Client::new(&config.secutix, Arc::new(store.clone()), store.clock().clone()).expect("client")
}

/// The set-up most import tests start from: a paused-time clock at `t0()`, a store in a temporary folder and a
/// configuration pointing at a mock SecuTix. `venue.import()` runs one catalogue import as the daemon would.
pub struct Venue {
    /// The paused-time clock.
    pub clock: SharedClock,
    /// The store (cheap to clone: it is a handle).
    pub store: Store,
    /// The loaded configuration.
    pub cfg: Config,
    /// The store's folder, removed when the venue is dropped.
    _dir: tempfile::TempDir,
}

impl Venue {
    /// A venue whose SecuTix is at `base` over `transport` (`rest` or `soap`), with `extra` TOML lines.
    pub fn new(base: &str, transport: &str, extra: &str) -> Venue {
        let clock = clock();
        let (store, dir) = store(&clock);
        Venue {
            clock,
            store,
            cfg: config(base, transport, extra),
            _dir: dir,
        }
    }

    /// A SecuTix client on this venue's configuration and store.
    pub fn client(&self) -> Client {
        client(&self.cfg, &self.store)
    }

    /// One catalogue import with a fresh client, as `import` and the daemon run it.
    pub async fn import(&self) -> Result<secutix_sync::store::ImportReport, secutix_sync::import::ImportError> {
        self.import_with(&self.client(), secutix_sync::import::ImportOptions::default())
            .await
    }

    /// One catalogue import through `client` (kept between imports when a test follows its token or calls).
    pub async fn import_with(
        &self,
        client: &Client,
        options: secutix_sync::import::ImportOptions,
    ) -> Result<secutix_sync::store::ImportReport, secutix_sync::import::ImportError> {
        secutix_sync::import::run_import(client, &self.store, &self.cfg.catalogue, options).await
    }
}

/// REST path of a SecuTix method.
pub fn rest(service: &str, method: &str) -> String {
    format!("/tnseb/backend-apis/{service}/v1_33/{method}")
}

/// SOAP path of a SecuTix service.
pub fn soap_path(package: &str, class: &str) -> String {
    format!("/tnseb/external-remoting/com.secutix.service.realtime.{package}.v1_33.{class}.webservice")
}

/// A getPOSConfig result.
pub fn pos_config() -> Value {
    json!({"statusCode": "success", "requestId": null, "statusDetail": null,
           "posConfigData": {"posId": 123456789, "currencyCode": "EUR", "organizationTimeZone": "Europe/Paris",
                             "mainLanguage": "fr", "languageList": "fr,en"}})
}

/// A SINGLE_ENTRY product with performances `(id, start in days from t0)`.
pub fn product(id: i64, title: &str, perfs: &[(i64, i64)]) -> Value {
    json!({
        "id": id, "code": format!("P{id}"), "productFamilyType": "SINGLE_ENTRY", "productFamilySubType": "SIMPLE_TICKET",
        "state": "RUNNING", "smallImageUrl": null,
        "externalName": {"translations": [{"locale": "fr", "value": title}, {"locale": "en", "value": null}]},
        "externalDescription": {"translations": [{"locale": "fr", "value": format!("<p>{title}</p>")}]},
        "salePeriods": [],
        "event": {"activityId": 10, "activityCode": "TH", "activityType": "LIVE_SPECT", "alertRatio": 20.000,
            "activityExternalName": {"translations": [{"locale": "fr", "value": "Théâtre"}]},
            "performances": perfs.iter().map(|(pid, d)| json!({
                "id": pid, "start": ms(*d), "duration": 5400, "state": null, "seatCategories": [],
                "prices": [{"institutionSeatCatId": 1, "seatCatId": null, "audSubCatId": 306159078, "amount": 35000, "priceLevelId": null}],
                "salePeriods": []})).collect::<Vec<_>>()}
    })
}

/// A season.
pub fn season(id: i64, code: &str, start_days: i64, products: Vec<Value>) -> Value {
    json!({"id": id, "code": code, "start": ms(start_days), "end": ms(start_days + 300),
           "externalName": {"translations": [{"locale": "fr", "value": code}]},
           "audienceCategories": [{"id": 1, "code": "PLEIN", "externalName": {"translations": [{"locale": "fr", "value": "Plein"}]},
               "audienceSubCategories": [{"id": 306159078, "code": "ADU", "externalName": {"translations": [{"locale": "fr", "value": "Adulte"}]}, "audienceCategoryKind": "FULL"}]}],
           "priceLevels": [], "products": products})
}

/// A successful getCatalogDetailed body with `seasons`.
pub fn catalog(seasons: Vec<Value>) -> Value {
    json!({"statusCode": "success", "requestId": null, "statusDetail": null, "catalogData": {"seasons": seasons}})
}

/// A catalogue of `n` products with ids 1000.. in one season.
pub fn catalog_n(n: i64) -> Value {
    catalog(vec![season(
        1,
        "S26",
        -30,
        (0..n)
            .map(|i| product(1000 + i, &format!("Spectacle {i}"), &[(5000 + i, 10)]))
            .collect(),
    )])
}

/// Turns a JSON value into JAX-WS style XML (repeated elements for lists, nulls omitted).
pub fn jaxws(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|i| jaxws(name, i, out)),
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                jaxws(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", quick_xml::escape::escape(s.as_str()))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// A SOAP response for `method` whose `<return>` is `result` (a JSON object).
pub fn soap_response(method: &str, result: &Value) -> String {
    let mut inner = String::new();
    if let Value::Object(map) = result {
        for (k, v) in map {
            jaxws(k, v, &mut inner);
        }
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:{method}Response xmlns:ns2="http://v1_33.CatalogService.service.secutix.com"><return>{inner}</return></ns2:{method}Response></S:Body></S:Envelope>"#
    )
}

/// Imports a getCatalogDetailed JSON body straight into the store (no SecuTix call), with a POS config.
pub fn import_body(store: &Store, body: &Value, force: bool) -> secutix_sync::store::ImportCounts {
    use secutix_sync::secutix::json::parse_catalog_slice;
    use secutix_sync::secutix::wire::ConvertCtx;
    use secutix_sync::store::FinishOptions;
    let mut txn = store.begin_import(&["SINGLE_ENTRY".to_owned()]).expect("begin import");
    let bytes = serde_json::to_vec(body).expect("json");
    let ctx = ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    };
    parse_catalog_slice("getCatalogDetailed", &bytes, &ctx, &mut txn).expect("parses");
    let pos = secutix_sync::secutix::wire::RawPosConfig::deserialize(&pos_config()["posConfigData"])
        .expect("pos")
        .into_domain();
    txn.finish(&FinishOptions {
        force,
        pos: Some(pos),
        ..FinishOptions::default()
    })
    .expect("finishes")
}

use serde::Deserialize as _;

/// A calendar clock that moves only when told: for tests on real time (wiremock, a real CMS) that need to
/// jump past a `Retry-After` or a back-off without sleeping.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock reading `at`.
    pub fn at(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock(std::sync::Mutex::new(at)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().expect("clock");
        *t += chrono::Duration::from_std(by).expect("duration");
    }
}

impl secutix_sync::clock::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}
