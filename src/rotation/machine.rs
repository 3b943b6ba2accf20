//! The rotation state machine as pure functions of (rotation, evidence, now): which step comes
//! next and what state it leads to, or a refusal with the reason and the evidence. No I/O; the
//! side effects of a step are `workflow`'s job, after the transition was allowed here.
//!
//! `created` → add → `added` → rollout → `rolling_out` → verify → `verified` → revoke →
//! `revoked`; abort from any unfinished state → `aborted`. `--force` turns the next step into a
//! revoke that skips verification (from `added`, `rolling_out` or `verified`); it is recorded
//! as forced whenever verification had not passed.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::evidence::{Evidence, plural};
use super::{PolicyRef, Rotation, RotationState};
use crate::duration::{ago, countdown};

/// One step of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Create,
    Add,
    Rollout,
    Verify,
    Revoke,
    Abort,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Add => "add",
            Step::Rollout => "rollout",
            Step::Verify => "verify",
            Step::Revoke => "revoke",
            Step::Abort => "abort",
        }
    }

    /// The `decision` of the admin audit event this step writes.
    pub fn admin_action(self) -> &'static str {
        match self {
            Step::Create => "rotation_create",
            Step::Add => "rotation_add",
            Step::Rollout => "rotation_rollout",
            Step::Verify => "rotation_verify",
            Step::Revoke => "rotation_revoke",
            Step::Abort => "rotation_abort",
        }
    }
}

/// An allowed move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub step: Step,
    pub from: RotationState,
    pub to: RotationState,
    /// A revoke without passed verification.
    pub forced: bool,
    /// The evidence the decision was made on (human lines).
    pub evidence: Vec<String>,
}

/// A refused move: why, the evidence, and what would unblock it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub rotation_id: String,
    pub state: RotationState,
    /// The step that was refused (`None` when nothing is left to do).
    pub step: Option<Step>,
    pub reason: String,
    pub evidence: Vec<String>,
    pub hint: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            Some(step) => write!(
                f,
                "rotation {}: {} refused: {}",
                self.rotation_id,
                step.as_str(),
                self.reason
            )?,
            None => write!(f, "rotation {}: {}", self.rotation_id, self.reason)?,
        }
        for line in &self.evidence {
            write!(f, "\n  {line}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n{h}")?;
        }
        Ok(())
    }
}

/// The outcome of the verify rule at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyCheck {
    pub passed: bool,
    /// Allowed new-credential requests through the counted policies.
    pub new_requests: u64,
    pub min_requests: u64,
    /// Policies that count: those admitting the old credential.
    pub counted_policies: Vec<PolicyRef>,
    /// Since when the old credential has been silent (last seen, or the overlap start if later).
    pub quiet_since: DateTime<Utc>,
    pub quiet_period_secs: i64,
    /// What is missing, one line each (empty when passed).
    pub problems: Vec<String>,
}

/// The verify rule: the new credential authenticated at least `min_requests` real requests that
/// a counted policy allowed, AND the old one has not been seen for the quiet period. The quiet
/// period runs from the old credential's last sighting, but never from before the overlap
/// window opened (add): silence before the new credential could be used proves nothing.
pub fn check_verify(r: &Rotation, ev: &Evidence, now: DateTime<Utc>) -> VerifyCheck {
    let counted = ev.counted_policies(&r.details.intended_policies);
    let new_requests = ev.new_requests_through(&r.details.intended_policies);
    let mut problems = Vec::new();
    let new_label = r.new.as_ref().map_or("(none)".into(), |n| n.label());
    if new_requests < r.min_requests {
        let mut p = if ev.new.requests == 0 {
            format!("new credential {new_label} not seen yet: no client uses it")
        } else {
            format!(
                "new credential {new_label} authenticated {new_requests} of the {} required {} through {}",
                r.min_requests,
                plural(r.min_requests, "request", "requests"),
                policy_list(&counted)
            )
        };
        let elsewhere = ev.new.allowed.saturating_sub(new_requests);
        if elsewhere > 0 {
            p.push_str(&format!(
                " ({elsewhere} more allowed by other policies, which do not count)"
            ));
        }
        if ev.new.denied > 0 {
            p.push_str(&format!(" ({} refused)", ev.new.denied));
        }
        problems.push(p);
    }
    let overlap = r.details.added_at.unwrap_or(r.created_at);
    let quiet_since = ev.old.last_seen.map_or(overlap, |l| l.max(overlap));
    let quiet_for = now - quiet_since;
    if quiet_for < r.quiet_period {
        let left = countdown(r.quiet_period - quiet_for);
        let period = period_label(r.quiet_period);
        problems.push(match ev.old.last_seen {
            Some(last) if ev.old.last_seen_elsewhere => format!(
                "old credential {} last seen {}{} through another gate (the store's last-seen time; this host's audit log counts {} {}); it must be silent for {period} (quiet period): {left} to go if no client uses it again",
                r.old.label(),
                ago(now - last),
                ev.old.last_ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default(),
                ev.old.requests,
                plural(ev.old.requests, "request", "requests"),
            ),
            Some(last) => format!(
                "old credential {} seen {} {}, last {}{}; it must be silent for {period} (quiet period): {left} to go if no client uses it again",
                r.old.label(),
                ev.old.requests,
                plural(ev.old.requests, "time", "times"),
                ago(now - last),
                ev.old.last_ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default(),
            ),
            None => format!(
                "the overlap window opened {}; old credential {} must be silent for {period} (quiet period): {left} to go",
                ago(now - overlap),
                r.old.label()
            ),
        });
    }
    VerifyCheck {
        passed: problems.is_empty(),
        new_requests,
        min_requests: r.min_requests,
        counted_policies: counted,
        quiet_since,
        quiet_period_secs: r.quiet_period.num_seconds(),
        problems,
    }
}

fn policy_list(p: &[PolicyRef]) -> String {
    if p.is_empty() {
        return "the policies that admit the old credential (none found)".into();
    }
    let names: Vec<String> = p.iter().map(|p| format!("{:?}", p.policy)).collect();
    format!("policy {}", names.join(" or "))
}

/// The step `next` would perform from `state` without `--force`.
pub fn upcoming_step(state: RotationState) -> Option<Step> {
    match state {
        RotationState::Created => Some(Step::Add),
        RotationState::Added => Some(Step::Rollout),
        RotationState::RollingOut => Some(Step::Verify),
        RotationState::Verified => Some(Step::Revoke),
        RotationState::Revoked | RotationState::Aborted => None,
    }
}

/// What `next` (with or without `--force`) does now, or why it must not.
pub fn next_transition(
    r: &Rotation,
    ev: &Evidence,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Transition, Refusal> {
    let evidence = ev.summary_lines(r, now);
    let refuse = |step: Option<Step>, reason: String, hint: Option<String>| Refusal {
        rotation_id: r.id.clone(),
        state: r.state,
        step,
        reason,
        evidence: evidence.clone(),
        hint,
    };
    let go = |step: Step, to: RotationState, forced: bool| Transition {
        step,
        from: r.state,
        to,
        forced,
        evidence: evidence.clone(),
    };
    if r.new.is_none() && !r.state.is_finished() {
        return Err(refuse(
            upcoming_step(r.state),
            "the rotation has no new credential recorded".into(),
            Some(format!("abort it with `botgate rotate abort {}`", r.id)),
        ));
    }
    match r.state {
        RotationState::Revoked | RotationState::Aborted => Err(refuse(
            None,
            format!("it is {}: nothing is left to do", r.state.as_str()),
            Some("start a new rotation with `botgate rotate start`".into()),
        )),
        RotationState::Created if force => Err(refuse(
            Some(Step::Revoke),
            "--force skips verification before a revoke, but the new credential is not in any policy yet; revoking the old one now would lock every client out".into(),
            Some(format!("run `botgate rotate next {}` without --force to add the new credential first", r.id)),
        )),
        RotationState::Created => Ok(go(Step::Add, RotationState::Added, false)),
        RotationState::Added | RotationState::RollingOut if force => {
            let check = check_verify(r, ev, now);
            Ok(go(Step::Revoke, RotationState::Revoked, !check.passed))
        }
        RotationState::Added => Ok(go(Step::Rollout, RotationState::RollingOut, false)),
        RotationState::RollingOut => {
            let check = check_verify(r, ev, now);
            if check.passed {
                Ok(go(Step::Verify, RotationState::Verified, false))
            } else {
                Err(refuse(
                    Some(Step::Verify),
                    check.problems.join("; "),
                    Some(format!(
                        "switch the remaining clients to {}, then run `botgate rotate next {}` again; `--force` revokes the old credential anyway (recorded as forced)",
                        r.new.as_ref().map_or(String::new(), |n| n.name.clone()),
                        r.id
                    )),
                ))
            }
        }
        RotationState::Verified => {
            let verified_at = r.details.verified_at.unwrap_or(r.updated_at);
            match ev.old.last_seen {
                Some(last) if last > verified_at && !force => Err(refuse(
                    Some(Step::Revoke),
                    format!(
                        "old credential {} was seen again after verification ({}), last {}{}: a client still uses it",
                        r.old.label(),
                        verified_at.format("%H:%M:%S UTC"),
                        ago(now - last),
                        ev.old.last_ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default()
                    ),
                    Some(format!(
                        "switch that client, then run `botgate rotate next {}` again; `--force` revokes anyway (recorded as forced)",
                        r.id
                    )),
                )),
                Some(last) if last > verified_at => {
                    Ok(go(Step::Revoke, RotationState::Revoked, true))
                }
                _ => Ok(go(Step::Revoke, RotationState::Revoked, false)),
            }
        }
    }
}

/// Abort: allowed from every unfinished state.
pub fn abort_transition(
    r: &Rotation,
    ev: &Evidence,
    now: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    if r.state.is_finished() {
        return Err(Refusal {
            rotation_id: r.id.clone(),
            state: r.state,
            step: Some(Step::Abort),
            reason: format!(
                "it is {} already; a finished rotation cannot be aborted",
                r.state.as_str()
            ),
            evidence: Vec::new(),
            hint: None,
        });
    }
    Ok(Transition {
        step: Step::Abort,
        from: r.state,
        to: RotationState::Aborted,
        forced: false,
        evidence: ev.summary_lines(r, now),
    })
}

/// A period as users write it (`1h`, `30m`, `90s`, `2d`): the largest unit that divides it.
pub fn period_label(d: Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
