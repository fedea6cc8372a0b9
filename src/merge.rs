//! Building entries: the projection of a stored product into the [`Entry`] a CMS receives (the document's
//! types are [`crate::entry`]'s), its links and the `[entries]` settings.
//!
//! [`build_entry`] projects a stored product (catalogue + the availability statuses computed for `now`) into an
//! [`Entry`] keyed `secutix-<productId>`: texts per configured language (with a fallback language), times in the
//! venue's time zone with their offset, amounts as decimal strings and minor units, "Book" links **only** when the
//! product is on sale and not full, one link per performance, and the account links. [`crate::entry::content_hash`] hashes the
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
mod tests;
