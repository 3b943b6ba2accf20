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
use super::machine::{self, Step, Transition};
use super::persist::{
    ensure_not_rotating, finish, fresh_id, insert_new, new_rotation, record_created, refused,
};
use super::policies::{admitting, describe};
use super::steps::{Effects, add, cert_identity, cert_ref, load, revoke, revoke_credential};
use super::{
    CredentialKind, CredentialRef, Rotation, RotationDetails, RotationError, RotationState,
};
use crate::config::edit;
use crate::credential::ClientSecret;
use crate::policy::Identity;
use crate::store::Store;

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

/// What both token rotations check first: the options, the policy file, and a live token (by
/// name or Client ID) that no unfinished rotation holds; the secret file must not exist yet.
fn token_to_rotate(
    env: &RotationEnv<'_>,
    name_or_client_id: &str,
    opts: &StartOptions,
) -> Result<
    (
        crate::config::LoadedConfig,
        crate::policy::PolicySet,
        crate::store::TokenRecord,
    ),
    RotationError,
> {
    check_options(opts)?;
    let (cfg, set) = load(env)?;
    let old = crate::store::wait(env.store.find_token(name_or_client_id))?;
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
    Ok((cfg, set, old))
}

/// Step 1 for a token (by name or client id): create `NAME-vN` and start the rotation.
pub fn start_token(
    env: &RotationEnv<'_>,
    name_or_client_id: &str,
    opts: &StartOptions,
) -> Result<Started, RotationError> {
    let (cfg, set, old) = token_to_rotate(env, name_or_client_id, opts)?;
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
                let _ = crate::store::wait(env.store.revoke_token(&new.client_id, opts.now));
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
            secret_version: None,
            expires_at: Some(old.expires_at),
        },
        CredentialRef {
            key: new.client_id.clone(),
            name: new.name.clone(),
            serial: None,
            secret_version: None,
            expires_at: Some(new.expires_at),
        },
        intended,
        files.clone(),
        opts,
    );
    let rotation = match insert_new(env.store, rotation) {
        Ok(r) => r,
        Err(e) => {
            let _ = crate::store::wait(env.store.revoke_token(&new.client_id, opts.now));
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

/// Step 1 of a rotation that keeps the Client ID (`rotate start token NAME --in-place`): a new
/// secret for the same token, the current one accepted for `grace` (or until revoke). No
/// policy changes: they name the token, and its name and Client ID stay.
pub fn start_token_in_place(
    env: &RotationEnv<'_>,
    name_or_client_id: &str,
    grace: Duration,
    opts: &StartOptions,
) -> Result<Started, RotationError> {
    let (cfg, set, old) = token_to_rotate(env, name_or_client_id, opts)?;
    let intended = admitting(&set, Identity::Token { name: &old.name });
    let secret = ClientSecret::generate();
    let now = opts.now;
    let admin = |t: &crate::store::TokenRecord| {
        crate::audit::admin::token_entry(now, "token_secret_rotate", t, serde_json::Value::Null)
    };
    let new = crate::store::wait(env.store.rotate_token_secret(
        &old.client_id,
        &secret.hash(),
        now,
        now + grace,
        &admin,
    ))?;
    let undo = || {
        let _ = crate::store::wait(env.store.revert_token_secret(
            &new.client_id,
            new.secret_version,
            &admin,
        ));
    };
    let mut files = Vec::new();
    let secret = match &opts.secret_out {
        Some(out) => {
            if let Err(e) = create::write_secret_file(out, &new, &secret) {
                undo();
                return Err(e);
            }
            files.push(out.clone());
            None
        }
        None => Some(secret),
    };
    let version = |v: i64| Some(u32::try_from(v).unwrap_or(1));
    let rotation = new_rotation(
        env,
        &cfg,
        CredentialKind::Token,
        CredentialRef {
            key: old.client_id.clone(),
            name: old.name.clone(),
            serial: None,
            secret_version: version(old.secret_version),
            expires_at: Some(old.expires_at),
        },
        CredentialRef {
            key: new.client_id.clone(),
            name: new.name.clone(),
            serial: None,
            secret_version: version(new.secret_version),
            expires_at: Some(new.expires_at),
        },
        intended,
        files.clone(),
        opts,
    );
    let rotation = match insert_new(env.store, rotation) {
        Ok(r) => r,
        Err(e) => {
            undo();
            return Err(e);
        }
    };
    let mut notes = record_created(env.store, &rotation, now);
    notes.push(format!(
        "same Client ID {}: clients change only their secret; the previous one (v{}) is accepted until {} or until the revoke step",
        new.client_id,
        old.secret_version,
        crate::clock::rfc3339(now + grace)
    ));
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
    start_cert_to_cn(env, cn_or_serial, None, opts)
}

/// Step 1 for a certificate, optionally to a new CN (`--new-cn`): the add step then names the
/// new CN beside every exact `common_name` selector of the old one (see `new_cn`).
pub fn start_cert_to_cn(
    env: &RotationEnv<'_>,
    cn_or_serial: &str,
    new_cn: Option<&str>,
    opts: &StartOptions,
) -> Result<Started, RotationError> {
    check_options(opts)?;
    let (cfg, set) = load(env)?;
    let old = create::find_old_cert(env.store, cn_or_serial)?;
    let new_cn = super::new_cn::check_new_cn(&old.common_name, new_cn)?;
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
    let cn = new_cn.as_deref().unwrap_or(&old.common_name);
    let (issued, files, issue_notes) =
        create::issue_cert(env.store, &old, cn, &out_dir, &id, opts.now)?;
    notes.extend(issue_notes);
    if let Some(new_cn) = &new_cn {
        notes.push(format!(
            "new CN {new_cn:?} (was {:?}): add names it beside every common_name selector that names the old CN exactly; a pattern that does not match it stops add until you edit the policy",
            old.common_name
        ));
        notes.extend(super::new_cn::preview(
            env.policy_file,
            &cfg,
            &old_identity,
            new_cn,
            &intended,
        ));
    }
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
            let _ = crate::store::wait(env.store.revoke_cert(
                issued.record.id,
                opts.now,
                Some("superseded"),
            ));
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
    let ev = collect_evidence(env.store, &r)?;
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
    let ev = collect_evidence(env.store, &r)?;
    let t = match machine::abort_transition(&r, &ev, now) {
        Ok(t) => t,
        Err(refusal) => return Err(refused(env.store, &r, refusal, now)),
    };
    let mut fx = Effects::default();
    if r.in_place()
        && let Some(new) = r.new.clone()
    {
        // The new secret goes; the previous one is the token's secret again.
        let admin = |t: &crate::store::TokenRecord| {
            let extra = serde_json::json!({ "rotation": r.id });
            crate::audit::admin::token_entry(now, "token_secret_revert", t, extra)
        };
        let version = i64::from(new.secret_version.unwrap_or(1));
        let t = crate::store::wait(env.store.revert_token_secret(&new.key, version, &admin))?;
        fx.summary.push(format!(
            "token {} is back on its previous secret (v{}); the new secret (v{version}) is refused",
            t.name, t.secret_version
        ));
        let users: Vec<String> = ev
            .clients
            .values()
            .filter(|c| c.last_credential == Which::New)
            .map(|c| client_label(c, now))
            .collect();
        if !users.is_empty() {
            fx.notes.push(format!(
                "these clients were using the new secret and are now refused: {}; give them the previous one again",
                users.join(", ")
            ));
        }
    } else if let Some(new) = r.new.clone() {
        if r.kind == CredentialKind::Token && r.details.added_at.is_some() {
            let cfg = crate::config::load(env.policy_file)?;
            let plan = edit::plan_remove_token(&cfg.text, &new.name)?;
            fx.apply_edit(env.policy_file, plan, "removed", &new.name)?;
        }
        if r.kind == CredentialKind::Cert && r.details.added_at.is_some() && new.name != r.old.name
        {
            super::new_cn::remove_cn_if_unused(env, &mut fx, &new.name, &new.key, now)?;
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
    Rotation::from_row(crate::store::wait(store.find_rotation(&full))?)
}

/// Every rotation, newest first.
pub fn list(store: &Store) -> Result<Vec<Rotation>, RotationError> {
    crate::store::wait(store.list_rotations())?
        .into_iter()
        .map(Rotation::from_row)
        .collect()
}

/// The evidence for `r`: its audit log, read from where the rotation started; the requests
/// other gates wrote to the store's usage feed (their last `store::usage::KEEP`, since the
/// rotation started); and the store's last-seen time of the old credential, which every gate on
/// the store writes (batched every 2 s) — so traffic through a gate whose audit log this host
/// does not read counts for the new credential and keeps the old one from counting as silent.
pub fn collect_evidence(store: &Store, r: &Rotation) -> Result<Evidence, RotationError> {
    let mut reader = EvidenceReader::for_rotation(r);
    reader.poll().map_err(|source| RotationError::Io {
        action: "read the audit log",
        path: r.details.audit_log.clone(),
        source,
    })?;
    let mut evidence = reader.into_evidence();
    let target = super::evidence::EvidenceTarget::of(r);
    let mut after = 0;
    loop {
        use crate::store::usage::READ_LIMIT;
        // No gate writes under the empty instance name: every gate's rows.
        let rows = crate::store::wait(store.usage_since(after, "", READ_LIMIT))?;
        for row in &rows {
            after = row.id;
            if row.row.at < r.created_at {
                continue;
            }
            if let Some(crate::audit::tail::TailItem::Event(ev)) =
                crate::audit::tail::parse_line(row.row.event.as_bytes(), 1)
            {
                evidence.ingest_remote(&target, &ev, row.row.requests);
            }
        }
        if rows.len() < READ_LIMIT {
            break;
        }
    }
    if let Some((at, ip)) = store_last_seen(store, r.kind, &r.old)?
        && at >= r.created_at
    {
        evidence.old.seen_by_the_store(at, ip);
    }
    Ok(evidence)
}

/// When and from which IP a credential was last seen.
type Sighting = (DateTime<Utc>, Option<String>);

/// When and from where the store last saw `credential` (any gate).
fn store_last_seen(
    store: &Store,
    kind: CredentialKind,
    credential: &CredentialRef,
) -> Result<Option<Sighting>, RotationError> {
    Ok(match kind {
        CredentialKind::Token => match crate::store::wait(store.find_token(&credential.key)) {
            Ok(t) => t.last_seen_at.map(|at| (at, t.last_seen_ip)),
            Err(crate::store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        CredentialKind::Cert => {
            let by = credential.serial.as_deref().unwrap_or(&credential.name);
            crate::store::wait(store.find_cert_sightings(by))?
                .into_iter()
                .filter(|s| s.fingerprint_sha256 == credential.key)
                .map(|s| (s.last_seen_at, s.last_seen_ip))
                .max_by_key(|(at, _)| *at)
        }
    })
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

pub(super) fn new_label(r: &Rotation) -> String {
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
