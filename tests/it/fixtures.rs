//! The committed SecuTix fixtures (`fixtures/`, see its README) through the real client, against a mock
//! SecuTix on loopback, under paused time: the REST JSON and SOAP XML forms of each catalogue give the same
//! domain catalogue (and the same entries), every bad input fails with an error naming the call and the place
//! and leaves the previous catalogue in force, unknown enum values are kept, and a product listed in two
//! seasons is taken from the season that starts latest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, TimeZone, Utc};
use secutix_sync::catalog::{Id, PosConfig, Product, ProductFamily, Season, State, Translated};
use secutix_sync::fakes::testkit::{MockHttp, Reply};
use secutix_sync::import::{ImportError, ImportOptions, run_import};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::merge::{self, MergeContext};
use secutix_sync::store::{ImportCounts, ImportOutcome, ProductRecord, Store};
use serde_json::Value;

const POS_PATH: &str = "/tnseb/backend-apis/catalogService/v1_33/getPOSConfig";
const CAT_PATH: &str = "/tnseb/backend-apis/catalogService/v1_33/getCatalogDetailed";

/// Every product family of the fixtures: the default keeps only SINGLE_ENTRY.
const ALL_FAMILIES: &str = "[catalogue]\nproduct_families = [\"SINGLE_ENTRY\", \"SEASONTICKET\", \"MEMBERSHIP\", \"PASS\", \"GOODS\", \"SERVICE\"]";

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read the fixture {path}: {e}"))
}

/// A 200 answer carrying a fixture, with the content type of its kind.
fn fixture_reply(name: &str) -> Reply {
    let kind = if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "text/xml; charset=utf-8"
    };
    Reply::status(200).header("content-type", kind).body(fixture(name))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Rest,
    Soap,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Rest => "rest",
            Transport::Soap => "soap",
        }
    }
    /// The file name of `base` (e.g. `catalogue-small`) in this transport.
    fn file(self, base: &str) -> String {
        match self {
            Transport::Rest => format!("{base}.json"),
            Transport::Soap => format!("{base}.soap.xml"),
        }
    }
}

/// A mock SecuTix catalogue service: getPOSConfig answers with the POS fixture, getCatalogDetailed with the
/// replies given to [`Secutix::serve`], in order (the last one repeated).
struct Secutix {
    mock: MockHttp,
    transport: Transport,
}

impl Secutix {
    async fn start(transport: Transport, catalogue: Vec<Reply>) -> Self {
        let s = Self {
            mock: MockHttp::start().await,
            transport,
        };
        s.serve(catalogue);
        s
    }

    fn serve(&self, catalogue: Vec<Reply>) {
        match self.transport {
            Transport::Rest => {
                self.mock.on("POST", POS_PATH, [fixture_reply("pos-config.json")]);
                self.mock.on("POST", CAT_PATH, catalogue);
            }
            Transport::Soap => {
                let pos = fixture_reply("pos-config.soap.xml");
                let queue = Arc::new(Mutex::new(VecDeque::from(catalogue)));
                self.mock
                    .handle("POST", &soap_path("catalog", "CatalogService"), move |req| {
                        let body = req.text();
                        if body.contains(":getPOSConfig>") {
                            return Some(pos.clone());
                        }
                        if !body.contains(":getCatalogDetailed>") {
                            return Some(Reply::status(500).body("mock: unknown SOAP operation"));
                        }
                        let mut q = queue.lock().expect("queue");
                        if q.len() > 1 { q.pop_front() } else { q.front().cloned() }
                    });
            }
        }
    }

    /// The getCatalogDetailed requests received (both transports share the SOAP path for every method).
    fn catalogue_calls(&self) -> Vec<secutix_sync::fakes::testkit::Recorded> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.uri.ends_with("getCatalogDetailed") || r.text().contains(":getCatalogDetailed>"))
            .collect()
    }

    async fn import(&self, store: &Store, extra: &str) -> Result<secutix_sync::store::ImportReport, ImportError> {
        let cfg = config(&self.mock.uri(), self.transport.name(), extra);
        run_import(&client(&cfg, store), store, &cfg.catalogue, ImportOptions::default()).await
    }
}

/// What readers see of the catalogue in force.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    generation: Option<u64>,
    pos: Option<PosConfig>,
    seasons: Vec<Season>,
    records: Vec<ProductRecord>,
}

impl Snapshot {
    fn of(store: &Store) -> Self {
        let view = store.catalog().expect("store readable");
        Self {
            generation: store.generation().expect("generation"),
            pos: view.as_ref().and_then(|v| v.meta.pos.clone()),
            seasons: view.as_ref().map(|v| v.seasons().expect("seasons")).unwrap_or_default(),
            records: view
                .as_ref()
                .map(|v| v.products().map(|r| r.expect("record")).collect())
                .unwrap_or_default(),
        }
    }

    fn products(&self) -> Vec<&Product> {
        self.records.iter().map(|r| &r.product).collect()
    }

    fn product(&self, id: Id) -> &Product {
        self.products()
            .into_iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("product {id} is in the catalogue"))
    }
}

/// Imports `base` over `transport` into a fresh store: the snapshot, the counts, the store (kept open).
async fn import_fixture(
    transport: Transport,
    base: &str,
    extra: &str,
) -> (Snapshot, ImportCounts, Store, tempfile::TempDir) {
    let sx = Secutix::start(transport, vec![fixture_reply(&transport.file(base))]).await;
    let clock = clock();
    let (store, dir) = store(&clock);
    let report = sx
        .import(&store, extra)
        .await
        .unwrap_or_else(|e| panic!("{base} over {transport:?}: {e}"));
    assert_eq!(report.outcome, ImportOutcome::Success);
    sx.mock.stop();
    (Snapshot::of(&store), report.counts, store, dir)
}

/// Every place where two JSON values differ, as `path: left != right`.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (l, r) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                differences(&format!("{path}.{k}"), l, r, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), l, r, out);
            }
        }
        _ if a != b => out.push(format!("{path}: REST {a} != SOAP {b}")),
        _ => {}
    }
}

/// Compares two domain values field by field (naming each difference), then as typed values.
fn assert_same<T: serde::Serialize + PartialEq + std::fmt::Debug>(what: &str, rest: &T, soap: &T) {
    let mut diffs = Vec::new();
    differences(
        what,
        &serde_json::to_value(rest).expect("json"),
        &serde_json::to_value(soap).expect("json"),
        &mut diffs,
    );
    assert!(diffs.is_empty(), "REST and SOAP differ:\n{}", diffs.join("\n"));
    assert_eq!(rest, soap, "{what}");
}

/// Entries (with their content hashes) of every stored product, availability unknown, at t0.
fn entries(store: &Store) -> Vec<(secutix_sync::entry::Entry, String)> {
    let view = store.catalog().expect("view").expect("catalogue");
    let seasons: BTreeMap<Id, Season> = view
        .seasons()
        .expect("seasons")
        .into_iter()
        .filter_map(|s| Some((s.id?, s)))
        .collect();
    let options = secutix_sync::merge::EntryOptions {
        languages: vec![],
        mapping_version: 1,
        shop_url: "https://grandquai.shop.secutix.example".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: "{shop}/api/1/redirect/product/performance?id={performance_id}&lang={LANGUAGE}".into(),
        links: BTreeMap::new(),
        published_states: secutix_sync::merge::default_published_states(),
    };
    let status = |_: &Product, perf: &secutix_sync::catalog::Performance, now: DateTime<Utc>| PerformanceStatus {
        level: None,
        on_sale: !perf.is_past(now),
    };
    let ctx = MergeContext {
        options: &options,
        pos: view.meta.pos.as_ref(),
        seasons: &seasons,
        status: &status,
        now: t0(),
    };
    view.products()
        .map(|r| {
            let e = merge::build_entry(&r.expect("record"), &ctx);
            let h = secutix_sync::entry::content_hash(&e, 1);
            (e, h)
        })
        .collect()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single()
}

fn fr(t: &Translated) -> Option<&str> {
    t.0.get("fr").map(String::as_str)
}

fn en(t: &Translated) -> Option<&str> {
    t.0.get("en").map(String::as_str)
}

const MISANTHROPE: Id = 10229104500017;
const RECITAL: Id = 10229104500120;
const SCAPIN: Id = 10229104500305;
const RENCONTRE: Id = 10229104500411;
const ABONNEMENT: Id = 10229104500590;
const CARTE_JEUNE: Id = 10229104500612;
const PHEDRE: Id = 10229104500701;
const NOSFERATU: Id = 10229104500802;
const CYRANO: Id = 10228704501610;

#[tokio::test(start_paused = true)]
async fn the_small_catalogue_is_the_same_in_json_and_soap_and_reads_as_written() {
    let (rest, rest_counts, rest_store, _d1) = import_fixture(Transport::Rest, "catalogue-small", ALL_FAMILIES).await;
    let (soap, soap_counts, soap_store, _d2) = import_fixture(Transport::Soap, "catalogue-small", ALL_FAMILIES).await;
    assert_same("pos", &rest.pos, &soap.pos);
    assert_same("seasons", &rest.seasons, &soap.seasons);
    assert_eq!(rest.products().len(), soap.products().len());
    for (r, s) in rest.products().into_iter().zip(soap.products()) {
        assert_same(&format!("product {}", r.id), r, s);
    }
    assert_eq!(rest_counts, soap_counts);
    assert_same("entries", &entries(&rest_store), &entries(&soap_store));

    // Not just equal: what the fixture says.
    let c = &rest_counts;
    assert_eq!((c.products, c.seasons, c.duplicates, c.skipped), (6, 2, 1, 0), "{c:?}");
    let pos = rest.pos.as_ref().expect("POS configuration");
    assert_eq!(pos.pos_id, Some(10228466653735));
    assert_eq!(pos.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!((pos.currency.as_deref(), pos.fraction_digits), (Some("EUR"), Some(2)));
    assert_eq!(pos.main_language.as_deref(), Some("fr"));
    assert_eq!(pos.languages, vec!["fr", "en"]);

    // 14-digit ids survive; French and English names, null values dropped, HTML kept as sent.
    let mis = rest.product(MISANTHROPE);
    assert_eq!(fr(&mis.name), Some("Le Misanthrope"));
    assert_eq!(en(&mis.name), Some("The Misanthrope"));
    assert_eq!(
        mis.short_name,
        Translated::from_pairs([("fr", "Misanthrope")]),
        "the null en value is dropped"
    );
    let desc = fr(&mis.description).expect("French description");
    assert!(
        desc.contains("<strong>Claire Devers</strong> &amp; la troupe") && desc.contains("&nbsp;"),
        "{desc}"
    );
    assert!(
        en(&mis.description).is_some_and(|d| d.contains("<em>Molière</em>")),
        "CDATA in SOAP"
    );
    assert_eq!(
        mis.images.large.as_deref(),
        Some("https://cdn.grandquai.example/spectacles/misanthrope-1280.jpg")
    );
    // Epoch ms, RFC 3339 with +01:00 and epoch ms after the spring DST change: all the same instants.
    let perfs = mis.performances();
    let starts: Vec<_> = perfs.iter().map(|p| p.start).collect();
    assert_eq!(
        starts,
        vec![utc(2026, 1, 22, 19, 0), utc(2026, 3, 12, 19, 0), utc(2026, 4, 2, 13, 0)]
    );
    assert_eq!(
        perfs.iter().map(|p| p.duration_secs).collect::<Vec<_>>(),
        vec![Some(8100), Some(8100), None]
    );
    assert_eq!(perfs[1].state, None, "a null performance state");
    assert_eq!(perfs[0].seat_categories.len(), 2);
    assert_eq!(perfs[0].prices[0].seat_category_id, Some(10228900000401));
    assert_eq!(perfs[1].prices[0].price_level_id, Some(10228900000301));
    assert_eq!(mis.event.as_ref().and_then(|e| e.alert_ratio), Some(20.0));

    // The CANCELED product, with a null seatCatId on its unnumbered prices.
    let recital = rest.product(RECITAL);
    assert_eq!(recital.state, Some(State::Canceled));
    assert_eq!(recital.performances()[0].state, Some(State::Canceled));
    assert!(
        recital.performances()[0]
            .prices
            .iter()
            .all(|p| p.seat_category_id.is_none())
    );
    assert_eq!(recital.performances()[0].prices[0].amount, 28000);

    // A performance with no prices.
    assert!(rest.product(RENCONTRE).performances()[0].prices.is_empty());
    assert_eq!(en(&rest.product(RENCONTRE).name), None, "English name null");

    // Listed in 2025-2026 and 2026-2027: taken from 2026-2027, which starts later.
    let scapin = rest.product(SCAPIN);
    assert_eq!(fr(&scapin.name), Some("Les Fourberies de Scapin (reprise)"));
    assert_eq!(scapin.season_code.as_deref(), Some("S2627"));
    let ids: Vec<Id> = scapin.performances().iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![10229104500308, 10229104500309]);

    // Products of other families, without an event.
    let abo = rest.product(ABONNEMENT);
    assert_eq!(abo.family, Some(ProductFamily::SeasonTicket));
    assert!(abo.event.is_none());
    assert_eq!(rest.product(CARTE_JEUNE).family, Some(ProductFamily::Membership));
    assert!(rest.product(CARTE_JEUNE).description.is_empty(), "both values null");

    // Tariffs and price levels per season.
    let s2526 = rest
        .seasons
        .iter()
        .find(|s| s.code.as_deref() == Some("S2526"))
        .expect("S2526");
    assert_eq!(s2526.audience_sub_categories.len(), 5);
    assert_eq!(s2526.price_levels.len(), 2);
    assert_eq!(s2526.start, utc(2025, 8, 31, 22, 0));
}

#[tokio::test(start_paused = true)]
async fn the_medium_catalogue_is_the_same_in_json_and_soap() {
    let (rest, rest_counts, rest_store, _d1) = import_fixture(Transport::Rest, "catalogue-medium", ALL_FAMILIES).await;
    let (soap, soap_counts, soap_store, _d2) = import_fixture(Transport::Soap, "catalogue-medium", ALL_FAMILIES).await;
    assert_same("pos", &rest.pos, &soap.pos);
    assert_same("seasons", &rest.seasons, &soap.seasons);
    assert_eq!(rest.products().len(), soap.products().len());
    for (r, s) in rest.products().into_iter().zip(soap.products()) {
        assert_same(&format!("product {}", r.id), r, s);
    }
    assert_eq!(rest_counts, soap_counts);
    assert_same("entries", &entries(&rest_store), &entries(&soap_store));

    let c = &rest_counts;
    assert_eq!((c.products, c.seasons, c.duplicates), (16, 3, 1), "{c:?}");
    // The newest season is listed first here: still the one that starts latest wins.
    assert_eq!(
        fr(&rest.product(SCAPIN).name),
        Some("Les Fourberies de Scapin (reprise)")
    );
    let phedre = rest.product(PHEDRE);
    assert!(phedre.performances()[0].prices.is_empty(), "invitation-only preview");
    assert_eq!(phedre.performances()[3].state, Some(State::Canceled));
    assert_eq!(phedre.sub_topic_codes, vec!["CLASSIQUE", "PASSCULTURE"]);
    assert_eq!(
        phedre.images.logo.as_deref(),
        Some("https://cdn.grandquai.example/spectacles/phedre-logo.png")
    );
    let nosferatu = rest.product(NOSFERATU);
    assert_eq!(
        nosferatu.performances()[0].prices.len(),
        1,
        "one <prices> element in XML"
    );
    assert_eq!(nosferatu.performances()[0].prices[0].seat_category_id, None);
    let cyrano = rest.product(CYRANO);
    assert!(cyrano.has_ended(t0()) && cyrano.state == Some(State::Closed));
    let families: Vec<String> = rest
        .products()
        .iter()
        .filter_map(|p| p.family.as_ref().map(|f| f.as_str().to_owned()))
        .filter(|f| f != "SINGLE_ENTRY")
        .collect();
    assert_eq!(families.len(), 5, "{families:?}");
}

#[tokio::test(start_paused = true)]
async fn by_default_only_single_entry_products_are_kept() {
    for transport in [Transport::Rest, Transport::Soap] {
        let (small, c, _s, _d) = import_fixture(transport, "catalogue-small", "").await;
        assert_eq!((c.products, c.skipped), (4, 2), "{transport:?} small: {c:?}");
        assert!(
            small
                .products()
                .iter()
                .all(|p| p.family == Some(ProductFamily::SingleEntry))
        );
        let (_, c, _s, _d) = import_fixture(transport, "catalogue-medium", "").await;
        assert_eq!(
            (c.products, c.skipped, c.performances),
            (11, 5, 27),
            "{transport:?} medium: {c:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_enum_values_are_kept_as_sent() {
    let extra = "[catalogue]\nproduct_families = [\"SINGLE_ENTRY\", \"GIFT_CARD\"]";
    let (rest, _, rest_store, _d1) = import_fixture(Transport::Rest, "bad/unknown-enums", extra).await;
    let (soap, _, _soap_store, _d2) = import_fixture(Transport::Soap, "bad/unknown-enums", extra).await;
    for (r, s) in rest.products().into_iter().zip(soap.products()) {
        assert_same(&format!("product {}", r.id), r, s);
    }
    assert_same("seasons", &rest.seasons, &soap.seasons);
    let mis = rest.product(MISANTHROPE);
    assert_eq!(mis.state, Some(State::Other("HIDDEN_FROM_WEB".into())));
    assert_eq!(mis.performances()[1].state, Some(State::Other("POSTPONED".into())));
    assert_eq!(
        mis.event.as_ref().and_then(|e| e.activity_type.as_deref()),
        Some("HYBRID_EVENT")
    );
    let gift = rest.product(10229104509901);
    assert_eq!(gift.family, Some(ProductFamily::Other("GIFT_CARD".into())));
    let s2526 = rest
        .seasons
        .iter()
        .find(|s| s.code.as_deref() == Some("S2526"))
        .expect("S2526");
    assert_eq!(s2526.state, Some(State::Other("ARCHIVING".into())));
    assert!(
        s2526
            .audience_sub_categories
            .iter()
            .any(|a| a.kind.as_deref() == Some("SOLIDARITY"))
    );
    // The entry carries the state as SecuTix sent it.
    let entries = entries(&rest_store);
    let entry = &entries
        .iter()
        .find(|(e, _)| e.product_id == MISANTHROPE.to_string())
        .expect("entry")
        .0;
    assert_eq!(entry.state.as_deref(), Some("HIDDEN_FROM_WEB"));
}

#[tokio::test(start_paused = true)]
async fn in_progress_then_success_gives_the_catalogue() {
    for transport in [Transport::Rest, Transport::Soap] {
        let (direct, ..) = import_fixture(transport, "catalogue-small", "").await;
        let sx = Secutix::start(
            transport,
            vec![
                fixture_reply(&transport.file("bad/in-progress")),
                fixture_reply(&transport.file("catalogue-small")),
            ],
        )
        .await;
        let clock = clock();
        let (store, _dir) = store(&clock);
        let report = sx
            .import(&store, "")
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(report.outcome, ImportOutcome::Success);
        let calls = sx.catalogue_calls();
        assert_eq!(calls.len(), 2, "{transport:?}");
        assert!(
            (calls[1].at - calls[0].at) >= Duration::from_secs(15),
            "{transport:?}: backed off before calling again"
        );
        match transport {
            Transport::Rest => assert_eq!(calls[1].json()["requestId"], 118842),
            Transport::Soap => assert!(
                calls[1].text().contains("<requestId>118842</requestId>"),
                "{}",
                calls[1].text()
            ),
        }
        assert_eq!(Snapshot::of(&store).products(), direct.products(), "{transport:?}");
    }
}

/// A bad answer to the second import: the error (which must name the call and contain `expected`), and the
/// proof that the first catalogue is still the one in force (same generation, same records, and the attempt
/// recorded as failed or refused).
async fn second_import_fails(transport: Transport, bad: Reply, extra: &str, expected: &[&str]) -> String {
    let sx = Secutix::start(transport, vec![fixture_reply(&transport.file("catalogue-small"))]).await;
    let clock = clock();
    let (store, _dir) = store(&clock);
    sx.import(&store, extra).await.expect("first import");
    let before = Snapshot::of(&store);
    tokio::time::advance(Duration::from_secs(601)).await;
    sx.serve(vec![bad]);
    let err = sx.import(&store, extra).await.expect_err("the bad input is refused");
    let msg = err.to_string();
    // A refusal of the shrink guard is about the catalogue as a whole; everything else names the call.
    if !matches!(err, ImportError::Refused(_)) {
        assert!(
            msg.contains("getCatalogDetailed"),
            "{transport:?}: the message names the call: {msg}"
        );
    }
    for e in expected {
        assert!(msg.contains(e), "{transport:?}: {e:?} in {msg}");
    }
    assert_eq!(
        Snapshot::of(&store),
        before,
        "{transport:?}: the previous catalogue stays in force"
    );
    let last = &store.import_history(1).expect("history")[0];
    assert!(
        matches!(last.outcome, ImportOutcome::Failed | ImportOutcome::Refused),
        "{last:?}"
    );
    sx.mock.stop();
    msg
}

#[tokio::test(start_paused = true)]
async fn every_bad_fixture_gives_a_clear_error_and_keeps_the_previous_catalogue() {
    use Transport::{Rest, Soap};
    // Truncated bodies: the place is a JSON path with line and column, or an XML element path with a byte.
    second_import_fails(
        Rest,
        fixture_reply("bad/truncated.json"),
        "",
        &["truncated", "catalogData.seasons[0].products[", "line"],
    )
    .await;
    second_import_fails(
        Soap,
        fixture_reply("bad/truncated.soap.xml"),
        "",
        &[
            "truncated",
            "Envelope/Body/getCatalogDetailedResponse/return/catalogData/seasons[0]",
            "byte",
        ],
    )
    .await;
    // An HTML error page sent with 200 by a proxy in front of SecuTix: quoted.
    for t in [Rest, Soap] {
        second_import_fails(
            t,
            fixture_reply("bad/error-page.html"),
            "",
            &["HTML page", "Maintenance en cours"],
        )
        .await;
    }
    // Wrong types: the exact field.
    second_import_fails(
        Rest,
        fixture_reply("bad/wrong-types.json"),
        "",
        &[
            "catalogData.seasons[0].products[1].event.performances[0].prices[0].amount",
            "28,00 €",
        ],
    )
    .await;
    second_import_fails(
        Soap,
        fixture_reply("bad/wrong-types.soap.xml"),
        "",
        &[
            "seasons[0]",
            "product #1, field event.performances.prices[0].amount",
            "28,00 €",
        ],
    )
    .await;
    // An empty catalogue would remove every product: refused, with the way to force it.
    for t in [Rest, Soap] {
        second_import_fails(
            t,
            fixture_reply(&t.file("bad/empty-catalogue")),
            "",
            &["remove 4 of 4", "--force"],
        )
        .await;
    }
    // in_progress until the deadline.
    for t in [Rest, Soap] {
        second_import_fails(
            t,
            fixture_reply(&t.file("bad/in-progress")),
            "[catalogue]\ndeadline = \"2m\"",
            &["previous catalogue stays in force", "catalogue.deadline"],
        )
        .await;
    }
    // A SOAP fault (HTTP 500 with a Fault envelope).
    let fault = Reply::status(500)
        .header("content-type", "text/xml; charset=utf-8")
        .body(fixture("bad/fault.soap.xml"));
    second_import_fails(
        Soap,
        fault,
        "",
        &["SOAP fault", "Access denied for operator GQUAI_WEBSYNC"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_empty_catalogue_is_accepted_when_forced_and_tombstones_everything() {
    let sx = Secutix::start(Transport::Rest, vec![fixture_reply("catalogue-small.json")]).await;
    let clock = clock();
    let (store, _dir) = store(&clock);
    sx.import(&store, "").await.expect("first import");
    tokio::time::advance(Duration::from_secs(601)).await;
    sx.serve(vec![fixture_reply("bad/empty-catalogue.json")]);
    let cfg = config(&sx.mock.uri(), "rest", "");
    let report = run_import(
        &client(&cfg, &store),
        &store,
        &cfg.catalogue,
        ImportOptions { force: true },
    )
    .await
    .expect("forced");
    assert_eq!((report.counts.products, report.counts.removed), (0, 4));
    let snap = Snapshot::of(&store);
    assert_eq!(snap.records.len(), 4, "tombstones are kept");
    assert!(snap.records.iter().all(|r| r.removed_at.is_some()));
}
