//! The service-token gate end to end: real store, real upstream, real HTTP client.

mod common;

use std::time::Duration;

use common::*;

const POLICY: &str = r#"
[gate]
listen = "127.0.0.1:0"

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{upstream}"

[[app.policy]]
name = "health check"
action = "bypass"
include = [{ everyone = true }]
require = [{ ip = "127.0.0.0/8" }]
exclude = [{ any_service_token = true }]

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-expired-prod" }, { service_token = "ci-revoked-prod" }]

[[app]]
name = "down"
hostnames = ["down.test"]
upstream = "{closed}"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

/// Only the CI app, no bypass: anonymous requests must be refused.
const STRICT: &str = r#"
[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{upstream}"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

fn get(
    c: &reqwest::Client,
    g: &TestGate,
    host: &str,
    token: Option<(&str, &str)>,
) -> reqwest::RequestBuilder {
    let mut r = c
        .get(g.url("/deploy?x=1"))
        .header("host", host)
        .header("user-agent", "gh-runner/2.3");
    if let Some((id, secret)) = token {
        r = r
            .header("CF-Access-Client-Id", id)
            .header("CF-Access-Client-Secret", secret);
    }
    r
}

#[tokio::test]
async fn valid_token_is_forwarded_with_identity_and_without_secret() {
    let mut tok = None;
    let g = start_gate(STRICT, |s| {
        tok = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ))
    })
    .await;
    let tok = tok.unwrap();
    let resp = get(
        &client(),
        &g,
        "api.test",
        Some((&tok.client_id, &tok.secret)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-botgate-ray-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-botgate-identity"], "token:ci-deploy-prod");
    assert_eq!(h["x-botgate-connection"], "service_token");
    assert_eq!(h["x-botgate-token-id"], tok.client_id.as_str());
    assert!(
        h.get("cf-access-client-secret").is_none(),
        "secret must be stripped: {h}"
    );
    assert_eq!(body["path"], "/deploy?x=1");

    let ev = &g.wait_for_access_events(1).await[0];
    assert_eq!(ev["allowed"], true);
    assert_eq!(ev["status"], 200);
    assert_eq!(ev["service_token_name"], "ci-deploy-prod");
    assert_eq!(ev["policy_name"], "CI deployment");
    assert_eq!(ev["connection_method"], "service_token");
    assert_eq!(ev["user_agent"], "gh-runner/2.3");
    assert!(ev["cert_common_name"].is_null() && ev["country"].is_null());
}

#[tokio::test]
async fn refusals_have_the_contract_status_codes() {
    let (mut ok, mut expired, mut other) = (None, None, None);
    let g = start_gate(POLICY, |s| {
        ok = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ));
        expired = Some(create_token(
            s,
            "ci-expired-prod",
            chrono::Duration::seconds(-1),
        ));
        other = Some(create_token(
            s,
            "other-team-prod",
            chrono::Duration::days(30),
        ));
    })
    .await;
    let (ok, expired, other) = (ok.unwrap(), expired.unwrap(), other.unwrap());
    let c = client();
    let wrong = botgate::credential::ClientSecret::generate();
    let unknown = botgate::credential::ClientId::generate();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "wrong secret",
            get(&c, &g, "api.test", Some((&ok.client_id, wrong.expose()))),
            401,
            "bad_secret",
        ),
        (
            "unknown id",
            get(&c, &g, "api.test", Some((unknown.as_str(), &ok.secret))),
            401,
            "unknown_client_id",
        ),
        (
            "expired",
            get(
                &c,
                &g,
                "api.test",
                Some((&expired.client_id, &expired.secret)),
            ),
            401,
            "token_expired",
        ),
        (
            "no policy",
            get(&c, &g, "api.test", Some((&other.client_id, &other.secret))),
            403,
            "no_policy_matched",
        ),
        (
            "unknown host",
            get(&c, &g, "nope.test", Some((&ok.client_id, &ok.secret))),
            404,
            "unknown_host",
        ),
        (
            "upstream down",
            get(&c, &g, "down.test", Some((&ok.client_id, &ok.secret))),
            502,
            "upstream_unreachable",
        ),
        (
            "half",
            get(&c, &g, "api.test", None).header("CF-Access-Client-Id", &ok.client_id),
            401,
            "half_credentials",
        ),
        (
            "duplicate",
            get(&c, &g, "api.test", Some((&ok.client_id, &ok.secret)))
                .header("CF-Access-Client-Secret", &ok.secret),
            401,
            "duplicate_credential_headers",
        ),
        (
            "malformed secret",
            get(&c, &g, "api.test", Some((&ok.client_id, "bgs_nope"))),
            401,
            "malformed_secret",
        ),
    ];
    let n = cases.len();
    for (what, req, status, _) in &cases {
        let resp = req.try_clone().unwrap().send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{what}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["ray_id"].as_str().is_some_and(|r| r.len() == 16),
            "{what}: {body}"
        );
    }
    let events = g.wait_for_access_events(n).await;
    assert_eq!(events.len(), n);
    for ((what, _, status, reason), ev) in cases.iter().zip(&events) {
        assert_eq!(ev["status"], *status, "{what}");
        assert_eq!(ev["deny_reason"], *reason, "{what}");
        assert_eq!(ev["allowed"], false, "{what}");
    }
    assert_eq!(
        events[2]["service_token_name"], "ci-expired-prod",
        "expired token still named in the audit"
    );
}

#[tokio::test]
async fn bypass_is_forwarded_and_still_logged() {
    let g = start_gate(POLICY, |_| {}).await;
    let resp = get(&client(), &g, "api.test", None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ev = &g.wait_for_access_events(1).await[0];
    assert_eq!(ev["decision"], "bypass");
    assert_eq!(ev["policy_name"], "health check");
    assert_eq!(ev["connection_method"], "none");
}

#[tokio::test]
async fn anonymous_request_without_matching_policy_is_401() {
    let g = start_gate(STRICT, |_| {}).await;
    let resp = get(&client(), &g, "api.test", None).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        g.wait_for_access_events(1).await[0]["deny_reason"],
        "missing_credentials"
    );
}

#[tokio::test]
async fn revocation_from_a_second_store_handle_takes_effect_within_a_second() {
    let mut tok = None;
    let g = start_gate(STRICT, |s| {
        tok = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ))
    })
    .await;
    let tok = tok.unwrap();
    let c = client();
    assert_eq!(
        get(&c, &g, "api.test", Some((&tok.client_id, &tok.secret)))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A second handle, as `botgate token revoke` in another process would open.
    let other = botgate::store::Store::open(g.dir.path()).unwrap();
    let revoked_at = std::time::Instant::now();
    botgate::store::wait(other.revoke_token("ci-deploy-prod", chrono::Utc::now())).unwrap();
    let refused = eventually(Duration::from_secs(1), || async {
        get(&c, &g, "api.test", Some((&tok.client_id, &tok.secret)))
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    assert!(
        refused,
        "revoked token still accepted after {:?}",
        revoked_at.elapsed()
    );
    let logged = eventually(Duration::from_secs(2), || async {
        g.audit_lines()
            .iter()
            .any(|e| e["deny_reason"] == "token_revoked")
    })
    .await;
    assert!(logged, "the refusal is audited as token_revoked");
}

#[tokio::test]
async fn concurrent_requests_give_exactly_one_audit_line_each_and_no_secret() {
    let mut tok = None;
    let g = start_gate(STRICT, |s| {
        tok = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ))
    })
    .await;
    let tok = tok.unwrap();
    let c = client();
    let n = 200;
    let mut tasks = Vec::new();
    for i in 0..n {
        let req = if i % 3 == 0 {
            get(
                &c,
                &g,
                "api.test",
                Some((
                    &tok.client_id,
                    "bgs_wrongwrongwrongwrongwrongwrongwrongwrong123456",
                )),
            )
        } else {
            get(&c, &g, "api.test", Some((&tok.client_id, &tok.secret)))
        };
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 401);
    }
    let events = g.wait_for_access_events(n).await;
    assert_eq!(events.len(), n);
    let mut rays: Vec<_> = events
        .iter()
        .map(|e| e["ray_id"].as_str().unwrap().to_string())
        .collect();
    rays.sort();
    rays.dedup();
    assert_eq!(rays.len(), n, "ray ids are unique");
    let text = std::fs::read_to_string(&g.audit_log).unwrap();
    assert!(
        !text.contains(&tok.secret),
        "the audit log must never contain a secret"
    );
}

#[tokio::test]
async fn audit_write_failure_fails_closed_with_503() {
    let mut tok = None;
    let g = start_gate_with(
        STRICT,
        |s| {
            tok = Some(create_token(
                s,
                "ci-deploy-prod",
                chrono::Duration::days(30),
            ))
        },
        |o| {
            o.audit_log = "/dev/full".into();
        },
    )
    .await;
    let tok = tok.unwrap();
    let c = client();
    // Group commit: even the first request, forwarded while the log still looked writable, is
    // answered only after its event was written, so its failed write turns it into a 503.
    let first = get(&c, &g, "api.test", Some((&tok.client_id, &tok.secret)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.status(),
        503,
        "answered although its event was not written"
    );
    let second = get(&c, &g, "api.test", Some((&tok.client_id, &tok.secret)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        503,
        "gate kept forwarding while the audit log could not be written"
    );
    assert!(g.gate.state.audit.health().is_failing());
}
