//! What one issuer looks like to an operator: its settings, the key set in use and its age, the
//! last refresh. `botgate issuer list|show` print it (`--json` as is); the console's Issuers
//! view draws it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::IssuerState;
use crate::clock::rfc3339;

/// One key of the set in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    pub kid: Option<String>,
    pub alg: Option<&'static str>,
    pub key: String,
}

/// One issuer, as `issuer show --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuerView {
    pub name: String,
    pub issuer: String,
    /// The key-set URL, `discovery via …`, or the file.
    pub source: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<&'static str>,
    /// Where the key set in use came from.
    pub from: Option<String>,
    pub fetched_at: Option<String>,
    /// Seconds since the key set in use was fetched.
    pub age_seconds: Option<i64>,
    pub expires_at: Option<String>,
    /// Older than `max_key_age`: the gate raises `oidc_keys_stale`.
    pub stale: bool,
    pub max_key_age_seconds: i64,
    pub kids: Vec<String>,
    pub keys: Vec<KeyView>,
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
    pub failures: u64,
}

impl IssuerView {
    pub fn of(s: &IssuerState, now: DateTime<Utc>) -> Self {
        let keys = s.keys();
        let status = s.status();
        let age = keys.as_ref().map(|k| (now - k.fetched_at).num_seconds());
        Self {
            name: s.settings.name.to_string(),
            issuer: s.settings.issuer.clone(),
            source: s.settings.source.describe(),
            audiences: s.settings.audiences.clone(),
            algorithms: s.settings.algorithms.iter().map(|a| a.as_str()).collect(),
            from: keys.as_ref().map(|k| k.from.clone()),
            fetched_at: keys.as_ref().map(|k| rfc3339(k.fetched_at)),
            age_seconds: age,
            expires_at: keys.as_ref().map(|k| rfc3339(k.expires_at)),
            stale: s.is_stale(now),
            max_key_age_seconds: s.settings.max_key_age.num_seconds(),
            kids: keys.as_ref().map(|k| k.set.kids()).unwrap_or_default(),
            keys: keys
                .as_ref()
                .map(|k| {
                    k.set
                        .keys
                        .iter()
                        .map(|key| KeyView {
                            kid: key.kid.clone(),
                            alg: key.alg.map(|a| a.as_str()),
                            key: key.describe(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            last_attempt: status.last_attempt.map(rfc3339),
            last_error: status.last_error,
            failures: status.failures,
        }
    }
}

/// The key set's age for a table: `3m 2s ago`, `… (stale)`, `never fetched`.
pub fn age_text(v: &IssuerView) -> String {
    match v.age_seconds {
        Some(a) => format!(
            "{}{}",
            crate::duration::ago(chrono::Duration::seconds(a)),
            if v.stale { " (stale)" } else { "" }
        ),
        None => "never fetched".into(),
    }
}
