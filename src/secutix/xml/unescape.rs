//! `getCatalog`'s catalogue travels as escaped text inside the SOAP answer: it is unescaped while streaming (entities, character references, CDATA) into the inner document's parser.

#[allow(unused_imports)]
use super::*;

/// Copies the text content of the element just opened (escaped text and CDATA sections) to `out`,
/// unescaped, without holding it in memory; consumes the closing tag.
pub(super) fn stream_xml_string<R: BufRead>(cur: &mut Cursor<R>, out: &mut dyn Write) -> Result<(), ParseError> {
    let call = cur.call.clone();
    let io = |e: std::io::Error| ParseError::Io {
        call: call.clone(),
        source: e,
    };
    let mut state = Unescape::default();
    loop {
        let chunk = cur.reader.get_mut().fill_buf().map_err(io)?;
        if chunk.is_empty() {
            return Err(cur.err("the body ends inside catalogData (truncated?)"));
        }
        let (used, done) = state.feed(chunk, out).map_err(|m| cur.err(m))?;
        cur.reader.get_mut().consume(used);
        if let Some(close) = done {
            if close != "catalogData" {
                return Err(cur.err(format!("</{close}> inside catalogData")));
            }
            cur.path.pop();
            return Ok(());
        }
    }
}

/// State machine that unescapes XML text content across buffer boundaries.
#[derive(Default)]
pub(super) struct Unescape {
    mode: Mode,
    /// Pending bytes of an entity, of `<![CDATA[`, of `]]>` or of the closing tag's name.
    pending: Vec<u8>,
}

#[derive(Default, PartialEq)]
pub(super) enum Mode {
    #[default]
    Text,
    Entity,
    Markup,
    Cdata,
    Close,
}

pub(super) const CDATA_OPEN: &[u8] = b"<![CDATA[";

impl Unescape {
    /// Consumes bytes of `chunk`; returns how many, and the closing tag's name once it has been read.
    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut dyn Write) -> Result<(usize, Option<String>), String> {
        let w = |out: &mut dyn Write, b: &[u8]| {
            out.write_all(b)
                .map_err(|e| format!("cannot write the catalogue XML: {e}"))
        };
        let mut i = 0;
        while i < chunk.len() {
            match self.mode {
                Mode::Text => match memchr::memchr2(b'&', b'<', &chunk[i..]) {
                    None => {
                        w(out, &chunk[i..])?;
                        i = chunk.len();
                    }
                    Some(k) => {
                        w(out, &chunk[i..i + k])?;
                        self.pending.clear();
                        self.mode = if chunk[i + k] == b'&' {
                            Mode::Entity
                        } else {
                            Mode::Markup
                        };
                        if self.mode == Mode::Markup {
                            self.pending.push(b'<');
                        }
                        i += k + 1;
                    }
                },
                Mode::Entity => {
                    let b = chunk[i];
                    i += 1;
                    if b == b';' {
                        let name = String::from_utf8_lossy(&self.pending).into_owned();
                        let text = resolve_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?;
                        w(out, text.as_bytes())?;
                        self.mode = Mode::Text;
                    } else if self.pending.len() > 32 {
                        return Err("unterminated entity reference".into());
                    } else {
                        self.pending.push(b);
                    }
                }
                Mode::Markup => {
                    let b = chunk[i];
                    i += 1;
                    if self.pending.len() == 1 && b == b'/' {
                        self.pending.clear();
                        self.mode = Mode::Close;
                        continue;
                    }
                    self.pending.push(b);
                    if !CDATA_OPEN.starts_with(&self.pending) {
                        return Err(
                            "an element inside catalogData, where the catalogue XML string was expected".into(),
                        );
                    }
                    if self.pending.len() == CDATA_OPEN.len() {
                        self.pending.clear();
                        self.mode = Mode::Cdata;
                    }
                }
                Mode::Cdata => {
                    let b = chunk[i];
                    i += 1;
                    // pending holds the ']' characters seen so far (at most two), or "]]" before '>'.
                    if b == b']' {
                        if self.pending.len() == 2 {
                            w(out, b"]")?;
                        } else {
                            self.pending.push(b);
                        }
                    } else if b == b'>' && self.pending.len() == 2 {
                        self.pending.clear();
                        self.mode = Mode::Text;
                    } else {
                        w(out, &self.pending)?;
                        self.pending.clear();
                        w(out, &[b])?;
                    }
                }
                Mode::Close => {
                    let b = chunk[i];
                    i += 1;
                    if b == b'>' {
                        let name = String::from_utf8_lossy(&self.pending).into_owned();
                        let local = name.rsplit(':').next().unwrap_or(&name).trim().to_owned();
                        return Ok((i, Some(local)));
                    }
                    if self.pending.len() > 256 {
                        return Err("closing tag too long".into());
                    }
                    self.pending.push(b);
                }
            }
        }
        Ok((i, None))
    }
}

pub(super) fn resolve_entity(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0').map(String::from);
    }
    quick_xml::escape::resolve_predefined_entity(name).map(str::to_owned)
}
