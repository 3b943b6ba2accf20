//! Retiring what nobody uses (`[tokens] disable_after_inactive`, `disable_unreferenced`): when a
//! live token is due to be disabled, and why. The gate holding the one-node lease sweeps with
//! `due` every minute (`services`), disabling each due token with a `token_retire` admin event
//! (which the detectors turn into a `credential_retired` alert); `policy check` lists the ones
//! due within a week. Disabled, not revoked: `botgate token enable` brings one back.

use chrono::{DateTime, Duration, Utc};

use crate::config::TokensSection;
use crate::policy::{Identity, PolicySet};
use crate::store::TokenRecord;

/// How soon `policy check` warns that a token will be disabled.
pub const WARN_WITHIN: Duration = Duration::days(7);

/// The two retirement rules; `None`: off (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetirePolicy {
    /// Disable a token unseen this long (or never used this long since it was created).
    pub inactive: Option<Duration>,
    /// Disable a token that no policy admits, this long after it was created or last seen.
    pub unreferenced: Option<Duration>,
}

impl RetirePolicy {
    /// From `[tokens]`; `Err((key, message))` for a value that is not a duration.
    pub fn from_section(s: &TokensSection) -> Result<Self, (&'static str, String)> {
        let (inactive, unreferenced) = s.periods()?;
        Ok(Self {
            inactive,
            unreferenced,
        })
    }

    pub fn is_off(&self) -> bool {
        self.inactive.is_none() && self.unreferenced.is_none()
    }
}

/// Why a token is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Inactive,
    Unreferenced,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Inactive => "inactive",
            Reason::Unreferenced => "unreferenced",
        }
    }
}

/// When a token is due, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub reason: Reason,
    pub at: DateTime<Utc>,
    /// Its last use (or its creation, when never used): what the period counts from.
    pub since: DateTime<Utc>,
}

/// Whether any policy of `set` admits the token named `name` (named or as any token).
pub fn referenced(set: &PolicySet, name: &str) -> bool {
    set.apps
        .iter()
        .any(|app| !crate::policy::admitting_policies(app, Identity::Token { name }).is_empty())
}

/// When `t` is due to be disabled under `policy` (the earlier rule wins); `None` for a token
/// that is revoked, disabled or expired already, or that no rule retires.
pub fn due(
    t: &TokenRecord,
    referenced: bool,
    policy: &RetirePolicy,
    now: DateTime<Utc>,
) -> Option<Due> {
    if t.revoked_at.is_some() || t.disabled_at.is_some() || t.expires_at <= now {
        return None;
    }
    let since = t.last_seen_at.unwrap_or(t.created_at).max(t.created_at);
    let inactive = policy.inactive.map(|d| Due {
        reason: Reason::Inactive,
        at: since + d,
        since,
    });
    let unreferenced = policy.unreferenced.filter(|_| !referenced).map(|d| Due {
        reason: Reason::Unreferenced,
        at: since + d,
        since,
    });
    match (inactive, unreferenced) {
        (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// One sweep at `now`: disable every token that is due, each with its `token_retire` admin event
/// (in the store transaction that disables it); the tokens disabled and why. A token disabled or
/// revoked meanwhile (by a person, or another gate's sweep) is left alone.
pub async fn sweep(
    store: &crate::store::Store,
    policies: &PolicySet,
    retire: &RetirePolicy,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Reason)>, crate::store::StoreError> {
    let mut done = Vec::new();
    for t in store.list_tokens().await? {
        let Some(due) = due(&t, referenced(policies, &t.name), retire, now).filter(|d| d.at <= now)
        else {
            continue;
        };
        let period = match due.reason {
            Reason::Inactive => retire.inactive,
            Reason::Unreferenced => retire.unreferenced,
        };
        let admin = |t: &TokenRecord| {
            let extra = serde_json::json!({
                "reason": due.reason.as_str(),
                "since": crate::clock::rfc3339(due.since),
                "after_secs": period.map(|p| p.num_seconds()),
                "enable_with": format!("botgate token enable {}", t.name),
            });
            crate::audit::admin::token_entry(now, "token_retire", t, extra)
        };
        match store
            .set_token_disabled(&t.client_id, true, now, &admin)
            .await
        {
            Ok(_) => done.push((t.name.clone(), due.reason)),
            Err(crate::store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    fn token(created: i64, seen: Option<i64>) -> TokenRecord {
        TokenRecord {
            id: 1,
            name: "ci-deploy-prod".into(),
            client_id: "x.access".into(),
            secret_hash: crate::credential::SecretHash([0; 32]),
            created_at: t(created),
            expires_at: t(365),
            revoked_at: None,
            disabled_at: None,
            last_seen_at: seen.map(t),
            last_seen_ip: None,
            created_by: "test".into(),
            secret_version: 1,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            bounds: Default::default(),
        }
    }

    #[test]
    fn a_token_is_due_after_its_last_use_or_its_creation_and_the_earlier_rule_wins() {
        let p = RetirePolicy {
            inactive: Some(Duration::days(90)),
            unreferenced: Some(Duration::days(30)),
        };
        let used = due(&token(0, Some(10)), true, &p, t(11)).unwrap();
        assert_eq!((used.reason, used.at), (Reason::Inactive, t(100)));
        let never = due(&token(0, None), true, &p, t(1)).unwrap();
        assert_eq!(never.at, t(90), "never used counts from creation");
        let orphan = due(&token(0, Some(10)), false, &p, t(11)).unwrap();
        assert_eq!((orphan.reason, orphan.at), (Reason::Unreferenced, t(40)));
        let mut off = token(0, None);
        off.disabled_at = Some(t(1));
        assert!(due(&off, true, &p, t(2)).is_none(), "disabled already");
        assert!(due(&token(0, None), true, &RetirePolicy::default(), t(500)).is_none());
    }
}
