//! Generic HTTP helpers every client of the daemon shares (SecuTix, the CMS targets, pass Culture, the CLI's
//! control client): what may leave the process and how an answer is shown in an error.
//!
//! - **No redirects** for the clients that carry credentials (SecuTix, the webhook target, pass Culture; the
//!   WordPress and Drupal targets do the same): a redirect would re-send the SOAP password, the webhook's
//!   secret headers and signature, or the API key to wherever `Location` points. The clients are built with
//!   [`reqwest::redirect::Policy::none`]; a 3xx answer is an error naming where it pointed
//!   ([`redirect_location`]).
//! - **No clear text beyond loopback** ([`clear_text_problem`]): an `http://` URL to a host other than
//!   127.0.0.0/8, `::1` or `localhost` is refused unless its section sets `allow_insecure_http = true`.
//! - **Credentials in URLs** (`https://user:password@host`) still work (reqwest sends them as Basic
//!   authentication) but are never shown: [`redact_credentials`] replaces them with `***` in every message,
//!   log line and stored error; [`error_chain`] does it for reqwest's errors, which quote the URL.
//! - **Answers in errors**: [`snippet`] (the first 200 characters of a body, on one line) and
//!   [`retry_after`] (`Retry-After` as seconds or an HTTP date).
//!
//! The listener side (connection cap, timeouts) is [`crate::net`]'s.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::text::truncate;

/// Replaces the user name and password of every URL in `text` (`scheme://user:password@host…`) with `***`.
/// Text without credentials comes back borrowed, unchanged.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, after) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority (`user:password@host:port`) ends where the path, query or fragment starts, or with
        // the text around the URL (quotes, brackets of a message, white space).
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | '\\' | ')')
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// A reqwest error with its causes, one after the other, credentials in the URL it quotes redacted.
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    redact_credentials(&reason).into_owned()
}

/// Where a 3xx answer pointed (its `Location`, credentials redacted), for the error that refuses it.
pub fn redirect_location(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| redact_credentials(l).into_owned())
        .unwrap_or_else(|| "an address it did not give (no Location header)".to_owned())
}

/// True when `url`'s host is loopback: 127.0.0.0/8, `::1` (or an IPv4-mapped loopback), `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost")
        }
        None => false,
    }
}

/// Why `url` may not be used: plain HTTP to a host beyond loopback while `allow_insecure_http` is off.
/// `secret` names what would cross the network in clear (`the SOAP password`…). `None` for HTTPS, for
/// loopback, when allowed, and for text that is not a URL (its own check reports that).
pub fn clear_text_problem(url: &str, allow_insecure_http: bool, secret: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" || allow_insecure_http || is_loopback(&parsed) {
        return None;
    }
    Some(format!(
        "\"{}\" is plain HTTP to {}, beyond loopback: {secret} would cross the network in clear. Use https://, or \
         set allow_insecure_http = true in this section if the network in between is trusted",
        redact_credentials(url),
        parsed.host_str().unwrap_or("a remote host")
    ))
}

/// A body without its byte-order mark and leading white space.
pub fn trimmed(head: &[u8]) -> &[u8] {
    let h = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = h.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(h.len());
    &h[start..]
}

/// The first 200 characters of a body, on one line, for error messages.
pub fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(trimmed(bytes));
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let t = truncate(&one_line, 200);
    if t.is_empty() {
        "(empty body)".to_owned()
    } else {
        t.to_owned()
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at: DateTime<Utc> = at.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted_wherever_they_appear() {
        assert_eq!(
            redact_credentials("http://user:pa55@cms.example.org:8080/hooks"),
            "http://***@cms.example.org:8080/hooks"
        );
        assert_eq!(
            redact_credentials(
                "error sending request for url (https://u:p%40ss@[::1]/x?y=1): connection refused; again \
                 \"http://only-user@host\""
            ),
            "error sending request for url (https://***@[::1]/x?y=1): connection refused; again \"http://***@host\""
        );
        assert!(matches!(
            redact_credentials("https://www.theatre.fr/a@b, mail me@example.org"),
            Cow::Borrowed(_)
        ));
        assert_eq!(redact_credentials("no url here"), "no url here");
    }

    #[test]
    fn clear_text_is_refused_beyond_loopback_unless_allowed() {
        for loopback in [
            "http://127.0.0.1:9000",
            "http://127.8.9.10/x",
            "http://[::1]:80",
            "http://localhost:8080",
            "http://LOCALHOST./",
        ] {
            assert_eq!(clear_text_problem(loopback, false, "the secret"), None, "{loopback}");
        }
        assert_eq!(clear_text_problem("https://mosa.ws.secutix.com", false, "x"), None);
        assert_eq!(clear_text_problem("http://10.0.0.5", true, "x"), None);
        assert_eq!(clear_text_problem("not a url", false, "x"), None);
        let p = clear_text_problem("http://user:pw@cms.example.org/hooks", false, "the signature").expect("refused");
        assert!(
            p.contains("the signature") && p.contains("allow_insecure_http = true"),
            "{p}"
        );
        assert!(p.contains("cms.example.org") && !p.contains("pw"), "{p}");
        assert!(clear_text_problem("http://localhost.example.org", false, "x").is_some());
        assert!(clear_text_problem("http://0.0.0.0:80", false, "x").is_some());
    }

    #[test]
    fn the_location_of_a_refused_redirect_is_named_without_credentials() {
        let mut h = reqwest::header::HeaderMap::new();
        assert!(redirect_location(&h).contains("no Location header"));
        h.insert(
            reqwest::header::LOCATION,
            reqwest::header::HeaderValue::from_static("https://a:b@elsewhere.example/x"),
        );
        assert_eq!(redirect_location(&h), "https://***@elsewhere.example/x");
    }
}
