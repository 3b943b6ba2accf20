//! `botgate policy explain`: what the gate would answer for a credential, and why. It asks the
//! same functions the gate does: `pki::verify` for a certificate (chain, validity, CRLs,
//! instant revocation), the credential snapshot's token status, `policy::explain` (the trace of
//! `evaluate`) and `Decision::refusal`. Exits 1 when the answer is deny.

use std::net::{IpAddr, Ipv4Addr};

use std::io::Read as _;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use super::print_json;
use crate::cli::ExplainArgs;
use crate::credential::oidc::OidcIdentity;
use crate::exit::Failure;
use crate::gate::client_auth::deny_reason;
use crate::gate::deny::DenyReason;
use crate::gate::snapshot::CredentialSnapshot;
use crate::gate::tls::peer_cert;
use crate::oidc::Issuers;
use crate::pki::CertTrust;
use crate::pki::verify::Check;
use crate::policy::{self, CompiledApp, Identity, PolicySet, TraceOutcome};
use crate::store::Store;

/// The answer `policy explain` gives (also its `--json` output).
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub app: String,
    pub identity: String,
    pub ip: IpAddr,
    pub country: Option<String>,
    /// The certificate checks, in order (for `--cert`).
    pub checks: Vec<Check>,
    /// Set when the gate refuses before policies are evaluated (e.g. revoked token).
    pub refused_before_policies: Option<String>,
    /// `allow`, `bypass` or `deny`.
    pub decision: &'static str,
    pub status: u16,
    /// The gate's `deny_reason` when the decision is deny.
    pub deny_reason: Option<&'static str>,
    pub policy: Option<String>,
    pub trace: Vec<TraceLine>,
    /// Advice printed after the answer (e.g. how to issue a v3 certificate).
    pub notes: Vec<String>,
    /// The origin assertion's audience tag (`aud`) for this app; `null` when the app sends
    /// none (`assertion = false`).
    pub assertion_aud: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TraceLine {
    pub policy: String,
    pub action: &'static str,
    pub outcome: String,
}

/// Load the policy file and the store, then explain.
pub fn run_with_paths(paths: &crate::paths::Paths, args: &ExplainArgs) -> Result<()> {
    let loaded = super::serve::load_config(paths)?;
    let mut policies = policy::compile(&loaded.file)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", paths.config.display())))?;
    let store = paths.open_store()?;
    crate::store::wait(crate::gate::assertion::resolve_audiences(
        &store,
        &mut policies,
    ))?;
    // The issuers' key sets as the gates on this state dir keep them (fetched when missing).
    let issuers = super::issuer::issuers_of(paths, &policies);
    let out = explain(&policies, &store, Some(&issuers), args, Utc::now())?;
    if args.json.json {
        print_json(&out)?;
    } else {
        print(&out, &policies);
    }
    if out.decision == "deny" {
        return Err(Failure::refused(format!(
            "the gate would deny this request ({} {})",
            out.status,
            out.deny_reason.unwrap_or("denied")
        )));
    }
    Ok(())
}

/// What the gate would answer at `now` for the credential in `args` (no printing). A `--jwt`
/// needs the issuers (with their key sets).
pub fn explain(
    policies: &PolicySet,
    store: &Store,
    issuers: Option<&Issuers>,
    args: &ExplainArgs,
    now: DateTime<Utc>,
) -> Result<Explanation> {
    let app = policies.app_for_host(&args.app).ok_or_else(|| {
        let hosts: Vec<&str> = policies
            .apps
            .iter()
            .flat_map(|a| a.hostnames.iter().map(String::as_str))
            .collect();
        Failure::bad_input(format!(
            "no app serves host {:?}; known hostnames: {}",
            args.app,
            hosts.join(", ")
        ))
    })?;
    let ip = args.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // The same snapshot the gate enforces from: tokens and instant certificate revocations.
    let snapshot = CredentialSnapshot::load(store)?;
    let mut out = Explanation {
        app: app.name.clone(),
        identity: String::new(),
        ip,
        country: args.country.clone(),
        checks: Vec::new(),
        refused_before_policies: None,
        decision: "deny",
        status: 401,
        deny_reason: None,
        policy: None,
        trace: Vec::new(),
        notes: Vec::new(),
        assertion_aud: (app.assertion && !app.audience.is_empty())
            .then(|| app.audience.to_string()),
    };
    let cert;
    let workload;
    let identity = match (&args.token, &args.cert) {
        (None, None) if args.jwt.is_some() => {
            let path = args.jwt.as_deref().unwrap_or(std::path::Path::new("-"));
            let issuers = issuers
                .ok_or_else(|| Failure::bad_input("--jwt needs the policy file's issuers"))?;
            match explain_jwt(path, issuers, now, &mut out)? {
                Some(id) => {
                    workload = id;
                    Identity::Oidc(&workload)
                }
                None => return Ok(out),
            }
        }
        (Some(name), _) => {
            out.identity = format!("token:{name}");
            let entry = snapshot.token_named(name, now);
            let refusal = match entry {
                None => Some((
                    DenyReason::UnknownClientId,
                    format!("no token named {name:?} exists; policies are shown as if it did"),
                )),
                Some(t) => t.refusal(now).map(|r| {
                    let why = match r {
                        DenyReason::TokenRevoked => format!("token {name:?} is revoked"),
                        DenyReason::TokenDisabled => format!(
                            "token {name:?} is disabled (`botgate token enable {name}` lifts it)"
                        ),
                        _ => format!("token {name:?} expired at {}", t.expires_at),
                    };
                    (r, why)
                }).or_else(|| {
                    t.ip_refusal(ip).map(|r| {
                        let nets = t.bounds.allow_ips_text().unwrap_or_default();
                        (r, format!("token {name:?} is bound to {nets} (`--allow-ip`); {ip} is outside, so no policy is asked"))
                    })
                }),
            };
            if let Some((reason, why)) = refusal {
                out.deny_reason = Some(reason.as_str());
                out.status = reason.status();
                out.refused_before_policies = Some(why);
            }
            Identity::Token { name }
        }
        (None, Some(path)) => {
            let chain = read_chain(path)?;
            let leaf = peer_cert(chain[0].as_ref());
            out.identity = format!(
                "cert:{}",
                leaf.as_ref()
                    .and_then(|c| c.identity.common_name.as_deref())
                    .unwrap_or("(no CN)")
            );
            let (trust_material, _) = crate::gate::store_tls::trust_material(store)
                .map_err(|e| anyhow::anyhow!("cannot read the trusted CAs: {e}"))?;
            let trust = CertTrust::new(&app.trusted_cas, &trust_material)?;
            let verdict = trust.verify(&chain, &snapshot.revoked_certs, now);
            out.checks = verdict.checks;
            if verdict.v1 {
                out.notes.push(crate::pki::verify::V1_ADVICE.into());
            }
            match (verdict.refusal, leaf) {
                (Some(r), _) => {
                    let reason = deny_reason(r.problem);
                    out.deny_reason = Some(reason.as_str());
                    out.status = reason.status();
                    let check = out.checks.last().map_or("certificate", |c| c.name);
                    out.refused_before_policies =
                        Some(format!("the {check} check fails: {}", r.detail));
                    return Ok(out);
                }
                (None, Some(c)) => {
                    cert = c;
                    Identity::Cert(&cert.identity)
                }
                (None, None) => {
                    return Err(Failure::bad_input(format!(
                        "{}: the certificate cannot be parsed",
                        path.display()
                    )));
                }
            }
        }
        (None, None) => {
            return Err(Failure::bad_input(
                "pass --token NAME, --cert FILE or --jwt FILE",
            ));
        }
    };
    let request = policy::Request {
        identity,
        ip,
        country: args.country.as_deref(),
    };
    decide(app, &request, &mut out);
    Ok(out)
}

/// Verify the workload token in `path` as the gate would (`Issuers::verify`), recording each
/// check in `out.checks`; `None` when it is refused (the refusal is in `out`). The token is
/// never printed.
fn explain_jwt(
    path: &std::path::Path,
    issuers: &Issuers,
    now: DateTime<Utc>,
    out: &mut Explanation,
) -> Result<Option<OidcIdentity>> {
    let text = if path == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .take((crate::oidc::token::MAX_TOKEN_BYTES * 4) as u64)
            .read_to_string(&mut s)
            .map_err(|e| Failure::bad_input(format!("stdin: {e}")))?;
        s
    } else {
        crate::input::read_to_string(path, crate::input::JWKS_FILE)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?
    };
    let token = text.trim();
    let check = |name: &'static str, ok: bool, detail: String| Check { name, ok, detail };
    out.identity = "oidc:(unverified)".into();
    let refuse = |out: &mut Explanation, e: &crate::oidc::OidcError, name: &'static str| {
        let reason = DenyReason::from(e);
        out.checks.push(check(name, false, e.to_string()));
        out.deny_reason = Some(reason.as_str());
        out.status = reason.status();
        out.refused_before_policies = Some(format!("the {name} check fails: {e}"));
    };
    let parsed = match crate::oidc::token::parse(token) {
        Ok(p) => p,
        Err(e) => {
            refuse(out, &e, "parse");
            return Ok(None);
        }
    };
    out.checks.push(check(
        "parse",
        true,
        format!(
            "JWT, {} bytes, alg {}, kid {}",
            token.len(),
            parsed.alg.as_str(),
            parsed.kid.as_deref().unwrap_or("(none)")
        ),
    ));
    let Some(state) = issuers.by_iss(&parsed.iss) else {
        refuse(
            out,
            &crate::oidc::OidcError::UnknownIssuer(crate::oidc::token::truncate(&parsed.iss, 200)),
            "issuer",
        );
        return Ok(None);
    };
    out.checks.push(check(
        "issuer",
        true,
        format!("{} ({})", state.settings.name, state.settings.issuer),
    ));
    drop(parsed);
    match super::issuer::block_on(issuers.verify(token, now)) {
        Ok(id) => {
            let keys = state.keys();
            out.checks.push(check(
                "signature",
                true,
                format!(
                    "verifies with {}'s key set ({} keys, fetched {})",
                    state.settings.name,
                    keys.as_ref().map_or(0, |k| k.set.keys.len()),
                    keys.as_ref()
                        .map_or("never".into(), |k| super::rfc3339(k.fetched_at))
                ),
            ));
            out.checks.push(check(
                "claims",
                true,
                format!(
                    "aud in [{}], within exp/nbf/iat (leeway {}s)",
                    state.settings.audiences.join(", "),
                    state.settings.leeway.num_seconds()
                ),
            ));
            out.identity = id.label.to_string();
            Ok(Some(Arc::unwrap_or_clone(id)))
        }
        Err((_, e)) => {
            let name = match &e {
                crate::oidc::OidcError::BadSignature(_)
                | crate::oidc::OidcError::UnknownKey { .. } => "signature",
                crate::oidc::OidcError::Malformed(_) => "parse",
                crate::oidc::OidcError::UnknownIssuer(_) => "issuer",
                _ => "claims",
            };
            refuse(out, &e, name);
            Ok(None)
        }
    }
}

/// The policy part: the trace and, unless a credential check already refused, the answer.
fn decide(app: &CompiledApp, request: &policy::Request<'_>, out: &mut Explanation) {
    let (decision, trace) = policy::explain(app, request);
    out.trace = trace
        .iter()
        .map(|t| TraceLine {
            policy: t.policy.clone(),
            action: t.action.as_str(),
            outcome: describe(&t.outcome),
        })
        .collect();
    out.policy = decision.policy_name().map(str::to_string);
    if out.refused_before_policies.is_some() {
        return;
    }
    match decision.refusal(&request.identity) {
        Some(r) => {
            let reason = DenyReason::from(r);
            out.deny_reason = Some(reason.as_str());
            out.status = reason.status();
        }
        None => {
            out.decision = match decision.verdict {
                policy::Verdict::Bypass => "bypass",
                _ => "allow",
            };
            out.status = 200;
        }
    }
}

/// The certificate file as the client would present it: the leaf, then any intermediates.
fn read_chain(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            Failure::bad_input(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(Failure::bad_input(format!(
            "{}: no certificate in the file (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(chain)
}

fn print(out: &Explanation, policies: &PolicySet) {
    println!(
        "app {:?}, {} from {}{}",
        out.app,
        out.identity,
        out.ip,
        out.country
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    if !out.checks.is_empty() {
        let kind = if out.identity.starts_with("oidc:") {
            "token"
        } else {
            "certificate"
        };
        println!("{kind}:");
        for c in &out.checks {
            println!("  {}: {}", c.name, c.detail);
        }
    }
    if out.checks.is_empty() || out.refused_before_policies.is_none() {
        println!("policies:");
    }
    for (i, t) in out.trace.iter().enumerate() {
        println!("  {}. {:?} ({}): {}", i + 1, t.policy, t.action, t.outcome);
    }
    let total = policies
        .app_for_host(&out.app)
        .or_else(|| policies.apps.iter().find(|a| a.name == out.app))
        .map_or(0, |a| a.policies.len());
    if !out.trace.is_empty() && out.trace.len() < total {
        println!("  ({} later policies not reached)", total - out.trace.len());
    }
    let reason = out.deny_reason.unwrap_or("");
    if let Some(r) = &out.refused_before_policies {
        println!("=> deny {} ({reason}): {r}", out.status);
    } else {
        match (&out.policy, out.decision) {
            (Some(p), "deny") => println!("=> deny {} ({reason}) by policy {p:?}", out.status),
            (Some(p), d) => println!("=> {d} {} by policy {p:?}", out.status),
            (None, _) => println!(
                "=> deny {} ({reason}): no policy matched (default deny)",
                out.status
            ),
        }
    }
    if let (Some(aud), "allow" | "bypass") = (&out.assertion_aud, out.decision) {
        println!("   forwarded with Cf-Access-Jwt-Assertion, aud {aud}");
    }
    for n in &out.notes {
        println!("note: {n}");
    }
}

fn describe(o: &TraceOutcome) -> String {
    match o {
        TraceOutcome::Decides => "matches: decides".into(),
        TraceOutcome::WrongCredentialKind(why) => format!("skipped: {why}"),
        TraceOutcome::NoIncludeMatched => "skipped: no include selector matched".into(),
        TraceOutcome::RequireFailed(m) => format!("skipped: require not met ({m})"),
        TraceOutcome::Excluded(m) => format!("skipped: excluded by {m}"),
    }
}
