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

/// Where in `[rotation]` a problem is, for `policy check` to turn into file:line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CadencePlace {
    /// `token_cadence` or `cert_cadence`.
    Field(&'static str),
    /// Entry `i` (0-based) of `cadence` as a whole.
    Entry(usize),
    /// Key `key` of entry `i` of `cadence`.
    EntryKey(usize, String),
}

/// One problem in `[rotation]`: an error makes the section unusable, a warning does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CadenceProblem {
    pub place: CadencePlace,
    pub error: bool,
    pub message: String,
    pub hint: Option<String>,
}

impl CadenceProblem {
    fn error(place: CadencePlace, message: String, hint: Option<String>) -> Self {
        Self {
            place,
            error: true,
            message,
            hint,
        }
    }

    /// `token_cadence: …` / `cadence entry 2: …`, as `CadenceError` lists it.
    fn located(&self) -> String {
        match &self.place {
            CadencePlace::Field(f) => format!("{f}: {}", self.message),
            CadencePlace::Entry(i) | CadencePlace::EntryKey(i, _) => {
                format!("cadence entry {}: {}", i + 1, self.message)
            }
        }
    }
}

/// The keys a `cadence` entry may have.
const RULE_KEYS: [&str; 3] = ["pattern", "token", "cert"];

/// One per-pattern override.
#[derive(Debug, Clone)]
pub struct CadenceRule {
    /// Its index in the file's `cadence` list (0-based).
    pub entry: usize,
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
    /// Parse `[rotation]`, collecting every error (warnings are `check`'s).
    pub fn from_section(s: &RotationSection) -> Result<Self, CadenceError> {
        let (policy, problems) = Self::check(s);
        let errors: Vec<String> = problems
            .iter()
            .filter(|p| p.error)
            .map(CadenceProblem::located)
            .collect();
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(CadenceError { problems: errors })
        }
    }

    /// The section from a policy file, or the defaults when it is unusable (`policy check`
    /// reports why): for views that must show something.
    pub fn from_section_or_default(s: &RotationSection) -> Self {
        Self::from_section(s).unwrap_or_default()
    }

    /// Parse `[rotation]`: the usable policy (bad parts left at their defaults) and every
    /// problem with its place, errors and warnings (a cadence longer than the credential can
    /// live: it expires before it is due, so the cadence never decides anything).
    pub fn check(s: &RotationSection) -> (Self, Vec<CadenceProblem>) {
        let mut problems = Vec::new();
        let mut policy = Self::default();
        let fields = [
            ("token_cadence", &s.token_cadence, CredentialKind::Token),
            ("cert_cadence", &s.cert_cadence, CredentialKind::Cert),
        ];
        for (field, value, kind) in fields {
            let Some(text) = value else { continue };
            match crate::duration::parse(text) {
                Ok(d) => {
                    problems.extend(longer_than_lifetime(CadencePlace::Field(field), kind, d));
                    match kind {
                        CredentialKind::Token => policy.token = d,
                        CredentialKind::Cert => policy.cert = d,
                    }
                }
                Err(e) => problems.push(CadenceProblem::error(
                    CadencePlace::Field(field),
                    e.to_string(),
                    Some(DURATION_HINT.into()),
                )),
            }
        }
        for (i, table) in s.cadence.iter().enumerate() {
            let (rule, rule_problems) = rule(i, table);
            if let Some(rule) = rule {
                policy.rules.push(rule);
            }
            problems.extend(rule_problems);
        }
        (policy, problems)
    }
    /// The `cadence` entry that decides the cadence of `kind` for `name`, if one does (else
    /// the section default applies).
    pub fn deciding_rule(&self, kind: CredentialKind, name: &str) -> Option<&CadenceRule> {
        self.rules
            .iter()
            .filter(|r| r.pattern.is_match(name))
            .find(|r| match kind {
                CredentialKind::Token => r.token.is_some(),
                CredentialKind::Cert => r.cert.is_some(),
            })
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

const DURATION_HINT: &str = "write a whole number and a unit: 30d, 12w, 1y (s, m, h, d, w, y)";

/// Entry `i` of `cadence`: the rule, when it is usable, and its problems.
fn rule(i: usize, table: &toml::Table) -> (Option<CadenceRule>, Vec<CadenceProblem>) {
    let mut problems = Vec::new();
    for key in table.keys() {
        if !RULE_KEYS.contains(&key.as_str()) {
            problems.push(CadenceProblem::error(
                CadencePlace::EntryKey(i, key.clone()),
                format!("unknown key {key:?} (expected pattern, token, cert)"),
                Some("e.g. { pattern = \"^payments-\", token = \"30d\", cert = \"90d\" }".into()),
            ));
        }
    }
    let at = |key: &str| CadencePlace::EntryKey(i, key.to_string());
    let pattern = match table.get("pattern") {
        Some(toml::Value::String(p)) => match Regex::new(p) {
            Ok(re) => Some(re),
            Err(e) => {
                let reason = e.to_string();
                let last = reason.lines().last().unwrap_or_default().trim();
                let reason = last.strip_prefix("error: ").unwrap_or(last).to_string();
                problems.push(CadenceProblem::error(
                    at("pattern"),
                    format!("pattern {p:?} is not a valid regex: {reason}"),
                    Some("the pattern is a regex searched in the token name or certificate CN; anchor it with ^ and $".into()),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(CadenceProblem::error(
                at("pattern"),
                format!(
                    "pattern must be a string (a regex), not {}",
                    other.type_str()
                ),
                None,
            ));
            None
        }
        None => {
            problems.push(CadenceProblem::error(
                CadencePlace::Entry(i),
                "pattern is missing, e.g. { pattern = \"^payments-\", token = \"30d\" }".into(),
                None,
            ));
            None
        }
    };
    let mut period = |key: &str, kind: CredentialKind| match table.get(key) {
        None => None,
        Some(toml::Value::String(text)) => match crate::duration::parse(text) {
            Ok(d) => {
                problems.extend(longer_than_lifetime(at(key), kind, d));
                Some(d)
            }
            Err(e) => {
                problems.push(CadenceProblem::error(
                    at(key),
                    format!("{key}: {e}"),
                    Some(DURATION_HINT.into()),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(CadenceProblem::error(
                at(key),
                format!(
                    "{key} must be a duration string like \"30d\", not {}",
                    other.type_str()
                ),
                None,
            ));
            None
        }
    };
    let token = period("token", CredentialKind::Token);
    let cert = period("cert", CredentialKind::Cert);
    // With an unknown key (likely a typo of token/cert) that finding says it all.
    let unknown_key = table.keys().any(|k| !RULE_KEYS.contains(&k.as_str()));
    if !unknown_key && !table.contains_key("token") && !table.contains_key("cert") {
        problems.push(CadenceProblem::error(
            CadencePlace::Entry(i),
            "set token = \"…\", cert = \"…\" or both; otherwise the entry does nothing".into(),
            None,
        ));
    }
    let usable = !problems.iter().any(|p| p.error);
    let rule = pattern.filter(|_| usable).map(|pattern| CadenceRule {
        entry: i,
        pattern,
        token,
        cert,
    });
    (rule, problems)
}

/// A warning when a cadence is longer than a credential of `kind` can live.
fn longer_than_lifetime(
    place: CadencePlace,
    kind: CredentialKind,
    cadence: Duration,
) -> Option<CadenceProblem> {
    let (max, what) = match kind {
        CredentialKind::Token => (
            super::create::MAX_TOKEN_LIFETIME,
            "the longest lifetime of a token",
        ),
        CredentialKind::Cert => (
            Duration::days(i64::from(super::create::MAX_CERT_DAYS)),
            "the longest lifetime a rotation gives a certificate",
        ),
    };
    (cadence > max).then(|| CadenceProblem {
        place,
        error: false,
        message: format!(
            "a {} cadence of {} days is longer than {what} ({} days): credentials expire before they are due, so the cadence never decides anything",
            kind.as_str(),
            cadence.num_days(),
            max.num_days()
        ),
        hint: Some(format!("use at most {}d", max.num_days())),
    })
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

    #[test]
    fn a_cadence_longer_than_the_lifetime_is_a_warning_with_its_place() {
        let s = section(
            r#"
            cert_cadence = "400d"
            cadence = [{ pattern = "^x", token = "366d" }]
            "#,
        );
        let (policy, problems) = CadencePolicy::check(&s);
        assert_eq!(policy.cert, Duration::days(400), "still used");
        let places: Vec<(&CadencePlace, bool)> =
            problems.iter().map(|p| (&p.place, p.error)).collect();
        assert_eq!(
            places,
            [
                (&CadencePlace::Field("cert_cadence"), false),
                (&CadencePlace::EntryKey(0, "token".into()), false),
            ]
        );
        assert!(CadencePolicy::from_section(&s).is_ok(), "warnings only");
    }
}
