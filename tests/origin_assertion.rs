//! The origin assertion checked by code botgate did not write: PyJWT (`PyJWKClient`) and jose
//! (`createRemoteJWKSet`) fed only the gate's key-set URL, against a real `botgate serve`.
//! Tokens and the seed's openssl client certificate; a forged `Cf-Access-Jwt-Assertion` from the
//! client never reaches the upstream; a key rotation with publish-ahead never fails a verifier
//! that cached the key set, and the old key leaves the set after the overlap.
//!
//! The verifiers live in `tests/verifiers/` (PyJWT from PyPI, jose from npm); `.ci/run` installs
//! them, and this test installs what is missing.

mod common;
use common::closed_port as free_port;
use common::sh;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

fn verifiers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers")
}

/// PyJWT (with `cryptography`) and jose, installed if missing.
fn ensure_verifiers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let has_pyjwt = Command::new("python3")
            .args(["-c", "import jwt, cryptography"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_pyjwt {
            let ok = Command::new("python3")
                .args(["-m", "pip", "install", "-q", "pyjwt[crypto]"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot install PyJWT: run `pip install 'pyjwt[crypto]'`"
            );
        }
        if !verifiers_dir().join("node_modules/jose").exists() {
            let ok = Command::new("npm")
                .args(["ci", "--silent", "--prefix"])
                .arg(verifiers_dir())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot install jose: run `npm ci --prefix tests/verifiers`"
            );
        }
    });
}

/// A running verifier: one process, one key-set cache, assertions fed one at a time.
struct Verifier {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Verifier {
    /// `python3 verify.py` or `node verify.mjs` for the key set at `certs`.
    fn start(kind: &str, certs: &str, issuer: &str, audience: &str) -> Self {
        Self::start_with(kind, certs, issuer, audience, &[])
    }

    fn start_with(
        kind: &str,
        certs: &str,
        issuer: &str,
        audience: &str,
        env: &[(&str, &str)],
    ) -> Self {
        ensure_verifiers();
        let mut cmd = match kind {
            "pyjwt" => {
                let mut c = Command::new("python3");
                c.arg(verifiers_dir().join("verify.py"));
                c
            }
            _ => {
                let mut c = Command::new("node");
                c.arg(verifiers_dir().join("verify.mjs"));
                c
            }
        };
        let mut child = cmd
            .args([certs, issuer, audience])
            .envs(env.iter().copied())
            .current_dir(verifiers_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {kind} verifier: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Verify one assertion: `Ok((kid, claims))` or `Err(what the library said)`.
    fn check(&mut self, token: &str) -> Result<(String, serde_json::Value), String> {
        let stdin = self.stdin.as_mut().expect("verifier running");
        writeln!(stdin, "{token}").unwrap();
        stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the verifier answers");
        match line.split_once(' ') {
            Some(("ok", rest)) => {
                let (kid, claims) = rest.split_once(' ').unwrap();
                Ok((kid.to_string(), serde_json::from_str(claims).unwrap()))
            }
            _ => Err(line),
        }
    }

    /// Stop it; what it wrote on stderr (PyJWT's key-set fetch count).
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// One verification in a fresh verifier (nothing cached).
fn verify_fresh(
    kind: &str,
    certs: &str,
    issuer: &str,
    aud: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let mut v = Verifier::start(kind, certs, issuer, aud);
    let out = v.check(token).map(|(_, claims)| claims);
    v.finish();
    out
}

struct Gate {
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    port: u16,
    serve: Child,
}

impl Gate {
    fn botgate(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(cargo_bin("botgate"))
            .args(args)
            .current_dir(self.dir.path())
            .env("BOTGATE_STATE_DIR", &self.state)
            .env("BOTGATE_CONFIG", &self.config)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn certs_url(&self) -> String {
        format!("http://127.0.0.1:{}/cdn-cgi/access/certs", self.port)
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The app's audience tag, as `policy explain --json` reports it.
    fn aud(&self, host: &str) -> String {
        let (_, out, err) = self.botgate(&[
            "policy",
            "explain",
            "--app",
            host,
            "--token",
            "ci-deploy-prod",
            "--json",
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        v["assertion_aud"]
            .as_str()
            .expect("assertion_aud")
            .to_string()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// Write `policy` (with `{listen}` and `{upstream}`), run `setup` in the dir, start `serve` and
/// wait for its key set.
async fn start(policy: &str, setup: impl FnOnce(&Path, &Path, &Path)) -> Gate {
    let upstream = common::echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), dir.path().join("policy.toml"));
    let port = free_port();
    std::fs::write(
        &config,
        policy
            .replace("{listen}", &format!("127.0.0.1:{port}"))
            .replace("{upstream}", &format!("http://{upstream}")),
    )
    .unwrap();
    setup(dir.path(), &state, &config);
    let serve = common::serve_command(&state, &config, &dir.path().join("serve.log"))
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let gate = Gate {
        dir,
        state,
        config,
        port,
        serve,
    };
    let c = common::client();
    let url = gate.certs_url();
    let up = common::eventually(Duration::from_secs(20), || {
        let (c, url) = (c.clone(), url.clone());
        async move { c.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let log = std::fs::read_to_string(gate.dir.path().join("serve.log")).unwrap_or_default();
    assert!(up, "botgate serve did not start: {log}");
    gate
}

/// What the echo upstream received: (status, the request headers as JSON).
async fn through(
    c: &reqwest::Client,
    gate: &Gate,
    host: &str,
    token: &(String, String),
    forged: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = c
        .get(format!("http://127.0.0.1:{}/deploy", gate.port))
        .header("host", host)
        .header("cf-access-client-id", &token.0)
        .header("cf-access-client-secret", &token.1);
    if let Some(f) = forged {
        req = req.header("cf-access-jwt-assertion", f);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["headers"].clone())
}

fn assertion_of(headers: &serde_json::Value) -> String {
    headers["cf-access-jwt-assertion"]
        .as_str()
        .unwrap_or_else(|| panic!("no assertion reached the upstream: {headers}"))
        .to_string()
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

/// The README's verifier snippet for `lang` (```python or ```js under "Verifying requests at the
/// origin"), with its `ISSUER` and `AUD` set to this gate's, then a call on `token`: what it
/// prints (the claims as JSON), or its error.
fn readme_snippet(
    lang: &str,
    issuer: &str,
    aud: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    ensure_verifiers();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Verifying requests at the origin")
        .nth(1)
        .expect("README has the section");
    let code = section
        .split(&format!("```{lang}\n"))
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("README: no {lang} snippet"));
    let code: Vec<String> = code
        .lines()
        .map(|l| {
            let (py, js) = (
                l.starts_with("ISSUER = ") || l.starts_with("AUD = "),
                l.starts_with("const ISSUER = ") || l.starts_with("const AUD = "),
            );
            let value = if l.contains("ISSUER") { issuer } else { aud };
            let name = if l.contains("ISSUER =") {
                "ISSUER"
            } else {
                "AUD"
            };
            match (py, js) {
                (true, _) => format!("{name} = {value:?}"),
                (_, true) => format!("const {name} = {value:?};"),
                _ => l.to_string(),
            }
        })
        .collect();
    let (file, program, harness) = match lang {
        "python" => (
            format!("readme-{}.py", std::process::id()),
            "python3",
            format!(
                "import json, sys\nprint(json.dumps(identity({{\"Cf-Access-Jwt-Assertion\": {token:?}}})))\n"
            ),
        ),
        _ => (
            format!("readme-{}.mjs", std::process::id()),
            "node",
            format!(
                "console.log(JSON.stringify(await identity({{ \"cf-access-jwt-assertion\": {token:?} }})));\n"
            ),
        ),
    };
    let path = verifiers_dir().join(&file);
    std::fs::write(&path, format!("{}\n{harness}", code.join("\n"))).unwrap();
    let out = Command::new(program)
        .arg(&path)
        .current_dir(verifiers_dir())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

const SEED_CA: &str = "openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt -days 3650 -subj \"/CN=Corporate Device CA\"";
const SEED_CSR: &str = "openssl req -new -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj \"/CN=github-actions-bot\"";
const SEED_SIGN: &str = "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 365 -sha256";

// Multi-threaded: the test thread blocks on curl and the verifiers while the upstream serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_assertions_verify_with_pyjwt_and_jose_from_the_key_set_url_alone() {
    let tls_port = free_port();
    let policy = format!(
        r#"[gate]
listen = "{{listen}}"
tls_listen = "127.0.0.1:{tls_port}"
issuer = "https://gate.example.com"
audit_log = "audit.jsonl"

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "{{upstream}}"
trusted_cas = ["Corporate Device CA"]

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]

[[app.policy]]
name = "mTLS from Corporate CA"
action = "non_identity"
include = [{{ common_name = "github-actions-bot" }}]

[[app]]
name = "legacy.example.com"
hostnames = ["legacy.example.com"]
upstream = "{{upstream}}"
assertion = false

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]
"#
    );
    let mut token = (String::new(), String::new());
    let gate = start(&policy, |dir, state, config| {
        sh(dir, SEED_CA);
        sh(dir, SEED_CSR);
        sh(dir, SEED_SIGN);
        let out = Command::new(cargo_bin("botgate"))
            .args(["ca", "trust", "ca.crt", "--name", "Corporate Device CA"])
            .current_dir(dir)
            .env("BOTGATE_STATE_DIR", state)
            .env("BOTGATE_CONFIG", config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        token = common::cli_token(state, config, "ci-deploy-prod");
    })
    .await;
    let certs = gate.certs_url();
    let issuer = "https://gate.example.com";
    let aud = gate.aud("api.example.com");
    assert_eq!(aud.len(), 64, "a random 32-byte tag in hex: {aud}");
    assert_eq!(gate.aud("api.example.com"), aud, "stable across asks");
    let (_, check, _) = gate.botgate(&["policy", "check"]);
    assert!(
        check.contains(&format!("api.example.com: aud {aud}"))
            && check.contains("legacy.example.com: off (assertion = false)"),
        "policy check shows the audiences:\n{check}"
    );

    // A service token, with a forged assertion from the client: replaced, never forwarded.
    let c = common::client();
    let forged = "eyJhbGciOiJub25lIn0.eyJjb21tb25fbmFtZSI6ImFkbWluIn0.";
    let (status, headers) = through(&c, &gate, "api.example.com", &token, Some(forged)).await;
    assert_eq!(status, 200, "{headers}");
    let by_token = assertion_of(&headers);
    assert_ne!(by_token, forged);
    assert!(!headers.to_string().contains(forged), "{headers}");

    // The seed's openssl client certificate over mTLS, through curl.
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(gate.state.join("ca-root.crt"))
        .args(["--cert", "client.crt", "--key", "client.key", "--resolve"])
        .arg(format!("api.example.com:{tls_port}:127.0.0.1"))
        .arg(format!("https://api.example.com:{tls_port}/telemetry"))
        .args(["-H", &format!("Cf-Access-Jwt-Assertion: {forged}")])
        .current_dir(gate.dir.path())
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "curl: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let by_cert = assertion_of(&body["headers"]);
    let fingerprint = common::openssl(
        gate.dir.path(),
        &[
            "x509",
            "-in",
            "client.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fingerprint = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase();

    for kind in ["pyjwt", "jose"] {
        let claims = verify_fresh(kind, &certs, issuer, &aud, &by_token)
            .unwrap_or_else(|e| panic!("{kind} refused the token's assertion: {e}"));
        assert_eq!(claims["common_name"], token.0.as_str(), "{kind}: {claims}");
        assert_eq!(claims["aud"], serde_json::json!([aud]), "{kind}");
        assert_eq!(claims["iss"], issuer);
        assert_eq!(claims["type"], "app");
        assert_eq!(claims["sub"], "");
        assert_eq!(claims["policy"], "CI deployment");
        assert_eq!(claims["connection_method"], "service_token");
        assert!(claims["exp"].as_i64().unwrap() > unix_now(), "{claims}");
        assert!(claims["nbf"].as_i64().unwrap() <= unix_now());

        let claims = verify_fresh(kind, &certs, issuer, &aud, &by_cert)
            .unwrap_or_else(|e| panic!("{kind} refused the certificate's assertion: {e}"));
        assert_eq!(
            claims["common_name"], "github-actions-bot",
            "{kind}: {claims}"
        );
        assert_eq!(claims["cert_fingerprint_sha256"], fingerprint.as_str());
        assert_eq!(claims["policy"], "mTLS from Corporate CA");
        assert_eq!(claims["connection_method"], "mtls");

        // What an origin must refuse.
        let wrong_aud = verify_fresh(kind, &certs, issuer, &"0".repeat(64), &by_token);
        assert!(wrong_aud.is_err(), "{kind} took a wrong audience");
        let wrong_iss = verify_fresh(kind, &certs, "https://evil.example", &aud, &by_token);
        assert!(wrong_iss.is_err(), "{kind} took a wrong issuer");
        let mut parts: Vec<String> = by_token.split('.').map(str::to_string).collect();
        let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
        parts[1].pop();
        parts[1].push(flipped);
        let tampered = verify_fresh(kind, &certs, issuer, &aud, &parts.join("."));
        assert!(tampered.is_err(), "{kind} took a tampered payload");
        let forged_ok = verify_fresh(kind, &certs, issuer, &aud, forged);
        assert!(forged_ok.is_err(), "{kind} took alg none");
    }

    // get-identity answers what the assertion says; a bad one is 401.
    let identity: serde_json::Value = c
        .get(format!(
            "http://127.0.0.1:{}/cdn-cgi/access/get-identity",
            gate.port
        ))
        .header("cf-access-jwt-assertion", &by_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(identity["common_name"], token.0.as_str(), "{identity}");
    let bad = c
        .get(format!(
            "http://127.0.0.1:{}/cdn-cgi/access/get-identity",
            gate.port
        ))
        .header("cf-access-jwt-assertion", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // An app with `assertion = false` gets none, and never the client's.
    let (status, headers) = through(&c, &gate, "legacy.example.com", &token, Some(forged)).await;
    assert_eq!(status, 200);
    assert!(
        headers.get("cf-access-jwt-assertion").is_none(),
        "{headers}"
    );

    // No assertion in the audit log; key-set fetches are audited like any request.
    let audit = std::fs::read_to_string(gate.state.join("audit.jsonl")).unwrap();
    assert!(!audit.contains(&by_token[by_token.len() - 40..]));
    assert!(
        gate.audit()
            .iter()
            .any(|e| e["path"] == "/cdn-cgi/access/certs" && e["details"]["endpoint"] == "key_set")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_keeps_verifying_through_a_key_rotation_and_the_old_key_leaves_after_the_overlap()
 {
    let policy = r#"[gate]
listen = "{listen}"
audit_log = "audit.jsonl"
assertion_ttl = "20s"
assertion_key_overlap = "6s"

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "{upstream}"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;
    let mut token = (String::new(), String::new());
    let gate = start(policy, |_, state, config| {
        token = common::cli_token(state, config, "ci-deploy-prod");
    })
    .await;
    let (certs, aud) = (gate.certs_url(), gate.aud("api.example.com"));
    let issuer = format!("http://127.0.0.1:{}", gate.port);
    let c = common::client();
    let mut failures = Vec::new();
    let mut call = async || {
        let (status, headers) = through(&c, &gate, "api.example.com", &token, None).await;
        if status != 200 {
            failures.push(status);
        }
        assertion_of(&headers)
    };

    // One long-running origin that caches the key set for 2 s (PyJWT's default is 5 min, with
    // the 1 h default publish-ahead) and never refreshes early for an unknown kid: it can only
    // verify the new key if the key was published before it signed.
    let mut origin = Verifier::start_with(
        "pyjwt",
        &certs,
        &issuer,
        &aud,
        &[("VERIFIER_LIFESPAN", "2"), ("VERIFIER_COOLDOWN", "3600")],
    );
    let first = call().await;
    let old_kid = kid_of(&first);

    // The README's two verifiers, as written, against this gate.
    for lang in ["python", "js"] {
        let claims = readme_snippet(lang, &issuer, &aud, &first)
            .unwrap_or_else(|e| panic!("the README's {lang} verifier: {e}"));
        assert_eq!(claims["common_name"], token.0.as_str(), "{lang}: {claims}");
        let mut parts: Vec<&str> = first.split('.').collect();
        parts[2] = "AAAA";
        assert!(
            readme_snippet(lang, &issuer, &aud, &parts.join(".")).is_err(),
            "the README's {lang} verifier took a bad signature"
        );
        assert!(readme_snippet(lang, &issuer, &"0".repeat(64), &first).is_err());
    }
    assert_eq!(origin.check(&first).map(|(k, _)| k), Ok(old_kid.clone()));

    let (code, out, err) = gate.botgate(&[
        "keys",
        "rotate",
        "--publish-ahead",
        "4s",
        "--alg",
        "ES256",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let new_kid = serde_json::from_str::<serde_json::Value>(&out).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = gate.botgate(&["keys", "rotate"]);
    assert_eq!(code, 1, "a second rotation waits for the first: {err}");
    assert!(err.contains(&new_kid), "{err}");

    // Published ahead: still signed by the old key meanwhile, so nothing changes for anyone.
    let during = call().await;
    assert_eq!(kid_of(&during), old_kid);
    assert!(origin.check(&during).is_ok());
    // The gate publishes the new key as soon as it sees the store's change (one poll).
    let want = serde_json::json!([old_kid, new_kid]);
    let published = common::eventually(Duration::from_secs(2), || {
        let (c, certs, want) = (c.clone(), certs.clone(), want.clone());
        async move {
            let set: serde_json::Value = c.get(&certs).send().await.unwrap().json().await.unwrap();
            let kids: Vec<serde_json::Value> = set["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].clone())
                .collect();
            serde_json::Value::Array(kids) == want
        }
    })
    .await;
    assert!(published, "both keys published during the publish-ahead");

    // After the publish-ahead the new key signs; the cached origin verifies it and the old
    // assertions it still holds.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = call().await;
    while kid_of(&after) != new_kid && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = call().await;
    }
    assert_eq!(
        kid_of(&after),
        new_kid,
        "the new key signs after its publish-ahead"
    );
    assert_eq!(origin.check(&after).map(|(k, _)| k), Ok(new_kid.clone()));
    assert!(origin.check(&first).is_ok(), "the old key is still trusted");
    for kind in ["pyjwt", "jose"] {
        verify_fresh(kind, &certs, &issuer, &aud, &first)
            .unwrap_or_else(|e| panic!("{kind}, old key during the overlap: {e}"));
        verify_fresh(kind, &certs, &issuer, &aud, &after)
            .unwrap_or_else(|e| panic!("{kind}, new ES256 key: {e}"));
    }
    let (_, listed, _) = gate.botgate(&["keys", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["state"], "retiring", "{listed}");
    assert!(listed[0]["removes_at"].is_string());
    assert_eq!(listed[1]["state"], "active");

    // After the overlap the old key leaves the key set (the lease holder removes it).
    let gone = common::eventually(Duration::from_secs(25), || {
        let (c, certs, old) = (c.clone(), certs.clone(), old_kid.clone());
        async move {
            let set: serde_json::Value = c.get(&certs).send().await.unwrap().json().await.unwrap();
            !set.to_string().contains(&old)
        }
    })
    .await;
    assert!(gone, "the old key is removed after the overlap");
    assert!(
        verify_fresh("pyjwt", &certs, &issuer, &aud, &first).is_err(),
        "an assertion by a removed key no longer verifies"
    );
    let still = call().await;
    assert!(origin.check(&still).is_ok());
    let fetches = origin.finish();
    let fetches: usize = fetches
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("verifier stderr: {fetches}"));
    assert!(
        fetches >= 2,
        "the origin refreshed its cached key set on its own schedule ({fetches} fetches)"
    );
    assert!(failures.is_empty(), "requests failed: {failures:?}");

    // The admin journal reaches the audit log through the gate's relay (within a poll).
    let steps = || -> Vec<String> {
        gate.audit()
            .iter()
            .filter(|e| e["event"] == "admin")
            .filter_map(|e| e["decision"].as_str().map(str::to_string))
            .filter(|d| d.starts_with("signing_key_"))
            .collect()
    };
    common::eventually(Duration::from_secs(5), || {
        let n = steps().len();
        async move { n >= 5 }
    })
    .await;
    assert_eq!(
        steps(),
        [
            "signing_key_created",
            "signing_key_created",
            "signing_key_retiring",
            "signing_key_activated",
            "signing_key_removed"
        ],
        "one admin event per step"
    );
}
