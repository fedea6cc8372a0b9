use super::*;
use serde_json::json;

#[test]
fn numbers_as_strings_and_nulls_are_accepted() {
    let p: RawPrice = serde_json::from_value(
        json!({"seatCatId": null, "audSubCatId": "306159078", "amount": "35000", "priceLevelId": ""}),
    )
    .expect("lenient");
    assert_eq!(p.seat_cat_id, None);
    assert_eq!(p.aud_sub_cat_id, Some(306159078));
    assert_eq!(p.amount, Some(35000));
    assert_eq!(p.price_level_id, None);
}

#[test]
fn wrong_types_are_errors_that_say_what_was_expected() {
    let e = serde_json::from_value::<RawPrice>(json!({"amount": {"value": 1}})).expect_err("object is not an amount");
    assert!(e.to_string().contains("an integer"), "{e}");
    let e = serde_json::from_value::<RawPrice>(json!({"amount": "35,00"})).expect_err("text is not an amount");
    assert!(e.to_string().contains("35,00"), "{e}");
}

#[test]
fn dates_in_every_form() {
    let tz: chrono_tz::Tz = "Europe/Paris".parse().expect("tz");
    let ms = WireDate::parse_text("1723831200000").expect("ms").resolve(tz);
    let rfc = WireDate::parse_text("2024-08-16T20:00:00.000+02:00")
        .expect("rfc")
        .resolve(tz);
    let local = WireDate::parse_text("2024-08-16T20:00:00").expect("local").resolve(tz);
    assert_eq!(ms, rfc);
    assert_eq!(rfc, local);
    assert!(WireDate::parse_text("next tuesday").is_none());
}

#[test]
fn translations_drop_null_values_and_accept_bare_strings() {
    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "translated")]
        t: Translated,
    }
    let t: T = serde_json::from_value(
        json!({"t": {"translations": [{"locale": "fr", "value": "Bonjour"}, {"locale": "en", "value": null}]}}),
    )
    .expect("ok");
    assert_eq!(t.t, Translated::from_pairs([("fr", "Bonjour")]));
    let t: T =
        serde_json::from_value(json!({"t": {"translations": {"locale": "FR", "value": "Un"}}})).expect("single object");
    assert_eq!(t.t, Translated::from_pairs([("fr", "Un")]));
    let t: T = serde_json::from_value(json!({"t": "plain"})).expect("string");
    assert_eq!(t.t.get("fr", &[]), Some("plain"));
}

#[test]
fn single_objects_count_as_one_element_lists() {
    let e: RawEvent =
        serde_json::from_value(json!({"performances": {"id": "5", "prices": {"amount": "1000"}}})).expect("ok");
    assert_eq!(e.performances.len(), 1);
    assert_eq!(e.performances[0].prices.len(), 1);
}

#[test]
fn unknown_states_are_kept() {
    assert_eq!(State::parse("ARCHIVED"), State::Other("ARCHIVED".into()));
    assert_eq!(State::parse("canceled"), State::Canceled);
}
