//! Service-token rows. Secrets are never stored, only their SHA-256.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::bounds::TokenBounds;
use crate::credential::{ClientId, SecretHash};

/// Credentials (tokens and certificates) within this many days of expiry are "expiring":
/// the inventories, `cert list` and the console's warn colour all use this one threshold.
pub const EXPIRING_WITHIN_DAYS: i64 = 30;
/// A credential expiring within this many days is critical (console colour, `doctor`).
pub const CRITICAL_WITHIN_DAYS: i64 = 7;

/// Longest token lifetime without `token create --allow-long`; lint warns above it and a
/// rotated token never gets more.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::days(365);

/// A token as stored (no secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub client_id: String,
    #[serde(skip)]
    pub secret_hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `botgate token disable`: refused (401 `token_disabled`) until enabled; not a revocation.
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_seen_ip: Option<String>,
    pub created_by: String,
    /// Secrets issued for this Client ID: 1 at creation, one more per `token rotate-secret`.
    pub secret_version: i64,
    /// The secret before the last `rotate-secret` (its SHA-256), accepted until
    /// `previous_secret_expires_at`, refused as `token_secret_superseded` after.
    #[serde(skip)]
    pub previous_secret_hash: Option<SecretHash>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Where and how fast it may be used (`--allow-ip`, `--rate`); travels with the token.
    #[serde(skip)]
    pub bounds: TokenBounds,
}

/// Lifecycle status of a credential (token or certificate) shown in inventories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStatus {
    Active,
    Expiring,
    Expired,
    Revoked,
    /// A token switched off with `botgate token disable` (certificates are never disabled).
    Disabled,
}

/// A token's lifecycle status.
pub type TokenStatus = LifecycleStatus;

impl LifecycleStatus {
    /// Status at `now` of a credential valid until `expires_at`.
    pub fn at(expires_at: DateTime<Utc>, revoked: bool, now: DateTime<Utc>) -> Self {
        if revoked {
            LifecycleStatus::Revoked
        } else if expires_at <= now {
            LifecycleStatus::Expired
        } else if expires_at - now <= Duration::days(EXPIRING_WITHIN_DAYS) {
            LifecycleStatus::Expiring
        } else {
            LifecycleStatus::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStatus::Active => "active",
            LifecycleStatus::Expiring => "expiring",
            LifecycleStatus::Expired => "expired",
            LifecycleStatus::Revoked => "revoked",
            LifecycleStatus::Disabled => "disabled",
        }
    }
}

/// Shortest and longest grace for the previous secret of `token rotate-secret`.
pub const SECRET_GRACE_RANGE: (Duration, Duration) = (Duration::hours(1), Duration::days(30));

/// Whether `rec` may get a new secret at `now`: not while an earlier previous secret is still
/// accepted (a token has at most two live secrets).
pub fn check_secret_rotation(
    rec: &TokenRecord,
    now: DateTime<Utc>,
) -> Result<(), super::StoreError> {
    match rec.previous_secret_expires_at {
        Some(until) if until > now => Err(super::StoreError::Conflict(format!(
            "token {:?} still accepts its previous secret until {} (at most two secrets per token); end that grace first with `botgate token rotate-secret {} --end-grace`",
            rec.name,
            crate::clock::rfc3339(until),
            rec.name
        ))),
        _ => Ok(()),
    }
}

/// Why an in-place rotation of `rec` cannot be undone at `version`.
pub fn revert_conflict(rec: &TokenRecord, version: i64) -> super::StoreError {
    super::StoreError::Conflict(format!(
        "token {:?} is at secret version {} with {} previous secret, not at version {version}: its secret changed outside this rotation",
        rec.name,
        rec.secret_version,
        if rec.previous_secret_hash.is_some() {
            "a"
        } else {
            "no"
        }
    ))
}

/// Whether `rec` has a previous secret still accepted at `at` (one whose grace can end).
pub fn check_grace_open(rec: &TokenRecord, at: DateTime<Utc>) -> Result<(), super::StoreError> {
    match rec.previous_secret_expires_at {
        Some(until) if until > at => Ok(()),
        _ => Err(super::StoreError::Conflict(format!(
            "token {:?} accepts no previous secret (nothing to end)",
            rec.name
        ))),
    }
}

impl TokenRecord {
    /// Status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> TokenStatus {
        match LifecycleStatus::at(self.expires_at, self.revoked_at.is_some(), now) {
            LifecycleStatus::Active | LifecycleStatus::Expiring if self.disabled_at.is_some() => {
                LifecycleStatus::Disabled
            }
            status => status,
        }
    }

    /// Whether the gate should accept it at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.disabled_at.is_none() && self.expires_at > now
    }
}

/// What `create_token` needs.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub client_id: &'a ClientId,
    pub secret_hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `token create --allow-ip … --rate …` (default: unbound).
    pub bounds: TokenBounds,
}

/// A token's bounds from its two columns (see `bounds_columns`).
pub(crate) fn bounds_from_row(allow_ips: Option<String>, rate: Option<String>) -> TokenBounds {
    TokenBounds {
        allow_ips: TokenBounds::parse_allow_ips_text(allow_ips.as_deref()),
        // A rate this botgate cannot read is dropped with a warning rather than refusing the
        // whole store (the row is only ever written from a parsed `RateLimit`).
        rate_limit: rate.and_then(|r| match r.parse() {
            Ok(rate) => Some(rate),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a token's unreadable rate limit");
                None
            }
        }),
    }
}

/// The stored text of `bounds`: (`allow_ips`, `rate_limit`).
pub(crate) fn bounds_columns(bounds: &TokenBounds) -> (Option<String>, Option<String>) {
    (
        bounds.allow_ips_text(),
        bounds.rate_limit.map(|r| r.to_string()),
    )
}

/// The bounds contract every backend meets (run by each backend's tests): bounds given at
/// creation and replaced later round-trip, each replacement moves the change feed and commits
/// its admin row, and a revoked token's bounds cannot change.
#[cfg(test)]
pub(crate) fn bounds_contract(store: &super::Store) {
    use super::wait;
    let now = Utc::now();
    let id = ClientId::generate();
    let bounds = TokenBounds {
        allow_ips: vec![
            crate::bounds::parse_network("10.0.0.0/8").unwrap(),
            crate::bounds::parse_network("2001:db8::1").unwrap(),
        ],
        rate_limit: Some(crate::bounds::RateLimit::parse("60/min", Some(5)).unwrap()),
    };
    let created = wait(store.create_token(&NewToken {
        name: "ci-bound-prod",
        client_id: &id,
        secret_hash: crate::credential::ClientSecret::generate().hash(),
        created_at: now,
        expires_at: now + Duration::days(30),
        bounds: bounds.clone(),
    }))
    .unwrap();
    assert_eq!(created.bounds, bounds);
    assert_eq!(
        wait(store.find_token("ci-bound-prod")).unwrap().bounds,
        bounds
    );
    let before = wait(store.change_version()).unwrap();
    let admin = |t: &TokenRecord| {
        let ev =
            crate::audit::AccessEvent::admin(now, "token_update", &t.name, serde_json::json!({}));
        crate::audit::admin::entry(&ev, &t.name)
    };
    let cleared =
        wait(store.set_token_bounds("ci-bound-prod", &TokenBounds::default(), &admin)).unwrap();
    assert_eq!(cleared.bounds, TokenBounds::default());
    assert!(wait(store.change_version()).unwrap() > before);
    let journal = wait(store.journal_since(0)).unwrap();
    assert!(journal.last().unwrap().event_line.contains("token_update"));
    wait(store.revoke_token("ci-bound-prod", now)).unwrap();
    assert!(matches!(
        wait(store.set_token_bounds("ci-bound-prod", &bounds, &admin)),
        Err(super::StoreError::Conflict(_))
    ));
}
