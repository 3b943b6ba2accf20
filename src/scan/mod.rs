//! Leaked-secret scanning: botgate Client Secrets (prefix + length + CRC32 checksum, so
//! look-alikes are rejected offline) and literal `CF-Access-Client-Secret` values hard-coded
//! in files (header lines, env assignments, YAML / JSON / TOML values), in a tree of files and
//! (see `git`) in git history. A finding carries the secret only masked.

pub mod git;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::credential::{SECRET_LEN, SECRET_PREFIX, checksum_matches, looks_like_secret, mask};

/// Directories never descended into.
const SKIPPED_DIRS: &[&str] = &[".git", "target"];
/// A file with a NUL byte in its first this-many bytes is binary and skipped.
const BINARY_SNIFF: usize = 8192;

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A `bgs_…` Client Secret with a valid checksum.
    BotgateSecret,
    /// A literal value assigned to `CF-Access-Client-Secret` (any format).
    CfAccessClientSecret,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::BotgateSecret => "botgate-secret",
            FindingKind::CfAccessClientSecret => "cf-access-client-secret",
        }
    }
}

/// One leaked secret: where, and what (masked: never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// File path (in git history: relative to the repository root).
    pub path: PathBuf,
    /// 1-based line number (in git history: in the file as of `commit`).
    pub line: usize,
    pub kind: FindingKind,
    pub masked: String,
    /// The commit that added the line (git history scans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl std::fmt::Display for Finding {
    /// `path:line: kind masked`, or `commit:path:line: kind masked` (as `git grep` does).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = &self.commit {
            write!(f, "{}:", &c[..c.len().min(12)])?;
        }
        write!(
            f,
            "{}:{}: {} {}",
            self.path.display(),
            self.line,
            self.kind.as_str(),
            self.masked
        )
    }
}

/// A file that could not be scanned, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// The outcome of a scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub findings: Vec<Finding>,
    pub unreadable: Vec<Unreadable>,
    pub files_scanned: usize,
    pub binary_files_skipped: usize,
}

impl ScanReport {
    /// Add another scan's results (e.g. history after the work tree).
    pub fn merge(&mut self, other: ScanReport) {
        self.findings.extend(other.findings);
        self.unreadable.extend(other.unreadable);
        self.files_scanned += other.files_scanned;
        self.binary_files_skipped += other.binary_files_skipped;
    }
}

/// The secrets in one line of text: kind and masked value, in order of appearance.
pub fn scan_line(line: &str) -> Vec<(FindingKind, String)> {
    let mut found: Vec<(usize, FindingKind, String)> = Vec::new();
    for (i, _) in line.match_indices(SECRET_PREFIX) {
        if let Some(candidate) = line.get(i..i + SECRET_LEN)
            && looks_like_secret(candidate)
            && checksum_matches(candidate)
        {
            found.push((i, FindingKind::BotgateSecret, mask(candidate)));
        }
    }
    for caps in CF_SECRET.captures_iter(line) {
        let Some(value) = caps.get(1) else { continue };
        let next = line[value.end()..].chars().next();
        // `bgs_…` values are the checksum rule's to judge (a look-alike is not a finding);
        // `value(` is a call, not a literal.
        if value.as_str().starts_with(SECRET_PREFIX)
            || next == Some('(')
            || !is_secret_like(value.as_str())
        {
            continue;
        }
        found.push((
            value.start(),
            FindingKind::CfAccessClientSecret,
            mask(value.as_str()),
        ));
    }
    found.sort_by_key(|(i, _, _)| *i);
    found.into_iter().map(|(_, k, m)| (k, m)).collect()
}

/// `CF-Access-Client-Secret` / `CF_ACCESS_CLIENT_SECRET`, an optional closing quote, `:` or
/// `=`, an optional opening quote, then a literal of secret-ish characters (a `$VAR`,
/// `${{ … }}`, `<placeholder>` or `{{ … }}` does not match).
static CF_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern that is covered by the tests.
    Regex::new(
        r#"(?i)cf[-_]access[-_]client[-_]secret["']?\s*[:=]\s*["']?([A-Za-z0-9_\-.+/=]{20,})"#,
    )
    .unwrap_or_else(|e| unreachable!("constant regex: {e}"))
});

/// Long enough, with letters and digits (a placeholder like `REPLACE_WITH_YOUR_SECRET` is not).
fn is_secret_like(v: &str) -> bool {
    v.len() >= 20
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Scan files and directories (recursively; `.git/` and `target/` skipped, symlinks not
/// followed, binary files skipped). A path that does not exist is an error; a file inside a
/// tree that cannot be read is reported in `unreadable`.
pub fn scan_paths(paths: &[PathBuf]) -> Result<ScanReport, ScanError> {
    let mut report = ScanReport::default();
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(|source| ScanError::Path {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut report);
        } else {
            scan_file(p, &mut report);
        }
    }
    Ok(report)
}

/// A scan could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot scan {path}: {source}")]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run git in {dir}: {source} (is git installed?)")]
    GitSpawn {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("git log failed in {dir}: {stderr}")]
    Git { dir: PathBuf, stderr: String },
}

fn walk(dir: &Path, report: &mut ScanReport) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.unreadable.push(Unreadable {
                path: dir.to_path_buf(),
                error: e.to_string(),
            });
            return;
        }
    };
    let mut children: Vec<(PathBuf, std::fs::FileType)> = Vec::new();
    for entry in entries {
        match entry.and_then(|e| Ok((e.path(), e.file_type()?))) {
            Ok(c) => children.push(c),
            Err(e) => report.unreadable.push(Unreadable {
                path: dir.to_path_buf(),
                error: e.to_string(),
            }),
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in children {
        if kind.is_dir() {
            let skipped = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| SKIPPED_DIRS.contains(&n));
            if !skipped {
                walk(&path, report);
            }
        } else if kind.is_file() {
            scan_file(&path, report);
        }
        // Symlinks are not followed: they could loop, or leave the tree being scanned.
    }
}

fn scan_file(path: &Path, report: &mut ScanReport) {
    match std::fs::File::open(path).and_then(|f| scan_reader(f, path)) {
        Ok(Some(findings)) => {
            report.files_scanned += 1;
            report.findings.extend(findings);
        }
        Ok(None) => report.binary_files_skipped += 1,
        Err(e) => report.unreadable.push(Unreadable {
            path: path.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// Findings in a text stream, or `None` when it looks binary.
fn scan_reader(r: impl Read, path: &Path) -> std::io::Result<Option<Vec<Finding>>> {
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    if reader
        .fill_buf()?
        .iter()
        .take(BINARY_SNIFF)
        .any(|b| *b == 0)
    {
        return Ok(None);
    }
    let mut findings = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        for (kind, masked) in scan_line(&line) {
            findings.push(Finding {
                path: path.to_path_buf(),
                line: line_no,
                kind,
                masked,
                commit: None,
            });
        }
    }
    Ok(Some(findings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::ClientSecret;

    fn near_miss(real: &str) -> String {
        // Change one body character: same shape, wrong checksum.
        let mut b = real.as_bytes().to_vec();
        b[10] = if b[10] == b'a' { b'b' } else { b'a' };
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn finds_botgate_secrets_anywhere_in_a_line() {
        let s = ClientSecret::generate();
        for line in [
            format!("BOTGATE_SECRET={}", s.expose()),
            format!("token: \"{}\"", s.expose()),
            format!("x{}y", s.expose()),
        ] {
            let found = scan_line(&line);
            assert_eq!(
                found,
                vec![(FindingKind::BotgateSecret, s.masked())],
                "{line}"
            );
            assert!(!found[0].1.contains(s.expose()));
        }
    }

    #[test]
    fn rejects_look_alikes() {
        let s = ClientSecret::generate();
        let short = &s.expose()[..SECRET_LEN - 1];
        for line in [
            near_miss(s.expose()),
            short.to_string(),
            format!("CF-Access-Client-Secret: {}", near_miss(s.expose())),
            "bgs_".to_string(),
            "bgs_bgs_bgs_".to_string(),
        ] {
            assert!(scan_line(&line).is_empty(), "{line}");
        }
    }

    #[test]
    fn finds_cf_access_client_secret_literals_in_every_format() {
        let v = "3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f";
        for line in [
            format!(r#"curl -H "CF-Access-Client-Secret: {v}" https://api"#),
            format!("export CF_ACCESS_CLIENT_SECRET={v}"),
            format!("CF_ACCESS_CLIENT_SECRET=\"{v}\""),
            format!("  cf-access-client-secret: '{v}'"),
            format!(r#"  "CF-Access-Client-Secret": "{v}","#),
            format!("cf_access_client_secret = \"{v}\""),
        ] {
            assert_eq!(
                scan_line(&line),
                vec![(FindingKind::CfAccessClientSecret, mask(v))],
                "{line}"
            );
        }
    }

    #[test]
    fn references_and_placeholders_are_not_findings() {
        for line in [
            r#"curl -H "CF-Access-Client-Secret: $CF_SECRET""#,
            r#"curl -H "CF-Access-Client-Secret: ${{ secrets.CF_SECRET }}""#,
            "CF_ACCESS_CLIENT_SECRET=${CF_SECRET}",
            "cf-access-client-secret: <your-secret>",
            "cf-access-client-secret: REPLACE_WITH_YOUR_SECRET_VALUE",
            "CF_ACCESS_CLIENT_SECRET=load_secret_from_vault_v2(\"cf\")",
            "cf-access-client-secret: {{ .Values.secret }}",
            "the CF-Access-Client-Secret header carries the secret",
        ] {
            assert!(scan_line(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn binary_streams_are_skipped() {
        let s = ClientSecret::generate();
        let mut data = b"\x00\x01ELF".to_vec();
        data.extend_from_slice(s.expose().as_bytes());
        assert_eq!(scan_reader(&data[..], Path::new("x")).unwrap(), None);
        let text = format!("a\nb\n{}\n", s.expose());
        let found = scan_reader(text.as_bytes(), Path::new("x"))
            .unwrap()
            .unwrap();
        assert_eq!(found[0].line, 3);
        assert_eq!(
            found[0].to_string(),
            format!("x:3: botgate-secret {}", s.masked())
        );
    }
}
