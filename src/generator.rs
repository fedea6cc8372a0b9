//! Deterministic SecuTix catalogues: the bench helper, the simulator's data, and test fixtures at any size.
//!
//! A [`Generator`] describes N products × M performances of a fictional venue from a seed and a `now`:
//! French and English names (some English ones null, as SecuTix sends them), HTML descriptions, three seasons
//! (previous, current, next, on the September boundary of the venue's time zone), tariffs per audience
//! sub-category and seat category, price levels, sale periods, `alertRatio`, 14-digit ids, images, and the
//! many fields a real catalogue carries that secutix-sync ignores. Every product is a pure function of
//! `(seed, index)`: nothing is held in memory, so a 10,000 × 25 catalogue streams to a [`Write`] in
//! constant memory, and the same options always give the same bytes.
//!
//! Emitted as:
//! - REST JSON `getCatalogDetailed` ([`Generator::write_rest_json`]): epoch-millisecond starts, RFC 3339
//!   sale periods, `{"translations":[…]}` with null values;
//! - SOAP XML `getCatalogDetailed` ([`Generator::write_soap_xml`]) with the JAX-WS conventions of DESIGN §2
//!   (`<return>` holding the fields, lists as repeated elements, nulls omitted or `xsi:nil`, `xsd:dateTime`
//!   text);
//! - the `getCatalog` XML string ([`Generator::write_catalog_xml`]), and the `getCatalog` responses that carry
//!   it escaped in `catalogData` over SOAP ([`Generator::write_get_catalog_soap`]) and as a JSON string over
//!   REST ([`Generator::write_get_catalog_rest`]).
//!
//! [`Generator::collect`] gives the same catalogue as a domain value, exactly as the parsers stream it into a
//! [`CollectSink`]: the tests check that all formats parse to it.

use std::io::{self, Write};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::catalog::{
    AudienceSubCategory, Event, Id, Images, Performance, PosConfig, Price, PriceLevel, Product, ProductFamily,
    SalePeriod, Season, SeatCategory, State, Translated,
};
use crate::secutix::parse::CollectSink;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Number of products.
    pub products: usize,
    /// Performances (dates) of each product.
    pub performances_per_product: usize,
    /// Same seed, same catalogue (and same bytes).
    pub seed: u64,
    /// Dates are laid out around this instant: past and future performances, open and future sales.
    pub now: DateTime<Utc>,
    /// The venue's time zone: performances start at 20:00 (15:00 on Sundays) local time.
    pub time_zone: chrono_tz::Tz,
}

impl GeneratorOptions {
    /// `products` × `performances_per_product` with `seed`, around `now`, in Europe/Paris.
    pub fn new(products: usize, performances_per_product: usize, seed: u64, now: DateTime<Utc>) -> Self {
        Self {
            products,
            performances_per_product,
            seed,
            now,
            time_zone: chrono_tz::Europe::Paris,
        }
    }
}

impl Default for GeneratorOptions {
    /// A small venue (24 products × 6 performances) around the current time.
    fn default() -> Self {
        Self::new(24, 6, 1, Utc::now())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64: stable across versions of any crate)
// ---------------------------------------------------------------------------------------------------------

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of `(seed, a, b)`: the simulator draws its availability changes from it.
pub fn hash3(seed: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(a ^ mix(b)))
}

/// A small deterministic random stream.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Self {
        Rng(hash3(seed, stream, index))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------------------
// The venue's vocabulary
// ---------------------------------------------------------------------------------------------------------

/// A genre: SecuTix activity code, type, names, base price (thousandths), and whether children's tariffs apply.
struct Genre {
    code: &'static str,
    activity_type: &'static str,
    fr: &'static str,
    en: &'static str,
    base_price: i64,
    family: bool,
}

const GENRES: &[Genre] = &[
    Genre {
        code: "TH",
        activity_type: "LIVE_SPECT",
        fr: "Théâtre",
        en: "Theatre",
        base_price: 32_000,
        family: false,
    },
    Genre {
        code: "DA",
        activity_type: "LIVE_SPECT",
        fr: "Danse",
        en: "Dance",
        base_price: 30_000,
        family: false,
    },
    Genre {
        code: "CO",
        activity_type: "CONCERT",
        fr: "Concert classique",
        en: "Classical concert",
        base_price: 28_000,
        family: false,
    },
    Genre {
        code: "JZ",
        activity_type: "CONCERT",
        fr: "Jazz",
        en: "Jazz",
        base_price: 24_000,
        family: false,
    },
    Genre {
        code: "OP",
        activity_type: "LIVE_SPECT",
        fr: "Opéra",
        en: "Opera",
        base_price: 65_000,
        family: false,
    },
    Genre {
        code: "CR",
        activity_type: "LIVE_SPECT",
        fr: "Cirque",
        en: "Circus",
        base_price: 25_000,
        family: true,
    },
    Genre {
        code: "JP",
        activity_type: "LIVE_SPECT",
        fr: "Jeune public",
        en: "Young audiences",
        base_price: 12_000,
        family: true,
    },
    Genre {
        code: "CI",
        activity_type: "OTHER",
        fr: "Cinéma",
        en: "Cinema",
        base_price: 9_000,
        family: false,
    },
    Genre {
        code: "CF",
        activity_type: "OTHER",
        fr: "Conférence",
        en: "Talk",
        base_price: 5_000,
        family: false,
    },
];

/// A hall: code, names, capacity (the simulator's quota), numbered seat categories.
struct Space {
    code: &'static str,
    fr: &'static str,
    en: &'static str,
    capacity: u32,
    seat_categories: usize,
}

const SPACES: &[Space] = &[
    Space {
        code: "GS",
        fr: "Grande salle",
        en: "Main hall",
        capacity: 900,
        seat_categories: 3,
    },
    Space {
        code: "PS",
        fr: "Petite salle",
        en: "Small hall",
        capacity: 320,
        seat_categories: 2,
    },
    Space {
        code: "STU",
        fr: "Studio",
        en: "Studio",
        capacity: 120,
        seat_categories: 0,
    },
];

const SITE_CODE: &str = "THV";
const SITE_FR: &str = "Théâtre de la Ville";

const TITLE_HEADS: &[(&str, &str)] = &[
    ("La Nuit", "The Night"),
    ("Le Jardin", "The Garden"),
    ("Les Vagues", "The Waves"),
    ("La Cerisaie", "The Cherry Orchard"),
    ("Le Songe", "The Dream"),
    ("Les Bonnes", "The Maids"),
    ("L'Oiseau de feu", "The Firebird"),
    ("La Tempête", "The Tempest"),
    ("Roméo & Juliette", "Romeo & Juliet"),
    ("Le Voyage", "The Journey"),
    ("Les Étoiles", "The Stars"),
    ("La Mouette", "The Seagull"),
    ("Le Silence", "The Silence"),
    ("Les Fourberies", "The Tricks"),
    ("Le Sacre", "The Rite"),
    ("Les Saisons", "The Seasons"),
];

const TITLE_TAILS: &[(&str, &str)] = &[
    ("", ""),
    (" d'hiver", " of Winter"),
    (" des rois", " of Kings"),
    (" en mer", " at Sea"),
    (" sans fin", " Without End"),
    (" de Scapin", " of Scapin"),
    (" du printemps", " of Spring"),
    (" à l'aube", " at Dawn"),
    (" <et après>", " <and after>"),
];

const SENTENCES_FR: &[&str] = &[
    "Une création qui mêle texte, musique et vidéo.",
    "Mise en scène par une compagnie en résidence.",
    "Un classique relu avec humour et tendresse.",
    "Dès 8 ans, en famille.",
    "Rencontre avec l'équipe artistique à l'issue de la représentation.",
    "Surtitré en anglais.",
    "Durée : environ 1 h 30, sans entracte.",
];

const SENTENCES_EN: &[&str] = &[
    "A new work mixing text, music and video.",
    "Staged by a company in residence.",
    "A classic revisited with humour and tenderness.",
    "From age 8, for the whole family.",
    "Meet the artists after the show.",
    "English surtitles.",
    "Running time about 1 h 30, no interval.",
];

/// A tariff (audience sub-category).
struct Tariff {
    code: &'static str,
    fr: &'static str,
    en: &'static str,
    /// `audienceCategoryKind`.
    kind: &'static str,
    /// Share of the full price, percent.
    share: i64,
    /// Offered for family shows only.
    children: bool,
}

const TARIFFS: &[Tariff] = &[
    Tariff {
        code: "ADU",
        fr: "Plein tarif",
        en: "Full price",
        kind: "FULL",
        share: 100,
        children: false,
    },
    Tariff {
        code: "J26",
        fr: "Moins de 26 ans",
        en: "Under 26",
        kind: "REDUCED",
        share: 50,
        children: false,
    },
    Tariff {
        code: "SEN",
        fr: "Senior",
        en: "Senior",
        kind: "REDUCED",
        share: 85,
        children: false,
    },
    Tariff {
        code: "ENF",
        fr: "Enfant",
        en: "Child",
        kind: "REDUCED",
        share: 40,
        children: true,
    },
];

/// An audience category holding tariffs (positions in [`TARIFFS`]).
struct AudienceCategory {
    code: &'static str,
    fr: &'static str,
    en: &'static str,
    main: &'static str,
    secondary: &'static str,
    tariffs: &'static [usize],
}

const AUDIENCE_CATEGORIES: &[AudienceCategory] = &[
    AudienceCategory {
        code: "PLEIN",
        fr: "Plein tarif",
        en: "Full price",
        main: "OCCASIONAL",
        secondary: "INDIVIDUAL",
        tariffs: &[0],
    },
    AudienceCategory {
        code: "REDUIT",
        fr: "Tarifs réduits",
        en: "Reduced prices",
        main: "OCCASIONAL",
        secondary: "INDIVIDUAL",
        tariffs: &[1, 2, 3],
    },
];

const SEAT_CATEGORY_NAMES: &[(&str, &str)] = &[
    ("Catégorie 1", "Category 1"),
    ("Catégorie 2", "Category 2"),
    ("Catégorie 3", "Category 3"),
];
const SEAT_CATEGORY_SHARE: &[i64] = &[100, 75, 50];

const SALES_CHANNEL_ID: Id = 1001;
const SALES_CHANNEL_CODE: &str = "INTERNET";
const ALERT_RATIOS: &[f64] = &[20.0, 20.0, 15.0, 10.0];

// ---------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------

/// A JSON object from `"key": value` pairs, one insert per pair (`json!` recurses once per token and runs
/// out of recursion on objects this large).
macro_rules! obj {
    ($($k:literal : $v:expr),* $(,)?) => {{
        let mut m = Map::new();
        $( m.insert($k.to_owned(), json!($v)); )*
        Value::Object(m)
    }};
}

fn empty() -> Value {
    Value::Array(Vec::new())
}

/// How dates are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// REST JSON: epoch milliseconds, sale periods as RFC 3339 with an offset.
    Json,
    /// XML: `xsd:dateTime` with the venue's offset everywhere.
    Xml,
}

/// The essentials of one product, cheap to compute: ids, season, hall, dates, sale period, capacity.
/// The simulator builds its availability from these.
#[derive(Debug, Clone)]
pub struct ProductPlan {
    /// Position in the catalogue (0..products).
    pub index: usize,
    /// Product id (14 digits).
    pub id: Id,
    /// Season position (0 previous, 1 current, 2 next).
    pub season: u32,
    /// Product state.
    pub state: State,
    /// `alertRatio` in percent.
    pub alert_ratio: f64,
    /// Seats per performance (the hall's capacity).
    pub capacity: u32,
    /// Opening of the product's internet sale.
    pub sale_start: DateTime<Utc>,
    /// End of the product's internet sale.
    pub sale_end: DateTime<Utc>,
    /// Performances, by start.
    pub performances: Vec<PlannedPerformance>,
    genre: usize,
    space: usize,
}

/// The essentials of one performance.
#[derive(Debug, Clone)]
pub struct PlannedPerformance {
    /// Performance id (14 digits).
    pub id: Id,
    /// Start.
    pub start: DateTime<Utc>,
    /// State as sent (mostly null, some `RUNNING`, a few `CANCELED`).
    pub state: Option<State>,
    /// End of the performance's own internet sale period, when it has one (two hours before the start).
    pub sale_end: Option<DateTime<Utc>>,
}

/// A season's frame.
#[derive(Debug, Clone)]
struct SeasonPlan {
    id: Id,
    code: String,
    state: State,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    label: String,
}

/// Deterministic catalogue of a fictional venue (see the module docs).
#[derive(Debug, Clone)]
pub struct Generator {
    opts: GeneratorOptions,
    seasons: Vec<SeasonPlan>,
}

/// Stream numbers of the random draws: independent so that adding a field never moves the others.
const STREAM_PLAN: u64 = 1;
const STREAM_CONTENT: u64 = 2;

impl Generator {
    /// A generator for `opts`.
    pub fn new(opts: GeneratorOptions) -> Self {
        let tz = opts.time_zone;
        let local_now = opts.now.with_timezone(&tz);
        let first_year = if local_now.month() >= 9 {
            local_now.year()
        } else {
            local_now.year() - 1
        } - 1;
        let seasons = (0..3)
            .map(|k| {
                let y = first_year + k;
                let start = local_midnight(tz, y, 9, 1);
                let end = local_midnight(tz, y + 1, 9, 1) - chrono::Duration::minutes(1);
                SeasonPlan {
                    id: 10_228_000_000_000 + (opts.seed % 1000) as i64 * 1000 + i64::from(k),
                    code: format!("S{:02}{:02}", y % 100, (y + 1) % 100),
                    state: if k == 0 { State::Closed } else { State::Running },
                    start,
                    end,
                    label: format!("{y}-{}", y + 1),
                }
            })
            .collect();
        Self { opts, seasons }
    }

    /// The options.
    pub fn options(&self) -> &GeneratorOptions {
        &self.opts
    }

    /// The point of sale id of the venue (`posId`, the `pointOfSalesId` of availability calls).
    pub fn pos_id(&self) -> Id {
        100_000_000 + (self.opts.seed % 900_000_000) as i64
    }

    /// The `getPOSConfig` result (`{"statusCode":"success","posConfigData":{…}}`) as a JSON value.
    pub fn pos_config_result(&self) -> Value {
        json!({
            "statusCode": "success", "requestId": null, "statusDetail": null,
            "posConfigData": {
                "posId": self.pos_id(), "posCode": "WEB", "posNumber": 1, "posType": "INTERNET",
                "institCode": "SIMU", "organizationCode": "THV",
                "organizationName": {"translations": [{"locale": "fr", "value": SITE_FR}]},
                "organizationTimeZone": self.opts.time_zone.name(),
                "currencyCode": "EUR", "currencySymbol": "€",
                "catalogCurrencies": [{"currencyCode": "EUR", "fractionDigit": 2, "symbol": "€", "minAmount": 0}],
                "mainLanguage": "fr", "languageList": "fr,en",
                "salesChannelCode": SALES_CHANNEL_CODE, "salesChannelId": SALES_CHANNEL_ID,
                "seatSelectionMode": "BEST_AVAILABLE", "guestLoginAvailable": true, "testInstitution": true,
            }
        })
    }

    /// The POS configuration as secutix-sync keeps it.
    pub fn pos_config(&self) -> PosConfig {
        PosConfig {
            pos_id: Some(self.pos_id()),
            time_zone: Some(self.opts.time_zone.name().to_owned()),
            currency: Some("EUR".into()),
            fraction_digits: Some(2),
            main_language: Some("fr".into()),
            languages: vec!["fr".into(), "en".into()],
        }
    }

    /// The plan of product `index` (ids, season, dates, capacity).
    pub fn plan(&self, index: usize) -> ProductPlan {
        let o = &self.opts;
        let mut r = Rng::new(o.seed, STREAM_PLAN, index as u64);
        let season = match r.below(100) {
            0..8 => 0,
            8..80 => 1,
            _ => 2,
        };
        let genre = r.below(GENRES.len() as u64) as usize;
        let space = if GENRES[genre].code == "OP" {
            0
        } else {
            r.below(SPACES.len() as u64) as usize
        };
        let s = &self.seasons[season as usize];
        let perfs = o.performances_per_product;
        let gap_days = 1 + r.below(3) as i64;
        let span = gap_days * perfs.saturating_sub(1) as i64;
        let season_days = (s.end - s.start).num_days();
        let first_day = r.below((season_days - span - 1).max(1) as u64) as i64;
        let first = s.start.with_timezone(&o.time_zone).date_naive() + chrono::Duration::days(first_day);
        let id = 10_228_300_000_000 + index as i64 * 7919 + r.below(7919) as i64;
        let mut performances = Vec::with_capacity(perfs);
        for j in 0..perfs {
            let day = first + chrono::Duration::days(gap_days * j as i64);
            let hour = if day.weekday() == chrono::Weekday::Sun { 15 } else { 20 };
            let start = local_time(o.time_zone, day, hour);
            let n = (index * perfs + j) as i64;
            let pid = 10_228_400_000_000 + n * 13 + (hash3(o.seed, index as u64, j as u64) % 13) as i64;
            let state = match hash3(o.seed, pid as u64, 7) % 100 {
                0..2 => Some(State::Canceled),
                2..30 => Some(State::Running),
                _ => None,
            };
            let sale_end = (hash3(o.seed, pid as u64, 8) % 100 < 20).then(|| start - chrono::Duration::hours(2));
            performances.push(PlannedPerformance {
                id: pid,
                start,
                state,
                sale_end,
            });
        }
        let first_start = performances.first().map_or(s.start, |p| p.start);
        let last_start = performances.last().map_or(s.end, |p| p.start);
        let sale_start = (first_start - chrono::Duration::days(90)).min(s.start - chrono::Duration::days(60));
        ProductPlan {
            index,
            id,
            season,
            state: if r.chance(5) { State::Suspended } else { State::Running },
            alert_ratio: *r.pick(ALERT_RATIOS),
            capacity: SPACES[space].capacity,
            sale_start,
            sale_end: last_start,
            performances,
            genre,
            space,
        }
    }

    /// Product ids and plans of every product, in catalogue order.
    pub fn plans(&self) -> impl Iterator<Item = ProductPlan> + '_ {
        (0..self.opts.products).map(|i| self.plan(i))
    }

    /// Ids of season `season`: the base of its audience category ids (`base + 900 + k`), its tariff
    /// (sub-category) ids and its price level ids.
    fn season_ids(&self, season: u32) -> (Id, Vec<Id>, Vec<Id>) {
        let base = 306_159_000 + i64::from(season) * 1000;
        let subs = (0..TARIFFS.len() as i64).map(|k| base + 78 + k).collect();
        (
            base,
            subs,
            vec![
                10_228_500_000_000 + i64::from(season) * 10 + 1,
                10_228_500_000_000 + i64::from(season) * 10 + 2,
            ],
        )
    }

    /// Season `k` as secutix-sync keeps it.
    fn season_domain(&self, k: u32) -> Season {
        let s = &self.seasons[k as usize];
        let (base, subs, levels) = self.season_ids(k);
        let mut audience_sub_categories = Vec::new();
        for (c, cat) in AUDIENCE_CATEGORIES.iter().enumerate() {
            let (code, fr, en) = (&cat.code, &cat.fr, &cat.en);
            for &t in cat.tariffs {
                let Tariff {
                    code: tcode,
                    fr: tfr,
                    en: ten,
                    kind,
                    ..
                } = TARIFFS[t];
                audience_sub_categories.push(AudienceSubCategory {
                    id: subs[t],
                    code: Some(tcode.into()),
                    name: Translated::from_pairs([("fr", tfr), ("en", ten)]),
                    kind: Some(kind.into()),
                    category_id: Some(base + 900 + c as i64),
                    category_code: Some((*code).into()),
                    category_name: Translated::from_pairs([("fr", *fr), ("en", *en)]),
                });
            }
        }
        Season {
            id: Some(s.id),
            code: Some(s.code.clone()),
            state: Some(s.state.clone()),
            start: Some(s.start),
            end: Some(s.end),
            name: Translated::from_pairs([
                ("fr", format!("Saison {}", s.label).as_str()),
                ("en", format!("Season {}", s.label).as_str()),
            ]),
            audience_sub_categories,
            price_levels: vec![
                PriceLevel {
                    id: levels[0],
                    code: Some("STD".into()),
                    main_category: Some("OCCASIONAL".into()),
                },
                PriceLevel {
                    id: levels[1],
                    code: Some("ABO".into()),
                    main_category: Some("SUBSCRIBER".into()),
                },
            ],
        }
    }

    /// The season's own fields (without products) on the wire.
    fn season_wire(&self, k: u32, style: Style) -> Value {
        let s = &self.seasons[k as usize];
        let (base, subs, levels) = self.season_ids(k);
        let tz = self.opts.time_zone;
        let cats: Vec<Value> = AUDIENCE_CATEGORIES
            .iter()
            .enumerate()
            .map(|(c, cat)| {
                let AudienceCategory {
                    code,
                    fr,
                    en,
                    main,
                    secondary,
                    tariffs,
                } = cat;
                json!({
                    "id": base + 900 + c as i64, "code": code, "mainCategory": main, "secondaryCategory": secondary,
                    "externalName": translations(&[("fr", Some(fr)), ("en", Some(en))]),
                    "audienceSubCategories": tariffs.iter().map(|&t| {
                        let Tariff { code: tcode, fr: tfr, en: ten, kind, .. } = TARIFFS[t];
                        json!({"id": subs[t], "code": tcode, "audienceCategoryKind": kind,
                               "externalName": translations(&[("fr", Some(tfr)), ("en", Some(ten))]),
                               "externalDescription": translations(&[("fr", None)]),
                               "requiredAudienceSubCategoryIds": [], "crossSeatCategory": false})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "id": s.id, "code": s.code, "state": s.state.as_str(),
            "start": date(s.start, style, tz, false), "end": date(s.end, style, tz, false),
            "externalName": translations(&[("fr", Some(&format!("Saison {}", s.label))), ("en", Some(&format!("Season {}", s.label)))]),
            "audienceCategories": cats,
            "priceLevels": [
                {"id": levels[0], "code": "STD", "mainCategory": "OCCASIONAL", "reduction": null},
                {"id": levels[1], "code": "ABO", "mainCategory": "SUBSCRIBER", "reduction": 20},
            ],
            "topics": [],
        })
    }

    /// Product `index` as secutix-sync keeps it, and on the wire in `style`.
    fn build(&self, index: usize, style: Style, want_wire: bool) -> (ProductPlan, Product, Value) {
        let plan = self.plan(index);
        let o = &self.opts;
        let tz = o.time_zone;
        let mut r = Rng::new(o.seed, STREAM_CONTENT, index as u64);
        let genre = &GENRES[plan.genre];
        let space = &SPACES[plan.space];
        let (head_fr, head_en) = *r.pick(TITLE_HEADS);
        let (tail_fr, tail_en) = *r.pick(TITLE_TAILS);
        let title_fr = format!("{head_fr}{tail_fr}");
        let title_en = format!("{head_en}{tail_en}");
        let has_en = r.chance(70);
        let code = format!("{}{:05}", genre.code, index % 100_000);
        let short_fr: String = title_fr.chars().take(15).collect();
        let short_en: String = title_en.chars().take(15).collect();
        let s1 = r.below(SENTENCES_FR.len() as u64) as usize;
        let s2 = (s1 + 1 + r.below(SENTENCES_FR.len() as u64 - 1) as usize) % SENTENCES_FR.len();
        let desc_fr = format!(
            "<p><strong>{}</strong> — {}</p>\n<p>{}</p>",
            html_escape(&title_fr),
            SENTENCES_FR[s1],
            SENTENCES_FR[s2]
        );
        let desc_en = format!(
            "<p><strong>{}</strong> — {}</p>\n<p>{}</p>",
            html_escape(&title_en),
            SENTENCES_EN[s1],
            SENTENCES_EN[s2]
        );
        let has_desc = r.chance(90);
        let has_images = r.chance(80);
        let img = |size: &str| format!("https://media.theatre-de-la-ville.example/img/{}-{size}.jpg", plan.id);
        let passculture = r.chance(10);
        let minimum_age = if genre.family {
            None
        } else {
            [None, None, Some(12), Some(16)][r.below(4) as usize]
        };
        let language = if genre.code == "CI" || genre.code == "OP" {
            Some("fr")
        } else {
            None
        };
        let (_, subs, levels) = self.season_ids(plan.season);
        let tariffs: Vec<usize> = (0..TARIFFS.len())
            .filter(|&t| !TARIFFS[t].children || genre.family)
            .collect();
        let subscriber_prices = r.chance(15);
        let duration = if r.chance(80) {
            Some(3600 + 1800 * r.below(4) as i64)
        } else {
            None
        };
        let seat_cat_base = 112_908_000 + i64::from(plan.season) * 100;

        let seat_categories: Vec<SeatCategory> = (0..space.seat_categories)
            .map(|c| SeatCategory {
                id: seat_cat_base + plan.space as i64 * 10 + c as i64,
                code: Some(format!("CAT{}", c + 1)),
                name: Translated::from_pairs([("fr", SEAT_CATEGORY_NAMES[c].0), ("en", SEAT_CATEGORY_NAMES[c].1)]),
                rank: Some(c as i64 + 1),
            })
            .collect();
        let round = |v: i64| (v + 250) / 500 * 500;
        let mut prices = Vec::new();
        let cells: Vec<(Option<Id>, i64, i64)> = if seat_categories.is_empty() {
            vec![(None, seat_cat_base + 99, 100)]
        } else {
            seat_categories
                .iter()
                .enumerate()
                .map(|(c, s)| (Some(s.id), s.id + 1_000_000, SEAT_CATEGORY_SHARE[c]))
                .collect()
        };
        for &(seat, institution_seat, share) in &cells {
            for &t in &tariffs {
                let amount = round(genre.base_price * share / 100 * TARIFFS[t].share / 100);
                prices.push(Price {
                    seat_category_id: seat,
                    institution_seat_category_id: Some(institution_seat),
                    audience_sub_category_id: Some(subs[t]),
                    price_level_id: subscriber_prices.then_some(levels[0]),
                    amount,
                });
                if subscriber_prices && t == 0 {
                    prices.push(Price {
                        seat_category_id: seat,
                        institution_seat_category_id: Some(institution_seat),
                        audience_sub_category_id: Some(subs[t]),
                        price_level_id: Some(levels[1]),
                        amount: round(amount * 80 / 100),
                    });
                }
            }
        }

        let name = tr_domain(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]);
        let space_name = Translated::from_pairs([("fr", space.fr), ("en", space.en)]);
        let site_name = Translated::from_pairs([("fr", SITE_FR)]);
        let mut performances = Vec::with_capacity(plan.performances.len());
        let mut perf_wire = Vec::new();
        for (j, planned) in plan.performances.iter().enumerate() {
            let (pid, start, state) = (&planned.id, &planned.start, &planned.state);
            let own_sale = planned.sale_end.map(|end| SalePeriod {
                start: Some(plan.sale_start),
                end: Some(end),
                sales_channel_code: Some(SALES_CHANNEL_CODE.into()),
                sales_channel_id: Some(SALES_CHANNEL_ID),
                sale_possible: Some(true),
            });
            let perf = Performance {
                id: *pid,
                code: Some(format!("{code}-{:02}", j + 1)),
                start: Some(*start),
                duration_secs: duration,
                state: state.clone(),
                name: name.clone(),
                description: Translated::default(),
                space_code: Some(space.code.into()),
                space_name: space_name.clone(),
                site_code: Some(SITE_CODE.into()),
                site_name: site_name.clone(),
                seat_categories: seat_categories.clone(),
                prices: prices.clone(),
                sale_periods: own_sale.into_iter().collect(),
                retained: false,
            };
            if want_wire {
                let seat_categories_wire: Vec<Value> = perf
                    .seat_categories
                    .iter()
                    .map(|s| {
                        obj! {
                            "id": s.id, "code": s.code, "rank": s.rank, "institutionCategoryId": s.id + 1_000_000,
                            "externalName": translations(&[
                                ("fr", s.name.0.get("fr").map(String::as_str)),
                                ("en", s.name.0.get("en").map(String::as_str)),
                            ]),
                        }
                    })
                    .collect();
                let prices_wire: Vec<Value> = perf
                    .prices
                    .iter()
                    .map(|p| {
                        obj! {
                            "institutionSeatCatId": p.institution_seat_category_id, "seatCatId": p.seat_category_id,
                            "audSubCatId": p.audience_sub_category_id, "amount": p.amount, "minQty": Value::Null,
                            "maxQty": Value::Null, "priceLevelId": p.price_level_id, "chargesAmounts": Value::Null,
                        }
                    })
                    .collect();
                let numbered = space.seat_categories > 0;
                perf_wire.push(obj! {
                    "id": perf.id, "code": perf.code, "physicalConfigurationId": Value::Null,
                    "logicalConfigurationId": 466_680_000 + plan.space as i64, "saleConfigurationId": Value::Null,
                    "rateTypeId": 306_159_280, "rateTypeCode": Value::Null, "ratesTableId": 858_268_731,
                    "chargesTableId": Value::Null,
                    "start": date(*start, style, tz, false),
                    "duration": duration, "spaceId": 1_000 + plan.space as i64, "spaceCode": space.code,
                    "siteCode": SITE_CODE, "kind": Value::Null, "kindExternalName": Value::Null,
                    "seatSelectionMode": if numbered { "BEST_AVAILABLE" } else { "NOT_NUMBERED" },
                    "breaksQuantity": Value::Null, "state": perf.state.as_ref().map(State::as_str),
                    "image": Value::Null, "forceNominativeTickets": Value::Null, "titling": Value::Null,
                    "blockComparisonEnabled": false, "numbered": numbered, "alwaysAllowIsolatedSeats": false,
                    "externalName": translations(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]),
                    "internalName": translations(&[("fr", Some(&title_fr))]),
                    "externalShortName": translations(&[("fr", Some(&short_fr))]),
                    "nameAddOn": translations(&[("fr", None)]),
                    "spaceExternalName": translations(&[("fr", Some(space.fr)), ("en", Some(space.en))]),
                    "siteExternalName": translations(&[("fr", Some(SITE_FR)), ("en", None)]),
                    "location": Value::Null, "match": Value::Null, "eventExternalName": Value::Null,
                    "externalDescription": translations(&[("fr", None)]),
                    "internalDescription": translations(&[("fr", None)]),
                    "saleCloseExceptions": empty(),
                    "seatCategories": seat_categories_wire,
                    "prices": prices_wire,
                    "charges": empty(), "comfortVariableValues": empty(), "performanceType": Value::Null,
                    "visitLanguageCode": Value::Null,
                    "maxSeatsPerOrder": numbered.then_some(10),
                    "itemIds": [perf.id + 606],
                    "performanceSocialNetworkLinks": empty(),
                    "salePeriods": perf.sale_periods.iter().map(|s| sale_period_wire(s, style, tz)).collect::<Vec<_>>(),
                });
            }
            performances.push(perf);
        }

        let product_sale = SalePeriod {
            start: Some(plan.sale_start),
            end: Some(plan.sale_end),
            sales_channel_code: Some(SALES_CHANNEL_CODE.into()),
            sales_channel_id: Some(SALES_CHANNEL_ID),
            sale_possible: Some(true),
        };
        let product = Product {
            id: plan.id,
            code: Some(code.clone()),
            season_id: None,
            season_code: None,
            family: Some(ProductFamily::SingleEntry),
            family_sub_type: Some("SIMPLE_TICKET".into()),
            state: Some(plan.state.clone()),
            name: name.clone(),
            short_name: tr_domain(&[("fr", Some(&short_fr)), ("en", has_en.then_some(short_en.as_str()))]),
            description: if has_desc {
                tr_domain(&[("fr", Some(&desc_fr)), ("en", has_en.then_some(desc_en.as_str()))])
            } else {
                Translated::default()
            },
            images: if has_images {
                Images {
                    small: Some(img("s")),
                    medium: Some(img("m")),
                    large: Some(img("l")),
                    xlarge: None,
                    logo: None,
                }
            } else {
                Images::default()
            },
            detail_url: None,
            sale_periods: vec![product_sale.clone()],
            sub_topic_codes: if passculture {
                vec!["PASSCULTURE".into()]
            } else {
                Vec::new()
            },
            event: Some(Event {
                activity_id: Some(10_228_317_615_200 + plan.genre as i64),
                activity_code: Some(genre.code.into()),
                activity_type: Some(genre.activity_type.into()),
                activity_name: Translated::from_pairs([("fr", genre.fr), ("en", genre.en)]),
                alert_ratio: Some(plan.alert_ratio),
                minimum_age,
                language: language.map(str::to_owned),
                performances,
            }),
        };
        if !want_wire {
            return (plan, product, Value::Null);
        }
        let event = obj! {
            "activityId": product.event.as_ref().and_then(|e| e.activity_id), "activityCode": genre.code,
            "activityType": genre.activity_type, "timeTolerance": Value::Null, "minimumAge": minimum_age,
            "language": language,
            "nameAddOn": translations(&[("fr", None)]),
            "activityExternalName": translations(&[("fr", Some(genre.fr)), ("en", Some(genre.en))]),
            "competitionTypeId": Value::Null, "alertRatio": plan.alert_ratio,
            "performances": perf_wire,
        };
        let description = if has_desc {
            translations(&[("fr", Some(&desc_fr)), ("en", has_en.then_some(desc_en.as_str()))])
        } else {
            translations(&[("fr", None), ("en", None)])
        };
        let sub_topics = if passculture {
            json!([{"subTopicCode": "PASSCULTURE", "subTopicId": 77}])
        } else {
            empty()
        };
        let wire = obj! {
            "id": product.id, "prevSeasonProductId": Value::Null, "code": code,
            "productFamilyType": "SINGLE_ENTRY", "productFamilySubType": "SIMPLE_TICKET", "audienceType": "ALL",
            "state": plan.state.as_str(),
            "logo": Value::Null,
            "smallImageUrl": product.images.small, "mediumImageUrl": product.images.medium,
            "largeImageUrl": product.images.large, "detailURL": Value::Null,
            "vatCodeId": 15_251, "ticketModelId": 466_679_292, "chargesTableId": Value::Null,
            "partnerContactNumber": Value::Null, "productTypeId": Value::Null, "allowQuestionnaire": false,
            "questionnaireId": Value::Null,
            "salePeriods": [sale_period_wire(&product_sale, style, tz)],
            "saleCloseExceptions": empty(),
            "externalName": translations(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]),
            "internalName": translations(&[("fr", Some(&title_fr))]),
            "shortName": translations(&[("fr", Some(&short_fr)), ("en", has_en.then_some(short_en.as_str()))]),
            "externalDescription": description,
            "optionAvailabilities": empty(), "crossSellProductLinks": empty(),
            "subTopicLinks": sub_topics,
            "productSocialNetworkLinks": empty(), "comfortVariableValues": empty(), "media": empty(),
            "event": event,
            "service": Value::Null, "goods": Value::Null, "pack": Value::Null, "seasonTicket": Value::Null,
            "transport": Value::Null, "pass": Value::Null, "membership": Value::Null, "hospitality": Value::Null,
            "minQuantity": Value::Null, "maxQuantity": Value::Null, "culturalContact": Value::Null,
            "waitingListAllowed": false, "partnerContactId": Value::Null,
        };
        (plan, product, wire)
    }

    /// Product `index` as secutix-sync keeps it (the parsers' output for it).
    pub fn product(&self, index: usize) -> Product {
        self.build(index, Style::Json, false).1
    }

    /// Season `k` (0 previous, 1 current, 2 next) as secutix-sync keeps it.
    pub fn season(&self, k: u32) -> Season {
        self.season_domain(k)
    }

    /// The whole catalogue as a domain value, in the order and shape the parsers stream it into a
    /// [`CollectSink`]: products season by season, each season after its products. Holds everything in
    /// memory: for tests and small catalogues.
    pub fn collect(&self) -> CollectSink {
        let mut sink = CollectSink::default();
        for k in 0..3u32 {
            for i in self.indices_of(k) {
                sink.products.push((Some(k), self.product(i)));
            }
            sink.seasons.push((k, self.season_domain(k)));
        }
        sink
    }

    fn indices_of(&self, season: u32) -> impl Iterator<Item = usize> + '_ {
        (0..self.opts.products).filter(move |&i| self.plan(i).season == season)
    }

    /// The REST JSON `getCatalogDetailed` response. `request_id` is echoed in `requestId` (the re-call
    /// after `in_progress`).
    pub fn write_rest_json(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        write!(
            w,
            "{{\"statusCode\":\"success\",\"requestId\":{},\"statusDetail\":null,\"catalogData\":{{\"seasons\":[",
            json_opt(request_id)
        )?;
        for k in 0..3u32 {
            if k > 0 {
                w.write_all(b",")?;
            }
            let fields = self.season_wire(k, Style::Json);
            let Value::Object(map) = fields else {
                unreachable!("season_wire builds an object")
            };
            w.write_all(b"{")?;
            for (n, (key, v)) in map.iter().enumerate() {
                if n > 0 {
                    w.write_all(b",")?;
                }
                serde_json::to_writer(&mut w, key)?;
                w.write_all(b":")?;
                serde_json::to_writer(&mut w, v)?;
            }
            w.write_all(b",\"products\":[")?;
            for (n, i) in self.indices_of(k).enumerate() {
                if n > 0 {
                    w.write_all(b",")?;
                }
                serde_json::to_writer(&mut w, &self.build(i, Style::Json, true).2)?;
            }
            w.write_all(b"]}")?;
        }
        w.write_all(b"]}}")?;
        w.flush()
    }

    fn write_seasons_xml(&self, w: &mut dyn Write) -> io::Result<()> {
        for k in 0..3u32 {
            w.write_all(b"<seasons>")?;
            if let Value::Object(map) = self.season_wire(k, Style::Xml) {
                for (key, v) in &map {
                    write_jaxws(w, key, v)?;
                }
            }
            for i in self.indices_of(k) {
                write_jaxws(w, "products", &self.build(i, Style::Xml, true).2)?;
            }
            w.write_all(b"</seasons>")?;
        }
        Ok(())
    }

    /// The SOAP `getCatalogDetailed` response (JAX-WS document/literal).
    pub fn write_soap_xml(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(soap_open("getCatalogDetailed", "CatalogService").as_bytes())?;
        w.write_all(b"<statusCode>success</statusCode>")?;
        if let Some(r) = request_id {
            write!(w, "<requestId>{r}</requestId>")?;
        }
        w.write_all(b"<catalogData>")?;
        self.write_seasons_xml(&mut w)?;
        w.write_all(b"</catalogData>")?;
        w.write_all(soap_close("getCatalogDetailed").as_bytes())?;
        w.flush()
    }

    /// The catalogue XML document that `getCatalog` returns as a string (same element names as the DTOs).
    pub fn write_catalog_xml(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><catalog xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
        )?;
        self.write_seasons_xml(&mut w)?;
        w.write_all(b"</catalog>")?;
        w.flush()
    }

    /// The SOAP `getCatalog` response: the catalogue XML escaped as the text of `catalogData`.
    pub fn write_get_catalog_soap(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(soap_open("getCatalog", "CatalogService").as_bytes())?;
        w.write_all(b"<statusCode>success</statusCode>")?;
        if let Some(r) = request_id {
            write!(w, "<requestId>{r}</requestId>")?;
        }
        w.write_all(b"<catalogData>")?;
        {
            let mut esc = XmlTextWriter(&mut w);
            self.write_catalog_xml(&mut esc)?;
        }
        w.write_all(b"</catalogData>")?;
        w.write_all(soap_close("getCatalog").as_bytes())?;
        w.flush()
    }

    /// The REST `getCatalog` response: the catalogue XML as a JSON string in `catalogData`.
    pub fn write_get_catalog_rest(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        write!(
            w,
            "{{\"statusCode\":\"success\",\"requestId\":{},\"statusDetail\":null,\"catalogData\":\"",
            json_opt(request_id)
        )?;
        {
            let mut esc = JsonStringWriter(&mut w);
            self.write_catalog_xml(&mut esc)?;
        }
        w.write_all(b"\"}")?;
        w.flush()
    }
}

fn json_opt(v: Option<i64>) -> String {
    v.map_or_else(|| "null".to_owned(), |r| r.to_string())
}

fn local_midnight(tz: chrono_tz::Tz, y: i32, m: u32, d: u32) -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    local_time(tz, day, 0)
}

fn local_time(tz: chrono_tz::Tz, day: NaiveDate, hour: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())
        .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
}

/// A date on the wire: epoch ms in JSON (or RFC 3339 with offset when `iso`), `xsd:dateTime` in XML.
fn date(t: DateTime<Utc>, style: Style, tz: chrono_tz::Tz, iso: bool) -> Value {
    match (style, iso) {
        (Style::Json, false) => Value::from(t.timestamp_millis()),
        _ => Value::from(t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
    }
}

fn sale_period_wire(s: &SalePeriod, style: Style, tz: chrono_tz::Tz) -> Value {
    json!({
        "start": s.start.map(|t| date(t, style, tz, true)), "end": s.end.map(|t| date(t, style, tz, true)),
        "salesChannelId": s.sales_channel_id, "salesChannelCode": s.sales_channel_code,
        "reservationPossible": false, "salePossible": s.sale_possible, "quotationPossible": false,
        "postingResalePossible": false, "type": "STANDARD", "audienceSubCatIds": [], "seatCategoryIds": [],
    })
}

/// `{"translations":[{"locale","value"}]}` with null values kept, as SecuTix sends them.
fn translations(pairs: &[(&str, Option<&str>)]) -> Value {
    json!({"translations": pairs.iter().map(|(l, v)| json!({"locale": l, "value": v})).collect::<Vec<_>>()})
}

/// The domain side of [`translations`]: null values dropped.
fn tr_domain(pairs: &[(&str, Option<&str>)]) -> Translated {
    Translated::from_pairs(pairs.iter().filter_map(|(l, v)| Some((*l, (*v)?))))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

// ---------------------------------------------------------------------------------------------------------
// XML and JSON writers
// ---------------------------------------------------------------------------------------------------------

/// Fields written as `xsi:nil="true"` when null (JAX-WS `nillable` elements); other nulls are omitted.
const NIL_FIELDS: &[&str] = &["value", "duration", "seatCatId", "priceLevelId", "state", "minimumAge"];

/// The opening of a JAX-WS SOAP response up to `<return>`.
pub fn soap_open(method: &str, service_class: &str) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
            "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><S:Body>",
            "<ns2:{m}Response xmlns:ns2=\"http://v1_33.{c}.service.secutix.com\"><return>"
        ),
        m = method,
        c = service_class
    )
}

/// The closing of a JAX-WS SOAP response from `</return>`.
pub fn soap_close(method: &str) -> String {
    format!("</return></ns2:{method}Response></S:Body></S:Envelope>")
}

/// A whole SOAP response whose `<return>` holds the fields of `result` (a JSON object).
pub fn soap_response(method: &str, service_class: &str, result: &Value) -> Vec<u8> {
    let mut out = soap_open(method, service_class).into_bytes();
    if let Value::Object(map) = result {
        for (k, v) in map {
            // Writing into a Vec cannot fail.
            let _ = write_jaxws(&mut out, k, v);
        }
    }
    out.extend_from_slice(soap_close(method).as_bytes());
    out
}

/// Writes `v` as the JAX-WS element `name`: objects as children, arrays as the element repeated, null omitted
/// (or `xsi:nil` for the fields of [`NIL_FIELDS`]), scalars as escaped text.
pub fn write_jaxws(w: &mut dyn Write, name: &str, v: &Value) -> io::Result<()> {
    match v {
        Value::Null => {
            if NIL_FIELDS.contains(&name) {
                write!(w, "<{name} xsi:nil=\"true\"/>")?;
            }
        }
        Value::Array(items) => {
            for i in items {
                write_jaxws(w, name, i)?;
            }
        }
        Value::Object(map) => {
            write!(w, "<{name}>")?;
            write_children(w, map)?;
            write!(w, "</{name}>")?;
        }
        Value::String(s) => {
            write!(w, "<{name}>")?;
            w.write_all(quick_xml::escape::escape(s.as_str()).as_bytes())?;
            write!(w, "</{name}>")?;
        }
        other => write!(w, "<{name}>{other}</{name}>")?,
    }
    Ok(())
}

fn write_children(w: &mut dyn Write, map: &Map<String, Value>) -> io::Result<()> {
    for (k, v) in map {
        write_jaxws(w, k, v)?;
    }
    Ok(())
}

/// Escapes what goes through it as XML text (`&`, `<`, `>`).
struct XmlTextWriter<'a>(&'a mut dyn Write);

impl Write for XmlTextWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, b) in buf.iter().enumerate() {
            let rep: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                _ => continue,
            };
            self.0.write_all(&buf[start..i])?;
            self.0.write_all(rep)?;
            start = i + 1;
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Escapes what goes through it as the inside of a JSON string (UTF-8 passes through unchanged).
struct JsonStringWriter<'a>(&'a mut dyn Write);

impl Write for JsonStringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            let esc: Option<String> = match b {
                b'"' => Some("\\\"".into()),
                b'\\' => Some("\\\\".into()),
                b'\n' => Some("\\n".into()),
                b'\r' => Some("\\r".into()),
                b'\t' => Some("\\t".into()),
                0..=0x1f => Some(format!("\\u{b:04x}")),
                _ => None,
            };
            if let Some(e) = esc {
                self.0.write_all(&buf[start..i])?;
                self.0.write_all(e.as_bytes())?;
                start = i + 1;
            }
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Counts the bytes written through it.
#[derive(Debug, Default)]
pub struct CountingWriter<W> {
    /// The writer behind.
    pub inner: W,
    /// Bytes written so far.
    pub count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
