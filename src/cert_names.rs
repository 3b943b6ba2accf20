//! The names a certificate carries besides its subject: subject alternative names (DNS, URI,
//! email, IP) and the SPIFFE ID, a URI SAN of the form `spiffe://trust-domain/path` (the SPIFFE ID
//! specification, SPIFFE-ID.md). Parsed once per certificate (when the gate receives it, when a
//! file is inspected); policy selectors, audit events and `cert show` all read these types, and
//! the policy file's `spiffe_id` selectors are parsed by the same `SpiffeId::parse`.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// The subject alternative names of one certificate, by type, in certificate order.
///
/// DNS names are lowercased (they compare case-insensitively); URIs and emails are kept as
/// written. Other name types (directory names, other names …) are not selectable and not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubjectAltNames {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub email: Vec<String>,
    pub ip: Vec<IpAddr>,
}

impl SubjectAltNames {
    /// Whether the certificate has no selectable SAN.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.uri.is_empty() && self.email.is_empty() && self.ip.is_empty()
    }

    /// Every SAN in openssl's notation (`DNS:api.example.com`, `URI:spiffe://…`,
    /// `email:ops@example.com`, `IP:10.0.0.1`), the form audit events and `cert show` use.
    pub fn labelled(&self) -> Vec<String> {
        let mut out =
            Vec::with_capacity(self.dns.len() + self.uri.len() + self.email.len() + self.ip.len());
        out.extend(self.dns.iter().map(|d| format!("DNS:{d}")));
        out.extend(self.uri.iter().map(|u| format!("URI:{u}")));
        out.extend(self.email.iter().map(|e| format!("email:{e}")));
        out.extend(self.ip.iter().map(|ip| format!("IP:{ip}")));
        out
    }

    /// The certificate's SPIFFE ID: its only URI SAN, when that is a valid SPIFFE ID. A
    /// certificate with more than one URI SAN has none (an X.509-SVID carries exactly one, and
    /// the SPIFFE spec says such a certificate must be refused for SPIFFE matching).
    pub fn spiffe_id(&self) -> Option<SpiffeId> {
        match self.uri.as_slice() {
            [only] => SpiffeId::parse(only).ok(),
            _ => None,
        }
    }

    /// Why `spiffe_id` is `None` although a URI SAN looks like one, for `cert show` and explain.
    pub fn spiffe_problem(&self) -> Option<String> {
        let spiffe_like = self
            .uri
            .iter()
            .filter(|u| {
                u.get(..9)
                    .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
            })
            .count();
        if spiffe_like == 0 {
            return None;
        }
        match self.uri.as_slice() {
            [only] => SpiffeId::parse(only)
                .err()
                .map(|e| format!("URI SAN {only:?} is not a valid SPIFFE ID: {e}")),
            many => Some(format!(
                "{} URI SANs: a SPIFFE certificate carries exactly one, so none is used as the SPIFFE ID",
                many.len()
            )),
        }
    }
}

/// Longest SPIFFE ID accepted (the spec's limit for URI SANs).
const MAX_ID_BYTES: usize = 2048;
/// Longest trust domain name accepted (the spec's limit).
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// A valid SPIFFE ID: `spiffe://` + trust domain + optional path of `/segment`s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    text: Box<str>,
    /// Byte index where the path starts (the end of the trust domain).
    path_start: usize,
}

/// Why a string is not a SPIFFE ID (the sentences of the spec's rules, as go-spiffe words them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("it must start with \"spiffe://\" (lowercase scheme)")]
    Scheme,
    #[error("the trust domain is missing")]
    MissingTrustDomain,
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes and underscores (no port, user info or uppercase)"
    )]
    TrustDomainChars,
    #[error("the trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes")]
    TrustDomainTooLong,
    #[error("the path cannot contain empty segments (`//`)")]
    EmptySegment,
    #[error("the path cannot contain `.` or `..` segments")]
    DotSegment,
    #[error("the path cannot end with `/`")]
    TrailingSlash,
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes and underscores (no query, fragment or percent-encoding)"
    )]
    PathChars,
    #[error("it is longer than {MAX_ID_BYTES} bytes")]
    TooLong,
}

impl SpiffeId {
    /// Parse `text` per the SPIFFE ID specification.
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if text.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or(SpiffeIdError::Scheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        if td.is_empty() {
            return Err(SpiffeIdError::MissingTrustDomain);
        }
        if td.len() > MAX_TRUST_DOMAIN_BYTES {
            return Err(SpiffeIdError::TrustDomainTooLong);
        }
        if !td.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        }) {
            return Err(SpiffeIdError::TrustDomainChars);
        }
        if !path.is_empty() {
            if path.ends_with('/') {
                return Err(SpiffeIdError::TrailingSlash);
            }
            for seg in path[1..].split('/') {
                match seg {
                    "" => return Err(SpiffeIdError::EmptySegment),
                    "." | ".." => return Err(SpiffeIdError::DotSegment),
                    s if !s
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) =>
                    {
                        return Err(SpiffeIdError::PathChars);
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            text: text.into(),
            path_start: "spiffe://".len() + td_len,
        })
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.text["spiffe://".len()..self.path_start]
    }

    /// The path, e.g. `/ns/prod/sa/deployer` (empty for a trust domain's own ID).
    pub fn path(&self) -> &str {
        &self.text[self.path_start..]
    }

    /// Whether `self` is `prefix` or below it: same trust domain, and `prefix`'s path is a
    /// whole-segment prefix of ours (`/ns/prod` covers `/ns/prod/sa/x`, not `/ns/production`).
    pub fn is_under(&self, prefix: &SpiffeId) -> bool {
        if self.trust_domain() != prefix.trust_domain() {
            return false;
        }
        let (ours, theirs) = (self.path(), prefix.path());
        match ours.strip_prefix(theirs) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Normalise a SHA-256 given as hex (any case, colons allowed) to 64 lowercase hex digits.
pub fn normalize_sha256_hex(text: &str) -> Result<String, String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "{text:?} is not a SHA-256 in hex (expected 64 hex digits, colons allowed)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_a_workload_id() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/deployer").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa/deployer");
        let td = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(td.path(), "");
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        use SpiffeIdError::*;
        let cases = [
            ("https://example.org/a", Scheme),
            ("SPIFFE://example.org/a", Scheme),
            ("spiffe://", MissingTrustDomain),
            ("spiffe:///a", MissingTrustDomain),
            ("spiffe://Example.org/a", TrustDomainChars),
            ("spiffe://example.org:8443/a", TrustDomainChars),
            ("spiffe://user@example.org/a", TrustDomainChars),
            ("spiffe://example.org/a//b", EmptySegment),
            ("spiffe://example.org/a/./b", DotSegment),
            ("spiffe://example.org/a/..", DotSegment),
            ("spiffe://example.org/a/", TrailingSlash),
            ("spiffe://example.org/", TrailingSlash),
            ("spiffe://example.org/a?b", PathChars),
            ("spiffe://example.org/a#b", PathChars),
            ("spiffe://example.org/a%20b", PathChars),
        ];
        for (text, want) in cases {
            assert_eq!(SpiffeId::parse(text), Err(want), "{text}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_ID_BYTES));
        assert_eq!(SpiffeId::parse(&long), Err(TooLong));
    }

    #[test]
    fn prefix_is_by_whole_segments_within_one_trust_domain() {
        let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/deployer").unwrap();
        let p = |s| SpiffeId::parse(s).unwrap();
        assert!(id.is_under(&p("spiffe://example.org")));
        assert!(id.is_under(&p("spiffe://example.org/ns/prod")));
        assert!(id.is_under(&p("spiffe://example.org/ns/prod/sa/deployer")));
        assert!(!id.is_under(&p("spiffe://example.org/ns/pro")));
        assert!(!id.is_under(&p("spiffe://other.org/ns/prod")));
        assert!(
            !p("spiffe://example.org/ns/production").is_under(&p("spiffe://example.org/ns/prod"))
        );
    }

    #[test]
    fn more_than_one_uri_san_means_no_spiffe_id() {
        let mut san = SubjectAltNames {
            uri: vec!["spiffe://example.org/a".into()],
            ..Default::default()
        };
        assert_eq!(san.spiffe_id().unwrap().as_str(), "spiffe://example.org/a");
        assert_eq!(san.spiffe_problem(), None);
        san.uri.push("https://example.org/".into());
        assert_eq!(san.spiffe_id(), None);
        assert!(san.spiffe_problem().unwrap().contains("2 URI SANs"));
    }

    #[test]
    fn labelled_uses_openssl_notation() {
        let san = SubjectAltNames {
            dns: vec!["a.example".into()],
            uri: vec!["spiffe://example.org/a".into()],
            email: vec!["ops@example.org".into()],
            ip: vec!["10.0.0.1".parse().unwrap()],
        };
        assert_eq!(
            san.labelled(),
            [
                "DNS:a.example",
                "URI:spiffe://example.org/a",
                "email:ops@example.org",
                "IP:10.0.0.1"
            ]
        );
    }

    #[test]
    fn sha256_hex_normalises_case_and_colons() {
        let h = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_sha256_hex(&h).unwrap(), "ab".repeat(32));
        assert!(normalize_sha256_hex("abc").is_err());
        assert!(normalize_sha256_hex(&"zz".repeat(32)).is_err());
    }

    proptest! {
        /// Parsing never panics, and what parses prints back as itself and is under itself and
        /// under its trust domain.
        #[test]
        fn parse_is_total_and_round_trips(text in "spiffe://[a-zA-Z0-9._:@-]{0,12}(/[a-zA-Z0-9._%?-]{0,6}){0,4}/?") {
            if let Ok(id) = SpiffeId::parse(&text) {
                prop_assert_eq!(id.to_string(), text);
                prop_assert!(id.is_under(&id));
                let td = SpiffeId::parse(&format!("spiffe://{}", id.trust_domain())).unwrap();
                prop_assert!(id.is_under(&td));
            }
        }
    }
}
