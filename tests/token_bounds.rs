//! Tokens bound to networks and rates, as a user sets them beside a running `botgate serve`:
//! `token create --allow-ip` refuses the token from another loopback address even where the
//! policy admits it, `token update --clear-allow-ip` lifts that within the gate's poll; a
//! policy's `rate_limit` answers a burst above it with exactly the expected 429s (each with
//! `Retry-After` and the `RateLimit-*` fields), a token's own `--rate` likewise, and shadow
//! mode forwards every request but marks the would-be-limited ones in the audit log.

mod common;
use common::closed_port as free_port;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Two apps for one token: `limited.test` enforces 60/hour with a burst of 5, `shadow.test`
/// the same in shadow mode, `open.test` no limit. One request every 60 s refills a bucket, so
/// a burst of a few requests in a few seconds sees exactly the burst admitted.
fn policy(port: u16, admin: u16, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"[gate]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[[app]]
name = "open"
hostnames = ["open.test"]
upstream = "http://{upstream}"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]

[[app]]
name = "limited"
hostnames = ["limited.test"]
upstream = "http://{upstream}"

[[app.policy]]
name = "CI, limited"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]
rate_limit = "60/hour"
burst = 5

[[app]]
name = "shadow"
hostnames = ["shadow.test"]
upstream = "http://{upstream}"

[[app.policy]]
name = "CI, shadow"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]
rate_limit = "60/hour"
burst = 5
rate_limit_mode = "shadow"
"#
    )
}

/// A client whose connections leave from `from` (any 127/8 address is this host).
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(from))
        .build()
        .unwrap()
}

struct Served {
    env: common::CliEnv,
    port: u16,
    serve: std::process::Child,
}

impl Served {
    async fn start(token_args: &[&str]) -> (Self, String, String) {
        let env = common::CliEnv::new();
        let (port, admin) = (free_port(), free_port());
        let upstream = common::echo_upstream().await;
        std::fs::write(env.path("policy.toml"), policy(port, admin, upstream)).unwrap();
        let mut args = vec!["token", "create", "ci-deploy-prod"];
        args.extend_from_slice(token_args);
        let created = env.json(&args);
        let field = |k: &str| created[k].as_str().unwrap().to_string();
        let serve = common::serve_command(
            &env.state(),
            &env.path("policy.toml"),
            &env.path("serve.log"),
        )
        .spawn()
        .unwrap();
        (
            Self { env, port, serve },
            field("client_id"),
            field("client_secret"),
        )
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.env.state().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

async fn call(
    c: &reqwest::Client,
    port: u16,
    host: &str,
    id: &str,
    secret: &str,
) -> Option<reqwest::Response> {
    c.get(format!("http://127.0.0.1:{port}/"))
        .header("host", host)
        .header("cf-access-client-id", id)
        .header("cf-access-client-secret", secret)
        .send()
        .await
        .ok()
}

async fn status(c: &reqwest::Client, port: u16, host: &str, id: &str, secret: &str) -> u16 {
    call(c, port, host, id, secret)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_bound_token_is_refused_from_another_loopback_address_until_cleared() {
    let (gate, id, secret) = Served::start(&["--allow-ip", "127.0.0.1/32"]).await;
    let port = gate.port;
    let (home, away) = (
        client_from(Ipv4Addr::LOCALHOST),
        client_from(Ipv4Addr::new(127, 0, 0, 2)),
    );
    let up = common::eventually(Duration::from_secs(10), || async {
        status(&home, port, "open.test", &id, &secret).await == 200
    })
    .await;
    assert!(up, "admitted from its own network");
    assert_eq!(
        status(&away, port, "open.test", &id, &secret).await,
        401,
        "refused from 127.0.0.2 although the policy admits the token"
    );
    let shown = gate.env.json(&["token", "show", "ci-deploy-prod"]);
    assert_eq!(shown["allow_ips"], serde_json::json!(["127.0.0.1/32"]));

    let (code, out, err) = gate
        .env
        .run(&["token", "update", "ci-deploy-prod", "--clear-allow-ip"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accepted from anywhere"), "{out}");
    let lifted = common::eventually(Duration::from_secs(5), || async {
        status(&away, port, "open.test", &id, &secret).await == 200
    })
    .await;
    assert!(
        lifted,
        "--clear-allow-ip is enforced within the gate's poll"
    );

    // Bad bounds are bad input (exit 2) that names the value; nothing changes.
    let (code, _, err) = gate.env.run(&[
        "token",
        "update",
        "ci-deploy-prod",
        "--allow-ip",
        "10.0.0/8",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("\"10.0.0/8\" is not a network"), "{err}");
    let (code, _, err) = gate
        .env
        .run(&["token", "create", "ci-x-prod", "--rate", "fast"]);
    assert_eq!(code, 2);
    assert!(err.contains("--rate: \"fast\" is not a rate"), "{err}");
    let (code, _, err) = gate.env.run(&["token", "update", "ci-deploy-prod"]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing to change"), "{err}");

    let relayed = common::eventually(Duration::from_secs(5), || async {
        gate.audit()
            .iter()
            .any(|e| e["event"] == "admin" && e["decision"] == "token_update")
    })
    .await;
    assert!(relayed, "the update is one admin event");
    let events = gate.audit();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["deny_reason"] == "token_ip_not_allowed")
        .collect();
    // The first refusal, and each poll from 127.0.0.2 until the update reached the gate.
    assert!(!refused.is_empty(), "{events:?}");
    assert!(refused.iter().all(|e| e["status"] == 401
        && e["ip_address"] == "127.0.0.2"
        && e["service_token_name"] == "ci-deploy-prod"));
    let update = events
        .iter()
        .find(|e| e["decision"] == "token_update")
        .unwrap();
    assert_eq!(
        update["details"]["details"]["allow_ips"],
        serde_json::json!([])
    );
    assert!(
        !std::fs::read_to_string(gate.env.state().join("audit.jsonl"))
            .unwrap()
            .contains(&secret),
        "no secret in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_above_the_rate_limit_gets_the_expected_429s_and_shadow_mode_none() {
    const BURST: usize = 5;
    const SENT: usize = 12;
    let (gate, id, secret) = Served::start(&[]).await;
    let port = gate.port;
    let c = common::client();
    let up = common::eventually(Duration::from_secs(10), || async {
        status(&c, port, "open.test", &id, &secret).await == 200
    })
    .await;
    assert!(up);

    let mut answers = Vec::new();
    for _ in 0..SENT {
        answers.push(call(&c, port, "limited.test", &id, &secret).await.unwrap());
    }
    let limited: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(
        limited.len(),
        SENT - BURST,
        "exactly the requests above the burst are refused"
    );
    assert!(answers[..BURST].iter().all(|r| r.status() == 200));
    let header = |r: &reqwest::Response, k: &str| -> u64 {
        r.headers()
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Admitted requests count down what is left; every 429 says when to come back.
    let remaining: Vec<u64> = answers[..BURST]
        .iter()
        .map(|r| header(r, "ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    for r in &limited {
        let retry = header(r, "retry-after");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(header(r, "ratelimit-limit"), BURST as u64);
        assert_eq!(header(r, "ratelimit-remaining"), 0);
        assert!(header(r, "ratelimit-reset") >= retry);
        assert_eq!(r.headers()["ratelimit-policy"], "5;w=300");
    }

    // Shadow mode: every request forwarded, no rate-limit headers, the same ones marked.
    let mut shadow = Vec::new();
    for _ in 0..SENT {
        shadow.push(call(&c, port, "shadow.test", &id, &secret).await.unwrap());
    }
    assert!(shadow.iter().all(|r| r.status() == 200));
    assert!(
        shadow
            .iter()
            .all(|r| !r.headers().contains_key("retry-after"))
    );

    // A token's own --rate applies on every app, the unlimited one too.
    let (code, _, err) = gate
        .env
        .run(&["token", "update", "ci-deploy-prod", "--rate", "2/h"]);
    assert_eq!(code, 0, "{err}");
    let token_limited = common::eventually(Duration::from_secs(5), || async {
        status(&c, port, "open.test", &id, &secret).await == 429
    })
    .await;
    assert!(
        token_limited,
        "the token's own rate is enforced within the poll"
    );

    let events = gate.audit();
    let access = |host: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "access" && e["host"] == host)
            .collect()
    };
    let refused: Vec<_> = access("limited.test")
        .into_iter()
        .filter(|e| e["deny_reason"] == "rate_limited")
        .collect();
    assert_eq!(refused.len(), SENT - BURST);
    assert!(refused.iter().all(|e| e["status"] == 429));
    assert_eq!(refused[0]["details"]["rate_limit"]["scope"], "policy");
    assert_eq!(refused[0]["details"]["rate_limit"]["limit"], "60/h burst 5");
    let shadowed = access("shadow.test");
    assert_eq!(shadowed.len(), SENT);
    assert!(
        shadowed
            .iter()
            .all(|e| e["status"] == 200 && e["allowed"] == true)
    );
    let marked = shadowed
        .iter()
        .filter(|e| e["details"]["rate_limited_shadow"] == true)
        .count();
    assert_eq!(
        marked,
        SENT - BURST,
        "shadow mode audits what it would refuse"
    );
    assert!(
        access("open.test")
            .iter()
            .any(|e| e["deny_reason"] == "rate_limited"
                && e["details"]["rate_limit"]["scope"] == "token")
    );
}

#[test]
fn policy_check_names_the_line_of_a_bad_rate_limit() {
    let env = common::CliEnv::new();
    let upstream = "127.0.0.1:9";
    let text = policy(free_port(), free_port(), upstream.parse().unwrap()).replacen(
        "rate_limit = \"60/hour\"",
        "rate_limit = \"fast\"",
        1,
    );
    std::fs::write(env.path("policy.toml"), &text).unwrap();
    let (code, out, err) = env.run(&["policy", "check"]);
    assert_eq!(code, 2, "{out}{err}");
    let line = text[..text.find("\"fast\"").unwrap()].matches('\n').count() + 1;
    let want = format!(
        "policy.toml:{line}:14: error: app \"limited\", policy \"CI, limited\", rate_limit: \"fast\" is not a rate"
    );
    assert!(out.contains(&want), "want {want}\n{out}");
}
