//! Property tests: the catalogue parsers (REST JSON, SOAP XML, the `getCatalog` XML string, small SOAP
//! results) never panic, on arbitrary bytes and on valid catalogues that were cut short, had bytes flipped,
//! inserted or removed, or received up to 100,000 levels of nesting; a failure is always an error that
//! names the call. The store behind the parser
//! (the real import sink) survives the same inputs: a failed parse leaves the catalogue in force.

use std::sync::OnceLock;

use crate::common::t0;
use proptest::prelude::*;
use secutix_sync::fakes::generator::{Generator, GeneratorOptions};
use secutix_sync::secutix::availability::AvailabilityMethod;
use secutix_sync::secutix::parse::{CollectSink, ParseError};
use secutix_sync::secutix::settings::Transport;
use secutix_sync::secutix::wire::ConvertCtx;
use secutix_sync::secutix::{json as sjson, xml as sxml};
use secutix_sync::store::{FinishOptions, Store};

fn ctx() -> ConvertCtx {
    ConvertCtx {
        time_zone: chrono_tz::Europe::Paris,
    }
}

/// Valid bodies of a small generated catalogue: REST JSON, SOAP XML, the getCatalog document and its SOAP
/// response.
struct Bodies {
    json: Vec<u8>,
    soap: Vec<u8>,
    doc: Vec<u8>,
    get_catalog: Vec<u8>,
}

fn bodies() -> &'static Bodies {
    static B: OnceLock<Bodies> = OnceLock::new();
    B.get_or_init(|| {
        let g = Generator::new(GeneratorOptions::new(3, 2, 5, t0()));
        let mut b = Bodies {
            json: Vec::new(),
            soap: Vec::new(),
            doc: Vec::new(),
            get_catalog: Vec::new(),
        };
        g.write_rest_json(&mut b.json, Some(7)).expect("json");
        g.write_soap_xml(&mut b.soap, None).expect("soap");
        g.write_catalog_xml(&mut b.doc).expect("doc");
        g.write_get_catalog_soap(&mut b.get_catalog, None).expect("getCatalog");
        b
    })
}

fn named(r: Result<(), ParseError>, call: &str) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        let msg = e.to_string();
        prop_assert!(msg.contains(call), "the error names the call: {msg}");
    }
    Ok(())
}

/// Every parser over `bytes`; none may panic.
fn all_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut sink = CollectSink::default();
    named(
        sjson::parse_catalog_slice("getCatalogDetailed", bytes, &ctx(), &mut sink).map(|_| ()),
        "getCatalogDetailed",
    )?;
    // The reader path with a tiny buffer: every refill boundary is crossed.
    let mut sink = CollectSink::default();
    named(
        sjson::parse_catalog_reader(
            "getCatalogDetailed",
            std::io::BufReader::with_capacity(3, bytes),
            &ctx(),
            &mut sink,
        )
        .map(|_| ()),
        "getCatalogDetailed",
    )?;
    let mut sink = CollectSink::default();
    named(
        sxml::parse_catalog_soap("getCatalogDetailed", bytes, &ctx(), &mut sink, None).map(|_| ()),
        "getCatalogDetailed",
    )?;
    let mut sink = CollectSink::default();
    let mut out = Vec::new();
    named(
        sxml::parse_catalog_soap(
            "getCatalog",
            std::io::BufReader::with_capacity(5, bytes),
            &ctx(),
            &mut sink,
            Some(&mut out),
        )
        .map(|_| ()),
        "getCatalog",
    )?;
    let mut sink = CollectSink::default();
    named(
        sxml::parse_catalog_document("getCatalog", bytes, &ctx(), &mut sink).map(|_| ()),
        "getCatalog",
    )?;
    named(
        sxml::parse_soap_result("getPOSConfig", bytes, secutix_sync::secutix::small_values(4)).map(|_| ()),
        "getPOSConfig",
    )?;
    for transport in [Transport::Rest, Transport::Soap] {
        let r = secutix_sync::secutix::availability::parse_answer(
            transport,
            AvailabilityMethod::GetEventAvailability,
            bytes,
        );
        if let Err(e) = r {
            let msg = e.to_string();
            prop_assert!(msg.contains("getEventAvailability"), "the error names the call: {msg}");
        }
    }
    Ok(())
}

/// A mutation of a valid body.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Mutation::Flip),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Mutation::Remove(a, n)),
        // Bytes that matter to the scanners.
        (any::<usize>(), prop::sample::select(b"\"\\{}[]<>&;:,/ \n".to_vec()))
            .prop_map(|(a, b)| Mutation::Flip(vec![(a, b)])),
    ]
}

fn apply(body: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v = body.to_vec();
    let len = v.len();
    let at = |i: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Truncate(i) => {
            let n = at(*i);
            v.truncate(n);
        }
        Mutation::Flip(flips) => {
            for (i, b) in flips {
                let n = at(*i);
                if let Some(x) = v.get_mut(n) {
                    *x = *b;
                }
            }
        }
        Mutation::Insert(i, bytes) => {
            let n = at(*i);
            v.splice(n..n, bytes.iter().copied());
        }
        Mutation::Remove(i, len) => {
            let n = at(*i);
            let end = (n + len).min(v.len());
            v.drain(n..end);
        }
    }
    v
}

/// The real import sink: a store that already holds the valid catalogue.
fn store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(|| {
        let store = Store::temporary(secutix_sync::clock::system()).expect("store");
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        sjson::parse_catalog_slice("getCatalogDetailed", &bodies().json, &ctx(), &mut txn).expect("valid");
        txn.finish(&FinishOptions::default()).expect("finish");
        store
    })
}

/// Deep nesting of one kind (XML elements, JSON arrays, JSON objects, or both languages interleaved).
fn nest(kind: u8, levels: usize) -> Vec<u8> {
    let (open, close): (&[u8], &[u8]) = match kind % 4 {
        0 => (b"<x>", b"</x>"),
        1 => (b"[", b"]"),
        2 => (b"{\"a\":", b"}"),
        _ => (b"<x>[", b"]</x>"),
    };
    let mut v = Vec::with_capacity(levels * (open.len() + close.len()));
    for _ in 0..levels {
        v.extend_from_slice(open);
    }
    if kind % 4 == 2 {
        v.extend_from_slice(b"1");
    }
    for _ in 0..levels {
        v.extend_from_slice(close);
    }
    v
}

proptest! {
    // Few cases: each is up to 900 KB through every parser.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Up to 100,000 levels of nesting anywhere in a valid catalogue (a product, a season field, the
    /// envelope…): never a stack overflow; refused with an error naming the call, or parsed when the
    /// insertion left the nesting in a place the parser does not descend into (a text, an attribute).
    #[test]
    fn parsers_never_overflow_on_deep_nesting(
        levels in prop::sample::select(vec![127usize, 128, 129, 1_000, 10_000, 100_000]),
        kind in any::<u8>(),
        at in any::<usize>(),
        which in 0usize..4,
    ) {
        let b = bodies();
        let body = [&b.json, &b.soap, &b.doc, &b.get_catalog][which];
        all_parsers(&apply(body, &Mutation::Insert(at, nest(kind, levels))))?;
        // Alone, too: the whole document is the nesting.
        all_parsers(&nest(kind, levels))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        all_parsers(&bytes)?;
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text_made_of_json_and_xml_pieces(
        parts in proptest::collection::vec(prop::sample::select(vec![
            "{", "}", "[", "]", "\"", ":", ",", "\\", "null", "1", "\"products\"", "\"seasons\"", "\"catalogData\"",
            "<", ">", "</", "/>", "&amp;", "&#", ";", "<![CDATA[", "]]>", "<S:Envelope>", "<S:Body>", "<return>",
            "<catalogData>", "<seasons>", "<products>", "<id>", "</id>", "xsi:nil=\"true\"", " ", "\n", "é",
        ]), 0..80)
    ) {
        all_parsers(parts.concat().as_bytes())?;
    }

    #[test]
    fn parsers_never_panic_on_mutated_valid_catalogues(m in mutation(), which in 0usize..4) {
        let b = bodies();
        let body = [&b.json, &b.soap, &b.doc, &b.get_catalog][which];
        all_parsers(&apply(body, &m))?;
    }

    #[test]
    fn the_store_keeps_its_catalogue_when_a_mutated_import_fails(m in mutation(), soap in any::<bool>()) {
        let store = store();
        let before = store.generation().expect("generation");
        let body = apply(if soap { &bodies().soap } else { &bodies().json }, &m);
        let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
        let parsed = if soap {
            sxml::parse_catalog_soap("getCatalogDetailed", body.as_slice(), &ctx(), &mut txn, None).map(|_| ())
        } else {
            sjson::parse_catalog_slice("getCatalogDetailed", &body, &ctx(), &mut txn).map(|_| ())
        };
        match parsed {
            Err(_) => {
                txn.abort();
                prop_assert_eq!(store.generation().expect("generation"), before, "a failed parse changes nothing");
            }
            // A mutation may leave a valid catalogue (a flipped letter in a title): it may be imported,
            // refused by the shrink guard, or fail cleanly; never panic.
            Ok(()) => {
                let _ = txn.finish(&FinishOptions::default());
            }
        }
        let view = store.catalog().expect("readable").expect("a catalogue");
        for r in view.products() {
            r.expect("every record in force is readable");
        }
    }
}

#[test]
fn the_unmutated_bodies_parse() {
    let b = bodies();
    for (name, body) in [("json", &b.json), ("soap", &b.soap), ("doc", &b.doc)] {
        let mut sink = CollectSink::default();
        let r = match name {
            "json" => sjson::parse_catalog_slice("getCatalogDetailed", body, &ctx(), &mut sink).map(|_| ()),
            "soap" => {
                sxml::parse_catalog_soap("getCatalogDetailed", body.as_slice(), &ctx(), &mut sink, None).map(|_| ())
            }
            _ => sxml::parse_catalog_document("getCatalog", body.as_slice(), &ctx(), &mut sink).map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sink.products.len(), 3, "{name}");
    }
}
