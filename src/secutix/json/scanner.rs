//! The streaming scanner of a REST catalogue: it walks the response's structure itself and hands each product's bytes to serde_json, within the nesting limit.

#[allow(unused_imports)]
use super::*;

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// serde_json's message without its " at line L column C" (positions are recomputed for the whole body).
pub(super) fn bare_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) if e.line() > 0 => s[..i].to_owned(),
        _ => s,
    }
}

impl<R: Read> Scanner<R> {
    pub(super) fn new(call: &str, reader: R) -> Self {
        Self {
            call: call.to_owned(),
            reader,
            buf: vec![0; 256 * 1024],
            pos: 0,
            len: 0,
            base: 0,
            eof: false,
            line: 1,
            line_start: 0,
            path: Vec::new(),
            open: 0,
        }
    }

    pub(super) fn place(&self) -> String {
        if self.path.is_empty() {
            "the top level".to_owned()
        } else {
            self.path.join(".")
        }
    }

    /// Line and column (1-based) of `buf[pos + k]`.
    pub(super) fn locate(&self, k: usize) -> (u64, u64) {
        let slice = &self.buf[self.pos..(self.pos + k).min(self.len)];
        let mut line = self.line;
        let mut start = self.line_start;
        for i in memchr::memchr_iter(b'\n', slice) {
            line += 1;
            start = self.base + (self.pos + i) as u64 + 1;
        }
        let at = self.base + (self.pos + k) as u64;
        (line, at - start + 1)
    }

    pub(super) fn err_at(&self, k: usize, message: impl std::fmt::Display) -> ParseError {
        let (line, column) = self.locate(k);
        ParseError::Malformed {
            call: self.call.clone(),
            place: self.place(),
            message: format!("{message} at line {line} column {column}"),
        }
    }

    pub(super) fn truncated(&self) -> ParseError {
        self.err_at(self.len - self.pos, "the body ends too early (truncated?)")
    }

    /// A serde_json error inside the value at `pos`, positioned in the whole body.
    pub(super) fn value_err(&self, e: &serde_json::Error, inner_path: &str) -> ParseError {
        let (sl, sc) = self.locate(0);
        let (line, column) = match (e.line() as u64, e.column() as u64) {
            (0, _) => (sl, sc),
            (1, c) => (sl, sc + c.saturating_sub(1)),
            (l, c) => (sl + l - 1, c),
        };
        let mut place = self.place();
        if !inner_path.is_empty() && inner_path != "?" && inner_path != "." {
            place = format!("{place}.{inner_path}");
        }
        if too_deep(e) {
            let segments: Vec<&str> = place.split('.').collect();
            if segments.len() > 12 {
                place = format!("{}.… ({} levels)", segments[..8].join("."), segments.len());
            }
            return ParseError::TooDeep {
                call: self.call.clone(),
                place: format!("{place} (line {line} column {column})"),
                limit: MAX_DEPTH,
            };
        }
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the body ends too early (truncated?)".to_owned(),
            _ => bare_message(e),
        };
        ParseError::Malformed {
            call: self.call.clone(),
            place,
            message: format!("{what} at line {line} column {column}"),
        }
    }

    /// Reads more of the body, keeping `buf[pos..len]`; false at the end.
    pub(super) fn fill(&mut self) -> Result<bool, ParseError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.base += self.pos as u64;
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ParseError::Io {
                        call: self.call.clone(),
                        source,
                    });
                }
            }
        }
    }

    pub(super) fn consume(&mut self, n: usize) {
        for i in memchr::memchr_iter(b'\n', &self.buf[self.pos..self.pos + n]) {
            self.line += 1;
            self.line_start = self.base + (self.pos + i) as u64 + 1;
        }
        self.pos += n;
    }

    /// The next byte after whitespace, not consumed; `None` at the end of the body.
    pub(super) fn peek(&mut self) -> Result<Option<u8>, ParseError> {
        loop {
            while self.pos < self.len {
                let b = self.buf[self.pos];
                if !is_ws(b) {
                    return Ok(Some(b));
                }
                self.consume(1);
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    pub(super) fn peek_some(&mut self) -> Result<u8, ParseError> {
        self.peek()?.ok_or_else(|| self.truncated())
    }

    pub(super) fn expect(&mut self, b: u8, what: &str) -> Result<(), ParseError> {
        let got = self.peek_some()?;
        if got != b {
            return Err(self.err_at(0, format!("expected {what}, found {}", show(got))));
        }
        self.consume(1);
        Ok(())
    }

    /// Deserialises the value at `pos` (after whitespace) as `T` without consuming it; returns it and its
    /// length. A value cut by the end of the buffer is retried with more of the body (the buffer keeps at
    /// least 256 KiB ahead, more than a product, so retries are rare).
    pub(super) fn parse_at<T: serde::de::DeserializeOwned>(&mut self) -> Result<(T, usize), ParseError> {
        self.peek_some()?;
        let mut want = 256 * 1024;
        loop {
            while self.len - self.pos < want && self.fill()? {}
            let mut stream = serde_json::Deserializer::from_slice(&self.buf[self.pos..self.len]).into_iter::<T>();
            match stream.next() {
                Some(Ok(v)) => {
                    let n = stream.byte_offset();
                    // A number that ends with the buffer may go on in the next bytes.
                    if self.pos + n < self.len || self.eof {
                        self.check_depth(n)?;
                        return Ok((v, n));
                    }
                }
                Some(Err(e)) if e.is_eof() && !self.eof => {}
                Some(Err(e)) if e.is_eof() => return Err(self.value_err(&e, "")),
                Some(Err(_)) => {
                    // Again with path tracking, for the message.
                    let mut de = serde_json::Deserializer::from_slice(&self.buf[self.pos..self.len]);
                    let r: Result<T, _> = serde_path_to_error::deserialize(&mut de);
                    return Err(match r {
                        Err(e) => self.value_err(e.inner(), &e.path().to_string()),
                        Ok(_) => self.err_at(0, "invalid value"),
                    });
                }
                None => return Err(self.truncated()),
            }
            want = (self.len - self.pos) * 2;
        }
    }

    /// Refuses the well-formed value `buf[pos..pos + n]` when it nests deeper than the document may.
    /// serde_json limits the values it deserialises, but skips what it ignores (unknown fields) without
    /// any limit; this one pass over the value's bytes makes the limit hold for everything.
    pub(super) fn check_depth(&self, n: usize) -> Result<(), ParseError> {
        let limit = MAX_DEPTH.saturating_sub(self.open);
        match deeper_than(&self.buf[self.pos..self.pos + n], limit) {
            None => Ok(()),
            Some(at) => {
                let (line, column) = self.locate(at);
                Err(ParseError::TooDeep {
                    call: self.call.clone(),
                    place: format!("{} (line {line} column {column})", self.place()),
                    limit: MAX_DEPTH,
                })
            }
        }
    }

    /// The length of the well-formed value at `pos`, which is then entirely in the buffer.
    pub(super) fn value_len(&mut self) -> Result<usize, ParseError> {
        self.parse_at::<IgnoredAny>().map(|(_, n)| n)
    }

    /// Deserialises the value at `pos` as `T` (with the path of a failure), and consumes it.
    pub(super) fn value<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ParseError> {
        let (v, n) = self.parse_at::<T>()?;
        self.consume(n);
        Ok(v)
    }

    /// Skips the value at `pos` (checking it is well-formed JSON).
    pub(super) fn skip(&mut self) -> Result<(), ParseError> {
        self.value::<IgnoredAny>().map(|_| ())
    }

    /// A key and its colon. `first` tracks the comma between members. `None` at the closing brace.
    pub(super) fn key(&mut self, first: &mut bool) -> Result<Option<String>, ParseError> {
        match self.peek_some()? {
            b'}' => {
                self.consume(1);
                return Ok(None);
            }
            b',' if !*first => self.consume(1),
            b if *first => {
                if b != b'"' {
                    return Err(self.err_at(0, format!("expected a key or '}}', found {}", show(b))));
                }
            }
            b => return Err(self.err_at(0, format!("expected ',' or '}}', found {}", show(b)))),
        }
        *first = false;
        if self.peek_some()? != b'"' {
            let b = self.peek_some()?;
            return Err(self.err_at(0, format!("expected a key, found {}", show(b))));
        }
        let key: String = self.value()?;
        self.expect(b':', "':'")?;
        Ok(Some(key))
    }

    /// `,` between elements or the closing `]`; true when another element follows.
    pub(super) fn next_element(&mut self, first: &mut bool) -> Result<bool, ParseError> {
        match self.peek_some()? {
            b']' => {
                self.consume(1);
                Ok(false)
            }
            _ if *first => {
                *first = false;
                Ok(true)
            }
            b',' => {
                self.consume(1);
                Ok(true)
            }
            b => Err(self.err_at(0, format!("expected ',' or ']', found {}", show(b)))),
        }
    }

    pub(super) fn envelope(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
    ) -> Result<(), ParseError> {
        match self.peek()? {
            Some(b'{') => {
                self.consume(1);
                self.open += 1;
            }
            Some(b) => {
                return Err(self.err_at(
                    0,
                    format!(
                        "expected a SecuTix result object ({{\"statusCode\": …}}), found {}",
                        show(b)
                    ),
                ));
            }
            None => return Err(self.err_at(0, "the body is empty")),
        }
        let mut first = true;
        while let Some(key) = self.key(&mut first)? {
            match key.as_str() {
                "statusCode" => env.status_code = self.field::<wire::LenientString>(&key)?.0,
                "requestId" => env.request_id = self.field::<wire::LenientId>(&key)?.0,
                "statusDetail" => {
                    env.status_detail = match self.field::<serde_json::Value>(&key)? {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s),
                        other => Some(other.to_string()),
                    }
                }
                "catalogData" => {
                    self.path.push(key);
                    self.catalog_data(ctx, sink, env)?;
                    self.path.pop();
                }
                _ => self.skip()?,
            }
        }
        if let Some(b) = self.peek()? {
            return Err(self.err_at(0, format!("trailing characters after the result object: {}", show(b))));
        }
        Ok(())
    }

    pub(super) fn field<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<T, ParseError> {
        self.path.push(key.to_owned());
        let v = self.value();
        self.path.pop();
        v
    }

    pub(super) fn catalog_data(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
    ) -> Result<(), ParseError> {
        match self.peek_some()? {
            b'n' => {
                self.skip()?;
                env.has_catalog = false;
            }
            b'"' => {
                env.has_catalog = true;
                env.catalog_xml = Some(self.value::<String>()?);
            }
            b'{' => {
                env.has_catalog = true;
                self.consume(1);
                self.open += 1;
                let mut first = true;
                while let Some(key) = self.key(&mut first)? {
                    match key.as_str() {
                        "seasons" => {
                            self.path.push(key);
                            self.seasons(ctx, sink, env)?;
                            self.path.pop();
                        }
                        "products" => {
                            self.path.push(key);
                            self.products(ctx, sink, env, None)?;
                            self.path.pop();
                        }
                        _ => self.skip()?,
                    }
                }
                self.open -= 1;
            }
            b => {
                return Err(self.err_at(
                    0,
                    format!(
                        "expected catalogData: an object with seasons, or the catalogue as an XML string, found {}",
                        show(b)
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn seasons(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
    ) -> Result<(), ParseError> {
        match self.peek_some()? {
            b'n' => self.skip(),
            b'{' => self.season(ctx, sink, env),
            b'[' => {
                self.consume(1);
                self.open += 1;
                let mut first = true;
                let mut n = 0;
                while self.next_element(&mut first)? {
                    if let Some(last) = self.path.last_mut() {
                        *last = format!("seasons[{n}]");
                    }
                    self.season(ctx, sink, env)?;
                    n += 1;
                }
                self.open -= 1;
                if let Some(last) = self.path.last_mut() {
                    *last = "seasons".into();
                }
                Ok(())
            }
            b => Err(self.err_at(0, format!("expected a list of seasons, found {}", show(b)))),
        }
    }

    pub(super) fn season(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
    ) -> Result<(), ParseError> {
        let index = env.seasons;
        env.seasons += 1;
        self.expect(b'{', "a season object")?;
        self.open += 1;
        // The kept fields as a small JSON object, deserialised at the end of the season.
        let mut fields = Vec::from(&b"{"[..]);
        let mut first = true;
        while let Some(key) = self.key(&mut first)? {
            if key == "products" {
                self.path.push(key);
                self.products(ctx, sink, env, Some(index))?;
                self.path.pop();
            } else if SEASON_FIELDS.contains(&key.as_str()) {
                let n = self.value_len()?;
                if fields.len() > 1 {
                    fields.push(b',');
                }
                // Keys of SEASON_FIELDS need no escaping.
                fields.push(b'"');
                fields.extend_from_slice(key.as_bytes());
                fields.extend_from_slice(b"\":");
                fields.extend_from_slice(&self.buf[self.pos..self.pos + n]);
                // Checked here, so that a syntax error points at the field.
                self.field::<IgnoredAny>(&key)?;
            } else {
                self.skip()?;
            }
        }
        self.open -= 1;
        fields.push(b'}');
        let mut de = serde_json::Deserializer::from_slice(&fields);
        let raw: RawSeason = serde_path_to_error::deserialize(&mut de).map_err(|e| ParseError::Malformed {
            call: self.call.clone(),
            place: self.place(),
            message: format!("in the season's {}: {}", e.path(), bare_message(e.inner())),
        })?;
        sink.season(index, raw.into_domain(ctx))
            .map_err(|source| ParseError::Sink {
                call: self.call.clone(),
                source,
            })
    }

    pub(super) fn products(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
        season: Option<u32>,
    ) -> Result<(), ParseError> {
        match self.peek_some()? {
            b'n' => self.skip(),
            b'{' => self.product(ctx, sink, env, season),
            b'[' => {
                self.consume(1);
                self.open += 1;
                let mut first = true;
                let mut n = 0;
                while self.next_element(&mut first)? {
                    if let Some(last) = self.path.last_mut() {
                        *last = format!("products[{n}]");
                    }
                    self.product(ctx, sink, env, season)?;
                    n += 1;
                }
                self.open -= 1;
                if let Some(last) = self.path.last_mut() {
                    *last = "products".into();
                }
                Ok(())
            }
            b => Err(self.err_at(0, format!("expected a list of products, found {}", show(b)))),
        }
    }

    pub(super) fn product(
        &mut self,
        ctx: &ConvertCtx,
        sink: &mut dyn CatalogSink,
        env: &mut Envelope,
        season: Option<u32>,
    ) -> Result<(), ParseError> {
        let sink_err = |call: &str, source| ParseError::Sink {
            call: call.to_owned(),
            source,
        };
        let raw: RawProduct = if sink.skips_known_products() {
            // Fingerprint first: an unchanged product is skipped (after a well-formedness check).
            let n = self.value_len()?;
            let hash = wire_hash(&self.buf[self.pos..self.pos + n]);
            if sink.product_bytes(season, &hash).map_err(|e| sink_err(&self.call, e))? {
                self.consume(n);
                env.products += 1;
                return Ok(());
            }
            self.value()?
        } else {
            let (raw, n) = self.parse_at::<RawProduct>()?;
            let hash = wire_hash(&self.buf[self.pos..self.pos + n]);
            let known = sink.product_bytes(season, &hash).map_err(|e| sink_err(&self.call, e))?;
            self.consume(n);
            if known {
                env.products += 1;
                return Ok(());
            }
            raw
        };
        let count = env.products;
        let product = raw
            .into_domain(ctx, &mut env.implausible)
            .map_err(|m| self.err_at(0, format!("product #{count}: {m}")))?;
        env.products += 1;
        sink.product(season, product).map_err(|source| ParseError::Sink {
            call: self.call.clone(),
            source,
        })
    }
}

/// The offset of the first `[` or `{` of `value` (well-formed JSON) that opens level `limit + 1`, if any.
/// Strings are skipped (memchr to their closing quote), so brackets inside texts do not count.
pub(super) fn deeper_than(value: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'"' => {
                // To the closing quote: the first one not escaped.
                i += 1;
                loop {
                    let k = memchr::memchr2(b'"', b'\\', value.get(i..)?)?;
                    if value[i + k] == b'\\' {
                        i += k + 2;
                    } else {
                        i += k;
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}
