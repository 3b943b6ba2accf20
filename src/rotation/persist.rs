//! Persisting rotations: fresh ids, the first row, compare-and-set moves with history, and the
//! admin audit event that goes with every step (and every refusal).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::evidence::Evidence;
use super::machine::{Refusal, Step, Transition};
use super::steps::Effects;
use super::workflow::{RotationEnv, StartOptions, StepOutcome, list, new_label};
use super::{
    CredentialKind, CredentialRef, PolicyRef, Rotation, RotationDetails, RotationError,
    RotationState, StepRecord, admin,
};
use crate::config::LoadedConfig;
use crate::store::Store;

/// Refuse a second rotation of a credential that an unfinished rotation replaces or created.
pub(super) fn ensure_not_rotating(
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

/// A rotation in `created`, reading evidence from just before the end of the gate's audit log.
#[allow(clippy::too_many_arguments)]
pub(super) fn new_rotation(
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
    let audit_offset = super::evidence::start_offset(&audit_log);
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
pub(super) fn fresh_id(store: &Store) -> Result<String, RotationError> {
    for _ in 0..16 {
        let id = format!("rot-{:06x}", rand::random::<u32>() & 0x00ff_ffff);
        if matches!(
            crate::store::wait(store.find_rotation(&id)),
            Err(crate::store::StoreError::NotFound(_))
        ) {
            return Ok(id);
        }
    }
    Err(RotationError::Conflict(
        "could not find a free rotation id".into(),
    ))
}

/// Store the first row (with a fresh id unless one was chosen) and the create step in history.
pub(super) fn insert_new(store: &Store, mut r: Rotation) -> Result<Rotation, RotationError> {
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
    crate::store::wait(store.insert_rotation(&r.to_row()))?;
    Ok(r)
}

/// The admin event of the create step.
pub(super) fn record_created(store: &Store, r: &Rotation, now: DateTime<Utc>) -> Vec<String> {
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
pub(super) fn refused(
    store: &Store,
    r: &Rotation,
    refusal: Refusal,
    now: DateTime<Utc>,
) -> RotationError {
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
pub(super) fn finish(
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
    crate::store::wait(env.store.update_rotation(&r.to_row(), t.from.as_str()))?;
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

/// The audit log the gate writes, as `GateOptions::from_file` resolves it.
fn audit_log(env: &RotationEnv<'_>, cfg: &LoadedConfig) -> PathBuf {
    let p = &cfg.file.gate.audit_log;
    if p.is_absolute() {
        p.clone()
    } else {
        env.state_dir.join(p)
    }
}
