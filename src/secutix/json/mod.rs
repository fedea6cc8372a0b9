//! Streaming parser for REST JSON catalogue responses (`getCatalogDetailed`, and `getCatalog`'s envelope).
//!
//! A small scanner walks the envelope (`statusCode`, `catalogData.seasons[].products[]`…) over a buffer that
//! holds one product at a time: it finds where each product's JSON object ends (bracket matching, strings
//! skipped with memchr), fingerprints its bytes (a product whose bytes the sink already has is not parsed at
//! all, see [`CatalogSink::product_bytes`]), deserialises it from that slice with the lenient wire types and
//! hands it to the sink. Season fields are gathered the same way. The whole catalogue is never in memory,
//! and products are parsed at slice speed rather than through serde_json's byte-at-a-time reader.
//!
//! Errors name the place (`catalogData.seasons[0].products[3].event.performances[0].start`) with the line
//! and column in the whole body; a body that ends early says so. serde_json's recursion limit bounds the
//! nesting ([`MAX_DEPTH`], 128 levels): deeper is [`ParseError::TooDeep`], never a stack overflow.

use super::parse::{CatalogSink, Envelope, MAX_DEPTH, ParseError, wire_hash};
use super::wire::{self, ConvertCtx, RawProduct, RawSeason};
use serde::de::IgnoredAny;
use std::io::Read;

mod scanner;

#[allow(unused_imports)]
use scanner::*;

/// Parses a JSON catalogue response from a reader, streaming products into `sink`.
pub fn parse_catalog_reader<R: Read>(
    call: &str,
    reader: R,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    let mut sc = Scanner::new(call, reader);
    let mut env = Envelope::default();
    sc.envelope(ctx, sink, &mut env)?;
    Ok(env)
}

/// Parses a JSON catalogue response held in memory.
pub fn parse_catalog_slice(
    call: &str,
    bytes: &[u8],
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    parse_catalog_reader(call, bytes, ctx, sink)
}

/// True when serde_json stopped at its recursion limit (128 levels, [`MAX_DEPTH`]).
fn too_deep(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// Builds the error for a serde_json failure at `path`.
pub(crate) fn malformed(call: &str, path: &str, e: &serde_json::Error) -> ParseError {
    let place = if path.is_empty() || path == "?" {
        "the top level".to_owned()
    } else {
        path.to_owned()
    };
    if too_deep(e) {
        return ParseError::TooDeep {
            call: call.to_owned(),
            place: format!("{place} (line {} column {})", e.line(), e.column()),
            limit: MAX_DEPTH,
        };
    }
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

/// Parses a small answer (getPOSConfig, availability) into a `serde_json::Value` of at most `max_values`
/// values: more is [`ParseError::TooManyValues`], without building the rest. serde_json's own `Value`
/// would take up to 32 bytes per byte of a dense answer; counting bounds its memory.
pub fn parse_value(call: &str, bytes: &[u8], max_values: usize) -> Result<serde_json::Value, ParseError> {
    use serde::de::DeserializeSeed;
    let left = std::cell::Cell::new(max_values);
    let over = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = BoundedValue {
        left: &left,
        over: &over,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match v {
        Ok(v) => Ok(v),
        Err(_) if over.get() => Err(ParseError::TooManyValues {
            call: call.to_owned(),
            limit: max_values,
        }),
        Err(e) => Err(malformed(call, "", &e)),
    }
}

/// Builds a `serde_json::Value` while counting its values down from `left`.
#[derive(Clone, Copy)]
struct BoundedValue<'a> {
    left: &'a std::cell::Cell<usize>,
    /// Set when `left` ran out (the error then is that, whatever serde_json makes of it).
    over: &'a std::cell::Cell<bool>,
}

impl BoundedValue<'_> {
    fn take<E: serde::de::Error>(self) -> Result<(), E> {
        match self.left.get() {
            0 => {
                self.over.set(true);
                Err(E::custom("too many values"))
            }
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedValue<'_> {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<serde_json::Value, E> {
        self.take()?;
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<serde_json::Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        self.take()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // The key counts as a value too: it is a string of its own in memory.
            self.take()?;
            let v = map.next_value_seed(self)?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
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

/// A JSON walker over a growing buffer (see the module docs).
struct Scanner<R> {
    call: String,
    reader: R,
    buf: Vec<u8>,
    /// First byte not consumed yet.
    pos: usize,
    /// End of the bytes read into `buf`.
    len: usize,
    /// Offset in the body of `buf[0]`.
    base: u64,
    eof: bool,
    /// Line (1-based) of `buf[pos]`, and the body offset where that line starts.
    line: u64,
    line_start: u64,
    /// Where we are, for messages: `catalogData`, `seasons[0]`, `products[3]`.
    path: Vec<String>,
    /// Objects and arrays the scanner itself has opened (the envelope, `catalogData`, the lists): a value
    /// read at this point may nest [`MAX_DEPTH`] minus this many levels.
    open: usize,
}

#[cfg(test)]
mod tests;
