//! `botgate scan` end to end: a fixture tree with planted secrets (generated now, so none is
//! ever committed to this repository) and near-misses, git history, the pre-commit hook and
//! the gitleaks rule.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use botgate::credential::{ClientSecret, mask};

const CF_HEX: &str = "3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f";

fn botgate(state: &Path) -> Command {
    let mut c = Command::cargo_bin("botgate").unwrap();
    c.env("BOTGATE_STATE_DIR", state)
        .env_remove("BOTGATE_CONFIG");
    c
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

/// Same shape, one body character changed: the checksum no longer matches.
fn near_miss(s: &ClientSecret) -> String {
    let mut b = s.expose().as_bytes().to_vec();
    b[20] = if b[20] == b'Q' { b'R' } else { b'Q' };
    String::from_utf8(b).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    secrets: Vec<ClientSecret>,
    /// `path:line: kind masked`, relative to the tree root, sorted.
    expected: Vec<String>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s: Vec<ClientSecret> = (0..4).map(|_| ClientSecret::generate()).collect();
    write(
        root,
        "ci/deploy.sh",
        format!(
            "#!/bin/sh\ncurl -H \"CF-Access-Client-Id: 0123456789abcdef0123456789abcdef.access\" \\\n  -H \"CF-Access-Client-Secret: {}\" https://api\n",
            s[0].expose()
        ),
    );
    write(
        root,
        ".env",
        format!("APP=1\nBOTGATE_CLIENT_SECRET={}\n", s[1].expose()),
    );
    write(
        root,
        "k8s/values.yaml",
        format!("auth:\n  cf-access-client-secret: \"{CF_HEX}\"\n"),
    );
    write(
        root,
        "config/client.json",
        format!(
            "{{\n  \"headers\": {{\"CF-Access-Client-Secret\": \"{}\"}}\n}}\n",
            s[2].expose()
        ),
    );
    // Near misses: bad checksums, truncated, references, placeholders.
    write(
        root,
        "docs/README.md",
        format!(
            "Example: {}\nShort: {}\nUse `CF-Access-Client-Secret: $CF_SECRET`\ncf_access_client_secret = \"REPLACE_WITH_YOUR_SECRET\"\n",
            near_miss(&s[3]),
            &s[3].expose()[..40]
        ),
    );
    write(
        root,
        "ci/workflow.yml",
        format!(
            "env:\n  CF_ACCESS_CLIENT_SECRET: ${{{{ secrets.CF_SECRET }}}}\n  OLD: {}\n",
            near_miss(&s[0])
        ),
    );
    // A binary file is scanned as bytes (issue 11: it was skipped silently); .git/ and
    // target/ are never looked at.
    let mut bin = b"\x7fELF\x00\x00".to_vec();
    bin.extend_from_slice(s[3].expose().as_bytes());
    write(root, "bin/tool", bin);
    write(root, ".git/config", s[3].expose());
    write(root, "target/debug/out.txt", s[3].expose());
    let expected = {
        let mut v = vec![
            format!("ci/deploy.sh:3: botgate-secret {}", s[0].masked()),
            format!(".env:2: botgate-secret {}", s[1].masked()),
            format!(
                "k8s/values.yaml:2: cf-access-client-secret {}",
                mask(CF_HEX)
            ),
            format!("config/client.json:2: botgate-secret {}", s[2].masked()),
            format!("bin/tool:1: botgate-secret {}", s[3].masked()),
        ];
        v.sort();
        v
    };
    Fixture {
        dir,
        secrets: s,
        expected,
    }
}

fn relative_lines(stdout: &[u8], root: &Path) -> Vec<String> {
    let prefix = format!("{}/", root.display());
    let mut v: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn finds_every_planted_secret_and_nothing_else() {
    let f = fixture();
    let state = tempfile::tempdir().unwrap();
    let out = botgate(state.path())
        .arg("scan")
        .arg(f.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(relative_lines(&out.stdout, f.dir.path()), f.expected);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 leaked secrets"), "{stderr}");
    let note = format!(
        "note: {} contains NUL bytes (binary); scanned as bytes",
        f.dir.path().join("bin/tool").display()
    );
    assert!(stderr.contains(&note), "{stderr}");
    for s in &f.secrets {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(s.expose()),
            "a full secret was printed"
        );
        assert!(!stderr.contains(s.expose()));
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CF_HEX));
}

#[test]
fn json_output_lists_findings_masked() {
    let f = fixture();
    let state = tempfile::tempdir().unwrap();
    let out = botgate(state.path())
        .args(["scan", "--json"])
        .arg(f.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 5);
    assert!(
        findings
            .iter()
            .all(|f| f["masked"].as_str().unwrap().contains('…'))
    );
    let bin = f.dir.path().join("bin/tool");
    assert_eq!(v["binary_files"], serde_json::json!([bin]));
}

#[test]
fn clean_tree_exits_zero_and_missing_path_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.rs",
        "fn main() { println!(\"bgs_ is our prefix\"); }\n",
    );
    let state = tempfile::tempdir().unwrap();
    botgate(state.path())
        .arg("scan")
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout("");
    let out = botgate(state.path())
        .arg("scan")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[cfg(unix)]
#[test]
fn unreadable_files_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "secret.txt", "x");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&p).is_ok() {
        return; // running as root: permissions do not stop reads, nothing to observe
    }
    let state = tempfile::tempdir().unwrap();
    let out = botgate(state.path())
        .arg("scan")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn git_history_keeps_a_deleted_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    let s = ClientSecret::generate();
    write(
        root,
        "app/settings.env",
        format!("A=1\nB=2\nSECRET={}\n", s.expose()),
    );
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "add settings"]);
    let leaked_in = git(root, &["rev-parse", "HEAD"]);
    write(root, "app/settings.env", "A=1\nB=2\n");
    git(root, &["commit", "-qam", "remove secret"]);
    let state = tempfile::tempdir().unwrap();

    botgate(state.path()).arg("scan").arg(root).assert().code(0);
    let out = botgate(state.path())
        .args(["scan", "--git"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!(
            "{}:app/settings.env:3: botgate-secret {}",
            &leaked_in[..12],
            s.masked()
        )
    );
    assert!(!stdout.contains(s.expose()));

    let not_repo = tempfile::tempdir().unwrap();
    botgate(state.path())
        .args(["scan", "--git"])
        .arg(not_repo.path())
        .assert()
        .code(2);
}

#[cfg(unix)]
#[test]
fn pre_commit_hook_refuses_staged_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/pre-commit-hook.sh");
    let bin = assert_cmd::cargo::cargo_bin("botgate");
    let state = tempfile::tempdir().unwrap();
    let run_hook = || {
        StdCommand::new("sh")
            .arg(&hook)
            .current_dir(root)
            .env("BOTGATE", &bin)
            .env("BOTGATE_STATE_DIR", state.path())
            .output()
            .unwrap()
    };
    write(root, "ok.txt", "nothing here\n");
    git(root, &["add", "ok.txt"]);
    let out = run_hook();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = ClientSecret::generate();
    write(
        root,
        "deploy/run.sh",
        format!("export BOTGATE_SECRET={}\n", s.expose()),
    );
    git(root, &["add", "deploy/run.sh"]);
    // The work tree no longer has it, the index does: the hook must check the index.
    write(root, "deploy/run.sh", "export BOTGATE_SECRET=$FROM_VAULT\n");
    let out = run_hook();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("deploy/run.sh:1: botgate-secret {}", s.masked()))
    );
}

#[test]
fn gitleaks_rule_matches_our_format() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/gitleaks.toml");
    let cfg: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let rules = cfg["rules"].as_array().unwrap();
    let ours = rules
        .iter()
        .find(|r| r["id"].as_str() == Some("botgate-client-secret"))
        .unwrap();
    let re = regex::Regex::new(ours["regex"].as_str().unwrap()).unwrap();
    let s = ClientSecret::generate();
    assert_eq!(
        re.find(&format!("SECRET={}", s.expose())).unwrap().as_str(),
        s.expose()
    );
    assert!(!re.is_match("bgs_tooshort"));
}

/// Issue 11 defect 8: input is capped; for `scan` a device such as `/dev/zero` never ends, so
/// it is refused by name instead of read forever.
#[test]
fn scan_of_a_device_is_refused_not_read_forever() {
    let state = tempfile::tempdir().unwrap();
    let out = botgate(state.path())
        .args(["scan", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot scan /dev/zero: not a regular file or directory"),
        "{stderr}"
    );
}
