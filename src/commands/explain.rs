//! `botgate policy explain`: which policy decides for a credential, and why each earlier one
//! did not. Uses the same compiled policies and `evaluate` as the gate.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Result;
use chrono::Utc;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use super::print_json;
use crate::cli::ExplainArgs;
use crate::exit::Failure;
use crate::gate::tls::peer_cert;
use crate::policy::{self, Identity, PolicySet, TraceOutcome, Verdict};
use crate::store::{Store, TokenStatus};

#[derive(Debug, Serialize)]
struct Explanation {
    app: String,
    identity: String,
    ip: IpAddr,
    country: Option<String>,
    /// Set when the gate refuses before policies are evaluated (e.g. revoked token).
    refused_before_policies: Option<String>,
    decision: &'static str,
    status: u16,
    policy: Option<String>,
    trace: Vec<TraceLine>,
}

#[derive(Debug, Serialize)]
struct TraceLine {
    policy: String,
    action: &'static str,
    outcome: String,
}

/// Load the policy file and the store, then explain.
pub fn run_with_paths(paths: &crate::paths::Paths, args: &ExplainArgs) -> Result<()> {
    let loaded = super::serve::load_config(paths)?;
    let policies = policy::compile(&loaded.file)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", paths.config.display())))?;
    let store = Store::open(&paths.state_dir)?;
    run(&policies, &store, args)
}

/// Explain against an already compiled policy set.
pub fn run(policies: &PolicySet, store: &Store, args: &ExplainArgs) -> Result<()> {
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
    let mut refused_before = None;
    let cert;
    let (identity, label) = match (&args.token, &args.cert) {
        (Some(name), _) => {
            match store.find_token(name) {
                Ok(t) => match t.status(Utc::now()) {
                    TokenStatus::Revoked => {
                        refused_before = Some(format!(
                            "token {name:?} is revoked: the gate answers 401 (token_revoked)"
                        ))
                    }
                    TokenStatus::Expired => {
                        refused_before = Some(format!(
                            "token {name:?} expired at {}: the gate answers 401 (token_expired)",
                            t.expires_at
                        ))
                    }
                    _ => {}
                },
                Err(_) => {
                    refused_before = Some(format!(
                        "no token named {name:?} exists: the gate answers 401 (unknown_client_id); policies are shown as if it did"
                    ))
                }
            }
            (Identity::Token { name }, format!("token:{name}"))
        }
        (None, Some(path)) => {
            let der = CertificateDer::pem_file_iter(path)
                .map_err(|e| {
                    Failure::bad_input(format!(
                        "{}: not a PEM certificate file: {e}",
                        path.display()
                    ))
                })?
                .next()
                .ok_or_else(|| {
                    Failure::bad_input(format!("{}: no certificate in the file", path.display()))
                })?
                .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
            cert = peer_cert(der.as_ref()).ok_or_else(|| {
                Failure::bad_input(format!(
                    "{}: the certificate cannot be parsed",
                    path.display()
                ))
            })?;
            let label = format!(
                "cert:{}",
                cert.identity.common_name.as_deref().unwrap_or("(no CN)")
            );
            (Identity::Cert(&cert.identity), label)
        }
        (None, None) => return Err(Failure::bad_input("pass --token NAME or --cert FILE")),
    };
    let request = policy::Request {
        identity,
        ip,
        country: args.country.as_deref(),
    };
    let (decision, trace) = policy::explain(app, &request);
    let (verdict, status) = match (refused_before.is_some(), decision.verdict) {
        (true, _) => ("deny", 401),
        (_, Verdict::Allow) => ("allow", 200),
        (_, Verdict::Bypass) => ("bypass", 200),
        (_, Verdict::Block) | (_, Verdict::NoMatch) => ("deny", 403),
    };
    let out = Explanation {
        app: app.name.clone(),
        identity: label,
        ip,
        country: args.country.clone(),
        refused_before_policies: refused_before,
        decision: verdict,
        status,
        policy: decision.policy_name().map(str::to_string),
        trace: trace
            .iter()
            .map(|t| TraceLine {
                policy: t.policy.clone(),
                action: t.action.as_str(),
                outcome: describe(&t.outcome),
            })
            .collect(),
    };
    if args.json.json {
        return print_json(&out);
    }
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
    for (i, t) in out.trace.iter().enumerate() {
        println!("  {}. {:?} ({}): {}", i + 1, t.policy, t.action, t.outcome);
    }
    if out.trace.len() < app.policies.len() {
        println!(
            "  ({} later policies not reached)",
            app.policies.len() - out.trace.len()
        );
    }
    if let Some(r) = &out.refused_before_policies {
        println!("=> deny 401: {r}");
    } else {
        match &out.policy {
            Some(p) => println!("=> {} {} by policy {p:?}", out.decision, out.status),
            None => println!("=> deny {}: no policy matched (default deny)", out.status),
        }
    }
    Ok(())
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
