//! Bad input the CLI must name precisely (issue 11): files over the size limit (defect 8:
//! `/dev/zero` and files over the limit are refused with exit 2, naming the file and the limit,
//! without reading past it), text after a PEM block, and zero or too long durations.

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

/// Issue 11 defect 9: trailing junk after a PEM block was accepted silently.
#[test]
fn trailing_junk_after_a_pem_block_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    botgate(d).args(["ca", "init"]).assert().success();
    let list = botgate(d).args(["ca", "list", "--json"]).output().unwrap();
    let cas: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let pem = cas[0]["cert_pem"].as_str().unwrap();
    let end_line = pem.lines().count();
    std::fs::write(
        d.join("glued.pem"),
        format!("{pem}\nsubject=CN = leftover\n"),
    )
    .unwrap();
    let out = botgate(d)
        .args(["ca", "trust", "--name", "glued", "glued.pem"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "glued.pem: malformed: line {}: unexpected text after the last PEM block (which ends at line {end_line})",
        end_line + 2
    );
    assert!(stderr.contains(&want), "{want:?} not in: {stderr}");
}

/// Issue 11 defect 9: `--duration 0s` / `99999999d` got "expected a number and a unit".
#[test]
fn zero_and_too_long_durations_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (duration, want) in [
        ("0s", "invalid duration \"0s\": it is zero"),
        (
            "99999999d",
            "invalid duration \"99999999d\": too long; the maximum is 100y (36500d)",
        ),
    ] {
        let out = botgate(d)
            .args([
                "token",
                "create",
                "ci-deploy-prod",
                "--duration",
                duration,
                "--allow-long",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{duration}: {stderr}");
        assert!(
            stderr.contains(want),
            "{duration}: {want:?} not in: {stderr}"
        );
    }
}
