use super::*;
use crate::secutix::parse::{CallStatus, CollectSink};

const NS: &str = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:getCatalogDetailedResponse xmlns:ns2="http://v1_33.CatalogService.service.secutix.com"><return>"#;
const END: &str = "</return></ns2:getCatalogDetailedResponse></S:Body></S:Envelope>";

fn soap(inner: &str) -> String {
    format!("{NS}{inner}{END}")
}

fn parse(body: &str) -> (Result<Envelope, ParseError>, CollectSink) {
    let mut sink = CollectSink::default();
    let r = parse_catalog_soap(
        "getCatalogDetailed",
        body.as_bytes(),
        &ConvertCtx::default(),
        &mut sink,
        None,
    );
    (r, sink)
}

#[test]
fn repeated_elements_are_lists_and_nil_is_null() {
    let body = soap(
        r#"<statusCode>success</statusCode><catalogData><seasons><id>9</id><products><id>1</id><event><performances><id>11</id><duration xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><prices><amount>1000</amount></prices><prices><amount>2000</amount></prices></performances></event></products><products><id>2</id></products></seasons></catalogData>"#,
    );
    let (r, sink) = parse(&body);
    assert_eq!(r.expect("parses").status(), CallStatus::Success);
    assert_eq!(sink.products.len(), 2);
    let perf = &sink.products[0].1.event.as_ref().expect("event").performances[0];
    assert_eq!(perf.duration_secs, None);
    assert_eq!(
        perf.prices.iter().map(|p| p.amount).collect::<Vec<_>>(),
        vec![1000, 2000]
    );
    assert_eq!(sink.seasons[0].1.id, Some(9));
}

#[test]
fn soap_fault_is_reported() {
    let body = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Authentication failed</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
    let (r, _) = parse(body);
    let e = r.expect_err("fault").to_string();
    assert!(e.contains("Authentication failed") && e.contains("soap:Server"), "{e}");
}

#[test]
fn truncated_xml_names_the_open_element() {
    let body = soap("<statusCode>success</statusCode><catalogData><seasons><products><id>1</id>");
    let body = &body[..body.find("</return>").expect("cut")];
    let (r, _) = parse(body);
    let e = r.expect_err("truncated").to_string();
    assert!(e.contains("products") && e.contains("truncated"), "{e}");
}

#[test]
fn wrong_type_in_a_product_names_the_field() {
    let body = soap(
        "<statusCode>success</statusCode><catalogData><seasons><products><id><x>1</x></id></products></seasons></catalogData>",
    );
    let (r, _) = parse(&body);
    let e = r.expect_err("bad id").to_string();
    assert!(e.contains("product #0") && e.contains("field id"), "{e}");
}

#[test]
fn get_catalog_string_is_unescaped_in_a_stream() {
    let inner = "<catalog><seasons><id>3</id><products><id>42</id><externalName><translations><locale>fr</locale><value>Caf&#233; &amp; th&#xE9;</value></translations></externalName></products></seasons></catalog>";
    let escaped = quick_xml::escape::escape(inner);
    for payload in [escaped.to_string(), format!("<![CDATA[{inner}]]>")] {
        let body = soap(&format!(
            "<statusCode>success</statusCode><catalogData>{payload}</catalogData>"
        ));
        // Tiny buffer: every state of the unescaper crosses a chunk boundary.
        let reader = std::io::BufReader::with_capacity(7, body.as_bytes());
        let mut out = Vec::new();
        let mut sink = CollectSink::default();
        let env = parse_catalog_soap("getCatalog", reader, &ConvertCtx::default(), &mut sink, Some(&mut out))
            .expect("parses");
        assert_eq!(env.status(), CallStatus::Success);
        assert_eq!(String::from_utf8(out.clone()).expect("utf8"), inner);
        let mut sink = CollectSink::default();
        parse_catalog_document("getCatalog", out.as_slice(), &ConvertCtx::default(), &mut sink).expect("doc");
        assert_eq!(sink.products[0].1.id, 42);
        assert_eq!(sink.products[0].1.name.get("fr", &[]), Some("Café & thé"));
    }
}

#[test]
fn small_result_becomes_a_value() {
    let body = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x:getPOSConfigResponse xmlns:x="urn:x"><return><statusCode>success</statusCode><posConfigData><posId>123</posId><organizationTimeZone>Europe/Paris</organizationTimeZone></posConfigData></return></x:getPOSConfigResponse></e:Body></e:Envelope>"#;
    let r = parse_soap_result("getPOSConfig", body.as_bytes(), 1000).expect("parses");
    assert_eq!(r.envelope.status(), CallStatus::Success);
    assert_eq!(r.result["posConfigData"]["posId"], "123");
}

#[test]
fn whitespace_after_the_xml_declaration_is_accepted() {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n  <e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body><x:getPOSConfigResponse xmlns:x=\"urn:x\"><return><statusCode>success</statusCode></return></x:getPOSConfigResponse></e:Body></e:Envelope>\n";
    let r = parse_soap_result("getPOSConfig", body.as_bytes(), 1000).expect("parses");
    assert_eq!(r.envelope.status(), CallStatus::Success);
    let e = parse_soap_result("getPOSConfig", b"\n  Service Unavailable", 1000).expect_err("not SOAP");
    assert!(e.to_string().contains("expected a SOAP Envelope"), "{e}");
}
