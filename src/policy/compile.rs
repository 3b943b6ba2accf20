//! Turn the validated policy file model into matchers. Validation with spans lives in `config/`;
//! compiling refuses the same mistakes again (never panics) so a `PolicySet` is always sound.
//! It also builds each `https://` upstream's TLS profile, reading the files it names.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use super::matcher::NamePattern;
use super::{CompiledApp, CompiledPolicy, Matcher, PolicyRateLimit, PolicySet};
use crate::bounds::RateLimit;
use crate::config::cert_selectors::{self, SanPattern, SpiffePattern};
use crate::config::values::{
    full_match_regex, is_https_upstream, parse_cidr, upstream_tls_settings,
};
use crate::config::{NameMatch, PolicyFile, Selector};
use crate::credential::oidc::{ClaimChecks, ClaimPattern};
use crate::oidc::IssuerSettings;
use crate::upstream_tls::TlsProfiles;

/// A policy file that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app {app:?}{}: {message}", policy.as_ref().map(|p| format!(", policy {p:?}")).unwrap_or_default())]
pub struct CompileError {
    pub app: String,
    pub policy: Option<String>,
    pub message: String,
}

/// Compile every app and policy.
pub fn compile(file: &PolicyFile) -> Result<PolicySet, CompileError> {
    let mut set = PolicySet::default();
    for i in &file.oidc_issuer {
        let settings = IssuerSettings::from_config(i).map_err(|e| CompileError {
            app: String::new(),
            policy: None,
            message: format!("[[oidc_issuer]] {:?}: {e}", i.name.get_ref()),
        })?;
        if set
            .issuers
            .iter()
            .any(|s| s.name == settings.name || s.issuer == settings.issuer)
        {
            return Err(CompileError {
                app: String::new(),
                policy: None,
                message: format!(
                    "[[oidc_issuer]] {:?}: two issuers share its name or issuer URL",
                    i.name.get_ref()
                ),
            });
        }
        set.issuers.push(std::sync::Arc::new(settings));
    }
    let issuer_names: HashSet<&str> = set.issuers.iter().map(|s| &*s.name).collect();
    let mut by_host = HashMap::new();
    let mut tls_profiles = TlsProfiles::default();
    for (i, app) in file.app.iter().enumerate() {
        let name = app.name.get_ref().clone();
        let err = |policy: Option<&str>, message: String| CompileError {
            app: name.clone(),
            policy: policy.map(str::to_string),
            message,
        };
        let mut hostnames = Vec::new();
        for h in &app.hostnames {
            let h = h.get_ref().to_ascii_lowercase();
            if by_host.insert(h.clone(), i).is_some() {
                return Err(err(None, format!("hostname {h:?} is served by two apps")));
            }
            hostnames.push(h);
        }
        let mut policies = Vec::new();
        for p in &app.policy {
            let pname = p.name.get_ref();
            let compile_list = |list: &[toml::Spanned<Selector>], merge_tokens: bool| {
                compile_selectors(
                    list.iter().map(|s| s.get_ref()),
                    merge_tokens,
                    &issuer_names,
                )
                .map_err(|m| err(Some(pname), m))
            };
            policies.push(CompiledPolicy {
                name: pname.clone(),
                action: *p.action.get_ref(),
                include: compile_list(&p.include, true)?,
                require: compile_list(&p.require, false)?,
                exclude: compile_list(&p.exclude, true)?,
                rate_limit: policy_rate_limit(&name, p).map_err(|m| err(Some(pname), m))?,
            });
        }
        let upstream_tls = match is_https_upstream(app.upstream.get_ref()) {
            true => Some(
                tls_profiles
                    .get(&upstream_tls_settings(app))
                    .map_err(|e| err(None, e.message))?,
            ),
            false => None,
        };
        let compiled = CompiledApp {
            name: name.clone(),
            hostnames,
            upstream: app.upstream.get_ref().clone(),
            upstream_tls,
            trusted_cas: app
                .trusted_cas
                .iter()
                .map(|c| c.get_ref().clone())
                .collect(),
            forward_client_cert: app.forward_client_cert,
            assertion: app.assertion,
            aud_override: app.aud.as_ref().map(|a| a.get_ref().clone()),
            audience: app
                .aud
                .as_ref()
                .map(|a| a.get_ref().as_str())
                .unwrap_or_default()
                .into(),
            policies,
            prefilter: Default::default(),
        };
        // Build the prefilter now, not on the first request.
        compiled.prefilter.get(&compiled.policies);
        set.apps.push(compiled);
    }
    set.by_host = by_host;
    Ok(set)
}

/// A policy's `rate_limit`, `burst` and `rate_limit_mode`, parsed as validation parses them.
fn policy_rate_limit(
    app: &str,
    p: &crate::config::PolicyConfig,
) -> Result<Option<PolicyRateLimit>, String> {
    let Some(text) = &p.rate_limit else {
        if p.burst.is_some() || p.rate_limit_mode.is_some() {
            return Err("burst and rate_limit_mode need a rate_limit".into());
        }
        return Ok(None);
    };
    let limit = RateLimit::parse(text.get_ref(), p.burst.as_ref().map(|b| *b.get_ref()))
        .map_err(|e| format!("rate_limit: {e}"))?;
    Ok(Some(PolicyRateLimit {
        limit,
        mode: p
            .rate_limit_mode
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or_default(),
        scope: format!("{app}\0{}", p.name.get_ref()).into(),
    }))
}

/// Compile one selector list. In any-of lists, token names merge into one set lookup.
fn compile_selectors<'a>(
    list: impl Iterator<Item = &'a Selector>,
    merge_tokens: bool,
    issuers: &HashSet<&str>,
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    let mut tokens: HashSet<Box<str>> = HashSet::new();
    for sel in list {
        let m = match sel {
            Selector::ServiceToken(n) if merge_tokens => {
                tokens.insert(n.as_str().into());
                continue;
            }
            Selector::ServiceToken(n) => Matcher::ServiceToken(n.as_str().into()),
            Selector::AnyServiceToken(true) => Matcher::AnyServiceToken,
            Selector::ValidCertificate(true) => Matcher::ValidCertificate,
            Selector::Everyone(true) => Matcher::Everyone,
            Selector::AnyServiceToken(false)
            | Selector::ValidCertificate(false)
            | Selector::Everyone(false) => {
                return Err(format!(
                    "`{} = false` is not meaningful; remove the selector",
                    sel.key()
                ));
            }
            Selector::CommonName(re) => Matcher::CommonName(full_match(re, "common_name")?),
            Selector::Issuer(re) => Matcher::Issuer(full_match(re, "issuer")?),
            Selector::Organization(re) => Matcher::Organization(full_match(re, "organization")?),
            Selector::CertCountry(c) => Matcher::CertCountry(
                c.values()
                    .iter()
                    .map(|s| s.to_ascii_uppercase().into())
                    .collect(),
            ),
            Selector::Country(c) => Matcher::Country(
                c.values()
                    .iter()
                    .map(|s| s.to_ascii_uppercase().into())
                    .collect(),
            ),
            Selector::SanDns(m) => Matcher::SanDns(san(sel.key(), m)?),
            Selector::SanUri(m) => Matcher::SanUri(san(sel.key(), m)?),
            Selector::SanEmail(m) => Matcher::SanEmail(san(sel.key(), m)?),
            Selector::SanIp(m) => Matcher::SanIp(cert_selectors::san_ip(m).map_err(value_err)?),
            Selector::SpiffeId(m) => match cert_selectors::spiffe_pattern(m).map_err(value_err)? {
                SpiffePattern::Exact(ids) => Matcher::SpiffeId(ids),
                SpiffePattern::Prefix(p) => Matcher::SpiffeUnder(p),
            },
            Selector::SpkiSha256(pins) => Matcher::SpkiSha256(
                cert_selectors::spki_pins(pins)
                    .map_err(value_err)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            Selector::Oidc(o) => {
                if !issuers.contains(o.issuer.as_str()) {
                    return Err(format!(
                        "oidc selector names issuer {:?}, which no [[oidc_issuer]] defines",
                        o.issuer
                    ));
                }
                Matcher::Oidc {
                    issuer: o.issuer.as_str().into(),
                    claims: claim_checks(&o.claims)?,
                }
            }
            Selector::OidcClaim(c) => {
                if c.is_empty() {
                    return Err("oidc_claim is empty; name at least one claim".into());
                }
                Matcher::OidcClaims(claim_checks(c)?)
            }
            Selector::Ip(cidrs) => Matcher::Ip(
                cidrs
                    .values()
                    .iter()
                    .map(|c| parse_cidr(c))
                    .collect::<Result<_, _>>()?,
            ),
        };
        out.push(m);
    }
    if !tokens.is_empty() {
        out.insert(0, Matcher::ServiceTokens(tokens));
    }
    Ok(out)
}

/// Claim checks as written (exact, or `^…$` for a full-match regex).
pub fn claim_checks(
    claims: &std::collections::BTreeMap<String, crate::config::model::ClaimValue>,
) -> Result<ClaimChecks, String> {
    claims
        .iter()
        .map(|(k, v)| Ok((k.clone(), ClaimPattern::parse(&v.0)?)))
        .collect::<Result<Vec<_>, String>>()
        .map(ClaimChecks)
}

/// A SAN selector's values, parsed as validation parses them.
fn san(key: &str, m: &NameMatch) -> Result<NamePattern, String> {
    Ok(
        match cert_selectors::san_pattern(key, m).map_err(value_err)? {
            SanPattern::Exact(v) => NamePattern::Exact(v.into_iter().map(Into::into).collect()),
            SanPattern::Regex(re) => NamePattern::Regex(re),
        },
    )
}

fn value_err(e: cert_selectors::ValueError) -> String {
    e.message
}

/// A selector regex, anchored for a full match exactly as validation compiles it.
fn full_match(pattern: &str, key: &str) -> Result<Regex, String> {
    full_match_regex(pattern).map_err(|e| format!("{key}: {e}"))
}
