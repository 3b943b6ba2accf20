//! Black-box tests of `botgate ca …` and `botgate cert …` against the real binary, a real store in
//! a temp dir, and the `openssl` CLI for interoperability: CAs made by openssl are trusted (or
//! refused with a reason), certificates botgate issues verify with `openssl verify`, CSRs made by
//! openssl keep their subject, and revocations show up in a CRL openssl reads.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use predicates::prelude::*;
use proptest::prelude::*;

mod common;
use common::openssl;

// A temp dir holding a state dir and a policy file path.
use common::CliEnv as Env;

impl Env {
    /// Write the local root and intermediate certificates (from `ca list --json`) to files.
    fn export_ca_pems(&self) -> (PathBuf, PathBuf) {
        let cas = self.json(&["ca", "list"]);
        let pem_of = |kind: &str| {
            cas.as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in {cas}"))["cert_pem"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (root, inter) = (self.path("root.pem"), self.path("intermediate.pem"));
        std::fs::write(&root, pem_of("root")).unwrap();
        std::fs::write(&inter, pem_of("intermediate")).unwrap();
        (root, inter)
    }

    /// `openssl verify -purpose sslclient` of `crt` (relative to the dir) against the CA chain
    /// `ca list` exports; panics when openssl refuses it, returns its output.
    fn verify_client_cert(&self, crt: &str) -> String {
        let (root, inter) = self.export_ca_pems();
        openssl(
            self.dir.path(),
            &[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                inter.to_str().unwrap(),
                "-purpose",
                "sslclient",
                crt,
            ],
        )
    }
}

fn openssl_ca(dir: &Path, cn: &str, stem: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-sha256",
            "-days",
            "3650",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.crt"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn trusts_an_openssl_root_and_refuses_keys_leaves_garbage_and_expired_cas() {
    let env = Env::new();
    let d = env.dir.path();
    openssl_ca(d, "Corporate Device CA", "ca");
    env.botgate()
        .args(["ca", "trust", "ca.crt", "--name", "Corporate Device CA"])
        .assert()
        .success()
        .stdout(predicate::str::contains("trusted \"Corporate Device CA\""));
    let cas = env.json(&["ca", "list"]);
    assert_eq!(cas[0]["name"], "Corporate Device CA");
    assert_eq!(cas[0]["kind"], "trusted");
    assert_eq!(cas[0]["key_type"], "RSA 2048");

    // The same name twice is refused (exit 1), not bad input.
    openssl_ca(d, "Other CA", "other");
    env.botgate()
        .args(["ca", "trust", "other.crt", "--name", "Corporate Device CA"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));

    // A private key pasted by mistake.
    env.botgate()
        .args(["ca", "trust", "ca.key", "--name", "k"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "ca.key: this is a private key, not a CA certificate",
        ));

    // A leaf certificate (no CA:TRUE), signed by the CA with openssl.
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=device-a1.factory.corp",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "leaf.crt",
        ],
    );
    env.botgate()
        .args(["ca", "trust", "leaf.crt", "--name", "leaf"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a CA certificate (basicConstraints CA:TRUE is missing)",
        ));

    // Garbage.
    std::fs::write(env.path("garbage.pem"), "this is not a certificate\n").unwrap();
    env.botgate()
        .args(["ca", "trust", "garbage.pem", "--name", "g"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not PEM"));
    std::fs::write(env.path("binary.crt"), [0x00, 0xff, 0x13, 0x37]).unwrap();
    env.botgate()
        .args(["ca", "trust", "binary.crt", "--name", "b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("binary.crt"));

    // A truncated CA file.
    let text = std::fs::read_to_string(env.path("other.crt")).unwrap();
    std::fs::write(env.path("cut.crt"), &text[..text.len() / 2]).unwrap();
    env.botgate()
        .args(["ca", "trust", "cut.crt", "--name", "c"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("truncated"));

    // An expired CA: re-sign the openssl root so that it ended yesterday.
    openssl(
        d,
        &[
            "x509",
            "-in",
            "other.crt",
            "-signkey",
            "other.key",
            "-days",
            "-1",
            "-out",
            "expired.crt",
        ],
    );
    env.botgate()
        .args(["ca", "trust", "expired.crt", "--name", "e"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expired on"));

    // A missing file.
    env.botgate()
        .args(["ca", "trust", "missing.crt", "--name", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.crt"));

    // Only the first one was stored.
    assert_eq!(env.json(&["ca", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn issued_client_certs_verify_with_openssl() {
    let env = Env::new();
    env.botgate().args(["ca", "init"]).assert().success();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let issued = env.json(&[
        "cert",
        "issue",
        "--cn",
        "device-a1.factory.corp",
        "--out",
        "out",
    ]);
    assert_eq!(issued["common_name"], "device-a1.factory.corp");
    assert_eq!(issued["key_type"], "ECDSA P-256");
    let crt = out.join("device-a1.factory.corp.crt");
    let key = out.join("device-a1.factory.corp.key");
    assert_eq!(mode(&key), 0o600);
    let verified = env.verify_client_cert(crt.to_str().unwrap());
    assert!(verified.contains(": OK"), "{verified}");
    // The key matches the certificate.
    let cert_pub = openssl(
        env.dir.path(),
        &["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"],
    );
    let key_pub = openssl(
        env.dir.path(),
        &["pkey", "-in", key.to_str().unwrap(), "-pubout"],
    );
    assert_eq!(cert_pub, key_pub);
    // The file holds the chain: leaf, then the issuing CA.
    assert_eq!(
        std::fs::read_to_string(&crt)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    // Default validity is 365 days.
    let days = issued["not_after"].as_str().unwrap();
    let not_after = chrono::DateTime::parse_from_rfc3339(days).unwrap();
    let left = not_after
        .signed_duration_since(chrono::Utc::now())
        .num_days();
    assert!((364..=365).contains(&left), "{left}");
    // Issuing the same CN into the same dir again refuses to overwrite.
    env.botgate()
        .args([
            "cert",
            "issue",
            "--cn",
            "device-a1.factory.corp",
            "--out",
            "out",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
}

#[test]
fn csr_from_openssl_keeps_its_subject() {
    let env = Env::new();
    let d = env.dir.path();
    env.botgate().args(["ca", "init"]).assert().success();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k",
            "-out",
            "c.csr",
            "-subj",
            "/CN=github-actions-bot/O=Example Corp",
        ],
    );
    let issued = env.json(&[
        "cert",
        "issue",
        "--cn",
        "github-actions-bot",
        "--csr",
        "c.csr",
        "--days",
        "30",
    ]);
    assert_eq!(issued["key_type"], "RSA 2048");
    assert!(issued["key_file"].is_null());
    assert!(!env.path("github-actions-bot.key").exists());
    let subject = openssl(
        d,
        &[
            "x509",
            "-in",
            "github-actions-bot.crt",
            "-noout",
            "-subject",
        ],
    );
    assert!(
        subject.contains("CN = github-actions-bot") && subject.contains("O = Example Corp"),
        "{subject}"
    );
    let eku = openssl(
        d,
        &[
            "x509",
            "-in",
            "github-actions-bot.crt",
            "-noout",
            "-ext",
            "extendedKeyUsage,basicConstraints",
        ],
    );
    assert!(eku.contains("TLS Web Client Authentication"), "{eku}");
    env.verify_client_cert("github-actions-bot.crt");

    // A CN that differs from the CSR's, and a key given as a CSR, are bad input.
    env.botgate()
        .args(["cert", "issue", "--cn", "someone-else", "--csr", "c.csr"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must match"));
    env.botgate()
        .args([
            "cert",
            "issue",
            "--cn",
            "github-actions-bot",
            "--csr",
            "k",
            "--out",
            "state",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "this is a private key, not a certificate signing request",
        ));
}

#[test]
fn root_key_out_keeps_the_root_offline_and_issuance_still_works() {
    let env = Env::new();
    let d = env.dir.path();
    env.botgate()
        .args([
            "ca",
            "init",
            "--name",
            "Factory Root CA",
            "--key-type",
            "rsa-2048",
            "--root-key-out",
            "root.key",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("NOT kept in the state dir"));
    let root_key = env.path("root.key");
    assert_eq!(mode(&root_key), 0o600);
    openssl(d, &["pkey", "-in", "root.key", "-noout"]);
    let cas = env.json(&["ca", "list"]);
    assert_eq!(cas[0]["name"], "Factory Root CA");
    assert_eq!(cas[0]["key"], "offline");
    assert_eq!(cas[0]["key_type"], "RSA 2048");
    assert_eq!(cas[1]["name"], "Factory Issuing CA");
    assert_eq!(cas[1]["key"], "on host");
    // The root key is not in the store file.
    let db = std::fs::read(env.path("state").join("botgate.db")).unwrap();
    let root_key_body: String = std::fs::read_to_string(&root_key)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        !db.windows(root_key_body.len())
            .any(|w| w == root_key_body.as_bytes()),
        "root key found in the store"
    );

    env.botgate()
        .args([
            "cert",
            "issue",
            "--cn",
            "device-b2.factory.corp",
            "--key-type",
            "rsa-2048",
        ])
        .assert()
        .success();
    env.verify_client_cert("device-b2.factory.corp.crt");
    // A second init is refused and does not touch the key file.
    env.botgate()
        .args(["ca", "init", "--root-key-out", "root2.key"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert!(!env.path("root2.key").exists());
}

#[test]
fn revoked_cert_is_listed_in_the_crl_openssl_reads() {
    let env = Env::new();
    let d = env.dir.path();
    env.botgate().args(["ca", "init"]).assert().success();
    let a = env.json(&["cert", "issue", "--cn", "device-a1.factory.corp"]);
    let b = env.json(&["cert", "issue", "--cn", "device-a2.factory.corp"]);
    let serial = a["serial"].as_str().unwrap().to_string();

    env.botgate()
        .args(["cert", "revoke", "device-a1.factory.corp"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "the running gate refuses it within 1 s",
        ));
    env.botgate()
        .args(["cert", "revoke", &serial])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already revoked"));
    env.botgate()
        .args(["cert", "revoke", "no-such-cert"])
        .assert()
        .code(1);

    env.botgate()
        .args(["ca", "crl", "--out", "crl.pem"])
        .assert()
        .success();
    let text = openssl(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(
        text.contains(&format!("Serial Number: {}", serial.to_uppercase())),
        "{serial} not in:\n{text}"
    );
    assert!(
        !text.contains(&b["serial"].as_str().unwrap().to_uppercase()),
        "{text}"
    );
    assert!(text.contains("Next Update"), "{text}");
    assert!(text.contains("Issuer: CN = botgate Issuing CA"), "{text}");

    // openssl, with this CRL, refuses the revoked cert and accepts the other one.
    let (root, inter) = env.export_ca_pems();
    let chain = env.path("chain.pem");
    std::fs::write(
        &chain,
        format!(
            "{}{}",
            std::fs::read_to_string(&root).unwrap(),
            std::fs::read_to_string(&inter).unwrap()
        ),
    )
    .unwrap();
    let verify = |crt: &str| {
        StdCommand::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CRLfile",
                "crl.pem",
                "-CAfile",
                chain.to_str().unwrap(),
                crt,
            ])
            .current_dir(d)
            .output()
            .unwrap()
    };
    let revoked = verify("device-a1.factory.corp.crt");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&revoked.stdout),
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(
        !revoked.status.success(),
        "openssl accepted a revoked cert: {said}"
    );
    assert!(said.contains("certificate revoked"), "{said}");
    assert!(verify("device-a2.factory.corp.crt").status.success());

    // The CRL number increases with each CRL.
    env.botgate()
        .args(["ca", "crl", "--out", "crl2.pem"])
        .assert()
        .success();
    let n1 = openssl(d, &["crl", "-in", "crl.pem", "-noout", "-crlnumber"]);
    let n2 = openssl(d, &["crl", "-in", "crl2.pem", "-noout", "-crlnumber"]);
    assert_ne!(n1, n2);

    // Inventory shows the status.
    let list = env.json(&["cert", "list"]);
    let status = |cn: &str| {
        list["certs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["common_name"] == cn)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("device-a1.factory.corp"), "revoked");
    assert_eq!(status("device-a2.factory.corp"), "active");
    let show = env.json(&["cert", "show", &serial]);
    assert_eq!(show["status"], "revoked");
    assert_eq!(show["issuer_common_name"], "botgate Issuing CA");
}

#[test]
fn cert_list_includes_watched_dirs_and_reports_unreadable_files() {
    let env = Env::new();
    let d = env.dir.path();
    env.botgate().args(["ca", "init"]).assert().success();
    env.botgate()
        .args(["cert", "issue", "--cn", "issued-here"])
        .assert()
        .success();
    let watched = env.path("certs");
    std::fs::create_dir(&watched).unwrap();
    openssl_ca(d, "Corporate Device CA", "ca");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=printer-7.office.corp/O=Example Corp/C=SG",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-out",
            "certs/printer.crt",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-in",
            "certs/printer.crt",
            "-outform",
            "DER",
            "-out",
            "certs/printer-copy.der",
        ],
    );
    std::fs::copy(env.path("leaf.key"), watched.join("printer-key.pem")).unwrap();
    std::fs::write(watched.join("garbage.cer"), b"\x01\x02garbage").unwrap();
    let text = std::fs::read_to_string(watched.join("printer.crt")).unwrap();
    std::fs::write(watched.join("cut.pem"), &text[..text.len() - 40]).unwrap();
    std::fs::write(watched.join("README.txt"), "not a cert file").unwrap();
    std::fs::write(
        env.path("policy.toml"),
        "[inventory]\nwatch = [\"certs\"]\n",
    )
    .unwrap();

    let list = env.json(&["cert", "list"]);
    let certs = list["certs"].as_array().unwrap();
    let printer = certs
        .iter()
        .find(|c| c["common_name"] == "printer-7.office.corp")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(printer["source"], "watched");
    assert_eq!(printer["status"], "expiring");
    assert_eq!(printer["key_type"], "RSA 2048");
    assert_eq!(printer["issuer_common_name"], "Corporate Device CA");
    // The DER copy is the same certificate: listed once.
    assert_eq!(
        certs
            .iter()
            .filter(|c| c["common_name"] == "printer-7.office.corp")
            .count(),
        1
    );
    assert!(
        certs
            .iter()
            .any(|c| c["common_name"] == "issued-here" && c["source"] == "issued")
    );
    assert_eq!(list["unreadable_count"], 3, "{list}");
    let errors: Vec<String> = list["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{}: {}", u["path"], u["error"]))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("printer-key.pem") && e.contains("private key")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("cut.pem") && e.contains("truncated")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("garbage.cer")),
        "{errors:?}"
    );

    // Text output reports the unreadable files on stderr and still succeeds.
    env.botgate()
        .args(["cert", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("printer-7.office.corp"))
        .stderr(predicate::str::contains(
            "3 watched file(s) could not be read",
        ));

    // A watched certificate can be revoked; it is not in botgate's CRL (another CA issued it).
    env.botgate()
        .args(["cert", "revoke", "printer-7.office.corp"])
        .assert()
        .success()
        .stdout(predicate::str::contains("not issued by botgate's CA"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The inventory scan reports an error for every malformed file and never panics.
    #[test]
    fn malformed_files_are_reported_not_skipped(
        files in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..600), 0usize..1000), 1..6)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.example".to_string()]).unwrap().self_signed(&key).unwrap();
        let pem = cert.pem();
        let der = cert.der().to_vec();
        for (i, (kind, noise, cut)) in files.iter().enumerate() {
            let (name, bytes): (String, Vec<u8>) = match kind {
                0 => (format!("{i}.der"), der[..(*cut).min(der.len() - 1)].to_vec()),
                1 => (format!("{i}.pem"), pem.as_bytes()[..(*cut).min(pem.len() - 30)].to_vec()),
                2 => (format!("{i}.crt"), [b"\x02".as_slice(), noise].concat()),
                _ => (format!("{i}.cer"), key.serialize_pem().into_bytes()),
            };
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let scan = botgate::pki::scan_dirs(&[dir.path().to_path_buf()]);
        prop_assert_eq!(scan.files.len(), files.len());
        prop_assert_eq!(scan.errors().count(), files.len());
        for (path, err) in scan.errors() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            prop_assert!(err.to_string().contains(&name), "error does not name the file: {}", err);
        }
    }
}
