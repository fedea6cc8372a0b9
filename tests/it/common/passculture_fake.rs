//! A fake of pass Culture's public API for the tests (`passculture`, and `daemon` through the control API):
//! it answers the documented shapes of `/public/offers/v1/…` and applies the documented quantity quirk (a
//! date reads its total, a PATCH writes the remaining); plus the venue's catalogue and the `passculture`
//! target's configuration the tests share.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use secutix_sync::fakes::testkit::{MockHttp, Recorded, Reply};
use serde_json::{Value, json};

use crate::common::{catalog, ms, product, season};

pub const ADULT: i64 = 306159078;
pub const YOUTH: i64 = 306159079;
pub const VENUE: u64 = 535;

pub struct FakeDate {
    pub offer: u64,
    pub body: serde_json::Map<String, Value>,
    /// Total, bookings included (`None` = unlimited).
    pub total: Option<i64>,
    pub booked: i64,
}

pub type Matcher = Box<dyn Fn(&Recorded) -> bool + Send>;

#[derive(Default)]
pub struct Fake {
    pub next_id: u64,
    pub events: BTreeMap<u64, serde_json::Map<String, Value>>,
    pub price_categories: BTreeMap<u64, (u64, Value)>,
    pub dates: BTreeMap<u64, FakeDate>,
    /// Scripted answers, used (once each) before the fake's own logic.
    pub script: VecDeque<(Matcher, Reply)>,
    /// Create the next dates but answer 502, as if the answer was lost.
    pub lose_next_dates_answer: bool,
}

impl Fake {
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        1000 + self.next_id
    }

    pub fn event_json(&self, id: u64) -> Value {
        let mut e = self.events[&id].clone();
        let pcs: Vec<Value> = self
            .price_categories
            .iter()
            .filter(|(_, (o, _))| *o == id)
            .map(|(_, (_, v))| v.clone())
            .collect();
        e.insert("priceCategories".into(), json!(pcs));
        Value::Object(e)
    }

    pub fn date_json(&self, id: u64) -> Value {
        let d = &self.dates[&id];
        let mut v = d.body.clone();
        v.insert("id".into(), json!(id));
        let pc = d.body["priceCategoryId"].as_u64().unwrap_or_default();
        v.remove("priceCategoryId");
        v.insert(
            "priceCategory".into(),
            self.price_categories
                .get(&pc)
                .map(|p| p.1.clone())
                .unwrap_or(Value::Null),
        );
        v.insert("quantity".into(), d.total.map_or(json!("unlimited"), |t| json!(t)));
        v.insert("bookedQuantity".into(), json!(d.booked));
        Value::Object(v)
    }

    pub fn add_price_category(&mut self, offer: u64, pc: &Value) -> Value {
        let id = self.id();
        let mut v = pc.clone();
        v["id"] = json!(id);
        self.price_categories.insert(id, (offer, v.clone()));
        v
    }

    pub fn answer(&mut self, r: &Recorded) -> Option<Reply> {
        if let Some(i) = self.script.iter().position(|(m, _)| m(r)) {
            return self.script.remove(i).map(|(_, reply)| reply);
        }
        let url = url::Url::parse(&format!("http://fake{}", r.uri)).expect("url");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        let parts: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
        let body = r.json();
        let method = r.method.as_str();
        let num = |s: &str| s.parse::<u64>().ok();
        let page = |ids: Vec<u64>| -> Vec<u64> {
            let first = q.get("firstIndex").and_then(|f| f.parse().ok()).unwrap_or(1);
            let limit = q.get("limit").and_then(|f| f.parse().ok()).unwrap_or(50);
            ids.into_iter().filter(|i| *i >= first).take(limit).collect()
        };
        let wanted = |v: &serde_json::Map<String, Value>| {
            q.get("idsAtProvider").is_none_or(|ids| {
                ids.split(',')
                    .any(|i| v.get("idAtProvider").and_then(Value::as_str) == Some(i))
            })
        };
        match (method, parts.as_slice()) {
            ("GET", ["public", "offers", "v1", "events"]) => {
                let venue: u64 = q.get("venueId").and_then(|v| v.parse().ok()).unwrap_or_default();
                let ids: Vec<u64> = self
                    .events
                    .iter()
                    .filter(|(_, e)| e["location"]["venueId"] == json!(venue) && wanted(e))
                    .map(|(i, _)| *i)
                    .collect();
                let events: Vec<Value> = page(ids).into_iter().map(|i| self.event_json(i)).collect();
                Some(Reply::json(&json!({ "events": events })))
            }
            ("POST", ["public", "offers", "v1", "events"]) => {
                let id = self.id();
                let mut e = body.as_object().cloned().unwrap_or_default();
                let pcs = e.remove("priceCategories");
                e.insert("id".into(), json!(id));
                e.insert("status".into(), json!("PENDING"));
                self.events.insert(id, e);
                for pc in pcs.and_then(|p| p.as_array().cloned()).unwrap_or_default() {
                    self.add_price_category(id, &pc);
                }
                Some(Reply::json(&self.event_json(id)))
            }
            ("GET", ["public", "offers", "v1", "events", id]) => {
                let id = num(id)?;
                self.events.contains_key(&id).then(|| Reply::json(&self.event_json(id)))
            }
            ("PATCH", ["public", "offers", "v1", "events", id]) => {
                let id = num(id)?;
                let e = self.events.get_mut(&id)?;
                for (k, v) in body.as_object()? {
                    e.insert(k.clone(), v.clone());
                }
                Some(Reply::json(&self.event_json(id)))
            }
            ("POST", ["public", "offers", "v1", "events", id, "price_categories"]) => {
                let id = num(id)?;
                let created: Vec<Value> = body["priceCategories"]
                    .as_array()?
                    .clone()
                    .iter()
                    .map(|pc| self.add_price_category(id, pc))
                    .collect();
                Some(Reply::json(&json!({ "priceCategories": created })))
            }
            ("PATCH", ["public", "offers", "v1", "events", _, "price_categories", pc]) => {
                let pc = self.price_categories.get_mut(&num(pc)?)?;
                for (k, v) in body.as_object()? {
                    pc.1[k] = v.clone();
                }
                Some(Reply::json(&pc.1.clone()))
            }
            ("POST", ["public", "offers", "v1", "events", id, "dates"]) => {
                let offer = num(id)?;
                let mut created = Vec::new();
                for d in body["dates"].as_array()?.clone() {
                    let id = self.id();
                    let mut b = d.as_object()?.clone();
                    let total = b.remove("quantity").and_then(|q| q.as_i64());
                    self.dates.insert(
                        id,
                        FakeDate {
                            offer,
                            body: b,
                            total,
                            booked: 0,
                        },
                    );
                    created.push(self.date_json(id));
                }
                if std::mem::take(&mut self.lose_next_dates_answer) {
                    return Some(Reply::status(502).body("Bad Gateway"));
                }
                Some(Reply::json(&json!({ "dates": created })))
            }
            ("GET", ["public", "offers", "v1", "events", id, "dates"]) => {
                let offer = num(id)?;
                let ids: Vec<u64> = self
                    .dates
                    .iter()
                    .filter(|(_, d)| d.offer == offer && wanted(&d.body))
                    .map(|(i, _)| *i)
                    .collect();
                let dates: Vec<Value> = page(ids).into_iter().map(|i| self.date_json(i)).collect();
                Some(Reply::json(&json!({ "dates": dates })))
            }
            ("PATCH", ["public", "offers", "v1", "events", _, "dates", sid]) => {
                let sid = num(sid)?;
                let d = self.dates.get_mut(&sid)?;
                for (k, v) in body.as_object()? {
                    if k == "quantity" {
                        // pcapi: quantity = remaining + dnBookedQuantity.
                        d.total = v.as_i64().map(|q| q + d.booked);
                    } else {
                        d.body.insert(k.clone(), v.clone());
                    }
                }
                Some(Reply::json(&self.date_json(sid)))
            }
            ("DELETE", _) => Some(Reply::status(204)),
            _ => None,
        }
    }

    /// Young people book `n` places of the date `key`.
    pub fn book(&mut self, key: &str, n: i64) {
        let d = self
            .dates
            .values_mut()
            .find(|d| d.body["idAtProvider"] == json!(key))
            .expect("date");
        d.booked += n;
    }

    pub fn date(&self, key: &str) -> (Option<i64>, i64, Value) {
        let (id, d) = self
            .dates
            .iter()
            .find(|(_, d)| d.body["idAtProvider"] == json!(key))
            .expect("date");
        (d.total, d.booked, self.date_json(*id))
    }
}

pub async fn fake_pass_culture() -> (MockHttp, Arc<Mutex<Fake>>) {
    let m = MockHttp::start().await;
    let fake: Arc<Mutex<Fake>> = Arc::default();
    let f = fake.clone();
    m.handle("*", "/public/", move |r| f.lock().expect("fake").answer(r));
    (m, fake)
}

/// Scripts one answer for the first request that `matches`.
pub fn script(fake: &Arc<Mutex<Fake>>, matches: impl Fn(&Recorded) -> bool + Send + 'static, reply: Reply) {
    fake.lock().expect("fake").script.push_back((Box::new(matches), reply));
}

/// A performance `(id, start in days, adult price, youth price)` (prices in thousandths).
pub type Perf = (i64, i64, i64, i64);

pub fn show(id: i64, title: &str, activity: &str, perfs: &[Perf]) -> Value {
    let mut p = product(id, title, &[]);
    p["event"]["activityCode"] = json!(activity);
    p["event"]["performances"] = json!(
        perfs
            .iter()
            .map(|(pid, d, adult, youth)| json!({
                "id": pid, "start": ms(*d), "duration": 5400, "state": null, "seatCategories": [],
                "prices": [
                    {"institutionSeatCatId": 1, "seatCatId": null, "audSubCatId": ADULT, "amount": adult, "priceLevelId": null},
                    {"institutionSeatCatId": 1, "seatCatId": null, "audSubCatId": YOUTH, "amount": youth, "priceLevelId": null}
                ],
                "salePeriods": []}))
            .collect::<Vec<_>>()
    );
    p
}

pub fn venue_catalog(products: Vec<Value>) -> Value {
    let mut s = season(1, "S26", -30, products);
    s["audienceCategories"][0]["audienceSubCategories"] = json!([
        {"id": ADULT, "code": "ADU", "externalName": {"translations": [{"locale": "fr", "value": "Plein tarif"}]}, "audienceCategoryKind": "FULL"},
        {"id": YOUTH, "code": "J26", "externalName": {"translations": [{"locale": "fr", "value": "Moins de 26 ans"}]}, "audienceCategoryKind": "REDUCED"}
    ]);
    catalog(vec![s])
}

/// Hamlet (product 1, two dates), Phèdre (product 2, one date), a concert (product 3, not selected).
pub fn base_catalog() -> Value {
    venue_catalog(vec![
        show(1, "Hamlet", "TH", &[(11, 5, 35000, 10000), (12, 6, 35000, 10000)]),
        show(2, "Phèdre", "TH", &[(21, 7, 30000, 8000)]),
        show(3, "Jazz au foyer", "CO", &[(31, 8, 20000, 5000)]),
    ])
}

pub fn target_toml(pc_base: &str, selection: &str) -> String {
    format!(
        r#"
[[targets]]
name = "passculture"
kind = "passculture"
backoff_initial = "1s"
[targets.passculture]
base_url = "{pc_base}"
api_key = "pc-test-key"
venue_id = {VENUE}
{selection}
tariff_codes = ["J26"]
quota = 10
booking_limit_before = "2h"
booking_contact = "billetterie@theatre.example"
accessibility = {{ motor = true }}
image = ""
[targets.passculture.categories.TH]
category = "SPECTACLE_REPRESENTATION"
showType = "THEATRE-CONTEMPORAIN"
"#
    )
}

/// The selection of most tests: the season's theatre.
pub const SELECT_THEATRE: &str = r#"season_codes = ["S26"]
activity_codes = ["TH"]"#;

/// A booking as `GET /public/bookings/v1/token/{token}` answers it (with the personal data the box office
/// must not log).
pub fn booking_json(status: &str) -> Value {
    json!({"id": 77, "quantity": 2, "creationDate": "2026-03-01T12:00:00", "confirmationDate": "2026-03-05T10:00:00",
           "price": 1000, "status": status, "offerId": 1001, "stockId": 1003, "priceCategoryId": 1002,
           "priceCategoryLabel": "Moins de 26 ans", "offerName": "Hamlet", "offerEan": null, "offerAddress": null,
           "offerDepartmentCode": "75", "venueId": VENUE, "venueName": "Théâtre", "userEmail": "jeanne@example.org",
           "userPhoneNumber": "+33600000000", "userFirstName": "Jeanne", "userLastName": "Dupont",
           "userBirthDate": "2007-01-01", "userPostalCode": "75011"})
}
