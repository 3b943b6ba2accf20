//! Identify a request from its headers: exactly one `CF-Access-Client-Id` and one
//! `CF-Access-Client-Secret`, or neither. Anything in between is refused, never guessed.

use chrono::{DateTime, Utc};
use hyper::HeaderMap;

use super::deny::DenyReason;
use super::snapshot::{CredentialSnapshot, TokenEntry};
use crate::credential::{self, SecretHash};

pub const CLIENT_ID_HEADER: &str = "cf-access-client-id";
pub const CLIENT_SECRET_HEADER: &str = "cf-access-client-secret";

/// The outcome of reading token headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck<'s> {
    /// No token headers at all.
    Absent,
    /// A valid, live token (its snapshot entry and the snapshot's Client ID, shared), and
    /// which of its secrets was presented.
    Valid {
        client_id: &'s std::sync::Arc<str>,
        entry: &'s TokenEntry,
        secret_version: u32,
    },
    /// Refused; the client id and token name are kept when known (they are not secret).
    Refused {
        reason: DenyReason,
        client_id: Option<String>,
        name: Option<&'s str>,
    },
}

/// Where a request carries an OIDC workload token, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadToken<'h> {
    Absent,
    /// In `cf-access-token` (ours: always a credential).
    Header(&'h str),
    /// In `Authorization: Bearer` (a credential only when JWT-shaped, issuers are configured
    /// and no service-token headers are sent; otherwise it is the upstream's and passes).
    Bearer(&'h str),
    Refused(DenyReason),
}

impl<'h> WorkloadToken<'h> {
    pub fn jwt(self) -> Option<&'h str> {
        match self {
            WorkloadToken::Header(t) | WorkloadToken::Bearer(t) => Some(t),
            _ => None,
        }
    }
}

/// Find the workload token of a request. `cf-access-token` beside service-token headers, or
/// twice, is refused: two credentials are never guessed between.
pub fn workload_token(headers: &HeaderMap, issuers_configured: bool) -> WorkloadToken<'_> {
    let has_token_headers =
        headers.contains_key(CLIENT_ID_HEADER) || headers.contains_key(CLIENT_SECRET_HEADER);
    let mut own = headers.get_all(crate::oidc::TOKEN_HEADER).iter();
    if let Some(v) = own.next() {
        if own.next().is_some() || has_token_headers {
            return WorkloadToken::Refused(DenyReason::DuplicateCredentialHeaders);
        }
        return match v.to_str() {
            Ok(t) => WorkloadToken::Header(t.trim()),
            Err(_) => WorkloadToken::Refused(DenyReason::OidcMalformed),
        };
    }
    if !issuers_configured || has_token_headers {
        return WorkloadToken::Absent;
    }
    let mut auth = headers.get_all(hyper::header::AUTHORIZATION).iter();
    let (Some(v), None) = (auth.next(), auth.next()) else {
        return WorkloadToken::Absent;
    };
    let Some(token) = v
        .to_str()
        .ok()
        .and_then(|s| {
            s.strip_prefix("Bearer ")
                .or_else(|| s.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return WorkloadToken::Absent;
    };
    if crate::oidc::token::looks_like_jwt(token) {
        WorkloadToken::Bearer(token)
    } else {
        WorkloadToken::Absent
    }
}

/// Check the token headers against the snapshot at `now`.
pub fn check_token<'s>(
    headers: &HeaderMap,
    snapshot: &'s CredentialSnapshot,
    now: DateTime<Utc>,
) -> TokenCheck<'s> {
    let mut ids = headers.get_all(CLIENT_ID_HEADER).iter();
    let mut secrets = headers.get_all(CLIENT_SECRET_HEADER).iter();
    let (id, secret) = match (ids.next(), secrets.next()) {
        (None, None) => return TokenCheck::Absent,
        (Some(i), Some(s)) => (i, s),
        _ => return refused(DenyReason::HalfCredentials, None, None),
    };
    if ids.next().is_some() || secrets.next().is_some() {
        return refused(DenyReason::DuplicateCredentialHeaders, None, None);
    }
    let Ok(id) = id.to_str() else {
        return refused(DenyReason::MalformedClientId, None, None);
    };
    let id = id.trim();
    if !credential::ClientId::is_valid(id) {
        return refused(DenyReason::MalformedClientId, None, None);
    }
    let client_id = id.to_string();
    let secret = secret.to_str().map(str::trim).unwrap_or("");
    // Hash before any lookup so the work done does not depend on whether the id exists.
    let presented = SecretHash::of(secret);
    if !credential::looks_like_secret(secret) || !credential::checksum_matches(secret) {
        let name = snapshot.tokens.get(id).map(|t| &*t.name);
        return refused(DenyReason::MalformedSecret, Some(client_id), name);
    }
    let Some((key, entry)) = snapshot.tokens.get_key_value(id) else {
        return refused(DenyReason::UnknownClientId, Some(client_id), None);
    };
    // Both secrets are compared whatever the first answer, so timing does not tell which.
    let current = entry.secret_hash.matches(&presented);
    let previous = entry
        .previous
        .as_ref()
        .map(|(hash, until)| (hash.matches(&presented), *until));
    let secret_version = match (current, previous) {
        (true, _) => entry.secret_version,
        (false, Some((true, until))) if now < until => entry.secret_version.saturating_sub(1),
        (false, Some((true, _))) => {
            return refused(
                DenyReason::TokenSecretSuperseded,
                Some(client_id),
                Some(&entry.name),
            );
        }
        _ => return refused(DenyReason::BadSecret, Some(client_id), Some(&entry.name)),
    };
    // Status is only revealed (in the audit log) to a holder of the right secret.
    if let Some(reason) = entry.refusal(now) {
        return refused(reason, Some(client_id), Some(&entry.name));
    }
    TokenCheck::Valid {
        client_id: key,
        entry,
        secret_version,
    }
}

fn refused<'s>(
    reason: DenyReason,
    client_id: Option<String>,
    name: Option<&'s str>,
) -> TokenCheck<'s> {
    TokenCheck::Refused {
        reason,
        client_id,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{ClientId, ClientSecret};

    fn snap(
        id: &ClientId,
        secret: &ClientSecret,
        revoked: bool,
        expires_in_days: i64,
    ) -> CredentialSnapshot {
        let mut s = CredentialSnapshot::default();
        s.tokens.insert(
            id.as_str().into(),
            TokenEntry {
                name: "ci-deploy-prod".into(),
                secret_hash: secret.hash(),
                expires_at: Utc::now() + chrono::Duration::days(expires_in_days),
                revoked,
                disabled: false,
                secret_version: 1,
                previous: None,
                bounds: Default::default(),
            },
        );
        s
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn valid_missing_half_duplicate() {
        let (id, sec) = (ClientId::generate(), ClientSecret::generate());
        let s = snap(&id, &sec, false, 10);
        let now = Utc::now();
        assert!(matches!(
            check_token(
                &headers(&[
                    (CLIENT_ID_HEADER, id.as_str()),
                    (CLIENT_SECRET_HEADER, sec.expose())
                ]),
                &s,
                now
            ),
            TokenCheck::Valid { .. }
        ));
        assert_eq!(check_token(&headers(&[]), &s, now), TokenCheck::Absent);
        let half = check_token(&headers(&[(CLIENT_ID_HEADER, id.as_str())]), &s, now);
        assert!(matches!(
            half,
            TokenCheck::Refused {
                reason: DenyReason::HalfCredentials,
                ..
            }
        ));
        let dup = headers(&[
            (CLIENT_ID_HEADER, id.as_str()),
            (CLIENT_ID_HEADER, id.as_str()),
            (CLIENT_SECRET_HEADER, sec.expose()),
        ]);
        assert!(matches!(
            check_token(&dup, &s, now),
            TokenCheck::Refused {
                reason: DenyReason::DuplicateCredentialHeaders,
                ..
            }
        ));
    }

    #[test]
    fn wrong_secret_revoked_expired() {
        let (id, sec) = (ClientId::generate(), ClientSecret::generate());
        let other = ClientSecret::generate();
        let now = Utc::now();
        let h = headers(&[
            (CLIENT_ID_HEADER, id.as_str()),
            (CLIENT_SECRET_HEADER, other.expose()),
        ]);
        assert!(matches!(
            check_token(&h, &snap(&id, &sec, false, 10), now),
            TokenCheck::Refused {
                reason: DenyReason::BadSecret,
                ..
            }
        ));
        let h = headers(&[
            (CLIENT_ID_HEADER, id.as_str()),
            (CLIENT_SECRET_HEADER, sec.expose()),
        ]);
        assert!(matches!(
            check_token(&h, &snap(&id, &sec, true, 10), now),
            TokenCheck::Refused {
                reason: DenyReason::TokenRevoked,
                ..
            }
        ));
        assert!(matches!(
            check_token(&h, &snap(&id, &sec, false, -1), now),
            TokenCheck::Refused {
                reason: DenyReason::TokenExpired,
                ..
            }
        ));
    }
}
