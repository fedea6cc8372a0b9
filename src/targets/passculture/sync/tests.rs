use super::*;

fn group(label: &str, amounts: &[i64]) -> DesiredGroup {
    DesiredGroup {
        label: label.into(),
        amounts: amounts.iter().copied().collect(),
    }
}

fn pc(id: u64, label: &str, price: i64) -> PriceCategoryState {
    PriceCategoryState {
        id,
        label: label.into(),
        price,
    }
}

#[test]
fn a_price_change_reuses_the_category_and_diverging_amounts_get_their_own() {
    let groups: BTreeMap<String, DesiredGroup> = [("77".to_owned(), group("Moins de 26 ans", &[1000]))].into();
    let (a, c) = assign_slots(&groups, &BTreeMap::new());
    assert_eq!(a[&("77".to_owned(), 1000)], "77");
    assert_eq!(c.len(), 1);
    assert!(c[0].existing.is_none());

    let existing: BTreeMap<String, PriceCategoryState> = [("77".to_owned(), pc(5, "Moins de 26 ans", 1000))].into();
    let (_, c) = assign_slots(&groups, &existing);
    assert!(c.is_empty(), "unchanged: nothing to send");

    let cheaper: BTreeMap<String, DesiredGroup> = [("77".to_owned(), group("Moins de 26 ans", &[800]))].into();
    let (a, c) = assign_slots(&cheaper, &existing);
    assert_eq!(a[&("77".to_owned(), 800)], "77");
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].price, c[0].existing.as_ref().map(|e| e.id)), (800, Some(5)));

    let two: BTreeMap<String, DesiredGroup> = [("77".to_owned(), group("Moins de 26 ans", &[800, 1000]))].into();
    let (a, c) = assign_slots(&two, &existing);
    assert_eq!(
        a[&("77".to_owned(), 1000)],
        "77",
        "keeps the category that has the amount"
    );
    assert_eq!(a[&("77".to_owned(), 800)], "77#1");
    let labels: Vec<&str> = c.iter().map(|c| c.label.as_str()).collect();
    assert!(labels.contains(&"Moins de 26 ans – 8,00 €"), "{labels:?}");
    assert!(labels.contains(&"Moins de 26 ans – 10,00 €"), "{labels:?}");
}

#[test]
fn objects_read_back_may_carry_more_fields() {
    assert!(covered(
        &json!({"type": "physical", "venueId": 1}),
        &json!({"type": "physical", "venueId": 1, "addressLabel": null})
    ));
    assert!(!covered(&json!({"venueId": 1}), &json!({"venueId": 2})));
    assert!(covered(&json!("a"), &json!("a")));
}
