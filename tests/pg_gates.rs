//! Several gates on one PostgreSQL store, run as a user runs them: two `botgate serve`
//! processes (different ports, different state dirs) with `[store] url` naming one database,
//! and the CLI of either host changing what both enforce. Each test gets its own fresh
//! database on a real server (see `botgate::store::testdb`), dropped afterwards.

mod common;
use common::closed_port as free_port;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use botgate::store::testdb::TestDb;

/// One host: a state dir and a policy file on the shared store, and its gate when started.
struct Host {
    env: common::CliEnv,
    port: u16,
    admin: u16,
    serve: Option<std::process::Child>,
}

impl Host {
    fn new(upstream: std::net::SocketAddr, store_url: &str) -> Self {
        let env = common::CliEnv::new();
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
        std::fs::write(
            env.path("policy.toml"),
            format!("{policy}\n[store]\nurl = \"{store_url}\"\n"),
        )
        .unwrap();
        Self {
            env,
            port,
            admin,
            serve: None,
        }
    }

    fn config(&self) -> PathBuf {
        self.env.path("policy.toml")
    }

    fn start(&mut self) {
        let serve = common::serve_command(
            &self.env.state(),
            &self.config(),
            &self.env.path("serve.log"),
        )
        .spawn()
        .unwrap();
        self.serve = Some(serve);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.env.path("serve.log")).unwrap_or_default()
    }

    async fn status(&self, client: &reqwest::Client, id: &str, secret: &str) -> u16 {
        client
            .get(format!("http://127.0.0.1:{}/", self.port))
            .header("host", "api.example.com")
            .header("cf-access-client-id", id)
            .header("cf-access-client-secret", secret)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    async fn healthy(&self, client: &reqwest::Client) -> bool {
        client
            .get(format!("http://127.0.0.1:{}/healthz", self.admin))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            let _ = serve.kill();
            let _ = serve.wait();
        }
    }
}

/// Wait until `host` answers `want` for the credential; how long it took.
async fn until_status(
    host: &Host,
    client: &reqwest::Client,
    id: &str,
    secret: &str,
    want: u16,
) -> Option<Duration> {
    let start = Instant::now();
    let ok = common::eventually(Duration::from_secs(10), || async {
        host.status(client, id, secret).await == want
    })
    .await;
    ok.then(|| start.elapsed())
}

async fn both_up(hosts: &[&Host], client: &reqwest::Client) {
    for h in hosts {
        assert!(
            common::eventually(Duration::from_secs(20), || h.healthy(client)).await,
            "gate on port {} did not come up:\n{}",
            h.port,
            h.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_created_and_revoked_on_one_host_is_enforced_by_both_gates() {
    let db = TestDb::new();
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &db.url);
    let mut b = Host::new(upstream, &db.url);
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;

    // Created through host A's CLI while both gates run.
    let (id, secret) = common::cli_token(&a.env.state(), &a.config(), "ci-deploy-prod");
    for (name, h) in [("a", &a), ("b", &b)] {
        let took = until_status(h, &client, &id, &secret, 200).await;
        assert!(
            took.is_some(),
            "gate {name} never admitted the new token:\n{}",
            h.log()
        );
    }
    // Listed the same from host B, which never saw it created.
    let listed = b.env.json(&["token", "list"]);
    assert_eq!(listed[0]["client_id"], id.as_str(), "{listed}");

    // One assertion key set for the fleet: both gates (gate and admin listeners) serve the
    // store's keys, and a key published through host A's CLI appears on gate B within a poll.
    let key_set = |port: u16| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}/cdn-cgi/access/certs");
        async move {
            let v: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
            let mut kids: Vec<String> = v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_string())
                .collect();
            kids.sort();
            kids
        }
    };
    let first = key_set(a.port).await;
    assert_eq!(
        first.len(),
        1,
        "one key, made by the first gate up: {first:?}"
    );
    for port in [a.admin, b.port, b.admin] {
        assert_eq!(key_set(port).await, first);
    }
    let rotated = a.env.json(&["keys", "rotate", "--publish-ahead", "1h"]);
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    let published = common::eventually(Duration::from_secs(5), || {
        let kids = key_set(b.port);
        let new_kid = new_kid.clone();
        async move { kids.await.contains(&new_kid) }
    })
    .await;
    assert!(published, "gate B publishes the key host A rotated in");

    // Revoked through host B's CLI: refused by both.
    let (code, _, err) = b.env.run(&["token", "revoke", "ci-deploy-prod"]);
    assert_eq!(code, 0, "{err}");
    for (name, h) in [("a", &a), ("b", &b)] {
        let took = until_status(h, &client, &id, &secret, 401).await;
        assert!(
            took.is_some(),
            "gate {name} still admits a revoked token:\n{}",
            h.log()
        );
    }
    // The admin events reach both audit logs (each relays the shared journal once).
    for h in [&a, &b] {
        let path = h.env.state().join("audit.jsonl");
        let seen = common::eventually(Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            text.matches("\"token_revoke\"").count() == 1
                && text.matches("\"token_create\"").count() == 1
        })
        .await;
        assert!(
            seen,
            "{}: {}",
            path.display(),
            std::fs::read_to_string(&path).unwrap_or_default()
        );
    }
}

fn copied_counts(out: &serde_json::Value) -> Vec<(String, u64)> {
    out["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn count(counts: &[(String, u64)], table: &str) -> u64 {
    counts
        .iter()
        .find(|(t, _)| t == table)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_populated_sqlite_store_and_both_gates_admit_its_credentials() {
    // A single host on SQLite, with a token, a CA, an issued and a revoked certificate.
    let old = common::CliEnv::new();
    let (id, secret) = common::cli_token(&old.state(), &old.path("policy.toml"), "ci-deploy-prod");
    let (code, _, err) = old.run(&["ca", "init"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = old.run(&["cert", "issue", "--cn", "device-0001", "--out", "certs"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = old.run(&["cert", "issue", "--cn", "device-0002", "--out", "certs2"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = old.run(&["cert", "revoke", "device-0002"]);
    assert_eq!(code, 0, "{err}");

    let db = TestDb::new();
    let copied = old.json(&["store", "copy", "--to", &db.url]);
    let counts = copied_counts(&copied);
    assert_eq!(count(&counts, "tokens"), 1, "{copied}");
    assert_eq!(count(&counts, "cas"), 2, "{copied}");
    assert_eq!(count(&counts, "certs"), 2, "{copied}");
    assert!(count(&counts, "admin_audit") >= 5, "{copied}");

    // A second copy is refused: the target is not empty, and nothing changes.
    let (code, _, err) = old.run(&["store", "copy", "--to", &db.url]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is not empty") && err.contains("1 tokens"),
        "{err}"
    );

    // Two gates on the copy admit the copied token, and list the same inventory.
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &db.url);
    let mut b = Host::new(upstream, &db.url);
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;
    for (name, h) in [("a", &a), ("b", &b)] {
        let took = until_status(h, &client, &id, &secret, 200).await;
        assert!(
            took.is_some(),
            "gate {name} refuses the copied token:\n{}",
            h.log()
        );
    }
    let certs = b.env.json(&["cert", "list"]);
    let statuses: Vec<(String, String)> = certs["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["common_name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("device-0002".into(), "revoked".into())),
        "{certs}"
    );
    let cas = a.env.json(&["ca", "list"]);
    assert_eq!(cas.as_array().unwrap().len(), 2, "{cas}");
    // The CA's key came along: host A issues from it without a new `ca init`.
    let (code, _, err) = a
        .env
        .run(&["cert", "issue", "--cn", "device-0003", "--out", "c3"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_unreachable_store_fails_admin_commands_naming_the_host_not_the_password() {
    let env = common::CliEnv::new();
    let port = free_port();
    std::fs::write(
        env.path("policy.toml"),
        format!("[store]\nurl = \"postgres://gate:s3cret-pw@127.0.0.1:{port}/botgate\"\n"),
    )
    .unwrap();
    let (code, out, err) = env.run(&["token", "list"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("gate@127.0.0.1:{port}/botgate")),
        "names the store: {err}"
    );
    assert!(!err.contains("s3cret-pw"), "never the password: {err}");
    // env:VAR keeps the URL out of the file; an unset variable is named.
    std::fs::write(
        env.path("policy.toml"),
        "[store]\nurl = \"env:BOTGATE_TEST_UNSET_URL\"\n",
    )
    .unwrap();
    let (code, _, err) = env.run(&["token", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("BOTGATE_TEST_UNSET_URL is not set"), "{err}");
}

/// Requests with one credential, alternating between gates, until told to stop.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(usize, u16)>>,
}

impl Load {
    fn start(ports: Vec<u16>, id: String, secret: String) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let client = common::client();
            let mut answers = Vec::new();
            let mut n = 0usize;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let gate = n % ports.len();
                let status = client
                    .get(format!("http://127.0.0.1:{}/", ports[gate]))
                    .header("host", "api.example.com")
                    .header("cf-access-client-id", &id)
                    .header("cf-access-client-secret", &secret)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                answers.push((gate, status));
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answers
        });
        Self { stop, task }
    }

    /// Stop; every (gate index, status) answered.
    async fn finish(self) -> Vec<(usize, u16)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Allowed access events for `client_id` in a host's audit log.
fn allowed_in_audit(h: &Host, client_id: &str) -> usize {
    std::fs::read_to_string(h.env.state().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["event"] == "access" && e["allowed"] == true && e["service_token_id"] == client_id
        })
        .count()
}

async fn health_body(h: &Host, client: &reqwest::Client) -> serde_json::Value {
    match client
        .get(format!("http://127.0.0.1:{}/healthz", h.admin))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_and_restarted_under_load_loses_nothing_and_catches_up() {
    let server = botgate::store::testdb::PrivateServer::start();
    let url = server.database("botgate_outage");
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &url);
    let mut b = Host::new(upstream, &url);
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;
    let (id, secret) = common::cli_token(&a.env.state(), &a.config(), "ci-deploy-prod");
    let (old_id, old_secret) = common::cli_token(&a.env.state(), &a.config(), "ci-old-prod");
    let (code, _, err) = a.env.run(&["token", "revoke", "ci-old-prod"]);
    assert_eq!(code, 0, "{err}");
    for h in [&a, &b] {
        assert!(
            until_status(h, &client, &id, &secret, 200).await.is_some(),
            "{}",
            h.log()
        );
        assert!(
            until_status(h, &client, &old_id, &old_secret, 401)
                .await
                .is_some(),
            "{}",
            h.log()
        );
    }

    let load = Load::start(vec![a.port, b.port], id.clone(), secret.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    // Both gates say so on /healthz (200: they still decide) and keep enforcing.
    for h in [&a, &b] {
        let said = common::eventually(Duration::from_secs(10), || async {
            let body = health_body(h, &client).await;
            body["status"] == "store_unreachable" && body["store"]["reachable"] == false
        })
        .await;
        assert!(said, "{}\n{}", health_body(h, &client).await, h.log());
        let body = health_body(h, &client).await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("/botgate_outage"), "names the store: {body}");
        assert_eq!(
            h.status(&client, &old_id, &old_secret).await,
            401,
            "revoked stays refused"
        );
    }
    // An admin command fails with exit 1 naming the store.
    let (code, out, err) = b.env.run(&["token", "list"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("127.0.0.1") && err.contains("/botgate_outage"),
        "{err}"
    );
    // The detectors raise one store_unreachable alert per gate (the inventory tick is 5 s).
    for h in [&a, &b] {
        let path = h.env.state().join("audit.jsonl");
        let raised = common::eventually(Duration::from_secs(15), || async {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("\"decision\":\"store_unreachable\"")
        })
        .await;
        assert!(raised, "no store_unreachable alert in {}", path.display());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    for h in [&a, &b] {
        let back = common::eventually(Duration::from_secs(15), || async {
            health_body(h, &client).await["status"] == "ok"
        })
        .await;
        assert!(back, "{}\n{}", health_body(h, &client).await, h.log());
    }
    let answers = load.finish().await;
    let failed: Vec<_> = answers.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests for a known token failed during the outage: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(10)]
    );
    assert!(answers.len() > 100, "the load ran: {}", answers.len());
    // Nothing lost from the audit logs: every answered request is there, on the gate it hit.
    for (i, h) in [&a, &b].into_iter().enumerate() {
        let answered = answers.iter().filter(|(g, _)| *g == i).count();
        let logged = common::eventually(Duration::from_secs(10), || async {
            allowed_in_audit(h, &id) >= answered
        })
        .await;
        assert!(
            logged,
            "gate {i}: {answered} answered, {} in its audit log",
            allowed_in_audit(h, &id)
        );
    }
    // A revocation after the restart is enforced by both, and their snapshots reach the
    // store's change version (the change log is caught up).
    let (code, _, err) = b.env.run(&["token", "revoke", "ci-deploy-prod"]);
    assert_eq!(code, 0, "{err}");
    for h in [&a, &b] {
        assert!(
            until_status(h, &client, &id, &secret, 401).await.is_some(),
            "{}",
            h.log()
        );
    }
    let store = botgate::store::Store::connect(&url).unwrap();
    let version = botgate::store::wait(store.change_version()).unwrap();
    for h in [&a, &b] {
        let caught_up = common::eventually(Duration::from_secs(10), || async {
            health_body(h, &client).await["store"]["version"] == version
        })
        .await;
        assert!(
            caught_up,
            "store at {version}: {}",
            health_body(h, &client).await
        );
    }
}

/// `credential_expiring` alert events opened in a host's audit log.
fn expiring_opened(h: &Host) -> usize {
    std::fs::read_to_string(h.env.state().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["decision"] == "credential_expiring" && e["details"]["state"] == "open")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gates_raise_one_expiry_alert_and_the_other_takes_over_when_the_first_stops() {
    let db = TestDb::new();
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &db.url);
    let mut b = Host::new(upstream, &db.url);
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;
    let (code, _, err) = a
        .env
        .run(&["token", "create", "ci-deploy-prod", "--duration", "3d"]);
    assert_eq!(code, 0, "{err}");
    // The inventory rules tick every 5 s: one gate raises it.
    let raised = common::eventually(Duration::from_secs(20), || async {
        expiring_opened(&a) + expiring_opened(&b) > 0
    })
    .await;
    assert!(raised, "no expiry alert:\n{}\n{}", a.log(), b.log());
    // Two more ticks: still one, on one gate.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (on_a, on_b) = (expiring_opened(&a), expiring_opened(&b));
    assert_eq!(on_a + on_b, 1, "a: {on_a}, b: {on_b}");
    // The holder stops (SIGTERM gives the lease up); the other raises it on its next ticks.
    let (holder, other) = if on_a == 1 {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    let serve = holder.serve.take().unwrap();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut serve = serve;
    let exit = serve.wait().unwrap();
    assert!(exit.success(), "serve on SIGTERM: {exit}\n{}", holder.log());
    let took_over = common::eventually(Duration::from_secs(25), || async {
        expiring_opened(other) == 1
    })
    .await;
    assert!(
        took_over,
        "the other gate never took the job over:\n{}",
        other.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_with_traffic_split_across_gates_verifies_only_when_both_stop_seeing_the_old_token()
 {
    let db = TestDb::new();
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &db.url);
    let mut b = Host::new(upstream, &db.url);
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;
    let (old_id, old_secret) = common::cli_token(&a.env.state(), &a.config(), "ci-deploy-prod");
    let started = a.env.json(&[
        "rotate",
        "start",
        "token",
        "ci-deploy-prod",
        "--quiet-period",
        "3s",
        "--min-requests",
        "200",
    ]);
    let id = started["rotation"]["id"].as_str().unwrap().to_string();
    let new_id = started["new_credential"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let new_secret = started["new_credential"]["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = a.env.run(&["rotate", "next", &id]);
    assert_eq!(code, 0, "add: {err}");
    // The policy edit reaches host B as configuration management would carry it.
    let edited = std::fs::read_to_string(a.config())
        .unwrap()
        .replace(
            &format!("127.0.0.1:{}", a.port),
            &format!("127.0.0.1:{}", b.port),
        )
        .replace(
            &format!("127.0.0.1:{}", a.admin),
            &format!("127.0.0.1:{}", b.admin),
        );
    std::fs::write(b.config(), edited).unwrap();
    let (code, _, err) = a.env.run(&["rotate", "next", &id]);
    assert_eq!(code, 0, "rollout: {err}");
    for h in [&a, &b] {
        let took = until_status(h, &client, &new_id, &new_secret, 200).await;
        assert!(
            took.is_some(),
            "the new token is not admitted:\n{}",
            h.log()
        );
    }

    // Clients of gate B still use the old token, and most of the new token's users are behind
    // gate B too: host A's own log holds only a few of the 200 requests verify wants.
    let old_users = Load::start(vec![b.port], old_id.clone(), old_secret.clone());
    let new_users = Load::start(vec![b.port], new_id.clone(), new_secret.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, out, err) = a.env.run(&["rotate", "next", &id]);
    assert_eq!(
        code, 1,
        "verify must refuse while gate B sees the old token:\n{out}{err}"
    );
    assert!(err.contains("must be silent"), "{err}");
    let answered = old_users.finish().await;
    assert!(
        answered.iter().all(|(_, s)| *s == 200),
        "old token refused early"
    );
    let through_b = new_users.finish().await;
    assert!(through_b.iter().all(|(_, s)| *s == 200));
    assert!(through_b.len() >= 200, "only {} requests", through_b.len());
    assert!(allowed_in_audit(&a, &new_id) < 200);

    // Both gates quiet: verify passes once the quiet period has run on the store's time too.
    let verified = common::eventually(Duration::from_secs(20), || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.env.run(&["rotate", "next", &id]).0 == 0
    })
    .await;
    assert!(
        verified,
        "verify never passed:\n{}",
        a.env.run(&["rotate", "status", &id]).1
    );
    let status = a.env.json(&["rotate", "status", &id]);
    assert_eq!(status["state"], "verified", "{status}");
}

/// `shared_credential` alert events opened in a host's audit log.
fn shared_opened(h: &Host) -> Vec<serde_json::Value> {
    std::fs::read_to_string(h.env.state().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["decision"] == "shared_credential" && e["details"]["state"] == "open")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_shared_across_gates_is_flagged_once_from_the_merged_usage() {
    let db = TestDb::new();
    let upstream = common::echo_upstream().await;
    let mut a = Host::new(upstream, &db.url);
    let mut b = Host::new(upstream, &db.url);
    // Four user agents make a shared credential; each gate alone sees two.
    for h in [&a, &b] {
        let mut policy = std::fs::read_to_string(h.config()).unwrap();
        policy.push_str(
            "\n[detect.shared_credential]\nwindow = \"10m\"\ndistinct_ips = 100\ndistinct_user_agents = 4\n",
        );
        std::fs::write(h.config(), policy).unwrap();
    }
    a.start();
    b.start();
    let client = common::client();
    both_up(&[&a, &b], &client).await;
    let (id, secret) = common::cli_token(&a.env.state(), &a.config(), "ci-deploy-prod");
    for h in [&a, &b] {
        assert!(
            until_status(h, &client, &id, &secret, 200).await.is_some(),
            "{}",
            h.log()
        );
    }
    // Keep the traffic going (as a fleet of runners would) until the merged usage has
    // reached the lease holder; neither gate alone ever sees more than two agents.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let mut raised = false;
    while !raised && std::time::Instant::now() < deadline {
        for (h, ua) in [
            (&a, "runner-1"),
            (&a, "runner-2"),
            (&b, "runner-3"),
            (&b, "runner-4"),
        ] {
            let status = client
                .get(format!("http://127.0.0.1:{}/", h.port))
                .header("host", "api.example.com")
                .header("user-agent", ua)
                .header("cf-access-client-id", &id)
                .header("cf-access-client-secret", &secret)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        raised = shared_opened(&a).len() + shared_opened(&b).len() > 0;
    }
    assert!(
        raised,
        "no shared_credential alert from the merged usage:\n{}\n{}",
        a.log(),
        b.log()
    );
    // A few more usage rounds: still one alert (its updates carry the same id), from one
    // gate, naming all four agents.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (from_a, from_b) = (shared_opened(&a), shared_opened(&b));
    assert!(
        from_a.is_empty() || from_b.is_empty(),
        "both gates raised it:\n{from_a:#?}\n{from_b:#?}"
    );
    let alerts = if from_a.is_empty() { from_b } else { from_a };
    let ids: std::collections::BTreeSet<_> = alerts
        .iter()
        .map(|e| e["details"]["alert_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{alerts:#?}");
    let evidence = &alerts[0]["details"]["evidence"];
    assert_eq!(evidence["distinct_user_agents"], 4, "{evidence}");
}
