//! Service-token rows. Secrets are never stored, only their SHA-256.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

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
}
