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
/// Longest piece of one line scanned at once: a longer line (or a binary file without
/// newlines) is scanned in pieces, so memory stays bounded whatever the file holds.
const MAX_SEGMENT: usize = 64 * 1024;
/// Bytes of a cut line carried into its next piece, so a secret across the cut is still found.
const SEGMENT_OVERLAP: usize = 512;

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
    /// Files holding a NUL byte (binary): scanned as bytes all the same, listed so the user
    /// is told.
    pub binary_files: Vec<PathBuf>,
    /// Binary files in git history, which `git log -p` shows no content for (not scanned).
    pub binary_files_skipped: usize,
}

impl ScanReport {
    /// Add another scan's results (e.g. history after the work tree).
    pub fn merge(&mut self, other: ScanReport) {
        self.findings.extend(other.findings);
        self.unreadable.extend(other.unreadable);
        self.files_scanned += other.files_scanned;
        self.binary_files.extend(other.binary_files);
        self.binary_files_skipped += other.binary_files_skipped;
    }
}

/// The secrets in one line of text: kind and masked value, in order of appearance.
pub fn scan_line(line: &str) -> Vec<(FindingKind, String)> {
    find_in_line(line)
        .into_iter()
        .map(|f| (f.kind, f.masked))
        .collect()
}

/// A secret in a line, with its byte range.
struct Found {
    end: usize,
    kind: FindingKind,
    masked: String,
}

/// The secrets in one line, in order of appearance (what `scan_line` reports).
fn find_in_line(line: &str) -> Vec<Found> {
    let mut found: Vec<(usize, Found)> = Vec::new();
    for (i, _) in line.match_indices(SECRET_PREFIX) {
        if let Some(candidate) = line.get(i..i + SECRET_LEN)
            && looks_like_secret(candidate)
            && checksum_matches(candidate)
        {
            let kind = FindingKind::BotgateSecret;
            let (end, masked) = (i + SECRET_LEN, mask(candidate));
            found.push((i, Found { end, kind, masked }));
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
        let kind = FindingKind::CfAccessClientSecret;
        let (end, masked) = (value.end(), mask(value.as_str()));
        found.push((value.start(), Found { end, kind, masked }));
    }
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, f)| f).collect()
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
/// followed; binary files scanned as bytes and listed in `binary_files`). A path that does not exist is an error; a file inside a
/// tree that cannot be read is reported in `unreadable`.
pub fn scan_paths(paths: &[PathBuf]) -> Result<ScanReport, ScanError> {
    let mut report = ScanReport::default();
    for p in paths {
        // A path given by name is followed if it is a symlink (inside trees they are not).
        let meta = std::fs::metadata(p).map_err(|source| ScanError::Path {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut report);
        } else if meta.is_file() {
            scan_file(p, &mut report);
        } else {
            // A device or FIFO (`/dev/zero`) may never end.
            return Err(ScanError::NotAFile { path: p.clone() });
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
    #[error(
        "cannot scan {path}: not a regular file or directory (a device, FIFO or socket may never end)"
    )]
    NotAFile { path: PathBuf },
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
        Ok(scanned) => {
            report.files_scanned += 1;
            report.findings.extend(scanned.findings);
            if scanned.binary {
                report.binary_files.push(path.to_path_buf());
            }
        }
        Err(e) => report.unreadable.push(Unreadable {
            path: path.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// What one stream held.
#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    findings: Vec<Finding>,
    /// It held a NUL byte (it was scanned as bytes all the same).
    binary: bool,
}

/// Findings in a stream, read in bounded pieces: lines longer than `MAX_SEGMENT` are cut
/// (keeping `SEGMENT_OVERLAP` bytes across each cut), bytes that are not UTF-8 are replaced.
fn scan_reader(r: impl Read, path: &Path) -> std::io::Result<Scanned> {
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    let mut out = Scanned {
        findings: Vec::new(),
        binary: false,
    };
    let mut segment: Vec<u8> = Vec::with_capacity(MAX_SEGMENT);
    // Leading bytes of `segment` already scanned as the end of the line's previous piece.
    let mut carried = 0;
    let mut line_no = 1;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let room = MAX_SEGMENT - segment.len();
        let window = &chunk[..chunk.len().min(room)];
        out.binary |= window.contains(&0);
        let newline = window.iter().position(|b| *b == b'\n');
        let take = newline.map_or(window.len(), |nl| nl + 1);
        segment.extend_from_slice(&window[..take]);
        reader.consume(take);
        if newline.is_some() {
            scan_segment(&segment, carried, path, line_no, &mut out.findings);
            segment.clear();
            carried = 0;
            line_no += 1;
        } else if segment.len() == MAX_SEGMENT {
            scan_segment(&segment, carried, path, line_no, &mut out.findings);
            segment.drain(..MAX_SEGMENT - SEGMENT_OVERLAP);
            carried = SEGMENT_OVERLAP;
        }
    }
    if segment.len() > carried {
        scan_segment(&segment, carried, path, line_no, &mut out.findings);
    }
    Ok(out)
}

/// Scan one piece of line `line_no`, skipping findings that lie wholly in its first `carried`
/// bytes (the previous piece reported those).
fn scan_segment(
    segment: &[u8],
    carried: usize,
    path: &Path,
    line_no: usize,
    findings: &mut Vec<Finding>,
) {
    let text = String::from_utf8_lossy(segment);
    let carried = String::from_utf8_lossy(&segment[..carried]).len();
    for f in find_in_line(&text) {
        if f.end > carried {
            findings.push(Finding {
                path: path.to_path_buf(),
                line: line_no,
                kind: f.kind,
                masked: f.masked,
                commit: None,
            });
        }
    }
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

    /// Issue 11 defect 9: a file with a NUL byte was skipped silently, secrets and all.
    #[test]
    fn binary_streams_are_scanned_as_bytes_and_flagged() {
        let s = ClientSecret::generate();
        let mut data = b"\x00\x01ELF\xff\xfe".to_vec();
        data.extend_from_slice(s.expose().as_bytes());
        let scanned = scan_reader(&data[..], Path::new("x")).unwrap();
        assert!(scanned.binary);
        assert_eq!(scanned.findings.len(), 1);
        assert_eq!(scanned.findings[0].masked, s.masked());
        let text = format!("a\nb\n{}\n", s.expose());
        let scanned = scan_reader(text.as_bytes(), Path::new("x")).unwrap();
        assert!(!scanned.binary);
        let found = scanned.findings;
        assert_eq!(found[0].line, 3);
        assert_eq!(
            found[0].to_string(),
            format!("x:3: botgate-secret {}", s.masked())
        );
    }

    /// A line far longer than a piece (or a binary file without newlines) is scanned in
    /// bounded pieces: a secret across a cut is found once, secrets in the overlap once.
    #[test]
    fn overlong_lines_are_scanned_in_pieces_without_losing_or_doubling_secrets() {
        let s = ClientSecret::generate();
        for cut_offset in [
            0,
            10,
            SECRET_LEN - 1,
            SEGMENT_OVERLAP - SECRET_LEN,
            SEGMENT_OVERLAP + 3,
        ] {
            let mut line = "x".repeat(MAX_SEGMENT - cut_offset);
            line.push_str(s.expose());
            line.push_str(&"y".repeat(3 * MAX_SEGMENT));
            line.push_str(s.expose());
            line.push_str("\nnext ");
            line.push_str(s.expose());
            let found = scan_reader(line.as_bytes(), Path::new("x"))
                .unwrap()
                .findings;
            let lines: Vec<usize> = found.iter().map(|f| f.line).collect();
            assert_eq!(
                lines,
                [1, 1, 2],
                "cut {cut_offset} bytes into the secret's piece"
            );
        }
    }
}
