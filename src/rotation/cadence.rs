//! Rotation cadence: when each credential is due for rotation. Tokens every 90 days and
//! certificates every 365 days by default; the policy file can change both and override them per
//! name pattern, first matching pattern wins:
//!
//! ```toml
//! [rotation]
//! token_cadence = "60d"
//! cert_cadence = "180d"
//! cadence = [
//!   { pattern = "^payments-", token = "30d", cert = "90d" },   # high security
//!   { pattern = "-dev$", token = "180d" },
//! ]
//! ```
//!
//! `pattern` is a regex searched in the token name or certificate CN (anchor it with `^`/`$`).
//! An entry may set `token`, `cert` or both; what it leaves out falls back to the defaults.

use chrono::{DateTime, Duration, Utc};
use regex::Regex;

use super::CredentialKind;
use crate::config::model::RotationSection;

/// Default token cadence.
pub const DEFAULT_TOKEN_CADENCE: Duration = Duration::days(90);
/// Default certificate cadence.
pub const DEFAULT_CERT_CADENCE: Duration = Duration::days(365);

/// A `[rotation]` section that cannot be used; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [rotation] section: {}", problems.join("; "))]
pub struct CadenceError {
    pub problems: Vec<String>,
}

/// One per-pattern override.
#[derive(Debug, Clone)]
pub struct CadenceRule {
    pub pattern: Regex,
    pub token: Option<Duration>,
    pub cert: Option<Duration>,
}

/// The cadence settings, parsed.
#[derive(Debug, Clone)]
pub struct CadencePolicy {
    pub token: Duration,
    pub cert: Duration,
    pub rules: Vec<CadenceRule>,
}

impl Default for CadencePolicy {
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN_CADENCE,
            cert: DEFAULT_CERT_CADENCE,
            rules: Vec::new(),
        }
    }
}

impl CadencePolicy {
    /// Parse `[rotation]`, collecting every problem.
    pub fn from_section(s: &RotationSection) -> Result<Self, CadenceError> {
        let mut problems = Vec::new();
        let mut duration = |field: String, text: &str| match crate::duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(format!("{field}: {e}"));
                None
            }
        };
        let mut policy = Self::default();
        if let Some(t) = &s.token_cadence {
            policy.token = duration("token_cadence".into(), t).unwrap_or(policy.token);
        }
        if let Some(c) = &s.cert_cadence {
            policy.cert = duration("cert_cadence".into(), c).unwrap_or(policy.cert);
        }
        for (i, table) in s.cadence.iter().enumerate() {
            let at = format!("cadence entry {}", i + 1);
            let mut rule_problems = Vec::new();
            for key in table.keys() {
                if !matches!(key.as_str(), "pattern" | "token" | "cert") {
                    rule_problems.push(format!(
                        "{at}: unknown key {key:?} (expected pattern, token, cert)"
                    ));
                }
            }
            let pattern = match table.get("pattern") {
                Some(toml::Value::String(p)) => match Regex::new(p) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        rule_problems
                            .push(format!("{at}: pattern {p:?} is not a valid regex: {e}"));
                        None
                    }
                },
                Some(other) => {
                    rule_problems.push(format!(
                        "{at}: pattern must be a string (a regex), not {}",
                        other.type_str()
                    ));
                    None
                }
                None => {
                    rule_problems.push(format!(
                        "{at}: pattern is missing, e.g. {{ pattern = \"^payments-\", token = \"30d\" }}"
                    ));
                    None
                }
            };
            let mut period = |key: &str| match table.get(key) {
                None => None,
                Some(toml::Value::String(text)) => match crate::duration::parse(text) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        rule_problems.push(format!("{at}: {key}: {e}"));
                        None
                    }
                },
                Some(other) => {
                    rule_problems.push(format!(
                        "{at}: {key} must be a duration string like \"30d\", not {}",
                        other.type_str()
                    ));
                    None
                }
            };
            let (token, cert) = (period("token"), period("cert"));
            if !table.contains_key("token") && !table.contains_key("cert") {
                rule_problems.push(format!(
                    "{at}: set token = \"…\", cert = \"…\" or both; otherwise the entry does nothing"
                ));
            }
            if rule_problems.is_empty()
                && let Some(pattern) = pattern
            {
                policy.rules.push(CadenceRule {
                    pattern,
                    token,
                    cert,
                });
            }
            problems.extend(rule_problems);
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(CadenceError { problems })
        }
    }

    /// How often a credential of `kind` named `name` (token name or certificate CN) rotates.
    pub fn cadence(&self, kind: CredentialKind, name: &str) -> Duration {
        let pick = |r: &CadenceRule| match kind {
            CredentialKind::Token => r.token,
            CredentialKind::Cert => r.cert,
        };
        self.rules
            .iter()
            .filter(|r| r.pattern.is_match(name))
            .find_map(pick)
            .unwrap_or(match kind {
                CredentialKind::Token => self.token,
                CredentialKind::Cert => self.cert,
            })
    }
}

/// When a credential created at `created_at` is due for rotation.
pub fn rotation_due(
    kind: CredentialKind,
    name: &str,
    created_at: DateTime<Utc>,
    cfg: &CadencePolicy,
) -> DateTime<Utc> {
    created_at + cfg.cadence(kind, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> RotationSection {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_are_90_days_and_a_year() {
        let cfg = CadencePolicy::from_section(&RotationSection::default()).unwrap();
        let t0 = Utc::now();
        assert_eq!(
            rotation_due(CredentialKind::Token, "ci-deploy-prod", t0, &cfg),
            t0 + Duration::days(90)
        );
        assert_eq!(
            rotation_due(CredentialKind::Cert, "device-a1", t0, &cfg),
            t0 + Duration::days(365)
        );
    }

    #[test]
    fn first_matching_pattern_wins_and_missing_kinds_fall_back() {
        let cfg = CadencePolicy::from_section(&section(
            r#"
            token_cadence = "60d"
            cadence = [
              { pattern = "^payments-", token = "30d", cert = "90d" },
              { pattern = "-prod$", token = "45d" },
            ]
            "#,
        ))
        .unwrap();
        assert_eq!(
            cfg.cadence(CredentialKind::Token, "payments-api-prod"),
            Duration::days(30)
        );
        assert_eq!(
            cfg.cadence(CredentialKind::Cert, "payments-gw"),
            Duration::days(90)
        );
        assert_eq!(
            cfg.cadence(CredentialKind::Token, "ci-deploy-prod"),
            Duration::days(45)
        );
        // The -prod rule has no cert cadence: the default applies.
        assert_eq!(
            cfg.cadence(CredentialKind::Cert, "ci-deploy-prod"),
            Duration::days(365)
        );
        assert_eq!(
            cfg.cadence(CredentialKind::Token, "ci-deploy-dev"),
            Duration::days(60)
        );
    }

    #[test]
    fn every_problem_is_reported_with_where_it_is() {
        let err = CadencePolicy::from_section(&section(
            r#"
            token_cadence = "ninety days"
            cadence = [
              { pattern = "(", token = "30d" },
              { token = "30d" },
              { pattern = "^x", tokens = "30d", cert = 5 },
              { pattern = "^y" },
            ]
            "#,
        ))
        .unwrap_err();
        let all = err.to_string();
        for needle in [
            "token_cadence: invalid duration \"ninety days\"",
            "cadence entry 1: pattern \"(\" is not a valid regex",
            "cadence entry 2: pattern is missing",
            "cadence entry 3: unknown key \"tokens\"",
            "cadence entry 3: cert must be a duration string",
            "cadence entry 4: set token",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in {all}");
        }
    }
}
