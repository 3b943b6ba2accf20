//! Admin events through the one writer: with `botgate serve` running, `token create` and
//! `token revoke` from another process reach `/events` within 2 s and the audit file exactly
//! once; made while no gate runs, they are in the file once and not again when a gate starts.
//! A policy reload (applied or rejected) is an admin event and a metric, reported once.

mod common;
// A loopback port nothing listens on now, for a server the test starts.
use common::closed_port as free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

struct Setup {
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    admin: u16,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let config = dir.path().join("policy.toml");
        let policy = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/example-policy.toml"
        ))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"));
        std::fs::write(&config, policy).unwrap();
        Setup {
            state: dir.path().join("state"),
            config,
            admin,
            dir,
        }
    }

    fn botgate(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(cargo_bin("botgate"))
            .args(args)
            .env("BOTGATE_STATE_DIR", &self.state)
            .env("BOTGATE_CONFIG", &self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "botgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn serve_log(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    async fn serve(&self) -> Child {
        let child = common::serve_command(&self.state, &self.config, &self.serve_log())
            .spawn()
            .unwrap();
        // Printed once the whole runtime (gate, relay, policy watcher) is up.
        let log = self.serve_log();
        let up = common::eventually(Duration::from_secs(10), || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("hot reload on change")
        })
        .await;
        assert!(up, "botgate serve did not start");
        child
    }

    fn audit(&self) -> PathBuf {
        self.state.join("audit.jsonl")
    }
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

/// Admin events in the audit file for `action` on token `name`.
fn count_in_file(audit: &Path, action: &str, name: &str) -> usize {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "admin" && e["decision"] == action)
        .filter(|e| e["service_token_name"] == name)
        .count()
}

/// Read the SSE stream until an event with `decision == action` shows up (or `within` passes).
async fn wait_on_events(
    sse: &mut reqwest::Response,
    buffer: &mut String,
    action: &str,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let needle = format!("\"decision\":\"{action}\"");
    while started.elapsed() < within {
        if let Some(pos) = buffer.find(&needle) {
            buffer.drain(..pos + needle.len());
            return Some(started.elapsed());
        }
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, sse.chunk()).await {
            Ok(Ok(Some(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            _ => break,
        }
    }
    buffer.find(&needle).map(|_| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_and_revoke_from_another_process_reach_events_and_the_audit_file_once() {
    let s = Setup::new();
    // Made while no gate runs: the CLI appends it itself.
    s.botgate(&["token", "create", "ci-before-prod"]);
    assert_eq!(
        count_in_file(&s.audit(), "token_create", "ci-before-prod"),
        1
    );

    let serve = s.serve().await;
    let mut sse = common::client()
        .get(format!("http://127.0.0.1:{}/events", s.admin))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    s.botgate(&["token", "create", "ci-journal-prod"]);
    let created = wait_on_events(
        &mut sse,
        &mut buffer,
        "token_create",
        Duration::from_secs(2),
    )
    .await;
    s.botgate(&["token", "revoke", "ci-journal-prod"]);
    let revoked = wait_on_events(
        &mut sse,
        &mut buffer,
        "token_revoke",
        Duration::from_secs(2),
    )
    .await;
    let metrics = common::client()
        .get(format!("http://127.0.0.1:{}/metrics", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop(serve);

    assert!(created.is_some(), "token_create not on /events within 2 s");
    assert!(revoked.is_some(), "token_revoke not on /events within 2 s");
    eprintln!("on /events after: create {created:?}, revoke {revoked:?}");
    assert!(
        metrics.contains("botgate_admin_events_total{action=\"token_create\",allowed=\"true\"} 1"),
        "{metrics}"
    );
    let audit = s.audit();
    assert_eq!(count_in_file(&audit, "token_create", "ci-journal-prod"), 1);
    assert_eq!(count_in_file(&audit, "token_revoke", "ci-journal-prod"), 1);
    assert_eq!(
        count_in_file(&audit, "token_create", "ci-before-prod"),
        1,
        "the gate did not write the earlier CLI event again"
    );

    // After the gate stopped, the CLI writes its own events again.
    s.botgate(&["token", "revoke", "ci-before-prod"]);
    assert_eq!(count_in_file(&audit, "token_revoke", "ci-before-prod"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_a_rejected_reload_once_and_records_reloads_as_admin_events() {
    let s = Setup::new();
    let serve = s.serve().await;
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        good.replace("action = \"service_auth\"", "action = \"serviceauth\""),
    )
    .unwrap();
    let log = s.serve_log();
    let rejected = common::eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("rejected")
    })
    .await;
    assert!(rejected, "{}", std::fs::read_to_string(&log).unwrap());
    std::fs::write(&s.config, &good).unwrap();
    let applied = common::eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("policy file reloaded")
    })
    .await;
    assert!(applied, "{}", std::fs::read_to_string(&log).unwrap());
    let metrics = common::client()
        .get(format!("http://127.0.0.1:{}/metrics", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop(serve);

    let stderr = std::fs::read_to_string(&log).unwrap();
    let finding = stderr
        .lines()
        .find(|l| l.contains("serviceauth"))
        .unwrap_or_else(|| panic!("the finding is not on stderr: {stderr}"));
    assert_eq!(
        stderr.lines().filter(|l| *l == finding).count(),
        1,
        "the finding is printed once: {stderr}"
    );
    assert!(
        metrics.contains("botgate_policy_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("botgate_policy_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
    let text = std::fs::read_to_string(s.audit()).unwrap();
    let decisions: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "admin")
        .map(|e| e["decision"].as_str().unwrap_or_default().to_string())
        .collect();
    // The first gate on a store also makes the origin assertion's first signing key.
    let (keys, reloads): (Vec<String>, Vec<String>) = decisions
        .into_iter()
        .partition(|d| d.starts_with("signing_key_"));
    assert_eq!(keys, ["signing_key_created"], "{text}");
    assert_eq!(
        reloads,
        ["policy_reload_rejected", "policy_reload"],
        "{text}"
    );
}

/// A collector for a `[[sink]]`: every NDJSON line POSTed to it.
async fn collector() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use http_body_util::BodyExt;
    let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = lines.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let text = String::from_utf8_lossy(&body).to_string();
                            seen.lock()
                                .unwrap()
                                .extend(text.lines().map(str::to_string));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from("{}")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, lines)
}

/// `serve --console` runs this same runtime; its console's Log view is fed from this bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_step_from_the_cli_reaches_the_runtime_bus_and_a_configured_sink() {
    use botgate::audit::{AuditBus, BusMessage, EventKind};
    use botgate::runtime::{ReloadReport, Runtime, RuntimeOptions};
    let s = Setup::new();
    let (addr, received) = collector().await;
    let mut policy = std::fs::read_to_string(&s.config).unwrap();
    policy.push_str(&format!(
        "\n[[sink]]\nname = \"test\"\nurl = \"http://{addr}/ingest\"\nformat = \"ndjson\"\nflush_interval_ms = 50\n"
    ));
    std::fs::write(&s.config, policy).unwrap();
    s.botgate(&["token", "create", "ci-deploy-prod"]);

    let loaded = botgate::config::load(&s.config).unwrap();
    let store = std::sync::Arc::new(botgate::store::Store::open(&s.state).unwrap());
    let bus = AuditBus::default();
    let mut rx = bus.subscribe();
    let mut opts = RuntimeOptions::new(&s.config, &s.state);
    opts.bus = bus;
    opts.report = ReloadReport::Console;
    let runtime = Runtime::start(&loaded, store, opts).await.unwrap();

    let secret_out = s.dir.path().join("v2.json");
    s.botgate(&[
        "rotate",
        "start",
        "token",
        "ci-deploy-prod",
        "--quiet-period",
        "1h",
        "--secret-out",
        secret_out.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut on_bus = None;
    while on_bus.is_none() && Instant::now() < deadline {
        if let Ok(Ok(BusMessage::Event(ev))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            && ev.event == EventKind::Admin
            && ev.decision == "rotation_create"
        {
            on_bus = Some(ev.ray_id.clone());
        }
    }
    let ray = on_bus.expect("the rotation step never reached the runtime's bus");
    let sent = common::eventually(Duration::from_secs(5), || {
        let received = received.clone();
        let ray = ray.clone();
        async move { received.lock().unwrap().iter().any(|l| l.contains(&ray)) }
    })
    .await;
    runtime.stop().await;
    assert!(sent, "the rotation step never reached the [[sink]]");
    let in_file = std::fs::read_to_string(s.audit())
        .unwrap()
        .lines()
        .filter(|l| l.contains(&ray))
        .count();
    assert_eq!(in_file, 1, "the rotation step is in the audit file once");
}
