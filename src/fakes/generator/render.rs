//! Rendering the catalogue in every wire format, streamed: REST JSON, SOAP XML `getCatalogDetailed`, and `getCatalog`'s XML string in SOAP or REST.

#[allow(unused_imports)]
use super::*;

impl Generator {
    /// The REST JSON `getCatalogDetailed` response. `request_id` is echoed in `requestId` (the re-call
    /// after `in_progress`).
    pub fn write_rest_json(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        write!(
            w,
            "{{\"statusCode\":\"success\",\"requestId\":{},\"statusDetail\":null,\"catalogData\":{{\"seasons\":[",
            json_opt(request_id)
        )?;
        for k in 0..3u32 {
            if k > 0 {
                w.write_all(b",")?;
            }
            let fields = self.season_wire(k, Style::Json);
            let Value::Object(map) = fields else {
                unreachable!("season_wire builds an object")
            };
            w.write_all(b"{")?;
            for (n, (key, v)) in map.iter().enumerate() {
                if n > 0 {
                    w.write_all(b",")?;
                }
                serde_json::to_writer(&mut w, key)?;
                w.write_all(b":")?;
                serde_json::to_writer(&mut w, v)?;
            }
            w.write_all(b",\"products\":[")?;
            for (n, i) in self.indices_of(k).enumerate() {
                if n > 0 {
                    w.write_all(b",")?;
                }
                serde_json::to_writer(&mut w, &self.build(i, Style::Json, true).2)?;
            }
            w.write_all(b"]}")?;
        }
        w.write_all(b"]}}")?;
        w.flush()
    }

    pub(super) fn write_seasons_xml(&self, w: &mut dyn Write) -> io::Result<()> {
        for k in 0..3u32 {
            w.write_all(b"<seasons>")?;
            if let Value::Object(map) = self.season_wire(k, Style::Xml) {
                for (key, v) in &map {
                    write_jaxws(w, key, v)?;
                }
            }
            for i in self.indices_of(k) {
                write_jaxws(w, "products", &self.build(i, Style::Xml, true).2)?;
            }
            w.write_all(b"</seasons>")?;
        }
        Ok(())
    }

    /// The SOAP `getCatalogDetailed` response (JAX-WS document/literal).
    pub fn write_soap_xml(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(soap_open("getCatalogDetailed", "CatalogService").as_bytes())?;
        w.write_all(b"<statusCode>success</statusCode>")?;
        if let Some(r) = request_id {
            write!(w, "<requestId>{r}</requestId>")?;
        }
        w.write_all(b"<catalogData>")?;
        self.write_seasons_xml(&mut w)?;
        w.write_all(b"</catalogData>")?;
        w.write_all(soap_close("getCatalogDetailed").as_bytes())?;
        w.flush()
    }

    /// The catalogue XML document that `getCatalog` returns as a string (same element names as the DTOs).
    pub fn write_catalog_xml(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><catalog xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
        )?;
        self.write_seasons_xml(&mut w)?;
        w.write_all(b"</catalog>")?;
        w.flush()
    }

    /// The SOAP `getCatalog` response: the catalogue XML escaped as the text of `catalogData`.
    pub fn write_get_catalog_soap(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        w.write_all(soap_open("getCatalog", "CatalogService").as_bytes())?;
        w.write_all(b"<statusCode>success</statusCode>")?;
        if let Some(r) = request_id {
            write!(w, "<requestId>{r}</requestId>")?;
        }
        w.write_all(b"<catalogData>")?;
        {
            let mut esc = XmlTextWriter(&mut w);
            self.write_catalog_xml(&mut esc)?;
        }
        w.write_all(b"</catalogData>")?;
        w.write_all(soap_close("getCatalog").as_bytes())?;
        w.flush()
    }

    /// The REST `getCatalog` response: the catalogue XML as a JSON string in `catalogData`.
    pub fn write_get_catalog_rest(&self, out: &mut dyn Write, request_id: Option<i64>) -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, out);
        write!(
            w,
            "{{\"statusCode\":\"success\",\"requestId\":{},\"statusDetail\":null,\"catalogData\":\"",
            json_opt(request_id)
        )?;
        {
            let mut esc = JsonStringWriter(&mut w);
            self.write_catalog_xml(&mut esc)?;
        }
        w.write_all(b"\"}")?;
        w.flush()
    }
}

pub(super) fn json_opt(v: Option<i64>) -> String {
    v.map_or_else(|| "null".to_owned(), |r| r.to_string())
}

pub(super) fn local_midnight(tz: chrono_tz::Tz, y: i32, m: u32, d: u32) -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    local_time(tz, day, 0)
}

pub(super) fn local_time(tz: chrono_tz::Tz, day: NaiveDate, hour: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())
        .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
}

/// A date on the wire: epoch ms in JSON (or RFC 3339 with offset when `iso`), `xsd:dateTime` in XML.
pub(super) fn date(t: DateTime<Utc>, style: Style, tz: chrono_tz::Tz, iso: bool) -> Value {
    match (style, iso) {
        (Style::Json, false) => Value::from(t.timestamp_millis()),
        _ => Value::from(t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
    }
}

pub(super) fn sale_period_wire(s: &SalePeriod, style: Style, tz: chrono_tz::Tz) -> Value {
    json!({
        "start": s.start.map(|t| date(t, style, tz, true)), "end": s.end.map(|t| date(t, style, tz, true)),
        "salesChannelId": s.sales_channel_id, "salesChannelCode": s.sales_channel_code,
        "reservationPossible": false, "salePossible": s.sale_possible, "quotationPossible": false,
        "postingResalePossible": false, "type": "STANDARD", "audienceSubCatIds": [], "seatCategoryIds": [],
    })
}

/// `{"translations":[{"locale","value"}]}` with null values kept, as SecuTix sends them.
pub(super) fn translations(pairs: &[(&str, Option<&str>)]) -> Value {
    json!({"translations": pairs.iter().map(|(l, v)| json!({"locale": l, "value": v})).collect::<Vec<_>>()})
}

/// The domain side of [`translations`]: null values dropped.
pub(super) fn tr_domain(pairs: &[(&str, Option<&str>)]) -> Translated {
    Translated::from_pairs(pairs.iter().filter_map(|(l, v)| Some((*l, (*v)?))))
}

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

// ---------------------------------------------------------------------------------------------------------
// XML and JSON writers
// ---------------------------------------------------------------------------------------------------------

/// Fields written as `xsi:nil="true"` when null (JAX-WS `nillable` elements); other nulls are omitted.
pub(super) const NIL_FIELDS: &[&str] = &["value", "duration", "seatCatId", "priceLevelId", "state", "minimumAge"];

/// The opening of a JAX-WS SOAP response up to `<return>`.
pub fn soap_open(method: &str, service_class: &str) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
            "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><S:Body>",
            "<ns2:{m}Response xmlns:ns2=\"http://v1_33.{c}.service.secutix.com\"><return>"
        ),
        m = method,
        c = service_class
    )
}

/// The closing of a JAX-WS SOAP response from `</return>`.
pub fn soap_close(method: &str) -> String {
    format!("</return></ns2:{method}Response></S:Body></S:Envelope>")
}

/// A whole SOAP response whose `<return>` holds the fields of `result` (a JSON object).
pub fn soap_response(method: &str, service_class: &str, result: &Value) -> Vec<u8> {
    let mut out = soap_open(method, service_class).into_bytes();
    if let Value::Object(map) = result {
        for (k, v) in map {
            // Writing into a Vec cannot fail.
            let _ = write_jaxws(&mut out, k, v);
        }
    }
    out.extend_from_slice(soap_close(method).as_bytes());
    out
}

/// Writes `v` as the JAX-WS element `name`: objects as children, arrays as the element repeated, null omitted
/// (or `xsi:nil` for the fields of [`NIL_FIELDS`]), scalars as escaped text.
pub fn write_jaxws(w: &mut dyn Write, name: &str, v: &Value) -> io::Result<()> {
    match v {
        Value::Null => {
            if NIL_FIELDS.contains(&name) {
                write!(w, "<{name} xsi:nil=\"true\"/>")?;
            }
        }
        Value::Array(items) => {
            for i in items {
                write_jaxws(w, name, i)?;
            }
        }
        Value::Object(map) => {
            write!(w, "<{name}>")?;
            write_children(w, map)?;
            write!(w, "</{name}>")?;
        }
        Value::String(s) => {
            write!(w, "<{name}>")?;
            w.write_all(quick_xml::escape::escape(s.as_str()).as_bytes())?;
            write!(w, "</{name}>")?;
        }
        other => write!(w, "<{name}>{other}</{name}>")?,
    }
    Ok(())
}

pub(super) fn write_children(w: &mut dyn Write, map: &Map<String, Value>) -> io::Result<()> {
    for (k, v) in map {
        write_jaxws(w, k, v)?;
    }
    Ok(())
}

impl Write for XmlTextWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, b) in buf.iter().enumerate() {
            let rep: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                _ => continue,
            };
            self.0.write_all(&buf[start..i])?;
            self.0.write_all(rep)?;
            start = i + 1;
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Write for JsonStringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            let esc: Option<String> = match b {
                b'"' => Some("\\\"".into()),
                b'\\' => Some("\\\\".into()),
                b'\n' => Some("\\n".into()),
                b'\r' => Some("\\r".into()),
                b'\t' => Some("\\t".into()),
                0..=0x1f => Some(format!("\\u{b:04x}")),
                _ => None,
            };
            if let Some(e) = esc {
                self.0.write_all(&buf[start..i])?;
                self.0.write_all(e.as_bytes())?;
                start = i + 1;
            }
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
