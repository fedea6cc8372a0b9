//! What pass Culture should show for one entry: the offer's fields, its price groups and its dates. Pure
//! functions of the entry, the settings and the time, so they are tested without any HTTP.
//!
//! - name: the title in `language`, at most 90 characters, cut at a word boundary with "…";
//! - description: the HTML reduced to text (paragraphs, line breaks and list items kept as lines, entities
//!   decoded), at most 10,000 characters, cut the same way;
//! - category: `categories[<activity code>]` (else `default_category`) with its extra fields (`showType`…);
//! - location: physical at `venue_id`, or digital with `online_url` for `online_product_codes`;
//! - prices: one *group* per selected tariff (and seat category when the venue has several); a group may
//!   need several pass Culture price categories when its amount differs between dates (`sync.rs` assigns them);
//! - dates: one per future, not cancelled performance × group, open (the quota) when the performance is on
//!   sale and not full, closed (0) otherwise.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::catalog::State;
use crate::entry::Entry;
use crate::indicator::AvailabilityStatus;

use super::{PassCultureSettings, Quota};

/// Longest offer name pass Culture accepts on creation.
pub const NAME_MAX: usize = 90;
/// Longest description.
pub const DESCRIPTION_MAX: usize = 10_000;
/// Longest price category label.
pub const LABEL_MAX: usize = 50;
/// Highest price, in cents (300 €).
pub const PRICE_MAX_CENTS: i64 = 30_000;

/// The offer as pass Culture should have it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredOffer {
    /// SecuTix product id (the offer's `idAtProvider`).
    pub product_id: String,
    /// Offer fields by API name (`name`, `description`, `categoryRelatedFields`, `location`…): the body of
    /// a creation, and what a PATCH compares field by field.
    pub fields: BTreeMap<String, Value>,
    /// Price groups by key (`<tariffId>` or `<tariffId>-<seatCategoryId>`).
    pub groups: BTreeMap<String, DesiredGroup>,
    /// Dates by `idAtProvider` (`<performanceId>-<group key>`).
    pub stocks: BTreeMap<String, DesiredStock>,
    /// Image URL to publish, when the entry has one.
    pub image_url: Option<String>,
    /// What would keep the offer invisible or incomplete.
    pub warnings: Vec<VisibilityWarning>,
}

/// One tariff (× seat category) of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// Label (≤ 50 characters).
    pub label: String,
    /// Every amount (cents) this group has on the future dates.
    pub amounts: std::collections::BTreeSet<i64>,
}

/// One date × group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredStock {
    /// Performance id.
    pub performance_id: String,
    /// Group key.
    pub group: String,
    /// Price, cents.
    pub cents: i64,
    /// Start (UTC).
    pub beginning: DateTime<Utc>,
    /// Start minus `booking_limit_before`.
    pub booking_limit: DateTime<Utc>,
    /// What the quantity should be.
    pub quantity: QuantitySet,
}

/// The quantity we want on a date: open with the quota, or closed (remaining 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantitySet {
    /// Remaining 0: full, not on sale, cancelled, removed, or the product withdrawn.
    Closed,
    /// The quota is in force (total = quota; remaining = quota − booked).
    Open(Quota),
}

/// Something that keeps an offer from being bookable by young people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisibilityWarning {
    /// No selected tariff has a price on a future date: no price category, no date.
    NoPrice,
    /// Prices above 300 € were left out.
    PriceTooHigh {
        /// The highest one, cents.
        cents: i64,
    },
    /// Every date is full, not on sale, or the quota is 0.
    NoQuantity,
    /// Every future performance's booking limit is already past.
    BookingLimitPast,
    /// No description: pass Culture's validation may reject the offer, and young people know nothing of it.
    NoDescription,
    /// No future performance at all.
    NoFutureDate,
}

impl std::fmt::Display for VisibilityWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VisibilityWarning::NoPrice => write!(
                f,
                "no price: none of targets.passculture.tariff_codes has a price on a future date, so no date \
                 can be published"
            ),
            VisibilityWarning::PriceTooHigh { cents } => write!(
                f,
                "a price of {} is above pass Culture's 300 € limit and is left out",
                euros(*cents)
            ),
            VisibilityWarning::NoQuantity => write!(
                f,
                "no quantity: every date is full or not on sale (or the quota is 0), young people cannot book"
            ),
            VisibilityWarning::BookingLimitPast => write!(
                f,
                "every booking limit (start minus booking_limit_before) is already past"
            ),
            VisibilityWarning::NoDescription => write!(f, "no description in SecuTix"),
            VisibilityWarning::NoFutureDate => write!(f, "no future performance"),
        }
    }
}

/// Why an entry cannot become an offer (a dead letter that names the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The activity code has no category.
    #[error(
        "no pass Culture category for SecuTix activity {0:?}: add it to [targets.passculture.categories] (e.g. \
         {0} = {{ category = \"SPECTACLE_REPRESENTATION\", showType = \"THEATRE-CONTEMPORAIN\" }}) or set \
         default_category"
    )]
    NoCategory(String),
    /// No title in any language.
    #[error("the product has no title in SecuTix; pass Culture needs a name")]
    NoName,
    /// Prices in another currency.
    #[error("prices are in {0}; pass Culture takes euros only")]
    Currency(String),
}

/// Formats cents as `10,50 €`.
pub fn euros(cents: i64) -> String {
    format!("{},{:02} €", cents / 100, (cents % 100).abs())
}

/// Cuts `s` to at most `max` characters at a word boundary, ending with "…" when something was cut.
pub fn cut_clean(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    // Cut at the last space when it leaves at least half the text; else cut the word.
    let cut = match keep.rfind(char::is_whitespace) {
        Some(i) if keep[..i].chars().count() >= max / 2 => &keep[..i],
        _ => keep.as_str(),
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—(".contains(c));
    format!("{cut}…")
}

/// HTML (as typed in SecuTix) to plain text: block elements and `<br>` become line breaks, list items
/// bullets, entities decoded, spaces collapsed, at most one empty line in a row.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        let after = &rest[lt + 1..];
        let Some(gt) = after.find('>') else {
            out.push_str(&decode_entities(&rest[lt..]));
            rest = "";
            break;
        };
        let tag = after[..gt].trim().to_ascii_lowercase();
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match name.as_str() {
            "br" => out.push('\n'),
            "li" if !closing => out.push_str("\n• "),
            "p" | "div" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "tr" | "table" | "blockquote"
            | "section" | "article" => out.push_str("\n\n"),
            "script" | "style" if !closing => {
                // Drop the content too.
                let end = format!("</{name}");
                let lower = after.to_ascii_lowercase();
                match lower.find(&end) {
                    Some(e) => {
                        let tail = &after[e..];
                        rest = tail.find('>').map_or("", |g| &tail[g + 1..]);
                        continue;
                    }
                    None => {
                        rest = "";
                        break;
                    }
                }
            }
            _ => {}
        }
        rest = &after[gt + 1..];
    }
    out.push_str(&decode_entities(rest));
    normalise_space(&out)
}

fn normalise_space(s: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in s.split('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        let l = words.join(" ");
        if l.is_empty() && lines.last().is_none_or(|p| p.is_empty()) {
            continue;
        }
        lines.push(l);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.replace('\u{a0}', " ");
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| entity(&after[..e]));
        match (end, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('\u{a0}', " ")
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "agrave" => 'à',
        "acirc" => 'â',
        "auml" => 'ä',
        "ccedil" => 'ç',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ocirc" => 'ô',
        "ouml" => 'ö',
        "ugrave" => 'ù',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "oelig" => 'œ',
        "aelig" => 'æ',
        "Eacute" => 'É',
        "Egrave" => 'È',
        "Ecirc" => 'Ê',
        "Agrave" => 'À',
        "Acirc" => 'Â',
        "Ccedil" => 'Ç',
        "Ocirc" => 'Ô',
        "OElig" => 'Œ',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "hellip" => '…',
        "ndash" => '–',
        "mdash" => '—',
        "euro" => '€',
        "deg" => '°',
        "copy" => '©',
        "reg" => '®',
        "middot" => '·',
        "bull" => '•',
        _ => return None,
    })
}

/// Parses an entry's RFC 3339 time.
fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&Utc))
}

/// RFC 3339 in UTC with `Z`, to the second: what pass Culture stores.
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// True when the product is configured as online (digital location).
fn is_online(entry: &Entry, settings: &PassCultureSettings) -> bool {
    settings
        .online_product_codes
        .iter()
        .any(|c| entry.product_code.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(c)) || *c == entry.product_id)
}

/// Builds what pass Culture should show for `entry` at `now`.
pub fn desired(
    entry: &Entry,
    settings: &PassCultureSettings,
    now: DateTime<Utc>,
) -> Result<DesiredOffer, MappingError> {
    let lang = settings.language.as_str();
    let mut warnings = Vec::new();
    let title = entry
        .title
        .get(lang, &[])
        .or(entry.product_code.as_deref())
        .filter(|t| !t.trim().is_empty())
        .ok_or(MappingError::NoName)?;
    let name = cut_clean(&html_to_text(title).replace('\n', " "), NAME_MAX);
    let description = entry
        .description
        .get(lang, &[])
        .map(html_to_text)
        .filter(|d| !d.is_empty())
        .map(|d| cut_clean(&d, DESCRIPTION_MAX));
    if description.is_none() {
        warnings.push(VisibilityWarning::NoDescription);
    }
    let code = entry.genre_code.clone().unwrap_or_default();
    let mapping = settings
        .category_for(&code)
        .ok_or_else(|| MappingError::NoCategory(code.clone()))?;
    let venue_id = settings.venue_id.unwrap_or_default();
    let location = if is_online(entry, settings) {
        json!({"type": "digital", "venueId": venue_id, "url": settings.online_url})
    } else {
        json!({"type": "physical", "venueId": venue_id})
    };
    let a = &settings.accessibility;
    let mut fields = BTreeMap::new();
    fields.insert("name".to_owned(), json!(name));
    fields.insert("description".to_owned(), json!(description));
    fields.insert("categoryRelatedFields".to_owned(), mapping.to_json());
    fields.insert("location".to_owned(), location);
    fields.insert(
        "accessibility".to_owned(),
        json!({
            "audioDisabilityCompliant": a.audio,
            "mentalDisabilityCompliant": a.mental,
            "motorDisabilityCompliant": a.motor,
            "visualDisabilityCompliant": a.visual,
        }),
    );
    fields.insert(
        "enableDoubleBookings".to_owned(),
        json!(settings.enable_double_bookings),
    );
    if let Some(c) = settings.booking_contact.as_ref().filter(|c| !c.is_empty()) {
        fields.insert("bookingContact".to_owned(), json!(c));
    }
    if let Some(c) = settings.booking_email.as_ref().filter(|c| !c.is_empty()) {
        fields.insert("bookingEmail".to_owned(), json!(c));
    }

    let tariffs: Vec<String> = settings.tariff_codes.iter().map(|t| t.to_ascii_uppercase()).collect();
    let mut groups: BTreeMap<String, DesiredGroup> = BTreeMap::new();
    let mut stocks = BTreeMap::new();
    let mut future = 0;
    let mut limit_open = 0;
    let mut too_high: Option<i64> = None;
    let mut duration = None;
    for perf in &entry.performances {
        let Some(start) = parse_time(perf.start.as_deref()) else {
            continue;
        };
        let cancelled = perf.state.as_deref().is_some_and(|s| State::parse(s).is_cancelled());
        if start <= now || cancelled {
            continue;
        }
        future += 1;
        if duration.is_none() {
            duration = perf.duration_minutes.filter(|d| *d > 0).map(|d| d.min(24 * 60));
        }
        let booking_limit = start - chrono::Duration::from_std(settings.booking_limit_before).unwrap_or_default();
        if booking_limit > now {
            limit_open += 1;
        }
        let open = perf.on_sale
            && !matches!(
                perf.availability.status,
                AvailabilityStatus::SoldOut | AvailabilityStatus::NotOnSale
            );
        // One price per group and date: the lowest when SecuTix has several (price levels).
        let mut per_group: BTreeMap<String, (i64, String)> = BTreeMap::new();
        let several_seats = perf
            .prices
            .iter()
            .filter_map(|p| p.seat_category.as_ref().and_then(|s| s.id.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1;
        for price in &perf.prices {
            let Some(code) = price.tariff.code.as_deref() else {
                continue;
            };
            if !tariffs.iter().any(|t| t.eq_ignore_ascii_case(code)) {
                continue;
            }
            let Some(tariff_id) = price.tariff.id.as_deref() else {
                continue;
            };
            if !price.currency.eq_ignore_ascii_case("EUR") {
                return Err(MappingError::Currency(price.currency.clone()));
            }
            let cents = price.money.minor;
            if cents > PRICE_MAX_CENTS {
                too_high = Some(too_high.map_or(cents, |h| h.max(cents)));
                continue;
            }
            let seat = price.seat_category.as_ref().filter(|_| several_seats);
            let key = match seat.and_then(|s| s.id.as_deref()) {
                Some(seat_id) => format!("{tariff_id}-{seat_id}"),
                None => tariff_id.to_owned(),
            };
            let tariff_name = price.tariff.name.get(lang, &[]).unwrap_or(code).to_owned();
            let label = match seat.and_then(|s| s.name.get(lang, &[])) {
                Some(seat_name) => format!("{tariff_name} – {seat_name}"),
                None => tariff_name,
            };
            per_group
                .entry(key)
                .and_modify(|e| {
                    if cents < e.0 {
                        e.0 = cents;
                    }
                })
                .or_insert((cents, label));
        }
        for (key, (cents, label)) in per_group {
            let g = groups.entry(key.clone()).or_insert_with(|| DesiredGroup {
                label: cut_clean(&label, LABEL_MAX),
                amounts: Default::default(),
            });
            g.amounts.insert(cents);
            let quantity = match (open, settings.quota()) {
                (true, q) if q != Quota::Limited(0) => QuantitySet::Open(q),
                _ => QuantitySet::Closed,
            };
            stocks.insert(
                format!("{}-{key}", perf.id),
                DesiredStock {
                    performance_id: perf.id.clone(),
                    group: key,
                    cents,
                    beginning: start,
                    booking_limit,
                    quantity,
                },
            );
        }
    }
    if let Some(d) = duration {
        fields.insert("eventDuration".to_owned(), json!(d));
    }
    if let Some(cents) = too_high {
        warnings.push(VisibilityWarning::PriceTooHigh { cents });
    }
    if future == 0 {
        warnings.push(VisibilityWarning::NoFutureDate);
    } else if limit_open == 0 {
        warnings.push(VisibilityWarning::BookingLimitPast);
    } else if stocks.is_empty() {
        warnings.push(VisibilityWarning::NoPrice);
    } else if stocks
        .values()
        .all(|s| s.quantity == QuantitySet::Closed || s.booking_limit <= now)
    {
        warnings.push(VisibilityWarning::NoQuantity);
    }
    let image_url = if settings.image.is_empty() {
        None
    } else {
        entry.images.get(&settings.image).cloned()
    };
    Ok(DesiredOffer {
        product_id: entry.product_id.clone(),
        fields,
        groups,
        stocks,
        image_url,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_on_a_word_boundary() {
        let long =
            "Le Songe d'une nuit d'été, comédie en cinq actes de William Shakespeare dans une mise en scène nouvelle";
        let cut = cut_clean(long, NAME_MAX);
        assert!(cut.chars().count() <= NAME_MAX, "{cut}");
        assert_eq!(
            cut,
            "Le Songe d'une nuit d'été, comédie en cinq actes de William Shakespeare dans une mise en…"
        );
        assert_eq!(cut_clean("Hamlet", NAME_MAX), "Hamlet");
        let word = "x".repeat(120);
        assert_eq!(cut_clean(&word, 10).chars().count(), 10);
    }

    #[test]
    fn html_becomes_readable_text() {
        let html = "<p>Une <b>tragédie</b> d&eacute;chirante&nbsp;!</p><p>Avec&#160;:<br/>Jeanne &amp; Paul</p>\
                    <ul><li>1 h 30</li><li>d&egrave;s 12&nbsp;ans</li></ul><script>alert(1)</script>&unknown; fin";
        assert_eq!(
            html_to_text(html),
            "Une tragédie déchirante !\n\nAvec :\nJeanne & Paul\n\n• 1 h 30\n• dès 12 ans\n\n&unknown; fin"
        );
        assert_eq!(html_to_text("a < b"), "a < b");
    }

    #[test]
    fn euros_are_written_the_french_way() {
        assert_eq!(euros(1050), "10,50 €");
        assert_eq!(euros(30000), "300,00 €");
    }
}
