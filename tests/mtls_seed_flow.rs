//! The seed's mTLS flow, word for word: a CA and a client certificate made by the `openssl` CLI
//! with the seed's commands (no `-extfile`, so the client certificate is X.509 v1), `botgate ca
//! trust`, a policy, `botgate serve` (which creates its own local CA for HTTPS), and `curl`.
//! Then the refusals a client can read: rogue, revoked, expired and v1-below-an-intermediate
//! certificates get 401 with a JSON body and `ray_id`, their audit event names the reason, and
//! `botgate policy explain` gives the same answer in every case.

mod common;
// A loopback port nothing listens on now, for a server the test starts.
use common::closed_port as free_port;
use common::sh;

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;

struct Env {
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    tls_port: u16,
}

impl Env {
    fn botgate(&self, args: &[&str]) -> Output {
        Command::new(cargo_bin("botgate"))
            .args(args)
            .current_dir(self.dir.path())
            .env("BOTGATE_STATE_DIR", &self.state)
            .env("BOTGATE_CONFIG", &self.config)
            .output()
            .unwrap()
    }

    /// `curl --cert CERT --key KEY` to the app: (status, body).
    fn curl(&self, cert: &str, key: &str) -> (String, String) {
        let out = Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.state.join("ca-root.crt"))
            .args(["--cert", cert, "--key", key, "--resolve"])
            .arg(format!("api.example.com:{}:127.0.0.1", self.tls_port))
            .arg(format!("https://api.example.com:{}/", self.tls_port))
            .current_dir(self.dir.path())
            .output()
            .expect("curl is installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        assert!(
            code != "000",
            "curl got no HTTP answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (code.to_string(), body.to_string())
    }

    /// `policy explain --json` for a certificate file: (exit code, answer).
    fn explain(&self, cert: &str) -> (i32, serde_json::Value) {
        let out = self.botgate(&[
            "policy",
            "explain",
            "--app",
            "api.example.com",
            "--cert",
            cert,
            "--json",
        ]);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "explain printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    fn audit_event(&self, ray_id: &str) -> Option<serde_json::Value> {
        std::fs::read_to_string(self.state.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["ray_id"] == ray_id)
    }

    /// A refused certificate: 401, a JSON body with `ray_id`, the audit event names `reason`
    /// and keeps the certificate's CN; explain says deny 401 with the same reason and exits 1.
    async fn assert_refused(&self, cert: &str, key: &str, reason: &str) {
        let (code, body) = self.curl(cert, key);
        assert_eq!(code, "401", "{cert}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        let ray = body["ray_id"]
            .as_str()
            .expect("ray_id in the body")
            .to_string();
        let mut event = None;
        let found = common::eventually(Duration::from_secs(5), || {
            event = self.audit_event(&ray);
            let done = event.is_some();
            async move { done }
        })
        .await;
        assert!(found, "{cert}: no audit event for ray {ray}");
        let event = event.unwrap();
        assert_eq!(event["deny_reason"], reason, "{cert}: {event}");
        assert_eq!(event["status"], 401);
        assert_eq!(event["connection_method"], "mtls");
        assert_eq!(event["cert_common_name"], "github-actions-bot", "{event}");
        let (exit, answer) = self.explain(cert);
        assert_eq!(exit, 1, "{cert}: explain exits 1 on deny: {answer}");
        assert_eq!(answer["decision"], "deny");
        assert_eq!(answer["status"], 401);
        assert_eq!(answer["deny_reason"], reason, "{answer}");
    }
}

fn start_serve(env: &Env) -> Child {
    common::serve_command(&env.state, &env.config, &env.dir.path().join("serve.log"))
        .current_dir(env.dir.path())
        .spawn()
        .unwrap()
}

// Multi-threaded: the test thread blocks on curl while the upstream serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_openssl_flow_verbatim_then_readable_refusals() {
    let upstream = common::echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let env = Env {
        state: d.join("state"),
        config: d.join("policy.toml"),
        tls_port: free_port(),
        dir,
    };
    // The seed's commands, as written.
    sh(
        &d,
        "openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt -days 3650 -subj \"/CN=Corporate Device CA\"",
    );
    sh(
        &d,
        "openssl req -new -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj \"/CN=github-actions-bot\"",
    );
    sh(
        &d,
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 365 -sha256",
    );
    std::fs::write(
        &env.config,
        format!(
            r#"[gate]
listen = "127.0.0.1:{}"
tls_listen = "127.0.0.1:{}"
audit_log = "audit.jsonl"

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://{upstream}"
trusted_cas = ["Corporate Device CA"]

[[app.policy]]
name = "mTLS from Corporate CA"
action = "non_identity"
include = [{{ common_name = "github-actions-bot" }}]
"#,
            free_port(),
            env.tls_port
        ),
    )
    .unwrap();
    let trusted = env.botgate(&["ca", "trust", "ca.crt", "--name", "Corporate Device CA"]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );

    let mut serve = start_serve(&env);
    let up = common::eventually(Duration::from_secs(15), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", env.tls_port))
            .await
            .is_ok()
    })
    .await;
    let log = std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();
    assert!(up, "botgate serve did not start: {log}");
    assert!(
        log.contains("created the local CA") && log.contains("curl --cacert"),
        "serve says it created the local CA and where its root is: {log}"
    );

    // The seed's X.509 v1 client certificate is admitted, and explain agrees.
    let (code, body) = env.curl("client.crt", "client.key");
    assert_eq!(code, "200", "{body}");
    let (exit, answer) = env.explain("client.crt");
    assert_eq!(exit, 0, "{answer}");
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["policy"], "mTLS from Corporate CA");
    let chain = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chain")
        .unwrap();
    assert_eq!(chain["detail"], "ok via \"Corporate Device CA\"");

    // Rogue: the same CN from a CA nobody trusts.
    sh(
        &d,
        "openssl req -x509 -new -nodes -newkey rsa:2048 -keyout rogue-ca.key -out rogue-ca.crt -days 3650 -subj \"/CN=Corporate Device CA Rogue\"",
    );
    sh(
        &d,
        "openssl x509 -req -in client.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial -out rogue.crt -days 365 -sha256",
    );
    env.assert_refused("rogue.crt", "client.key", "cert_untrusted")
        .await;

    // Expired: signed by the trusted CA, validity ended before it began.
    sh(
        &d,
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out expired.crt -days -1 -sha256",
    );
    env.assert_refused("expired.crt", "client.key", "cert_expired")
        .await;

    // v1 below an intermediate: v1 is accepted only when signed directly by a trusted CA.
    sh(
        &d,
        "openssl req -new -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj \"/CN=Corporate Issuing CA\"",
    );
    sh(
        &d,
        "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > inter.ext && openssl x509 -req -in inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out inter.crt -days 365 -sha256 -extfile inter.ext",
    );
    sh(
        &d,
        "openssl x509 -req -in client.csr -CA inter.crt -CAkey inter.key -CAcreateserial -out under-inter.crt -days 365 -sha256 && cat inter.crt >> under-inter.crt",
    );
    env.assert_refused("under-inter.crt", "client.key", "cert_unsupported")
        .await;

    // Revoked with `botgate cert revoke` a moment ago: refused at the running gate.
    sh(
        &d,
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out revoked.crt -days 365 -sha256",
    );
    assert_eq!(env.curl("revoked.crt", "client.key").0, "200");
    let revoke = env.botgate(&["cert", "revoke", "revoked.crt"]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let denied = common::eventually(Duration::from_secs(5), || {
        let code = env.curl("revoked.crt", "client.key").0;
        async move { code == "401" }
    })
    .await;
    assert!(denied, "the revocation reached the running gate");
    env.assert_refused("revoked.crt", "client.key", "cert_revoked")
        .await;
    let (_, answer) = env.explain("revoked.crt");
    let revoked = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "revoked")
        .unwrap();
    assert!(
        revoked["detail"]
            .as_str()
            .unwrap()
            .starts_with("yes since "),
        "{revoked}"
    );

    // The first certificate is still admitted.
    assert_eq!(env.curl("client.crt", "client.key").0, "200");
    let _ = Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
}
