//! Git history scanning: every line ever added on any ref (`git log -p --all`), reported with
//! the commit that added it, the file and the line number in that commit. A secret deleted
//! since is still in history (and in every clone), so it still counts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Finding, ScanError, ScanReport, scan_line};

/// Scan the history of the repository containing `path`, limited to `path` (a directory or a
/// file inside the work tree).
pub fn scan_history(path: &Path) -> Result<ScanReport, ScanError> {
    let (dir, pathspec) = if path.is_dir() {
        (path.to_path_buf(), PathBuf::from("."))
    } else {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (
            dir.to_path_buf(),
            PathBuf::from(path.file_name().unwrap_or_default()),
        )
    };
    let mut child = Command::new("git")
        .current_dir(&dir)
        .args([
            "-c",
            "core.quotepath=off",
            "log",
            "-p",
            "--all",
            "--no-color",
            "--no-ext-diff",
        ])
        .args(["--no-textconv", "--unified=0", "--format=commit %H", "--"])
        .arg(&pathspec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ScanError::GitSpawn {
            dir: dir.clone(),
            source,
        })?;
    let mut report = ScanReport::default();
    if let Some(out) = child.stdout.take() {
        parse_log(BufReader::new(out), &mut report).map_err(|e| ScanError::Git {
            dir: dir.clone(),
            stderr: e.to_string(),
        })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|source| ScanError::GitSpawn {
            dir: dir.clone(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(ScanError::Git { dir, stderr });
    }
    Ok(report)
}

/// Parse `git log -p --unified=0 --format="commit %H"` output, scanning added lines.
fn parse_log(reader: impl BufRead, report: &mut ScanReport) -> std::io::Result<()> {
    let mut commit = String::new();
    let mut file: Option<PathBuf> = None;
    // Between `diff --git` and the first `@@`: `--- `/`+++ ` are headers, not content.
    let mut in_header = false;
    let mut line_no = 0usize;
    let mut reader = reader;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let raw = String::from_utf8_lossy(&buf);
        let line = raw.strip_suffix('\n').unwrap_or(&raw);
        if let Some(sha) = line.strip_prefix("commit ") {
            commit = sha.trim().to_string();
            file = None;
            in_header = false;
        } else if line.starts_with("diff --git ") {
            file = None;
            in_header = true;
        } else if in_header {
            if let Some(target) = line.strip_prefix("+++ ") {
                // `+++ b/path`, or `/dev/null` for a deletion (nothing added).
                file = target.strip_prefix("b/").map(PathBuf::from);
                report.files_scanned += usize::from(file.is_some());
            } else if let Some(hunk) = line.strip_prefix("@@ ") {
                line_no = new_start(hunk).unwrap_or(0);
                in_header = false;
            } else if line.starts_with("Binary files ") {
                report.binary_files_skipped += 1;
            }
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            line_no = new_start(hunk).unwrap_or(0);
        } else if let Some(added) = line.strip_prefix('+') {
            if let Some(path) = &file {
                for (kind, masked) in scan_line(added) {
                    let commit = Some(commit.clone());
                    report.findings.push(Finding {
                        path: path.clone(),
                        line: line_no,
                        kind,
                        masked,
                        commit,
                    });
                }
            }
            line_no += 1;
        } else if line.starts_with(' ') {
            line_no += 1;
        }
    }
}

/// `-a,b +c,d @@ …` → c.
fn new_start(hunk: &str) -> Option<usize> {
    let plus = hunk.split_whitespace().find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::ClientSecret;

    #[test]
    fn parses_added_lines_with_commit_file_and_line() {
        let s = ClientSecret::generate();
        let log = format!(
            "commit aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\n\
             diff --git a/ci/deploy.sh b/ci/deploy.sh\n\
             --- a/ci/deploy.sh\n+++ b/ci/deploy.sh\n\
             @@ -3,0 +4,3 @@ echo\n+echo hi\n+SECRET={0}\n+++ not a header {0}\n\
             commit bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\n\
             diff --git a/ci/deploy.sh b/ci/deploy.sh\n\
             --- a/ci/deploy.sh\n+++ /dev/null\n@@ -1,5 +0,0 @@\n-SECRET={0}\n\
             diff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\n",
            s.expose()
        );
        let mut report = ScanReport::default();
        parse_log(log.as_bytes(), &mut report).unwrap();
        assert_eq!(report.findings.len(), 2, "the deletion is not a new leak");
        assert_eq!(
            report.findings[1].line, 6,
            "an added line starting with ++ is content"
        );
        let f = &report.findings[0];
        assert_eq!((f.path.as_path(), f.line), (Path::new("ci/deploy.sh"), 5));
        assert_eq!(
            f.commit.as_deref(),
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        );
        assert_eq!(
            f.to_string(),
            format!("aaaaaaaaaaaa:ci/deploy.sh:5: botgate-secret {}", s.masked())
        );
        assert_eq!(report.binary_files_skipped, 1);
    }

    #[test]
    fn hunk_header() {
        assert_eq!(new_start("-3,0 +4,2 @@ fn x()"), Some(4));
        assert_eq!(new_start("-1 +1 @@"), Some(1));
    }
}
