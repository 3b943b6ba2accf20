//! The `/` filter: space-separated terms that must all match. `deny` / `allow` / `bypass` /
//! `error` match the decision; `key:value` matches one field (`country:RU`, `app:api`,
//! `ip:127.0.2`, `reason:revoked`, `status:403`, `id:ci-deploy`, `method:mtls`, `kind:alert`,
//! `path:/v1`, `host:api`); anything else is a case-insensitive substring of the identity, app,
//! host, path, IP, country, deny reason or ray id. A leading `!` negates a term.

use crate::audit::EventKind;

use super::aggregate::IdentityStats;
use super::compact::EventFields;

/// A parsed filter. The empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negate: bool,
    kind: TermKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TermKind {
    Decision(&'static str),
    Field(Field, String),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Country,
    App,
    Host,
    Ip,
    Reason,
    Status,
    Identity,
    Method,
    Kind,
    Path,
    Node,
}

impl Filter {
    /// Parse what the user typed. Never fails: an unknown `key:` is plain text.
    pub fn parse(input: &str) -> Self {
        let terms = input
            .split_whitespace()
            .map(|raw| {
                let (negate, t) = match raw.strip_prefix('!') {
                    Some(rest) if !rest.is_empty() => (true, rest),
                    _ => (false, raw),
                };
                Term {
                    negate,
                    kind: TermKind::parse(t),
                }
            })
            .collect();
        Self {
            text: input.trim().to_string(),
            terms,
        }
    }

    /// What the user typed (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an event matches every term.
    pub fn matches_event<'a>(&self, e: impl EventFields<'a>) -> bool {
        self.terms
            .iter()
            .all(|t| t.kind.matches_event(e) != t.negate)
    }

    /// Whether an identity row matches. Only terms that make sense for an identity apply:
    /// text and `id:` (the name), `country:`, `app:`, `deny`/`allow`, `method:`.
    pub fn matches_identity(&self, s: &IdentityStats) -> bool {
        self.terms.iter().all(|t| {
            let hit = match &t.kind {
                TermKind::Decision("deny") => Some(s.denied > 0),
                TermKind::Decision("allow") => Some(s.total > s.denied),
                TermKind::Decision(_) => None,
                TermKind::Text(v) | TermKind::Field(Field::Identity, v) => {
                    Some(contains(&s.name, v))
                }
                TermKind::Field(Field::Country, v) => Some(s.countries.contains_ignore_case(v)),
                TermKind::Field(Field::App, v) => Some(s.apps.iter().any(|a| contains(a, v))),
                TermKind::Field(Field::Method, v) => Some(method_matches(s.method.as_str(), v)),
                TermKind::Field(..) => None,
            };
            hit.is_none_or(|h| h != t.negate)
        })
    }

    /// Whether a table row described by `texts` matches: only plain text terms apply.
    pub fn matches_text(&self, texts: &[&str]) -> bool {
        self.terms.iter().all(|t| match &t.kind {
            TermKind::Text(v) => texts.iter().any(|s| contains(s, v)) != t.negate,
            _ => true,
        })
    }
}

impl TermKind {
    fn parse(t: &str) -> Self {
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "deny" | "denied" => return TermKind::Decision("deny"),
            "allow" | "allowed" => return TermKind::Decision("allow"),
            "bypass" => return TermKind::Decision("bypass"),
            "error" => return TermKind::Decision("error"),
            _ => {}
        }
        if let Some((k, v)) = lower.split_once(':') {
            let field = match k {
                "country" | "cc" => Some(Field::Country),
                "app" => Some(Field::App),
                "host" => Some(Field::Host),
                "ip" => Some(Field::Ip),
                "reason" => Some(Field::Reason),
                "status" => Some(Field::Status),
                "id" | "token" | "cn" | "identity" => Some(Field::Identity),
                "method" | "via" => Some(Field::Method),
                "kind" | "event" => Some(Field::Kind),
                "path" => Some(Field::Path),
                "node" | "gate" => Some(Field::Node),
                _ => None,
            };
            if let Some(f) = field
                && !v.is_empty()
            {
                return TermKind::Field(f, v.to_string());
            }
        }
        TermKind::Text(lower)
    }

    fn matches_event<'a>(&self, e: impl EventFields<'a>) -> bool {
        let opt = |o: Option<&str>, v: &str| o.is_some_and(|s| contains(s, v));
        match self {
            TermKind::Decision(d) => match *d {
                "deny" => e.kind() == EventKind::Access && !e.allowed(),
                "allow" => e.kind() == EventKind::Access && e.allowed(),
                other => e.decision().eq_ignore_ascii_case(other),
            },
            TermKind::Field(f, v) => match f {
                Field::Country => e.country().is_some_and(|c| c.eq_ignore_ascii_case(v)),
                Field::App => opt(e.app_name(), v),
                Field::Host => opt(e.host(), v),
                Field::Ip => e.ip_address().is_some_and(|ip| ip.starts_with(v.as_str())),
                Field::Reason => opt(e.deny_reason(), v),
                Field::Status => e
                    .status()
                    .is_some_and(|s| s.to_string().starts_with(v.as_str())),
                Field::Identity => opt(e.identity(), v),
                Field::Method => method_matches(e.connection_method().as_str(), v),
                Field::Kind => kind_str(e.kind()) == v,
                Field::Path => opt(e.path(), v),
                Field::Node => e.node().is_some_and(|n| n.eq_ignore_ascii_case(v)),
            },
            TermKind::Text(v) => {
                opt(e.identity(), v)
                    || opt(e.app_name(), v)
                    || opt(e.host(), v)
                    || opt(e.path(), v)
                    || opt(e.ip_address(), v)
                    || opt(e.country(), v)
                    || opt(e.deny_reason(), v)
                    || contains(&e.ray_id(), v)
            }
        }
    }
}

fn kind_str(k: EventKind) -> &'static str {
    match k {
        EventKind::Access => "access",
        EventKind::Admin => "admin",
        EventKind::Alert => "alert",
    }
}

fn method_matches(method: &str, v: &str) -> bool {
    method == v || (v == "token" && method == "service_token") || (v == "cert" && method == "mtls")
}

/// ASCII case-insensitive substring test without allocating; `needle` is already lowercase.
fn contains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AccessEvent, ConnectionMethod};
    use chrono::Utc;

    fn ev(name: &str, allowed: bool, country: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(EventKind::Access, Utc::now(), "ray1".into());
        e.allowed = allowed;
        e.decision = if allowed { "allow" } else { "deny" }.into();
        e.service_token_name = Some(name.into());
        e.connection_method = ConnectionMethod::ServiceToken;
        e.country = Some(country.into());
        e.deny_reason = (!allowed).then(|| "token_revoked".into());
        e
    }

    #[test]
    fn decision_field_and_text_terms() {
        let deny_ru = ev("ci-deploy-prod", false, "RU");
        let allow_sg = ev("monitoring-probe-prod", true, "SG");
        let f = Filter::parse("deny");
        assert!(f.matches_event(&deny_ru) && !f.matches_event(&allow_sg));
        let f = Filter::parse("CI-Deploy");
        assert!(f.matches_event(&deny_ru) && !f.matches_event(&allow_sg));
        let f = Filter::parse("country:RU");
        assert!(f.matches_event(&deny_ru) && !f.matches_event(&allow_sg));
        let f = Filter::parse("!country:ru method:token");
        assert!(!f.matches_event(&deny_ru) && f.matches_event(&allow_sg));
        let f = Filter::parse("reason:revoked deny ci");
        assert!(f.matches_event(&deny_ru));
        assert!(Filter::parse("").matches_event(&allow_sg));
    }

    #[test]
    fn node_picks_one_gates_events_when_several_are_merged() {
        let mut a = ev("ci-deploy-prod", true, "SG");
        a.node = Some("gate-a".into());
        let mut b = ev("ci-deploy-prod", true, "SG");
        b.node = Some("gate-b".into());
        let unnamed = ev("ci-deploy-prod", true, "SG");
        let f = Filter::parse("node:gate-b");
        assert!(f.matches_event(&b) && !f.matches_event(&a) && !f.matches_event(&unnamed));
        let f = Filter::parse("!node:GATE-B");
        assert!(f.matches_event(&a) && !f.matches_event(&b));
    }

    #[test]
    fn table_rows_use_only_text_terms() {
        let f = Filter::parse("deploy country:RU");
        assert!(f.matches_text(&["ci-deploy-prod"]));
        assert!(!f.matches_text(&["monitoring-probe"]));
    }
}
