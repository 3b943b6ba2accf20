//! OIDC workload identities and the claim checks policies make on them. A claim selector value
//! is exact, or a full-match regex when written as one (`^…$`); a claim holding an array
//! matches when any element does; numbers and booleans compare as their JSON text.

use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

/// A workload whose token verified: the issuer (by its `[[oidc_issuer]]` name), its subject,
/// and the token's claims (the registered time and audience claims aside).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcIdentity {
    pub issuer: Arc<str>,
    pub sub: String,
    /// `oidc:<issuer>/<sub>`: the identity in audit events, the console and detectors (shared:
    /// also the rate limiter's bucket key).
    pub label: Arc<str>,
    pub claims: Map<String, Value>,
    /// What audit events record of the claims (`audit_claims`), built once per token and
    /// shared by every event of it.
    pub audit_claims: Arc<Map<String, Value>>,
}

impl OidcIdentity {
    pub fn new(issuer: Arc<str>, sub: String, claims: Map<String, Value>) -> Self {
        Self {
            label: format!("oidc:{issuer}/{sub}").into(),
            audit_claims: Arc::new(audit_claims(&claims)),
            issuer,
            sub,
            claims,
        }
    }
}

/// The claims an audit event keeps of a workload token: all but the registered time and
/// audience claims (dropped at verification), at most 32, each string cut at 256 characters.
fn audit_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .take(32)
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) if s.chars().count() > 256 => {
                    Value::String(s.chars().take(256).chain(['…']).collect())
                }
                Value::Array(_) | Value::Object(_) if v.to_string().len() > 1024 => {
                    Value::String("(too long to record)".into())
                }
                v => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// How one claim is matched.
#[derive(Debug, Clone)]
pub enum ClaimPattern {
    Exact(String),
    /// Compiled as `^(?:…)$` from a value written `^…$`.
    Regex(Regex),
}

impl ClaimPattern {
    /// `value` as written in a selector: a regex when it starts with `^` and ends with `$`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.len() >= 2 && value.starts_with('^') && value.ends_with('$') {
            Regex::new(&format!("^(?:{})$", &value[1..value.len() - 1]))
                .map(ClaimPattern::Regex)
                .map_err(|e| format!("claim pattern {value:?} is not a valid regex: {e}"))
        } else {
            Ok(ClaimPattern::Exact(value.to_string()))
        }
    }

    /// Whether the claim's value matches (any element of an array).
    pub fn matches(&self, claim: &Value) -> bool {
        match claim {
            Value::Array(items) => items.iter().any(|v| self.matches_scalar(v)),
            v => self.matches_scalar(v),
        }
    }

    fn matches_scalar(&self, v: &Value) -> bool {
        let text: std::borrow::Cow<'_, str> = match v {
            Value::String(s) => s.as_str().into(),
            Value::Number(n) => n.to_string().into(),
            Value::Bool(b) => if *b { "true" } else { "false" }.into(),
            _ => return false,
        };
        match self {
            ClaimPattern::Exact(want) => *want == *text,
            ClaimPattern::Regex(re) => re.is_match(&text),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ClaimPattern::Exact(v) => format!("= {v:?}"),
            ClaimPattern::Regex(re) => {
                let s = re.as_str();
                format!("~ ^{}$", &s[4..s.len() - 2])
            }
        }
    }
}

/// Claims that must all match (`claims = { … }` of an `oidc` selector, or an `oidc_claim`).
#[derive(Debug, Clone, Default)]
pub struct ClaimChecks(pub Vec<(String, ClaimPattern)>);

impl ClaimChecks {
    pub fn matches(&self, id: &OidcIdentity) -> bool {
        self.0
            .iter()
            .all(|(name, p)| id.claims.get(name).is_some_and(|v| p.matches(v)))
    }

    /// The first claim that does not match, for explanations.
    pub fn first_mismatch<'a>(&'a self, id: &OidcIdentity) -> Option<&'a (String, ClaimPattern)> {
        self.0
            .iter()
            .find(|(name, p)| !id.claims.get(name).is_some_and(|v| p.matches(v)))
    }

    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(n, p)| format!("{n} {}", p.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> OidcIdentity {
        let claims = serde_json::json!({
            "sub": "repo:example/api:ref:refs/heads/main",
            "repository": "example/api",
            "ref": "refs/heads/main",
            "run_id": 1234,
            "groups": ["ops", "deploy"],
            "job_workflow_ref": "example/api/.github/workflows/deploy.yml@refs/heads/main",
        });
        let Value::Object(map) = claims else {
            unreachable!()
        };
        OidcIdentity::new(
            "github".into(),
            "repo:example/api:ref:refs/heads/main".into(),
            map,
        )
    }

    #[test]
    fn exact_regex_array_number() {
        let i = id();
        assert_eq!(
            &*i.label,
            "oidc:github/repo:example/api:ref:refs/heads/main"
        );
        let check = |name: &str, v: &str| {
            ClaimChecks(vec![(name.to_string(), ClaimPattern::parse(v).unwrap())]).matches(&i)
        };
        assert!(check("repository", "example/api"));
        assert!(!check("repository", "example/ap"));
        assert!(!check("repository", "Example/api"));
        assert!(check("groups", "deploy"));
        assert!(check("run_id", "1234"));
        assert!(check(
            "job_workflow_ref",
            r"^example/api/\.github/workflows/deploy\.yml@.*$"
        ));
        // Full match: a pattern matching only a prefix does not do.
        assert!(!check("job_workflow_ref", r"^example/api$"));
        // An alternation is still anchored as a whole.
        assert!(!check("repository", r"^x|example/ap$"));
        assert!(!check("missing", "x"));
        assert!(ClaimPattern::parse("^(unclosed$").is_err());
        assert_eq!(
            ClaimPattern::parse(r"^a.*$").unwrap().describe(),
            r"~ ^a.*$"
        );
    }
}
