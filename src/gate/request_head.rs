//! Checks on a parsed request head that hyper leaves to the server, and the audit's text of
//! header values. hyper enforces the message syntax (it answers 400/431 itself, see
//! `parse_reject`); the rules here are about meaning: exactly one `Host`, agreeing with the
//! request target's authority (RFC 9112 §3.2, RFC 9113 §8.3.1), and present on HTTP/1.1.

use hyper::header::{HOST, HeaderValue};
use hyper::http::uri::Authority;
use hyper::{Request, Version};

/// Why a request head is malformed; `as_str` is told to the client and written to the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedHead {
    DuplicateHost,
    InvalidHost,
    HostDiffersFromTarget,
    MissingHost,
}

impl MalformedHead {
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedHead::DuplicateHost => {
                "more than one Host header (RFC 9112 §3.2): send exactly one"
            }
            MalformedHead::InvalidHost => "the Host header is not a valid host[:port]",
            MalformedHead::HostDiffersFromTarget => {
                "the Host header differs from the authority of the request target (RFC 9112 §3.2)"
            }
            MalformedHead::MissingHost => {
                "an HTTP/1.1 request without a Host header (RFC 9112 §3.2): send one"
            }
        }
    }
}

/// The host the request is for: its one `Host` header, else the target's authority (HTTP/2
/// `:authority`, or an HTTP/1.1 absolute-form target). `""` for an HTTP/1.0 request naming
/// neither (it matches no app). An empty `Host` is allowed (RFC 9112 §3.2) and also matches none.
pub fn request_host<B>(req: &Request<B>) -> Result<&str, MalformedHead> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(MalformedHead::DuplicateHost);
    }
    let target = req.uri().authority();
    let Some(header) = header else {
        return match target {
            Some(a) => Ok(a.as_str()),
            None if req.version() == Version::HTTP_11 => Err(MalformedHead::MissingHost),
            None => Ok(""),
        };
    };
    let text = header.to_str().map_err(|_| MalformedHead::InvalidHost)?;
    if text.is_empty() {
        return Ok(text);
    }
    // The common case, a DNS name with an optional port, is checked without parsing into an
    // `Authority` (which copies the text); IP literals and the rest take the full parse.
    if target.is_none() && is_plain_host(text) {
        return Ok(text);
    }
    let host: Authority = text.parse().map_err(|_| MalformedHead::InvalidHost)?;
    // No userinfo; a port, when there is one, is a number (`Authority` accepts `host:port`).
    let port_text = text.get(host.host().len()..).unwrap_or_default();
    if text.contains('@') || (port_text.len() > 1 && host.port_u16().is_none()) {
        return Err(MalformedHead::InvalidHost);
    }
    if let Some(target) = target {
        let default_port = match req.uri().scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        let port = |a: &Authority| a.port_u16().unwrap_or(default_port);
        // `http://user@host/` names `host`; userinfo is not part of the comparison.
        if !target.host().eq_ignore_ascii_case(host.host()) || port(target) != port(&host) {
            return Err(MalformedHead::HostDiffersFromTarget);
        }
    }
    Ok(text)
}

/// `name` or `name:port`: letters, digits, `.` and `-`, then at most a port of 1–5 digits up
/// to 65535. Every such text is also a valid `Authority` with the same host and port, so this
/// answers what the full parse would, for the texts it accepts.
fn is_plain_host(text: &str) -> bool {
    let (name, port) = match text.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (text, None),
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok()
        })
}

/// A header value as audit text: valid UTF-8 as it is, every other byte as `\xNN`, so a value
/// that is not ASCII is still recorded, and recorded without loss.
pub fn audit_text(v: &HeaderValue) -> String {
    let bytes = v.as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            use std::fmt::Write;
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(target);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn one_host_header_is_the_host() {
        let r = req(Version::HTTP_11, "/x", &["api.test:8080"]);
        assert_eq!(request_host(&r), Ok("api.test:8080"));
    }

    #[test]
    fn plain_hosts_agree_with_the_full_authority_parse() {
        for text in [
            "api.test",
            "api.test:8080",
            "a-b.example.com:65535",
            "api.test:65536",
            "api.test:",
            "api.test:80:80",
            "[::1]:8443",
            "10.0.0.1:80",
            "api_test",
            "api.test:08080",
        ] {
            // What the fast check accepts, the full parse accepts too (it never widens).
            if is_plain_host(text) {
                let host: Authority = text.parse().unwrap();
                assert!(host.port_u16().is_some() || !text.contains(':'), "{text}");
            }
        }
        assert!(is_plain_host("api.test:8080"));
        assert!(!is_plain_host("api.test:65536"));
        assert!(!is_plain_host("[::1]:8443"));
    }

    #[test]
    fn two_host_headers_are_refused_even_when_equal() {
        let r = req(Version::HTTP_11, "/", &["api.test", "api.test"]);
        assert_eq!(request_host(&r), Err(MalformedHead::DuplicateHost));
    }

    #[test]
    fn target_authority_must_match_host() {
        let ok = ["API.test", "api.test:80", "api.test"];
        for h in ok {
            let r = req(Version::HTTP_11, "http://api.test/x", &[h]);
            assert_eq!(request_host(&r), Ok(h), "{h}");
        }
        let r = req(Version::HTTP_11, "https://api.test/x", &["api.test:443"]);
        assert!(request_host(&r).is_ok());
        for h in ["other.test", "api.test:8080", "api.test.evil"] {
            let r = req(Version::HTTP_11, "http://api.test/x", &[h]);
            assert_eq!(
                request_host(&r),
                Err(MalformedHead::HostDiffersFromTarget),
                "{h}"
            );
        }
    }

    #[test]
    fn host_comes_from_the_target_when_absent() {
        let r = req(Version::HTTP_2, "https://api.test/x", &[]);
        assert_eq!(request_host(&r), Ok("api.test"));
        let r = req(Version::HTTP_11, "/x", &[]);
        assert_eq!(request_host(&r), Err(MalformedHead::MissingHost));
        let r = req(Version::HTTP_10, "/x", &[]);
        assert_eq!(request_host(&r), Ok(""));
    }

    #[test]
    fn invalid_host_values_are_refused() {
        for h in ["a b", "user@api.test", "api.test:port", "/path"] {
            let r = req(Version::HTTP_11, "/", &[h]);
            assert_eq!(request_host(&r), Err(MalformedHead::InvalidHost), "{h}");
        }
        let r = req(Version::HTTP_11, "/", &[""]);
        assert_eq!(request_host(&r), Ok(""));
    }

    #[test]
    fn audit_text_escapes_what_is_not_utf8() {
        let v = HeaderValue::from_bytes(b"bot/1 caf\xc3\xa9 \xff\xfe").unwrap();
        assert_eq!(audit_text(&v), "bot/1 café \\xFF\\xFE");
        let v = HeaderValue::from_static("curl/8.5.0");
        assert_eq!(audit_text(&v), "curl/8.5.0");
    }
}
