//! Availability polling against a mock SecuTix on paused time: the first poll after an import, only changed
//! products afterwards, dirty marks only on changes, the mapping through both transports, rate limits and
//! timeouts, the budget over a simulated month with its tiers, and the parser on arbitrary bytes.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use secutix_sync::availability::{self, Level, PollOptions, PollReport, Poller, performance_status};
use secutix_sync::clock::SharedClock;
use secutix_sync::config::Config;
use secutix_sync::fakes::testkit::{MockHttp, Recorded, Reply};
use secutix_sync::indicator::AvailabilityStatus;
use secutix_sync::merge::EntryOptions;
use secutix_sync::push::{Outbox, Scope};
use secutix_sync::secutix::availability::{AvailabilityMethod, parse_answer};
use secutix_sync::secutix::settings::Transport;
use secutix_sync::store::Store;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------
// A mock availabilityService (REST and SOAP) whose availabilities can change
// ---------------------------------------------------------------------------------------------------------

struct SimPerf {
    product: i64,
    start: DateTime<Utc>,
    quota: i64,
    quantity: i64,
    /// Explicit fields to answer instead of the default `{level, quantity, quota}`.
    answer: Option<Value>,
}

#[derive(Default)]
struct Sim {
    perfs: BTreeMap<i64, SimPerf>,
    /// Last availability change per product.
    updated: BTreeMap<i64, DateTime<Utc>>,
    /// Answers of products without performances.
    product_answers: BTreeMap<i64, Value>,
    /// Sales over time (the simulated month).
    dynamic: bool,
    last_tick: i64,
    /// Every fetched performance with the time it was asked.
    fetches: Vec<(DateTime<Utc>, i64)>,
    /// Every request: time, method, parameters.
    requests: Vec<(DateTime<Utc>, String, Value)>,
    /// Replies to give instead of the normal answer, per method, in order.
    inject: Vec<(String, Reply)>,
}

const TICK_MINUTES: i64 = 10;

impl Sim {
    fn add(&mut self, product: i64, perf: i64, start: DateTime<Utc>, quota: i64) {
        self.perfs.insert(
            perf,
            SimPerf {
                product,
                start,
                quota,
                quantity: quota,
                answer: None,
            },
        );
    }

    /// Sets what SecuTix answers for a performance and records the change.
    fn set(&mut self, perf: i64, answer: Value, now: DateTime<Utc>) {
        let p = self.perfs.get_mut(&perf).expect("known performance");
        p.answer = Some(answer);
        let product = p.product;
        self.updated.insert(product, now);
    }

    /// Marks a product changed without changing what it answers (a sale that moves no indicator).
    fn touch(&mut self, product: i64, now: DateTime<Utc>) {
        self.updated.insert(product, now);
    }

    /// Sales every tick: every 30 min within 48 h of the start, every 3 h within 2 weeks, every 12 h else.
    fn advance(&mut self, now: DateTime<Utc>) {
        if !self.dynamic {
            return;
        }
        let tick = (now - common::t0()).num_minutes() / TICK_MINUTES;
        while self.last_tick < tick {
            self.last_tick += 1;
            let at = common::t0() + chrono::Duration::minutes(self.last_tick * TICK_MINUTES);
            let minutes = self.last_tick * TICK_MINUTES;
            for p in self.perfs.values_mut() {
                if p.start <= at || p.quantity == 0 {
                    continue;
                }
                let to_start = p.start - at;
                let every = if to_start <= chrono::Duration::hours(48) {
                    30
                } else if to_start <= chrono::Duration::days(14) {
                    180
                } else {
                    720
                };
                if minutes % every == 0 {
                    p.quantity = (p.quantity - 7).max(0);
                    self.updated.insert(p.product, at);
                }
            }
        }
    }

    fn perf_answer(&self, id: i64) -> Option<Value> {
        let p = self.perfs.get(&id)?;
        let mut v = match &p.answer {
            Some(a) => a.clone(),
            None => {
                let level = if p.quantity == 0 {
                    "SOLD_OUT"
                } else if p.quantity * 100 <= 20 * p.quota {
                    "LIMITED"
                } else {
                    "GOOD"
                };
                json!({"level": level, "quantity": p.quantity, "quota": p.quota})
            }
        };
        v["performanceId"] = json!(id);
        Some(v)
    }

    fn answer(&mut self, now: DateTime<Utc>, method: &str, params: &Value) -> Option<Value> {
        self.advance(now);
        self.requests.push((now, method.to_owned(), params.clone()));
        if let Some(i) = self.inject.iter().position(|(m, _)| m == method) {
            // Signalled to the caller by returning None: it answers with the injected reply.
            let _ = i;
            return None;
        }
        let ids = |k: &str| -> Vec<i64> {
            params
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(match method {
            "getUpdatedAvailabilities" => {
                let since = params
                    .get("referenceDate")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.with_timezone(&Utc))
                    .expect("referenceDate is RFC 3339");
                let data: Vec<Value> = ids("productIds")
                    .into_iter()
                    .filter_map(|p| {
                        let at = self.updated.get(&p)?;
                        (*at > since).then(|| json!({"productId": p, "lastUpdate": at.to_rfc3339()}))
                    })
                    .collect();
                json!({"statusCode": "success", "requestId": 1, "availabilityUpdateData": data})
            }
            "getEventAvailability" | "getPerformanceAvailability" => {
                let mut list = Vec::new();
                for id in ids("performanceIds") {
                    self.fetches.push((now, id));
                    if let Some(a) = self.perf_answer(id) {
                        list.push(a);
                    }
                }
                if method == "getEventAvailability" {
                    json!({"statusCode": "success", "eventAvailabilityData": {"eventAvailabilities": list}})
                } else {
                    json!({"statusCode": "success", "performanceAvailabilityData": list})
                }
            }
            "getProductAvailability" => {
                let id = params
                    .get("productId")
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .unwrap_or(0);
                let mut a = self
                    .product_answers
                    .get(&id)
                    .cloned()
                    .unwrap_or(json!({"level": "GOOD"}));
                a["productId"] = json!(id);
                json!({"statusCode": "success", "productAvailabilityData": a})
            }
            other => json!({"statusCode": "error", "statusDetail": format!("unknown method {other}")}),
        })
    }
}

/// Values of `<tag>…</tag>` in a SOAP request.
fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

/// The method and parameters of a request, REST or SOAP.
fn request_of(r: &Recorded) -> (String, Value) {
    if let Some(m) = r.uri.strip_prefix("/tnseb/backend-apis/availabilityService/v1_33/") {
        return (m.to_owned(), r.json());
    }
    let body = r.text();
    let start = body.find("<v1:").map(|i| i + 4).expect("SOAP body element");
    let method: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let list = |t: &str| Value::Array(xml_values(&body, t).into_iter().map(Value::String).collect());
    let one = |t: &str| {
        xml_values(&body, t)
            .into_iter()
            .next()
            .map_or(Value::Null, Value::String)
    };
    let params = json!({
        "pointOfSalesId": one("pointOfSalesId"),
        "productIds": list("productIds"),
        "performanceIds": list("performanceIds"),
        "referenceDate": one("referenceDate"),
        "productId": one("productId"),
    });
    (method, params)
}

struct Harness {
    mock: MockHttp,
    sim: Arc<Mutex<Sim>>,
    clock: SharedClock,
    store: Store,
    poller: Poller,
    _dir: tempfile::TempDir,
}

async fn harness(transport: &str, availability_toml: &str, catalogue: Value, setup: impl FnOnce(&mut Sim)) -> Harness {
    let mock = MockHttp::start().await;
    let clock = common::clock();
    let sim = Arc::new(Mutex::new(Sim::default()));
    setup(&mut sim.lock().expect("sim"));
    let (s, c, soap) = (sim.clone(), clock.clone(), transport == "soap");
    mock.handle("POST", "/tnseb/", move |r| {
        let (method, params) = request_of(r);
        let mut sim = s.lock().expect("sim");
        match sim.answer(c.now(), &method, &params) {
            Some(v) if soap => Some(Reply::xml(common::soap_response(&method, &v))),
            Some(v) => Some(Reply::json(&v)),
            None => {
                let i = sim.inject.iter().position(|(m, _)| *m == method).expect("injected");
                Some(sim.inject.remove(i).1)
            }
        }
    });
    let config = common::config(&mock.uri(), transport, &format!("[availability]\n{availability_toml}"));
    let (store, dir) = common::store(&clock);
    common::import_body(&store, &catalogue, false);
    let client = Arc::new(common::client(&config, &store));
    let poller = Poller::new(client, store.clone(), config.availability.clone()).expect("poller");
    Harness {
        mock,
        sim,
        clock,
        store,
        poller,
        _dir: dir,
    }
}

impl Harness {
    async fn poll(&self) -> PollReport {
        self.poller.poll_once(PollOptions::default()).await.expect("poll runs")
    }

    fn sim(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.sim.lock().expect("sim")
    }

    /// Methods called since the last `take_calls`.
    fn take_calls(&self) -> Vec<(String, Value)> {
        let mut s = self.sim();
        s.requests.drain(..).map(|(_, m, p)| (m, p)).collect()
    }

    fn level(&self, product: i64, perf: i64) -> Option<Level> {
        self.poller
            .availability()
            .performance(product, perf)
            .expect("read")
            .and_then(|a| a.level)
    }

    fn shown(&self, product: i64, perf: i64) -> AvailabilityStatus {
        let cat = self.store.catalog().expect("catalogue").expect("imported");
        let p = cat.product(product).expect("read").expect("product").product;
        let perf = p
            .performances()
            .iter()
            .find(|x| x.id == perf)
            .expect("performance")
            .clone();
        let stored = self.poller.availability().performance(product, perf.id).expect("read");
        performance_status(&p, &perf, stored.as_ref(), self.clock.now()).shown()
    }

    fn clear_dirty(&self) {
        let a = self.poller.availability();
        let marks = a.dirty_products().expect("marks");
        a.clear_dirty(&marks).expect("clear");
    }

    async fn wait(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A SINGLE_ENTRY product with performances `(id, hours from t0)`.
fn event(id: i64, perfs: &[(i64, i64)]) -> Value {
    let mut p = common::product(
        id,
        &format!("Spectacle {id}"),
        &perfs.iter().map(|(pid, _)| (*pid, 0)).collect::<Vec<_>>(),
    );
    for (i, (_, h)) in perfs.iter().enumerate() {
        p["event"]["performances"][i]["start"] = json!((common::t0() + chrono::Duration::hours(*h)).timestamp_millis());
    }
    p
}

fn catalogue(products: Vec<Value>) -> Value {
    common::catalog(vec![common::season(1, "S26", -30, products)])
}

fn hours(h: i64) -> DateTime<Utc> {
    common::t0() + chrono::Duration::hours(h)
}

fn method_count(calls: &[(String, Value)], m: &str) -> usize {
    calls.iter().filter(|(x, _)| x == m).count()
}

// ---------------------------------------------------------------------------------------------------------
// The poll
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_first_poll_fetches_everything_once_then_only_changed_products() {
    // Every tier asked at every poll: this test is about what is fetched, the tiers have their own.
    let h = harness(
        "rest",
        "mid_every = 1\nfar_every = 1",
        catalogue(vec![
            event(1, &[(11, 20), (12, 30)]),
            event(2, &[(21, 24 * 5)]),
            event(3, &[(31, 24 * 40)]),
        ]),
        |s| {
            s.add(1, 11, hours(20), 100);
            s.add(1, 12, hours(30), 100);
            s.add(2, 21, hours(120), 100);
            s.add(3, 31, hours(960), 100);
        },
    )
    .await;

    // First poll after the import: nothing to ask, every product fetched once, with all its performances.
    let r = h.poll().await;
    let calls = h.take_calls();
    assert_eq!(r.error, None);
    assert_eq!(method_count(&calls, "getUpdatedAvailabilities"), 0);
    assert_eq!(method_count(&calls, "getEventAvailability"), 3);
    assert_eq!(r.calls, 3);
    let first = calls.iter().find(|(m, _)| m == "getEventAvailability").expect("fetch");
    assert_eq!(
        first.1["performanceIds"],
        json!([11, 12]),
        "near product first, all its performances"
    );
    assert_eq!(first.1["seatCategoryIds"], json!([]));
    assert_eq!(first.1["pointOfSalesId"], json!(123456789));
    assert_eq!(r.fetched, vec![1, 2, 3]);
    assert_eq!(r.changes.len(), 4, "unknown → available for every performance");
    assert!(
        r.changes
            .iter()
            .all(|c| c.before == AvailabilityStatus::Unknown && c.after == AvailabilityStatus::Available)
    );
    assert_eq!(r.dirty, vec![1, 2, 3]);
    assert_eq!(h.level(1, 11), Some(Level::Available));
    let marks = h.poller.availability().dirty_products().expect("marks");
    assert_eq!(marks.iter().map(|m| m.product_id).collect::<Vec<_>>(), vec![1, 2, 3]);
    h.clear_dirty();
    assert!(r.next_poll_in >= Duration::from_secs(60));
    let first_poll_start = h.poller.availability().reference_date().expect("read").expect("set");

    // Nothing changed: one getUpdatedAvailabilities about every product, no fetch, no dirty mark.
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    let calls = h.take_calls();
    assert_eq!(r.error, None);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "getUpdatedAvailabilities");
    assert_eq!(calls[0].1["productIds"], json!([1, 2, 3]));
    let overlap = secutix_sync::availability::poller::REFERENCE_OVERLAP;
    assert_eq!(
        calls[0].1["referenceDate"],
        json!(secutix_sync::secutix::availability::reference_date(
            first_poll_start - overlap
        ))
    );
    assert!(r.fetched.is_empty() && r.changes.is_empty() && r.dirty.is_empty());
    assert!(h.poller.availability().dirty_products().expect("marks").is_empty());

    // Product 2 sells out: only it is fetched, only it is dirty.
    let now = h.clock.now();
    h.sim()
        .set(21, json!({"level": "SOLD_OUT", "quantity": 0, "quota": 100}), now);
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    let calls = h.take_calls();
    assert_eq!(r.error, None);
    let fetched: Vec<&Value> = calls
        .iter()
        .filter(|(m, _)| m == "getEventAvailability")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(fetched.len(), 1, "{calls:?}");
    assert_eq!(fetched[0]["performanceIds"], json!([21]));
    assert_eq!(r.fetched, vec![2]);
    assert_eq!(r.dirty, vec![2]);
    assert_eq!(r.changes.len(), 1);
    assert_eq!(
        (r.changes[0].before, r.changes[0].after),
        (AvailabilityStatus::Available, AvailabilityStatus::SoldOut)
    );
    assert_eq!(h.shown(2, 21), AvailabilityStatus::SoldOut);
    let log = h.poller.availability().recent_changes(10).expect("log");
    assert_eq!(log[0].product_id, 2, "most recent first");
    assert_eq!(log[0].at, r.changes[0].at);
    h.clear_dirty();

    // SecuTix reports product 1 changed but its indicator is the same: fetched, no change, no dirty mark.
    let now = h.clock.now();
    h.sim().touch(1, now);
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert_eq!(r.fetched, vec![1]);
    assert!(r.changes.is_empty());
    assert!(r.dirty.is_empty());
    assert!(h.poller.availability().dirty_products().expect("marks").is_empty());
    let last = h.poller.availability().last_poll().expect("read").expect("recorded");
    assert!(last.ok);
    assert_eq!((last.calls, last.fetched, last.changed), (r.calls, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn every_accepted_shape_through_the_wire_and_unknown_levels_change_nothing() {
    let mut alert = event(2, &[(21, 50)]);
    alert["event"]["alertRatio"] = json!(40.0);
    let products = vec![
        event(1, (0..12).map(|i| (100 + i, 30 + i)).collect::<Vec<_>>().as_slice()),
        alert,
    ];
    let h = harness("rest", "", catalogue(products), |s| {
        let answers = [
            json!({"level": 1}),
            json!({"level": "2"}),
            json!({"level": 3}),
            json!({"level": "GOOD"}),
            json!({"level": "limited"}),
            json!({"level": "SOLD_OUT"}),
            json!({"level": "NOT_VISIBLE"}),
            json!({"level": "OUTSIDE_SALE_PERIOD"}),
            json!({"quantity": 0, "quota": 200}),
            json!({"quantity": "40", "quota": "200"}),
            json!({"availabilityLevel": "ALMOST_FULL"}),
            json!({"level": "OPTIONABLE"}),
        ];
        for (i, a) in answers.into_iter().enumerate() {
            let id = 100 + i as i64;
            s.add(1, id, hours(30 + i as i64), 200);
            s.perfs.get_mut(&id).expect("perf").answer = Some(a);
        }
        // 70 of 200 left is 35 %: orange with the event's alertRatio of 40, green with the default 20.
        s.add(2, 21, hours(50), 200);
        s.perfs.get_mut(&21).expect("perf").answer = Some(json!({"quantity": 70, "quota": 200}));
    })
    .await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    use AvailabilityStatus as S;
    let want = [
        S::Available,
        S::AlmostFull,
        S::SoldOut,
        S::Available,
        S::AlmostFull,
        S::SoldOut,
        S::NotOnSale,
        S::NotOnSale,
        S::SoldOut,
        S::AlmostFull,
        S::AlmostFull,
        S::Unknown,
    ];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(h.shown(1, 100 + i as i64), *w, "performance {}", 100 + i);
    }
    assert_eq!(h.shown(2, 21), S::AlmostFull);
    assert_eq!(r.unrecognised, 1, "OPTIONABLE is logged and counted");
    assert!(
        h.poller.availability().performance(1, 111).expect("read").is_none(),
        "nothing stored for it"
    );

    // A known level, then an unknown one: the stored value stays as it was, and nothing is marked.
    h.clear_dirty();
    let now = h.clock.now();
    h.sim()
        .set(103, json!({"level": "MYSTERY_LEVEL", "quantity": null}), now);
    let before = h
        .poller
        .availability()
        .performance(1, 103)
        .expect("read")
        .expect("stored");
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert_eq!(r.fetched, vec![1]);
    assert_eq!(r.unrecognised, 2, "MYSTERY_LEVEL, and OPTIONABLE read again");
    assert!(r.changes.is_empty() && r.dirty.is_empty(), "{:?}", r.changes);
    let after = h
        .poller
        .availability()
        .performance(1, 103)
        .expect("read")
        .expect("stored");
    assert_eq!(after, before, "entry not changed");
    assert_eq!(h.shown(1, 103), S::Available);
}

#[tokio::test(start_paused = true)]
async fn products_without_performances_use_get_product_availability() {
    let mut pass = common::product(7, "Pass musées", &[]);
    pass["event"] = Value::Null;
    let h = harness("rest", "far_every = 1", catalogue(vec![pass]), |s| {
        s.product_answers.insert(7, json!({"level": "LIMITED"}));
    })
    .await;
    // The test catalogue keeps SINGLE_ENTRY products only; a product without event is kept with that family.
    let r = h.poll().await;
    let calls = h.take_calls();
    assert_eq!(r.error, None);
    assert_eq!(method_count(&calls, "getProductAvailability"), 1, "{calls:?}");
    assert_eq!(calls[0].1, json!({"pointOfSalesId": 123456789, "productId": 7}));
    let stored = h.poller.availability().product_level(7).expect("read").expect("stored");
    assert_eq!(stored.level, Some(Level::AlmostFull));
    assert_eq!(r.dirty, vec![7]);
    assert_eq!(r.changes[0].performance_id, None);

    // The entry shows the pass's own indicator and its Book link, as the daemon and `push` plan it.
    let entry = |h: &Harness| {
        let outbox = Outbox::open(&h.store).expect("outbox");
        let status = availability::status_fn(h.poller.availability().clone());
        outbox
            .plan(&[], &entry_options(), &status, &Scope::All, false, false)
            .expect("plan");
        outbox.entry("secutix-7").expect("read").expect("entry").entry
    };
    let e = entry(&h);
    assert_eq!(
        (e.availability.status, e.availability.code),
        (AvailabilityStatus::AlmostFull, Some(2))
    );
    assert!(e.on_sale);
    assert_eq!(
        e.booking_url.get("fr").map(String::as_str),
        Some("https://mosa.shop.example/api/1/redirect/product?id=7&lang=fr")
    );

    // Sold out: red, no Book link. Then SecuTix takes it off sale.
    h.clear_dirty();
    let mut next = r.next_poll_in;
    for (answer, status, bookable) in [
        (json!({"level": "SOLD_OUT"}), AvailabilityStatus::SoldOut, false),
        (
            json!({"level": "OUTSIDE_SALE_PERIOD"}),
            AvailabilityStatus::NotOnSale,
            false,
        ),
        (json!({"level": "GOOD"}), AvailabilityStatus::Available, true),
    ] {
        {
            let now = h.clock.now();
            let mut s = h.sim();
            s.product_answers.insert(7, answer.clone());
            s.touch(7, now);
        }
        h.wait(next).await;
        let r = h.poll().await;
        next = r.next_poll_in;
        h.clear_dirty();
        assert_eq!((r.error.as_deref(), r.dirty.as_slice()), (None, &[7][..]), "{answer}");
        let e = entry(&h);
        assert_eq!(e.availability.status, status, "{answer}");
        assert_eq!(!e.booking_url.is_empty(), bookable, "{answer}: {:?}", e.booking_url);
        assert_eq!(e.on_sale, status != AvailabilityStatus::NotOnSale, "{answer}");
    }
}

fn entry_options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into()],
        mapping_version: 1,
        shop_url: "https://mosa.shop.example".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: String::new(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    }
}

#[tokio::test(start_paused = true)]
async fn past_and_closed_performances_are_never_polled() {
    let mut cancelled = event(2, &[(21, 30)]);
    cancelled["event"]["performances"][0]["state"] = json!("CANCELED");
    let mut not_yet = event(3, &[(31, 24 * 20)]);
    not_yet["event"]["performances"][0]["salePeriods"] = json!([{"start": hours(24 * 3).timestamp_millis(), "end": hours(24 * 19).timestamp_millis(), "salePossible": true}]);
    let h = harness(
        "rest",
        "",
        catalogue(vec![event(1, &[(10, -5), (11, 30)]), cancelled, not_yet]),
        |s| {
            s.add(1, 10, hours(-5), 100);
            s.add(1, 11, hours(30), 100);
            s.add(2, 21, hours(30), 100);
            s.add(3, 31, hours(24 * 20), 100);
        },
    )
    .await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert_eq!(r.fetched, vec![1]);
    assert_eq!(
        h.sim().fetches.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
        vec![11],
        "past 10, cancelled 21, unopened 31 not asked"
    );

    // The sale of 31 opens on day 3: it is fetched then, once.
    h.wait(Duration::from_secs(3 * 86400 + 60)).await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert_eq!(r.fetched, vec![3]);
    assert_eq!(h.shown(3, 31), AvailabilityStatus::Available);
}

#[tokio::test(start_paused = true)]
async fn one_product_on_demand() {
    let h = harness(
        "rest",
        "",
        catalogue(vec![event(1, &[(11, 30)]), event(2, &[(21, 40)])]),
        |s| {
            s.add(1, 11, hours(30), 100);
            s.add(2, 21, hours(40), 100);
        },
    )
    .await;
    let r = h
        .poller
        .poll_once(PollOptions { product: Some(2) })
        .await
        .expect("poll");
    let calls = h.take_calls();
    assert_eq!(r.error, None);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1["performanceIds"], json!([21]));
    assert_eq!(r.fetched, vec![2]);
    // A regular poll, then one product on demand: the regular schedule stands.
    let regular = h.poll().await;
    let due = h.clock.now() + chrono::Duration::from_std(regular.next_poll_in).expect("duration");
    h.wait(Duration::from_secs(30)).await;
    let now = h.clock.now();
    h.sim().touch(1, now);
    let r = h
        .poller
        .poll_once(PollOptions { product: Some(1) })
        .await
        .expect("poll");
    assert_eq!(r.fetched, vec![1]);
    let next = h.clock.now() + chrono::Duration::from_std(r.next_poll_in).expect("duration");
    assert!((next - due).num_milliseconds().abs() < 1000, "{next} vs {due}");
    let e = h
        .poller
        .poll_once(PollOptions { product: Some(99) })
        .await
        .expect_err("unknown product");
    assert!(e.to_string().contains("99"), "{e}");
    let last = h.poller.availability().last_poll().expect("read").expect("recorded");
    assert_eq!(last.product, Some(1));
}

// ---------------------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn rate_limits_and_timeouts_back_off_keep_the_indicator_and_mark_it_stale() {
    let h = harness(
        "rest",
        "",
        catalogue(vec![event(1, &[(11, 30)]), event(2, &[(21, 36)])]),
        |s| {
            s.add(1, 11, hours(30), 100);
            s.add(2, 21, hours(36), 100);
        },
    )
    .await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    h.clear_dirty();
    h.take_calls();

    // Both change, and SecuTix answers the first fetch with 509 and Retry-After: 300.
    let now = h.clock.now();
    {
        let mut s = h.sim();
        s.set(11, json!({"level": "SOLD_OUT"}), now);
        s.set(21, json!({"level": "SOLD_OUT"}), now);
        s.inject.push((
            "getEventAvailability".into(),
            Reply::status(509).header("Retry-After", "300"),
        ));
    }
    h.wait(r.next_poll_in).await;
    let month_before = h.store.calls_in_month(h.clock.now());
    let r = h.poll().await;
    let calls = h.take_calls();
    let err = r.error.clone().expect("the poll reports the rate limit");
    assert!(err.contains("509"), "{err}");
    assert_eq!(
        method_count(&calls, "getEventAvailability"),
        1,
        "no retry inside the poll: {calls:?}"
    );
    assert_eq!(r.calls, 2, "getUpdatedAvailabilities + the refused fetch");
    assert_eq!(
        h.store.calls_in_month(h.clock.now()) - month_before,
        2,
        "every call is counted"
    );
    assert_eq!(r.stale, vec![1, 2], "the failed product and the one planned after it");
    assert!(r.fetched.is_empty() && r.dirty.is_empty());
    assert!(
        r.next_poll_in >= Duration::from_secs(300),
        "Retry-After honoured: {:?}",
        r.next_poll_in
    );
    for (p, perf) in [(1, 11), (2, 21)] {
        let a = h
            .poller
            .availability()
            .performance(p, perf)
            .expect("read")
            .expect("kept");
        assert_eq!(a.level, Some(Level::Available), "previous indicator kept");
        assert!(a.stale, "marked stale");
        assert_eq!(h.shown(p, perf), AvailabilityStatus::Available);
    }
    assert_eq!(r.pending, 2, "still pending for the next poll");

    // Next: a timeout (the answer takes longer than secutix.request_timeout = 30s).
    h.sim().inject.push((
        "getEventAvailability".into(),
        Reply::json(&json!({})).delay(Duration::from_secs(120)),
    ));
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    let calls = h.take_calls();
    let err = r.error.clone().expect("the poll reports the timeout");
    assert!(err.contains("no complete answer within"), "{err}");
    assert_eq!(
        method_count(&calls, "getUpdatedAvailabilities"),
        0,
        "pending products need no asking"
    );
    assert_eq!(r.calls, 1);
    assert!(
        r.next_poll_in >= Duration::from_secs(120),
        "second failure: 2 × min_interval, got {:?}",
        r.next_poll_in
    );
    assert_eq!(h.level(1, 11), Some(Level::Available));

    // SecuTix is back: both are fetched, the stale flag goes, the change is recorded.
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert_eq!(r.fetched, vec![1, 2]);
    assert_eq!(r.dirty, vec![1, 2]);
    for (p, perf) in [(1, 11), (2, 21)] {
        let a = h
            .poller
            .availability()
            .performance(p, perf)
            .expect("read")
            .expect("kept");
        assert_eq!((a.level, a.stale), (Some(Level::Full), false));
    }
    assert_eq!(h.poller.availability().planner_state().expect("state").failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_429_on_get_updated_availabilities_marks_the_asked_products_stale() {
    let h = harness("rest", "", catalogue(vec![event(1, &[(11, 30)])]), |s| {
        s.add(1, 11, hours(30), 100)
    })
    .await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    h.sim()
        .inject
        .push(("getUpdatedAvailabilities".into(), Reply::status(429)));
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert!(r.error.as_deref().is_some_and(|e| e.contains("429")), "{:?}", r.error);
    assert_eq!(r.calls, 1);
    assert_eq!(r.stale, vec![1]);
    let a = h.poller.availability().performance(1, 11).expect("read").expect("kept");
    assert!(a.stale && a.level == Some(Level::Available));
    assert!(r.next_poll_in >= Duration::from_secs(60));
    // The reference date stays that of the last successful poll.
    let rd = h.poller.availability().reference_date().expect("read");
    assert!(rd.is_some_and(|t| t < h.clock.now() - chrono::Duration::seconds(30)));

    // SecuTix answers again and nothing changed: the stored value is current, no longer stale.
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert_eq!(r.error, None);
    assert!(r.fetched.is_empty());
    let a = h.poller.availability().performance(1, 11).expect("read").expect("kept");
    assert!(!a.stale && a.stale_since.is_none());
    assert!(
        !h.poller
            .availability()
            .tracking(1)
            .expect("read")
            .expect("tracked")
            .stale
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_answer_marks_only_that_product_and_the_others_go_on() {
    let h = harness(
        "rest",
        "",
        catalogue(vec![event(1, &[(11, 30)]), event(2, &[(21, 36)])]),
        |s| {
            s.add(1, 11, hours(30), 100);
            s.add(2, 21, hours(36), 100);
            s.inject.push((
                "getEventAvailability".into(),
                Reply::status(200)
                    .header("content-type", "text/html")
                    .body("<html>maintenance</html>"),
            ));
        },
    )
    .await;
    let r = h.poll().await;
    let err = r.error.clone().expect("reported");
    assert!(err.contains("product 1") && err.contains("HTML"), "{err}");
    assert_eq!(r.stale, vec![1]);
    assert_eq!(r.fetched, vec![2]);
    // Product 1 waits max_interval before it is tried again.
    h.wait(r.next_poll_in).await;
    let r = h.poll().await;
    assert!(!r.fetched.contains(&1));
    h.wait(Duration::from_secs(3600)).await;
    let r = h.poll().await;
    assert!(r.fetched.contains(&1), "{r:?}");
    assert_eq!(h.level(1, 11), Some(Level::Available));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_makes_no_call_and_says_why() {
    let h = harness(
        "rest",
        "monthly_call_budget = 2\nreserve_share = 0.0",
        catalogue(vec![
            event(1, &[(11, 30)]),
            event(2, &[(21, 40)]),
            event(3, &[(31, 50)]),
        ]),
        |s| {
            s.add(1, 11, hours(30), 100);
            s.add(2, 21, hours(40), 100);
            s.add(3, 31, hours(50), 100);
        },
    )
    .await;
    let r = h.poll().await;
    assert_eq!(r.calls, 2, "two of three products fit");
    assert_eq!(r.fetched, vec![1, 2]);
    assert_eq!(r.pending, 1);
    // Polled again at once (a manual trigger): nothing left, no call.
    let r = h.poll().await;
    assert_eq!(r.calls, 0);
    let err = r.error.expect("budget spent");
    assert!(err.contains("availability.monthly_call_budget"), "{err}");
    // The next poll is at the start of next month (1 April, Paris time).
    let next = h.clock.now() + chrono::Duration::from_std(r.next_poll_in).expect("duration");
    assert_eq!(next.to_rfc3339(), "2026-03-31T22:00:00+00:00");
}

// ---------------------------------------------------------------------------------------------------------
// Transports, switch, persistence
// ---------------------------------------------------------------------------------------------------------

async fn scenario(transport: &str) -> Vec<(i64, i64, Option<Level>, AvailabilityStatus, usize)> {
    let h = harness(
        transport,
        "mid_every = 1\nfar_every = 1",
        catalogue(vec![event(1, &[(11, 30), (12, 40)]), event(2, &[(21, 24 * 30)])]),
        |s| {
            s.add(1, 11, hours(30), 100);
            s.add(1, 12, hours(40), 100);
            s.add(2, 21, hours(24 * 30), 100);
            s.perfs.get_mut(&12).expect("perf").answer =
                Some(json!({"level": "LIMITED", "quantity": 10, "quota": 100}));
        },
    )
    .await;
    let r = h.poll().await;
    assert_eq!(r.error, None, "{transport}");
    let now = h.clock.now();
    h.sim().set(11, json!({"quantity": 0, "quota": 100}), now);
    h.sim().set(21, json!({"level": "NOT_VISIBLE"}), now);
    h.wait(r.next_poll_in).await;
    let r2 = h.poll().await;
    assert_eq!(r2.error, None, "{transport}");
    if transport == "soap" {
        let reqs = h.mock.requests();
        let body = reqs.last().expect("requests").text();
        assert!(
            body.contains("wsse:Security") || body.contains("Security"),
            "WS-Security header: {body}"
        );
        assert!(reqs.iter().all(|r| r.uri.ends_with("AvailabilityService.webservice")));
    }
    [(1, 11), (1, 12), (2, 21)]
        .into_iter()
        .map(|(p, perf)| {
            (
                p,
                perf,
                h.level(p, perf),
                h.shown(p, perf),
                r.changes.len() + r2.changes.len(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn soap_gives_the_same_result_as_rest() {
    let rest = scenario("rest").await;
    let soap = scenario("soap").await;
    assert_eq!(rest, soap);
    assert_eq!(rest[0].3, AvailabilityStatus::SoldOut);
    assert_eq!(rest[1].3, AvailabilityStatus::AlmostFull);
    assert_eq!(rest[2].3, AvailabilityStatus::NotOnSale);
}

#[tokio::test(start_paused = true)]
async fn without_get_updated_availabilities_products_are_walked_in_priority_order() {
    let h = harness(
        "rest",
        "use_updated_availabilities = false\nmax_calls_per_poll = 2\nmid_every = 2\nfar_every = 4",
        catalogue(vec![
            event(1, &[(11, 20)]),
            event(2, &[(21, 24 * 7)]),
            event(3, &[(31, 24 * 30)]),
        ]),
        |s| {
            s.add(1, 11, hours(20), 100);
            s.add(2, 21, hours(24 * 7), 100);
            s.add(3, 31, hours(24 * 30), 100);
        },
    )
    .await;
    let mut fetched_by_poll = Vec::new();
    let mut next = Duration::ZERO;
    for _ in 0..12 {
        h.wait(next).await;
        let r = h.poll().await;
        assert_eq!(r.error, None);
        assert!(r.calls <= 2, "max_calls_per_poll: {r:?}");
        next = r.next_poll_in;
        fetched_by_poll.push(r.fetched);
    }
    let calls = h.take_calls();
    assert_eq!(method_count(&calls, "getUpdatedAvailabilities"), 0);
    // The first poll fetches near first within its allowance of 2; the far product waits for the next one.
    assert_eq!(fetched_by_poll[0], vec![1, 2]);
    let count = |p: i64| fetched_by_poll.iter().filter(|f| f.contains(&p)).count();
    assert!(
        count(1) > count(2) && count(2) > count(3),
        "near {} mid {} far {}",
        count(1),
        count(2),
        count(3)
    );
    assert!(count(3) >= 1);
}

#[tokio::test(start_paused = true)]
async fn availability_and_poll_bookkeeping_survive_a_restart() {
    let mock = MockHttp::start().await;
    let clock = common::clock();
    let sim = Arc::new(Mutex::new(Sim::default()));
    sim.lock().expect("sim").add(1, 11, hours(30), 100);
    let (s, c) = (sim.clone(), clock.clone());
    mock.handle("POST", "/tnseb/", move |r| {
        let (method, params) = request_of(r);
        s.lock()
            .expect("sim")
            .answer(c.now(), &method, &params)
            .map(|v| Reply::json(&v))
    });
    let config = common::config(&mock.uri(), "rest", "");
    let dir = tempfile::tempdir().expect("tempdir");
    let (reference, level) = {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("store");
        common::import_body(&store, &catalogue(vec![event(1, &[(11, 30)])]), false);
        let client = Arc::new(common::client(&config, &store));
        let poller = Poller::new(client, store.clone(), config.availability.clone()).expect("poller");
        let r = poller.poll_once(PollOptions::default()).await.expect("poll");
        assert_eq!(r.dirty, vec![1]);
        store.flush().expect("flush");
        let a = poller.availability();
        (a.reference_date().expect("read"), a.performance(1, 11).expect("read"))
    };
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store reopens");
    let a = secutix_sync::availability::AvailabilityStore::new(&store).expect("trees");
    assert_eq!(a.reference_date().expect("read"), reference);
    assert_eq!(a.performance(1, 11).expect("read"), level);
    assert_eq!(
        a.dirty_products()
            .expect("marks")
            .iter()
            .map(|m| m.product_id)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(a.last_poll().expect("read").map(|p| p.calls), Some(1));
    assert_eq!(a.recent_changes(5).expect("read").len(), 1);
    assert_eq!(store.service_calls_in_month("availabilityService", clock.now()), 1);
}

#[test]
fn bad_availability_settings_are_named() {
    use secutix_sync::config::{ConfigError, Sources};
    let err = Config::load(&Sources {
        file: None,
        env: Some(
            [
                ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
                ("SECUTIX_SYNC__SECUTIX__OPERATOR", "MOSA_WEBSYNC"),
                ("SECUTIX_SYNC__SECUTIX__PARTNER", "Venue"),
                ("SECUTIX_SYNC__SECUTIX__SECRET", "s3cret"),
                ("SECUTIX_SYNC__AVAILABILITY__MIN_INTERVAL", "30s"),
                ("SECUTIX_SYNC__AVAILABILITY__RESERVE_SHARE", "1.5"),
                ("SECUTIX_SYNC__AVAILABILITY__ALERT_RATIO", "120"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        overrides: None,
    })
    .expect_err("invalid");
    let ConfigError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "availability.min_interval",
        "availability.reserve_share",
        "availability.alert_ratio",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert!(err.to_string().contains("at most once a minute"), "{err}");
    let d = secutix_sync::availability::settings::AvailabilityConfig::default();
    assert_eq!(
        (d.enabled, d.monthly_call_budget, d.min_interval),
        (true, 10_000, Duration::from_secs(60))
    );
}

// ---------------------------------------------------------------------------------------------------------
// A simulated month
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_simulated_month_stays_within_the_budget_and_refreshes_near_performances_more_often() {
    const BUDGET: u64 = 3000;
    // 36 products, one or two performances a few hours apart, starting from 6 h to 45 days after t0, plus
    // one that is already past.
    let mut products = Vec::new();
    let mut starts: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    let mut perf_product = BTreeMap::new();
    for i in 0..36i64 {
        let first_h = 6 + i * 30;
        let mut perfs = vec![(10_000 + i * 10, first_h)];
        if i % 3 == 0 {
            perfs.push((10_000 + i * 10 + 1, first_h + 3));
        }
        for (pid, h) in &perfs {
            starts.insert(*pid, hours(*h));
            perf_product.insert(*pid, 1000 + i);
        }
        products.push(event(1000 + i, &perfs));
    }
    products.push(event(999, &[(9990, -10)]));
    starts.insert(9990, hours(-10));
    perf_product.insert(9990, 999);
    let h = harness(
        "rest",
        &format!("monthly_call_budget = {BUDGET}"),
        catalogue(products),
        |s| {
            s.dynamic = true;
            for (pid, start) in &starts {
                s.add(perf_product[pid], *pid, *start, 2000);
            }
        },
    )
    .await;

    let paris = chrono_tz::Europe::Paris;
    let end = hours(24 * 35);
    let mut polls = 0u64;
    let mut reported_calls = 0u64;
    let mut dirty = 0usize;
    while h.clock.now() < end {
        let r = h.poll().await;
        assert_eq!(r.error, None, "poll {polls}");
        assert!(r.next_poll_in >= Duration::from_secs(60));
        reported_calls += r.calls;
        dirty += r.dirty.len();
        polls += 1;
        h.clear_dirty();
        h.wait(r.next_poll_in).await;
    }
    let sim = h.sim();
    let month_of = |t: DateTime<Utc>| {
        use chrono::Datelike;
        t.with_timezone(&paris).month()
    };
    let march = sim.requests.iter().filter(|(t, ..)| month_of(*t) == 3).count() as u64;
    let april = sim.requests.iter().filter(|(t, ..)| month_of(*t) == 4).count() as u64;
    let share = BUDGET * 9 / 10;
    assert_eq!(march + april, reported_calls, "every call is reported");
    assert!(march <= share, "March: {march} calls > {share}");
    assert!(april <= share, "April: {april} calls > {share}");
    assert!(
        march >= share / 2,
        "March used only {march} of {share}: the planner should spend the budget"
    );

    // Past performances are never polled: every fetch came before the performance started.
    for (at, pid) in &sim.fetches {
        assert!(
            *at < starts[pid],
            "performance {pid} fetched at {at}, after its start {}",
            starts[pid]
        );
    }
    assert!(!sim.fetches.iter().any(|(_, p)| *p == 9990));

    // Refreshes per hour of exposure: near (≤ 48 h before the start) against far (> 14 days before).
    let sim_start = common::t0();
    let near_w = chrono::Duration::hours(48);
    let far_w = chrono::Duration::days(14);
    let (mut near_hours, mut far_hours) = (0.0f64, 0.0f64);
    for (pid, start) in &starts {
        if *pid == 9990 {
            continue;
        }
        let clip =
            |a: DateTime<Utc>, b: DateTime<Utc>| ((b.min(end) - a.max(sim_start)).num_minutes().max(0) as f64) / 60.0;
        near_hours += clip(*start - near_w, *start);
        far_hours += clip(sim_start - chrono::Duration::days(365), *start - far_w);
    }
    let near_fetches = sim.fetches.iter().filter(|(at, p)| starts[p] - *at <= near_w).count() as f64;
    let far_fetches = sim.fetches.iter().filter(|(at, p)| starts[p] - *at > far_w).count() as f64;
    let (near_rate, far_rate) = (near_fetches / near_hours, far_fetches / far_hours);
    println!(
        "simulated 35 days: {polls} polls, {march} calls in March and {april} in April (share {share}), \
         {dirty} dirty marks; near: {near_fetches} fetches over {near_hours:.0} h = {near_rate:.3}/h, \
         far: {far_fetches} fetches over {far_hours:.0} h = {far_rate:.3}/h, ratio {:.1}",
        near_rate / far_rate
    );
    assert!(far_fetches > 0.0, "far performances are refreshed too");
    assert!(
        near_rate >= 4.0 * far_rate,
        "near {near_rate:.3}/h vs far {far_rate:.3}/h"
    );
    assert!(dirty >= 20, "changes reach the dirty marks");
}

// ---------------------------------------------------------------------------------------------------------
// The parser never panics
// ---------------------------------------------------------------------------------------------------------

const METHODS: [AvailabilityMethod; 4] = [
    AvailabilityMethod::GetUpdatedAvailabilities,
    AvailabilityMethod::GetEventAvailability,
    AvailabilityMethod::GetPerformanceAvailability,
    AvailabilityMethod::GetProductAvailability,
];

fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "statusCode",
        "availabilityUpdateData",
        "eventAvailabilityData",
        "eventAvailabilities",
        "performanceAvailabilityData",
        "productAvailabilityData",
        "productId",
        "performanceId",
        "lastUpdate",
        "level",
        "availabilityLevel",
        "quantity",
        "quota",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "success",
            "GOOD",
            "SOLD_OUT",
            "1",
            "-3",
            "9e99",
            "",
            "2026-03-02T10:00:00Z"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for m in METHODS {
            let _ = parse_answer(Transport::Rest, m, &bytes);
            let _ = parse_answer(Transport::Soap, m, &bytes);
        }
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_json_and_xml(v in json_value(), cut in any::<prop::sample::Index>()) {
        let text = v.to_string();
        let xml = common::soap_response("getEventAvailability", &v);
        for m in METHODS {
            let _ = parse_answer(Transport::Rest, m, text.as_bytes());
            let _ = parse_answer(Transport::Soap, m, xml.as_bytes());
            // Truncated bodies too.
            let t = &text.as_bytes()[..cut.index(text.len() + 1)];
            let _ = parse_answer(Transport::Rest, m, t);
            let x = &xml.as_bytes()[..cut.index(xml.len() + 1)];
            let _ = parse_answer(Transport::Soap, m, x);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------

fn run_cli(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secutix-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SECUTIX_SYNC_CONFIG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_availability_command_polls_prints_and_exits_0_then_1_on_failure() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let soon = |d: i64| (Utc::now() + chrono::Duration::days(d)).timestamp_millis();
    let mut p1 = common::product(1, "Hamlet", &[(11, 0)]);
    p1["event"]["performances"][0]["start"] = json!(soon(1));
    let mut p2 = common::product(2, "Phèdre", &[(21, 0)]);
    p2["event"]["performances"][0]["start"] = json!(soon(20));
    let mount = |m: &str, body: Value| {
        Mock::given(method("POST"))
            .and(path(m.to_owned()))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
    };
    mount(&common::rest("catalogService", "getPOSConfig"), common::pos_config())
        .mount(&server)
        .await;
    mount(
        &common::rest("catalogService", "getCatalogDetailed"),
        catalogue(vec![p1, p2]),
    )
    .mount(&server)
    .await;
    mount(
        &common::rest("availabilityService", "getEventAvailability"),
        json!({"statusCode": "success", "eventAvailabilityData": {"eventAvailabilities": [
            {"performanceId": 11, "level": "SOLD_OUT", "quantity": 0, "quota": 300},
            {"performanceId": 21, "level": "GOOD", "quantity": 250, "quota": 300}]}}),
    )
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[secutix]\ninstitution = \"MOSA\"\nbase_url = \"{}\"\noperator = \"MOSA_WEBSYNC\"\npartner = \"P\"\n\
             secret = \"test-secret\"\n[store]\npath = \"{}\"\n",
            server.uri(),
            dir.path().join("store").display()
        ),
    )
    .expect("config written");

    let (code, out, err) = run_cli(&config, &["import"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run_cli(&config, &["availability"]);
    println!("secutix-sync availability:\n{out}");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("2 SecuTix call(s) spent"), "{out}");
    assert!(out.contains("product 1 performance 11: unknown -> sold_out"), "{out}");
    assert!(out.contains("product 2 performance 21: unknown -> available"), "{out}");
    assert!(out.contains("next poll in"), "{out}");

    let (code, out, err) = run_cli(&config, &["availability", "--product", "999"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("product 999 is not in the catalogue"), "{err}");

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(509))
        .mount(&server)
        .await;
    let (code, out, err) = run_cli(&config, &["availability", "--product", "1"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("509"), "{err}");
    assert!(
        out.contains("keep their previous indicator, marked stale: product 1\n"),
        "{out}"
    );
}
