//! A token rotation end to end with real traffic through a running gate: verify refuses while
//! a client still uses the old token and names it, passes once the client switched and the old
//! token was quiet, revoke makes the old token fail with 401, and the policy file keeps its
//! comments throughout.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use botgate::rotation::{self, RotationEnv, RotationError, RotationState, StartOptions};
use chrono::Utc;
use common::*;

const POLICY: &str = r#"# Rotation test policy: keep this comment.
[gate]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1/32"]   # the test client stands in for a proxy

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{upstream}"

# CI deploys with its own token.
[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [
  { service_token = "ci-deploy-prod" }, # the deployer
]
"#;

/// A request from client `ip` (via X-Forwarded-For from the trusted test peer).
async fn call(g: &TestGate, ip: &str, id: &str, secret: &str) -> u16 {
    client()
        .get(g.url("/deploy"))
        .header("host", "api.test")
        .header("user-agent", "deploy-bot/1.0")
        .header("x-forwarded-for", ip)
        .header("CF-Access-Client-Id", id)
        .header("CF-Access-Client-Secret", secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Apply the edited policy file to the running gate (what hot reload does).
fn reload(g: &TestGate, path: &Path) {
    let loaded = botgate::config::load(path).unwrap();
    g.gate
        .reload_policies(botgate::policy::compile(&loaded.file).unwrap())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_verified_by_traffic_then_old_token_gets_401() {
    let upstream = echo_upstream().await;
    let text = POLICY.replace("{upstream}", &format!("http://{upstream}"));
    let mut old = None;
    let g = start_gate(&text, |s| {
        old = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ))
    })
    .await;
    let old = old.unwrap();
    let policy = g.dir.path().join("policy.toml");
    std::fs::write(&policy, &text).unwrap();
    let env = RotationEnv {
        store: &g.store,
        policy_file: &policy,
        state_dir: g.dir.path(),
    };
    assert_eq!(
        call(&g, "127.0.2.7", &old.client_id, &old.secret).await,
        200
    );

    // 1. create: the secret goes to a file, like `token create --secret-out`.
    let secret_file = g.dir.path().join("ci-deploy-prod-v2.json");
    let started = rotation::start_token(
        &env,
        "ci-deploy-prod",
        &StartOptions {
            quiet_period: chrono::Duration::seconds(1),
            min_requests: 2,
            secret_out: Some(secret_file.clone()),
            cert_out: None,
            now: Utc::now(),
        },
    )
    .unwrap();
    assert!(
        started.secret.is_none(),
        "written to the file, not returned"
    );
    let id = started.rotation.id.clone();
    assert!(id.starts_with("rot-") && id.len() == 10, "{id}");
    let new: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
    assert_eq!(new["name"], "ci-deploy-prod-v2");
    let (new_id, new_secret) = (
        new["client_id"].as_str().unwrap().to_string(),
        new["client_secret"].as_str().unwrap().to_string(),
    );
    let new_token = botgate::store::wait(g.store.find_token("ci-deploy-prod-v2")).unwrap();
    assert_eq!(
        new_token.expires_at - new_token.created_at,
        chrono::Duration::days(30),
        "same lifetime as the old token"
    );
    // Before add, no policy admits the new token: a client that switches too early is refused
    // (403 once the gate's snapshot knows the token).
    let early = eventually(Duration::from_secs(5), || async {
        call(&g, "127.0.2.8", &new_id, &new_secret).await == 403
    })
    .await;
    assert!(early, "the new token is valid but not admitted before add");

    // 2. add: the policy file is edited (diff + backup), comments kept.
    let added = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(added.rotation.state, RotationState::Added);
    assert!(
        added
            .diff
            .as_deref()
            .unwrap()
            .contains("+  { service_token = \"ci-deploy-prod-v2\" },"),
        "{:?}",
        added.diff
    );
    assert!(added.backup.as_ref().unwrap().exists());
    let after_add = std::fs::read_to_string(&policy).unwrap();
    assert!(
        after_add.contains("{ service_token = \"ci-deploy-prod\" }, # the deployer\n"),
        "{after_add}"
    );
    reload(&g, &policy);

    // 3. rollout.
    let rolling = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(rolling.rotation.state, RotationState::RollingOut);

    // Only the old token in use: verify refuses and names the client.
    for _ in 0..3 {
        assert_eq!(
            call(&g, "127.0.2.7", &old.client_id, &old.secret).await,
            200
        );
    }
    let r = rotation::find(&g.store, &id).unwrap();
    let ev = evidence_until(&g.store, &r, |e| e.old.requests >= 3).await;
    assert_eq!(
        ev.old.requests, 3,
        "only what happened since the rotation started counts"
    );
    let Err(RotationError::Refused(refusal)) = rotation::next(&env, &id, false, Utc::now()) else {
        panic!("verify must be refused while the old token is in use");
    };
    let text_of = refusal.to_string();
    assert!(
        text_of.contains("old credential ci-deploy-prod seen 3 times, last")
            && text_of.contains("from 127.0.2.7"),
        "{text_of}"
    );
    assert!(
        text_of.contains("clients still on the old credential: 127.0.2.7"),
        "{text_of}"
    );
    assert_eq!(
        rotation::find(&g.store, &id).unwrap().state,
        RotationState::RollingOut
    );

    // The client switches to the new token.
    for _ in 0..2 {
        assert_eq!(call(&g, "127.0.2.7", &new_id, &new_secret).await, 200);
    }
    let ev = evidence_until(&g.store, &r, |e| e.new.allowed >= 2).await;
    assert!(
        ev.stragglers().is_empty(),
        "127.0.2.7 uses the new token now"
    );
    assert_eq!(ev.clients["127.0.2.7"].new_requests, 2);

    // 4. verify passes once the old token has been quiet for the (1 s) quiet period.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rotation::find(&g.store, &id).unwrap();
        let ev = rotation::workflow::collect_evidence(&g.store, &r).unwrap();
        let v = rotation::view(&r, &ev, Utc::now());
        if v.refused_reason.is_none() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let verified = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(verified.rotation.state, RotationState::Verified);

    // 5. revoke: the old token is revoked and removed from the policy.
    let revoked = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(revoked.rotation.state, RotationState::Revoked);
    assert!(!revoked.rotation.forced);
    reload(&g, &policy);
    let refused = eventually(Duration::from_secs(5), || async {
        call(&g, "127.0.2.7", &old.client_id, &old.secret).await == 401
    })
    .await;
    assert!(refused, "the old token gets 401 after revoke");
    assert_eq!(call(&g, "127.0.2.7", &new_id, &new_secret).await, 200);
    let audited = eventually(Duration::from_secs(5), || async {
        g.audit_lines().iter().any(|e| {
            e["deny_reason"] == "token_revoked" && e["service_token_id"] == old.client_id.as_str()
        })
    })
    .await;
    assert!(audited, "the refused old token is audited as token_revoked");

    // The policy file kept its comments and names only the new token.
    let after = std::fs::read_to_string(&policy).unwrap();
    // ("# the deployer" described the removed entry and went with it.)
    for comment in [
        "# Rotation test policy: keep this comment.",
        "# the test client stands in for a proxy",
        "# CI deploys with its own token.",
    ] {
        assert!(after.contains(comment), "lost {comment:?}:\n{after}");
    }
    assert!(after.contains("\"ci-deploy-prod-v2\""));
    assert!(!after.contains("\"ci-deploy-prod\""), "{after}");

    // The old token is identifiable for "failed auth after rotation" alerts.
    let out = rotation::rotated_out(&g.store).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key, old.client_id);
    assert_eq!(out[0].rotation_id, id);
    assert_eq!(out[0].replaced_by.as_deref(), Some("ci-deploy-prod-v2"));

    // Every step wrote an admin event.
    let actions: Vec<String> = g
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "admin")
        .map(|l| l["decision"].as_str().unwrap().to_string())
        .collect();
    for a in [
        "rotation_create",
        "rotation_add",
        "rotation_rollout",
        "rotation_refused",
        "rotation_verify",
        "rotation_revoke",
    ] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
}
