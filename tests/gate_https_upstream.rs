//! `https://` upstreams end to end: a real TLS upstream (tokio-rustls, certificates from a CA
//! made in the test), the gate in front of it with a service token, a real HTTP client, and the
//! audit log. Trust by `upstream_ca`, the system roots refusing a private CA, the name checked
//! (`upstream_server_name`), origin mTLS, keep-alive over one TLS connection, reloads, and
//! `policy check` pointing at an unreadable file; and an `openssl s_server` upstream with an
//! openssl-made CA (a TLS stack and a PKI that are not ours).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA made for the test, and the certificates it signs.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(cn: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    fn issue(&self, cn: &str, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What the TLS upstream saw.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    accepted: AtomicUsize,
    /// TLS handshakes completed.
    handshakes: AtomicUsize,
    /// TLS handshakes that failed (the client refused the certificate, or showed none).
    refused: AtomicUsize,
    /// SNI of each completed handshake ("-" without one).
    sni: Mutex<Vec<String>>,
}

/// Start a TLS upstream on 127.0.0.1:0 with a certificate for `upstream.test` and 127.0.0.1 from
/// `ca`, answering 200 with JSON `{path, host, client_cert}` (client_cert: whether the client
/// showed one). With `client_ca`, it requires a client certificate from that CA.
async fn tls_upstream(ca: &TestCa, client_ca: Option<&TestCa>) -> (SocketAddr, Arc<Seen>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = ca.issue("upstream", &["upstream.test", "127.0.0.1"]);
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(client_ca.pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let conn = tls.get_ref().1;
                let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
                let sni = conn.server_name().unwrap_or("-").to_string();
                s.sni.lock().unwrap().push(sni);
                s.handshakes.fetch_add(1, Ordering::SeqCst);
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    let body = serde_json::json!({
                        "path": req.uri().to_string(),
                        "host": host,
                        "client_cert": client_cert,
                    });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// One `[[app]]` for `host` in front of `upstream`, with extra `settings` lines, admitting the
/// token `ci-deploy-prod`.
fn app(name: &str, upstream: SocketAddr, settings: &str) -> String {
    format!(
        r#"
[[app]]
name = "{name}"
hostnames = ["{name}.test"]
upstream = "https://{upstream}"
{settings}

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]
"#
    )
}

/// A gate on `policy`, with the token `ci-deploy-prod`.
async fn gate(policy: &str) -> (TestGate, TestToken) {
    let mut tok = None;
    let g = start_gate(policy, |s| {
        tok = Some(create_token(
            s,
            "ci-deploy-prod",
            chrono::Duration::days(30),
        ))
    })
    .await;
    (g, tok.unwrap())
}

/// `GET /deploy?x=1` to the app of `name` through the gate: (status, body as JSON or null).
async fn call(
    c: &reqwest::Client,
    g: &TestGate,
    tok: &TestToken,
    name: &str,
) -> (u16, serde_json::Value) {
    let resp = c
        .get(g.url("/deploy?x=1"))
        .header("host", format!("{name}.test"))
        .header("CF-Access-Client-Id", &tok.client_id)
        .header("CF-Access-Client-Secret", &tok.secret)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// The last access event for `app`, once the log holds at least `n` access events.
async fn last_event(g: &TestGate, n: usize, app: &str) -> serde_json::Value {
    g.wait_for_access_events(n)
        .await
        .into_iter()
        .rev()
        .find(|e| e["app_name"] == app)
        .unwrap_or_else(|| panic!("no access event for {app}"))
}

#[tokio::test]
async fn private_ca_upstream_is_trusted_with_upstream_ca_and_refused_by_the_system_roots() {
    let ca = TestCa::new("Upstream Test CA");
    let (addr, seen) = tls_upstream(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let policy = app(
        "trusted",
        addr,
        &format!("upstream_ca = {:?}", ca_file.display().to_string()),
    ) + &app("system", addr, "");
    let (g, tok) = gate(&policy).await;
    let c = client();

    let (status, body) = call(&c, &g, &tok, "trusted").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/deploy?x=1");
    assert_eq!(body["host"], "trusted.test");
    let ev = last_event(&g, 1, "trusted").await;
    assert_eq!(ev["status"], 200);
    assert_eq!(ev["allowed"], true);

    // The same upstream, verified against the system roots: its private CA is not among them.
    let (status, body) = call(&c, &g, &tok, "system").await;
    assert_eq!(status, 502);
    assert_eq!(body["status"], 502);
    let ev = last_event(&g, 2, "system").await;
    assert_eq!(ev["deny_reason"], "upstream_tls_error");
    assert_eq!(ev["decision"], "error");
    let cause = ev["details"]["upstream_tls_error"].as_str().unwrap();
    assert_eq!(cause, "invalid peer certificate: UnknownIssuer");

    // The profiles do not mix: the trusted app still answers on the same client connection.
    assert_eq!(call(&c, &g, &tok, "trusted").await.0, 200);

    // Through the pool (HTTP/2 downstream) the refusal is the same.
    let h2 = h2_client(&g, "system");
    let resp = h2
        .get(format!("http://system.test:{}/deploy", g.gate.addr.port()))
        .header("CF-Access-Client-Id", &tok.client_id)
        .header("CF-Access-Client-Secret", &tok.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let ev = last_event(&g, 4, "system").await;
    assert_eq!(ev["deny_reason"], "upstream_tls_error");
    assert_eq!(
        ev["details"]["upstream_tls_error"],
        "invalid peer certificate: UnknownIssuer"
    );
    // Both of the system app's attempts (sticky, pool) ended in the handshake (the upstream
    // learns of the second one when the gate's alert arrives: poll).
    let refused = || async { seen.refused.load(Ordering::SeqCst) == 2 };
    assert!(eventually(std::time::Duration::from_secs(5), refused).await);
}

/// An HTTP/2 (prior knowledge) client that reaches the gate as `{name}.test`: its streams go
/// through the upstream pool, not the sticky connection. (HTTP/2 carries the host in
/// `:authority`, so the URL names the app.)
fn h2_client(g: &TestGate, name: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .resolve(&format!("{name}.test"), g.gate.addr)
        .build()
        .unwrap()
}

#[tokio::test]
async fn upstream_server_name_is_the_name_sent_and_verified() {
    let ca = TestCa::new("Upstream Test CA");
    let (addr, seen) = tls_upstream(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_line = format!(
        "upstream_ca = {:?}",
        write(dir.path(), "ca.pem", &ca.pem).display().to_string()
    );
    let policy = app(
        "right",
        addr,
        &format!("{ca_line}\nupstream_server_name = \"upstream.test\""),
    ) + &app(
        "wrong",
        addr,
        &format!("{ca_line}\nupstream_server_name = \"wrong.test\""),
    );
    let (g, tok) = gate(&policy).await;
    let c = client();

    let (status, body) = call(&c, &g, &tok, "right").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen.sni.lock().unwrap().as_slice(),
        ["upstream.test"],
        "the override is the SNI"
    );

    let (status, _) = call(&c, &g, &tok, "wrong").await;
    assert_eq!(status, 502);
    let ev = last_event(&g, 2, "wrong").await;
    assert_eq!(ev["deny_reason"], "upstream_tls_error");
    let cause = ev["details"]["upstream_tls_error"].as_str().unwrap();
    assert!(
        cause
            .starts_with("invalid peer certificate: certificate not valid for name \"wrong.test\""),
        "{cause}"
    );
}

#[tokio::test]
async fn origin_mtls_presents_the_client_certificate_and_fails_without_it() {
    let ca = TestCa::new("Upstream Test CA");
    let clients = TestCa::new("Upstream Client CA");
    let (addr, seen) = tls_upstream(&ca, Some(&clients)).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = clients.issue("botgate-gate", &["gate.test"]);
    let ca_line = format!(
        "upstream_ca = {:?}",
        write(dir.path(), "ca.pem", &ca.pem).display().to_string()
    );
    let with_cert = format!(
        "{ca_line}\nupstream_client_cert = {:?}\nupstream_client_key = {:?}",
        write(dir.path(), "gate.pem", &cert).display().to_string(),
        write(dir.path(), "gate.key", &key).display().to_string(),
    );
    let policy = app("mtls", addr, &with_cert) + &app("nocert", addr, &ca_line);
    let (g, tok) = gate(&policy).await;
    let c = client();

    let (status, body) = call(&c, &g, &tok, "mtls").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_cert"], true);

    let (status, _) = call(&c, &g, &tok, "nocert").await;
    assert_eq!(status, 502);
    let ev = last_event(&g, 2, "nocert").await;
    assert_eq!(ev["deny_reason"], "upstream_tls_error");
    let cause = ev["details"]["upstream_tls_error"].as_str().unwrap();
    assert!(cause.contains("CertificateRequired"), "{cause}");
    assert_eq!(
        seen.handshakes.load(Ordering::SeqCst),
        1,
        "only the mTLS app got in"
    );
}

#[tokio::test]
async fn keep_alive_requests_share_one_upstream_tls_connection() {
    let ca = TestCa::new("Upstream Test CA");
    let (addr, seen) = tls_upstream(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_line = format!(
        "upstream_ca = {:?}",
        write(dir.path(), "ca.pem", &ca.pem).display().to_string()
    );
    let (g, tok) = gate(&app("api", addr, &ca_line)).await;

    // HTTP/1.1 downstream, kept alive: the sticky upstream connection.
    let c = client();
    for _ in 0..5 {
        assert_eq!(call(&c, &g, &tok, "api").await.0, 200);
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 1);

    // HTTP/2 downstream streams go through the profile's pool: one more connection, reused.
    let h2 = h2_client(&g, "api");
    let url = format!("http://api.test:{}/deploy", g.gate.addr.port());
    for _ in 0..5 {
        let resp = h2
            .get(&url)
            .header("CF-Access-Client-Id", &tok.client_id)
            .header("CF-Access-Client-Secret", &tok.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reload_applies_the_new_upstream_tls_settings() {
    let ca = TestCa::new("Upstream Test CA");
    let (addr, _) = tls_upstream(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_line = format!(
        "upstream_ca = {:?}",
        write(dir.path(), "ca.pem", &ca.pem).display().to_string()
    );
    let without = app("api", addr, "");
    let with = app("api", addr, &ca_line);
    let (g, tok) = gate(&without).await;
    let c = client();
    let compile = |text: &str| {
        let file: botgate::config::PolicyFile = toml::from_str(text).unwrap();
        botgate::policy::compile(&file).unwrap()
    };

    assert_eq!(call(&c, &g, &tok, "api").await.0, 502);
    g.gate.reload_policies(compile(&with)).unwrap();
    assert_eq!(call(&c, &g, &tok, "api").await.0, 200);
    // Back to the system roots: the kept-alive connection trusted under the old settings is
    // not used for the new ones.
    g.gate.reload_policies(compile(&without)).unwrap();
    assert_eq!(call(&c, &g, &tok, "api").await.0, 502);
    let ev = last_event(&g, 3, "api").await;
    assert_eq!(ev["deny_reason"], "upstream_tls_error");
}

#[test]
fn policy_check_names_the_line_of_an_unreadable_upstream_ca() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = r#"[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "https://127.0.0.1:8443"
upstream_ca = "missing-ca.pem"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;
    std::fs::write(&policy, text).unwrap();
    let out = assert_cmd::Command::cargo_bin("botgate")
        .unwrap()
        .env_remove("BOTGATE_STATE_DIR")
        .env_remove("BOTGATE_CONFIG")
        .arg("--state-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&policy)
        .args(["policy", "check"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Line 5, column 15: the value of upstream_ca; the relative path is beside the policy file.
    let expected = format!(
        "{}:5:15: error: app \"api\", upstream_ca: upstream_ca {}: cannot read it",
        policy.display(),
        dir.path().join("missing-ca.pem").display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
}

/// `openssl s_server -www` on a free port in `dir`, requiring a client certificate from
/// `client_ca` when given; killed on drop.
struct OpensslServer(std::process::Child, SocketAddr);

impl OpensslServer {
    fn start(dir: &Path, client_ca: Option<&str>) -> Self {
        let port = closed_port();
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "server.crt", "-key", "server.key"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(ca) = client_ca {
            cmd.args(["-Verify", "1", "-verify_return_error", "-CAfile", ca]);
        }
        let child = cmd
            .spawn()
            .expect("openssl is installed (.ci/run installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self(child, addr)
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Interoperability with a TLS stack botgate does not use: the CA, the upstream's certificate
/// and the gate's client certificate all made by the openssl CLI, the upstream `openssl
/// s_server` (which verifies the gate's certificate itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openssl_upstream_with_an_openssl_made_ca_is_trusted_and_verifies_the_gates_certificate()
{
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for line in [
        "openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt -days 30 -subj \"/CN=Origin CA\"",
        "openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj \"/CN=origin.test\" -addext \"subjectAltName=DNS:origin.test\"",
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 -sha256 -copy_extensions copy",
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout gate.key -out gate.csr -subj \"/CN=botgate-gate\"",
        // The seed's signing command as written makes X.509 v1, which no TLS stack presents.
        "openssl x509 -req -in gate.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out gate-v1.crt -days 30 -sha256",
        "printf 'extendedKeyUsage=clientAuth\\n' > gate.ext",
        "openssl x509 -req -in gate.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out gate.crt -days 30 -sha256 -extfile gate.ext",
    ] {
        sh(d, line);
    }
    let server = OpensslServer::start(d, Some("ca.crt"));
    let path = |f: &str| d.join(f).display().to_string();
    let trusted = format!(
        "upstream_ca = {:?}\nupstream_server_name = \"origin.test\"",
        path("ca.crt")
    );
    let with_cert = format!(
        "{trusted}\nupstream_client_cert = {:?}\nupstream_client_key = {:?}",
        path("gate.crt"),
        path("gate.key")
    );
    let v1 = with_cert.replace("gate.crt", "gate-v1.crt");
    let file: botgate::config::PolicyFile = toml::from_str(&app("osslv1", server.1, &v1)).unwrap();
    let e = botgate::policy::compile(&file).unwrap_err().to_string();
    assert!(
        e.contains("X.509 v1") && e.contains("gate-v1.crt"),
        "a v1 client certificate is named as such: {e}"
    );
    let policy = app("osslmtls", server.1, &with_cert)
        + &app("osslnocert", server.1, &trusted)
        + &app(
            "osslroots",
            server.1,
            "upstream_server_name = \"origin.test\"",
        );
    let (g, tok) = gate(&policy).await;
    let c = client();

    // s_server -www answers with its status page: 200 through the gate.
    let resp = c
        .get(g.url("/"))
        .header("host", "osslmtls.test")
        .header("CF-Access-Client-Id", &tok.client_id)
        .header("CF-Access-Client-Secret", &tok.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("s_server"), "{page}");

    // Without the client certificate s_server refuses the handshake; without the CA the gate
    // refuses s_server's certificate.
    for (name, n, cause) in [
        ("osslnocert", 2, "alert"),
        ("osslroots", 3, "UnknownIssuer"),
    ] {
        let (status, _) = call(&c, &g, &tok, name).await;
        assert_eq!(status, 502, "{name}");
        let ev = last_event(&g, n, name).await;
        assert_eq!(ev["deny_reason"], "upstream_tls_error", "{name}: {ev}");
        let why = ev["details"]["upstream_tls_error"]
            .as_str()
            .unwrap_or_default();
        assert!(why.contains(cause), "{name}: {why}");
    }
}
