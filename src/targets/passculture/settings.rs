//! `[targets.passculture]`: the settings of a pass Culture target (environment, API key, venue, categories, accessibility, the product selection), their defaults and problems.

#[allow(unused_imports)]
use super::*;

impl Quota {
    /// The JSON pass Culture takes.
    pub fn to_json(self) -> Value {
        match self {
            Quota::Limited(n) => json!(n),
            Quota::Unlimited => json!("unlimited"),
        }
    }
}

impl Serialize for Quota {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quota::Limited(n) => s.serialize_u32(*n),
            Quota::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quota;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of places or \"unlimited\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quota, E> {
                u32::try_from(v).map(Quota::Limited).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quota, E> {
                u32::try_from(v)
                    .map(Quota::Limited)
                    .map_err(|_| E::custom(format!("{v} is not a number of places")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quota, E> {
                if v.eq_ignore_ascii_case("unlimited") {
                    return Ok(Quota::Unlimited);
                }
                v.trim()
                    .parse()
                    .map(Quota::Limited)
                    .map_err(|_| E::custom(format!("{v:?} is neither a number of places nor \"unlimited\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Fields pass Culture requires for some categories (from its OpenAPI description).
pub(super) const REQUIRED_FIELDS: &[(&str, &str)] = &[
    ("SPECTACLE_REPRESENTATION", "showType"),
    ("FESTIVAL_SPECTACLE", "showType"),
    ("LIVESTREAM_EVENEMENT", "showType"),
    ("CONCERT", "musicType"),
    ("EVENEMENT_MUSIQUE", "musicType"),
    ("FESTIVAL_MUSIQUE", "musicType"),
    ("LIVESTREAM_MUSIQUE", "musicType"),
];

/// Event categories pass Culture knows (its OpenAPI description).
pub const EVENT_CATEGORIES: &[&str] = &[
    "ATELIER_PRATIQUE_ART",
    "CINE_PLEIN_AIR",
    "CONCERT",
    "CONCOURS",
    "CONFERENCE",
    "EVENEMENT_CINE",
    "EVENEMENT_JEU",
    "EVENEMENT_MUSIQUE",
    "EVENEMENT_PATRIMOINE",
    "FESTIVAL_ART_VISUEL",
    "FESTIVAL_CINE",
    "FESTIVAL_LIVRE",
    "FESTIVAL_MUSIQUE",
    "FESTIVAL_SPECTACLE",
    "LIVESTREAM_EVENEMENT",
    "LIVESTREAM_MUSIQUE",
    "LIVESTREAM_PRATIQUE_ARTISTIQUE",
    "RENCONTRE",
    "RENCONTRE_EN_LIGNE",
    "RENCONTRE_JEU",
    "SALON",
    "SEANCE_CINE",
    "SEANCE_ESSAI_PRATIQUE_ART",
    "SPECTACLE_REPRESENTATION",
    "VISITE",
    "VISITE_GUIDEE",
];

/// Field names as pass Culture spells them, matched case-insensitively in the configuration.
pub(super) const KNOWN_FIELDS: &[&str] = &[
    "showType",
    "musicType",
    "author",
    "performer",
    "stageDirector",
    "speaker",
    "visa",
];

impl CategoryMapping {
    /// `categoryRelatedFields`.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("category".into(), json!(self.category));
        for (k, v) in &self.fields {
            let key = KNOWN_FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(k))
                .map_or(k.as_str(), |f| f);
            m.insert(key.to_owned(), json!(v));
        }
        Value::Object(m)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !EVENT_CATEGORIES.contains(&self.category.as_str()) {
            p.push(format!(
                "{:?} is not a pass Culture event category (e.g. SPECTACLE_REPRESENTATION, CONCERT, CONFERENCE; \
                 GET /public/offers/v1/events/categories lists them)",
                self.category
            ));
        }
        for (cat, field) in REQUIRED_FIELDS {
            if self.category == *cat && !self.fields.keys().any(|k| k.eq_ignore_ascii_case(field)) {
                p.push(format!("category {cat} needs {field} (e.g. {field} = \"…\")"));
            }
        }
        p
    }
}

pub(super) fn default_requests_per_minute() -> u32 {
    180
}

pub(super) fn default_http_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_booking_limit() -> Duration {
    Duration::from_secs(3600)
}

pub(super) fn default_language() -> String {
    "fr".into()
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_image() -> String {
    "large".into()
}

pub(super) fn default_time_zone() -> String {
    "Europe/Paris".into()
}

impl PassCultureSettings {
    /// The base URL: explicit, or the environment's.
    pub fn base_url(&self) -> String {
        if !self.base_url.is_empty() {
            return self.base_url.trim_end_matches('/').to_owned();
        }
        match self.environment {
            PassCultureEnvironment::Integration => INTEGRATION_URL.to_owned(),
            PassCultureEnvironment::Production => PRODUCTION_URL.to_owned(),
        }
    }

    /// Why `base_url` may not be used in clear text (see [`crate::http::clear_text_problem`]).
    pub fn clear_text_problem(&self) -> Option<String> {
        crate::http::clear_text_problem(&self.base_url, self.allow_insecure_http, "the API key")
            .map(|m| format!("{m} (targets.passculture.allow_insecure_http)"))
    }

    /// The API key, from `api_key` or `api_key_file`. Errors name the file, never the key.
    pub fn read_api_key(&self) -> Result<SecretString, String> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone());
        }
        let Some(file) = &self.api_key_file else {
            return Err("no API key: set targets.passculture.api_key_file (recommended) or api_key".into());
        };
        let path = crate::credentials::resolve_credential_path(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(format!("the API key file {} is empty", path.display()));
        }
        Ok(SecretString::from(line))
    }

    /// The quota (validation makes sure it is set).
    pub fn quota(&self) -> Quota {
        self.quota.unwrap_or(Quota::Limited(0))
    }

    /// The category of an activity code.
    pub fn category_for(&self, activity_code: &str) -> Option<&CategoryMapping> {
        self.categories
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(activity_code))
            .map(|(_, v)| v)
            .or(self.default_category.as_ref())
    }

    /// The product selection.
    pub fn selection(&self) -> Selection {
        let set = |v: &[String]| v.iter().map(|s| s.trim().to_ascii_uppercase()).collect();
        Selection {
            products: set(&self.product_codes),
            sub_topics: set(&self.sub_topic_codes),
            seasons: set(&self.season_codes),
            activities: set(&self.activity_codes),
        }
    }

    /// Problems as (key under `passculture.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut bad = |k: &str, m: String| p.push((k.to_owned(), m));
        match (&self.api_key, &self.api_key_file) {
            (Some(_), Some(_)) => bad("api_key", "is set together with api_key_file; keep only one".into()),
            (None, None) => bad(
                "api_key_file",
                "is missing: pass Culture's API key is needed (one per environment, sent by pass Culture's \
                 provider support)"
                    .into(),
            ),
            (Some(k), None) if k.expose_secret().trim().is_empty() => bad("api_key", "is empty".into()),
            (None, Some(_)) => {
                if let Err(e) = self.read_api_key() {
                    bad("api_key_file", e);
                }
            }
            _ => {}
        }
        if !self.base_url.is_empty() {
            match url::Url::parse(&self.base_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "base_url",
                    format!(
                        "{:?} is not an http(s) URL; leave it empty to use environment",
                        crate::http::redact_credentials(&self.base_url)
                    ),
                ),
            }
            if let Some(m) = self.clear_text_problem() {
                bad("base_url", m);
            }
        }
        if self.venue_id.is_none_or(|v| v == 0) {
            bad(
                "venue_id",
                "is missing: set the pass Culture venue id (GET /public/offers/v1/offerer_venues lists your venues)"
                    .into(),
            );
        }
        if !(1..=200).contains(&self.requests_per_minute) {
            bad(
                "requests_per_minute",
                format!(
                    "{} is outside 1..=200 (pass Culture allows 200 per minute per key)",
                    self.requests_per_minute
                ),
            );
        }
        if self.http_timeout.is_zero() {
            bad("http_timeout", "must be longer than 0s, e.g. \"30s\"".into());
        }
        if self.tariff_codes.is_empty() {
            bad(
                "tariff_codes",
                "is empty: list the SecuTix tariff codes offered to young people, e.g. [\"J26\"]".into(),
            );
        }
        if self.quota.is_none() {
            bad(
                "quota",
                "is missing: set the places per date for pass Culture, e.g. quota = 10 (or \"unlimited\")".into(),
            );
        }
        if self.language.len() != 2 {
            bad(
                "language",
                format!("{:?} is not an ISO 639-1 code such as \"fr\"", self.language),
            );
        }
        for (code, m) in &self.categories {
            for problem in m.problems() {
                bad(&format!("categories.{code}"), problem);
            }
        }
        if let Some(m) = &self.default_category {
            for problem in m.problems() {
                bad("default_category", problem);
            }
        }
        for (key, v) in [
            ("booking_contact", &self.booking_contact),
            ("booking_email", &self.booking_email),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty() && !v.contains('@')) {
                bad(key, format!("{v:?} is not an e-mail address"));
            }
        }
        if !self.online_product_codes.is_empty() {
            let probe = self
                .online_url
                .replace("{token}", "T")
                .replace("{offerId}", "1")
                .replace("{email}", "e");
            match url::Url::parse(&probe) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => bad(
                    "online_url",
                    format!(
                        "{:?} is not an http(s) URL; online products need one, e.g. \
                         \"https://live.example.org/watch?code={{token}}\"",
                        self.online_url
                    ),
                ),
            }
        }
        if !["", "small", "medium", "large", "xlarge"].contains(&self.image.as_str()) {
            bad(
                "image",
                format!(
                    "{:?} is not one of small, medium, large, xlarge (or \"\" for none)",
                    self.image
                ),
            );
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bad(
                "time_zone",
                format!("{:?} is not a time zone such as \"Europe/Paris\"", self.time_zone),
            );
        }
        p
    }
}

impl Selection {
    /// Nothing selected.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.sub_topics.is_empty() && self.seasons.is_empty() && self.activities.is_empty()
    }

    /// True when `p` is selected.
    pub fn matches(&self, p: &Product) -> bool {
        let up = |s: &Option<String>| s.as_deref().map(|s| s.trim().to_ascii_uppercase());
        if self.products.contains(&p.id.to_string()) || up(&p.code).is_some_and(|c| self.products.contains(&c)) {
            return true;
        }
        if p.sub_topic_codes
            .iter()
            .any(|t| self.sub_topics.contains(&t.trim().to_ascii_uppercase()))
        {
            return true;
        }
        if self.seasons.is_empty() && self.activities.is_empty() {
            return false;
        }
        let season_ok = self.seasons.is_empty() || up(&p.season_code).is_some_and(|s| self.seasons.contains(&s));
        let activity = p.event.as_ref().and_then(|e| up(&e.activity_code));
        let activity_ok = self.activities.is_empty() || activity.is_some_and(|a| self.activities.contains(&a));
        season_ok && activity_ok
    }

    /// The planner's filter.
    pub fn into_filter(self) -> ProductFilter {
        Arc::new(move |p: &Product| self.matches(p))
    }
}
