//! `botgate rotate` from the command line: `--json` output, a refused step exits 1 with the
//! reason (and the refusal object on stdout), bad input exits 2.

use assert_cmd::Command;
use predicates::str::contains;

const POLICY: &str = r#"[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
        Self { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("botgate").unwrap();
        c.args(args)
            .env("BOTGATE_STATE_DIR", self.dir.path().join("state"))
            .env("BOTGATE_CONFIG", self.dir.path().join("policy.toml"));
        c
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self
            .cmd(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }
}

#[test]
fn refused_step_exits_1_and_json_describes_every_step() {
    let cli = Cli::new();
    cli.cmd(&["token", "create", "ci-deploy-prod", "--duration", "30d"])
        .assert()
        .success();
    let secret_out = cli.dir.path().join("v2.json");
    let started = cli.json(&[
        "rotate",
        "start",
        "token",
        "ci-deploy-prod",
        "--quiet-period",
        "1h",
        "--secret-out",
        secret_out.to_str().unwrap(),
        "--json",
    ]);
    let id = started["rotation"]["id"].as_str().unwrap().to_string();
    assert_eq!(started["rotation"]["state"], "created");
    assert_eq!(started["rotation"]["step_index"], 1);
    assert_eq!(started["new_credential"]["name"], "ci-deploy-prod-v2");
    assert!(
        started["new_credential"]["client_secret"].is_null(),
        "with --secret-out the secret is only in the file"
    );
    assert!(
        std::fs::read_to_string(&secret_out)
            .unwrap()
            .contains("bgs_")
    );

    let added = cli.json(&["rotate", "next", &id, "--json"]);
    assert_eq!(
        (added["step"].as_str(), added["to"].as_str()),
        (Some("add"), Some("added"))
    );
    assert!(
        added["diff"]
            .as_str()
            .unwrap()
            .contains("ci-deploy-prod-v2")
    );
    cli.cmd(&["rotate", "next", &id])
        .assert()
        .success()
        .stdout(contains("rollout done (added -> rolling_out)"))
        .stdout(contains("next: verify"));

    // No traffic yet: verify is refused, exit 1, the reason on stderr, the refusal on stdout.
    let out = cli
        .cmd(&["rotate", "next", &id, "--json"])
        .assert()
        .code(1)
        .stderr(contains("verify refused"))
        .stderr(contains("not seen yet"))
        .get_output()
        .stdout
        .clone();
    let refused: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(refused["refused"], true);
    assert_eq!(refused["refusal"]["step"], "verify");
    assert_eq!(refused["rotation"]["state"], "rolling_out");
    assert!(refused["rotation"]["refused_reason"].as_str().is_some());

    let status = cli.json(&["rotate", "status", &id, "--json"]);
    assert_eq!(status["steps"].as_array().unwrap().len(), 5);
    assert_eq!(status["steps"][3]["name"], "verify");
    assert_eq!(status["steps"][3]["done"], false);
    assert!(
        status["next_action"]
            .as_str()
            .unwrap()
            .starts_with("verify")
    );

    let forced = cli.json(&["rotate", "next", &id, "--force", "--json"]);
    assert_eq!(forced["step"], "revoke");
    assert_eq!(forced["forced"], true);
    assert_eq!(forced["rotation"]["state"], "revoked");
    let all = cli.json(&["rotate", "status", "--json"]);
    assert_eq!(all[0]["forced"], true);
    cli.cmd(&["rotate", "status"])
        .assert()
        .success()
        .stdout(contains("revoked (forced)"));
    cli.cmd(&["token", "show", "ci-deploy-prod", "--json"])
        .assert()
        .success()
        .stdout(contains("\"status\": \"revoked\""));

    // Finished rotations refuse further steps.
    cli.cmd(&["rotate", "abort", &id]).assert().code(1);
}

#[test]
fn bad_input_exits_2_and_unknown_things_exit_1() {
    let cli = Cli::new();
    cli.cmd(&[
        "rotate",
        "start",
        "token",
        "ci-deploy-prod",
        "--quiet-period",
        "soon",
    ])
    .assert()
    .code(2)
    .stderr(contains("invalid duration"));
    cli.cmd(&["rotate", "start", "token", "nobody-here-prod"])
        .assert()
        .code(1)
        .stderr(contains("no token named"));
    cli.cmd(&["rotate", "next", "rot-000000"])
        .assert()
        .code(1)
        .stderr(contains("no rotation"));
    cli.cmd(&["rotate", "status"])
        .assert()
        .success()
        .stdout(contains("no rotations yet"));
}

/// `rotate start cert OLD --new-cn NEW`: the new certificate carries the new CN and add names
/// it beside the exact selector of the old one; a bad CN is bad input (exit 2).
#[test]
fn cert_rotation_to_a_new_cn_from_the_command_line() {
    let cli = Cli::new();
    std::fs::write(
        cli.dir.path().join("policy.toml"),
        r#"[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "http://127.0.0.1:9"
trusted_cas = ["botgate Root CA"]

[[app.policy]]
name = "Gateway"
action = "non_identity"
include = [{ common_name = "gw-1" }] # the gateway
"#,
    )
    .unwrap();
    cli.cmd(&["ca", "init"]).assert().success();
    let out = cli.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    cli.cmd(&[
        "cert",
        "issue",
        "--cn",
        "gw-1",
        "--out",
        out.to_str().unwrap(),
    ])
    .assert()
    .success();
    cli.cmd(&["rotate", "start", "cert", "gw-1", "--new-cn", "bad\u{7}cn"])
        .assert()
        .code(2)
        .stderr(contains("--new-cn"));
    let started = cli.json(&[
        "rotate",
        "start",
        "cert",
        "gw-1",
        "--new-cn",
        "gw-2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(started["new_credential"]["name"], "gw-2");
    let id = started["rotation"]["id"].as_str().unwrap().to_string();
    let added = cli.json(&["rotate", "next", &id, "--json"]);
    assert_eq!(added["to"], "added");
    let diff = added["diff"].as_str().unwrap();
    assert!(
        diff.contains(
            r#"+include = [{ common_name = "gw-1" }, { common_name = "gw-2" }] # the gateway"#
        ),
        "{diff}"
    );
}
