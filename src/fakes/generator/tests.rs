use super::*;
use crate::secutix::wire::ConvertCtx;
use crate::secutix::{json as sjson, xml as sxml};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().expect("date")
}

fn ctx() -> ConvertCtx {
    ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = Generator::new(GeneratorOptions::new(5, 3, 7, now()));
    let b = Generator::new(GeneratorOptions::new(5, 3, 7, now()));
    let c = Generator::new(GeneratorOptions::new(5, 3, 8, now()));
    let bytes = |g: &Generator| {
        let mut v = Vec::new();
        g.write_rest_json(&mut v, None).expect("write");
        v
    };
    assert_eq!(bytes(&a), bytes(&b));
    assert_ne!(bytes(&a), bytes(&c));
}

#[test]
fn ids_are_unique_fourteen_digit_numbers() {
    let g = Generator::new(GeneratorOptions::new(300, 12, 3, now()));
    let mut seen = std::collections::HashSet::new();
    for p in g.plans() {
        assert_eq!(p.id.to_string().len(), 14);
        assert!(seen.insert(p.id), "product id {} twice", p.id);
        for perf in &p.performances {
            assert_eq!(perf.id.to_string().len(), 14);
            assert!(seen.insert(perf.id), "performance id {} twice", perf.id);
        }
    }
}

#[test]
fn the_catalogue_has_past_and_future_dates_and_every_season() {
    let g = Generator::new(GeneratorOptions::new(200, 10, 1, now()));
    let cat = g.collect();
    let starts: Vec<DateTime<Utc>> = cat
        .products
        .iter()
        .flat_map(|(_, p)| p.performances().iter().filter_map(|x| x.start))
        .collect();
    assert!(starts.iter().any(|s| *s < now()) && starts.iter().any(|s| *s > now()));
    for k in 0..3 {
        assert!(
            cat.products.iter().any(|(s, _)| *s == Some(k)),
            "season {k} has products"
        );
    }
    assert!(
        cat.products.iter().any(|(_, p)| !p.name.0.contains_key("en")),
        "some English names are null"
    );
    assert!(
        cat.products
            .iter()
            .any(|(_, p)| p.description.0.get("fr").is_some_and(|d| d.contains("<p>")))
    );
}

#[test]
fn rest_json_parses_to_the_domain_value() {
    let g = Generator::new(GeneratorOptions::new(40, 4, 11, now()));
    let mut body = Vec::new();
    g.write_rest_json(&mut body, Some(5)).expect("write");
    let mut sink = CollectSink::default();
    let env = sjson::parse_catalog_slice("getCatalogDetailed", &body, &ctx(), &mut sink).expect("parses");
    assert_eq!(env.products, 40);
    assert_eq!(sink, g.collect());
}

#[test]
fn soap_xml_parses_to_the_domain_value() {
    let g = Generator::new(GeneratorOptions::new(40, 4, 11, now()));
    let mut body = Vec::new();
    g.write_soap_xml(&mut body, None).expect("write");
    let mut sink = CollectSink::default();
    sxml::parse_catalog_soap("getCatalogDetailed", body.as_slice(), &ctx(), &mut sink, None).expect("parses");
    assert_eq!(sink, g.collect());
}

#[test]
fn get_catalog_xml_string_parses_to_the_domain_value_over_soap_and_rest() {
    let g = Generator::new(GeneratorOptions::new(30, 3, 5, now()));
    let expected = g.collect();

    let mut doc = Vec::new();
    g.write_catalog_xml(&mut doc).expect("write");
    let mut sink = CollectSink::default();
    sxml::parse_catalog_document("getCatalog", doc.as_slice(), &ctx(), &mut sink).expect("document parses");
    assert_eq!(sink, expected, "the XML document");

    let mut soap = Vec::new();
    g.write_get_catalog_soap(&mut soap, None).expect("write");
    let mut inner = Vec::new();
    let mut ignored = CollectSink::default();
    let env = sxml::parse_catalog_soap("getCatalog", soap.as_slice(), &ctx(), &mut ignored, Some(&mut inner))
        .expect("SOAP envelope parses");
    assert!(env.has_catalog);
    assert_eq!(inner, doc, "unescaping the SOAP text gives the document back");

    let mut rest = Vec::new();
    g.write_get_catalog_rest(&mut rest, None).expect("write");
    let mut sink = CollectSink::default();
    let env = sjson::parse_catalog_slice("getCatalog", &rest, &ctx(), &mut sink).expect("REST envelope parses");
    let xml = env.catalog_xml.expect("catalogData is the XML string");
    assert_eq!(xml.as_bytes(), doc.as_slice(), "the JSON string holds the document");
}

#[test]
fn plans_agree_with_the_built_products() {
    let g = Generator::new(GeneratorOptions::new(20, 5, 9, now()));
    for i in 0..20 {
        let plan = g.plan(i);
        let p = g.product(i);
        assert_eq!(p.id, plan.id);
        let ids: Vec<Id> = p.performances().iter().map(|x| x.id).collect();
        assert_eq!(ids, plan.performances.iter().map(|x| x.id).collect::<Vec<_>>());
        assert_eq!(p.event.as_ref().and_then(|e| e.alert_ratio), Some(plan.alert_ratio));
    }
}
