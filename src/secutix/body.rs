//! Answers: bodies spooled to memory or to a temporary file (hashed on the way), bounded small answers, `statusCode` checks, and telling XML, JSON and HTML error pages apart.

#[allow(unused_imports)]
use super::*;

/// Values (numbers, texts, keys, objects, lists) an answer other than the catalogue may hold, per MiB of
/// `secutix.max_small_response_mib`. Such answers are decoded into a `serde_json::Value`, which takes up to
/// 32 times the bytes of a dense answer (`[0,0,0,…]`); counting values bounds that: at the default 4 MiB,
/// 262,144 values take at most about 40 MB, while a real answer holds one value per 20 bytes or more.
pub const SMALL_VALUES_PER_MIB: usize = 65_536;

/// The values an answer may hold under a limit of `limit_mib` MiB.
pub fn small_values(limit_mib: u64) -> usize {
    usize::try_from(limit_mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(SMALL_VALUES_PER_MIB)
}

impl Body {
    pub(super) fn reader(&mut self) -> std::io::Result<Box<dyn std::io::BufRead + Send + '_>> {
        Ok(match &mut self.data {
            BodyData::Memory(v) => Box::new(v.as_slice()),
            BodyData::File(f) => {
                f.rewind()?;
                Box::new(BufReader::with_capacity(256 * 1024, f))
            }
        })
    }
}

impl SpoolWriter {
    /// Chunks queued at most (network chunks are 16–400 KiB).
    pub(super) const QUEUE: usize = 16;
    /// Small chunks (TLS records of 16 KiB) are gathered into writes of this size; larger ones are written as
    /// they come, without a copy.
    pub(super) const BUFFER: usize = 256 * 1024;

    pub(super) fn start(file: std::fs::File) -> std::io::Result<Self> {
        let (queue, chunks) = std::sync::mpsc::sync_channel::<bytes::Bytes>(Self::QUEUE);
        let thread = std::thread::Builder::new()
            .name("secutix-spool".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(Self::BUFFER, file);
                for chunk in chunks {
                    out.write_all(&chunk)?;
                }
                out.into_inner().map_err(|e| e.into_error())
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `chunk`; an error is the writer's own (it stopped at a failed write).
    pub(super) fn write(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        let sent = self.queue.as_ref().is_some_and(|q| q.send(chunk).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.queue = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(std::io::Error::other("the writer stopped early")),
        }
    }

    /// Waits for the queued chunks to be written and returns the file.
    pub(super) fn finish(mut self) -> std::io::Result<std::fs::File> {
        self.queue = None;
        self.join()
    }

    pub(super) fn join(&mut self) -> std::io::Result<std::fs::File> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the writer thread panicked")),
            None => Err(std::io::Error::other("the writer already stopped")),
        }
    }
}

impl Drop for SpoolWriter {
    /// On an error or a cancelled call, the thread ends with the queue and drops the file.
    fn drop(&mut self) {
        self.queue = None;
    }
}

/// Decodes the body of a small call: the envelope and the result object (REST: the JSON body; SOAP: the
/// `<return>` element as a JSON value, field names as in REST). A status other than `success` is an error.
/// An answer holding more than `max_values` values is refused ([`CallError::AnswerTooLarge`]).
pub fn decode_small(
    transport: Transport,
    service: Service,
    method: &str,
    bytes: &[u8],
    max_values: usize,
) -> Result<(Envelope, Value), CallError> {
    let (env, v) = decode_result(transport, method, bytes, max_values)?;
    check_status(service, method, env, v)
}

/// Decodes the body of a small call into its envelope and result object, without judging `statusCode`.
/// At most `max_values` values (see [`SMALL_VALUES_PER_MIB`]) are built; more is
/// [`CallError::AnswerTooLarge`].
pub fn decode_result(
    transport: Transport,
    method: &str,
    bytes: &[u8],
    max_values: usize,
) -> Result<(Envelope, Value), CallError> {
    let too_many = || CallError::AnswerTooLarge {
        call: method.to_owned(),
        limit_mib: (max_values / SMALL_VALUES_PER_MIB) as u64,
    };
    Ok(match transport {
        Transport::Rest => {
            let v = json::parse_value(method, bytes, max_values).map_err(|e| match e {
                ParseError::TooManyValues { .. } => too_many(),
                other => CallError::Parse(other),
            })?;
            let text = |k: &str| {
                v.get(k).and_then(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .or_else(|| (!x.is_null()).then(|| x.to_string()))
                })
            };
            let env = Envelope {
                status_code: text("statusCode"),
                request_id: v
                    .get("requestId")
                    .and_then(|x| x.as_i64().or_else(|| x.as_str()?.parse().ok())),
                status_detail: text("statusDetail"),
                ..Envelope::default()
            };
            (env, v)
        }
        Transport::Soap => {
            let r = xml::parse_soap_result(method, bytes, max_values).map_err(|e| match e {
                ParseError::TooManyValues { .. } => too_many(),
                other => CallError::Parse(other),
            })?;
            (r.envelope, r.result)
        }
    })
}

/// Accepts `statusCode: success`; turns `in_progress` and error codes into [`CallError::Status`].
pub fn check_status(service: Service, method: &str, env: Envelope, v: Value) -> Result<(Envelope, Value), CallError> {
    match env.status() {
        CallStatus::Success => Ok((env, v)),
        CallStatus::InProgress { .. } => Err(CallError::Status {
            call: format!("{}/{method}", service.rest_name()),
            code: "in_progress".into(),
            detail: Some("SecuTix is preparing the answer; it will be asked again on the next run".into()),
        }),
        CallStatus::Failed { code, detail } => Err(CallError::Status {
            call: format!("{}/{method}", service.rest_name()),
            code,
            detail,
        }),
    }
}

pub(super) fn xml_param(out: &mut String, name: &str, v: &Value) {
    use quick_xml::escape::escape;
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|i| xml_param(out, name, i)),
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                xml_param(out, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s.as_str()))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

pub(super) fn body_head(body: &mut Body) -> Vec<u8> {
    match &mut body.data {
        BodyData::Memory(v) => v.iter().take(1024).copied().collect(),
        BodyData::File(f) => {
            let mut buf = vec![0u8; 1024];
            let n = f.rewind().and_then(|_| std::io::Read::read(f, &mut buf)).unwrap_or(0);
            buf.truncate(n);
            buf
        }
    }
}

pub(super) fn first_byte(head: &[u8]) -> Option<u8> {
    trimmed(head).first().copied()
}

pub(super) fn looks_like_xml(head: &[u8]) -> bool {
    first_byte(head) == Some(b'<')
}

pub(super) fn looks_like_html(head: &[u8]) -> bool {
    let t = String::from_utf8_lossy(&trimmed(head)[..trimmed(head).len().min(64)]).to_ascii_lowercase();
    t.starts_with("<!doctype html") || t.starts_with("<html") || t.starts_with("<head") || t.starts_with("<body")
}
