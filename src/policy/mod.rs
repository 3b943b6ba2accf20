//! Compiled policies and a pure, total `evaluate`: the app is chosen by host, policies are tried
//! in file order, and the first whose include matches (any), whose require all match and whose
//! exclude none match decides. No match denies. Regexes are compiled once, here.

mod compile;
mod matcher;
mod prefilter;

use std::net::IpAddr;

pub use compile::{CompileError, compile};
pub use matcher::Matcher;
pub use prefilter::PrefilterCell;

use crate::config::Action;

/// All apps of one policy file, ready for requests.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub apps: Vec<CompiledApp>,
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
    pub trusted_cas: Vec<String>,
    /// Whether the upstream gets the client certificate (`forward_client_cert`).
    pub forward_client_cert: bool,
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
    Token { name: &'a str },
    Cert(&'a CertIdentity),
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

fn verdict_for(action: Action) -> Verdict {
    match action {
        Action::ServiceAuth | Action::NonIdentity | Action::Allow => Verdict::Allow,
        Action::Block => Verdict::Block,
        Action::Bypass => Verdict::Bypass,
    }
}

fn policy_decides(policy: &CompiledPolicy, req: &Request<'_>) -> Result<(), TraceOutcome> {
    // service_auth admits token clients only, non_identity certificate clients only.
    match (policy.action, req.identity) {
        (Action::ServiceAuth, Identity::Token { .. })
        | (Action::NonIdentity, Identity::Cert(_)) => {}
        (Action::ServiceAuth, _) => {
            return Err(TraceOutcome::WrongCredentialKind(
                "service_auth needs a service token",
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
