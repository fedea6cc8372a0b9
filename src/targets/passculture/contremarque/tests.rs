use super::*;

#[test]
fn tokens_are_checked_and_upper_cased() {
    assert_eq!(normalise_token(" abc123 "), Ok("ABC123".into()));
    assert_eq!(normalise_token("AB/../C"), Err(ContremarqueError::InvalidToken));
    assert_eq!(normalise_token(""), Err(ContremarqueError::InvalidToken));
}

#[test]
fn every_message_exists_in_both_languages_and_debug_hides_the_name() {
    let b = Booking {
        id: 1,
        status: BookingStatus::Confirmed,
        offer_id: 2,
        offer_name: "Hamlet".into(),
        stock_id: 3,
        date: None,
        tariff: None,
        price_cents: 1000,
        quantity: 1,
        first_name: Some("Jeanne".into()),
        last_name: Some("Dupont".into()),
        venue_name: "Théâtre".into(),
        cancellable_until: None,
    };
    let dbg = format!("{b:?}");
    assert!(!dbg.contains("Jeanne") && !dbg.contains("Dupont"), "{dbg}");
    assert!(
        b.render("ABC123", Lang::Fr, chrono_tz::Europe::Paris)
            .contains("Jeanne Dupont")
    );
    let e = ContremarqueError::TooLate;
    assert_ne!(e.message(Lang::Fr), e.message(Lang::En));
}
