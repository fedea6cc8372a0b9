use super::*;
use crate::secutix::parse::{CallStatus, CollectSink};

fn parse(body: &str) -> (Result<Envelope, ParseError>, CollectSink) {
    let mut sink = CollectSink::default();
    let r = parse_catalog_slice("getCatalogDetailed", body.as_bytes(), &ConvertCtx::default(), &mut sink);
    (r, sink)
}

#[test]
fn streams_products_even_when_season_fields_come_after_them() {
    let (r, sink) = parse(
        r#"{"catalogData":{"seasons":[{"products":[{"id":1},{"id":"2"}],"id":77,"code":"S26"}]},"statusCode":"success"}"#,
    );
    let env = r.expect("parses");
    assert_eq!(env.status(), CallStatus::Success);
    assert_eq!(sink.products.len(), 2);
    assert_eq!(sink.products[1].1.id, 2);
    assert_eq!(sink.seasons[0].1.id, Some(77));
}

#[test]
fn in_progress_carries_the_request_id() {
    let (r, sink) = parse(r#"{"statusCode":"in_progress","requestId":42}"#);
    assert_eq!(
        r.expect("parses").status(),
        CallStatus::InProgress { request_id: Some(42) }
    );
    assert!(sink.products.is_empty());
}

#[test]
fn errors_name_the_path_and_the_position() {
    let (r, _) =
        parse(r#"{"statusCode":"success","catalogData":{"seasons":[{"products":[{"id":1},{"id":{"x":1}}]}]}}"#);
    let e = r.expect_err("bad id").to_string();
    assert!(e.contains("catalogData.seasons[0].products[1].id"), "{e}");
    assert!(e.contains("column"), "{e}");
}

#[test]
fn truncated_body_says_so() {
    let (r, _) = parse(r#"{"statusCode":"success","catalogData":{"seasons":[{"products":[{"id":1"#);
    let e = r.expect_err("truncated").to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn depth_counts_brackets_outside_strings_only() {
    assert_eq!(deeper_than(br#"[[1],{"a":[2]}]"#, 3), None);
    assert_eq!(deeper_than(br#"[[1],{"a":[2]}]"#, 2), Some(10));
    assert_eq!(deeper_than(br#"["[[[{{{", "\"[[[", {"k": "]]]"}]"#, 2), None);
    assert_eq!(deeper_than(br#""unterminated \"#, 0), None);
}

#[test]
fn an_ignored_field_deeper_than_the_limit_is_refused() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (r, sink) = parse(&format!(
        r#"{{"statusCode":"success","catalogData":{{"seasons":[{{"products":[{{"id":1,"unknown":{deep}}}]}}]}}}}"#
    ));
    let e = r.expect_err("too deep").to_string();
    assert!(e.contains("deeper than 128 levels") && e.contains("products[0]"), "{e}");
    assert!(sink.products.is_empty());
}

#[test]
fn trailing_garbage_is_an_error() {
    let (r, _) = parse(r#"{"statusCode":"success"} <html>"#);
    assert!(r.is_err());
}
