use super::*;
use crate::catalog::{Event, Translated};

fn product(code: &str, season: &str, activity: &str, topics: &[&str]) -> Product {
    Product {
        id: 42,
        code: Some(code.into()),
        season_id: None,
        season_code: Some(season.into()),
        family: None,
        family_sub_type: None,
        state: None,
        name: Translated::default(),
        short_name: Translated::default(),
        description: Translated::default(),
        images: Default::default(),
        detail_url: None,
        sale_periods: vec![],
        sub_topic_codes: topics.iter().map(|t| t.to_string()).collect(),
        event: Some(Event {
            activity_id: None,
            activity_code: Some(activity.into()),
            activity_type: None,
            activity_name: Translated::default(),
            alert_ratio: None,
            minimum_age: None,
            language: None,
            performances: vec![],
        }),
    }
}

fn settings(toml_text: &str) -> PassCultureSettings {
    toml::from_str(toml_text).expect("settings")
}

#[test]
fn selection_is_empty_by_default_and_combines_as_documented() {
    let none = settings("").selection();
    assert!(none.is_empty());
    assert!(!none.matches(&product("HAM", "S26", "TH", &[])));

    let s = settings(
        r#"product_codes = ["solo"]
           sub_topic_codes = ["PASS_CULTURE"]
           season_codes = ["S26"]
           activity_codes = ["TH", "DA"]"#,
    )
    .selection();
    assert!(s.matches(&product("SOLO", "S25", "CO", &[])), "by product code");
    assert!(s.matches(&product("X", "S25", "CO", &["pass_culture"])), "by sub-topic");
    assert!(s.matches(&product("X", "S26", "TH", &[])), "season and activity");
    assert!(!s.matches(&product("X", "S26", "CO", &[])), "season but not activity");
    assert!(!s.matches(&product("X", "S25", "TH", &[])), "activity but not season");
    assert!(
        settings("product_codes = [\"42\"]")
            .selection()
            .matches(&product("X", "S", "A", &[])),
        "by id"
    );
}

#[test]
fn quota_reads_numbers_and_unlimited_and_category_fields_keep_their_case() {
    let s = settings(
        r#"quota = "unlimited"
           [categories.TH]
           category = "SPECTACLE_REPRESENTATION"
           showtype = "THEATRE-CONTEMPORAIN"
           [categories.CO]
           category = "CONCERT""#,
    );
    assert_eq!(s.quota, Some(Quota::Unlimited));
    assert_eq!(settings("quota = 12").quota, Some(Quota::Limited(12)));
    assert_eq!(
        s.category_for("th").map(CategoryMapping::to_json),
        Some(json!({"category": "SPECTACLE_REPRESENTATION", "showType": "THEATRE-CONTEMPORAIN"}))
    );
    let problems = s.problems();
    assert!(
        problems
            .iter()
            .any(|(k, m)| k == "categories.CO" && m.contains("musicType")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|(k, _)| k == "venue_id"), "{problems:?}");
    assert!(problems.iter().any(|(k, _)| k == "tariff_codes"), "{problems:?}");
}
