//! The README quick start, verbatim in spirit: the built binary creates a token, `botgate serve`
//! runs, and `curl` calls through the gate with the two headers.

mod common;
// A loopback port nothing listens on now, for a server the test starts.
use common::closed_port as free_port;

use std::process::Command;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;

// Multi-threaded: the test thread blocks on curl while the upstream serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_then_curl_through_the_gate() {
    let upstream = common::echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("policy.toml");
    let (port, admin) = (free_port(), free_port());
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/example-policy.toml"
    ))
    .unwrap();
    let policy = example
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("http://127.0.0.1:9000", &format!("http://{upstream}"));
    std::fs::write(&config, policy).unwrap();

    let (id, secret) = common::cli_token(&state, &config, "ci-deploy-prod");
    assert!(secret.starts_with("bgs_"));

    let serve = common::serve_command(&state, &config, &dir.path().join("serve.log"))
        .spawn()
        .unwrap();
    let up = common::eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "botgate serve did not start listening");

    let curl = |secret: &str| {
        Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: api.example.com",
            ])
            .args([
                "-H",
                &format!("CF-Access-Client-Id: {id}"),
                "-H",
                &format!("CF-Access-Client-Secret: {secret}"),
            ])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("curl is installed (.ci/run installs it)")
    };
    let ok = curl(&secret);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = curl("bgs_0000000000000000000000000000000000000000000000");
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "401");

    // Hot reload: a broken edit is rejected and the last good policy keeps working…
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("action = \"service_auth\"", "action = \"serviceauth\""),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let rejected = common::eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("rejected")
    })
    .await;
    assert!(
        rejected,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        String::from_utf8_lossy(&curl(&secret).stdout),
        "200",
        "last good policy still enforced"
    );
    // …and a valid edit takes effect without a restart.
    std::fs::write(
        &config,
        good.replace(
            "service_token = \"ci-deploy-prod\"",
            "service_token = \"ci-deploy-staging\"",
        ),
    )
    .unwrap();
    let denied = common::eventually(Duration::from_secs(10), || async {
        String::from_utf8_lossy(&curl(&secret).stdout) == "403"
    })
    .await;
    assert!(denied, "policy change not applied");

    let audit = state.join("audit.jsonl");
    let logged = common::eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\":\"access\""))
            .count()
            >= 2
    })
    .await;
    assert!(logged);

    Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status()
        .unwrap();
    serve.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();

    let text = std::fs::read_to_string(&audit).unwrap();
    let first: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "access")
        .unwrap();
    assert_eq!(first["service_token_name"], "ci-deploy-prod");
    assert_eq!(first["policy_name"], "CI deployment");
    assert_eq!(first["connection_method"], "service_token");
    assert!(!text.contains(&secret), "secret in the audit log");
    assert!(!stderr.contains(&secret), "secret on stderr");
}

#[test]
fn token_verbs_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(cargo_bin("botgate"))
            .args(args)
            .env("BOTGATE_STATE_DIR", dir.path())
            .output()
            .unwrap()
    };
    assert_eq!(
        run(&["token", "create", "ci-deploy-prod", "--duration", "2y"])
            .status
            .code(),
        Some(2),
        "more than 1y refused"
    );
    assert_eq!(
        run(&["token", "create", "ci-deploy-prod", "--duration", "soon"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["token", "create", "bad name!"]).status.code(),
        Some(2)
    );
    let out_file = dir.path().join("secret.json");
    let out = run(&[
        "token",
        "create",
        "ci-deploy-prod",
        "--duration",
        "90d",
        "--secret-out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("bgs_"),
        "no secret printed with --secret-out"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    for k in ["name", "client_id", "client_secret", "expires_at"] {
        assert!(saved.get(k).is_some(), "{k} in the secret file");
    }
    assert_eq!(
        run(&["token", "create", "ci-deploy-prod"]).status.code(),
        Some(1),
        "duplicate live name refused"
    );
    let list = run(&["token", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["status"], "active");
    assert!(v[0]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(run(&["token", "revoke", "ci-deploy-prod"]).status.success());
    assert_eq!(
        run(&["token", "revoke", "ci-deploy-prod"]).status.code(),
        Some(1)
    );
    let show = run(&["token", "show", "ci-deploy-prod", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&show.stdout).unwrap()["status"],
        "revoked"
    );
}
