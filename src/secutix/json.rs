//! Streaming parser for REST JSON catalogue responses (`getCatalogDetailed`, and `getCatalog`'s envelope).
//!
//! The envelope is walked with hand-written serde visitors: each season's products array is consumed one
//! element at a time and every product goes to the [`CatalogSink`] as soon as it is read, so the whole
//! catalogue is never in memory. `serde_path_to_error` tracks where a failure happened
//! (`catalogData.seasons[0].products[3].event.performances[0].start`), and serde_json adds line and column.

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::parse::{CatalogSink, Envelope, ParseError, SinkError};
use super::wire::{self, ConvertCtx, RawProduct, RawSeason};

/// Parses a JSON catalogue response from a reader, streaming products into `sink`.
pub fn parse_catalog_reader<R: Read>(
    call: &str,
    reader: R,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    run(call, &mut de, ctx, sink)
}

/// Parses a JSON catalogue response held in memory.
pub fn parse_catalog_slice(
    call: &str,
    bytes: &[u8],
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    run(call, &mut de, ctx, sink)
}

fn run<'de, R: serde_json::de::Read<'de>>(
    call: &str,
    de: &mut serde_json::Deserializer<R>,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    let mut track = serde_path_to_error::Track::new();
    let mut state = State {
        ctx,
        sink,
        sink_error: None,
        envelope: Envelope::default(),
    };
    let result = EnvelopeSeed(&mut state).deserialize(serde_path_to_error::Deserializer::new(&mut *de, &mut track));
    let result = result.and_then(|()| de.end());
    if let Some(source) = state.sink_error.take() {
        return Err(ParseError::Sink {
            call: call.to_owned(),
            source,
        });
    }
    match result {
        Ok(()) => Ok(state.envelope),
        Err(e) => Err(malformed(call, &track.path().to_string(), &e)),
    }
}

/// Builds the error for a serde_json failure at `path`.
pub(crate) fn malformed(call: &str, path: &str, e: &serde_json::Error) -> ParseError {
    let place = if path.is_empty() || path == "?" {
        "the top level".to_owned()
    } else {
        path.to_owned()
    };
    let message = match e.classify() {
        serde_json::error::Category::Eof => format!("the body ends too early (truncated?): {e}"),
        _ => e.to_string(),
    };
    ParseError::Malformed {
        call: call.to_owned(),
        place,
        message,
    }
}

struct State<'a> {
    ctx: &'a ConvertCtx,
    sink: &'a mut dyn CatalogSink,
    /// A sink failure, reported as such rather than as a syntax error at some path.
    sink_error: Option<SinkError>,
    envelope: Envelope,
}

impl State<'_> {
    fn deliver<E: de::Error>(&mut self, r: Result<(), SinkError>) -> Result<(), E> {
        r.map_err(|e| {
            self.sink_error = Some(e);
            E::custom("the store refused the catalogue")
        })
    }
}

struct EnvelopeSeed<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SecuTix result object ({\"statusCode\": …})")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "statusCode" => self.0.envelope.status_code = map.next_value::<wire::LenientString>()?.0,
                "requestId" => self.0.envelope.request_id = map.next_value::<wire::LenientId>()?.0,
                "statusDetail" => {
                    let v: serde_json::Value = map.next_value()?;
                    self.0.envelope.status_detail = match v {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s),
                        other => Some(other.to_string()),
                    };
                }
                "catalogData" => {
                    self.0.envelope.has_catalog = true;
                    map.next_value_seed(CatalogDataSeed(&mut *self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct CatalogDataSeed<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for CatalogDataSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CatalogDataSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("catalogData: an object with seasons, or the catalogue as an XML string")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.envelope.has_catalog = false;
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.envelope.catalog_xml = Some(v.to_owned());
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.envelope.catalog_xml = Some(v);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "seasons" => map.next_value_seed(SeasonsSeed(&mut *self.0))?,
                "products" => map.next_value_seed(ProductsSeed {
                    state: &mut *self.0,
                    season: None,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct SeasonsSeed<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for SeasonsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SeasonsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of seasons")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(SeasonSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        SeasonSeed(self.0).visit_map(map)
    }
}

struct SeasonSeed<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for SeasonSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SeasonSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a season object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let index = self.0.envelope.seasons;
        self.0.envelope.seasons += 1;
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "products" {
                map.next_value_seed(ProductsSeed {
                    state: &mut *self.0,
                    season: Some(index),
                })?;
            } else if SEASON_FIELDS.contains(&key.as_str()) {
                fields.insert(key, map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let raw: RawSeason = serde_path_to_error::deserialize(serde_json::Value::Object(fields))
            .map_err(|e| de::Error::custom(format!("in the season's {}: {}", e.path(), e.inner())))?;
        let season = raw.into_domain(self.0.ctx);
        let r = self.0.sink.season(index, season);
        self.0.deliver(r)
    }
}

/// Season fields kept for [`RawSeason`]; the rest (large lists we do not use) is skipped without allocating.
pub(crate) const SEASON_FIELDS: &[&str] = &[
    "id",
    "code",
    "state",
    "start",
    "end",
    "externalName",
    "audienceCategories",
    "priceLevels",
];

struct ProductsSeed<'s, 'a> {
    state: &'s mut State<'a>,
    season: Option<u32>,
}

impl<'de> DeserializeSeed<'de> for ProductsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ProductsSeed<'_, '_> {
    fn one<E: de::Error>(&mut self, raw: RawProduct) -> Result<(), E> {
        let n = self.state.envelope.products;
        let product = raw
            .into_domain(self.state.ctx)
            .map_err(|m| E::custom(format!("product #{n}: {m}")))?;
        self.state.envelope.products += 1;
        let r = self.state.sink.product(self.season, product);
        self.state.deliver(r)
    }
}

impl<'de> Visitor<'de> for ProductsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of products")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<RawProduct>()? {
            self.one(raw)?;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let raw = RawProduct::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.one(raw)
    }
}

#[cfg(test)]
mod tests {
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
    fn trailing_garbage_is_an_error() {
        let (r, _) = parse(r#"{"statusCode":"success"} <html>"#);
        assert!(r.is_err());
    }
}
