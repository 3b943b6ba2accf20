//! Every `--json` output, parsed as a script would parse it: the shapes the README documents
//! ("JSON output"). Breaking one of these is a deliberate change noted in the README.

use std::path::PathBuf;

use serde_json::Value;

mod common;

// A temp dir holding a state dir and a policy file path.
use common::CliEnv;

/// An env with a policy naming the token and certificate the tests create.
struct Env(CliEnv);

impl Env {
    fn new() -> Self {
        let env = CliEnv::new();
        std::fs::write(
            env.path("policy.toml"),
            r#"[gate]
listen = "127.0.0.1:18080"

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9"
trusted_cas = ["botgate Root CA"]

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { common_name = "bot-1" }]
"#,
        )
        .expect("policy");
        Self(env)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }
    /// Run `botgate ARGS --json`, expect success, parse stdout.
    fn json(&self, args: &[&str]) -> Value {
        self.0.json(args)
    }
    /// `json` for a verb whose exit code depends on the machine (`doctor`): any code.
    fn json_any_code(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (_, out, err) = self.0.run(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{all:?}: not JSON ({e}):\n{out}\n{err}"))
    }
}

/// `v` has every key in `keys`.
fn has(v: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(v.get(k).is_some(), "{what}: no {k:?} in {v:#}");
    }
}

#[test]
fn token_verbs_print_the_documented_json() {
    let env = Env::new();
    let created = env.json(&["token", "create", "ci-deploy-prod"]);
    has(
        &created,
        &["name", "client_id", "client_secret", "expires_at"],
        "token create",
    );
    let list = env.json(&["token", "list"]);
    let row = &list.as_array().expect("token list is an array")[0];
    let token_keys = [
        "name",
        "client_id",
        "status",
        "created_at",
        "expires_at",
        "expires_in_seconds",
        "revoked_at",
        "disabled_at",
        "last_seen_at",
        "last_seen_ip",
        "created_by",
        "allow_ips",
        "rate_limit",
    ];
    has(row, &token_keys, "token list");
    assert_eq!(
        row["allow_ips"],
        serde_json::json!([]),
        "unbound: an empty list"
    );
    assert!(row["rate_limit"].is_null());
    let updated = env.json(&[
        "token",
        "update",
        "ci-deploy-prod",
        "--allow-ip",
        "10.0.0.0/8",
        "--allow-ip",
        "192.0.2.7",
        "--rate",
        "600/min",
        "--burst",
        "50",
    ]);
    has(&updated, &token_keys, "token update");
    assert_eq!(
        updated["allow_ips"],
        serde_json::json!(["10.0.0.0/8", "192.0.2.7/32"])
    );
    assert_eq!(
        updated["rate_limit"],
        serde_json::json!({ "rate": "600/min", "burst": 50 })
    );
    assert!(
        row.get("client_secret").is_none(),
        "a listing never shows a secret"
    );
    has(
        &env.json(&["token", "show", "ci-deploy-prod"]),
        &token_keys,
        "token show",
    );
    let revoked = env.json(&["token", "revoke", "ci-deploy-prod"]);
    has(
        &revoked,
        &["name", "client_id", "status", "revoked_at"],
        "token revoke",
    );
    assert_eq!(revoked["status"], "revoked");
}

#[test]
fn pki_verbs_print_the_documented_json() {
    let env = Env::new();
    let ca_keys = [
        "name",
        "kind",
        "subject",
        "fingerprint_sha256",
        "not_after",
        "key_type",
        "key",
    ];
    let init = env.json(&["ca", "init"]);
    has(
        &init,
        &["root", "intermediate", "root_cert_file", "crl_number"],
        "ca init",
    );
    has(&init["root"], &ca_keys, "ca init root");
    let list = env.json(&["ca", "list"]);
    has(
        &list.as_array().expect("ca list is an array")[0],
        &ca_keys,
        "ca list",
    );
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Corporate Device CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let corporate = params.self_signed(&key).expect("ca cert");
    std::fs::write(env.path("corp-ca.pem"), corporate.pem()).expect("write");
    let trusted = env.json(&[
        "ca",
        "trust",
        "corp-ca.pem",
        "--name",
        "Corporate Device CA",
    ]);
    has(
        &trusted.as_array().expect("ca trust is an array")[0],
        &ca_keys,
        "ca trust",
    );

    let issued = env.json(&["cert", "issue", "--cn", "bot-1", "--out", "out"]);
    has(
        &issued,
        &[
            "common_name",
            "serial",
            "fingerprint_sha256",
            "not_before",
            "not_after",
            "cert_file",
            "key_file",
        ],
        "cert issue",
    );
    let cert_keys = [
        "common_name",
        "serial",
        "fingerprint_sha256",
        "issuer",
        "not_after",
        "status",
        "source",
    ];
    let list = env.json(&["cert", "list"]);
    has(&list, &["certs", "unreadable"], "cert list");
    has(&list["certs"][0], &cert_keys, "cert list row");
    has(
        &env.json(&["cert", "show", "bot-1"]),
        &cert_keys,
        "cert show",
    );
    let revoked = env.json(&["cert", "revoke", "bot-1"]);
    assert!(revoked.is_object(), "cert revoke: {revoked:#}");
}

#[test]
fn policy_rotation_scan_and_doctor_print_the_documented_json() {
    let env = Env::new();
    env.json(&["token", "create", "ci-deploy-prod"]);
    let check = env.json(&["policy", "check"]);
    for f in check
        .as_array()
        .expect("policy check is an array of findings")
    {
        has(
            f,
            &["severity", "path", "line", "col", "message"],
            "policy check finding",
        );
    }
    let explain = env.json(&[
        "policy",
        "explain",
        "--app",
        "api.example.com",
        "--token",
        "ci-deploy-prod",
    ]);
    has(
        &explain,
        &["app", "identity", "decision", "status", "policy", "trace"],
        "policy explain",
    );
    assert_eq!(explain["decision"], "allow");

    let started = env.json(&["rotate", "start", "token", "ci-deploy-prod"]);
    has(
        &started,
        &["rotation", "new_credential", "notes"],
        "rotate start",
    );
    let id = started["rotation"]["id"]
        .as_str()
        .expect("rotation id")
        .to_string();
    let status = env.json(&["rotate", "status"]);
    has(
        &status.as_array().expect("rotate status is an array")[0],
        &["id", "kind", "old", "new", "state", "steps"],
        "rotate status",
    );
    let next = env.json(&["rotate", "next", &id]);
    has(&next, &["rotation"], "rotate next");
    let aborted = env.json(&["rotate", "abort", &id]);
    has(&aborted, &["rotation"], "rotate abort");

    let scan = env.json(&["scan", "policy.toml"]);
    has(
        &scan,
        &[
            "findings",
            "unreadable",
            "files_scanned",
            "binary_files",
            "binary_files_skipped",
        ],
        "scan",
    );

    // Exit 0 or 1 depending on this machine (a port may be taken); the shape is the same.
    let doctor = env.json_any_code(&["doctor"]);
    has(&doctor[0], &["check", "status", "detail", "fix"], "doctor");
}

#[test]
fn keys_verbs_print_the_documented_json() {
    let env = Env::new();
    let key_keys = [
        "kid",
        "alg",
        "state",
        "created_at",
        "activates_at",
        "removes_at",
        "rotates_at",
    ];
    // The first key (no gate has started yet), then one published ahead of signing.
    let first = env.json(&["keys", "rotate", "--publish-ahead", "1m"]);
    has(&first, &key_keys, "keys rotate");
    let list = env.json(&["keys", "list"]);
    let rows = list.as_array().expect("keys list is an array");
    assert_eq!(rows.len(), 1, "{list:#}");
    has(&rows[0], &key_keys, "keys list");
    assert!(
        !list.to_string().contains("PRIVATE KEY"),
        "a listing never shows a private key"
    );
}
