//! Building entries: the projection of a stored product into the [`Entry`] a CMS receives (the document's
//! types are [`crate::entry`]'s), its links and the `[entries]` settings.
//!
//! [`build_entry`] projects a stored product (catalogue + the availability statuses computed for `now`) into an
//! [`Entry`] keyed `secutix-<productId>`: texts per configured language (with a fallback language), times in the
//! venue's time zone with their offset, amounts as decimal strings and minor units, "Book" links **only** when the
//! product is on sale and not full, one link per performance, and the account links. [`content_hash`] hashes the
//! entry together with the mapping version: a target is sent an entry only when this hash differs from the one it
//! last acknowledged, and bumping `entries.mapping_version` re-pushes everything.
//!
//! An entry is `published` only while SecuTix lists its product **and** the product's state is one of
//! `entries.published_states` ([`EntryOptions::published_states`], by default `RUNNING` and `SUSPENDED`): a
//! product being prepared (`PREPARING`), not yet announced, is unpublished on every target and absent from the
//! public availability document, whatever its dates and prices.
//!
//! The entry holds nothing volatile (no "synced at"): an unchanged catalogue gives byte-identical entries.
//! The JSON Schema is `docs/entry.schema.json`; the README has the field table.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::catalog::{Id, PosConfig, Season, State, Translated, clean_text, plausible};
use crate::entry::{
    Entry, EntryPerformance, EntryPrice, Named, NextPerformance, PriceRange, SCHEMA_VERSION, external_id, money,
};
use crate::indicator::{Availability, AvailabilityStatus, StatusFn, roll_up};
use crate::store::ProductRecord;

/// How entries are built (from `[entries]`).
#[derive(Debug, Clone)]
pub struct EntryOptions {
    /// Languages of the texts and links; empty = the POS configuration's languages.
    pub languages: Vec<String>,
    /// Mapping version, part of the hash.
    pub mapping_version: u32,
    /// Ticket shop base URL (`https://<shop host>`); empty = no booking links.
    pub shop_url: String,
    /// Template of the product "Book" link.
    pub book_url: String,
    /// Template of a performance link.
    pub performance_url: String,
    /// Other link templates by name (`account`, `profile`, `register`); empty templates are skipped.
    pub links: BTreeMap<String, String>,
    /// The product states whose entries are published (`entries.published_states`); see
    /// [`default_published_states`].
    pub published_states: Vec<State>,
}

/// The product states published by default: on sale (`RUNNING`) and announced with the sale paused
/// (`SUSPENDED`), the two states SecuTix's catalogue export holds unless asked for more. `PREPARING`
/// (not announced yet), `VALIDATED` (ready, not yet running), `CANCELED`, `CLOSED` and `CANCELED_CLOSED` are not.
pub fn default_published_states() -> Vec<State> {
    vec![State::Running, State::Suspended]
}

/// Whether a product in `state` is published under `published`. A product without a state (a feed that
/// leaves it out) is published: SecuTix's export holds on-sale products unless asked for more.
pub fn state_is_published(state: Option<&State>, published: &[State]) -> bool {
    state.is_none_or(|s| published.contains(s))
}

/// Everything an entry needs besides the product.
pub struct MergeContext<'a> {
    /// Options.
    pub options: &'a EntryOptions,
    /// POS configuration (currency, time zone, languages).
    pub pos: Option<&'a PosConfig>,
    /// Seasons by id (tariff names, price levels).
    pub seasons: &'a BTreeMap<Id, Season>,
    /// Availability statuses.
    pub status: &'a StatusFn<'a>,
    /// The time the entry describes.
    pub now: DateTime<Utc>,
}

impl MergeContext<'_> {
    fn time_zone(&self) -> chrono_tz::Tz {
        self.pos
            .and_then(|p| p.time_zone.as_deref())
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    /// The languages entries are written in.
    pub fn languages(&self) -> Vec<String> {
        if !self.options.languages.is_empty() {
            return self.options.languages.clone();
        }
        match self.pos {
            Some(p) if !p.languages.is_empty() => p.languages.clone(),
            Some(p) if p.main_language.is_some() => p.main_language.iter().cloned().collect(),
            _ => vec!["fr".to_owned()],
        }
    }

    fn fallback_language(&self) -> Option<String> {
        self.pos
            .and_then(|p| p.main_language.clone())
            .or_else(|| self.languages().first().cloned())
    }

    fn currency(&self) -> (String, u32) {
        let p = self.pos;
        (
            p.and_then(|p| p.currency.clone()).unwrap_or_else(|| "EUR".to_owned()),
            p.and_then(|p| p.fraction_digits).unwrap_or(2).min(3),
        )
    }
}

/// Fills a URL template: `{shop}`, `{product_id}`, `{performance_id}`, `{LANGUAGE}` (ISO 639-1).
pub fn fill_template(template: &str, shop: &str, product: Id, performance: Option<Id>, lang: &str) -> String {
    template
        .replace("{shop}", shop.trim_end_matches('/'))
        .replace("{product_id}", &product.to_string())
        .replace(
            "{performance_id}",
            &performance.map(|p| p.to_string()).unwrap_or_default(),
        )
        .replace("{LANGUAGE}", lang)
}

/// The texts of `t` in `langs`, without control characters or bidirectional overrides (the import strips
/// them; a catalogue stored by an older version may still hold them).
fn texts(t: &Translated, langs: &[String], fallback: Option<&str>) -> Translated {
    let fallbacks: Vec<&str> = fallback.into_iter().collect();
    Translated(
        langs
            .iter()
            .filter_map(|l| Some((l.clone(), clean_text(t.get(l, &fallbacks)?.to_owned()))))
            .collect(),
    )
}

fn local(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn named(id: Option<Id>, code: Option<String>, name: &Translated, langs: &[String], fb: Option<&str>) -> Named {
    Named {
        id: id.map(|i| i.to_string()),
        code,
        name: texts(name, langs, fb),
    }
}

fn links_for(ctx: &MergeContext<'_>, template: &str, product: Id, performance: Option<Id>) -> BTreeMap<String, String> {
    if template.is_empty() || (template.contains("{shop}") && ctx.options.shop_url.is_empty()) {
        return BTreeMap::new();
    }
    ctx.languages()
        .into_iter()
        .map(|l| {
            let url = fill_template(template, &ctx.options.shop_url, product, performance, &l);
            (l, url)
        })
        .collect()
}

/// Builds the entry of a stored product for `ctx.now`.
pub fn build_entry(record: &ProductRecord, ctx: &MergeContext<'_>) -> Entry {
    let p = &record.product;
    let langs = ctx.languages();
    let fb = ctx.fallback_language();
    let fb = fb.as_deref();
    let tz = ctx.time_zone();
    let (currency, digits) = ctx.currency();
    let season = p.season_id.and_then(|id| ctx.seasons.get(&id));
    let tariffs: BTreeMap<Id, &crate::catalog::AudienceSubCategory> = season
        .map(|s| s.audience_sub_categories.iter().map(|a| (a.id, a)).collect())
        .unwrap_or_default();
    let levels: BTreeMap<Id, &crate::catalog::PriceLevel> = season
        .map(|s| s.price_levels.iter().map(|l| (l.id, l)).collect())
        .unwrap_or_default();
    let live = record.removed_at.is_none();

    let mut perf_statuses = Vec::new();
    let mut performances = Vec::new();
    let mut future_amounts = Vec::new();
    let mut all_amounts = Vec::new();
    let mut next: Option<NextPerformance> = None;
    for perf in p.performances() {
        let past = perf.is_past(ctx.now);
        let mut status = ctx.status.performance(p, perf, ctx.now);
        if !live || past {
            status.on_sale = false;
        }
        if !past {
            perf_statuses.push(status);
        }
        let availability: Availability = AvailabilityStatus::from_level(status.level, status.on_sale).into();
        let bookable = status.on_sale && status.level != Some(3);
        let seat_names: BTreeMap<Id, &crate::catalog::SeatCategory> =
            perf.seat_categories.iter().map(|s| (s.id, s)).collect();
        // Values that cannot be right stay out of the entry (the import leaves them out and reports them;
        // this guards catalogues stored before it did).
        let start = perf.start.filter(|t| plausible::date(*t));
        let plausible_prices = || perf.prices.iter().filter(|pr| plausible::amount(pr.amount));
        let prices: Vec<EntryPrice> = plausible_prices()
            .map(|pr| {
                let tariff = pr.audience_sub_category_id.and_then(|id| tariffs.get(&id));
                EntryPrice {
                    tariff: Named {
                        id: pr.audience_sub_category_id.map(|i| i.to_string()),
                        code: tariff.and_then(|t| t.code.clone()),
                        name: tariff.map(|t| texts(&t.name, &langs, fb)).unwrap_or_default(),
                    },
                    seat_category: pr.seat_category_id.map(|id| {
                        let s = seat_names.get(&id);
                        Named {
                            id: Some(id.to_string()),
                            code: s.and_then(|s| s.code.clone()),
                            name: s.map(|s| texts(&s.name, &langs, fb)).unwrap_or_default(),
                        }
                    }),
                    price_level: pr.price_level_id.map(|id| Named {
                        id: Some(id.to_string()),
                        code: levels.get(&id).and_then(|l| l.code.clone()),
                        name: Translated::default(),
                    }),
                    currency: currency.clone(),
                    money: money(pr.amount, digits),
                }
            })
            .collect();
        let cancelled = perf.state.as_ref().is_some_and(State::is_cancelled);
        for pr in plausible_prices() {
            all_amounts.push(pr.amount);
            if !past && !cancelled {
                future_amounts.push(pr.amount);
            }
        }
        if !past && !cancelled && next.is_none() {
            next = Some(NextPerformance {
                id: perf.id.to_string(),
                start: start.map(|s| local(s, tz)),
                availability,
            });
        }
        performances.push(EntryPerformance {
            id: perf.id.to_string(),
            code: perf.code.clone(),
            start: start.map(|s| local(s, tz)),
            end: start.and(perf.end()).map(|e| local(e, tz)),
            duration_minutes: perf.duration_secs.filter(|d| plausible::duration(*d)).map(|d| d / 60),
            site: (perf.site_code.is_some() || !perf.site_name.is_empty())
                .then(|| named(None, perf.site_code.clone(), &perf.site_name, &langs, fb)),
            space: (perf.space_code.is_some() || !perf.space_name.is_empty())
                .then(|| named(None, perf.space_code.clone(), &perf.space_name, &langs, fb)),
            state: perf.state.as_ref().map(|s| s.as_str().to_owned()),
            past,
            on_sale: status.on_sale,
            availability,
            booking_url: if bookable {
                links_for(ctx, &ctx.options.performance_url, p.id, Some(perf.id))
            } else {
                BTreeMap::new()
            },
            prices,
        });
    }
    // A product without performances (a pass, a simple product) has its own availability; a dated event
    // rolls its performances up.
    let rolled = if p.event.is_none() {
        let mut s = ctx.status.product(p, ctx.now);
        if !live {
            s.on_sale = false;
        }
        AvailabilityStatus::from_level(s.level, s.on_sale)
    } else {
        roll_up(perf_statuses.iter().copied())
    };
    let on_sale = rolled != AvailabilityStatus::NotOnSale;
    let amounts = if future_amounts.is_empty() {
        &all_amounts
    } else {
        &future_amounts
    };
    let price_range = match (amounts.iter().min(), amounts.iter().max()) {
        (Some(&lo), Some(&hi)) => Some(PriceRange {
            currency: currency.clone(),
            min: money(lo, digits),
            max: money(hi, digits),
        }),
        _ => None,
    };
    let bookable = on_sale && rolled != AvailabilityStatus::SoldOut;
    let mut links = BTreeMap::new();
    for (name, template) in &ctx.options.links {
        let l = links_for(ctx, template, p.id, None);
        if !l.is_empty() {
            links.insert(name.clone(), l);
        }
    }
    let images = [
        ("small", &p.images.small),
        ("medium", &p.images.medium),
        ("large", &p.images.large),
        ("xlarge", &p.images.xlarge),
        ("logo", &p.images.logo),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
    .collect();
    Entry {
        schema_version: SCHEMA_VERSION,
        external_id: external_id(p.id),
        product_id: p.id.to_string(),
        product_code: p.code.clone(),
        published: live && state_is_published(p.state.as_ref(), &ctx.options.published_states),
        title: texts(&p.name, &langs, fb),
        short_title: texts(&p.short_name, &langs, fb),
        description: texts(&p.description, &langs, fb),
        genre: p
            .event
            .as_ref()
            .map(|e| texts(&e.activity_name, &langs, fb))
            .unwrap_or_default(),
        genre_code: p.event.as_ref().and_then(|e| e.activity_code.clone()),
        season: season
            .map(|s| named(s.id, s.code.clone(), &s.name, &langs, fb))
            .or_else(|| {
                p.season_id.map(|id| Named {
                    id: Some(id.to_string()),
                    code: p.season_code.clone(),
                    name: Translated::default(),
                })
            }),
        images,
        state: p.state.as_ref().map(|s| s.as_str().to_owned()),
        minimum_age: p.event.as_ref().and_then(|e| e.minimum_age),
        on_sale,
        availability: rolled.into(),
        booking_url: if bookable {
            links_for(ctx, &ctx.options.book_url, p.id, None)
        } else {
            BTreeMap::new()
        },
        links,
        price_range,
        next_performance: next,
        performances,
    }
}

/// `[entries]`
#[derive(Debug, Clone, Deserialize)]
pub struct EntriesConfig {
    /// Languages of texts and links (ISO 639-1); empty = `languageList` from getPOSConfig.
    pub languages: Vec<String>,
    /// Part of every content hash: raising it re-sends every entry to every target.
    pub mapping_version: u32,
    /// Ticket shop base URL (`https://<shop host>`), the `{shop}` of the templates; empty = no booking links.
    pub shop_url: String,
    /// Product "Book" link template.
    pub book_url: String,
    /// Performance link template.
    pub performance_url: String,
    /// Customer account link template (empty = none).
    pub account_url: String,
    /// Profile link template (empty = none).
    pub profile_url: String,
    /// Registration link template (empty = none).
    pub register_url: String,
    /// SecuTix product states whose entries are published (`RUNNING`, `SUSPENDED` by default); products in
    /// other states (`PREPARING`: not announced yet) are unpublished on every target and left out of the
    /// public document.
    pub published_states: Vec<String>,
}

impl EntriesConfig {
    /// Checks `[entries]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        let e = self;
        if e.mapping_version == 0 {
            bad("entries.mapping_version", "must be at least 1".into());
        }
        if !e.shop_url.is_empty() && url::Url::parse(&e.shop_url).is_err() {
            bad(
                "entries.shop_url",
                format!("{:?} is not a URL such as https://mosa.shop.secutix.com", e.shop_url),
            );
        }
        if let Some(l) = e
            .languages
            .iter()
            .find(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bad(
                "entries.languages",
                format!("{l:?} is not an ISO 639-1 code such as \"fr\""),
            );
        }
        if e.published_states.is_empty() {
            bad(
                "entries.published_states",
                "is empty: no product would be published; list the states to publish, e.g. [\"RUNNING\", \"SUSPENDED\"]"
                    .into(),
            );
        }
        for s in &e.published_states {
            if let crate::catalog::State::Other(_) = crate::catalog::State::parse(s) {
                bad(
                    "entries.published_states",
                    format!(
                        "{s:?} is not a SecuTix product state; valid: {}",
                        KNOWN_STATES.join(", ")
                    ),
                );
            }
        }
    }

    /// The options of `merge::build_entry`.
    pub fn options(&self) -> crate::merge::EntryOptions {
        let links = [
            ("account", &self.account_url),
            ("profile", &self.profile_url),
            ("register", &self.register_url),
        ]
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(k, t)| (k.to_owned(), t.clone()))
        .collect();
        crate::merge::EntryOptions {
            languages: self.languages.iter().map(|l| l.to_ascii_lowercase()).collect(),
            mapping_version: self.mapping_version,
            shop_url: self.shop_url.clone(),
            book_url: self.book_url.clone(),
            performance_url: self.performance_url.clone(),
            links,
            published_states: self
                .published_states
                .iter()
                .map(|s| crate::catalog::State::parse(s))
                .collect(),
        }
    }
}

/// The SecuTix product states `entries.published_states` may list.
const KNOWN_STATES: &[&str] = &[
    "PREPARING",
    "VALIDATED",
    "RUNNING",
    "SUSPENDED",
    "CANCELED",
    "CLOSED",
    "CANCELED_CLOSED",
];

#[cfg(test)]
mod tests {
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
        let status =
            move |_: &Product, p: &Performance, _: DateTime<Utc>| levels.get(&p.id).copied().unwrap_or_default();
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
}
