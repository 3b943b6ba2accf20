//! Rotation lifecycle over a real store and policy file: a rotation in progress survives a
//! restart (the store reopened), a forced revoke is recorded as forced, abort after add takes
//! the new token out of the policies again and revokes it.

use std::path::{Path, PathBuf};

use botgate::credential::{ClientId, ClientSecret};
use botgate::rotation::{self, RotationEnv, RotationError, RotationState, StartOptions, Step};
use botgate::store::{NewToken, Store};
use chrono::{Duration, Utc};

const POLICY: &str = r#"# keep me
[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]  # deployers
"#;

struct Setup {
    dir: tempfile::TempDir,
    policy: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = Utc::now();
    botgate::store::wait(store.create_token(&NewToken {
        name: "ci-deploy-prod",
        client_id: &ClientId::generate(),
        secret_hash: ClientSecret::generate().hash(),
        created_at: now,
        expires_at: now + Duration::days(90),
        bounds: Default::default(),
    }))
    .unwrap();
    Setup { dir, policy }
}

fn env<'a>(store: &'a Store, s: &'a Setup) -> RotationEnv<'a> {
    RotationEnv {
        store,
        policy_file: &s.policy,
        state_dir: s.dir.path(),
    }
}

fn options() -> StartOptions {
    StartOptions {
        quiet_period: Duration::hours(1),
        min_requests: 1,
        secret_out: None,
        cert_out: None,
        now: Utc::now(),
    }
}

fn admin_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"] == "admin")
        .collect()
}

#[test]
fn a_rotation_in_progress_survives_a_restart() {
    let s = setup();
    let id = {
        let store = Store::open(s.dir.path()).unwrap();
        let e = env(&store, &s);
        let started = rotation::start_token(&e, "ci-deploy-prod", &options()).unwrap();
        assert!(
            started.secret.is_some(),
            "no --secret-out: returned to show once"
        );
        let id = started.rotation.id.clone();
        rotation::next(&e, &id, false, Utc::now()).unwrap();
        id
        // The store is closed here, as when botgate exits.
    };
    let store = Store::open(s.dir.path()).unwrap();
    let r = rotation::find(&store, &id).unwrap();
    assert_eq!(r.state, RotationState::Added);
    assert_eq!(r.new.as_ref().unwrap().name, "ci-deploy-prod-v2");
    assert_eq!(r.quiet_period, Duration::hours(1));
    assert_eq!(r.details.intended_policies.len(), 1);
    assert_eq!(r.details.history.len(), 2, "create and add recorded");
    // The short id without its prefix finds it too.
    assert_eq!(
        rotation::find(&store, id.trim_start_matches("rot-"))
            .unwrap()
            .id,
        id
    );
    let e = env(&store, &s);
    let out = rotation::next(&e, &id, false, Utc::now()).unwrap();
    assert_eq!(out.rotation.state, RotationState::RollingOut);
    // Starting a second rotation of the same token is refused while this one runs.
    let err = rotation::start_token(&e, "ci-deploy-prod", &options()).unwrap_err();
    assert!(
        matches!(err, RotationError::Conflict(ref m) if m.contains(&id)),
        "{err}"
    );
}

#[test]
fn forced_revoke_is_recorded_as_forced() {
    let s = setup();
    let store = Store::open(s.dir.path()).unwrap();
    let e = env(&store, &s);
    let id = rotation::start_token(&e, "ci-deploy-prod", &options())
        .unwrap()
        .rotation
        .id;
    rotation::next(&e, &id, false, Utc::now()).unwrap();
    rotation::next(&e, &id, false, Utc::now()).unwrap();
    // No traffic and a one-hour quiet period: verify refuses, the refusal is audited.
    let err = rotation::next(&e, &id, false, Utc::now()).unwrap_err();
    assert!(matches!(err, RotationError::Refused(ref r) if r.step == Some(Step::Verify)));
    let out = rotation::next(&e, &id, true, Utc::now()).unwrap();
    assert_eq!(out.transition.step, Step::Revoke);
    assert!(out.transition.forced);
    assert!(out.summary[0].starts_with("FORCED"), "{:?}", out.summary);

    let r = rotation::find(&store, &id).unwrap();
    assert_eq!(r.state, RotationState::Revoked);
    assert!(r.forced, "stored as forced");
    assert!(r.details.history.last().unwrap().forced);
    assert!(
        botgate::store::wait(store.find_token(&r.old.key))
            .unwrap()
            .revoked_at
            .is_some()
    );
    let out = rotation::rotated_out(&store).unwrap();
    assert!(out[0].forced);
    let admin = admin_lines(s.dir.path());
    let revoke = admin
        .iter()
        .find(|l| l["decision"] == "rotation_revoke")
        .expect("revoke audited");
    assert_eq!(revoke["details"]["details"]["step"]["forced"], true);
    assert_eq!(revoke["details"]["details"]["forced"], true);
    assert!(revoke["details"]["actor"].as_str().is_some());
    let refused = admin
        .iter()
        .find(|l| l["decision"] == "rotation_refused")
        .expect("refusal audited");
    assert_eq!(refused["allowed"], false);
    // The policy names only the new token, comments kept.
    let text = std::fs::read_to_string(&s.policy).unwrap();
    assert!(text.starts_with("# keep me\n"));
    assert!(
        text.contains("include = [{ service_token = \"ci-deploy-prod-v2\" }]  # deployers"),
        "{text}"
    );
}

#[test]
fn abort_after_add_removes_and_revokes_the_new_token() {
    let s = setup();
    let store = Store::open(s.dir.path()).unwrap();
    let e = env(&store, &s);
    let id = rotation::start_token(&e, "ci-deploy-prod", &options())
        .unwrap()
        .rotation
        .id;
    rotation::next(&e, &id, false, Utc::now()).unwrap();
    assert!(
        std::fs::read_to_string(&s.policy)
            .unwrap()
            .contains("ci-deploy-prod-v2")
    );
    let out = rotation::abort(&e, &id, Utc::now()).unwrap();
    assert_eq!(out.rotation.state, RotationState::Aborted);
    assert_eq!(
        std::fs::read_to_string(&s.policy).unwrap(),
        POLICY,
        "back to the original text"
    );
    let new = botgate::store::wait(store.find_token("ci-deploy-prod-v2")).unwrap();
    assert!(
        new.revoked_at.is_some(),
        "an aborted replacement does not stay valid"
    );
    assert!(
        botgate::store::wait(store.find_token("ci-deploy-prod"))
            .unwrap()
            .revoked_at
            .is_none()
    );
    // Finished: next and abort are refused; a new rotation of the old token may start.
    assert!(matches!(
        rotation::next(&e, &id, false, Utc::now()),
        Err(RotationError::Refused(_))
    ));
    assert!(matches!(
        rotation::abort(&e, &id, Utc::now()),
        Err(RotationError::Refused(_))
    ));
    let again = rotation::start_token(&e, "ci-deploy-prod", &options()).unwrap();
    assert_eq!(
        again.rotation.new.unwrap().name,
        "ci-deploy-prod-v2",
        "the revoked name is free again"
    );
    assert!(
        rotation::rotated_out(&store).unwrap().is_empty(),
        "abort revokes no old credential"
    );
}
