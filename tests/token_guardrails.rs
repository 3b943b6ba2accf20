//! `token disable | enable | refresh` as a user runs them beside a running `botgate serve`:
//! the gate follows each within a second, each is one admin event, the Client ID and secret
//! never change, and bad input is refused with the reason.

mod common;
use common::closed_port as free_port;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_and_refresh_a_token_under_a_running_gate() {
    let upstream = common::echo_upstream().await;
    let env = common::CliEnv::new();
    let (port, admin) = (free_port(), free_port());
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/example-policy.toml"
    ))
    .unwrap();
    let config = env.path("policy.toml");
    std::fs::write(
        &config,
        example
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
            .replace("http://127.0.0.1:9000", &format!("http://{upstream}")),
    )
    .unwrap();
    let (id, secret) = common::cli_token(&env.state(), &config, "ci-deploy-prod");
    let mut serve = common::serve_command(&env.state(), &config, &env.path("serve.log"))
        .spawn()
        .unwrap();
    let client = common::client();
    let call = || async {
        client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("host", "api.example.com")
            .header("cf-access-client-id", &id)
            .header("cf-access-client-secret", &secret)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let status_becomes = |want: u16| async move {
        common::eventually(Duration::from_secs(5), || async { call().await == want }).await
    };
    assert!(status_becomes(200).await, "the gate admits the new token");

    let (code, out, err) = env.run(&["token", "disable", "ci-deploy-prod"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("token_disabled"), "{out}");
    assert!(
        status_becomes(401).await,
        "disabled: refused within the poll"
    );
    let listed = env.json(&["token", "list"]);
    assert_eq!(listed[0]["status"], "disabled", "{listed}");
    // Disabling twice says what state it is in, exit 1.
    let (code, _, err) = env.run(&["token", "disable", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("already disabled"), "{err}");

    let (code, _, err) = env.run(&["token", "enable", "ci-deploy-prod"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status_becomes(200).await,
        "enabled: admitted again, same secret"
    );

    let before = env.json(&["token", "show", "ci-deploy-prod"]);
    let refreshed = env.json(&[
        "token",
        "refresh",
        "ci-deploy-prod",
        "--duration",
        "400d",
        "--allow-long",
    ]);
    assert_eq!(refreshed["client_id"], id.as_str());
    assert_ne!(refreshed["expires_at"], before["expires_at"]);
    let (code, _, err) = env.run(&["token", "refresh", "ci-deploy-prod", "--duration", "2y"]);
    assert_eq!(code, 2, "over a year without --allow-long is bad input");
    assert!(err.contains("--allow-long"), "{err}");
    assert!(status_becomes(200).await);

    // The gate refused with the reason, and each change is one admin event in its audit log
    // (the gate relays the journal every 500 ms).
    let audit_path = env.state().join("audit.jsonl");
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let count = |events: &[serde_json::Value], action: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "admin" && e["decision"] == action)
            .count()
    };
    let relayed = common::eventually(Duration::from_secs(5), || async {
        count(&read(), "token_refresh") == 1
    })
    .await;
    assert!(relayed, "the refresh reached the audit log");
    let _ = serve.kill();
    let _ = serve.wait();
    let events = read();
    assert!(
        events
            .iter()
            .any(|e| e["deny_reason"] == "token_disabled" && e["status"] == 401)
    );
    for action in ["token_disable", "token_enable", "token_refresh"] {
        assert_eq!(count(&events, action), 1, "{action} once");
    }
}
