//! Every transition, pure: fixed times, hand-made evidence.

use chrono::TimeZone;

use super::*;
use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::rotation::evidence::EvidenceTarget;
use crate::rotation::{CredentialKind, CredentialRef, RotationDetails};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn policy() -> PolicyRef {
    PolicyRef {
        app: "api".into(),
        policy: "CI deployment".into(),
    }
}

/// A token rotation started at t(0), added at t(10), quiet period 60 s, 1 request needed.
fn rotation(state: RotationState) -> Rotation {
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
        quiet_period: Duration::seconds(60),
        min_requests: 1,
        forced: false,
        details: RotationDetails {
            intended_policies: vec![policy()],
            added_at: (state != RotationState::Created).then(|| t(10)),
            verified_at: (state == RotationState::Verified).then(|| t(100)),
            ..Default::default()
        },
        created_at: t(0),
        updated_at: t(10),
    }
}

fn request(at: DateTime<Utc>, key: &str, ip: &str, policy: &str) -> AccessEvent {
    let mut e = AccessEvent::empty(EventKind::Access, at, "r".into());
    e.connection_method = ConnectionMethod::ServiceToken;
    e.service_token_id = Some(key.into());
    e.ip_address = Some(ip.into());
    e.allowed = true;
    e.app_name = Some("api".into());
    e.policy_name = Some(policy.into());
    e
}

fn evidence(r: &Rotation, events: &[AccessEvent]) -> Evidence {
    let target = EvidenceTarget::of(r);
    let mut ev = Evidence::default();
    for e in events {
        ev.ingest(&target, e);
    }
    ev
}

#[test]
fn created_adds() {
    let r = rotation(RotationState::Created);
    let t1 = next_transition(&r, &Evidence::default(), t(5), false).unwrap();
    assert_eq!(
        (t1.step, t1.from, t1.to, t1.forced),
        (
            Step::Add,
            RotationState::Created,
            RotationState::Added,
            false
        )
    );
}

#[test]
fn created_refuses_force() {
    let r = rotation(RotationState::Created);
    let refusal = next_transition(&r, &Evidence::default(), t(5), true).unwrap_err();
    assert_eq!(refusal.step, Some(Step::Revoke));
    assert!(
        refusal.reason.contains("lock every client out"),
        "{refusal}"
    );
}

#[test]
fn added_starts_the_rollout() {
    let r = rotation(RotationState::Added);
    let t1 = next_transition(&r, &Evidence::default(), t(20), false).unwrap();
    assert_eq!((t1.step, t1.to), (Step::Rollout, RotationState::RollingOut));
}

#[test]
fn verify_refuses_while_the_old_credential_is_in_use_and_names_the_client() {
    let r = rotation(RotationState::RollingOut);
    let events: Vec<_> = (0..14)
        .map(|i| request(t(20 + i), "old.access", "127.0.2.7", "CI deployment"))
        .collect();
    let ev = evidence(&r, &events);
    let refusal = next_transition(&r, &ev, t(36), false).unwrap_err();
    assert_eq!(refusal.step, Some(Step::Verify));
    assert!(
        refusal
            .reason
            .contains("old credential ci-deploy-prod seen 14 times, last 3s ago from 127.0.2.7"),
        "{refusal}"
    );
    assert!(refusal.reason.contains("not seen yet"), "{refusal}");
    assert!(
        refusal
            .evidence
            .iter()
            .any(|l| l.contains("clients still on the old credential: 127.0.2.7")),
        "{refusal}"
    );
    assert!(refusal.to_string().contains("--force"), "hint offers force");
}

#[test]
fn verify_passes_with_new_traffic_and_a_quiet_old_credential() {
    let r = rotation(RotationState::RollingOut);
    let ev = evidence(
        &r,
        &[
            request(t(20), "old.access", "10.0.0.1", "CI deployment"),
            request(t(30), "new.access", "10.0.0.1", "CI deployment"),
        ],
    );
    // Old last seen at t(20): quiet until t(80).
    assert!(next_transition(&r, &ev, t(79), false).is_err());
    let t1 = next_transition(&r, &ev, t(80), false).unwrap();
    assert_eq!((t1.step, t1.to), (Step::Verify, RotationState::Verified));
    assert!(!t1.forced);
}

#[test]
fn verify_needs_min_requests_through_the_intended_policy() {
    let mut r = rotation(RotationState::RollingOut);
    r.min_requests = 2;
    let ev = evidence(
        &r,
        &[
            request(t(30), "new.access", "10.0.0.1", "CI deployment"),
            request(t(31), "new.access", "10.0.0.1", "Catch-all allow"),
        ],
    );
    let check = check_verify(&r, &ev, t(1000));
    assert!(!check.passed);
    assert_eq!(check.new_requests, 1);
    assert!(
        check.problems[0].contains("1 of the 2 required requests through policy \"CI deployment\""),
        "{:?}",
        check.problems
    );
    assert!(check.problems[0].contains("1 more allowed by other policies"));
    let ev = evidence(
        &r,
        &[
            request(t(30), "new.access", "10.0.0.1", "CI deployment"),
            request(t(31), "new.access", "10.0.0.2", "CI deployment"),
        ],
    );
    assert!(check_verify(&r, &ev, t(1000)).passed);
}

#[test]
fn quiet_period_never_starts_before_the_overlap() {
    let r = rotation(RotationState::RollingOut);
    // Old never seen; added at t(10) with a 60 s quiet period.
    let ev = evidence(
        &r,
        &[request(t(11), "new.access", "10.0.0.1", "CI deployment")],
    );
    let check = check_verify(&r, &ev, t(69));
    assert_eq!(check.quiet_since, t(10));
    assert!(!check.passed);
    assert!(
        check.problems[0].contains("overlap window opened"),
        "{:?}",
        check.problems
    );
    assert!(check_verify(&r, &ev, t(70)).passed);
}

#[test]
fn force_revokes_without_verification_and_says_so() {
    for state in [RotationState::Added, RotationState::RollingOut] {
        let r = rotation(state);
        let t1 = next_transition(&r, &Evidence::default(), t(20), true).unwrap();
        assert_eq!((t1.step, t1.to), (Step::Revoke, RotationState::Revoked));
        assert!(t1.forced, "{state:?}: verification had not passed");
    }
    // Forcing when verification would pass anyway is not recorded as forced.
    let r = rotation(RotationState::RollingOut);
    let ev = evidence(
        &r,
        &[request(t(11), "new.access", "10.0.0.1", "CI deployment")],
    );
    let t1 = next_transition(&r, &ev, t(500), true).unwrap();
    assert_eq!(t1.step, Step::Revoke);
    assert!(!t1.forced);
}

#[test]
fn verified_revokes() {
    let r = rotation(RotationState::Verified);
    let ev = evidence(
        &r,
        &[request(t(20), "old.access", "10.0.0.1", "CI deployment")],
    );
    let t1 = next_transition(&r, &ev, t(200), false).unwrap();
    assert_eq!(
        (t1.step, t1.to, t1.forced),
        (Step::Revoke, RotationState::Revoked, false)
    );
}

#[test]
fn verified_refuses_revoke_when_the_old_credential_came_back() {
    let r = rotation(RotationState::Verified);
    let ev = evidence(
        &r,
        &[request(t(150), "old.access", "127.0.2.9", "CI deployment")],
    );
    let refusal = next_transition(&r, &ev, t(155), false).unwrap_err();
    assert_eq!(refusal.step, Some(Step::Revoke));
    assert!(
        refusal.reason.contains("seen again after verification"),
        "{refusal}"
    );
    assert!(refusal.reason.contains("from 127.0.2.9"));
    let forced = next_transition(&r, &ev, t(155), true).unwrap();
    assert!(forced.forced);
}

#[test]
fn finished_rotations_refuse_next_and_abort() {
    for state in [RotationState::Revoked, RotationState::Aborted] {
        let r = rotation(state);
        let refusal = next_transition(&r, &Evidence::default(), t(500), false).unwrap_err();
        assert_eq!(refusal.step, None);
        assert!(refusal.reason.contains("nothing is left"));
        assert!(abort_transition(&r, &Evidence::default(), t(500)).is_err());
    }
}

#[test]
fn abort_from_every_unfinished_state() {
    for state in [
        RotationState::Created,
        RotationState::Added,
        RotationState::RollingOut,
        RotationState::Verified,
    ] {
        let t1 = abort_transition(&rotation(state), &Evidence::default(), t(50)).unwrap();
        assert_eq!(
            (t1.step, t1.from, t1.to),
            (Step::Abort, state, RotationState::Aborted)
        );
    }
}

#[test]
fn a_rotation_without_a_new_credential_cannot_advance() {
    let mut r = rotation(RotationState::Created);
    r.new = None;
    assert!(next_transition(&r, &Evidence::default(), t(5), false).is_err());
}

#[test]
fn periods_read_like_flags() {
    assert_eq!(period_label(Duration::hours(1)), "1h");
    assert_eq!(period_label(Duration::seconds(90)), "90s");
    assert_eq!(period_label(Duration::minutes(30)), "30m");
    assert_eq!(period_label(Duration::days(2)), "2d");
}
