//! The one expiry classifier for credentials (tokens and certificates): ok / warn (≤ 30 days) /
//! critical (≤ 7 days) / expired / revoked. The console colours and labels it, `doctor` turns it
//! into ok / warn / fail.

use chrono::{DateTime, Duration, Utc};

use crate::store::tokens::{CRITICAL_WITHIN_DAYS, EXPIRING_WITHIN_DAYS as WARN_WITHIN_DAYS};

/// Expiry status of a credential, shown as colour *and* text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialStatus {
    Ok,
    Warn,
    Critical,
    Expired,
    Revoked,
    /// A token switched off with `botgate token disable`.
    Disabled,
}

impl CredentialStatus {
    /// The status of a credential expiring at `expires_at`, at `now`.
    pub fn at(expires_at: DateTime<Utc>, revoked: bool, now: DateTime<Utc>) -> Self {
        let left = expires_at - now;
        if revoked {
            CredentialStatus::Revoked
        } else if left <= Duration::zero() {
            CredentialStatus::Expired
        } else if left <= Duration::days(CRITICAL_WITHIN_DAYS) {
            CredentialStatus::Critical
        } else if left <= Duration::days(WARN_WITHIN_DAYS) {
            CredentialStatus::Warn
        } else {
            CredentialStatus::Ok
        }
    }

    /// The text label shown beside the colour (so monochrome terminals still tell them apart).
    pub fn label(self) -> &'static str {
        match self {
            CredentialStatus::Ok => "ok",
            CredentialStatus::Warn => "warn",
            CredentialStatus::Critical => "critical",
            CredentialStatus::Expired => "expired",
            CredentialStatus::Revoked => "revoked",
            CredentialStatus::Disabled => "disabled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_thresholds_are_inclusive() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |d: Duration| CredentialStatus::at(now + d, false, now);
        assert_eq!(at(Duration::days(31)), CredentialStatus::Ok);
        assert_eq!(at(Duration::days(30)), CredentialStatus::Warn);
        assert_eq!(at(Duration::days(8)), CredentialStatus::Warn);
        assert_eq!(at(Duration::days(7)), CredentialStatus::Critical);
        assert_eq!(at(Duration::seconds(1)), CredentialStatus::Critical);
        assert_eq!(at(Duration::zero()), CredentialStatus::Expired);
        assert_eq!(
            CredentialStatus::at(now - Duration::days(1), true, now),
            CredentialStatus::Revoked
        );
    }
}
