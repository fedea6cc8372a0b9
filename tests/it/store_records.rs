//! The store's record files and the no-change path: products whose bytes did not change are taken from the
//! catalogue in force without being parsed, whatever the transport; a product that changed, moved season,
//! or an import with other settings is parsed again; partial generations leave no file behind.

use crate::common::*;
use secutix_sync::catalog::Product;
use secutix_sync::fakes::generator::{Generator, GeneratorOptions};
use secutix_sync::secutix::parse::CatalogSink;
use secutix_sync::secutix::wire::ConvertCtx;
use secutix_sync::secutix::{json as sjson, xml as sxml};
use secutix_sync::store::{FinishOptions, ImportCounts, Store};
use serde_json::Value;

fn ctx() -> ConvertCtx {
    ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    }
}

/// Imports a JSON body; returns the counts and how many products were taken without parsing.
fn import_json(store: &Store, body: &[u8], families: &[&str]) -> (ImportCounts, u64) {
    let families: Vec<String> = families.iter().map(|f| f.to_string()).collect();
    let mut txn = store.begin_import(&families).expect("begin");
    sjson::parse_catalog_slice("getCatalogDetailed", body, &ctx(), &mut txn).expect("parses");
    let unparsed = txn.unparsed();
    (txn.finish(&FinishOptions::default()).expect("finishes"), unparsed)
}

fn products(store: &Store) -> Vec<Product> {
    store
        .catalog()
        .expect("store")
        .expect("catalogue")
        .products()
        .map(|r| r.expect("record").product)
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

#[test]
fn unchanged_products_are_taken_without_parsing_changed_ones_are_parsed() {
    let clock = secutix_sync::clock::system();
    let (store, _dir) = store(&clock);
    let first = catalog(vec![season(
        1,
        "S26",
        -30,
        (0..5)
            .map(|i| product(1000 + i, &format!("Spectacle {i}"), &[(5000 + i, 10)]))
            .collect(),
    )]);
    let (counts, unparsed) = import_json(&store, &bytes(&first), &["SINGLE_ENTRY"]);
    assert_eq!((counts.added, counts.reused, unparsed), (5, 0, 0));
    let before = products(&store);

    // The same catalogue again, in other bytes around the products (as when requestId differs).
    let mut again = first.clone();
    again["requestId"] = 99.into();
    let (counts, unparsed) = import_json(&store, &bytes(&again), &["SINGLE_ENTRY"]);
    assert_eq!(
        (counts.unchanged, counts.reused, unparsed, counts.changed),
        (5, 5, 5, 0)
    );
    assert_eq!(products(&store), before, "the records are the same");

    // One title changes: that product is parsed, the others are not.
    let mut changed = first.clone();
    changed["catalogData"]["seasons"][0]["products"][2]["externalName"]["translations"][0]["value"] =
        "Nouveau titre".into();
    let (counts, unparsed) = import_json(&store, &bytes(&changed), &["SINGLE_ENTRY"]);
    assert_eq!((counts.changed, counts.reused, unparsed), (1, 4, 4));
    let p = products(&store).into_iter().find(|p| p.id == 1002).expect("product");
    assert_eq!(p.name.get("fr", &[]), Some("Nouveau titre"));

    // Product 1004 moves to another season with the same bytes: its record gets the new season.
    let all: Vec<Value> = changed["catalogData"]["seasons"][0]["products"]
        .as_array()
        .expect("list")
        .clone();
    let moved = catalog(vec![
        season(1, "S26", -30, all[..4].to_vec()),
        season(2, "S27", 100, vec![all[4].clone()]),
    ]);
    let (counts, _) = import_json(&store, &bytes(&moved), &["SINGLE_ENTRY"]);
    assert_eq!((counts.reused, counts.changed), (4, 1));
    let p = products(&store).into_iter().find(|p| p.id == 1004).expect("product");
    assert_eq!((p.season_id, p.season_code.as_deref()), (Some(2), Some("S27")));

    // Other settings (product families): everything is parsed again.
    let (counts, unparsed) = import_json(&store, &bytes(&moved), &["SINGLE_ENTRY", "PASS"]);
    assert_eq!((counts.reused, unparsed, counts.unchanged), (0, 0, 5));
}

#[test]
fn soap_and_get_catalog_reuse_unchanged_products_too() {
    let clock = secutix_sync::clock::system();
    let g = Generator::new(GeneratorOptions::new(20, 3, 8, t0()));
    let mut soap = Vec::new();
    g.write_soap_xml(&mut soap, None).expect("soap");
    let mut doc = Vec::new();
    g.write_catalog_xml(&mut doc).expect("doc");
    type Parse = fn(&[u8], &mut dyn CatalogSink) -> Result<(), String>;
    let parsers: [(&str, &[u8], Parse); 2] = [
        ("SOAP", &soap, |b, sink| {
            sxml::parse_catalog_soap("getCatalogDetailed", b, &ctx(), sink, None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        ("getCatalog document", &doc, |b, sink| {
            sxml::parse_catalog_document("getCatalog", b, &ctx(), sink)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    ];
    for (name, body, parse) in parsers {
        let (store, _dir) = store(&clock);
        for round in 0..2 {
            let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
            parse(body, &mut txn).expect(name);
            let unparsed = txn.unparsed();
            let counts = txn.finish(&FinishOptions::default()).expect("finishes");
            assert_eq!(counts.products, 20, "{name}");
            assert_eq!(unparsed, if round == 0 { 0 } else { 20 }, "{name} round {round}");
        }
        let mut expected: Vec<Product> = g
            .collect()
            .products
            .into_iter()
            .map(|(k, mut p)| {
                let s = g.season(k.unwrap_or(0));
                p.season_id = s.id;
                p.season_code = s.code;
                p
            })
            .collect();
        expected.sort_by_key(|p| p.id);
        assert_eq!(products(&store), expected, "{name}: reused records are the products");
    }
}

#[test]
fn a_crash_mid_import_leaves_no_record_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = secutix_sync::clock::system();
    let body = bytes(&catalog_n(3));
    {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("open");
        import_json(&store, &body, &["SINGLE_ENTRY"]);
        // A second import stages products, writes its files, and the process dies before finishing.
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        let other = bytes(&catalog_n(5));
        sjson::parse_catalog_slice("getCatalogDetailed", &other, &ctx(), &mut txn).expect("parses");
        store.flush().expect("flush");
        drop(txn);
        drop(store);
    }
    let store = Store::open(dir.path(), 16, clock).expect("reopen");
    assert_eq!(store.generation().expect("generation"), Some(1));
    assert_eq!(products(&store).len(), 3);
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("records"))
        .expect("records folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec!["cat.1.records".to_owned()]);
}

#[test]
fn a_removed_record_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = secutix_sync::clock::system();
    let store = Store::open(dir.path(), 16, clock).expect("open");
    import_json(&store, &bytes(&catalog_n(2)), &["SINGLE_ENTRY"]);
    std::fs::remove_file(dir.path().join("records").join("cat.1.records")).expect("remove");
    let err = store.catalog().expect_err("no records").to_string();
    assert!(err.contains("cat.1.records") && err.contains("import --force"), "{err}");
}
