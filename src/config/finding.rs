//! What validation and lint report: a `Finding` names the file, line, column and field of one
//! problem and says what to do; a `ConfigError` carries every finding of a file that cannot be
//! used (never only the first), so one `policy check` run shows the whole list.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a finding is: errors make the file unusable, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in the policy file, located at `path:line:col` (1-based; line 0 = the file as a
/// whole, e.g. a token in the store that no policy references).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Machine path of the field, e.g. `app[0].policy[1].include[0].ip`.
    pub field: String,
    /// The same place for humans, e.g. `app "api.example.com", policy "CI deployment", include[0].ip`.
    pub place: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    /// A finding about the file as a whole (no line), e.g. from the store or the host.
    pub fn whole_file(
        severity: Severity,
        path: &Path,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Self {
            severity,
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            field: String::new(),
            place: String::new(),
            message: message.into(),
            hint,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        write!(f, ": {}: ", self.severity.as_str())?;
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Errors first, then warnings, each in file order.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (f.severity, f.line, f.col));
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "policy file {} does not exist; start from the shipped example: `cp assets/example-policy.toml {}` (or point --config / BOTGATE_CONFIG at your file)",
        path.display(),
        path.display()
    )]
    NotFound { path: PathBuf },
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file has errors. `findings` holds every error and also the warnings, errors first.
    #[error("{}", render_invalid(path, findings))]
    Invalid {
        path: PathBuf,
        findings: Vec<Finding>,
    },
}

impl ConfigError {
    /// Every finding (errors first); empty when the file could not be read at all.
    pub fn findings(&self) -> &[Finding] {
        match self {
            ConfigError::Invalid { findings, .. } => findings,
            _ => &[],
        }
    }

    /// The first error on one line (`+N more` when there are others), for banners.
    pub fn first_error_line(&self) -> String {
        let mut errors = self.findings().iter().filter(|f| f.is_error());
        match errors.next() {
            Some(first) => {
                let mut text = first
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let more = errors.count();
                if more > 0 {
                    text.push_str(&format!(" (+{more} more: run `botgate policy check`)"));
                }
                text
            }
            None => self.to_string(),
        }
    }

    /// The number of error findings (1 for a file that could not be read).
    pub fn error_count(&self) -> usize {
        match self {
            ConfigError::Invalid { findings, .. } => {
                findings.iter().filter(|f| f.is_error()).count()
            }
            _ => 1,
        }
    }
}

fn render_invalid(path: &Path, findings: &[Finding]) -> String {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let mut out = format!(
        "policy file {} has {}:",
        path.display(),
        plural(errors, "error")
    );
    for f in findings.iter().filter(|f| f.is_error()) {
        out.push('\n');
        out.push_str(&f.to_string());
    }
    out
}

/// `1 error`, `2 errors`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let t = "ab\nc\u{e9}d\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        // 'd' is after a 2-byte char: byte 6, column 3.
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn display_names_file_line_col_place_and_hint() {
        let f = Finding {
            severity: Severity::Error,
            path: "policy.toml".into(),
            line: 12,
            col: 15,
            field: "app[0].policy[1].include[0].ip".into(),
            place: "app \"api.example.com\", policy \"CI deployment\", include[0].ip".into(),
            message: "\"10.0.0/8\" is not a valid CIDR (expected e.g. 10.0.0.0/8)".into(),
            hint: None,
        };
        assert_eq!(
            f.to_string(),
            "policy.toml:12:15: error: app \"api.example.com\", policy \"CI deployment\", include[0].ip: \"10.0.0/8\" is not a valid CIDR (expected e.g. 10.0.0.0/8)"
        );
        let w = Finding::whole_file(
            Severity::Warning,
            Path::new("p.toml"),
            "root key here",
            Some("move it".into()),
        );
        assert_eq!(
            w.to_string(),
            "p.toml: warning: root key here\n    hint: move it"
        );
    }
}
