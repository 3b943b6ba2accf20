//! The side effects of each rotation step, after `machine` allowed it: create the new
//! credential, edit the policy file (diff, backup, atomic write), revoke (+ CRL), persist the
//! rotation and write the admin audit event. The CLI and the console both call these.
//!
//! Each step is safe to retry after a crash: policy edits are idempotent (a no-op edit is
//! skipped), revoking something already revoked is skipped, and the stored state only moves
//! (compare-and-set on the previous state) once the effects are done.
//!
//! Abort revokes the new credential as well as removing it from policies: a user who aborts
//! expects the replacement not to stay valid, and a secret that was shown once may already be
//! sitting in a CI variable. Clients already using it are listed in the outcome's notes.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::create::{self, check_new_path};
use super::evidence::{Evidence, EvidenceReader, Which, client_label};
use super::machine::{self, Refusal, Step, Transition};
use super::policies::{admitting, describe};
use super::{
    CredentialKind, CredentialRef, PolicyRef, Rotation, RotationDetails, RotationError,
    RotationState, StepRecord, admin,
};
use crate::config::LoadedConfig;
use crate::config::edit::{self, Edit};
use crate::credential::ClientSecret;
use crate::policy::{CertIdentity, Identity, PolicySet};
use crate::store::Store;
use crate::store::pki::CertRecord;

/// Where a rotation's effects happen: the store, the policy file, the state dir (audit log).
#[derive(Debug, Clone, Copy)]
pub struct RotationEnv<'a> {
    pub store: &'a Store,
    pub policy_file: &'a Path,
    pub state_dir: &'a Path,
}

/// Options of `start`.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub quiet_period: Duration,
    pub min_requests: u64,
    /// Tokens: write the secret JSON here (0600) instead of returning it.
    pub secret_out: Option<PathBuf>,
    /// Certificates: directory for `<CN>.<id>.crt` and `.key`; default `<state dir>/rotations`.
    pub cert_out: Option<PathBuf>,
    pub now: DateTime<Utc>,
}

/// What `start` made.
#[derive(Debug)]
pub struct Started {
    pub rotation: Rotation,
    /// The new token's secret when it was not written to a file: show it once, never store it.
    pub secret: Option<ClientSecret>,
    /// Files the new credential was written to.
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// What a performed step did.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub rotation: Rotation,
    pub transition: Transition,
    /// What was done, one line each.
    pub summary: Vec<String>,
    /// The policy file diff, when it was edited.
    pub diff: Option<String>,
    pub backup: Option<PathBuf>,
    /// Things to know (warnings, clients affected).
    pub notes: Vec<String>,
    pub evidence: Evidence,
}

/// A credential a finished rotation revoked: requests still using it come from a client that
/// did not roll over ("failed auth after rotation").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotatedOut {
    pub kind: CredentialKind,
    /// Token client id or certificate SHA-256 fingerprint, as access events carry them.
    pub key: String,
    /// Token name or certificate CN.
    pub name: String,
    pub serial: Option<String>,
    pub rotation_id: String,
    pub revoked_at: DateTime<Utc>,
    /// The credential that replaced it.
    pub replaced_by: Option<String>,
    pub forced: bool,
}

/// Step 1 for a token (by name or client id): create `NAME-vN` and start the rotation.
pub fn start_token(
    env: &RotationEnv<'_>,
    name_or_client_id: &str,
    opts: &StartOptions,
) -> Result<Started, RotationError> {
    check_options(opts)?;
    let (cfg, set) = load(env)?;
    let old = env.store.find_token(name_or_client_id)?;
    if old.revoked_at.is_some() {
        return Err(RotationError::Conflict(format!(
            "token {:?} ({}) is revoked; there is nothing to rotate",
            old.name, old.client_id
        )));
    }
    ensure_not_rotating(env.store, CredentialKind::Token, &old.client_id)?;
    if let Some(out) = &opts.secret_out {
        check_new_path(out, "--secret-out")?;
    }
    let mut notes = Vec::new();
    if old.expires_at <= opts.now {
        notes.push(format!(
            "token {:?} expired at {}; its clients are failing already",
            old.name, old.expires_at
        ));
    }
    let intended = admitting(&set, Identity::Token { name: &old.name });
    let (new, secret) = create::create_token(env.store, &old, opts.now)?;
    let mut files = Vec::new();
    let secret = match &opts.secret_out {
        Some(out) => {
            if let Err(e) = create::write_secret_file(out, &new, &secret) {
                let _ = env.store.revoke_token(&new.client_id, opts.now);
                return Err(e);
            }
            files.push(out.clone());
            None
        }
        None => Some(secret),
    };
    let rotation = new_rotation(
        env,
        &cfg,
        CredentialKind::Token,
        CredentialRef {
            key: old.client_id.clone(),
            name: old.name.clone(),
            serial: None,
            expires_at: Some(old.expires_at),
        },
        CredentialRef {
            key: new.client_id.clone(),
            name: new.name.clone(),
            serial: None,
            expires_at: Some(new.expires_at),
        },
        intended,
        files.clone(),
        opts,
    );
    let rotation = match insert_new(env.store, rotation) {
        Ok(r) => r,
        Err(e) => {
            let _ = env.store.revoke_token(&new.client_id, opts.now);
            return Err(e);
        }
    };
    notes.extend(record_created(env.store, &rotation, opts.now));
    Ok(Started {
        rotation,
        secret,
        files,
        notes,
    })
}

/// Step 1 for a certificate (by CN, serial or fingerprint): issue a new certificate for the
/// same CN and start the rotation.
pub fn start_cert(
    env: &RotationEnv<'_>,
    cn_or_serial: &str,
    opts: &StartOptions,
) -> Result<Started, RotationError> {
    check_options(opts)?;
    let (cfg, set) = load(env)?;
    let old = create::find_old_cert(env.store, cn_or_serial)?;
    ensure_not_rotating(env.store, CredentialKind::Cert, &old.fingerprint_sha256)?;
    let old_identity = cert_identity(&old)?;
    let intended = admitting(&set, Identity::Cert(&old_identity));
    let issuing = crate::pki::load_issuing_ca(env.store)?;
    let mut notes = create::check_new_chain_trusted(env.store, &set, &old, &intended, &issuing)?;
    let out_dir = match &opts.cert_out {
        Some(d) => d.clone(),
        None => {
            let d = env.state_dir.join("rotations");
            crate::store::create_private_dir(&d)?;
            d
        }
    };
    let id = fresh_id(env.store)?;
    let (issued, files, issue_notes) =
        create::issue_cert(env.store, &old, &out_dir, &id, opts.now)?;
    notes.extend(issue_notes);
    let mut rotation = new_rotation(
        env,
        &cfg,
        CredentialKind::Cert,
        cert_ref(&old),
        cert_ref(&issued.record),
        intended,
        files.clone(),
        opts,
    );
    rotation.id = id;
    let rotation = match insert_new(env.store, rotation) {
        Ok(r) => r,
        Err(e) => {
            let _ = env
                .store
                .revoke_cert(issued.record.id, opts.now, Some("superseded"));
            return Err(e);
        }
    };
    notes.extend(record_created(env.store, &rotation, opts.now));
    Ok(Started {
        rotation,
        secret: None,
        files,
        notes,
    })
}

/// Perform the next step (`force`: revoke without passed verification, recorded as forced).
/// A refused step is recorded as an admin event and returned as `RotationError::Refused`.
pub fn next(
    env: &RotationEnv<'_>,
    id: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<StepOutcome, RotationError> {
    let mut r = find(env.store, id)?;
    let ev = collect_evidence(&r)?;
    let t = match machine::next_transition(&r, &ev, now, force) {
        Ok(t) => t,
        Err(refusal) => return Err(refused(env.store, &r, refusal, now)),
    };
    let effects = match t.step {
        Step::Add => add(env, &mut r, now),
        Step::Revoke => revoke(env, &mut r, &t, now),
        Step::Rollout => {
            r.details.rollout_started_at = Some(now);
            Ok(Effects::line(format!(
                "rollout started: switch clients to {}{}",
                new_label(&r),
                files_hint(&r.details)
            )))
        }
        Step::Verify => {
            let check = machine::check_verify(&r, &ev, now);
            r.details.verified_at = Some(now);
            Ok(Effects::line(format!(
                "verified: {} served {} {} through {}; {} silent since {}",
                new_label(&r),
                check.new_requests,
                super::evidence::plural(check.new_requests, "request", "requests"),
                describe(&check.counted_policies),
                r.old.label(),
                check.quiet_since.format("%Y-%m-%d %H:%M:%S UTC")
            )))
        }
        Step::Create | Step::Abort => Ok(Effects::default()),
    };
    let effects = match effects {
        Ok(fx) => fx,
        Err(RotationError::Refused(refusal)) => return Err(refused(env.store, &r, refusal, now)),
        Err(e) => return Err(e),
    };
    finish(env, r, t, effects, ev, now)
}

/// Abort: remove the new credential from policies again and revoke it.
pub fn abort(
    env: &RotationEnv<'_>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<StepOutcome, RotationError> {
    let mut r = find(env.store, id)?;
    let ev = collect_evidence(&r)?;
    let t = match machine::abort_transition(&r, &ev, now) {
        Ok(t) => t,
        Err(refusal) => return Err(refused(env.store, &r, refusal, now)),
    };
    let mut fx = Effects::default();
    if let Some(new) = r.new.clone() {
        if r.kind == CredentialKind::Token && r.details.added_at.is_some() {
            let cfg = crate::config::load(env.policy_file)?;
            let plan = edit::plan_remove_token(&cfg.text, &new.name)?;
            fx.apply_edit(env.policy_file, plan, "removed", &new.name)?;
        }
        fx.summary
            .push(revoke_credential(env.store, r.kind, &new, now)?);
        let users: Vec<String> = ev
            .clients
            .values()
            .filter(|c| c.last_credential == Which::New)
            .map(|c| client_label(c, now))
            .collect();
        if !users.is_empty() {
            fx.notes.push(format!(
                "these clients were using {} and are now refused: {}; point them back to {}",
                new.name,
                users.join(", "),
                r.old.name
            ));
        }
    }
    r.details.aborted_at = Some(now);
    finish(env, r, t, fx, ev, now)
}

/// One rotation by id (`rot-4f2a9c`, or just `4f2a9c`).
pub fn find(store: &Store, id: &str) -> Result<Rotation, RotationError> {
    let id = id.trim();
    let full = if id.starts_with("rot-") {
        id.to_string()
    } else {
        format!("rot-{id}")
    };
    Rotation::from_row(store.find_rotation(&full)?)
}

/// Every rotation, newest first.
pub fn list(store: &Store) -> Result<Vec<Rotation>, RotationError> {
    store
        .list_rotations()?
        .into_iter()
        .map(Rotation::from_row)
        .collect()
}

/// The evidence for `r` from its audit log, read from where the rotation started.
pub fn collect_evidence(r: &Rotation) -> Result<Evidence, RotationError> {
    let mut reader = EvidenceReader::for_rotation(r);
    reader.poll().map_err(|source| RotationError::Io {
        action: "read the audit log",
        path: r.details.audit_log.clone(),
        source,
    })?;
    Ok(reader.into_evidence())
}

/// Old credentials revoked by finished rotations, for "failed auth after rotation" alerts.
pub fn rotated_out(store: &Store) -> Result<Vec<RotatedOut>, RotationError> {
    Ok(list(store)?
        .into_iter()
        .filter(|r| r.state == RotationState::Revoked)
        .map(|r| RotatedOut {
            kind: r.kind,
            key: r.old.key.clone(),
            name: r.old.name.clone(),
            serial: r.old.serial.clone(),
            revoked_at: r.details.revoked_at.unwrap_or(r.updated_at),
            replaced_by: r.new.as_ref().map(|n| n.name.clone()),
            forced: r.forced,
            rotation_id: r.id,
        })
        .collect())
}

// ---- steps --------------------------------------------------------------------------------

/// What a step changed, accumulated for the outcome.
#[derive(Debug, Default)]
struct Effects {
    summary: Vec<String>,
    diff: Option<String>,
    backup: Option<PathBuf>,
    notes: Vec<String>,
}

impl Effects {
    fn line(s: String) -> Self {
        Self {
            summary: vec![s],
            ..Default::default()
        }
    }

    /// Write a planned policy edit unless it changes nothing; record diff, backup and summary.
    fn apply_edit(
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
            super::evidence::plural(changed.len() as u64, "policy", "policies"),
            describe(&changed),
            backup.display()
        ));
        self.diff = Some(plan.diff);
        self.backup = Some(backup);
        Ok(changed)
    }
}

/// Add: admit the new credential wherever the old one is admitted.
fn add(
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
            let old_id = cert_identity(&find_cert(env.store, &r.old.key)?)?;
            let new_id = cert_identity(&find_cert(env.store, &new.key)?)?;
            let intended = admitting(&set, Identity::Cert(&old_id));
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
        if r.kind == CredentialKind::Token {
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
fn revoke(
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
    if r.kind == CredentialKind::Token {
        let cfg = crate::config::load(env.policy_file)?;
        let plan = edit::plan_remove_token(&cfg.text, &r.old.name)?;
        fx.apply_edit(env.policy_file, plan, "removed", &r.old.name)?;
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
fn revoke_credential(
    store: &Store,
    kind: CredentialKind,
    c: &CredentialRef,
    now: DateTime<Utc>,
) -> Result<String, RotationError> {
    match kind {
        CredentialKind::Token => {
            let t = store.find_token(&c.key)?;
            if t.revoked_at.is_some() {
                return Ok(format!(
                    "token {} ({}) was revoked already",
                    t.name, t.client_id
                ));
            }
            store.revoke_token(&c.key, now)?;
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
                store.revoke_cert(cert.id, now, Some("superseded"))?;
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

// ---- helpers ------------------------------------------------------------------------------

fn check_options(opts: &StartOptions) -> Result<(), RotationError> {
    if opts.min_requests == 0 {
        return Err(RotationError::BadInput(
            "--min-requests must be at least 1: verification needs real traffic with the new credential".into(),
        ));
    }
    if opts.quiet_period <= Duration::zero() {
        return Err(RotationError::BadInput(
            "--quiet-period must be positive".into(),
        ));
    }
    Ok(())
}

fn load(env: &RotationEnv<'_>) -> Result<(LoadedConfig, PolicySet), RotationError> {
    let cfg = crate::config::load(env.policy_file)?;
    let set = crate::policy::compile(&cfg.file)?;
    Ok((cfg, set))
}

/// The audit log the gate writes, as `GateOptions::from_file` resolves it.
fn audit_log(env: &RotationEnv<'_>, cfg: &LoadedConfig) -> PathBuf {
    let p = &cfg.file.gate.audit_log;
    if p.is_absolute() {
        p.clone()
    } else {
        env.state_dir.join(p)
    }
}

fn ensure_not_rotating(
    store: &Store,
    kind: CredentialKind,
    key: &str,
) -> Result<(), RotationError> {
    for r in list(store)? {
        if r.kind != kind || r.state.is_finished() {
            continue;
        }
        if r.old.key == key {
            return Err(RotationError::Conflict(format!(
                "rotation {} of {} is in progress ({}); continue it with `botgate rotate next {}` or abort it",
                r.id,
                r.old.label(),
                r.state.as_str(),
                r.id
            )));
        }
        if r.new.as_ref().is_some_and(|n| n.key == key) {
            return Err(RotationError::Conflict(format!(
                "{} is the new credential of rotation {}, which is not finished; finish or abort it first",
                r.new.as_ref().map_or(String::new(), CredentialRef::label),
                r.id
            )));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn new_rotation(
    env: &RotationEnv<'_>,
    cfg: &LoadedConfig,
    kind: CredentialKind,
    old: CredentialRef,
    new: CredentialRef,
    intended: Vec<PolicyRef>,
    files: Vec<PathBuf>,
    opts: &StartOptions,
) -> Rotation {
    let audit_log = audit_log(env, cfg);
    let audit_offset = std::fs::metadata(&audit_log).map_or(0, |m| m.len());
    Rotation {
        id: String::new(),
        kind,
        state: RotationState::Created,
        old,
        new: Some(new),
        quiet_period: opts.quiet_period,
        min_requests: opts.min_requests,
        forced: false,
        details: RotationDetails {
            audit_log,
            audit_offset,
            policy_file: env.policy_file.to_path_buf(),
            intended_policies: intended,
            new_credential_files: files,
            ..Default::default()
        },
        created_at: opts.now,
        updated_at: opts.now,
    }
}

/// A short, typeable id not in use yet: `rot-` + 6 hex digits.
fn fresh_id(store: &Store) -> Result<String, RotationError> {
    for _ in 0..16 {
        let id = format!("rot-{:06x}", rand::random::<u32>() & 0x00ff_ffff);
        if matches!(
            store.find_rotation(&id),
            Err(crate::store::StoreError::NotFound(_))
        ) {
            return Ok(id);
        }
    }
    Err(RotationError::Conflict(
        "could not find a free rotation id".into(),
    ))
}

fn insert_new(store: &Store, mut r: Rotation) -> Result<Rotation, RotationError> {
    if r.id.is_empty() {
        r.id = fresh_id(store)?;
    }
    r.details.history.push(StepRecord {
        step: Step::Create,
        at: r.created_at,
        actor: crate::store::actor(),
        forced: false,
        summary: vec![format!(
            "created {} to replace {}",
            new_label(&r),
            r.old.label()
        )],
        evidence: Vec::new(),
    });
    store.insert_rotation(&r.to_row())?;
    Ok(r)
}

fn record_created(store: &Store, r: &Rotation, now: DateTime<Utc>) -> Vec<String> {
    admin::record(
        store,
        r,
        now,
        Step::Create.admin_action(),
        true,
        serde_json::json!({ "step": "create", "to": r.state.as_str(), "files": r.details.new_credential_files }),
    )
}

/// Record a refusal and turn it into the error.
fn refused(store: &Store, r: &Rotation, refusal: Refusal, now: DateTime<Utc>) -> RotationError {
    let _ = admin::record(
        store,
        r,
        now,
        "rotation_refused",
        false,
        serde_json::json!({
            "step": refusal.step.map(Step::as_str),
            "reason": refusal.reason,
            "evidence": refusal.evidence,
        }),
    );
    RotationError::Refused(refusal)
}

/// Persist the moved rotation (compare-and-set on the previous state) and write the admin event.
fn finish(
    env: &RotationEnv<'_>,
    mut r: Rotation,
    t: Transition,
    mut fx: Effects,
    evidence: Evidence,
    now: DateTime<Utc>,
) -> Result<StepOutcome, RotationError> {
    r.state = t.to;
    r.updated_at = now;
    r.details.history.push(StepRecord {
        step: t.step,
        at: now,
        actor: crate::store::actor(),
        forced: t.forced,
        summary: fx.summary.clone(),
        evidence: t.evidence.clone(),
    });
    env.store.update_rotation(&r.to_row(), t.from.as_str())?;
    fx.notes.extend(admin::record(
        env.store,
        &r,
        now,
        t.step.admin_action(),
        true,
        serde_json::json!({
            "step": t.step.as_str(),
            "from": t.from.as_str(),
            "to": t.to.as_str(),
            "forced": t.forced,
            "summary": fx.summary,
            "evidence": t.evidence,
        }),
    ));
    Ok(StepOutcome {
        rotation: r,
        transition: t,
        summary: fx.summary,
        diff: fx.diff,
        backup: fx.backup,
        notes: fx.notes,
        evidence,
    })
}

fn new_label(r: &Rotation) -> String {
    r.new
        .as_ref()
        .map_or_else(|| "(none)".into(), CredentialRef::label)
}

fn files_hint(d: &RotationDetails) -> String {
    if d.new_credential_files.is_empty() {
        return String::new();
    }
    let files: Vec<String> = d
        .new_credential_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(" (from {})", files.join(", "))
}

fn cert_ref(c: &CertRecord) -> CredentialRef {
    CredentialRef {
        key: c.fingerprint_sha256.clone(),
        name: c.common_name.clone(),
        serial: Some(c.serial.clone()),
        expires_at: Some(c.not_after),
    }
}

fn find_cert(store: &Store, fingerprint: &str) -> Result<CertRecord, RotationError> {
    store
        .find_certs(fingerprint)?
        .into_iter()
        .find(|c| c.fingerprint_sha256 == fingerprint)
        .ok_or_else(|| {
            RotationError::NotFound(format!(
                "certificate {fingerprint} is no longer in the inventory"
            ))
        })
}

/// The identity the gate would see for a stored certificate.
fn cert_identity(c: &CertRecord) -> Result<CertIdentity, RotationError> {
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
