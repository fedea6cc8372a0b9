//! Field ownership of the CMS targets (WordPress, Drupal): which fields of a post or node the daemon writes,
//! and the values it writes, derived from the entry.
//!
//! Fields come in groups ([`FieldGroup`]). Each target declares `owned_fields`, written at every sync, and
//! `initial_fields`, written once when the daemon creates the post or node and never after (by default the
//! body, from the SecuTix description). Anything else is **never sent**, so never overwritten: body text after
//! creation, excerpt, featured image, editors' own fields and meta, taxonomy terms, menu order, slug, author.
//!
//! Four bookkeeping fields are written whatever the groups say, because recovery and change detection rest
//! on them: `external_id` (the lookup key), `content_hash`, `schema_version` and `synced_at`.
//!
//! [`entry_fields`] lists the values; each target encodes them its own way (WordPress meta `secutix_<key>`,
//! Drupal attributes `field_secutix_<key>`). [`FIELDS`] is the table the README and the companion plugin
//! follow.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Translated;
use crate::entry::Entry;
use crate::push::target::OpKind;

/// A group of fields the daemon may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldGroup {
    /// The post title / node title (in the target's language).
    Title,
    /// The post content / node body, from the SecuTix description. Not owned by default: editors write it.
    Body,
    /// Publication: `publish` on upsert (WordPress) / `status: true` (Drupal). When not owned, the daemon
    /// never changes it after creation (editors decide), except to unpublish a product SecuTix dropped.
    Status,
    /// SecuTix identity and descriptive fields: product id and code, genre, season, image URL, the whole
    /// entry as JSON.
    Secutix,
    /// The SecuTix product state (`RUNNING`, `SUSPENDED`…).
    State,
    /// Performance dates: next, first, last, and the performances as JSON.
    Dates,
    /// Price range and currency.
    Prices,
    /// On sale, availability status and indicator code.
    Availability,
    /// Booking links.
    Links,
}

impl FieldGroup {
    /// Every group.
    pub const ALL: [FieldGroup; 9] = [
        FieldGroup::Title,
        FieldGroup::Body,
        FieldGroup::Status,
        FieldGroup::Secutix,
        FieldGroup::State,
        FieldGroup::Dates,
        FieldGroup::Prices,
        FieldGroup::Availability,
        FieldGroup::Links,
    ];

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldGroup::Title => "title",
            FieldGroup::Body => "body",
            FieldGroup::Status => "status",
            FieldGroup::Secutix => "secutix",
            FieldGroup::State => "state",
            FieldGroup::Dates => "dates",
            FieldGroup::Prices => "prices",
            FieldGroup::Availability => "availability",
            FieldGroup::Links => "links",
        }
    }
}

/// Default `owned_fields`: everything but the body.
pub fn default_owned() -> Vec<FieldGroup> {
    vec![
        FieldGroup::Title,
        FieldGroup::Status,
        FieldGroup::Secutix,
        FieldGroup::State,
        FieldGroup::Dates,
        FieldGroup::Prices,
        FieldGroup::Availability,
        FieldGroup::Links,
    ]
}

/// Default `initial_fields`: the body, from the SecuTix description, at creation only.
pub fn default_initial() -> Vec<FieldGroup> {
    vec![FieldGroup::Body]
}

/// What a target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    owned: BTreeSet<FieldGroup>,
    initial: BTreeSet<FieldGroup>,
}

impl Ownership {
    /// From the configured lists.
    pub fn new(owned: &[FieldGroup], initial: &[FieldGroup]) -> Self {
        Self {
            owned: owned.iter().copied().collect(),
            initial: initial.iter().copied().collect(),
        }
    }

    /// Whether `group` is written, when creating (`creating`) or updating.
    pub fn writes(&self, group: FieldGroup, creating: bool) -> bool {
        self.owned.contains(&group) || (creating && self.initial.contains(&group))
    }

    /// Whether `group` is written at every sync.
    pub fn owns(&self, group: FieldGroup) -> bool {
        self.owned.contains(&group)
    }

    /// Configuration problems as (key, message): a group in both lists, or a creation with neither title
    /// nor body (WordPress refuses an empty post, Drupal a node without title).
    pub fn problems(owned: &[FieldGroup], initial: &[FieldGroup]) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for g in owned.iter().filter(|g| initial.contains(g)) {
            p.push((
                "initial_fields".to_owned(),
                format!(
                    "{:?} is also in owned_fields; a group is either owned (written at every sync) or initial \
                     (written at creation only)",
                    g.as_str()
                ),
            ));
        }
        let has = |g| owned.contains(&g) || initial.contains(&g);
        if !has(FieldGroup::Title) {
            p.push((
                "owned_fields".to_owned(),
                "\"title\" is neither in owned_fields nor in initial_fields: new entries would have no title \
                 (add it to initial_fields to let editors own it after creation)"
                    .to_owned(),
            ));
        }
        p
    }
}

/// A value, before a target encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Plain text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// True or false.
    Boolean(bool),
    /// A decimal amount as a string with the currency's digits (`"35.00"`).
    Decimal(String),
    /// An RFC 3339 date-time with offset.
    DateTime(String),
    /// A JSON document, as text.
    Json(String),
}

/// The type of a field, for the documentation and for CMS set-up (Drupal field types, WordPress schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// String.
    Text,
    /// Integer.
    Integer,
    /// Boolean.
    Boolean,
    /// Decimal (WordPress: number; Drupal: decimal).
    Decimal,
    /// Date-time (WordPress: string; Drupal: date and time).
    DateTime,
    /// JSON in a long text.
    Json,
}

/// One field of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryField {
    /// Key without prefix (`price_min`): WordPress meta `secutix_price_min`, Drupal `field_secutix_price_min`.
    pub key: &'static str,
    /// Its group; `None` for bookkeeping fields, always written.
    pub group: Option<FieldGroup>,
    /// The value; `None` clears the field (e.g. no booking link when sold out).
    pub value: Option<FieldValue>,
}

/// Every field: key, group (`None` = always written), type, meaning.
pub const FIELDS: &[(&str, Option<FieldGroup>, FieldType, &str)] = &[
    (
        "external_id",
        None,
        FieldType::Text,
        "secutix-<productId>, the lookup key",
    ),
    (
        "content_hash",
        None,
        FieldType::Text,
        "hash of the entry as last written",
    ),
    (
        "schema_version",
        None,
        FieldType::Integer,
        "version of the entry format",
    ),
    (
        "synced_at",
        None,
        FieldType::DateTime,
        "when the daemon queued this write (UTC)",
    ),
    (
        "product_id",
        Some(FieldGroup::Secutix),
        FieldType::Text,
        "SecuTix product id (64-bit, as text)",
    ),
    (
        "product_code",
        Some(FieldGroup::Secutix),
        FieldType::Text,
        "SecuTix product code",
    ),
    (
        "genre",
        Some(FieldGroup::Secutix),
        FieldType::Text,
        "genre (SecuTix activity) in the target's language",
    ),
    (
        "season",
        Some(FieldGroup::Secutix),
        FieldType::Text,
        "season name (or code)",
    ),
    (
        "image_url",
        Some(FieldGroup::Secutix),
        FieldType::Text,
        "largest SecuTix image",
    ),
    (
        "entry",
        Some(FieldGroup::Secutix),
        FieldType::Json,
        "the whole entry, all languages",
    ),
    (
        "state",
        Some(FieldGroup::State),
        FieldType::Text,
        "SecuTix product state",
    ),
    (
        "on_sale",
        Some(FieldGroup::Availability),
        FieldType::Boolean,
        "at least one future performance on sale",
    ),
    (
        "availability",
        Some(FieldGroup::Availability),
        FieldType::Text,
        "available | almost_full | sold_out | not_on_sale | unknown",
    ),
    (
        "availability_code",
        Some(FieldGroup::Availability),
        FieldType::Integer,
        "1 green, 2 orange, 3 red, 0 not on sale or unknown",
    ),
    (
        "booking_url",
        Some(FieldGroup::Links),
        FieldType::Text,
        "\"Book\" link in the target's language; empty when not bookable",
    ),
    (
        "booking_urls",
        Some(FieldGroup::Links),
        FieldType::Json,
        "\"Book\" links by language",
    ),
    (
        "price_min",
        Some(FieldGroup::Prices),
        FieldType::Decimal,
        "lowest price",
    ),
    (
        "price_max",
        Some(FieldGroup::Prices),
        FieldType::Decimal,
        "highest price",
    ),
    ("currency", Some(FieldGroup::Prices), FieldType::Text, "ISO 4217 code"),
    (
        "next_performance",
        Some(FieldGroup::Dates),
        FieldType::DateTime,
        "start of the next performance",
    ),
    (
        "first_performance",
        Some(FieldGroup::Dates),
        FieldType::DateTime,
        "start of the first performance",
    ),
    (
        "last_performance",
        Some(FieldGroup::Dates),
        FieldType::DateTime,
        "start of the last performance",
    ),
    (
        "performances",
        Some(FieldGroup::Dates),
        FieldType::Json,
        "every performance with its availability, links and prices",
    ),
];

/// Text in `language`, else the untranslated text, else any.
pub fn text(t: &Translated, language: &str) -> Option<String> {
    t.get(language, &[]).filter(|s| !s.trim().is_empty()).map(str::to_owned)
}

/// The title of an entry in `language`, falling back to its product code then its external id: a CMS post
/// always gets a title.
pub fn title(entry: &Entry, language: &str) -> String {
    text(&entry.title, language)
        .or_else(|| entry.product_code.clone())
        .unwrap_or_else(|| entry.external_id.clone())
}

/// The body (SecuTix description, HTML) in `language`.
pub fn body(entry: &Entry, language: &str) -> Option<String> {
    text(&entry.description, language)
}

/// What a CMS target writes for one operation under its field ownership, before it encodes it in its own
/// API's shape (WordPress: `title`, `content`, `status`, `meta`; Drupal: JSON:API attributes). One projection
/// for every CMS target, so the ownership rules (owned fields at every sync, initial fields at creation only,
/// editor fields never) are written once.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedProjection {
    /// The title, when the target writes it.
    pub title: Option<String>,
    /// The body (SecuTix description, HTML), when the target writes it and the entry has one.
    pub body: Option<String>,
    /// Published (`Some(true)`), unpublished (`Some(false)`) or left as the editor set it (`None`: an
    /// upsert while editors own the status).
    pub published: Option<bool>,
    /// The fields of [`FIELDS`] the target writes, in that order.
    pub fields: Vec<EntryField>,
}

/// The [`OwnedProjection`] of `entry` for an operation of `kind` (`creating` a new post or node, or updating
/// one), with `ownership`'s rules; texts in `language`; `synced_at` is when the operation was queued.
pub fn owned_projection(
    entry: &Entry,
    kind: OpKind,
    content_hash: &str,
    language: &str,
    synced_at: DateTime<Utc>,
    ownership: &Ownership,
    creating: bool,
) -> OwnedProjection {
    let own = |g| ownership.writes(g, creating);
    OwnedProjection {
        title: own(FieldGroup::Title).then(|| title(entry, language)),
        body: if own(FieldGroup::Body) {
            body(entry, language)
        } else {
            None
        },
        published: match kind {
            OpKind::Upsert => own(FieldGroup::Status).then_some(true),
            _ => Some(false),
        },
        fields: entry_fields(entry, content_hash, language, synced_at)
            .into_iter()
            .filter(|f| f.group.is_none_or(own))
            .collect(),
    }
}

/// The values of every field of [`FIELDS`], in that order.
pub fn entry_fields(entry: &Entry, content_hash: &str, language: &str, synced_at: DateTime<Utc>) -> Vec<EntryField> {
    use FieldValue::*;
    // Serialising our own types cannot fail.
    fn json<T: Serialize + ?Sized>(v: &T) -> Option<FieldValue> {
        Some(FieldValue::Json(serde_json::to_string(v).unwrap_or_default()))
    }
    let opt_text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty()).map(Text);
    let image = ["xlarge", "large", "medium", "small"]
        .iter()
        .find_map(|k| entry.images.get(*k))
        .cloned()
        .map(Text);
    let season = entry
        .season
        .as_ref()
        .and_then(|s| text(&s.name, language).or_else(|| s.code.clone()))
        .map(Text);
    let booking = entry
        .booking_url
        .get(language)
        .or_else(|| entry.booking_url.values().next())
        .cloned()
        .map(Text);
    let starts: Vec<&String> = entry.performances.iter().filter_map(|p| p.start.as_ref()).collect();
    let price = |f: fn(&crate::entry::PriceRange) -> &crate::entry::Money| {
        entry.price_range.as_ref().map(|r| Decimal(f(r).amount.clone()))
    };
    let values: Vec<(&'static str, Option<FieldValue>)> = vec![
        ("external_id", Some(Text(entry.external_id.clone()))),
        ("content_hash", Some(Text(content_hash.to_owned()))),
        ("schema_version", Some(Integer(i64::from(entry.schema_version)))),
        (
            "synced_at",
            Some(DateTime(synced_at.to_rfc3339_opts(SecondsFormat::Secs, true))),
        ),
        ("product_id", Some(Text(entry.product_id.clone()))),
        ("product_code", opt_text(&entry.product_code)),
        ("genre", text(&entry.genre, language).map(Text)),
        ("season", season),
        ("image_url", image),
        ("entry", json(entry)),
        ("state", opt_text(&entry.state)),
        ("on_sale", Some(Boolean(entry.on_sale))),
        (
            "availability",
            Some(Text(entry.availability.status.as_str().to_owned())),
        ),
        (
            "availability_code",
            Some(Integer(i64::from(entry.availability.code.unwrap_or(0)))),
        ),
        ("booking_url", booking),
        ("booking_urls", json(&entry.booking_url)),
        ("price_min", price(|r| &r.min)),
        ("price_max", price(|r| &r.max)),
        ("currency", entry.price_range.as_ref().map(|r| Text(r.currency.clone()))),
        (
            "next_performance",
            entry
                .next_performance
                .as_ref()
                .and_then(|n| n.start.clone())
                .map(DateTime),
        ),
        ("first_performance", starts.first().map(|s| DateTime((*s).clone()))),
        ("last_performance", starts.last().map(|s| DateTime((*s).clone()))),
        ("performances", json(&entry.performances)),
    ];
    values
        .into_iter()
        .map(|(key, value)| EntryField {
            key,
            group: FIELDS.iter().find(|f| f.0 == key).and_then(|f| f.1),
            value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_table_has_a_value_in_the_same_order() {
        let entry: Entry = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "external_id": "secutix-7", "product_id": "7", "product_code": "P7",
            "published": true, "title": {"fr": "Hamlet"}, "short_title": {}, "description": {"fr": "<p>H</p>"},
            "genre": {"fr": "Théâtre"}, "genre_code": "TH", "season": null, "images": {"large": "https://i/l.jpg"},
            "state": "RUNNING", "minimum_age": null, "on_sale": true,
            "availability": {"status": "almost_full", "code": 2},
            "booking_url": {"en": "https://s/en", "fr": "https://s/fr"}, "links": {},
            "price_range": {"currency": "EUR", "min": {"amount": "10.00", "minor": 1000}, "max": {"amount": "35.50", "minor": 3550}},
            "next_performance": {"id": "71", "start": "2026-03-07T20:00:00+01:00", "availability": {"status": "almost_full", "code": 2}},
            "performances": []
        }))
        .expect("entry");
        let fields = entry_fields(&entry, "h", "fr", Utc::now());
        let keys: Vec<&str> = fields.iter().map(|f| f.key).collect();
        let table: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
        assert_eq!(keys, table);
        let get = |k: &str| fields.iter().find(|f| f.key == k).and_then(|f| f.value.clone());
        assert_eq!(get("booking_url"), Some(FieldValue::Text("https://s/fr".into())));
        assert_eq!(get("price_max"), Some(FieldValue::Decimal("35.50".into())));
        assert_eq!(get("availability_code"), Some(FieldValue::Integer(2)));
        assert_eq!(get("genre"), Some(FieldValue::Text("Théâtre".into())));
        assert_eq!(get("first_performance"), None, "no performances");
        assert!(fields.iter().filter(|f| f.group.is_none()).count() == 4);
    }

    #[test]
    fn ownership_writes_initial_groups_at_creation_only_and_names_bad_lists() {
        let o = Ownership::new(&default_owned(), &default_initial());
        assert!(o.writes(FieldGroup::Body, true));
        assert!(!o.writes(FieldGroup::Body, false));
        assert!(o.writes(FieldGroup::Title, false));
        assert!(Ownership::problems(&default_owned(), &default_initial()).is_empty());
        let p = Ownership::problems(&[FieldGroup::Prices], &[FieldGroup::Prices]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|(_, m)| m.contains("\"title\"")));
    }
}
