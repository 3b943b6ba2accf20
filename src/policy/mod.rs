//! Compiled policies and a pure, total `evaluate`: the app is chosen by host, policies are tried
//! in file order, and the first whose include matches (any), whose require all match and whose
//! exclude none match decides. No match denies. Regexes are compiled once, here.

mod compile;
mod matcher;
mod prefilter;

use std::net::IpAddr;

pub use compile::{CompileError, claim_checks, compile};
pub use matcher::Matcher;
pub use prefilter::PrefilterCell;

use crate::config::Action;

/// All apps of one policy file, ready for requests.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub apps: Vec<CompiledApp>,
    /// `[[oidc_issuer]]`s, in file order.
    pub issuers: Vec<std::sync::Arc<crate::oidc::IssuerSettings>>,
    by_host: std::collections::HashMap<String, usize>,
}

impl PolicySet {
    /// The app serving `host` (case-insensitive, port ignored).
    pub fn app_for_host(&self, host: &str) -> Option<&CompiledApp> {
        let host = strip_port(host);
        if let Some(&i) = self.by_host.get(host) {
            return Some(&self.apps[i]);
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self
                .by_host
                .get(&host.to_ascii_lowercase())
                .map(|&i| &self.apps[i]);
        }
        None
    }
}

/// One application: hostnames, upstream and ordered policies.
#[derive(Debug)]
pub struct CompiledApp {
    pub name: String,
    pub hostnames: Vec<String>,
    pub upstream: String,
    /// The TLS profile of an `https://` upstream (its roots, server name, client certificate
    /// and pool); `None` for `http://`.
    pub upstream_tls: Option<std::sync::Arc<crate::upstream_tls::UpstreamTls>>,
    pub trusted_cas: Vec<String>,
    /// Whether the upstream gets the client certificate (`forward_client_cert`).
    pub forward_client_cert: bool,
    /// Whether forwarded requests carry the signed origin assertion.
    pub assertion: bool,
    /// `aud = "…"` as written on the app.
    pub aud_override: Option<String>,
    /// The assertion's audience tag (`aud_override`, else the store's; set by
    /// `gate::assertion::resolve_audiences`, empty until then).
    pub audience: std::sync::Arc<str>,
    pub policies: Vec<CompiledPolicy>,
    /// Which of `policies` can decide for a request (built by `compile`; see `prefilter`).
    pub prefilter: PrefilterCell,
}

/// One policy with compiled selectors.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub name: String,
    pub action: Action,
    pub include: Vec<Matcher>,
    pub require: Vec<Matcher>,
    pub exclude: Vec<Matcher>,
    /// `rate_limit` (with `burst`, `rate_limit_mode`): applied per credential once admitted.
    pub rate_limit: Option<PolicyRateLimit>,
}

/// A policy's rate limit, as the gate's limiter takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRateLimit {
    pub limit: crate::bounds::RateLimit,
    pub mode: crate::bounds::RateLimitMode,
    /// Names the policy's buckets: its app and its name (kept across reloads that keep both,
    /// so an unchanged policy's buckets survive a reload).
    pub scope: std::sync::Arc<str>,
}

/// The facts of a request that policies can look at.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub identity: Identity<'a>,
    pub ip: IpAddr,
    pub country: Option<&'a str>,
}

/// Who the client proved to be (credentials already verified by the gate).
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    None,
    Token {
        name: &'a str,
    },
    Cert(&'a CertIdentity),
    /// A verified OIDC workload token.
    Oidc(&'a crate::credential::oidc::OidcIdentity),
}

/// The fields of a verified client certificate that selectors can match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub common_name: Option<String>,
    pub issuer: String,
    pub organization: Option<String>,
    pub country: Option<String>,
    pub serial: String,
    pub fingerprint_sha256: String,
    /// Subject alternative names (parsed once per connection, not per request).
    pub san: crate::cert_names::SubjectAltNames,
    /// The SPIFFE ID (`None` unless the certificate has exactly one URI SAN and it is one).
    pub spiffe_id: Option<crate::cert_names::SpiffeId>,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo.
    pub spki_sha256: String,
}

/// The outcome of evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Bypass,
    /// A `block` policy matched.
    Block,
    /// No policy matched.
    NoMatch,
}

/// Which policy decided (none when nothing matched) and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    pub verdict: Verdict,
    pub policy: Option<&'p CompiledPolicy>,
}

impl Decision<'_> {
    pub fn policy_name(&self) -> Option<&str> {
        self.policy.map(|p| p.name.as_str())
    }

    /// Why this decision refuses a request carrying `identity`, or `None` when it admits: the
    /// one mapping from verdict to refusal (the gate's `deny_reason`, explain's answer).
    pub fn refusal(&self, identity: &Identity<'_>) -> Option<Refusal> {
        match self.verdict {
            Verdict::Allow | Verdict::Bypass => None,
            Verdict::Block => Some(Refusal::Blocked),
            Verdict::NoMatch if matches!(identity, Identity::None) => Some(Refusal::NoCredentials),
            Verdict::NoMatch => Some(Refusal::NoPolicyMatched),
        }
    }
}

/// Why policies refuse a request whose credentials are valid (or absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A `block` policy decided (403).
    Blocked,
    /// Credentials, but no policy admits them (403).
    NoPolicyMatched,
    /// No credentials, and no policy admits anonymous requests (401).
    NoCredentials,
}

/// Whether `req` is admitted to `app`: the question the console, detectors, lint and
/// rotation ask (the gate and explain ask `evaluate` and `Decision::refusal`, the same thing).
pub fn admits(app: &CompiledApp, req: &Request<'_>) -> bool {
    evaluate(app, req).refusal(&req.identity).is_none()
}

impl PartialEq for CompiledPolicy {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for CompiledPolicy {}

/// Why one policy did or did not decide, for `policy explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTrace {
    pub policy: String,
    pub action: Action,
    pub outcome: TraceOutcome,
}

/// Per-policy outcome in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOutcome {
    Decides,
    /// The action needs a credential kind the request does not carry.
    WrongCredentialKind(&'static str),
    NoIncludeMatched,
    RequireFailed(String),
    Excluded(String),
}

/// Evaluate `req` against the app's policies. Pure and total: no I/O, no panics, no allocation.
///
/// Only policies that can decide are tried (the app's prefilter: by credential kind, and one
/// `RegexSet` pass for certificate-only CN policies), in file order, so the answer is the same as
/// trying every policy.
pub fn evaluate<'p>(app: &'p CompiledApp, req: &Request<'_>) -> Decision<'p> {
    match app
        .prefilter
        .get(&app.policies)
        .first_deciding(&app.policies, req)
    {
        Some(policy) => Decision {
            verdict: verdict_for(policy.action),
            policy: Some(policy),
        },
        None => Decision {
            verdict: Verdict::NoMatch,
            policy: None,
        },
    }
}

/// `evaluate` plus the reason every policy up to the deciding one was skipped.
pub fn explain<'p>(app: &'p CompiledApp, req: &Request<'_>) -> (Decision<'p>, Vec<PolicyTrace>) {
    let mut trace = Vec::new();
    for policy in &app.policies {
        let outcome = policy_decides(policy, req);
        let decides = outcome.is_ok();
        trace.push(PolicyTrace {
            policy: policy.name.clone(),
            action: policy.action,
            outcome: outcome.err().unwrap_or(TraceOutcome::Decides),
        });
        if decides {
            return (
                Decision {
                    verdict: verdict_for(policy.action),
                    policy: Some(policy),
                },
                trace,
            );
        }
    }
    (
        Decision {
            verdict: Verdict::NoMatch,
            policy: None,
        },
        trace,
    )
}

/// A policy that admits a credential for some requests, and from which countries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted<'p> {
    pub policy: &'p CompiledPolicy,
    /// The countries it is admitted from; `None` when any country (or an unknown one) will do.
    pub countries: Option<std::collections::BTreeSet<String>>,
    /// Whether an include selector names the credential (token name, CN pattern…) rather than
    /// admitting any credential of its kind (`any_service_token`, `valid_certificate`,
    /// `everyone`).
    pub named: bool,
}

/// Every policy of `app` that decides to admit `identity` for at least one request, in file
/// order: the question "what does this credential get" asked of `evaluate` itself, so first
/// match, `require`, `exclude` and `block` count exactly as at the gate. The request facts
/// (IP, country) are probed: each address and country the app's selectors name, plus one
/// address and one country none names, and an unknown country.
pub fn admitting_policies<'p>(app: &'p CompiledApp, identity: Identity<'_>) -> Vec<Admitted<'p>> {
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    let mut countries: Vec<Option<String>> = vec![None, Some("ZZ".into())];
    for m in app
        .policies
        .iter()
        .flat_map(|p| p.include.iter().chain(&p.require).chain(&p.exclude))
    {
        match m {
            Matcher::Ip(nets) => ips.extend(nets.iter().map(|n| n.network())),
            Matcher::Country(list) => {
                countries.extend(list.iter().map(|c| Some(c.to_ascii_uppercase())))
            }
            _ => {}
        }
    }
    ips.sort_unstable();
    ips.dedup();
    countries.sort_unstable();
    countries.dedup();
    let mut out: Vec<Admitted<'p>> = Vec::new();
    for ip in &ips {
        for country in &countries {
            let req = Request {
                identity,
                ip: *ip,
                country: country.as_deref(),
            };
            let decision = evaluate(app, &req);
            let Some(policy) = decision
                .policy
                .filter(|_| decision.refusal(&identity).is_none())
            else {
                continue;
            };
            let i = match out.iter().position(|a| std::ptr::eq(a.policy, policy)) {
                Some(i) => i,
                None => {
                    let named = policy.include.iter().any(|m| {
                        m.matches(&req)
                            && !matches!(
                                m,
                                Matcher::AnyServiceToken
                                    | Matcher::ValidCertificate
                                    | Matcher::Everyone
                            )
                    });
                    out.push(Admitted {
                        policy,
                        countries: Some(Default::default()),
                        named,
                    });
                    out.len() - 1
                }
            };
            let entry = &mut out[i];
            // Admitted from a country no selector names (or an unknown one): any country.
            match country.as_deref() {
                Some(c) if c != "ZZ" => {
                    if let Some(set) = &mut entry.countries {
                        set.insert(c.to_string());
                    }
                }
                _ => entry.countries = None,
            }
        }
    }
    let order = |a: &Admitted<'_>| app.policies.iter().position(|p| std::ptr::eq(p, a.policy));
    out.sort_by_key(order);
    out
}

fn verdict_for(action: Action) -> Verdict {
    match action {
        Action::ServiceAuth | Action::NonIdentity | Action::Allow => Verdict::Allow,
        Action::Block => Verdict::Block,
        Action::Bypass => Verdict::Bypass,
    }
}

fn policy_decides(policy: &CompiledPolicy, req: &Request<'_>) -> Result<(), TraceOutcome> {
    // service_auth admits token and OIDC workload clients only, non_identity certificate
    // clients only.
    match (policy.action, req.identity) {
        (Action::ServiceAuth, Identity::Token { .. } | Identity::Oidc(_))
        | (Action::NonIdentity, Identity::Cert(_)) => {}
        (Action::ServiceAuth, _) => {
            return Err(TraceOutcome::WrongCredentialKind(
                "service_auth needs a service token or an OIDC workload token",
            ));
        }
        (Action::NonIdentity, _) => {
            return Err(TraceOutcome::WrongCredentialKind(
                "non_identity needs a client certificate",
            ));
        }
        _ => {}
    }
    if !policy.include.iter().any(|m| m.matches(req)) {
        return Err(TraceOutcome::NoIncludeMatched);
    }
    if let Some(m) = policy.require.iter().find(|m| !m.matches(req)) {
        return Err(TraceOutcome::RequireFailed(m.describe()));
    }
    if let Some(m) = policy.exclude.iter().find(|m| m.matches(req)) {
        return Err(TraceOutcome::Excluded(m.describe()));
    }
    Ok(())
}

/// `host:port` → `host`; `[v6]:port` → `v6`.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests;
