//! Compiled selectors. Matching is allocation-free: certificate names (SANs, SPIFFE ID, SPKI
//! pin) were parsed once when the certificate arrived, so a selector only compares.

use std::collections::HashSet;

use ipnet::IpNet;
use regex::Regex;

use super::{Identity, Request};
use crate::cert_names::SpiffeId;
use crate::credential::oidc::ClaimChecks;

/// One compiled selector.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Any of these token names (all `service_token` selectors of one include list merge here).
    ServiceTokens(HashSet<Box<str>>),
    /// One token name (in require/exclude lists, where each selector stands alone).
    ServiceToken(Box<str>),
    AnyServiceToken,
    ValidCertificate,
    /// Anchored regex over the certificate CN.
    CommonName(Regex),
    Issuer(Regex),
    Organization(Regex),
    CertCountry(Vec<Box<str>>),
    Ip(Vec<IpNet>),
    Country(Vec<Box<str>>),
    Everyone,
    /// Any DNS SAN (lowercased) matches.
    SanDns(NamePattern),
    SanUri(NamePattern),
    SanEmail(NamePattern),
    /// Any IP SAN lies in one of the nets.
    SanIp(Vec<IpNet>),
    /// The certificate's SPIFFE ID is one of these.
    SpiffeId(Vec<SpiffeId>),
    /// The certificate's SPIFFE ID is this one or below it (same trust domain, path prefix by
    /// whole segments).
    SpiffeUnder(SpiffeId),
    /// The SubjectPublicKeyInfo's SHA-256 is one of these (lowercase hex).
    SpkiSha256(Vec<Box<str>>),
    /// An OIDC workload of this issuer (its `[[oidc_issuer]]` name) whose claims all match.
    Oidc {
        issuer: Box<str>,
        claims: ClaimChecks,
    },
    /// An OIDC workload (any issuer) whose claims all match.
    OidcClaims(ClaimChecks),
}

/// Exact values (any of) or one anchored regex, over one kind of SAN.
#[derive(Debug, Clone)]
pub enum NamePattern {
    Exact(Vec<Box<str>>),
    Regex(Regex),
}

impl NamePattern {
    /// Whether any of `names` matches.
    fn any(&self, names: &[String]) -> bool {
        match self {
            NamePattern::Exact(values) => names.iter().any(|n| values.iter().any(|v| **v == **n)),
            NamePattern::Regex(re) => names.iter().any(|n| re.is_match(n)),
        }
    }

    fn describe(&self, key: &str) -> String {
        match self {
            NamePattern::Exact(v) => format!("{key} in {v:?}"),
            NamePattern::Regex(re) => format!("{key} ~ {}", re.as_str()),
        }
    }
}

impl Matcher {
    /// Whether the request satisfies this selector.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        match self {
            Matcher::ServiceTokens(names) => {
                matches!(req.identity, Identity::Token { name } if names.contains(name))
            }
            Matcher::ServiceToken(n) => {
                matches!(req.identity, Identity::Token { name } if name == &**n)
            }
            Matcher::AnyServiceToken => matches!(req.identity, Identity::Token { .. }),
            Matcher::ValidCertificate => matches!(req.identity, Identity::Cert(_)),
            Matcher::CommonName(re) => cert(req)
                .and_then(|c| c.common_name.as_deref())
                .is_some_and(|cn| re.is_match(cn)),
            Matcher::Issuer(re) => cert(req).is_some_and(|c| re.is_match(&c.issuer)),
            Matcher::Organization(re) => cert(req)
                .and_then(|c| c.organization.as_deref())
                .is_some_and(|o| re.is_match(o)),
            Matcher::CertCountry(list) => cert(req)
                .and_then(|c| c.country.as_deref())
                .is_some_and(|c| list.iter().any(|x| **x == *c)),
            Matcher::Ip(nets) => nets.iter().any(|n| n.contains(&req.ip)),
            Matcher::Country(list) => req
                .country
                .is_some_and(|c| list.iter().any(|x| x.eq_ignore_ascii_case(c))),
            Matcher::Everyone => true,
            Matcher::SanDns(p) => cert(req).is_some_and(|c| p.any(&c.san.dns)),
            Matcher::SanUri(p) => cert(req).is_some_and(|c| p.any(&c.san.uri)),
            Matcher::SanEmail(p) => cert(req).is_some_and(|c| p.any(&c.san.email)),
            Matcher::SanIp(nets) => cert(req).is_some_and(|c| {
                c.san
                    .ip
                    .iter()
                    .any(|ip| nets.iter().any(|n| n.contains(ip)))
            }),
            Matcher::SpiffeId(ids) => cert(req)
                .and_then(|c| c.spiffe_id.as_ref())
                .is_some_and(|id| ids.contains(id)),
            Matcher::SpiffeUnder(prefix) => cert(req)
                .and_then(|c| c.spiffe_id.as_ref())
                .is_some_and(|id| id.is_under(prefix)),
            Matcher::SpkiSha256(pins) => {
                cert(req).is_some_and(|c| pins.iter().any(|p| **p == *c.spki_sha256))
            }
            Matcher::Oidc { issuer, claims } => matches!(
                req.identity,
                Identity::Oidc(id) if *id.issuer == **issuer && claims.matches(id)
            ),
            Matcher::OidcClaims(claims) => {
                matches!(req.identity, Identity::Oidc(id) if claims.matches(id))
            }
        }
    }

    /// The selector as a user wrote it, for explanations.
    pub fn describe(&self) -> String {
        match self {
            Matcher::ServiceTokens(n) => {
                let mut v: Vec<&str> = n.iter().map(|s| &**s).collect();
                v.sort_unstable();
                format!("service_token in [{}]", v.join(", "))
            }
            Matcher::ServiceToken(n) => format!("service_token = {n:?}"),
            Matcher::AnyServiceToken => "any_service_token".into(),
            Matcher::ValidCertificate => "valid_certificate".into(),
            Matcher::CommonName(re) => format!("common_name ~ {}", re.as_str()),
            Matcher::Issuer(re) => format!("issuer ~ {}", re.as_str()),
            Matcher::Organization(re) => format!("organization ~ {}", re.as_str()),
            Matcher::CertCountry(l) => format!("cert_country in {l:?}"),
            Matcher::Ip(n) => format!("ip in {n:?}"),
            Matcher::Country(l) => format!("country in {l:?}"),
            Matcher::Everyone => "everyone".into(),
            Matcher::SanDns(p) => p.describe("san_dns"),
            Matcher::SanUri(p) => p.describe("san_uri"),
            Matcher::SanEmail(p) => p.describe("san_email"),
            Matcher::SanIp(n) => format!("san_ip in {n:?}"),
            Matcher::SpiffeId(ids) => format!(
                "spiffe_id in [{}]",
                ids.iter()
                    .map(SpiffeId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Matcher::SpiffeUnder(p) => format!("spiffe_id under {p}"),
            Matcher::SpkiSha256(p) => format!("spki_sha256 in {p:?}"),
            Matcher::Oidc { issuer, claims } if claims.0.is_empty() => {
                format!("oidc issuer {issuer} (any workload)")
            }
            Matcher::Oidc { issuer, claims } => {
                format!("oidc issuer {issuer} with {}", claims.describe())
            }
            Matcher::OidcClaims(claims) => format!("oidc_claim {}", claims.describe()),
        }
    }
}

fn cert<'a>(req: &Request<'a>) -> Option<&'a super::CertIdentity> {
    match req.identity {
        Identity::Cert(c) => Some(c),
        _ => None,
    }
}
