//! Compiled selectors. Matching is allocation-free.

use std::collections::HashSet;

use ipnet::IpNet;
use regex::Regex;

use super::{Identity, Request};

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
        }
    }
}

fn cert<'a>(req: &Request<'a>) -> Option<&'a super::CertIdentity> {
    match req.identity {
        Identity::Cert(c) => Some(c),
        _ => None,
    }
}
