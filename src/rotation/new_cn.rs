//! Certificate rotation to a new CN (`rotate start cert OLD --new-cn NEW`), and the trust check
//! every certificate add does.
//!
//! Policies name certificates by `common_name` (a full-match regex). A selector that spells
//! the old CN exactly gets the new CN added beside it (format-preserving edit). A regex that
//! admits the old CN is a naming convention, and botgate does not make exceptions to it on its
//! own: when the regex already admits the new CN the add step records that nothing needed
//! editing; when it does not, the add step refuses, names the policy, the regex and the line to
//! add, and the user decides (widen the regex, or add the exact CN beside it) before running
//! `next` again. At revoke, the old CN leaves the policies only when no other valid
//! certificate still carries it; abort removes the new CN the same way.
//!
//! Trust: whichever CA issued the new certificate, every app whose policies admit the old one
//! must trust that CA's chain (`trusted_cas`) before add passes: checked, not assumed.

use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::machine::{Refusal, Step};
use super::policies::admitting;
use super::steps::Effects;
use super::workflow::RotationEnv;
use super::{PolicyRef, Rotation, RotationError};
use crate::config::edit;
use crate::config::model::Selector;
use crate::config::{LoadedConfig, PolicyFile};
use crate::policy::{CertIdentity, Identity, PolicySet};
use crate::store::Store;
use crate::store::pki::CertRecord;

/// The new CN asked for, checked: `None` when it is the old CN (a same-CN rotation).
pub(crate) fn check_new_cn(
    old_cn: &str,
    new_cn: Option<&str>,
) -> Result<Option<String>, RotationError> {
    let Some(new_cn) = new_cn else {
        return Ok(None);
    };
    crate::pki::issue::validate_common_name(new_cn)
        .map_err(|e| RotationError::BadInput(format!("--new-cn: {e}")))?;
    Ok((new_cn != old_cn).then(|| new_cn.to_string()))
}

/// What the add step found for a CN change, before anything is written.
#[derive(Debug, Default)]
pub(super) struct CnPlan {
    /// The edit adding the new CN beside every exact selector of the old one.
    pub(super) edit: Option<edit::Edit>,
    /// Policies whose regex admits both CNs: nothing to edit there.
    pub(super) regex_admits_new: Vec<String>,
}

/// What the add of a new CN would do to the policy file, judged before anything is written.
#[derive(Debug)]
struct CnCheck {
    edit: edit::Edit,
    /// One line per policy that would admit the old CN but not the new one.
    missing: Vec<String>,
    /// One line per CN pattern that admits both.
    regex_admits_new: Vec<String>,
}

/// Plan the exact-CN edit, then check that the edited file admits `new_id` wherever the old
/// CN is admitted (`intended`).
fn check(
    policy_file: &std::path::Path,
    cfg: &LoadedConfig,
    old_cn: &str,
    new_id: &CertIdentity,
    intended: &[PolicyRef],
) -> Result<CnCheck, RotationError> {
    let new_cn = new_id.common_name.as_deref().unwrap_or_default();
    let plan = edit::plan_add_common_name(&cfg.text, old_cn, new_cn)?;
    let after_file = crate::config::parse(policy_file, &plan.new_text)?.file;
    let after = crate::policy::compile(&after_file)?;
    let admitted_after = admitting(&after, Identity::Cert(new_id));
    let mut missing = Vec::new();
    let mut regex_admits_new = Vec::new();
    for p in intended {
        let regexes = cn_regexes(&cfg.file, p, old_cn);
        if admitted_after.contains(p) {
            for re in regexes {
                regex_admits_new.push(format!(
                    "{p}: common_name {re:?} admits the new CN {new_cn:?} too; nothing to edit there"
                ));
            }
            continue;
        }
        missing.push(if regexes.is_empty() {
            format!(
                "{p}: would admit {old_cn:?} but not {new_cn:?} after the edit (a require or exclude selects the old certificate?)"
            )
        } else {
            format!(
                "{p}: common_name {} admits the old CN {old_cn:?} but NOT the new CN {new_cn:?}",
                regexes
                    .iter()
                    .map(|re| format!("{re:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    Ok(CnCheck {
        edit: plan,
        missing,
        regex_admits_new,
    })
}

/// At start: what add will do for the new CN, as notes (so a pattern that needs editing is
/// known before the first `next`). The certificate the gate would see is the old one with the
/// new CN (same issuing CA checks apply separately).
pub(super) fn preview(
    policy_file: &std::path::Path,
    cfg: &LoadedConfig,
    old_id: &CertIdentity,
    new_cn: &str,
    intended: &[PolicyRef],
) -> Vec<String> {
    let old_cn = old_id.common_name.as_deref().unwrap_or_default();
    let new_id = CertIdentity {
        common_name: Some(new_cn.to_string()),
        ..old_id.clone()
    };
    let Ok(c) = check(policy_file, cfg, old_cn, &new_id, intended) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if !c.edit.changed_policies.is_empty() {
        notes.push(format!(
            "add will name {new_cn:?} beside {old_cn:?} in {}",
            c.edit
                .changed_policies
                .iter()
                .map(|(app, policy)| format!("{policy:?} of app {app:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    notes.extend(c.regex_admits_new);
    for m in c.missing {
        notes.push(format!(
            "add will be refused until you edit the policy: {m}"
        ));
    }
    notes
}

/// Plan the add of a new CN: the exact-CN edit, then check that the edited file admits the new
/// certificate wherever the old one is admitted. A policy that would not (a regex that does not
/// match the new CN, or a require/exclude) refuses the step with one evidence line each.
pub(super) fn plan_add(
    env: &RotationEnv<'_>,
    cfg: &LoadedConfig,
    r: &Rotation,
    new_id: &CertIdentity,
    intended: &[PolicyRef],
) -> Result<CnPlan, RotationError> {
    let old_cn = r.old.name.as_str();
    let new_cn = new_id.common_name.as_deref().unwrap_or_default();
    let c = check(env.policy_file, cfg, old_cn, new_id, intended)?;
    if !c.missing.is_empty() {
        return Err(RotationError::Refused(Refusal {
            rotation_id: r.id.clone(),
            state: r.state,
            step: Some(Step::Add),
            reason: format!(
                "the new certificate (CN {new_cn:?}) would not be admitted everywhere the old one (CN {old_cn:?}) is: botgate adds a new CN beside exact common_name selectors, but does not widen a pattern on its own"
            ),
            evidence: c.missing,
            hint: Some(format!(
                "edit those policies in {} so they admit the new CN — widen the regex, or add {{ common_name = \"{}\" }} beside it — then run `botgate rotate next {}` again",
                env.policy_file.display(),
                edit_value_hint(new_cn),
                r.id
            )),
        }));
    }
    Ok(CnPlan {
        edit: (!c.edit.is_noop()).then_some(c.edit),
        regex_admits_new: c.regex_admits_new,
    })
}

/// The CN as a TOML basic-string value that matches exactly it.
fn edit_value_hint(cn: &str) -> String {
    let mut out = String::new();
    for c in cn.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push_str("\\\\");
        }
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The non-exact `common_name` patterns of policy `p` that match `old_cn`.
fn cn_regexes(file: &PolicyFile, p: &PolicyRef, old_cn: &str) -> Vec<String> {
    let Some(policy) = file
        .app
        .iter()
        .filter(|a| a.name.get_ref() == &p.app)
        .flat_map(|a| &a.policy)
        .find(|q| q.name.get_ref() == &p.policy)
    else {
        return Vec::new();
    };
    policy
        .include
        .iter()
        .filter_map(|s| match s.get_ref() {
            Selector::CommonName(re) if !edit::names_cn_exactly(re, old_cn) => Some(re.clone()),
            _ => None,
        })
        .filter(|re| {
            crate::config::values::full_match_regex(re).is_ok_and(|rx| rx.is_match(old_cn))
        })
        .collect()
}

/// Remove `cn`'s exact selectors from the policy file, unless another valid certificate
/// (not revoked, not expired, not `except`) still carries that CN.
pub(super) fn remove_cn_if_unused(
    env: &RotationEnv<'_>,
    fx: &mut Effects,
    cn: &str,
    except_fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<(), RotationError> {
    let others: Vec<CertRecord> = crate::store::wait(env.store.list_certs())?
        .into_iter()
        .filter(|c| {
            c.common_name == cn
                && c.fingerprint_sha256 != except_fingerprint
                && c.revoked_at.is_none()
                && c.not_after > now
        })
        .collect();
    if !others.is_empty() {
        fx.summary.push(format!(
            "kept CN {cn:?} in the policies: {} other valid {} still carry it (serial {})",
            others.len(),
            super::evidence::plural(others.len() as u64, "certificate", "certificates"),
            others
                .iter()
                .map(|c| super::short(&c.serial))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(());
    }
    let cfg = crate::config::load(env.policy_file)?;
    let plan = edit::plan_remove_common_name(&cfg.text, cn)?;
    fx.apply_edit(env.policy_file, plan, "removed CN", cn)?;
    Ok(())
}

/// Every app whose policies admit the old certificate must trust the chain of the CA that
/// issued `new` (its `trusted_cas` bundle holds one of the chain's certificates). Returns notes.
pub(super) fn check_chain_trusted(
    store: &Store,
    set: &PolicySet,
    new: &CertRecord,
    admitting: &[PolicyRef],
) -> Result<Vec<String>, String> {
    let Some(ca_id) = new.ca_id else {
        return Err(format!(
            "the new certificate (serial {}) was not issued by a CA in the store, so its chain cannot be checked",
            new.serial
        ));
    };
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut names = Vec::new();
    let mut next = Some(ca_id);
    // Bounded walk: a CA chain deeper than 8 is a corrupt store, not a real hierarchy.
    for _ in 0..8 {
        let Some(id) = next else { break };
        let ca = crate::store::wait(store.ca_by_id(id)).map_err(|e| e.to_string())?;
        if let Ok(der) = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()) {
            chain.push(der.as_ref().to_vec());
        }
        names.push(ca.name.clone());
        next = ca.parent_id;
    }
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let mut notes = Vec::new();
    let apps = super::create::apps_trust_chain(store, set, admitting, &chain, &mut notes)
        .map_err(|app| {
            format!(
                "the new certificate was issued by {} but app {:?} trusts only {:?}: the handshake with the new certificate would fail. Add the CA to the app's trusted_cas (see `botgate ca list`), then run next again",
                names.join(" < "),
                app.name,
                app.trusted_cas
            )
        })?;
    if !apps.is_empty() {
        notes.push(format!(
            "checked: {} trust the new certificate's issuer {}",
            apps.iter()
                .map(|a| format!("app {a:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            names.first().map(String::as_str).unwrap_or("?")
        ));
    }
    Ok(notes)
}
