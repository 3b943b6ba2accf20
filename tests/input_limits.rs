//! Issue 11 defect 8: every file the CLI reads is capped. `/dev/zero` (endless) and files over
//! the limit are refused with exit 2, naming the file and the limit, without reading past it.

use std::path::Path;

use assert_cmd::Command;

fn botgate(dir: &Path) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("botgate");
    cmd.env("BOTGATE_STATE_DIR", dir.join("state"))
        .env("BOTGATE_CONFIG", dir.join("policy.toml"))
        .current_dir(dir);
    cmd
}

/// Run `args`, expect exit 2 with `file` and `limit` in the message.
fn refused(dir: &Path, args: &[&str], file: &str, limit: &str) {
    // `serve` would run on if the file were accepted: the timeout makes that a failure.
    let out = botgate(dir)
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(file), "{args:?}: no {file:?} in: {stderr}");
    assert!(
        stderr.contains(limit),
        "{args:?}: no {limit:?} in: {stderr}"
    );
}

#[test]
fn ca_trust_dev_zero_is_refused_at_the_limit_not_read_until_oom() {
    let dir = tempfile::tempdir().unwrap();
    let limit = "larger than 4 MiB, the limit for certificate";
    refused(
        dir.path(),
        &["ca", "trust", "--name", "z", "/dev/zero"],
        "/dev/zero",
        limit,
    );
}

#[test]
fn csr_and_crl_files_over_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    botgate(d).args(["ca", "init"]).assert().success();
    refused(
        d,
        &["cert", "issue", "--cn", "bot-z", "--csr", "/dev/zero"],
        "--csr /dev/zero",
        "larger than 4 MiB",
    );
    // A real CA to trust, with an endless CRL next to it.
    let list = botgate(d).args(["ca", "list", "--json"]).output().unwrap();
    let cas: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    std::fs::write(d.join("root.pem"), cas[0]["cert_pem"].as_str().unwrap()).unwrap();
    refused(
        d,
        &[
            "ca",
            "trust",
            "--name",
            "ext",
            "root.pem",
            "--crl",
            "/dev/zero",
        ],
        "/dev/zero",
        "larger than 16 MiB, the limit for CRL files",
    );
}

#[test]
fn a_policy_file_over_the_limit_is_refused_by_check_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = "# padding\n".repeat(2 * 1024 * 1024);
    text.insert_str(0, "[gate]\n");
    std::fs::write(d.join("policy.toml"), text).unwrap();
    let limit = "larger than 16 MiB, the limit for policy files";
    refused(d, &["policy", "check"], "policy.toml", limit);
    refused(d, &["serve"], "policy.toml", limit);
}
