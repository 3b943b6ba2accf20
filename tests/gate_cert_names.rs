//! Certificate names beyond the CN through a real gate over mTLS: a SPIFFE-ID certificate issued
//! with `botgate cert issue --san` is admitted by a `spiffe_id` policy and refused by another
//! trust domain; `forward_client_cert` hands the upstream the certificate (and a client's own
//! `Cf-Client-Cert-*` headers never get through); certificates only seen at the gate are listed
//! with their expiry, key type and SANs, and `cert show` finds every one `cert list` lists.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use botgate::store::Store;
use common::{eventually, mtls_client, start_gate};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

const DEPLOYER: &str = "spiffe://example.org/ns/prod/sa/deployer";

struct Env(common::CliEnv);

impl std::ops::Deref for Env {
    type Target = common::CliEnv;
    fn deref(&self) -> &common::CliEnv {
        &self.0
    }
}

impl Env {
    fn new() -> Self {
        let env = Self(common::CliEnv::new());
        env.ok(&["ca", "init", "--name", "Workload CA"]);
        env
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self
            .botgate()
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout).unwrap()
    }
    /// The local root certificate (what clients trust for the gate's server certificate).
    fn root_pem(&self) -> String {
        let cas = self.json(&["ca", "list"]);
        cas.as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "root")
            .unwrap()["cert_pem"]
            .as_str()
            .unwrap()
            .to_string()
    }
    /// `cert issue --cn CN --san SAN` into DIR/CN/; returns (chain + key PEM, leaf fingerprint).
    fn issue(&self, cn: &str, san: &str) -> (String, String) {
        let out = self.path(cn);
        std::fs::create_dir(&out).unwrap();
        let issued = self.json(&[
            "cert",
            "issue",
            "--cn",
            cn,
            "--san",
            san,
            "--out",
            out.to_str().unwrap(),
        ]);
        let mut pem = std::fs::read_to_string(issued["cert_file"].as_str().unwrap()).unwrap();
        pem.push_str(&std::fs::read_to_string(issued["key_file"].as_str().unwrap()).unwrap());
        (
            pem,
            issued["fingerprint_sha256"].as_str().unwrap().to_string(),
        )
    }
}

fn policy(prefix: &str) -> String {
    format!(
        r#"
[gate]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"

[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "{{upstream}}"
trusted_cas = ["Workload CA", "External CA"]
forward_client_cert = true

[[app.policy]]
name = "prod workloads"
action = "non_identity"
include = [{{ spiffe_id = {{ prefix = "{prefix}" }} }}]
"#
    )
}

async fn start(env: &Env, text: &str) -> (botgate::gate::RunningGate, Arc<Store>, PathBuf) {
    let upstream = common::echo_upstream().await;
    let text = text.replace("{upstream}", &format!("http://{upstream}"));
    let store = Arc::new(Store::open(&env.state()).unwrap());
    let gate = common::start_store_tls_gate(env.dir.path(), store.clone(), &text).await;
    (gate, store, env.path("audit.jsonl"))
}

async fn get(c: &reqwest::Client, gate: &botgate::gate::RunningGate) -> (u16, serde_json::Value) {
    let port = gate.tls_addr.unwrap().port();
    let resp = c
        .get(format!("https://devices.test:{port}/deploy"))
        .header("Cf-Client-Cert-Sha256", "forged")
        .header("Cf-Client-Cert-Der-Base64", "Zm9yZ2Vk")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn audit(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "access")
        .collect()
}

/// The base64 body of the first PEM block: exactly the DER in standard base64.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_id_certificate_is_admitted_and_another_trust_domain_is_refused() {
    let env = Env::new();
    let (deployer, deployer_fp) = env.issue("deployer", DEPLOYER);
    let (other, _) = env.issue("other-deployer", "spiffe://other.org/ns/prod/sa/deployer");
    let (gate, _store, audit_log) = start(&env, &policy("spiffe://example.org/ns/prod")).await;
    let root = env.root_pem();

    let c = mtls_client(&root, &deployer, &gate);
    let (status, echoed) = get(&c, &gate).await;
    assert_eq!(status, 200, "{echoed}");
    // forward_client_cert: the real certificate replaces what the client sent.
    let h = &echoed["headers"];
    assert_eq!(h["cf-client-cert-sha256"], deployer_fp.as_str());
    assert_eq!(h["cf-client-cert-der-base64"], pem_body(&deployer).as_str());

    let (status, body) = get(&mtls_client(&root, &other, &gate), &gate).await;
    assert_eq!(status, 403, "{body}");

    let events = {
        let log = audit_log.clone();
        assert!(
            eventually(Duration::from_secs(10), || {
                let n = audit(&log).len();
                async move { n >= 2 }
            })
            .await
        );
        audit(&audit_log)
    };
    let admitted = events.iter().find(|e| e["allowed"] == true).unwrap();
    assert_eq!(admitted["spiffe_id"], DEPLOYER);
    assert_eq!(
        admitted["cert_san"],
        serde_json::json!([format!("URI:{DEPLOYER}")])
    );
    assert_eq!(admitted["policy_name"], "prod workloads");
    let refused = events.iter().find(|e| e["allowed"] == false).unwrap();
    assert_eq!(
        refused["spiffe_id"],
        "spiffe://other.org/ns/prod/sa/deployer"
    );
    assert_eq!(refused["deny_reason"], "no_policy_matched");

    // The same certificate under a policy for another trust domain: refused.
    let file: botgate::config::PolicyFile = toml::from_str(
        &policy("spiffe://other.org/ns/prod").replace("{upstream}", "http://127.0.0.1:9"),
    )
    .unwrap();
    gate.reload_policies(botgate::policy::compile(&file).unwrap())
        .unwrap();
    let (status, body) = get(&c, &gate).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["ray_id"].is_string(), "{body}");
}

#[tokio::test]
async fn client_sent_cf_client_cert_headers_are_stripped_even_when_forwarding_is_off() {
    let g = start_gate(
        r#"
[[app]]
name = "open"
hostnames = ["open.test"]
upstream = "{upstream}"

[[app.policy]]
name = "all"
action = "allow"
include = [{ everyone = true }]
"#,
        |_| {},
    )
    .await;
    let resp = common::client()
        .get(g.url("/x"))
        .header("host", "open.test")
        .header("Cf-Client-Cert-Sha256", "forged")
        .header("cf-client-cert-der-base64", "Zm9yZ2Vk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let h = body["headers"].as_object().unwrap();
    assert!(!h.contains_key("cf-client-cert-sha256"), "{h:?}");
    assert!(!h.contains_key("cf-client-cert-der-base64"), "{h:?}");
}

/// An external CA (not botgate's) and two leaves with the same CN, as `ca trust` users have.
fn external_pki(dir: &Path) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "Build CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("external-ca.crt"), ca.pem()).unwrap();
    let leaf = |san: &str| {
        let mut p = CertificateParams::new(vec!["bot.build.example.com".to_string()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::URI(san.to_string().try_into().unwrap()));
        p.distinguished_name
            .push(DnType::CommonName, "github-actions-bot");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    };
    (
        leaf("spiffe://example.org/ns/prod/sa/ci-1"),
        leaf("spiffe://example.org/ns/prod/sa/ci-2"),
    )
}

/// Regression (issue 12, defect 3): certificates the gate saw but did not issue were listed with
/// `EXPIRES IN ?` and `KEY ?`, and `cert show CN` did not find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seen_certificates_are_listed_with_expiry_key_and_san_and_show_finds_them() {
    let env = Env::new();
    let (one, two) = external_pki(env.dir.path());
    env.ok(&["ca", "trust", "external-ca.crt", "--name", "External CA"]);
    let (gate, store, _) = start(&env, &policy("spiffe://example.org/ns/prod")).await;
    let root = env.root_pem();
    for leaf in [&one, &two] {
        let (status, body) = get(&mtls_client(&root, leaf, &gate), &gate).await;
        assert_eq!(status, 200, "{body}");
    }
    // The gate records sightings in batches (every 2 s); wait for both.
    assert!(
        eventually(Duration::from_secs(10), || {
            let n = botgate::store::wait(store.list_cert_sightings())
                .unwrap()
                .len();
            async move { n >= 2 }
        })
        .await
    );

    let listed = env.json(&["cert", "list"]);
    let seen: Vec<&serde_json::Value> = listed["certs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "seen")
        .collect();
    assert_eq!(seen.len(), 2, "{listed}");
    for c in &seen {
        assert_eq!(c["common_name"], "github-actions-bot");
        assert_eq!(c["key_type"], "ECDSA P-256");
        assert!(c["expires_in_seconds"].as_i64().unwrap() > 0, "{c}");
        assert!(c["not_before"].is_string(), "{c}");
        assert_eq!(c["issuer_common_name"], "Build CA");
        assert_eq!(c["san"][0], "DNS:bot.build.example.com");
        assert!(
            c["spiffe_id"]
                .as_str()
                .unwrap()
                .starts_with("spiffe://example.org/ns/prod/sa/ci-")
        );
    }
    let table = env.ok(&["cert", "list"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("github-actions-bot"))
        .unwrap();
    assert!(row.contains("ECDSA P-256"), "{table}");
    assert!(!row.contains(" ? "), "{table}");

    // By CN: every match; by fingerprint: exactly that one.
    let shown = env.ok(&["cert", "show", "github-actions-bot"]);
    assert!(shown.contains("2 certificates match"), "{shown}");
    assert_eq!(shown.matches("source:      seen").count(), 2, "{shown}");
    assert!(
        shown.contains("SPIFFE ID:   spiffe://example.org/ns/prod/sa/ci-1"),
        "{shown}"
    );
    let fp = seen[0]["fingerprint_sha256"].as_str().unwrap();
    let one_view = env.json(&["cert", "show", fp]);
    assert_eq!(one_view["matches"].as_array().unwrap().len(), 1);
    assert_eq!(one_view["fingerprint_sha256"], fp);

    // What `cert list` lists, `cert revoke` can revoke (no file needed), and the gate refuses it.
    let revoked = env.json(&["cert", "revoke", fp]);
    assert_eq!(revoked["fingerprint_sha256"], fp);
    assert_eq!(revoked["status"], "revoked");
    let leaf = [&one, &two]
        .into_iter()
        .find(|l| {
            botgate::pki::certificates("leaf", l.as_bytes()).unwrap()[0].fingerprint_sha256 == fp
        })
        .unwrap();
    let c = mtls_client(&root, leaf, &gate);
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = c.clone();
            let gate = &gate;
            async move { get(&c, gate).await.0 == 401 }
        })
        .await,
        "the revoked certificate is still admitted"
    );
}

/// Interoperability: a CSR made with openssl that carries the SPIFFE ID (`-addext`), signed with
/// `botgate cert issue --csr`, presented by curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_csr_with_a_spiffe_uri_san_through_curl() {
    let env = Env::new();
    let d = env.dir.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (name, id) in [
        ("deployer", DEPLOYER),
        ("intruder", "spiffe://evil.org/ns/prod/sa/deployer"),
    ] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=URI:{id}"),
        ]);
        env.ok(&[
            "cert",
            "issue",
            "--cn",
            name,
            "--csr",
            &format!("{name}.csr"),
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    std::fs::write(d.join("root.crt"), env.root_pem()).unwrap();
    let (gate, _store, _) = start(&env, &policy("spiffe://example.org/ns/prod")).await;
    let port = gate.tls_addr.unwrap().port();
    let d = d.to_path_buf();
    let curl = move |name: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                "root.crt",
            ])
            .args(["--resolve", &format!("devices.test:{port}:127.0.0.1")])
            .args([
                "--cert",
                &format!("{name}.crt"),
                "--key",
                &format!("{name}.key"),
            ])
            .arg(format!("https://devices.test:{port}/deploy"))
            .current_dir(&d)
            .output()
            .expect("curl is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (deployer, intruder) =
        tokio::task::spawn_blocking(move || (curl("deployer"), curl("intruder")))
            .await
            .unwrap();
    assert_eq!(deployer, "200");
    assert_eq!(intruder, "403");

    // `policy explain` gives the same answers for the same files.
    std::fs::write(
        env.path("policy.toml"),
        policy("spiffe://example.org/ns/prod").replace("{upstream}", "http://127.0.0.1:9"),
    )
    .unwrap();
    let explain = |name: &str| {
        let out = env
            .botgate()
            .args(["policy", "explain", "--app", "devices.test", "--cert"])
            .arg(format!("{name}.crt"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let admitted = explain("deployer");
    assert!(
        admitted.contains("=> allow 200 by policy \"prod workloads\""),
        "{admitted}"
    );
    let refused = explain("intruder");
    assert!(refused.contains("=> deny 403"), "{refused}");
}
