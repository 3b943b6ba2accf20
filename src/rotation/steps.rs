//! The effects of the add and revoke steps (and abort's cleanup): policy edits with diff and
//! backup, the "already admitted" check for certificates, revocation and the CRL.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::evidence::plural;
use super::machine::{Refusal, Step, Transition};
use super::policies::{admitting, describe};
use super::workflow::RotationEnv;
use super::{CredentialKind, CredentialRef, PolicyRef, Rotation, RotationError};
use crate::config::LoadedConfig;
use crate::config::edit::{self, Edit};
use crate::policy::{CertIdentity, Identity, PolicySet};
use crate::store::Store;
use crate::store::pki::CertRecord;

/// What a step changed, accumulated for the outcome.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub(super) summary: Vec<String>,
    pub(super) diff: Option<String>,
    pub(super) backup: Option<PathBuf>,
    pub(super) notes: Vec<String>,
}

impl Effects {
    pub(super) fn line(s: String) -> Self {
        Self {
            summary: vec![s],
            ..Default::default()
        }
    }

    /// Write a planned policy edit unless it changes nothing; record diff, backup and summary.
    pub(super) fn apply_edit(
        &mut self,
        policy_file: &Path,
        plan: Edit,
        verb: &str,
        token: &str,
    ) -> Result<Vec<PolicyRef>, RotationError> {
        self.notes.extend(plan.notes.iter().cloned());
        let changed: Vec<PolicyRef> = plan
            .changed_policies
            .iter()
            .map(|(app, policy)| PolicyRef {
                app: app.clone(),
                policy: policy.clone(),
            })
            .collect();
        if plan.is_noop() {
            self.summary.push(format!(
                "{}: no policy names {token:?} any more; nothing to edit",
                policy_file.display()
            ));
            return Ok(changed);
        }
        let backup = edit::apply(policy_file, &plan)?;
        self.summary.push(format!(
            "{verb} {token:?} in {} {}: {} (backup {})",
            changed.len(),
            plural(changed.len() as u64, "policy", "policies"),
            describe(&changed),
            backup.display()
        ));
        self.diff = Some(plan.diff);
        self.backup = Some(backup);
        Ok(changed)
    }
}

/// Add: admit the new credential wherever the old one is admitted.
pub(super) fn add(
    env: &RotationEnv<'_>,
    r: &mut Rotation,
    now: DateTime<Utc>,
) -> Result<Effects, RotationError> {
    let (cfg, set) = load(env)?;
    let new = r
        .new
        .clone()
        .ok_or_else(|| RotationError::Conflict("no new credential".into()))?;
    let mut fx = Effects::default();
    if r.in_place() {
        let intended = admitting(&set, Identity::Token { name: &r.old.name });
        let until = crate::store::wait(env.store.find_token(&r.old.key))?
            .previous_secret_expires_at
            .map(crate::clock::rfc3339)
            .unwrap_or_else(|| "its grace end".into());
        fx.summary.push(format!(
            "nothing to edit: policies name the token {:?} and its Client ID stays; both {} and {} are valid now (the previous secret until {until}): the overlap window is open",
            r.old.name,
            r.old.label(),
            new.label()
        ));
        r.details.intended_policies = intended;
        r.details.added_at = Some(now);
        drop(cfg);
        return Ok(fx);
    }
    let refuse = |reason: String, hint: &str| {
        RotationError::Refused(Refusal {
            rotation_id: r.id.clone(),
            state: r.state,
            step: Some(Step::Add),
            reason,
            evidence: Vec::new(),
            hint: Some(hint.to_string()),
        })
    };
    let (intended, already) = match r.kind {
        CredentialKind::Token => {
            let intended = admitting(&set, Identity::Token { name: &r.old.name });
            let already: Vec<PolicyRef> = admitting(&set, Identity::Token { name: &new.name })
                .into_iter()
                .filter(|p| intended.contains(p))
                .collect();
            let plan = edit::plan_add_token(&cfg.text, &r.old.name, &new.name)?;
            // Check before writing that the edited file admits the new token everywhere.
            let after = crate::policy::compile(
                &crate::config::parse(env.policy_file, &plan.new_text)?.file,
            )?;
            let admitted_after = admitting(&after, Identity::Token { name: &new.name });
            let missing: Vec<PolicyRef> = intended
                .iter()
                .filter(|p| !admitted_after.contains(p))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(refuse(
                    format!(
                        "after the edit, {} would still admit {} but not {} (a require or exclude names the old token?)",
                        describe(&missing),
                        r.old.name,
                        new.name
                    ),
                    "edit those policies by hand so they admit both tokens, then run next again",
                ));
            }
            let edited = fx.apply_edit(env.policy_file, plan, "added", &new.name)?;
            r.details.edited_policies = edited;
            (intended, already)
        }
        CredentialKind::Cert => {
            let new_rec = find_cert(env.store, &new.key)?;
            let old_id = cert_identity(&find_cert(env.store, &r.old.key)?)?;
            let new_id = cert_identity(&new_rec)?;
            let intended = admitting(&set, Identity::Cert(&old_id));
            // The issuer may have changed since start (or the policy since): checked again here.
            let checked =
                super::new_cn::check_chain_trusted(env.store, &set, &new_rec, &intended)
                    .map_err(|reason| {
                        refuse(
                            reason,
                            "botgate does not edit trusted_cas: add the CA to the app in the policy file, then run next again",
                        )
                    })?;
            fx.summary.extend(checked);
            if new.name != r.old.name {
                let plan = super::new_cn::plan_add(env, &cfg, r, &new_id, &intended)?;
                fx.summary.extend(plan.regex_admits_new);
                if let Some(plan) = plan.edit {
                    r.details.edited_policies =
                        fx.apply_edit(env.policy_file, plan, "added CN", &new.name)?;
                }
                let already: Vec<PolicyRef> = admitting(&set, Identity::Cert(&new_id))
                    .into_iter()
                    .filter(|p| intended.contains(p))
                    .collect();
                (intended, already)
            } else {
                let admits_new = admitting(&set, Identity::Cert(&new_id));
                let missing: Vec<PolicyRef> = intended
                    .iter()
                    .filter(|p| !admits_new.contains(p))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(refuse(
                        format!(
                            "{} admits the old certificate but not the new one (its selectors match a field the two differ in, e.g. issuer or organization)",
                            describe(&missing)
                        ),
                        "botgate does not rewrite certificate selectors: edit those policies so both certificates match, then run next again",
                    ));
                }
                (intended.clone(), intended)
            }
        }
    };
    if !already.is_empty() {
        fx.summary.push(format!(
            "{} already {} {}: nothing needed editing there",
            describe(&already),
            if already.len() == 1 {
                "admits"
            } else {
                "admit"
            },
            new.label()
        ));
    }
    if intended.is_empty() {
        fx.notes.push(format!(
            "no policy in {} admits {}; verify will count the policies seen allowing it in traffic",
            env.policy_file.display(),
            r.old.label()
        ));
    }
    fx.summary.push(format!(
        "both {} and {} are valid now: the overlap window is open{}",
        r.old.label(),
        new.label(),
        if fx.diff.is_some() {
            "; a running gate applies the edited policy file when it reloads it"
        } else {
            ""
        }
    ));
    r.details.intended_policies = intended;
    r.details.already_admitted = already;
    r.details.added_at = Some(now);
    Ok(fx)
}

/// Revoke: remove the old credential from policies, then revoke it (and publish a CRL).
pub(super) fn revoke(
    env: &RotationEnv<'_>,
    r: &mut Rotation,
    t: &Transition,
    now: DateTime<Utc>,
) -> Result<Effects, RotationError> {
    let mut fx = Effects::default();
    if t.forced {
        fx.summary
            .push("FORCED: verification had not passed; recorded as a forced revoke".into());
    }
    if r.in_place() {
        let admin = |t: &crate::store::TokenRecord| {
            let extra = serde_json::json!({ "rotation": r.id });
            crate::audit::admin::token_entry(now, "token_secret_grace_end", t, extra)
        };
        let line = match crate::store::wait(env.store.end_secret_grace(&r.old.key, now, &admin)) {
            Ok(t) => format!(
                "token {}: the previous secret ({}) is refused from now on (token_secret_superseded); {} stays",
                t.name,
                r.old.label(),
                r.new.as_ref().map(CredentialRef::label).unwrap_or_default()
            ),
            Err(crate::store::StoreError::Conflict(_)) => format!(
                "the previous secret ({}) was refused already (its grace had ended)",
                r.old.label()
            ),
            Err(e) => return Err(e.into()),
        };
        fx.summary.push(line);
        r.details.revoked_at = Some(now);
        r.forced = r.forced || t.forced;
        return Ok(fx);
    }
    if r.kind == CredentialKind::Token {
        let cfg = crate::config::load(env.policy_file)?;
        let plan = edit::plan_remove_token(&cfg.text, &r.old.name)?;
        fx.apply_edit(env.policy_file, plan, "removed", &r.old.name)?;
    } else if r.new.as_ref().is_some_and(|n| n.name != r.old.name) {
        super::new_cn::remove_cn_if_unused(env, &mut fx, &r.old.name, &r.old.key, now)?;
    } else {
        fx.summary.push("policies select certificates by CN and issuer, which the new certificate shares: nothing to remove; revocation and the CRL cut the old one off".into());
    }
    fx.summary
        .push(revoke_credential(env.store, r.kind, &r.old, now)?);
    r.details.revoked_at = Some(now);
    r.forced = r.forced || t.forced;
    Ok(fx)
}

/// Revoke a token or certificate (skipped when already revoked); for certificates also sign a
/// new CRL so TLS handshakes refuse it.
pub(super) fn revoke_credential(
    store: &Store,
    kind: CredentialKind,
    c: &CredentialRef,
    now: DateTime<Utc>,
) -> Result<String, RotationError> {
    match kind {
        CredentialKind::Token => {
            let t = crate::store::wait(store.find_token(&c.key))?;
            if t.revoked_at.is_some() {
                return Ok(format!(
                    "token {} ({}) was revoked already",
                    t.name, t.client_id
                ));
            }
            crate::store::wait(store.revoke_token(&c.key, now))?;
            Ok(format!(
                "revoked token {} ({}); the running gate refuses it within 1 s",
                t.name, t.client_id
            ))
        }
        CredentialKind::Cert => {
            let cert = find_cert(store, &c.key)?;
            let mut line = if cert.revoked_at.is_some() {
                format!("certificate {} was revoked already", c.label())
            } else {
                crate::store::wait(store.revoke_cert(cert.id, now, Some("superseded")))?;
                format!("revoked certificate {}", c.label())
            };
            if cert.ca_id.is_some() {
                let crl = crate::pki::issue_crl(store, now)?;
                line.push_str(&format!(
                    "; published CRL #{} of {:?} listing {} revoked",
                    crl.crl_number, crl.ca_name, crl.revoked
                ));
            }
            Ok(line)
        }
    }
}

/// The policy file, loaded and compiled.
pub(super) fn load(env: &RotationEnv<'_>) -> Result<(LoadedConfig, PolicySet), RotationError> {
    let cfg = crate::config::load(env.policy_file)?;
    let set = crate::policy::compile(&cfg.file)?;
    Ok((cfg, set))
}

/// A certificate as a rotation refers to it: by fingerprint, with CN and serial.
pub(super) fn cert_ref(c: &CertRecord) -> CredentialRef {
    CredentialRef {
        key: c.fingerprint_sha256.clone(),
        name: c.common_name.clone(),
        serial: Some(c.serial.clone()),
        secret_version: None,
        expires_at: Some(c.not_after),
    }
}

/// The inventory row of the certificate with this fingerprint.
pub(super) fn find_cert(store: &Store, fingerprint: &str) -> Result<CertRecord, RotationError> {
    crate::store::wait(store.find_certs(fingerprint))?
        .into_iter()
        .find(|c| c.fingerprint_sha256 == fingerprint)
        .ok_or_else(|| {
            RotationError::NotFound(format!(
                "certificate {fingerprint} is no longer in the inventory"
            ))
        })
}

/// The identity the gate would see for a stored certificate.
pub(super) fn cert_identity(c: &CertRecord) -> Result<CertIdentity, RotationError> {
    let der = crate::pki::certificates(
        &format!("stored certificate {}", c.serial),
        c.cert_pem.as_bytes(),
    )?
    .into_iter()
    .next()
    .map(|info| info.der)
    .unwrap_or_default();
    crate::gate::tls::peer_cert(&der)
        .map(|p| p.identity)
        .ok_or_else(|| RotationError::Corrupt {
            id: c.serial.clone(),
            detail: "the stored certificate cannot be parsed".into(),
        })
}
