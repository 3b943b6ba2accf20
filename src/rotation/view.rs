//! The view-model of a rotation, for the console wizard and `rotate status --json`: the five
//! steps with why each comes where it does, which are done, the evidence, what the next action
//! does and, when it would be refused now, why. Pure: built from (rotation, evidence, now).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::evidence::{ClientTraffic, CredentialTraffic, Evidence};
use super::machine::{self, VerifyCheck, period_label};
use super::{CredentialKind, Rotation, RotationState};

/// Everything the console shows for one rotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RotationView {
    pub id: String,
    pub kind: CredentialKind,
    /// Old credential: token name, or `CN (serial …)`.
    pub old: String,
    pub new: Option<String>,
    /// Token client id or certificate fingerprint of each.
    pub old_key: String,
    pub new_key: Option<String>,
    pub state: RotationState,
    /// The old credential was revoked without passed verification.
    pub forced: bool,
    pub quiet_period: String,
    pub min_requests: u64,
    /// Index in `steps` of the step `next` performs (`steps.len()` when none is left).
    pub step_index: usize,
    pub steps: Vec<StepView>,
    /// Evidence summary, one line each.
    pub evidence: Vec<String>,
    /// The verify rule right now (while it still matters: before verify or revoke).
    pub verify: Option<VerifyCheck>,
    pub traffic: TrafficView,
    /// What `next` does now, in words (`None` when finished).
    pub next_action: Option<String>,
    /// Why `next` would be refused now (`None` when it would go ahead).
    pub refused_reason: Option<String>,
    /// Files the new credential was written to (demo bots pick it up from there).
    pub new_credential_files: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One step of the wizard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// `create`, `add`, `rollout`, `verify`, `revoke`.
    pub name: &'static str,
    /// Why this step comes where it does.
    pub explanation: String,
    pub done: bool,
    pub done_at: Option<DateTime<Utc>>,
}

/// Traffic numbers for charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficView {
    pub old: CredentialCounts,
    pub new: CredentialCounts,
    /// Every client IP seen with either credential, stragglers (still on old) first.
    pub clients: Vec<ClientTraffic>,
    /// Requests per `evidence::BUCKET_SECS` bucket, oldest first.
    pub timeline: Vec<TimelinePoint>,
}

/// One credential's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialCounts {
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
}

/// One timeline bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    pub at: DateTime<Utc>,
    pub old: u64,
    pub new: u64,
}

/// Build the view of `r` with its evidence at `now`.
pub fn view(r: &Rotation, ev: &Evidence, now: DateTime<Utc>) -> RotationView {
    let d = &r.details;
    let done_at = [
        Some(r.created_at),
        d.added_at,
        d.rollout_started_at,
        d.verified_at,
        d.revoked_at,
    ];
    let steps: Vec<StepView> = ["create", "add", "rollout", "verify", "revoke"]
        .into_iter()
        .zip(done_at)
        .map(|(name, at)| StepView {
            name,
            explanation: explanation(r, name),
            done: at.is_some(),
            done_at: at,
        })
        .collect();
    let step_index = match r.state {
        RotationState::Created => 1,
        RotationState::Added => 2,
        RotationState::RollingOut => 3,
        RotationState::Verified => 4,
        RotationState::Revoked => steps.len(),
        RotationState::Aborted => steps.iter().position(|s| !s.done).unwrap_or(steps.len()),
    };
    let verify = matches!(r.state, RotationState::Added | RotationState::RollingOut)
        .then(|| machine::check_verify(r, ev, now));
    let refused_reason = if r.state.is_finished() {
        None
    } else {
        machine::next_transition(r, ev, now, false)
            .err()
            .map(|refusal| refusal.reason)
    };
    let mut clients: Vec<ClientTraffic> = ev.clients.values().cloned().collect();
    clients.sort_by(|a, b| {
        (a.last_credential != super::evidence::Which::Old)
            .cmp(&(b.last_credential != super::evidence::Which::Old))
            .then(b.last_seen.cmp(&a.last_seen))
    });
    RotationView {
        id: r.id.clone(),
        kind: r.kind,
        old: r.old.label(),
        new: r.new.as_ref().map(|n| n.label()),
        old_key: r.old.key.clone(),
        new_key: r.new.as_ref().map(|n| n.key.clone()),
        state: r.state,
        forced: r.forced,
        quiet_period: period_label(r.quiet_period),
        min_requests: r.min_requests,
        step_index,
        steps,
        evidence: ev.summary_lines(r, now),
        verify,
        traffic: TrafficView {
            old: counts(&ev.old),
            new: counts(&ev.new),
            clients,
            timeline: ev
                .timeline
                .iter()
                .filter_map(|(at, [old, new])| {
                    Some(TimelinePoint {
                        at: DateTime::from_timestamp(*at, 0)?,
                        old: *old,
                        new: *new,
                    })
                })
                .collect(),
        },
        next_action: next_action(r),
        refused_reason,
        new_credential_files: d
            .new_credential_files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn counts(t: &CredentialTraffic) -> CredentialCounts {
    CredentialCounts {
        requests: t.requests,
        allowed: t.allowed,
        denied: t.denied,
        last_seen: t.last_seen,
        last_ip: t.last_ip.clone(),
    }
}

/// Why each step comes where it does.
fn explanation(r: &Rotation, step: &str) -> String {
    let new = r
        .new
        .as_ref()
        .map_or("the new credential".into(), |n| n.name.clone());
    let old = &r.old.name;
    let quiet = period_label(r.quiet_period);
    let new_cn = r.kind == CredentialKind::Cert && r.new.as_ref().is_some_and(|n| &n.name != old);
    if r.in_place() {
        let (old, new) = (
            r.old.label(),
            r.new.as_ref().map_or(new.clone(), |n| n.label()),
        );
        match step {
            "create" => {
                return format!(
                    "A new secret is issued for the same Client ID first ({new}), while {old} keeps working for its grace: nothing changes for clients yet, and no policy needs it."
                );
            }
            "add" => {
                return format!(
                    "Nothing to edit: policies name the token, and its name and Client ID stay. Both {old} and {new} are accepted from here: the overlap window is open."
                );
            }
            "revoke" => {
                return format!(
                    "Only now is {old} refused (token_secret_superseded); the token and {new} stay. A client that still sends the previous secret gets 401 and is named by the 'failed auth after rotation' alert."
                );
            }
            _ => {}
        }
    }
    match (step, r.kind) {
        ("create", CredentialKind::Cert) if new_cn => format!(
            "A new certificate with the new CN {new} (replacing {old}) is issued by the same CA first (a changed CA must already be trusted), while the old one keeps working: nothing changes for clients yet."
        ),
        ("add", CredentialKind::Cert) if new_cn => format!(
            "{new} is added next to every common_name selector that names {old} exactly, before any client uses it; a CN pattern that admits {old} but not {new} stops the rotation here until you edit it (botgate does not widen patterns). The issuer's chain must be trusted by the apps. Both are valid from here: the overlap window opens."
        ),
        ("revoke", CredentialKind::Cert) if new_cn => format!(
            "Only now is the old certificate revoked and a new CRL published, so TLS handshakes refuse it; {old} leaves the policies unless another valid certificate still carries it. A client that still presents it is named by the 'failed auth after rotation' alert."
        ),
        ("create", CredentialKind::Token) => format!(
            "A new token {new} is made first, with the old one's lifetime (at most a year), while {old} keeps working: nothing changes for clients yet."
        ),
        ("create", CredentialKind::Cert) => format!(
            "A new certificate for {old} is issued by the same CA first (a changed CA must already be trusted), while the old one keeps working: nothing changes for clients yet."
        ),
        ("add", CredentialKind::Token) => format!(
            "{new} is added next to {old} in every policy that admits {old} before any client uses it, so a client that switches early is never refused. Both are valid from here: the overlap window opens."
        ),
        ("add", CredentialKind::Cert) => "Every policy that admits the old certificate must admit the new one before any client uses it. Policies that select by CN already do, so nothing is edited; one that would refuse the new certificate stops the rotation here. Both are valid from here: the overlap window opens.".into(),
        ("rollout", _) => format!(
            "Clients switch to {new} at their own pace. botgate watches the audit stream: requests per credential over time and which credential each client IP used last, so stragglers show by address."
        ),
        ("verify", _) => format!(
            "Proof from real traffic instead of memory: {new} must have served at least {} request(s) through the policies that admitted {old}, and {old} must have been silent for {quiet}. Revoking before this is how rotations cause outages.",
            r.min_requests
        ),
        ("revoke", CredentialKind::Token) => format!(
            "Only now is {old} revoked and removed from policies. A client that still uses it gets 401 and is named by the 'failed auth after rotation' alert."
        ),
        ("revoke", CredentialKind::Cert) => "Only now is the old certificate revoked and a new CRL published, so TLS handshakes refuse it. A client that still presents it is named by the 'failed auth after rotation' alert.".into(),
        _ => String::new(),
    }
}

/// What `next` does from the current state.
fn next_action(r: &Rotation) -> Option<String> {
    let new = r
        .new
        .as_ref()
        .map_or("the new credential".into(), |n| n.label());
    let old = r.old.label();
    let files = if r.details.new_credential_files.is_empty() {
        String::new()
    } else {
        let f: Vec<String> = r
            .details
            .new_credential_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(" (new credential in {})", f.join(", "))
    };
    let text = match (r.state, r.kind) {
        (RotationState::Created, CredentialKind::Token) if r.in_place() => {
            "add: nothing to edit (same Client ID); opens the overlap window".to_string()
        }
        (RotationState::Verified, CredentialKind::Token) if r.in_place() => {
            format!("revoke: refuse {old} from now on (the token stays)")
        }
        (RotationState::Created, CredentialKind::Token) => format!(
            "add: put {new} next to {old} in every policy that admits it (diff shown, backup kept)"
        ),
        (RotationState::Created, CredentialKind::Cert)
            if r.new.as_ref().is_some_and(|n| n.name != r.old.name) =>
        {
            format!(
                "add: name {new} beside every exact common_name selector of {old} (diff shown, backup kept); check CN patterns and trust"
            )
        }
        (RotationState::Created, CredentialKind::Cert) => format!(
            "add: check that every policy admitting {old} admits {new} too (nothing to edit for CN policies)"
        ),
        (RotationState::Added, _) => format!(
            "rollout: switch clients to {new}{files}; botgate shows which credential each client uses"
        ),
        (RotationState::RollingOut, _) => format!(
            "verify: passes once {new} served {} request(s) through the intended policies and {old} was silent for {}",
            r.min_requests,
            period_label(r.quiet_period)
        ),
        (RotationState::Verified, CredentialKind::Token) => {
            format!("revoke: revoke {old} and remove it from every policy")
        }
        (RotationState::Verified, CredentialKind::Cert) => {
            format!("revoke: revoke {old} and publish a new CRL")
        }
        (RotationState::Revoked | RotationState::Aborted, _) => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::{CredentialRef, RotationDetails};
    use chrono::Duration;

    fn rotation(state: RotationState) -> Rotation {
        let t0 = Utc::now();
        Rotation {
            id: "rot-4f2a9c".into(),
            kind: CredentialKind::Token,
            state,
            old: CredentialRef {
                key: "old.access".into(),
                name: "ci-deploy-prod".into(),
                serial: None,
                secret_version: None,
                expires_at: None,
            },
            new: Some(CredentialRef {
                key: "new.access".into(),
                name: "ci-deploy-prod-v2".into(),
                serial: None,
                secret_version: None,
                expires_at: None,
            }),
            quiet_period: Duration::hours(1),
            min_requests: 1,
            forced: false,
            details: RotationDetails {
                added_at: (state != RotationState::Created).then_some(t0),
                rollout_started_at: (state == RotationState::RollingOut).then_some(t0),
                ..Default::default()
            },
            created_at: t0,
            updated_at: t0,
        }
    }

    #[test]
    fn steps_done_and_the_current_one() {
        let v = view(
            &rotation(RotationState::RollingOut),
            &Evidence::default(),
            Utc::now(),
        );
        assert_eq!(v.steps.len(), 5);
        assert_eq!(v.step_index, 3);
        assert_eq!(v.steps[v.step_index].name, "verify");
        let done: Vec<bool> = v.steps.iter().map(|s| s.done).collect();
        assert_eq!(done, [true, true, true, false, false]);
        assert!(v.steps.iter().all(|s| !s.explanation.is_empty()));
        assert!(v.next_action.as_deref().unwrap().starts_with("verify:"));
        // No traffic and a one-hour quiet period: verify would be refused, and the view says why.
        assert!(
            v.refused_reason
                .as_deref()
                .unwrap()
                .contains("not seen yet")
        );
        assert!(v.verify.is_some());
    }

    #[test]
    fn finished_rotation_has_no_next_action() {
        let v = view(
            &rotation(RotationState::Aborted),
            &Evidence::default(),
            Utc::now(),
        );
        assert_eq!(v.next_action, None);
        assert_eq!(v.refused_reason, None);
        assert_eq!(v.step_index, 2, "stopped before rollout");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["state"], "aborted");
        assert_eq!(json["kind"], "token");
    }
}
