//! A whole sync for CMS target tests on real time: a mock SecuTix (wiremock), the import, the plan and the
//! worker, around any target.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secutix_sync::catalog::{Performance, Product};
use secutix_sync::clock::{SharedClock, TokioClock};
use secutix_sync::config::Config;
use secutix_sync::import::{ImportOptions, run_import};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::push::{
    DeletePolicy, DrainOptions, DrainReport, Outbox, PlanTarget, PushSettings, Scope, TargetPlan, Worker,
};
use secutix_sync::store::Store;
use secutix_sync::targets::Target;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{client, config, pos_config, rest, t0};

/// Entry options with fr and en, a shop and link templates.
pub fn options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into(), "en".into()],
        mapping_version: 1,
        shop_url: "https://mosa.shop.secutix.com".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: "{shop}/api/1/redirect/product/performance?id={performance_id}&lang={LANGUAGE}".into(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

/// Availability levels by performance id.
pub type Levels = Arc<Mutex<BTreeMap<i64, u8>>>;

/// A mock SecuTix serving getPOSConfig and whatever catalogue `catalogue` holds at the time of the call.
pub struct SecuTix {
    pub server: MockServer,
    catalogue: Arc<Mutex<Value>>,
}

pub struct Current(Arc<Mutex<Value>>);

impl Respond for Current {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(self.0.lock().expect("catalogue").clone())
    }
}

impl SecuTix {
    /// Starts it with `catalogue`.
    pub async fn start(catalogue: Value) -> Self {
        let server = MockServer::start().await;
        let catalogue = Arc::new(Mutex::new(catalogue));
        Mock::given(method("POST"))
            .and(path(rest("catalogService", "getPOSConfig")))
            .respond_with(ResponseTemplate::new(200).set_body_json(pos_config()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(rest("catalogService", "getCatalogDetailed")))
            .respond_with(Current(catalogue.clone()))
            .mount(&server)
            .await;
        Self { server, catalogue }
    }

    /// What the next getCatalogDetailed answers.
    pub fn set(&self, catalogue: Value) {
        *self.catalogue.lock().expect("catalogue") = catalogue;
    }
}

/// Store + outbox + target: the daemon's side of one sync.
pub struct Daemon {
    pub store: Store,
    _dir: tempfile::TempDir,
    pub outbox: Outbox,
    pub cfg: Config,
    pub target: Arc<dyn Target>,
    pub policy: DeletePolicy,
    pub levels: Levels,
    /// Worker settings (concurrency 2, 60 s timeout by default).
    pub settings: PushSettings,
}

impl Daemon {
    /// A fresh store on `clock`, pushing to `target`.
    pub fn new(secutix: &SecuTix, target: Arc<dyn Target>, clock: SharedClock, policy: DeletePolicy) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 16, clock).expect("store");
        let outbox = Outbox::open(&store).expect("outbox");
        let mut cfg = config(&secutix.server.uri(), "rest", "[catalogue]\nmin_interval = \"1ms\"");
        // Real time here: SecuTix's pace (one call a second) would make every import wait a second.
        cfg.secutix.calls_per_minute = 60_000;
        Self {
            store,
            _dir: dir,
            outbox,
            cfg,
            target,
            policy,
            levels: Arc::default(),
            settings: PushSettings {
                concurrency: 2,
                request_timeout: Duration::from_secs(60),
                ..PushSettings::default()
            },
        }
    }

    /// One import from the mock SecuTix.
    pub async fn import(&self) {
        let client = client(&self.cfg, &self.store);
        run_import(&client, &self.store, &self.cfg.catalogue, ImportOptions::default())
            .await
            .expect("import from the mock SecuTix");
    }

    /// Plans every entry for the target.
    pub fn plan(&self) -> TargetPlan {
        let levels = self.levels.clone();
        let status = move |_p: &Product, perf: &Performance, now: DateTime<Utc>| PerformanceStatus {
            level: levels.lock().expect("levels").get(&perf.id).copied(),
            on_sale: !perf.is_past(now),
        };
        let targets = [PlanTarget::new(self.target.name(), self.policy)];
        self.outbox
            .plan(&targets, &options(), &status, &Scope::All, false, false)
            .expect("plan")
            .targets[self.target.name()]
        .clone()
    }

    /// Drains what is due now.
    pub async fn drain(&self) -> DrainReport {
        Worker::new(&self.outbox, self.target.clone(), self.settings.clone())
            .expect("worker")
            .drain(DrainOptions::now())
            .await
            .expect("drain")
    }

    /// Import, plan, drain; asserts nothing failed.
    pub async fn sync(&self) -> (TargetPlan, DrainReport) {
        self.import().await;
        let plan = self.plan();
        let report = self.drain().await;
        let dead = self
            .outbox
            .dead_letters(&[self.target.name().to_owned()])
            .expect("dead letters");
        assert!(dead.is_empty(), "dead letters: {dead:#?}");
        assert_eq!(
            (report.delivered, report.pending),
            (plan.operations.len() as u64, 0),
            "{plan:?} {report:?}"
        );
        (plan, report)
    }

    /// Sets the indicator of a performance.
    pub fn set_level(&self, performance: i64, level: u8) {
        self.levels.lock().expect("levels").insert(performance, level);
    }
}

/// A clock on real time that reads `t0() + offset` now (the fixtures' performances are dated from `t0()`).
pub fn clock_at(offset: chrono::Duration) -> SharedClock {
    Arc::new(TokioClock::starting_at(t0() + offset))
}

/// The commented example of `config/default.toml` that starts with the line `first`, up to the next blank
/// comment line followed by a line that is not part of it, uncommented.
pub fn default_toml_example(first: &str, until: &str) -> String {
    let text = secutix_sync::config::DEFAULT_TOML;
    let start = text.find(first).expect("example start");
    let end = text[start..].find(until).map_or(text.len(), |e| start + e);
    text[start..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix('#')).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads a configuration made of the tests' SecuTix section and `targets` (TOML), returning the problems.
pub fn load_targets(targets: &str) -> Result<Config, Vec<secutix_sync::config::Problem>> {
    let toml = format!(
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"P\"\nsecret = \"s\"\n\
         [store]\npath = \"/nonexistent-unused\"\n{targets}"
    );
    match Config::load(&secutix_sync::config::Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(toml),
    }) {
        Ok(l) => Ok(l.config),
        Err(secutix_sync::config::ConfigError::Invalid(p)) => Err(p),
        Err(e) => panic!("{e}"),
    }
}
