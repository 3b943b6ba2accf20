//! A token's secret rotated in place, through a running gate: both secrets work during the
//! grace (each request audited with its `secret_version`), the previous one is refused as
//! `token_secret_superseded` after it (a test clock moves the gate past the grace), and an
//! in-place rotation walked with `rotate next` refuses verify while a client still presents the
//! previous secret, passes once it switched, and revoke ends the previous secret.

mod common;

use std::sync::Arc;
use std::time::Duration;

use botgate::clock::{Clock, FixedClock};
use botgate::rotation::{self, RotationEnv, RotationError, RotationState, StartOptions};
use chrono::Utc;
use common::*;

const POLICY: &str = r#"[gate]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1/32"]   # the test client stands in for a proxy

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{upstream}"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

/// A request from client `ip` (via X-Forwarded-For from the trusted test peer).
async fn call(g: &TestGate, ip: &str, id: &str, secret: &str) -> u16 {
    client()
        .get(g.url("/deploy"))
        .header("host", "api.test")
        .header("user-agent", format!("deploy-bot/{ip}"))
        .header("x-forwarded-for", ip)
        .header("CF-Access-Client-Id", id)
        .header("CF-Access-Client-Secret", secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn last_event_of(g: &TestGate, ip: &str) -> serde_json::Value {
    g.audit_lines()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "access" && e["ip_address"] == ip)
        .unwrap_or_else(|| panic!("no event from {ip}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_secrets_work_during_the_grace_and_the_previous_one_is_refused_after_it() {
    let clock = FixedClock::at(Utc::now());
    let upstream = echo_upstream().await;
    let text = POLICY.replace("{upstream}", &format!("http://{upstream}"));
    let mut old = None;
    let g = start_gate_clocked(
        &text,
        |s| {
            old = Some(create_token(
                s,
                "ci-deploy-prod",
                chrono::Duration::days(30),
            ))
        },
        |_| {},
        Arc::new(clock.clone()),
    )
    .await;
    let old = old.unwrap();
    assert_eq!(call(&g, "10.0.0.1", &old.client_id, &old.secret).await, 200);
    assert_eq!(last_event_of(&g, "10.0.0.1")["secret_version"], 1);

    let (rec, new_secret) = botgate::commands::token::rotate_token_secret(
        &g.store,
        "ci-deploy-prod",
        chrono::Duration::hours(24),
        clock.now(),
    )
    .unwrap();
    assert_eq!(rec.client_id, old.client_id, "same Client ID");
    assert_eq!(rec.secret_version, 2);
    let new_secret = new_secret.expose().to_string();
    let switched = eventually(Duration::from_secs(5), || async {
        call(&g, "10.0.0.2", &old.client_id, &new_secret).await == 200
    })
    .await;
    assert!(switched, "the gate accepts the new secret within a poll");
    assert_eq!(last_event_of(&g, "10.0.0.2")["secret_version"], 2);
    assert_eq!(call(&g, "10.0.0.1", &old.client_id, &old.secret).await, 200);
    assert_eq!(
        last_event_of(&g, "10.0.0.1")["secret_version"],
        1,
        "the previous secret is still accepted, and audited as version 1"
    );
    // A second rotation while the previous secret is live would make three: refused.
    let third = botgate::commands::token::rotate_token_secret(
        &g.store,
        "ci-deploy-prod",
        chrono::Duration::hours(1),
        clock.now(),
    );
    assert!(
        third
            .unwrap_err()
            .to_string()
            .contains("at most two secrets")
    );

    // Past the grace: the previous secret is refused with its own reason; the new one works.
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    assert_eq!(call(&g, "10.0.0.1", &old.client_id, &old.secret).await, 401);
    let refused = last_event_of(&g, "10.0.0.1");
    assert_eq!(
        refused["deny_reason"], "token_secret_superseded",
        "{refused}"
    );
    assert_eq!(refused["secret_version"], serde_json::Value::Null);
    assert_eq!(call(&g, "10.0.0.2", &old.client_id, &new_secret).await, 200);
    // A secret that was never the token's is still just a bad secret.
    let stranger = botgate::credential::ClientSecret::generate();
    assert_eq!(
        call(&g, "10.0.0.3", &old.client_id, stranger.expose()).await,
        401
    );
    assert_eq!(last_event_of(&g, "10.0.0.3")["deny_reason"], "bad_secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_rotation_verifies_by_secret_version_and_revoke_ends_the_previous_secret() {
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

    let started = rotation::start_token_in_place(
        &env,
        "ci-deploy-prod",
        chrono::Duration::hours(24),
        &StartOptions {
            quiet_period: chrono::Duration::seconds(1),
            min_requests: 2,
            secret_out: None,
            cert_out: None,
            now: Utc::now(),
        },
    )
    .unwrap();
    let id = started.rotation.id.clone();
    let new_secret = started.secret.as_ref().unwrap().expose().to_string();
    let new = started.rotation.new.clone().unwrap();
    assert_eq!(
        new.key, old.client_id,
        "the new credential keeps the Client ID"
    );
    assert_eq!(new.label(), "ci-deploy-prod (secret v2)");

    // add: nothing to edit, the policy file is untouched.
    let added = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(added.rotation.state, RotationState::Added);
    assert!(added.diff.is_none());
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), text);
    assert!(
        added.summary.iter().any(|l| l.contains("nothing to edit")),
        "{:?}",
        added.summary
    );
    let rolling = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(rolling.rotation.state, RotationState::RollingOut);

    // One client moved to the new secret, one still presents the previous one.
    for _ in 0..3 {
        let ok = eventually(Duration::from_secs(5), || async {
            call(&g, "127.0.2.8", &old.client_id, &new_secret).await == 200
        })
        .await;
        assert!(ok);
    }
    assert_eq!(
        call(&g, "127.0.2.7", &old.client_id, &old.secret).await,
        200
    );
    let r = rotation::find(&g.store, &id).unwrap();
    evidence_until(&g.store, &r, |e| e.new.allowed >= 3 && e.old.allowed >= 1).await;
    match rotation::next(&env, &id, false, Utc::now()) {
        Err(RotationError::Refused(refusal)) => {
            let text = refusal.to_string();
            assert!(
                text.contains("127.0.2.7") && text.contains("secret v1"),
                "verify names the client still on the previous secret: {text}"
            );
        }
        other => panic!("verify must refuse while the previous secret is in use: {other:?}"),
    }
    // The last client switches; after the quiet period verify passes.
    assert_eq!(
        call(&g, "127.0.2.7", &old.client_id, &new_secret).await,
        200
    );
    evidence_until(&g.store, &r, |e| e.new.allowed >= 4).await;
    // Verify passes once the previous secret has been quiet for the quiet period (1 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let verified = loop {
        match rotation::next(&env, &id, false, Utc::now()) {
            Ok(out) => break out,
            Err(RotationError::Refused(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("verify never passed after the last client switched: {e}"),
        }
    };
    assert_eq!(verified.rotation.state, RotationState::Verified);

    // revoke: the previous secret is refused at once; the token (and its new secret) stays.
    let revoked = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(revoked.rotation.state, RotationState::Revoked);
    let refused = eventually(Duration::from_secs(5), || async {
        call(&g, "127.0.2.9", &old.client_id, &old.secret).await == 401
    })
    .await;
    assert!(refused, "the previous secret is refused after revoke");
    assert_eq!(
        last_event_of(&g, "127.0.2.9")["deny_reason"],
        "token_secret_superseded"
    );
    assert_eq!(
        call(&g, "127.0.2.8", &old.client_id, &new_secret).await,
        200
    );
    let t = botgate::store::wait(g.store.find_token("ci-deploy-prod")).unwrap();
    assert!(t.revoked_at.is_none(), "the token itself is not revoked");
}
