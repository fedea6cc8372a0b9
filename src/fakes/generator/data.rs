//! The generator's vocabulary: genres, spaces, tariffs and audience categories, in two languages.

#[allow(unused_imports)]
use super::*;

pub(super) const GENRES: &[Genre] = &[
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
pub(super) struct Space {
    pub(super) code: &'static str,
    pub(super) fr: &'static str,
    pub(super) en: &'static str,
    pub(super) capacity: u32,
    pub(super) seat_categories: usize,
}

pub(super) const SPACES: &[Space] = &[
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

pub(super) const SITE_CODE: &str = "THV";
pub(super) const SITE_FR: &str = "Théâtre de la Ville";

pub(super) const TITLE_HEADS: &[(&str, &str)] = &[
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

pub(super) const TITLE_TAILS: &[(&str, &str)] = &[
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

pub(super) const SENTENCES_FR: &[&str] = &[
    "Une création qui mêle texte, musique et vidéo.",
    "Mise en scène par une compagnie en résidence.",
    "Un classique relu avec humour et tendresse.",
    "Dès 8 ans, en famille.",
    "Rencontre avec l'équipe artistique à l'issue de la représentation.",
    "Surtitré en anglais.",
    "Durée : environ 1 h 30, sans entracte.",
];

pub(super) const SENTENCES_EN: &[&str] = &[
    "A new work mixing text, music and video.",
    "Staged by a company in residence.",
    "A classic revisited with humour and tenderness.",
    "From age 8, for the whole family.",
    "Meet the artists after the show.",
    "English surtitles.",
    "Running time about 1 h 30, no interval.",
];

/// A tariff (audience sub-category).
pub(super) struct Tariff {
    pub(super) code: &'static str,
    pub(super) fr: &'static str,
    pub(super) en: &'static str,
    /// `audienceCategoryKind`.
    pub(super) kind: &'static str,
    /// Share of the full price, percent.
    pub(super) share: i64,
    /// Offered for family shows only.
    pub(super) children: bool,
}

pub(super) const TARIFFS: &[Tariff] = &[
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
pub(super) struct AudienceCategory {
    pub(super) code: &'static str,
    pub(super) fr: &'static str,
    pub(super) en: &'static str,
    pub(super) main: &'static str,
    pub(super) secondary: &'static str,
    pub(super) tariffs: &'static [usize],
}

pub(super) const AUDIENCE_CATEGORIES: &[AudienceCategory] = &[
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

pub(super) const SEAT_CATEGORY_NAMES: &[(&str, &str)] = &[
    ("Catégorie 1", "Category 1"),
    ("Catégorie 2", "Category 2"),
    ("Catégorie 3", "Category 3"),
];
pub(super) const SEAT_CATEGORY_SHARE: &[i64] = &[100, 75, 50];

pub(super) const SALES_CHANNEL_ID: Id = 1001;
pub(super) const SALES_CHANNEL_CODE: &str = "INTERNET";
pub(super) const ALERT_RATIOS: &[f64] = &[20.0, 20.0, 15.0, 10.0];
