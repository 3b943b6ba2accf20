//! The SRE tooling verbs against the real binary: `doctor` on a good and a deliberately broken
//! set-up, `inspect` on certificates, CSRs, keys and garbage, `completions`, `man`, and `--out`
//! directories created when missing.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

mod common;
// A loopback port nothing listens on now, for a server the test starts.
use common::closed_port as free_port;

// A temp dir holding a state dir and a policy file path.
use common::CliEnv as Env;

impl Env {
    /// The quick-start set-up: a policy with free loopback ports, a token and a local CA.
    fn quick_start(&self, extra_gate: &str) -> u16 {
        let port = free_port();
        let admin = free_port();
        std::fs::write(
            self.path("policy.toml"),
            format!(
                r#"[gate]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
{extra_gate}

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{{ service_token = "ci-deploy-prod" }}]
"#
            ),
        )
        .expect("write policy");
        let (code, _, err) = self.run(&["token", "create", "ci-deploy-prod", "--json"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = self.run(&["ca", "init", "--root-key-out", "root.key"]);
        assert_eq!(code, 0, "{err}");
        port
    }
}

/// The report line for `check` (status, name, detail), with the `→ fix` line after it.
fn line_for<'a>(report: &'a str, status: &str, needle: &str) -> Option<&'a str> {
    report
        .lines()
        .find(|l| l.starts_with(&format!("{status:<4}  ")) && l.contains(needle))
}

#[test]
fn doctor_passes_on_the_quick_start_setup() {
    let env = Env::new();
    env.quick_start("");
    let (code, out, err) = env.run(&["doctor"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The audit log's line is a warning on a nearly full disk; it must be there, and not fail.
    assert!(
        line_for(&out, "ok", "audit log")
            .or(line_for(&out, "warn", "audit log"))
            .is_some(),
        "{out}"
    );
    for check in ["policy file", "store", "file modes", "clock"] {
        assert!(
            line_for(&out, "ok", check).is_some(),
            "no ok line for {check}:\n{out}"
        );
    }
    assert!(!out.contains("fail"), "{out}");
}

#[test]
fn doctor_reports_each_problem_of_a_broken_setup_on_its_own_line() {
    let env = Env::new();
    // An expired server certificate configured for the TLS listener.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["api.example.com".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(env.path("server.crt"), cert.pem()).expect("write cert");
    std::fs::write(env.path("server.key"), key.serialize_pem()).expect("write key");
    std::fs::set_permissions(
        env.path("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod key");
    let tls_port = free_port();
    let extra = format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = {:?}\ntls_key = {:?}",
        env.path("server.crt"),
        env.path("server.key")
    );
    let port = env.quick_start(&extra);
    // A world-readable store.
    let store = env.path("state").join("botgate.db");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // The plain listener's port taken by another process.
    let _taken = TcpListener::bind(("127.0.0.1", port)).expect("take port");

    let (code, out, _) = env.run(&["doctor"]);
    assert_eq!(code, 1, "{out}");
    let modes = line_for(&out, "fail", "file modes").unwrap_or_default();
    assert!(
        modes.contains("botgate.db") && modes.contains("0644"),
        "{out}"
    );
    let tls = line_for(&out, "fail", "TLS server certificate").unwrap_or_default();
    assert!(tls.contains("expired"), "{out}");
    let taken = line_for(&out, "fail", &format!("127.0.0.1:{port} (listen)")).unwrap_or_default();
    assert!(taken.contains("in use"), "{out}");
    // Each problem on its own line: three distinct fail lines.
    assert!(
        out.lines().filter(|l| l.starts_with("fail")).count() >= 3,
        "{out}"
    );

    // Opening the store tightened its mode again; loosen it for the --json run.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, json, _) = env.run(&["doctor", "--json"]);
    assert_eq!(code, 1);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&json).expect("doctor --json");
    assert!(checks.iter().all(|c| c["check"].is_string()
        && ["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap_or(""))
        && c["detail"].is_string()));
    assert!(
        checks.iter().any(
            |c| c["status"] == "fail" && c["fix"].as_str().is_some_and(|f| f.contains("chmod"))
        )
    );
}

#[test]
fn inspect_shows_certificate_details_and_never_a_private_key() {
    let env = Env::new();
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deployer");
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://example.org/ns/prod/sa/deployer"
            .try_into()
            .expect("uri"),
    ));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).expect("cert");
    let key_pem = key.serialize_pem();
    std::fs::write(env.path("c.pem"), cert.pem()).expect("write");
    std::fs::write(env.path("k.pem"), &key_pem).expect("write");

    let (code, out, err) = env.run(&["inspect", "c.pem", "k.pem"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "CN=deployer",
        "spiffe://example.org/ns/prod/sa/deployer",
        "clientAuth",
        "spki sha256",
        "a private key",
    ] {
        assert!(out.contains(want), "missing {want:?}:\n{out}");
    }
    let key_body: String = key_pem.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        !out.contains(&key_body),
        "private key material printed:\n{out}"
    );

    let (code, json, _) = env.run(&["inspect", "--json", "c.pem"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect --json");
    let obj = &v[0]["objects"][0];
    assert_eq!(obj["kind"], "certificate");
    assert_eq!(obj["version"], 3);
    assert_eq!(obj["spiffe_id"], "spiffe://example.org/ns/prod/sa/deployer");
    assert_eq!(obj["validity"], "valid");
}

#[test]
fn inspect_gives_one_clear_error_per_bad_file_and_exit_2() {
    let env = Env::new();
    std::fs::write(env.path("junk.bin"), [0xffu8, 0x00, 0x13, 0x37]).expect("write");
    let (code, _, err) = env.run(&["inspect", "junk.bin", "missing.pem"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("junk.bin")).count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("missing.pem")).count(),
        1,
        "{err}"
    );
}

#[test]
fn completions_are_generated_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, out, err) = env.run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("botgate") && out.contains("rotate"), "{shell}");
    }
}

#[test]
fn man_creates_the_out_dir_and_a_page_per_subcommand() {
    let env = Env::new();
    let out = env.path("share/man/man1");
    let (code, _, err) = env.run(&["man", "--out", out.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    for page in [
        "botgate.1",
        "botgate-token-create.1",
        "botgate-rotate-start-cert.1",
    ] {
        assert!(out.join(page).is_file(), "no {page}");
    }
    let mode = std::fs::metadata(&out).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn cert_issue_out_dir_is_created_when_missing() {
    let env = Env::new();
    std::fs::write(env.path("policy.toml"), "").expect("policy");
    let (code, _, err) = env.run(&["ca", "init"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = env.run(&["cert", "issue", "--cn", "bot-1", "--out", "new/certs"]);
    assert_eq!(code, 0, "{err}");
    let dir: &Path = &env.path("new/certs");
    assert!(dir.join("bot-1.crt").is_file() && dir.join("bot-1.key").is_file());
    let mode = std::fs::metadata(dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
