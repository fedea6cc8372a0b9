//! Streaming parser for SOAP XML responses and for `getCatalog`'s catalogue XML string, on quick-xml.
//!
//! SecuTix is a Java JAX-WS service (document/literal): the body holds `<ns:methodResponse><return>` whose
//! children are the result's fields; a list is the same element repeated; a null field is omitted or
//! `xsi:nil="true"`; prefixes vary, so only **local names** are matched.
//!
//! The reader never builds the document. It walks the envelope, and for each `<products>` element (and each
//! season's own fields) it builds a `serde_json::Value` of that subtree only, which is then deserialised
//! with the same lenient wire types as REST (`wire.rs`). Memory is bounded by one product.
//!
//! Nesting is bounded too: an element that would open deeper than [`MAX_DEPTH`] levels ends the parse
//! with [`ParseError::TooDeep`], before any of the recursive steps (serde's walk of a product, dropping a
//! `serde_json::Value`) could exhaust the stack on it.
//!
//! `getCatalog` returns the catalogue as an XML **string** in `catalogData` (escaped text or CDATA). It is
//! unescaped as a stream into a file and that file is parsed with the same walker, assuming the inner
//! document uses the DTO field names of the SOAP response (its schema is not public).

use super::json::SEASON_FIELDS;
use super::parse::{CatalogSink, Envelope, MAX_DEPTH, ParseError, WireHash, wire_hasher};
use super::wire::{ConvertCtx, RawProduct, RawSeason};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::{BufRead, Write};

mod unescape;

#[allow(unused_imports)]
use unescape::*;

mod tree;

/// What a SOAP call returned, for methods whose results are small (POS config, availability).
#[derive(Debug, Clone, Default)]
pub struct SoapResult {
    /// The envelope fields.
    pub envelope: Envelope,
    /// The `<return>` element as a JSON value (field names as in REST).
    pub result: Value,
}

/// Where `catalogData`'s XML string goes while a `getCatalog` SOAP response is read.
pub type XmlStringOut<'a> = Option<&'a mut dyn Write>;

struct Cursor<R: BufRead> {
    call: String,
    reader: Reader<R>,
    buf: Vec<u8>,
    /// Open elements (local names), for error places and end-tag checks (quick-xml's own check is off
    /// because `getCatalog`'s text is consumed behind its back).
    path: Vec<String>,
    /// The product being read, reused from one product to the next.
    tree: tree::Tree,
    /// Element names seen so far.
    names: tree::Names,
    /// The bytes of the product's events, fingerprinted at its end (reused).
    seen: Vec<u8>,
    /// Elements [`Cursor::value`] may still build: a small answer's budget ([`parse_soap_result`]);
    /// unlimited for the catalogue, which is never built whole.
    values_left: usize,
}

enum Ev {
    Start { name: String, nil: bool },
    End,
    Text(String),
    Eof,
}

impl<R: BufRead> Cursor<R> {
    fn new(call: &str, reader: R) -> Self {
        let mut reader = Reader::from_reader(reader);
        let cfg = reader.config_mut();
        cfg.check_end_names = false;
        cfg.expand_empty_elements = true;
        cfg.trim_text(false);
        Self {
            call: call.to_owned(),
            reader,
            buf: Vec::with_capacity(4096),
            path: Vec::new(),
            tree: tree::Tree::default(),
            names: tree::Names::default(),
            seen: Vec::new(),
            values_left: usize::MAX,
        }
    }

    /// Reads the product element just opened into `self.tree` and returns the fingerprint of its events
    /// (see `CatalogSink::product_bytes`); consumes its closing tag.
    fn product_tree(&mut self, nil: bool) -> Result<WireHash, ParseError> {
        // The events' bytes are gathered and hashed once: blake3 is slow on many tiny updates.
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        let root = self.names.intern(
            self.path
                .last()
                .map_or("products", |p| p.split('[').next().unwrap_or(p)),
        );
        self.tree.clear();
        self.tree.start(root, nil);
        loop {
            self.buf.clear();
            let ev = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.not_well_formed(&e)),
            };
            match ev {
                Event::Start(e) => {
                    if self.path.len() + self.tree.depth() > MAX_DEPTH {
                        return Err(self.too_deep());
                    }
                    seen.push(b'<');
                    seen.extend_from_slice(AsRef::<str>::as_ref(&e).as_bytes());
                    let id = self.names.intern(e.local_name().as_ref());
                    self.tree.start(id, is_nil(&e));
                }
                Event::End(e) => {
                    seen.push(b'>');
                    let open = self.tree.open_name();
                    if self.names.get(open) != e.local_name().as_ref() {
                        let name = e.local_name().as_ref().to_owned();
                        let open = self.names.get(open).to_owned();
                        return Err(self.err(format!("</{name}> closes <{open}>: the document is not well-formed")));
                    }
                    if self.tree.end() {
                        self.path.pop();
                        let mut hasher = wire_hasher();
                        hasher.update(&seen);
                        self.seen = seen;
                        return Ok(*hasher.finalize().as_bytes());
                    }
                }
                Event::Text(t) => {
                    seen.push(b't');
                    seen.extend_from_slice(AsRef::<str>::as_ref(&t).as_bytes());
                    self.tree.text(&t.xml10_content());
                }
                Event::CData(c) => {
                    seen.push(b'c');
                    seen.extend_from_slice(AsRef::<str>::as_ref(&c).as_bytes());
                    self.tree.text(&c.into_inner());
                }
                Event::GeneralRef(r) => {
                    let name = r.to_string();
                    seen.push(b'&');
                    seen.extend_from_slice(name.as_bytes());
                    let text = match r.resolve_char_ref() {
                        Ok(Some(ch)) => ch.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(t) => t.to_owned(),
                            None => return Err(self.err(format!("unknown entity &{name};"))),
                        },
                        Err(e) => return Err(self.err(format!("bad character reference &{name};: {e}"))),
                    };
                    self.tree.text(&text);
                }
                Event::Eof => {
                    let open = self.path.last().cloned().unwrap_or_default();
                    return Err(self.err(format!("the body ends inside <{open}> (truncated?)")));
                }
                Event::Empty(_) => unreachable!("expand_empty_elements is on"),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => continue,
            }
        }
    }

    fn place(&self) -> String {
        let p = if self.path.is_empty() {
            "(document)".to_owned()
        } else if self.path.len() > 12 {
            // A hostile depth: the first levels say where, the count says how deep.
            format!("{}/… ({} levels)", self.path[..8].join("/"), self.path.len())
        } else {
            self.path.join("/")
        };
        format!("{p} (byte {})", self.reader.buffer_position())
    }

    /// The error of an element that would open past [`MAX_DEPTH`] levels.
    fn too_deep(&self) -> ParseError {
        ParseError::TooDeep {
            call: self.call.clone(),
            place: self.place(),
            limit: MAX_DEPTH,
        }
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError::Malformed {
            call: self.call.clone(),
            place: self.place(),
            message: message.into(),
        }
    }

    /// The error of a document quick-xml cannot read, at the byte where it stopped.
    fn not_well_formed(&self, e: &quick_xml::Error) -> ParseError {
        ParseError::Malformed {
            call: self.call.clone(),
            place: format!("{} (byte {})", self.path.join("/"), self.reader.error_position()),
            message: format!("not well-formed XML: {e}"),
        }
    }

    fn next(&mut self) -> Result<Ev, ParseError> {
        loop {
            self.buf.clear();
            let ev = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.not_well_formed(&e)),
            };
            match ev {
                Event::Start(e) => {
                    if self.path.len() >= MAX_DEPTH {
                        return Err(self.too_deep());
                    }
                    let name = local_name(&e);
                    let nil = is_nil(&e);
                    self.path.push(name.clone());
                    return Ok(Ev::Start { name, nil });
                }
                Event::End(e) => {
                    let name = e.local_name().as_ref().to_owned();
                    // Path entries may carry a position for messages ("seasons[2]").
                    match self.path.last() {
                        Some(open) if open.split('[').next() == Some(name.as_str()) => {
                            self.path.pop();
                            return Ok(Ev::End);
                        }
                        Some(open) => {
                            let open = open.clone();
                            return Err(self.err(format!("</{name}> closes <{open}>: the document is not well-formed")));
                        }
                        None => {
                            return Err(self.err(format!("</{name}> without an opening element")));
                        }
                    }
                }
                Event::Text(t) => return Ok(Ev::Text(t.xml10_content().into_owned())),
                Event::CData(c) => {
                    return Ok(Ev::Text(c.into_inner().into_owned()));
                }
                Event::GeneralRef(r) => {
                    let name = r.to_string();
                    let text = match r.resolve_char_ref() {
                        Ok(Some(ch)) => Ok(ch.to_string()),
                        Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                            .map(str::to_owned)
                            .ok_or_else(|| format!("unknown entity &{name};")),
                        Err(e) => Err(format!("bad character reference &{name};: {e}")),
                    };
                    return text.map(Ev::Text).map_err(|m| self.err(m));
                }
                Event::Eof => {
                    if let Some(open) = self.path.last() {
                        let open = open.clone();
                        return Err(self.err(format!("the body ends inside <{open}> (truncated?)")));
                    }
                    return Ok(Ev::Eof);
                }
                Event::Empty(_) => unreachable!("expand_empty_elements is on"),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => continue,
            }
        }
    }

    /// Skips to the end of the element just opened.
    fn skip(&mut self) -> Result<(), ParseError> {
        let depth = self.path.len();
        loop {
            match self.next()? {
                Ev::End if self.path.len() < depth => return Ok(()),
                Ev::Eof => return Err(self.err("the body ends too early (truncated?)")),
                _ => {}
            }
        }
    }

    /// Reads the element just opened as a JSON value: children → object (repeated names → array),
    /// text → string, `xsi:nil` or empty → null.
    fn value(&mut self, nil: bool) -> Result<Value, ParseError> {
        struct Frame {
            name: String,
            map: Map<String, Value>,
            text: String,
            nil: bool,
        }
        fn finish(f: Frame) -> Value {
            if !f.map.is_empty() {
                Value::Object(f.map)
            } else if f.nil || f.text.trim().is_empty() {
                Value::Null
            } else {
                Value::String(f.text)
            }
        }
        fn insert(map: &mut Map<String, Value>, name: String, v: Value) {
            match map.get_mut(&name) {
                None => {
                    map.insert(name, v);
                }
                // Arrays only come from repetition: XML has no other way to make one.
                Some(Value::Array(a)) => a.push(v),
                Some(existing) => {
                    let old = existing.take();
                    *existing = Value::Array(vec![old, v]);
                }
            }
        }
        let mut stack = vec![Frame {
            name: String::new(),
            map: Map::new(),
            text: String::new(),
            nil,
        }];
        loop {
            match self.next()? {
                Ev::Start { name, nil } => {
                    // An element is a value, and its name a key: two of the budget.
                    self.values_left = match self.values_left.checked_sub(2) {
                        Some(n) => n,
                        None => {
                            return Err(ParseError::TooManyValues {
                                call: self.call.clone(),
                                limit: usize::MAX,
                            });
                        }
                    };
                    stack.push(Frame {
                        name,
                        map: Map::new(),
                        text: String::new(),
                        nil,
                    })
                }
                Ev::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t);
                    }
                }
                Ev::End => {
                    let Some(frame) = stack.pop() else {
                        return Err(self.err("unbalanced element"));
                    };
                    match stack.last_mut() {
                        None => return Ok(finish(frame)),
                        Some(parent) => {
                            let name = frame.name.clone();
                            insert(&mut parent.map, name, finish(frame));
                        }
                    }
                }
                Ev::Eof => return Err(self.err("the body ends too early (truncated?)")),
            }
        }
    }

    /// Text content of a scalar element just opened.
    fn text(&mut self, nil: bool) -> Result<Option<String>, ParseError> {
        Ok(match self.value(nil)? {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }
}

fn local_name(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_owned()
}

fn is_nil(e: &BytesStart<'_>) -> bool {
    e.attributes()
        .flatten()
        .any(|a| a.key.local_name().as_ref() == "nil" && matches!(a.value.as_ref(), "true" | "1"))
}

/// Walks catalogue content: every `seasons` element is a season, every `products` element a product
/// (inside a season or not); anything else is skipped. Stops at the end of the element that was open
/// when called (or at the end of the document when none was).
fn walk_catalogue<R: BufRead>(
    cur: &mut Cursor<R>,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    env: &mut Envelope,
) -> Result<(), ParseError> {
    let base = cur.path.len();
    loop {
        match cur.next()? {
            Ev::Start { name, nil } => match name.as_str() {
                "seasons" | "season" => season(cur, ctx, sink, env, nil)?,
                "products" | "product" => {
                    product(cur, ctx, sink, env, None, nil)?;
                }
                _ => {}
            },
            Ev::End if cur.path.len() < base => return Ok(()),
            Ev::End | Ev::Text(_) => {}
            Ev::Eof => return Ok(()),
        }
    }
}

fn season<R: BufRead>(
    cur: &mut Cursor<R>,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    env: &mut Envelope,
    nil: bool,
) -> Result<(), ParseError> {
    let index = env.seasons;
    env.seasons += 1;
    if nil {
        cur.skip()?;
        return Ok(());
    }
    let depth = cur.path.len();
    if let Some(last) = cur.path.last_mut() {
        *last = format!("seasons[{index}]");
    }
    let mut fields = Map::new();
    loop {
        match cur.next()? {
            Ev::Start { name, nil } => {
                if name == "products" || name == "product" {
                    product(cur, ctx, sink, env, Some(index), nil)?;
                } else if SEASON_FIELDS.contains(&name.as_str()) {
                    let v = cur.value(nil)?;
                    match fields.get_mut(&name) {
                        None => {
                            fields.insert(name, v);
                        }
                        Some(Value::Array(a)) => a.push(v),
                        Some(existing) => {
                            let old = existing.take();
                            *existing = Value::Array(vec![old, v]);
                        }
                    }
                } else {
                    cur.skip()?;
                }
            }
            Ev::End if cur.path.len() < depth => break,
            Ev::End | Ev::Text(_) => {}
            Ev::Eof => return Err(cur.err("the body ends inside a season (truncated?)")),
        }
    }
    let raw: RawSeason =
        serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| ParseError::Malformed {
            call: cur.call.clone(),
            place: format!("{} season #{index}, field {}", cur.place(), e.path()),
            message: e.inner().to_string(),
        })?;
    sink.season(index, raw.into_domain(ctx))
        .map_err(|source| ParseError::Sink {
            call: cur.call.clone(),
            source,
        })
}

fn product<R: BufRead>(
    cur: &mut Cursor<R>,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    env: &mut Envelope,
    season: Option<u32>,
    nil: bool,
) -> Result<(), ParseError> {
    let hash = cur.product_tree(nil)?;
    let n = env.products;
    let sink_err = |call: &str, source| ParseError::Sink {
        call: call.to_owned(),
        source,
    };
    if sink.product_bytes(season, &hash).map_err(|e| sink_err(&cur.call, e))? {
        env.products += 1;
        return Ok(());
    }
    let bad = |cur: &Cursor<R>, place: String, message: String| ParseError::Malformed {
        call: cur.call.clone(),
        place: format!("{} product #{n}{place}", cur.place()),
        message,
    };
    let root = tree::NodeDe::root(&cur.tree, &cur.names);
    let raw = match RawProduct::deserialize(root) {
        Ok(raw) => raw,
        Err(_) => {
            // Again with path tracking, for the message.
            let e = serde_path_to_error::deserialize::<_, RawProduct>(root)
                .err()
                .map(|e| (format!(", field {}", e.path()), e.inner().to_string()))
                .unwrap_or_default();
            return Err(bad(cur, e.0, e.1));
        }
    };
    let p = raw
        .into_domain(ctx, &mut env.implausible)
        .map_err(|m| bad(cur, String::new(), m))?;
    env.products += 1;
    sink.product(season, p).map_err(|e| sink_err(&cur.call, e))
}

/// Reads the SOAP envelope down to the result element; returns the element's local name, or fails on a
/// SOAP fault or a document that is not a SOAP envelope.
fn open_result<R: BufRead>(cur: &mut Cursor<R>) -> Result<(), ParseError> {
    loop {
        match cur.next()? {
            Ev::Start { name, .. } if name == "Envelope" => break,
            Ev::Start { name, .. } => {
                return Err(cur.err(format!("expected a SOAP Envelope, found <{name}>")));
            }
            // The line break (or indentation) after `<?xml …?>` that most servers write.
            Ev::Text(t) if t.trim().is_empty() => {}
            Ev::Eof => return Err(cur.err("the body is empty")),
            _ => return Err(cur.err("expected a SOAP Envelope")),
        }
    }
    // Header (skipped), then Body.
    loop {
        match cur.next()? {
            Ev::Start { name, .. } if name == "Body" => break,
            Ev::Start { .. } => cur.skip()?,
            Ev::Text(_) => {}
            _ => return Err(cur.err("SOAP Envelope without Body")),
        }
    }
    // The response wrapper (or a Fault).
    loop {
        match cur.next()? {
            Ev::Start { name, nil } if name == "Fault" => {
                // A fault is a few lines: a small answer's budget, also inside a catalogue response.
                cur.values_left = cur.values_left.min(super::SMALL_VALUES_PER_MIB);
                let v = cur.value(nil)?;
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let (mut code, mut message) = (field("faultcode"), field("faultstring"));
                if code.is_empty() {
                    // SOAP 1.2 shape: Code/Value, Reason/Text.
                    code = v
                        .pointer("/Code/Value")
                        .and_then(Value::as_str)
                        .unwrap_or("(none)")
                        .to_owned();
                    message = v
                        .pointer("/Reason/Text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                }
                return Err(ParseError::Fault {
                    call: cur.call.clone(),
                    code,
                    message,
                });
            }
            Ev::Start { .. } => return Ok(()),
            Ev::Text(_) => {}
            _ => return Err(cur.err("empty SOAP Body")),
        }
    }
}

/// Parses a SOAP catalogue response (`getCatalogDetailed`, or `getCatalog` when `xml_out` is given: its
/// XML string is unescaped into `xml_out`), streaming products into `sink`.
pub fn parse_catalog_soap<R: BufRead>(
    call: &str,
    reader: R,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
    mut xml_out: XmlStringOut<'_>,
) -> Result<Envelope, ParseError> {
    let mut cur = Cursor::new(call, reader);
    let mut env = Envelope::default();
    open_result(&mut cur)?;
    let wrapper_depth = cur.path.len();
    loop {
        match cur.next()? {
            Ev::Start { name, nil } => match name.as_str() {
                "return" => {} // descend: the result's fields are its children
                "statusCode" => env.status_code = cur.text(nil)?,
                "statusDetail" => env.status_detail = cur.text(nil)?,
                "requestId" => {
                    let t = cur.text(nil)?;
                    env.request_id = t.as_deref().and_then(|s| s.trim().parse().ok());
                }
                "catalogData" => {
                    if nil {
                        cur.skip()?;
                        continue;
                    }
                    env.has_catalog = true;
                    match xml_out.as_deref_mut() {
                        Some(out) => stream_xml_string(&mut cur, out)?,
                        None => walk_catalogue(&mut cur, ctx, sink, &mut env)?,
                    }
                }
                _ => cur.skip()?,
            },
            Ev::End if cur.path.len() < wrapper_depth => break,
            Ev::End | Ev::Text(_) => {}
            Ev::Eof => return Err(cur.err("the body ends too early (truncated?)")),
        }
    }
    Ok(env)
}

/// Parses the catalogue XML document of `getCatalog` (after unescaping), streaming into `sink`.
pub fn parse_catalog_document<R: BufRead>(
    call: &str,
    reader: R,
    ctx: &ConvertCtx,
    sink: &mut dyn CatalogSink,
) -> Result<Envelope, ParseError> {
    let mut cur = Cursor::new(call, reader);
    let mut env = Envelope {
        has_catalog: true,
        ..Envelope::default()
    };
    walk_catalogue(&mut cur, ctx, sink, &mut env)?;
    Ok(env)
}

/// Parses a small SOAP response into its envelope and its result as a JSON value of at most `max_values`
/// values (an element counts as two: its value and its name); more is [`ParseError::TooManyValues`].
pub fn parse_soap_result(call: &str, body: &[u8], max_values: usize) -> Result<SoapResult, ParseError> {
    let mut cur = Cursor::new(call, body);
    cur.values_left = max_values;
    let limit = |e| match e {
        ParseError::TooManyValues { call, .. } => ParseError::TooManyValues {
            call,
            limit: max_values,
        },
        other => other,
    };
    open_result(&mut cur).map_err(limit)?;
    let mut v = cur.value(false).map_err(limit)?;
    if let Some(ret) = v.get_mut("return") {
        v = ret.take();
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(|s| s.trim().to_owned());
    let envelope = Envelope {
        status_code: text(&v, "statusCode"),
        request_id: text(&v, "requestId").and_then(|s| s.parse().ok()),
        status_detail: text(&v, "statusDetail"),
        ..Envelope::default()
    };
    Ok(SoapResult { envelope, result: v })
}

#[cfg(test)]
mod tests;
