//! Shared test fixtures: a real upstream that echoes what it received, a gate on an ephemeral
//! port over a real SQLite store, and polling with a deadline.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate::audit::AuditBus;
use botgate::clock::SystemClock;
use botgate::credential::{ClientId, ClientSecret};
use botgate::gate::{self, GateOptions, RunningGate};
use botgate::store::{NewToken, Store};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Start an upstream on 127.0.0.1:0 that answers 200 with a JSON object of the request headers.
pub async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let mut headers = serde_json::Map::new();
                    for (k, v) in req.headers() {
                        headers.insert(
                            k.as_str().to_string(),
                            serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
                        );
                    }
                    let body =
                        serde_json::json!({ "path": req.uri().to_string(), "headers": headers })
                            .to_string();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A loopback port with nothing listening on it now (to connect to and fail, or to give a server).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A token created in the store; the secret kept for the test client.
pub struct TestToken {
    pub name: String,
    pub client_id: String,
    pub secret: String,
}

pub fn create_token(store: &Store, name: &str, lifetime: chrono::Duration) -> TestToken {
    let id = ClientId::generate();
    let secret = ClientSecret::generate();
    let now = chrono::Utc::now();
    botgate::store::wait(store.create_token(&NewToken {
        name,
        client_id: &id,
        secret_hash: secret.hash(),
        created_at: now,
        expires_at: now + lifetime,
        bounds: Default::default(),
    }))
    .unwrap();
    TestToken {
        name: name.into(),
        client_id: id.to_string(),
        secret: secret.expose().to_string(),
    }
}

pub struct TestGate {
    pub gate: RunningGate,
    pub store: Arc<Store>,
    pub dir: tempfile::TempDir,
    pub audit_log: PathBuf,
    pub bus: AuditBus,
}

impl TestGate {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gate.addr)
    }

    /// The audit log lines parsed as JSON.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every audit line is valid JSON"))
            .collect()
    }

    /// Wait until the audit log holds `n` access events.
    pub async fn wait_for_access_events(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<_> = self
                .audit_lines()
                .into_iter()
                .filter(|l| l["event"] == "access")
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Start a gate with `policy_toml` (use `{upstream}` and `{closed}` placeholders).
pub async fn start_gate(policy_toml: &str, setup: impl FnOnce(&Store)) -> TestGate {
    start_gate_with(policy_toml, setup, |_| {}).await
}

pub async fn start_gate_with(
    policy_toml: &str,
    setup: impl FnOnce(&Store),
    tweak: impl FnOnce(&mut GateOptions),
) -> TestGate {
    start_gate_clocked(policy_toml, setup, tweak, Arc::new(SystemClock)).await
}

/// `start_gate_with` on `clock` (a `FixedClock` moves the gate's "now" for expiry and grace).
pub async fn start_gate_clocked(
    policy_toml: &str,
    setup: impl FnOnce(&Store),
    tweak: impl FnOnce(&mut GateOptions),
    clock: botgate::clock::SharedClock,
) -> TestGate {
    let upstream = echo_upstream().await;
    let text = policy_toml
        .replace("{upstream}", &format!("http://{upstream}"))
        .replace("{closed}", &format!("http://127.0.0.1:{}", closed_port()));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    setup(&store);
    let file: botgate::config::PolicyFile = toml::from_str(&text).unwrap();
    let policies = botgate::policy::compile(&file).unwrap();
    let mut opts = GateOptions::from_file(&file, dir.path()).unwrap();
    opts.listen = "127.0.0.1:0".parse().unwrap();
    tweak(&mut opts);
    let audit_log = opts.audit_log.clone();
    let bus = AuditBus::default();
    let gate = gate::start(opts, policies, hub(&store), bus.clone(), clock, None)
        .await
        .unwrap();
    TestGate {
        gate,
        store,
        dir,
        audit_log,
        bus,
    }
}

/// The inventory hub a test gate follows (inside a tokio runtime).
pub fn hub(store: &Store) -> Arc<botgate::store::hub::InventoryHub> {
    Arc::new(botgate::store::hub::InventoryHub::start(store.clone()).unwrap())
}

/// A reqwest client (the ring provider installed first, as reqwest 0.13 requires).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Poll `f` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A gate with a TLS listener whose server certificate and client CAs come from `store`'s PKI
/// (for `devices.test`), on the policy `text`.
pub async fn start_store_tls_gate(
    dir: &std::path::Path,
    store: Arc<Store>,
    text: &str,
) -> RunningGate {
    let file: botgate::config::PolicyFile = toml::from_str(text).unwrap();
    let policies = botgate::policy::compile(&file).unwrap();
    let mut opts = GateOptions::from_file(&file, dir).unwrap();
    let tls = botgate::gate::store_tls::StoreTlsSource::new(
        store.clone(),
        None,
        &["devices.test".to_string()],
    )
    .unwrap();
    opts.tls = Some(Arc::new(tls));
    gate::start(
        opts,
        policies,
        hub(&store),
        AuditBus::default(),
        Arc::new(SystemClock),
        None,
    )
    .await
    .unwrap()
}

/// A client presenting `chain_and_key` to `devices.test` on the gate's TLS listener, user agent
/// `gateway-agent/2.1`; it keeps its connection alive between requests.
pub fn mtls_client(root_pem: &str, chain_and_key: &str, gate: &RunningGate) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(chain_and_key.as_bytes()).unwrap())
        .resolve("devices.test", gate.tls_addr.unwrap())
        .user_agent("gateway-agent/2.1")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Status of one `GET https://devices.test/telemetry`, or 0 when the TLS handshake was refused.
pub async fn mtls_call(c: &reqwest::Client, gate: &RunningGate) -> u16 {
    let port = gate.tls_addr.unwrap().port();
    match c
        .get(format!("https://devices.test:{port}/telemetry"))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Poll a rotation's evidence until `done` holds (or 10 s pass).
pub async fn evidence_until(
    store: &Store,
    r: &botgate::rotation::Rotation,
    done: impl Fn(&botgate::rotation::Evidence) -> bool,
) -> botgate::rotation::Evidence {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = botgate::rotation::workflow::collect_evidence(store, r).unwrap();
        if done(&ev) || Instant::now() > deadline {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A temp dir holding a state dir (`state/`) and a policy file path (`policy.toml`), and the
/// botgate binary run against them from that dir, as a user runs it.
pub struct CliEnv {
    pub dir: tempfile::TempDir,
}

impl CliEnv {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The state dir (`BOTGATE_STATE_DIR`).
    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// `botgate` with `BOTGATE_STATE_DIR` and `BOTGATE_CONFIG` set, run in the temp dir.
    pub fn botgate(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("botgate");
        cmd.env("BOTGATE_STATE_DIR", self.state())
            .env("BOTGATE_CONFIG", self.path("policy.toml"))
            .current_dir(self.dir.path());
        cmd
    }

    /// Run `botgate ARGS`: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.botgate().args(args).output().expect("run botgate");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run `botgate ARGS --json`, expect success, parse stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.run(&all);
        assert_eq!(code, 0, "{all:?}\nstdout:\n{out}\nstderr:\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{all:?}: not JSON ({e}):\n{out}"))
    }
}

/// Run a shell command line as written (e.g. an openssl command from the README) in `dir`;
/// panics with its stderr when it fails.
pub fn sh(dir: &std::path::Path, line: &str) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .output()
        .expect("sh and openssl are installed (.ci/run installs openssl)");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `botgate serve` on `state` and `config`, stdout dropped and stderr appended to `log`:
/// callers add what they need (`current_dir`, env) and spawn it.
pub fn serve_command(
    state: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("botgate"));
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("serve log");
    cmd.arg("serve")
        .env("BOTGATE_STATE_DIR", state)
        .env("BOTGATE_CONFIG", config)
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    cmd
}

/// `botgate token create NAME --json` on `state` and `config`: (Client ID, Client Secret).
pub fn cli_token(
    state: &std::path::Path,
    config: &std::path::Path,
    name: &str,
) -> (String, String) {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("botgate"))
        .args(["token", "create", name, "--json"])
        .env("BOTGATE_STATE_DIR", state)
        .env("BOTGATE_CONFIG", config)
        .output()
        .expect("run botgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token JSON");
    let field = |k: &str| created[k].as_str().expect(k).to_string();
    (field("client_id"), field("client_secret"))
}

/// Run the openssl CLI with `args` in `dir`; panics with its stderr on failure, returns stdout.
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
