//! The HTTPS listener with client certificates made by the `openssl` CLI, called with `curl`
//! and reqwest: CN policies, untrusted CAs, optional client certs, tokens over HTTPS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use botgate::gate::tls::{TlsMaterial, TlsSource};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const POLICY: &str = r#"
[gate]
tls_listen = "127.0.0.1:0"

[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "{upstream}"
trusted_cas = ["Corporate Device CA"]

[[app.policy]]
name = "Factory devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }]

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA made exactly as a user would with openssl (EC keys keep the test fast).
fn make_ca(dir: &Path, name: &str, file: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-sha256",
            "-days",
            "30",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{file}.key"),
            "-out",
            &format!("{file}.crt"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf signed by `ca` with the given subject and extensions.
fn make_leaf(dir: &Path, ca: &str, file: &str, subj: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{file}.key"),
            "-out",
            &format!("{file}.csr"),
            "-subj",
            subj,
        ],
    );
    std::fs::write(dir.join(format!("{file}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "10",
            "-in",
            &format!("{file}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{file}.crt"),
            "-extfile",
            &format!("{file}.ext"),
        ],
    );
}

#[derive(Debug)]
struct Files(PathBuf);

impl TlsSource for Files {
    fn material(&self) -> Result<TlsMaterial, String> {
        let certs = |f: &str| {
            CertificateDer::pem_file_iter(self.0.join(f))
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        };
        let mut m = TlsMaterial {
            server_chain: certs("server.crt")?,
            server_key: Some(
                PrivateKeyDer::from_pem_file(self.0.join("server.key"))
                    .map_err(|e| e.to_string())?,
            ),
            ..Default::default()
        };
        m.trust
            .trusted
            .insert("Corporate Device CA".into(), certs("ca.crt")?);
        Ok(m)
    }
}

struct Pki {
    dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "Corporate Device CA", "ca");
    make_ca(d, "Someone Else CA", "other");
    make_leaf(
        d,
        "ca",
        "server",
        "/CN=devices.test",
        "subjectAltName=DNS:devices.test\nextendedKeyUsage=serverAuth\n",
    );
    let client_ext = "extendedKeyUsage=clientAuth\n";
    make_leaf(
        d,
        "ca",
        "device",
        "/CN=device-a1.factory.corp/O=Example Corp/C=SG",
        client_ext,
    );
    make_leaf(
        d,
        "ca",
        "evil",
        "/CN=device-a1.factory.corp.evil",
        client_ext,
    );
    make_leaf(
        d,
        "other",
        "stranger",
        "/CN=device-a2.factory.corp",
        client_ext,
    );
    Pki { dir }
}

fn curl(p: &Pki, port: u16, cert: Option<&str>, extra: &[&str]) -> (String, String) {
    let d = p.dir.path();
    let mut c = Command::new("curl");
    c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(d.join("ca.crt"));
    c.args(["--resolve", &format!("devices.test:{port}:127.0.0.1")]);
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(d.join(format!("{name}.crt")))
            .arg("--key")
            .arg(d.join(format!("{name}.key")));
    }
    c.args(extra)
        .arg(format!("https://devices.test:{port}/status"));
    let out = c.output().expect("curl is installed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_openssl_through_curl() {
    let p = pki();
    let mut tok = None;
    let g = start_gate_with(
        POLICY,
        |s| {
            tok = Some(create_token(
                s,
                "ci-deploy-prod",
                chrono::Duration::days(30),
            ))
        },
        |o| {
            o.tls_listen = Some("127.0.0.1:0".parse().unwrap());
            o.tls = Some(Arc::new(Files(p.dir.path().to_path_buf())));
        },
    )
    .await;
    let tok = tok.unwrap();
    let port = g.gate.tls_addr.unwrap().port();

    assert_eq!(
        curl(&p, port, Some("device"), &[]).0,
        "200",
        "matching CN admitted"
    );
    assert_eq!(
        curl(&p, port, Some("evil"), &[]).0,
        "403",
        "CN with a suffix refused (full match)"
    );
    assert_eq!(
        curl(&p, port, None, &[]).0,
        "401",
        "no certificate on a non_identity app"
    );
    let (code, err) = curl(&p, port, Some("stranger"), &[]);
    assert_eq!(
        code, "401",
        "untrusted CA refused with a readable 401: {err}"
    );
    let id = format!("CF-Access-Client-Id: {}", tok.client_id);
    let secret = format!("CF-Access-Client-Secret: {}", tok.secret);
    assert_eq!(
        curl(&p, port, None, &["-H", &id, "-H", &secret]).0,
        "200",
        "a token still works over HTTPS"
    );

    let events = g.wait_for_access_events(5).await;
    let ok = &events[0];
    assert_eq!(ok["connection_method"], "mtls");
    assert_eq!(ok["cert_common_name"], "device-a1.factory.corp");
    assert_eq!(ok["cert_issuer"], "Corporate Device CA");
    assert_eq!(ok["policy_name"], "Factory devices");
    assert_eq!(ok["cert_fingerprint_sha256"].as_str().unwrap().len(), 64);
    assert!(ok["cert_serial"].as_str().is_some_and(|s| !s.is_empty()));
    let refused = events
        .iter()
        .find(|e| e["deny_reason"] == "cert_untrusted")
        .expect("untrusted certificate refusal audited");
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["ip_address"], "127.0.0.1");
    assert_eq!(refused["app_name"], "devices");
    // The refused certificate is named, so an alert can say which client it was.
    assert_eq!(refused["cert_common_name"], "device-a2.factory.corp");
    assert_eq!(
        refused["cert_fingerprint_sha256"].as_str().unwrap().len(),
        64
    );
}

#[tokio::test]
async fn upstream_sees_certificate_headers() {
    let p = pki();
    let g = start_gate_with(
        POLICY,
        |_| {},
        |o| {
            o.tls_listen = Some("127.0.0.1:0".parse().unwrap());
            o.tls = Some(Arc::new(Files(p.dir.path().to_path_buf())));
        },
    )
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let d = p.dir.path();
    let mut pem = std::fs::read(d.join("device.crt")).unwrap();
    pem.extend(std::fs::read(d.join("device.key")).unwrap());
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.crt")).unwrap()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .resolve("devices.test", g.gate.tls_addr.unwrap())
        .build()
        .unwrap();
    let port = g.gate.tls_addr.unwrap().port();
    let resp = client
        .get(format!("https://devices.test:{port}/x"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-botgate-identity"], "cert:device-a1.factory.corp");
    assert_eq!(h["x-botgate-connection"], "mtls");
    assert_eq!(h["x-botgate-cert-sha256"].as_str().unwrap().len(), 64);
    assert!(
        h["x-botgate-cert-subject"]
            .as_str()
            .unwrap()
            .contains("O=Example Corp")
    );
    assert_eq!(h["x-forwarded-proto"], "https");
}

/// Regression: a certificate botgate did not issue (made with openssl) could not be revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_openssl_cert_file_denies_it_at_the_running_gate_within_a_second() {
    let p = pki();
    let g = start_gate_with(
        POLICY,
        |_| {},
        |o| {
            o.tls_listen = Some("127.0.0.1:0".parse().unwrap());
            o.tls = Some(Arc::new(Files(p.dir.path().to_path_buf())));
        },
    )
    .await;
    let port = g.gate.tls_addr.unwrap().port();
    assert_eq!(curl(&p, port, Some("device"), &[]).0, "200");
    let out = Command::new(assert_cmd::cargo::cargo_bin("botgate"))
        .args(["cert", "revoke"])
        .arg(p.dir.path().join("device.crt"))
        .env("BOTGATE_STATE_DIR", g.dir.path())
        .env("BOTGATE_CONFIG", g.dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = std::time::Instant::now();
    let refused = eventually(Duration::from_secs(1), || async {
        curl(&p, port, Some("device"), &[]).0 == "401"
    })
    .await;
    assert!(
        refused,
        "still admitted {:?} after revoke",
        started.elapsed()
    );
    let logged = eventually(Duration::from_secs(2), || async {
        g.audit_lines()
            .iter()
            .any(|e| e["deny_reason"] == "cert_revoked")
    })
    .await;
    assert!(logged);
}

/// `[inventory] watch`: a certificate file dropped into a watched directory reaches the
/// inventory while the gate runs (notify), without any `cert` command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_directory_changes_reach_the_inventory() {
    let p = pki();
    let g = start_gate_with(POLICY, |_| {}, |o| o.tls_listen = None).await;
    let watched = g.dir.path().join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    let mut opts =
        botgate::services::ServiceOptions::from_file(&botgate::config::PolicyFile::default())
            .unwrap();
    opts.inventory_dirs = vec![watched.clone()];
    let clock: botgate::clock::SharedClock = Arc::new(botgate::clock::SystemClock);
    let services = botgate::services::start(
        opts,
        &g.gate,
        &g.bus,
        &common::hub(&g.store),
        clock,
        g.dir.path(),
    )
    .unwrap();
    std::fs::copy(p.dir.path().join("device.crt"), watched.join("device.crt")).unwrap();
    let store = g.store.clone();
    let seen = eventually(Duration::from_secs(5), || {
        let store = store.clone();
        async move {
            botgate::store::wait(store.list_certs())
                .unwrap()
                .iter()
                .any(|c| c.common_name == "device-a1.factory.corp")
        }
    })
    .await;
    services.stop().await;
    assert!(seen, "the watched certificate never reached the inventory");
}

/// An expired client certificate (issued by botgate's own CA, dated in the past) gets 401 and
/// is audited as `cert_expired`; a current one from the same CA is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_client_certificate_is_refused_and_audited() {
    use botgate::pki::{CaInitOptions, ClientCertRequest, KeyAlgorithm};
    let policy = POLICY.replace("Corporate Device CA", "botgate Root CA");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(botgate::store::Store::open(dir.path()).unwrap());
    let now = chrono::Utc::now();
    let init = CaInitOptions {
        name: "botgate Root CA".into(),
        key: KeyAlgorithm::EcdsaP256,
        root_key_out: None,
        now,
    };
    let ca = botgate::pki::init_ca(&store, &init).unwrap();
    let issue = |cn: &str, at: chrono::DateTime<chrono::Utc>| {
        let req = ClientCertRequest {
            common_name: cn,
            csr: None,
            days: 1,
            key: KeyAlgorithm::EcdsaP256,
            now: at,
        };
        botgate::pki::issue_client_cert(&store, &req).unwrap()
    };
    let old = issue("device-old.factory.corp", now - chrono::Duration::days(30));
    let fresh = issue("device-new.factory.corp", now);
    let source = botgate::gate::store_tls::StoreTlsSource::new(
        store.clone(),
        None,
        &["devices.test".to_string()],
    )
    .unwrap();
    let file: botgate::config::PolicyFile =
        toml::from_str(&policy.replace("{upstream}", &format!("http://{}", echo_upstream().await)))
            .unwrap();
    let mut opts = botgate::gate::GateOptions::from_file(&file, dir.path()).unwrap();
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    opts.tls = Some(Arc::new(source));
    let audit_log = opts.audit_log.clone();
    let gate = botgate::gate::start(
        opts,
        botgate::policy::compile(&file).unwrap(),
        common::hub(&store),
        botgate::audit::AuditBus::default(),
        Arc::new(botgate::clock::SystemClock),
        None,
    )
    .await
    .unwrap();
    let port = gate.tls_addr.unwrap().port();
    let d = dir.path();
    std::fs::write(d.join("root.crt"), &ca.root.cert_pem).unwrap();
    let call = |issued: &botgate::pki::IssuedCert, name: &str| {
        std::fs::write(d.join(format!("{name}.crt")), &issued.chain_pem).unwrap();
        std::fs::write(
            d.join(format!("{name}.key")),
            issued.key_pem.as_deref().unwrap(),
        )
        .unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--resolve",
                &format!("devices.test:{port}:127.0.0.1"),
            ])
            .arg("--cacert")
            .arg(d.join("root.crt"))
            .arg("--cert")
            .arg(d.join(format!("{name}.crt")))
            .arg("--key")
            .arg(d.join(format!("{name}.key")))
            .arg(format!("https://devices.test:{port}/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(call(&fresh, "fresh"), "200");
    assert_eq!(
        call(&old, "old"),
        "401",
        "expired certificate refused with a readable 401"
    );
    let logged = eventually(Duration::from_secs(3), || async {
        std::fs::read_to_string(&audit_log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("\"deny_reason\":\"cert_expired\"")
                    && l.contains("\"cert_common_name\":\"device-old.factory.corp\"")
            })
    })
    .await;
    assert!(logged, "the expired-certificate refusal is audited");
    gate.shutdown().await;
}
