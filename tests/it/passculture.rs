//! The pass Culture target and the contremarque calls, against an in-process fake of pass Culture's public
//! API that answers the documented shapes (and applies the documented quantity quirk: a date reads its
//! total, a PATCH writes the remaining). Driven through the real path: configuration → `targets::build` /
//! `targets::plan_target` → `Outbox::plan` → `Worker::drain`, on paused time.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::passculture_fake::*;
use crate::common::*;
use chrono::{DateTime, Utc};
use secutix_sync::catalog::{Performance, Product};
use secutix_sync::config::Config;
use secutix_sync::fakes::testkit::{MockHttp, Recorded, Reply};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::push::{DrainOptions, Outbox, PlanReport, Scope, Worker};
use secutix_sync::store::Store;
use secutix_sync::targets::passculture::contremarque::{BoxOffice, ContremarqueError, Lang, exit_code};
use secutix_sync::targets::passculture::{self, PassCultureSettings, VisibilityWarning};
use secutix_sync::targets::{self, Target};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------
// The venue: catalogue, configuration, plan and drain
// ---------------------------------------------------------------------------------------------------------

fn venue_config(pc_base: &str, selection: &str) -> Config {
    config("http://127.0.0.1:9", "rest", &target_toml(pc_base, selection))
}

fn options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into()],
        mapping_version: 1,
        shop_url: String::new(),
        book_url: String::new(),
        performance_url: String::new(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

/// Availability by performance id: (level, on sale). Unlisted: on sale, level 1 when not past.
type Levels = Arc<Mutex<BTreeMap<i64, (Option<u8>, bool)>>>;

fn status_of(levels: &Levels) -> impl Fn(&Product, &Performance, DateTime<Utc>) -> PerformanceStatus + use<> {
    let levels = levels.clone();
    move |_p, perf, now| {
        let (level, on_sale) = levels
            .lock()
            .expect("levels")
            .get(&perf.id)
            .copied()
            .unwrap_or((Some(1), true));
        PerformanceStatus {
            level,
            on_sale: on_sale && !perf.is_past(now),
        }
    }
}

struct Venue {
    store: Store,
    _dir: tempfile::TempDir,
    outbox: Outbox,
    config: Config,
    target: Arc<dyn Target>,
    levels: Levels,
}

impl Venue {
    fn new(clock: &secutix_sync::clock::SharedClock, pc: &MockHttp, selection: &str) -> Self {
        let (store, dir) = store(clock);
        import_body(&store, &base_catalog(), false);
        let config = venue_config(&pc.uri(), selection);
        let target = targets::build(&config.targets[0], &store).expect("target");
        Self {
            outbox: Outbox::open(&store).expect("outbox"),
            store,
            _dir: dir,
            config,
            target,
            levels: Arc::default(),
        }
    }

    fn plan_full(&self, full: bool) -> PlanReport {
        let status = status_of(&self.levels);
        self.outbox
            .plan(
                &[targets::plan_target(&self.config.targets[0])],
                &options(),
                &status,
                &Scope::All,
                full,
                false,
            )
            .expect("plan")
    }

    fn plan(&self) -> PlanReport {
        self.plan_full(false)
    }

    async fn drain(&self) -> secutix_sync::push::DrainReport {
        Worker::new(
            &self.outbox,
            self.target.clone(),
            self.config.targets[0].push_settings(),
        )
        .expect("worker")
        .drain(DrainOptions {
            max_wait: Duration::from_secs(600),
            stop: None,
        })
        .await
        .expect("drain")
    }

    fn import(&self, body: &Value) {
        import_body(&self.store, body, false);
    }
}

fn calls(m: &MockHttp) -> Vec<String> {
    m.requests_to("/public/")
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn no_delete(m: &MockHttp) {
    assert!(
        m.requests().iter().all(|r| r.method != "DELETE"),
        "a date was deleted: {:?}",
        calls(m)
    );
}

// ---------------------------------------------------------------------------------------------------------
// Publication
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_first_publication_creates_offers_price_categories_and_dates_and_an_unchanged_run_sends_nothing() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);

    let plan = v.plan();
    let t = &plan.targets["passculture"];
    assert_eq!((t.create, t.skipped), (2, 1), "the concert is not selected: {t:?}");
    let report = v.drain().await;
    assert_eq!((report.delivered, report.dead, report.pending), (2, 0, 0));

    let reqs = pc.requests_to("/public/");
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization").as_deref() == Some("Bearer pc-test-key")),
        "every call carries the API key"
    );
    let hamlet: Vec<&Recorded> = reqs.iter().take(3).collect();
    assert_eq!(
        hamlet
            .iter()
            .map(|r| format!("{} {}", r.method, r.uri))
            .collect::<Vec<_>>(),
        vec![
            format!("GET /public/offers/v1/events?venueId={VENUE}&idsAtProvider=1&limit=50"),
            "POST /public/offers/v1/events".to_owned(),
            "POST /public/offers/v1/events/1001/dates".to_owned(),
        ]
    );
    assert_eq!(
        hamlet[1].json(),
        json!({
            "name": "Hamlet",
            "description": "Hamlet",
            "categoryRelatedFields": {"category": "SPECTACLE_REPRESENTATION", "showType": "THEATRE-CONTEMPORAIN"},
            "location": {"type": "physical", "venueId": VENUE},
            "accessibility": {"audioDisabilityCompliant": false, "mentalDisabilityCompliant": false,
                              "motorDisabilityCompliant": true, "visualDisabilityCompliant": false},
            "enableDoubleBookings": true,
            "bookingContact": "billetterie@theatre.example",
            "eventDuration": 90,
            "hasTicket": false,
            "idAtProvider": "1",
            "priceCategories": [{"label": "Moins de 26 ans", "price": 1000, "idAtProvider": YOUTH.to_string()}]
        })
    );
    // Dates: UTC, booking limit 2 h before, the quota, our ids; the price category pass Culture created.
    assert_eq!(
        hamlet[2].json(),
        json!({"dates": [
            {"beginningDatetime": "2026-03-07T10:00:00Z", "bookingLimitDatetime": "2026-03-07T08:00:00Z",
             "priceCategoryId": 1002, "quantity": 10, "idAtProvider": format!("11-{YOUTH}")},
            {"beginningDatetime": "2026-03-08T10:00:00Z", "bookingLimitDatetime": "2026-03-08T08:00:00Z",
             "priceCategoryId": 1002, "quantity": 10, "idAtProvider": format!("12-{YOUTH}")}
        ]})
    );
    assert_eq!(reqs.len(), 6, "3 calls per offer: {:?}", calls(&pc));
    assert_eq!(fake.lock().expect("fake").events.len(), 2);

    // The ack keeps the offer id; status shows the validation state.
    assert_eq!(
        v.outbox
            .acked("passculture", "secutix-1")
            .expect("ack")
            .and_then(|a| a.remote_id),
        Some("1001".to_owned())
    );
    let statuses = passculture::offer_statuses(&v.store, "passculture").expect("statuses");
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        (
            statuses[0].status.as_deref(),
            statuses[0].open_dates,
            statuses[0].name.as_deref()
        ),
        (Some("PENDING"), 2, Some("Hamlet"))
    );

    // A second run with nothing changed: nothing planned, nothing sent.
    pc.clear_requests();
    let again = v.plan();
    assert_eq!(again.targets["passculture"].operations.len(), 0);
    v.drain().await;
    // Even a full re-push finds nothing to change and sends nothing.
    let full = v.plan_full(true);
    assert_eq!(full.targets["passculture"].operations.len(), 2);
    assert_eq!(v.drain().await.delivered, 2);
    assert!(calls(&pc).is_empty(), "{:?}", calls(&pc));

    // pass Culture validated the offers: status reads it again.
    for e in fake.lock().expect("fake").events.values_mut() {
        e.insert("status".into(), json!("ACTIVE"));
    }
    let pt = passculture::PassCultureTarget::new(
        "passculture",
        v.config.targets[0].passculture().expect("settings"),
        &v.store,
    )
    .expect("target");
    assert_eq!(pt.refresh_statuses().await.expect("refresh"), 2);
    let statuses = passculture::offer_statuses(&v.store, "passculture").expect("statuses");
    assert!(
        statuses.iter().all(|s| s.status.as_deref() == Some("ACTIVE")),
        "{statuses:?}"
    );
    no_delete(&pc);
}

#[tokio::test(start_paused = true)]
async fn a_price_change_sends_one_patch_and_a_name_change_only_the_name() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.plan();
    v.drain().await;
    pc.clear_requests();

    let mut cheaper = base_catalog();
    for perf in cheaper["catalogData"]["seasons"][0]["products"][0]["event"]["performances"]
        .as_array_mut()
        .expect("perfs")
    {
        perf["prices"][1]["amount"] = json!(8000);
    }
    v.import(&cheaper);
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(
        calls(&pc),
        vec!["PATCH /public/offers/v1/events/1001/price_categories/1002"]
    );
    assert_eq!(reqs[0].json(), json!({"price": 800}));
    assert_eq!(
        fake.lock().expect("fake").price_categories[&1002].1["price"],
        json!(800)
    );

    pc.clear_requests();
    cheaper["catalogData"]["seasons"][0]["products"][0]["externalName"] =
        json!({"translations": [{"locale": "fr", "value": "Hamlet, prince de Danemark"}]});
    v.import(&cheaper);
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(calls(&pc), vec!["PATCH /public/offers/v1/events/1001"]);
    assert_eq!(reqs[0].json(), json!({"name": "Hamlet, prince de Danemark"}));
    no_delete(&pc);
}

#[tokio::test(start_paused = true)]
async fn a_sold_out_performance_goes_to_zero_and_reopens_with_the_quota_minus_bookings() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.plan();
    v.drain().await;
    let key = format!("11-{YOUTH}");
    fake.lock().expect("fake").book(&key, 3);
    pc.clear_requests();

    // SecuTix says full (3): remaining 0 on pass Culture, bookings kept.
    v.levels.lock().expect("levels").insert(11, (Some(3), true));
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(calls(&pc), vec!["PATCH /public/offers/v1/events/1001/dates/1003"]);
    assert_eq!(reqs[0].json(), json!({"quantity": 0}));
    assert_eq!(fake.lock().expect("fake").date(&key).0, Some(3), "total = the 3 booked");

    // It opens again: the date is read (total 3, booked 3), the remaining sent is quota − booked = 7.
    pc.clear_requests();
    v.levels.lock().expect("levels").insert(11, (Some(1), true));
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(
        calls(&pc),
        vec![
            format!("GET /public/offers/v1/events/1001/dates?idsAtProvider={key}&limit=50"),
            "PATCH /public/offers/v1/events/1001/dates/1003".to_owned(),
        ]
    );
    assert_eq!(reqs[1].json(), json!({"quantity": 7}));
    let (total, booked, _) = fake.lock().expect("fake").date(&key);
    assert_eq!((total, booked), (Some(10), 3), "back to the quota of 10");

    // Off sale (not full) closes it too.
    pc.clear_requests();
    v.levels.lock().expect("levels").insert(11, (Some(1), false));
    v.plan();
    v.drain().await;
    assert_eq!(pc.requests_to("/public/")[0].json(), json!({"quantity": 0}));
    no_delete(&pc);
}

#[tokio::test(start_paused = true)]
async fn a_new_performance_adds_one_date_a_moved_one_sends_its_start_and_a_removed_one_goes_to_zero() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.plan();
    v.drain().await;
    pc.clear_requests();

    // A third date for Hamlet.
    let mut c = venue_catalog(vec![
        show(
            1,
            "Hamlet",
            "TH",
            &[(11, 5, 35000, 10000), (12, 6, 35000, 10000), (13, 9, 35000, 10000)],
        ),
        show(2, "Phèdre", "TH", &[(21, 7, 30000, 8000)]),
        show(3, "Jazz au foyer", "CO", &[(31, 8, 20000, 5000)]),
    ]);
    v.import(&c);
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(calls(&pc), vec!["POST /public/offers/v1/events/1001/dates"]);
    assert_eq!(reqs[0].json()["dates"].as_array().map(Vec::len), Some(1));
    assert_eq!(reqs[0].json()["dates"][0]["idAtProvider"], json!(format!("13-{YOUTH}")));

    // Date 12 moves one hour later: its start and booking limit, nothing else, and only for it.
    pc.clear_requests();
    c["catalogData"]["seasons"][0]["products"][0]["event"]["performances"][1]["start"] = json!(ms(6) + 3_600_000);
    v.import(&c);
    v.plan();
    v.drain().await;
    let reqs = pc.requests_to("/public/");
    assert_eq!(calls(&pc), vec!["PATCH /public/offers/v1/events/1001/dates/1004"]);
    assert_eq!(
        reqs[0].json(),
        json!({"beginningDatetime": "2026-03-08T11:00:00Z", "bookingLimitDatetime": "2026-03-08T09:00:00Z"})
    );

    // Date 13 is cancelled, date 12 disappears from SecuTix: both closed, neither deleted.
    pc.clear_requests();
    let perfs = c["catalogData"]["seasons"][0]["products"][0]["event"]["performances"]
        .as_array_mut()
        .expect("perfs");
    perfs[2]["state"] = json!("CANCELED");
    perfs.remove(1);
    v.import(&c);
    v.plan();
    v.drain().await;
    let mut got = calls(&pc);
    got.sort();
    assert_eq!(
        got,
        vec![
            "PATCH /public/offers/v1/events/1001/dates/1004",
            "PATCH /public/offers/v1/events/1001/dates/1008"
        ]
    );
    assert!(
        pc.requests_to("/public/")
            .iter()
            .all(|r| r.json() == json!({"quantity": 0}))
    );
    assert_eq!(fake.lock().expect("fake").dates.len(), 4, "no date removed");
    no_delete(&pc);
}

#[tokio::test(start_paused = true)]
async fn past_dates_are_never_touched() {
    let clock = clock();
    let (pc, _fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.plan();
    v.drain().await;
    // Six days later Hamlet's first date (day 5) has started; it then sells out in SecuTix.
    tokio::time::advance(Duration::from_secs(6 * 86400 - 3600)).await;
    pc.clear_requests();
    v.levels.lock().expect("levels").insert(11, (Some(3), true));
    v.plan();
    v.drain().await;
    assert!(
        calls(&pc).iter().all(|c| !c.ends_with("/dates/1003")),
        "the started date was touched: {:?}",
        calls(&pc)
    );
}

#[tokio::test(start_paused = true)]
async fn leaving_the_selection_or_the_catalogue_closes_future_dates_without_deleting_them() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.plan();
    v.drain().await;
    pc.clear_requests();

    // Phèdre disappears from SecuTix (tombstone): its date goes to 0.
    v.import(&venue_catalog(vec![
        show(1, "Hamlet", "TH", &[(11, 5, 35000, 10000), (12, 6, 35000, 10000)]),
        show(3, "Jazz au foyer", "CO", &[(31, 8, 20000, 5000)]),
    ]));
    let plan = v.plan();
    assert_eq!(plan.targets["passculture"].unpublish, 1);
    v.drain().await;
    assert_eq!(calls(&pc), vec!["PATCH /public/offers/v1/events/1005/dates/1007"]);
    assert_eq!(pc.requests_to("/public/")[0].json(), json!({"quantity": 0}));

    // The venue narrows the selection to product 3: Hamlet is withdrawn the same way; the concert is new.
    pc.clear_requests();
    let toml = target_toml(&pc.uri(), "product_codes = [\"P3\"]")
        + "[targets.passculture.categories.CO]\ncategory = \"CONCERT\"\nmusicType = \"JAZZ-BLUES\"\n";
    let config = config("http://127.0.0.1:9", "rest", &toml);
    let target = targets::build(&config.targets[0], &v.store).expect("target");
    let narrowed = Venue { config, target, ..v };
    let plan = narrowed.plan();
    let t = &plan.targets["passculture"];
    assert_eq!((t.unpublish, t.create), (1, 1), "{t:?}");
    narrowed.drain().await;
    let hamlet: Vec<Recorded> = pc.requests_to("/public/offers/v1/events/1001/").into_iter().collect();
    assert_eq!(hamlet.len(), 2, "{:?}", calls(&pc));
    assert!(
        hamlet
            .iter()
            .all(|r| r.method == "PATCH" && r.json() == json!({"quantity": 0}))
    );
    let statuses = passculture::offer_statuses(&narrowed.store, "passculture").expect("statuses");
    assert!(
        statuses
            .iter()
            .find(|s| s.external_id == "secutix-1")
            .is_some_and(|s| s.withdrawn && s.open_dates == 0)
    );
    assert_eq!(fake.lock().expect("fake").events.len(), 3);
    no_delete(&pc);
}

#[tokio::test(start_paused = true)]
async fn a_lost_store_finds_the_offers_again_by_ids_at_provider_and_creates_nothing_twice() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let first = Venue::new(&clock, &pc, SELECT_THEATRE);
    first.plan();
    first.drain().await;
    fake.lock().expect("fake").book(&format!("12-{YOUTH}"), 2);
    drop(first);

    // A new, empty store (disk lost); meanwhile date 11 sold out in SecuTix.
    pc.clear_requests();
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    v.levels.lock().expect("levels").insert(11, (Some(3), true));
    let plan = v.plan();
    assert_eq!(plan.targets["passculture"].create, 2, "the new store knows nothing");
    let report = v.drain().await;
    assert_eq!((report.delivered, report.dead), (2, 0));
    let got = calls(&pc);
    assert!(got.iter().all(|c| !c.starts_with("POST")), "nothing created: {got:?}");
    assert_eq!(
        got,
        vec![
            format!("GET /public/offers/v1/events?venueId={VENUE}&idsAtProvider=1&limit=50"),
            "GET /public/offers/v1/events/1001/dates?limit=50&firstIndex=1".to_owned(),
            "PATCH /public/offers/v1/events/1001/dates/1003".to_owned(),
            format!("GET /public/offers/v1/events?venueId={VENUE}&idsAtProvider=2&limit=50"),
            "GET /public/offers/v1/events/1005/dates?limit=50&firstIndex=1".to_owned(),
        ]
    );
    assert_eq!(pc.requests_to("/public/")[2].json(), json!({"quantity": 0}));
    let f = fake.lock().expect("fake");
    assert_eq!((f.events.len(), f.dates.len(), f.price_categories.len()), (2, 3, 2));
    // The date with 2 bookings kept its quota: nothing sent for it.
    assert_eq!(f.date(&format!("12-{YOUTH}")).0, Some(10));
    drop(f);
    assert_eq!(
        v.outbox
            .acked("passculture", "secutix-1")
            .expect("ack")
            .and_then(|a| a.remote_id),
        Some("1001".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_to_a_creation_is_read_back_instead_of_created_twice() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, "product_codes = [\"P1\"]");
    // pass Culture creates the dates but the answer never arrives (a 502 from a proxy).
    fake.lock().expect("fake").lose_next_dates_answer = true;
    v.plan();
    let report = v.drain().await;
    assert_eq!((report.delivered, report.retried, report.dead), (1, 1, 0));
    assert_eq!(
        calls(&pc),
        vec![
            format!("GET /public/offers/v1/events?venueId={VENUE}&idsAtProvider=1&limit=50"),
            "POST /public/offers/v1/events".to_owned(),
            "POST /public/offers/v1/events/1001/dates".to_owned(),
            // The retry reads the offer back instead of creating anything again.
            format!("GET /public/offers/v1/events?venueId={VENUE}&idsAtProvider=1&limit=50"),
            "GET /public/offers/v1/events/1001/dates?limit=50&firstIndex=1".to_owned(),
        ]
    );
    let f = fake.lock().expect("fake");
    assert_eq!((f.events.len(), f.dates.len()), (1, 2), "no duplicate");
}

// ---------------------------------------------------------------------------------------------------------
// API behaviour
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_429_waits_for_retry_after_then_publishes_once() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, "product_codes = [\"P1\"]");
    script(
        &fake,
        |r| r.method == "POST" && r.uri == "/public/offers/v1/events",
        Reply::status(429)
            .header("retry-after", "30")
            .body("{\"global\": \"rate limited\"}"),
    );
    v.plan();
    let report = v.drain().await;
    assert_eq!((report.delivered, report.retried, report.dead), (1, 1, 0));
    let posts: Vec<Recorded> = pc
        .requests_to("/public/offers/v1/events")
        .into_iter()
        .filter(|r| r.method == "POST" && r.uri == "/public/offers/v1/events")
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(
        posts[1].at - posts[0].at >= Duration::from_secs(30),
        "{:?}",
        posts[1].at - posts[0].at
    );
    assert_eq!(fake.lock().expect("fake").events.len(), 1, "one offer");
    // Requests are paced under 200 a minute.
    let reqs = pc.requests_to("/public/");
    let gaps = reqs.windows(2).map(|w| w[1].at - w[0].at);
    assert!(gaps.into_iter().all(|g| g >= Duration::from_millis(330)));
}

#[tokio::test(start_paused = true)]
async fn field_errors_and_validation_lists_land_in_dead_letters_with_their_messages() {
    let clock = clock();
    let (pc, fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    script(
        &fake,
        |r| r.method == "POST" && r.uri == "/public/offers/v1/events" && r.json()["idAtProvider"] == json!("1"),
        Reply::status(400)
            .body(r#"{"name": "Le titre contient un mot interdit", "bookingContact": ["adresse invalide"]}"#),
    );
    script(
        &fake,
        |r| r.method == "POST" && r.uri.ends_with("/dates"),
        Reply::status(422).body(
            r#"[{"loc": ["body", "dates", 0, "bookingLimitDatetime"], "msg": "must be before beginningDatetime", "type": "value_error"}]"#,
        ),
    );
    v.plan();
    let report = v.drain().await;
    assert_eq!((report.delivered, report.dead), (0, 2));
    let dead = v.outbox.dead_letters(&["passculture".into()]).expect("dead letters");
    let by_id: BTreeMap<&str, &str> = dead
        .iter()
        .map(|d| (d.item.external_id.as_str(), d.error.as_str()))
        .collect();
    let e1 = by_id["secutix-1"];
    assert!(e1.contains("HTTP 400"), "{e1}");
    assert!(
        e1.contains("bookingContact: adresse invalide; name: Le titre contient un mot interdit"),
        "{e1}"
    );
    let e2 = by_id["secutix-2"];
    assert!(e2.contains("HTTP 422"), "{e2}");
    assert!(
        e2.contains("dates.0.bookingLimitDatetime: must be before beginningDatetime"),
        "{e2}"
    );
    // The refused creation left no doubt behind: a replay creates the offer, once.
    v.outbox.replay("passculture", None).expect("replay");
    let report = v.drain().await;
    assert_eq!((report.delivered, report.dead), (2, 0));
    assert_eq!(fake.lock().expect("fake").events.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_product_without_category_is_a_dead_letter_that_names_the_fix_and_sends_nothing() {
    let clock = clock();
    let (pc, _fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, "product_codes = [\"P3\"]");
    v.plan();
    let report = v.drain().await;
    assert_eq!(report.dead, 1);
    let dead = v.outbox.dead_letters(&["passculture".into()]).expect("dead letters");
    assert!(dead[0].error.contains("activity \"CO\""), "{}", dead[0].error);
    assert!(
        dead[0].error.contains("[targets.passculture.categories]"),
        "{}",
        dead[0].error
    );
    assert!(calls(&pc).is_empty());
}

#[tokio::test(start_paused = true)]
async fn visibility_warnings_are_reported_before_publishing() {
    let clock = clock();
    let (pc, _fake) = fake_pass_culture().await;
    let v = Venue::new(&clock, &pc, SELECT_THEATRE);
    let mut c = base_catalog();
    c["catalogData"]["seasons"][0]["products"][1]["externalDescription"] = json!(null);
    v.import(&c);
    v.levels.lock().expect("levels").insert(21, (Some(3), true));
    v.plan();
    let settings: &PassCultureSettings = v.config.targets[0].passculture().expect("settings");
    let checks = passculture::check_entries(&v.store, settings).expect("check");
    let phedre = checks.iter().find(|c| c.external_id == "secutix-2").expect("checked");
    assert_eq!(
        phedre.warnings,
        vec![VisibilityWarning::NoDescription, VisibilityWarning::NoQuantity]
    );
    let hamlet = checks.iter().find(|c| c.external_id == "secutix-1").expect("checked");
    assert!(hamlet.warnings.is_empty() && hamlet.error.is_none());
    assert!(!checks.iter().any(|c| c.external_id == "secutix-3"), "not selected");
    v.drain().await;
    let statuses = passculture::offer_statuses(&v.store, "passculture").expect("statuses");
    let s = statuses.iter().find(|s| s.external_id == "secutix-2").expect("status");
    assert_eq!(s.warnings.len(), 2, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn images_are_published_only_when_pass_culture_would_take_them() {
    let clock = clock();
    let (pc, _fake) = fake_pass_culture().await;
    let portrait = secutix_sync::targets::passculture::image::png_header(600, 900);
    let landscape = secutix_sync::targets::passculture::image::png_header(1200, 800);
    pc.on("GET", "/img/portrait.png", [Reply::status(200).body(portrait.clone())]);
    pc.on("GET", "/img/landscape.png", [Reply::status(200).body(landscape)]);
    let (store, _dir) = store(&clock);
    let mut c = base_catalog();
    c["catalogData"]["seasons"][0]["products"][0]["largeImageUrl"] = json!(format!("{}/img/portrait.png", pc.uri()));
    c["catalogData"]["seasons"][0]["products"][1]["largeImageUrl"] = json!(format!("{}/img/landscape.png", pc.uri()));
    import_body(&store, &c, false);
    let toml =
        target_toml(&pc.uri(), SELECT_THEATRE).replace("image = \"\"", "image = \"large\"\nimage_credit = \"Théâtre\"");
    let config = common::config("http://127.0.0.1:9", "rest", &toml);
    let v = Venue {
        outbox: Outbox::open(&store).expect("outbox"),
        target: targets::build(&config.targets[0], &store).expect("target"),
        store,
        _dir,
        config,
        levels: Arc::default(),
    };
    v.plan();
    v.drain().await;
    let images: Vec<Recorded> = pc
        .requests_to("/public/")
        .into_iter()
        .filter(|r| r.json().get("image").is_some())
        .collect();
    assert_eq!(images.len(), 1, "only the portrait image");
    assert_eq!(images[0].uri, "/public/offers/v1/events/1001");
    assert!(
        images[0].header("authorization").is_some()
            && pc
                .requests_to("/img/")
                .iter()
                .all(|r| r.header("authorization").is_none()),
        "the API key never goes to the image host"
    );
    use base64::Engine;
    assert_eq!(
        images[0].json()["image"],
        json!({"file": base64::engine::general_purpose::STANDARD.encode(&portrait), "credit": "Théâtre"})
    );
    let statuses = passculture::offer_statuses(&v.store, "passculture").expect("statuses");
    let phedre = statuses.iter().find(|s| s.external_id == "secutix-2").expect("status");
    assert!(
        phedre.image_refused.as_deref().is_some_and(|r| r.contains("1200×800")),
        "{phedre:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------

#[test]
fn the_configuration_refuses_delete_and_names_missing_keys() {
    let toml = target_toml("http://127.0.0.1:9", "")
        .replace("backoff_initial = \"1s\"", "delete_policy = \"delete\"")
        .replace("venue_id = 535", "")
        .replace("showType = \"THEATRE-CONTEMPORAIN\"", "");
    let err = Config::load(&secutix_sync::config::Sources {
        file: None,
        env: Some(BTreeMap::new()),
        overrides: Some(format!(
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"O\"\npartner = \"P\"\nsecret = \"s\"\n[store]\npath = \"/x\"\n{toml}"
        )),
    })
    .expect_err("invalid");
    let text = err.to_string();
    for key in [
        "targets[0].delete_policy",
        "targets[0].passculture.venue_id",
        "targets[0].passculture.categories.TH",
    ] {
        assert!(text.contains(key), "{key} missing in:\n{text}");
    }
    assert!(text.contains("cancels the young people's bookings"), "{text}");
    assert!(!text.contains("pc-test-key"), "the key never appears");

    let ok = venue_config("http://127.0.0.1:9", SELECT_THEATRE);
    let t = &ok.targets[0];
    assert_eq!((t.concurrency(), t.rate_per_second()), (1, 3), "pass Culture defaults");
    assert!(!format!("{t:?}").contains("pc-test-key"));
}

#[test]
fn the_documented_example_in_default_toml_loads() {
    let text = secutix_sync::config::DEFAULT_TOML;
    let start = text
        .find("# [[targets]]\n# name = \"passculture\"")
        .expect("example present");
    let example: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| l.replace("api_key_file = \"passculture-api-key\"", "api_key = \"k\""))
        .collect::<Vec<_>>()
        .join("\n");
    let c = config("http://127.0.0.1:9", "rest", &example);
    let pc = c.targets[0].passculture().expect("table");
    assert_eq!(pc.categories.len(), 4);
    assert_eq!(pc.base_url(), passculture::INTEGRATION_URL);
    assert_eq!(c.targets[0].request_timeout(), Duration::from_secs(600));
}

// ---------------------------------------------------------------------------------------------------------
// Contremarques
// ---------------------------------------------------------------------------------------------------------

fn box_office(base: &str) -> BoxOffice {
    let settings: PassCultureSettings = toml::from_str(&format!(
        "base_url = \"{base}\"\napi_key = \"pc-test-key\"\nvenue_id = {VENUE}"
    ))
    .expect("settings");
    BoxOffice::new("passculture", &settings).expect("box office")
}

#[tokio::test(start_paused = true)]
async fn every_documented_contremarque_answer_maps_to_its_message_and_exit_code() {
    type Case = (&'static str, u16, &'static str, u8);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("booking", 404, r#"{"global": "This countermark cannot be found"}"#, exit_code::NOT_FOUND),
        ("booking", 403, r#"{"payment": "This booking has already been reimbursed"}"#, exit_code::REIMBURSED),
        ("booking", 410, r#"{"booking": "This booking has already been validated"}"#, exit_code::ALREADY_USED),
        ("booking", 410, r#"{"booking": "This booking has been cancelled"}"#, exit_code::CANCELLED),
        ("booking", 403, r#"{"booking": "Vous pourrez valider cette contremarque à partir du 05/03/2026"}"#, exit_code::TOO_EARLY),
        ("use", 404, r#"{"global": "This countermark cannot be found"}"#, exit_code::NOT_FOUND),
        ("use", 403, r#"{"payment": "This booking has already been reimbursed"}"#, exit_code::REIMBURSED),
        ("use", 410, r#"{"booking": "This booking has already been validated"}"#, exit_code::ALREADY_USED),
        ("use", 410, r#"{"booking": "This booking has been cancelled"}"#, exit_code::CANCELLED),
        ("use", 403, r#"{"booking": "Cette réservation a été effectuée le 01/03/2026. Veuillez attendre le 05/03/2026"}"#, exit_code::TOO_EARLY),
        ("keep", 403, r#"{"payment": "This booking has been reimbursed"}"#, exit_code::REIMBURSED),
        ("keep", 403, r#"{"booking": "This booking has not been used"}"#, exit_code::NOT_USED),
        ("keep", 410, r#"{"booking": "This booking has been cancelled"}"#, exit_code::CANCELLED),
        ("keep", 403, r#"{"booking": "This booking has validation codes, and cannot be marked as unused"}"#, exit_code::REFUSED),
        ("cancel", 403, r#"{"payment": "This booking has been reimbursed"}"#, exit_code::REIMBURSED),
        ("cancel", 410, r#"{"booking": "This booking has been validated"}"#, exit_code::ALREADY_USED),
        ("cancel", 410, r#"{"booking": "This booking has already been cancelled"}"#, exit_code::CANCELLED),
        ("cancel", 403, r#"{"booking": "This booking cannot be cancelled anymore"}"#, exit_code::TOO_LATE),
        ("cancel", 400, r#"{"global": ["L'annulation de réservation a échoué."]}"#, exit_code::REFUSED),
        // Older (v2) French bodies still read right.
        ("cancel", 410, r#"{"global": ["Cette contremarque a déjà été annulée"]}"#, exit_code::CANCELLED),
        ("use", 403, r#"{"payment": ["Cette réservation a été remboursée"]}"#, exit_code::REIMBURSED),
        // The key, the rate limit, pass Culture down.
        ("use", 401, r#"{"auth": "API key required"}"#, exit_code::AUTH),
        ("use", 429, r#"{"global": "rate limited"}"#, exit_code::UNAVAILABLE),
        ("use", 503, "<html>maintenance</html>", exit_code::UNAVAILABLE),
    ];
    let m = MockHttp::start().await;
    let bo = box_office(&m.uri());
    let mut messages = std::collections::BTreeSet::new();
    for (action, status, body, code) in &cases {
        let (method, path) = match *action {
            "booking" => ("GET", "/public/bookings/v1/token/ABC123".to_owned()),
            a => ("PATCH", format!("/public/bookings/v1/{a}/token/ABC123")),
        };
        m.on(method, &path, [Reply::status(*status).body(*body)]);
        let err: ContremarqueError = match *action {
            "booking" => bo.booking("abc123").await.err(),
            "use" => bo.use_("abc123").await.err(),
            "keep" => bo.keep("abc123").await.err(),
            _ => bo.cancel("abc123").await.err(),
        }
        .unwrap_or_else(|| panic!("{action} {status} should fail"));
        assert_eq!(err.exit_code(), *code, "{action} {status} {body} → {err:?}");
        let (fr, en) = (err.message(Lang::Fr), err.message(Lang::En));
        assert!(!fr.is_empty() && !en.is_empty() && fr != en, "{fr} / {en}");
        messages.insert(fr);
    }
    assert!(messages.len() >= 13, "distinct messages: {messages:?}");
    assert_eq!(
        bo.use_("AB-12").await.err().map(|e| e.exit_code()),
        Some(exit_code::INVALID_TOKEN),
        "checked before any call"
    );

    // Success: 204 for the PATCHes, the booking with its date for the GET.
    for a in ["use", "keep", "cancel"] {
        m.on(
            "PATCH",
            &format!("/public/bookings/v1/{a}/token/ABC123"),
            [Reply::status(204)],
        );
    }
    assert!(bo.use_("abc123").await.is_ok());
    assert!(bo.keep("abc123").await.is_ok());
    let done = bo.cancel("abc123").await.expect("cancelled");
    assert!(done.message(Lang::Fr).contains("ABC123"));
    m.on(
        "GET",
        "/public/bookings/v1/token/ABC123",
        [Reply::json(&booking_json("CONFIRMED"))],
    );
    m.on(
        "GET",
        "/public/offers/v1/events/1001/dates",
        [Reply::json(
            &json!({"dates": [{"id": 1003, "beginningDatetime": "2026-03-07T19:00:00Z",
            "bookingLimitDatetime": "2026-03-07T17:00:00Z", "idAtProvider": "11-306159079", "priceCategory": null,
            "quantity": 10, "bookedQuantity": 2}]}),
        )],
    );
    let b = bo.booking("abc123").await.expect("booking");
    let text = b.render("ABC123", Lang::Fr, chrono_tz::Europe::Paris);
    for part in [
        "Hamlet",
        "07/03/2026 20:00",
        "Moins de 26 ans",
        "10,00 €",
        "2 (duo)",
        "Jeanne Dupont",
    ] {
        assert!(text.contains(part), "{part} missing in:\n{text}");
    }
    assert!(!text.contains("jeanne@example.org") && !text.contains("+336"), "{text}");
    let dates_call = m
        .requests_to("/public/offers/v1/events/1001/dates")
        .pop()
        .expect("date read");
    assert_eq!(
        dates_call.uri,
        "/public/offers/v1/events/1001/dates?firstIndex=1003&limit=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_booking_and_exits_with_the_documented_codes() {
    let m = MockHttp::start().await;
    m.on(
        "GET",
        "/public/bookings/v1/token/ABC123",
        [Reply::json(&booking_json("CONFIRMED"))],
    );
    m.on(
        "GET",
        "/public/offers/v1/events/1001/dates",
        [Reply::json(&json!({"dates": []}))],
    );
    m.on(
        "PATCH",
        "/public/bookings/v1/use/token/ABC123",
        [Reply::status(410).body(r#"{"booking": "This booking has already been validated"}"#)],
    );
    m.on(
        "PATCH",
        "/public/bookings/v1/cancel/token/ABC123",
        [Reply::status(404).body(r#"{"global": "This countermark cannot be found"}"#)],
    );
    m.on("PATCH", "/public/bookings/v1/keep/token/ABC123", [Reply::status(204)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("pc-key");
    std::fs::write(&key, "pc-test-key\n").expect("key");
    let cfg = dir.path().join("config.toml");
    let toml = target_toml(&m.uri(), SELECT_THEATRE).replace(
        "api_key = \"pc-test-key\"",
        &format!("api_key_file = \"{}\"", key.display()),
    );
    std::fs::write(
        &cfg,
        format!(
            "[secutix]\ninstitution = \"MOSA\"\noperator = \"O\"\npartner = \"P\"\nsecret = \"s\"\n[store]\npath = \"{}\"\n{toml}",
            dir.path().join("store").display()
        ),
    )
    .expect("config");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_secutix-sync"));
        cmd.arg("--config").arg(&cfg).arg("passculture").args(args);
        cmd.env("SECUTIX_SYNC_LOG", "info");
        cmd.output()
    };
    let out = run(&["booking", "abc123"]).await.expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Hamlet") && stdout.contains("Jeanne Dupont"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("Jeanne") && !stderr.contains("Dupont"),
        "no personal data in logs: {stderr}"
    );

    let out = run(&["use", "ABC123", "--target", "passculture"]).await.expect("runs");
    assert_eq!(out.status.code(), Some(i32::from(exit_code::ALREADY_USED)));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Déjà utilisée"));
    let out = run(&["cancel", "ABC123", "--lang", "en"]).await.expect("runs");
    assert_eq!(out.status.code(), Some(i32::from(exit_code::NOT_FOUND)));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not found"));
    let out = run(&["keep", "ABC123"]).await.expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["use", "ABC123", "--target", "nope"]).await.expect("runs");
    assert_eq!(out.status.code(), Some(i32::from(exit_code::CONFIG)));
}
