//! `botgate policy check` as a user runs it: the built binary, a temp state dir, real files.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example-policy.toml")
}

fn botgate(state: &Path, config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("botgate").unwrap();
    cmd.env_remove("BOTGATE_STATE_DIR")
        .env_remove("BOTGATE_CONFIG");
    cmd.arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(config);
    cmd
}

#[test]
fn broken_file_exits_2_naming_file_line_col_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("\"10.20.0.0/16\"", "\"10.20.0/16\"")
        .replace("action = \"block\"", "action = \"blokc\"");
    std::fs::write(&bad, text).unwrap();
    let out = botgate(dir.path(), &bad)
        .args(["policy", "check"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let at = |needle: &str| {
        let text = std::fs::read_to_string(&bad).unwrap();
        let offset = text.find(needle).unwrap();
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{col}: error: ", bad.display())
    };
    let cidr = format!(
        "{}app \"api.example.com\", policy \"Factory devices\", require[0].ip: \"10.20.0/16\" is not a valid CIDR",
        at("\"10.20.0/16\"")
    );
    assert!(stdout.contains(&cidr), "{stdout}");
    let action = format!(
        "{}app \"api.example.com\", policy \"Everyone else\", action: unknown variant `blokc`",
        at("\"blokc\"")
    );
    assert!(stdout.contains(&action), "{stdout}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}

#[test]
fn broken_file_json_lists_every_finding_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.toml");
    std::fs::write(
        &bad,
        "[[app]]\nname = \"a\"\nhostnames = []\nupstream = \"http://x\"\n",
    )
    .unwrap();
    let out = botgate(dir.path(), &bad)
        .args(["policy", "check", "--json"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fields: Vec<(&str, u64, u64)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap(),
                f["line"].as_u64().unwrap(),
                f["col"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [("app[0].hostnames", 3, 13), ("app[0].upstream", 4, 12)]
    );
    assert_eq!(findings[0]["severity"], "error");
}

#[test]
fn example_policy_passes_with_expected_warnings_only() {
    let state = tempfile::tempdir().unwrap();
    botgate(state.path(), &example())
        .args(["policy", "check"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "no token named \"ci-deploy-prod\" exists",
        ))
        .stdout(predicate::str::contains(
            "CA \"Corporate Device CA\" is not in the store",
        ))
        .stdout(predicate::str::contains("ok, 2 warnings"))
        .stdout(predicate::str::contains("error:").not());
    // A check does not create a state dir or a store.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn created_token_satisfies_the_reference() {
    let state = tempfile::tempdir().unwrap();
    botgate(state.path(), &example())
        .args(["token", "create", "ci-deploy-prod"])
        .assert()
        .success();
    botgate(state.path(), &example())
        .args(["policy", "check"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ci-deploy-prod").not())
        .stdout(predicate::str::contains("ok, 1 warning"));
}

#[test]
fn lint_warnings_do_not_fail_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, "[[app]]\nname = \"a\"\nhostnames = [\"a.example\"]\nupstream = \"http://127.0.0.1:9\"\n\n[[app.policy]]\nname = \"open\"\naction = \"bypass\"\ninclude = [{ everyone = true }]\n").unwrap();
    botgate(dir.path(), &p)
        .args(["policy", "check"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "{}:8:10: warning: app \"a\", policy \"open\", action: bypass",
            p.display()
        )));
}

#[test]
fn missing_file_exits_2_and_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    botgate(dir.path(), &p)
        .args(["policy", "check"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(p.display().to_string())
                .and(predicate::str::contains("assets/example-policy.toml")),
        );
}

/// `[rotation]` is checked by the parser the rotation code uses: bad durations, unknown keys,
/// invalid patterns and empty entries are errors at their line; a cadence longer than the
/// credential can live is a warning.
#[test]
fn rotation_cadence_problems_are_placed_on_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.toml");
    let text = r#"[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "Everyone"
action = "block"
include = [{ everyone = true }]

[rotation]
token_cadence = "ninety days"
cert_cadence = "2y"
cadence = [
  { pattern = "^payments-(", token = "30d" },
  { pattern = "-dev$", tokens = "180d" },
  { pattern = "^ops-" },
  { pattern = "^ci-", token = "400d", cert = 90 },
]
"#;
    std::fs::write(&bad, text).unwrap();
    let out = botgate(dir.path(), &bad)
        .args(["policy", "check"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let at = |needle: &str, severity: &str| {
        let offset = text.find(needle).unwrap();
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{col}: {severity}: ", bad.display())
    };
    for (needle, severity, message) in [
        (
            "\"ninety days\"",
            "error",
            "invalid duration \"ninety days\"",
        ),
        (
            "\"^payments-(\"",
            "error",
            "pattern \"^payments-(\" is not a valid regex",
        ),
        (
            "\"180d\"",
            "error",
            "unknown key \"tokens\" (expected pattern, token, cert)",
        ),
        (
            "{ pattern = \"^ops-\" }",
            "error",
            "set token = \"…\", cert = \"…\" or both",
        ),
        (
            "90 }",
            "error",
            "cert must be a duration string like \"30d\", not integer",
        ),
        (
            "\"2y\"",
            "warning",
            "a cert cadence of 730 days is longer than",
        ),
        (
            "\"400d\"",
            "warning",
            "a token cadence of 400 days is longer than the longest lifetime of a token (365 days)",
        ),
    ] {
        let start = at(needle, severity);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("no finding at {start} in\n{stdout}"));
        assert!(line.contains(message), "{line}");
    }
    assert!(
        stdout.contains("hint: write a whole number and a unit"),
        "{stdout}"
    );
    assert!(stderr.contains("5 errors, 2 warnings"), "{stderr}");
}

/// Lint reads the certificate inventory of the store: a certificate valid longer than the
/// cadence for its CN is a warning naming it and the setting; when the store cannot be read
/// the skipped checks are named on stderr.
#[test]
fn certs_valid_longer_than_their_cadence_from_the_store() {
    use botgate::pki::{CaInitOptions, ClientCertRequest, KeyAlgorithm};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = botgate::store::Store::open(&state).unwrap();
    let now = chrono::Utc::now();
    botgate::pki::init_ca(
        &store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: Some(dir.path().join("root.key")),
            now,
        },
    )
    .unwrap();
    let issue = |cn: &str, days: u32| {
        botgate::pki::issue_client_cert(
            &store,
            &ClientCertRequest {
                common_name: cn,
                csr: None,
                days,
                key: KeyAlgorithm::EcdsaP256,
                now,
            },
        )
        .unwrap()
    };
    let long = issue("payments-gw", 120);
    issue("device-a1", 365);
    drop(store);
    let policy = dir.path().join("policy.toml");
    let text = r#"[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "http://127.0.0.1:9"
trusted_cas = ["botgate Root CA"]

[[app.policy]]
name = "Devices"
action = "non_identity"
include = [{ common_name = "^(device|payments)-.*$" }]

[rotation]
cadence = [{ pattern = "^payments-", cert = "90d" }]
"#;
    std::fs::write(&policy, text).unwrap();
    let out = botgate(&state, &policy)
        .args(["policy", "check"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "{}:13:45: warning: rotation.cadence[0].cert: certificate \"payments-gw\" (serial {}, issued) is valid for 120 days, longer than the [rotation] cadence for CNs matching \"^payments-\" (90 days)",
        policy.display(),
        long.record.serial
    );
    assert!(stdout.contains(&expected), "{expected}\nin\n{stdout}");
    assert!(!stdout.contains("\"device-a1\""), "{stdout}");

    // A store that cannot be opened: the file is still checked, the skipped checks named.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join(botgate::store::STORE_FILE), "not a database").unwrap();
    botgate(&broken, &policy)
        .args(["policy", "check"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "skipped the token, certificate (validity vs. rotation cadence) and CA checks",
        ));
}

/// Regression: with a revoked token and a new live one of the same name, `policy explain
/// --token NAME` looked up whichever came first and could answer "revoked" for the live one.
#[test]
fn explain_answers_for_the_live_token_when_a_revoked_one_shares_its_name() {
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| botgate(state.path(), &example()).args(args).assert();
    run(&["token", "create", "ci-deploy-prod"]).success();
    run(&["token", "revoke", "ci-deploy-prod"]).success();
    // Several rounds: the snapshot is a hash map, so a lookup by name could land either way.
    for _ in 0..4 {
        run(&["token", "create", "ci-deploy-prod"]).success();
        run(&[
            "policy",
            "explain",
            "--app",
            "api.example.com",
            "--token",
            "ci-deploy-prod",
        ])
        .code(0)
        .stdout(predicate::str::contains("=> allow 200"));
        run(&["token", "revoke", "ci-deploy-prod"]).success();
    }
}
