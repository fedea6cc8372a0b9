use super::*;
use crate::catalog::{Event, Images, Performance, Price, Product, ProductFamily};
use crate::entry::{Money, content_hash, entry_schema};
use crate::indicator::{PerformanceStatus, StatusSource};
use chrono::TimeZone;

fn t(d: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 19, 0, 0).single().expect("date") + chrono::Duration::days(d)
}

fn perf(id: Id, day: i64, amounts: &[i64]) -> Performance {
    Performance {
        id,
        code: None,
        start: Some(t(day)),
        duration_secs: Some(5400),
        state: None,
        name: Translated::default(),
        description: Translated::default(),
        space_code: Some("GS".into()),
        space_name: Translated::from_pairs([("fr", "Grande salle")]),
        site_code: None,
        site_name: Translated::default(),
        seat_categories: vec![],
        prices: amounts
            .iter()
            .map(|a| Price {
                seat_category_id: None,
                institution_seat_category_id: None,
                audience_sub_category_id: Some(77),
                price_level_id: None,
                amount: *a,
            })
            .collect(),
        sale_periods: vec![],
        retained: false,
    }
}

fn record(perfs: Vec<Performance>) -> ProductRecord {
    ProductRecord {
        product: Product {
            id: 10228321399304,
            code: Some("HAM".into()),
            season_id: Some(1),
            season_code: Some("S26".into()),
            family: Some(ProductFamily::SingleEntry),
            family_sub_type: None,
            state: Some(State::Running),
            name: Translated::from_pairs([("fr", "Hamlet"), ("en", "Hamlet (EN)")]),
            short_name: Translated::default(),
            description: Translated::from_pairs([("fr", "<p>Drame</p>")]),
            images: Images {
                large: Some("https://img/h.jpg".into()),
                ..Default::default()
            },
            detail_url: None,
            sale_periods: vec![],
            sub_topic_codes: vec![],
            event: Some(Event {
                activity_id: None,
                activity_code: Some("TH".into()),
                activity_type: None,
                activity_name: Translated::from_pairs([("fr", "Théâtre")]),
                alert_ratio: Some(20.0),
                minimum_age: None,
                language: None,
                performances: perfs,
            }),
        },
        feed_hash: String::new(),
        first_seen: t(-100),
        changed_at: t(-100),
        removed_at: None,
    }
}

fn options() -> EntryOptions {
    EntryOptions {
        languages: vec!["fr".into(), "en".into()],
        mapping_version: 1,
        shop_url: "https://mosa.shop.secutix.com".into(),
        book_url: "{shop}/api/1/redirect/product?id={product_id}&lang={LANGUAGE}".into(),
        performance_url: "{shop}/api/1/redirect/product/performance?id={performance_id}&lang={LANGUAGE}".into(),
        links: [("account".to_owned(), "{shop}/account/login?lang={LANGUAGE}".to_owned())].into(),
        published_states: default_published_states(),
    }
}

fn pos() -> PosConfig {
    PosConfig {
        pos_id: Some(1),
        time_zone: Some("Europe/Paris".into()),
        currency: Some("EUR".into()),
        fraction_digits: Some(2),
        main_language: Some("fr".into()),
        languages: vec!["fr".into(), "en".into()],
    }
}

fn entry_with(levels: &[(Id, Option<u8>, bool)], rec: &ProductRecord) -> Entry {
    let levels: BTreeMap<Id, PerformanceStatus> = levels
        .iter()
        .map(|(id, l, s)| (*id, PerformanceStatus { level: *l, on_sale: *s }))
        .collect();
    let status = move |_: &Product, p: &Performance, _: DateTime<Utc>| levels.get(&p.id).copied().unwrap_or_default();
    entry_by(&status, rec)
}

fn entry_by(status: &StatusFn<'_>, rec: &ProductRecord) -> Entry {
    let opts = options();
    let pos = pos();
    let season = Season {
        id: Some(1),
        code: Some("S26".into()),
        state: None,
        start: None,
        end: None,
        name: Translated::from_pairs([("fr", "Saison 26")]),
        audience_sub_categories: vec![crate::catalog::AudienceSubCategory {
            id: 77,
            code: Some("PLEIN".into()),
            name: Translated::from_pairs([("fr", "Plein tarif"), ("en", "Full price")]),
            kind: Some("FULL".into()),
            category_id: None,
            category_code: None,
            category_name: Translated::default(),
        }],
        price_levels: vec![],
    };
    let seasons = [(1, season)].into();
    build_entry(
        rec,
        &MergeContext {
            options: &opts,
            pos: Some(&pos),
            seasons: &seasons,
            status,
            now: t(0),
        },
    )
}

/// A pass: a product without performances, with a product-level availability.
fn pass(state: Option<State>) -> ProductRecord {
    let mut rec = record(vec![]);
    rec.product.event = None;
    rec.product.family = Some(ProductFamily::Pass);
    rec.product.state = state;
    rec
}

/// Product-level statuses by product id; performances are never asked for.
struct PassStatuses(BTreeMap<Id, PerformanceStatus>);

impl StatusSource for PassStatuses {
    fn performance(&self, _: &Product, p: &Performance, _: DateTime<Utc>) -> PerformanceStatus {
        panic!("a pass has no performance to ask about ({})", p.id)
    }
    fn product(&self, p: &Product, _: DateTime<Utc>) -> PerformanceStatus {
        self.0.get(&p.id).copied().unwrap_or_default()
    }
}

#[test]
fn a_product_without_performances_shows_its_own_indicator_and_book_link() {
    let rec = pass(Some(State::Running));
    let id = rec.product.id;
    let of = |level: Option<u8>, on_sale: bool| {
        entry_by(&PassStatuses([(id, PerformanceStatus { level, on_sale })].into()), &rec)
    };
    let e = of(Some(2), true);
    assert_eq!(e.availability.status, AvailabilityStatus::AlmostFull);
    assert_eq!(e.availability.code, Some(2));
    assert!(e.on_sale);
    assert_eq!(
        e.booking_url.get("fr").map(String::as_str),
        Some("https://mosa.shop.secutix.com/api/1/redirect/product?id=10228321399304&lang=fr")
    );
    assert!(e.performances.is_empty() && e.next_performance.is_none());

    let sold_out = of(Some(3), true);
    assert_eq!(sold_out.availability.status, AvailabilityStatus::SoldOut);
    assert!(
        sold_out.on_sale && sold_out.booking_url.is_empty(),
        "no Book link when full"
    );
    let closed = of(Some(1), false);
    assert_eq!(closed.availability.status, AvailabilityStatus::NotOnSale);
    assert!(!closed.on_sale && closed.booking_url.is_empty());
    let unknown = of(None, true);
    assert_eq!(unknown.availability.status, AvailabilityStatus::Unknown);
    assert!(
        !unknown.booking_url.is_empty(),
        "on sale, level not fetched yet: bookable"
    );

    // Removed from the feed: not on sale, whatever was last polled.
    let mut gone = rec.clone();
    gone.removed_at = Some(t(-1));
    let e = entry_by(
        &PassStatuses(
            [(
                id,
                PerformanceStatus {
                    level: Some(1),
                    on_sale: true,
                },
            )]
            .into(),
        ),
        &gone,
    );
    assert_eq!(e.availability.status, AvailabilityStatus::NotOnSale);
    assert!(!e.published && e.booking_url.is_empty());
}

#[test]
fn a_plain_status_function_leaves_a_pass_to_the_catalogue() {
    let never = |_: &Product, p: &Performance, _: DateTime<Utc>| -> PerformanceStatus {
        panic!("a pass has no performance to ask about ({})", p.id)
    };
    let open = entry_by(&never, &pass(Some(State::Running)));
    assert_eq!(open.availability.status, AvailabilityStatus::Unknown);
    assert!(open.on_sale);
    let suspended = entry_by(&never, &pass(Some(State::Suspended)));
    assert_eq!(suspended.availability.status, AvailabilityStatus::NotOnSale);
    // A dated event without any performance is not on sale (nothing to book).
    let empty = entry_by(&never, &record(vec![]));
    assert_eq!(empty.availability.status, AvailabilityStatus::NotOnSale);
}

#[test]
fn a_stored_catalogue_with_values_that_cannot_be_right_gives_a_clean_entry() {
    // As an older version may have stored them: a negative price, extreme amounts, a start in year
    // 9999, an endless duration, a NUL and a bidi override in texts.
    let mut far = perf(2, 1, &[35000]);
    far.start = Some(
        chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_opt(23, 0, 0))
            .expect("date")
            .and_utc(),
    );
    let mut endless = perf(3, 2, &[i64::MAX, i64::MIN, 20000]);
    endless.duration_secs = Some(i64::MAX);
    let mut rec = record(vec![perf(1, 1, &[-500_000, 10000]), far, endless]);
    rec.product.name = Translated::from_pairs([("fr", "Ham\u{0}let \u{202E}tpircs"), ("en", "Hamlet")]);
    let e = entry_with(&[(1, Some(1), true), (2, Some(1), true), (3, Some(1), true)], &rec);
    let json = serde_json::to_string(&e).expect("json");
    assert!(
        !json.contains("-500") && !json.contains("\\u0000") && !json.contains('\u{202E}'),
        "{json}"
    );
    assert_eq!(e.title.0.get("fr").map(String::as_str), Some("Hamlet tpircs"));
    let p = &e.performances;
    assert_eq!(p[0].prices.len(), 1, "the negative price is left out");
    assert_eq!(p[1].start, None, "a start in year 9999 is left out");
    assert_eq!(p[1].end, None);
    assert_eq!(
        (p[2].end.as_deref(), p[2].duration_minutes),
        (None, None),
        "the endless duration too"
    );
    assert_eq!(p[2].prices.len(), 1, "the extreme amounts are left out");
    let range = e.price_range.expect("a price range");
    assert_eq!(
        (range.min.amount.as_str(), range.max.amount.as_str()),
        ("10.00", "35.00")
    );
    assert_eq!(money(i64::MIN, 2).minor, -922_337_203_685_477_581);
    assert_eq!(money(i64::MAX, 0).minor, 9_223_372_036_854_776);
}

#[test]
fn money_in_decimal_and_minor_units() {
    assert_eq!(
        money(35000, 2),
        Money {
            amount: "35.00".into(),
            minor: 3500
        }
    );
    assert_eq!(
        money(4005, 2),
        Money {
            amount: "4.01".into(),
            minor: 401
        }
    );
    assert_eq!(
        money(0, 2),
        Money {
            amount: "0.00".into(),
            minor: 0
        }
    );
    assert_eq!(
        money(1500, 0),
        Money {
            amount: "2".into(),
            minor: 2
        }
    );
    assert_eq!(
        money(12345, 3),
        Money {
            amount: "12.345".into(),
            minor: 12345
        }
    );
}

#[test]
fn booking_links_only_when_on_sale_and_not_full() {
    let rec = record(vec![perf(1, 5, &[35000, 20000]), perf(2, 6, &[35000])]);
    let e = entry_with(&[(1, Some(3), true), (2, Some(2), true)], &rec);
    assert_eq!(
        e.availability,
        Availability {
            status: AvailabilityStatus::AlmostFull,
            code: Some(2)
        }
    );
    assert_eq!(
        e.booking_url["fr"],
        "https://mosa.shop.secutix.com/api/1/redirect/product?id=10228321399304&lang=fr"
    );
    assert!(e.performances[0].booking_url.is_empty(), "full performance: no link");
    assert_eq!(
        e.performances[1].booking_url["en"],
        "https://mosa.shop.secutix.com/api/1/redirect/product/performance?id=2&lang=en"
    );

    let full = entry_with(&[(1, Some(3), true), (2, Some(3), true)], &rec);
    assert_eq!(full.availability.status, AvailabilityStatus::SoldOut);
    assert!(full.booking_url.is_empty());

    let closed = entry_with(&[(1, Some(1), false), (2, Some(1), false)], &rec);
    assert_eq!(
        closed.availability,
        Availability {
            status: AvailabilityStatus::NotOnSale,
            code: None
        }
    );
    assert!(!closed.on_sale && closed.booking_url.is_empty());
}

#[test]
fn times_in_the_venue_zone_prices_and_texts() {
    let rec = record(vec![perf(1, -1, &[10000]), perf(2, 5, &[35000, 20000])]);
    let e = entry_with(&[(2, Some(1), true)], &rec);
    assert_eq!(e.performances[1].start.as_deref(), Some("2026-03-06T20:00:00+01:00"));
    assert_eq!(e.performances[1].end.as_deref(), Some("2026-03-06T21:30:00+01:00"));
    assert!(e.performances[0].past && !e.performances[0].on_sale);
    let range = e.price_range.as_ref().expect("prices");
    assert_eq!(
        (range.min.amount.as_str(), range.max.minor),
        ("20.00", 3500),
        "past performance excluded"
    );
    assert_eq!(
        e.performances[1].prices[0].tariff.name.get("en", &[]),
        Some("Full price")
    );
    assert_eq!(e.title.get("en", &[]), Some("Hamlet (EN)"));
    assert_eq!(
        e.description.get("en", &[]),
        Some("<p>Drame</p>"),
        "falls back to the main language"
    );
    assert_eq!(e.next_performance.as_ref().map(|n| n.id.as_str()), Some("2"));
    assert_eq!(
        e.links["account"]["fr"],
        "https://mosa.shop.secutix.com/account/login?lang=fr"
    );
    assert_eq!(e.external_id, "secutix-10228321399304");
}

#[test]
fn hash_is_stable_and_follows_content_and_mapping_version() {
    let rec = record(vec![perf(1, 5, &[35000])]);
    let a = entry_with(&[(1, Some(1), true)], &rec);
    let b = entry_with(&[(1, Some(1), true)], &rec);
    assert_eq!(content_hash(&a, 1), content_hash(&b, 1));
    let c = entry_with(&[(1, Some(2), true)], &rec);
    assert_ne!(content_hash(&a, 1), content_hash(&c, 1));
    assert_ne!(content_hash(&a, 1), content_hash(&a, 2));
}

#[test]
fn the_published_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/entry.schema.json");
    let generated = serde_json::to_string_pretty(&entry_schema()).expect("schema") + "\n";
    if std::env::var_os("SECUTIX_SYNC_REGEN").is_some() {
        std::fs::write(path, &generated).expect("write schema");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/entry.schema.json is stale: run `SECUTIX_SYNC_REGEN=1 cargo test --lib schema`"
    );
}

#[test]
fn an_entry_validates_against_its_schema_shape() {
    let rec = record(vec![perf(1, 5, &[35000])]);
    let e = serde_json::to_value(entry_with(&[(1, Some(1), true)], &rec)).expect("json");
    let schema = entry_schema();
    let required = schema["required"].as_array().expect("required fields");
    for field in required {
        let f = field.as_str().expect("name");
        assert!(e.get(f).is_some(), "entry lacks required field {f}");
    }
    for key in e.as_object().expect("object").keys() {
        assert!(
            schema["properties"].get(key).is_some(),
            "field {key} is not in the schema"
        );
    }
}

#[test]
fn tombstones_are_unpublished_and_not_bookable() {
    let mut rec = record(vec![perf(1, 5, &[35000])]);
    rec.removed_at = Some(t(-1));
    let e = entry_with(&[(1, Some(1), true)], &rec);
    assert!(!e.published && !e.on_sale && e.booking_url.is_empty());
}

#[test]
fn only_products_in_a_published_state_are_published() {
    let published = |state: Option<State>, removed: bool| {
        let mut rec = record(vec![perf(1, 5, &[35000])]);
        rec.product.state = state;
        rec.removed_at = removed.then(|| t(-1));
        entry_with(&[(1, Some(1), true)], &rec).published
    };
    assert!(published(Some(State::Running), false));
    assert!(published(Some(State::Suspended), false));
    assert!(
        published(None, false),
        "a feed without states: SecuTix exported it as on sale"
    );
    for state in [
        State::Preparing,
        State::Validated,
        State::Canceled,
        State::Closed,
        State::CanceledClosed,
        State::Other("HIDDEN_FROM_WEB".into()),
    ] {
        assert!(!published(Some(state.clone()), false), "{state}");
    }
    assert!(!published(Some(State::Running), true), "a tombstone stays unpublished");
    assert!(state_is_published(Some(&State::Preparing), &[State::Preparing]));
}
