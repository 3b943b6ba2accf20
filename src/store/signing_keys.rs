//! Rows for the origin assertion: the keys that sign `Cf-Access-Jwt-Assertion` (shared by every
//! gate on the store) and each app's audience tag. What a key's state means (next, active,
//! retiring) is `assertion::lifecycle`'s business; the store keeps the timestamps it derives
//! states from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::api::AdminFor;

/// One signing key as stored. The private key is PKCS#8 PEM; it never leaves the store except
/// into a gate's key ring (`Debug` leaves it out).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    pub private_pem: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// A self-signed certificate for the key (the key set's `public_cert`).
    pub cert_pem: String,
    pub created_at: DateTime<Utc>,
    /// When gates start signing with it (published in the key set from `created_at`).
    pub activates_at: DateTime<Utc>,
    /// The last state an admin event was written for (`""` before the first).
    pub announced: String,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("announced", &self.announced)
            .finish_non_exhaustive()
    }
}

/// A key to insert.
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub private_pem: &'a str,
    pub public_jwk: &'a str,
    pub cert_pem: &'a str,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    /// The state its creation's admin event announces (`next` or `active`).
    pub announced: &'a str,
}

/// Assertion signing keys and app audience tags.
#[async_trait]
pub trait SigningKeyStore {
    /// Insert a key with its admin journal row and a change-feed row (gates reload the key
    /// set). An existing kid is a `Conflict`.
    async fn insert_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<SigningKeyRecord, StoreError>;
    /// `insert_signing_key`, but only into a store that has no key yet (two gates starting on an
    /// empty store make one first key); `Ok(None)` when there is one.
    async fn insert_first_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError>;
    /// Every key, by `activates_at` then `created_at` (oldest first).
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Record that `kid` reached `state`, with its admin row, unless it was already announced
    /// in that state (then `Ok(None)`: another gate wrote the event first).
    async fn announce_signing_key(
        &self,
        kid: &str,
        state: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError>;
    /// Delete `kid` (its overlap is over) with its admin row and a change-feed row; `Ok(None)`
    /// when it is gone already.
    async fn remove_signing_key(
        &self,
        kid: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError>;
    /// The audience tag of each app in `wanted` (name, a fresh random tag): the stored one, or
    /// the fresh one stored now when the app has none. Two gates asking at once get the same.
    async fn app_audiences(
        &self,
        wanted: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Every app's audience tag (app name, tag), by app name.
    async fn list_app_audiences(&self) -> Result<Vec<(String, String)>, StoreError>;
}

/// The contract every backend meets (run by each backend's tests).
#[cfg(test)]
pub(crate) fn contract(store: &super::Store) {
    use super::wait;
    let t0 = chrono::TimeZone::timestamp_millis_opt(&Utc, 1_800_000_000_000).unwrap();
    let admin = |k: &SigningKeyRecord| super::AdminEntry {
        at: t0,
        action: "signing_key_test".into(),
        target: k.kid.clone(),
        details: serde_json::json!({ "kid": k.kid }),
        event_line: format!("{{\"kid\":\"{}\"}}", k.kid),
    };
    let new = |kid: &'static str, activates: i64| NewSigningKey {
        kid,
        alg: "ES256",
        private_pem: "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
        public_jwk: "{}",
        cert_pem: "cert",
        created_at: t0,
        activates_at: t0 + chrono::Duration::seconds(activates),
        announced: "next",
    };
    let first = wait(store.insert_first_signing_key(&new("first", 0), &admin)).unwrap();
    assert!(first.is_some(), "an empty store takes a first key");
    assert!(
        wait(store.insert_first_signing_key(&new("second", 0), &admin))
            .unwrap()
            .is_none(),
        "only one first key"
    );
    assert!(
        wait(store.remove_signing_key("first", &admin))
            .unwrap()
            .is_some()
    );
    let before = wait(store.change_version()).unwrap();
    let b = wait(store.insert_signing_key(&new("b", 60), &admin)).unwrap();
    let a = wait(store.insert_signing_key(&new("a", 0), &admin)).unwrap();
    assert_eq!(
        (a.announced.as_str(), b.activates_at),
        ("next", new("b", 60).activates_at)
    );
    assert!(
        wait(store.change_version()).unwrap() >= before + 2,
        "an insert is a change"
    );
    assert!(matches!(
        wait(store.insert_signing_key(&new("a", 5), &admin)),
        Err(StoreError::Conflict(_))
    ));
    let kids: Vec<String> = wait(store.list_signing_keys())
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["a", "b"], "ordered by activation");
    let done = wait(store.announce_signing_key("a", "active", &admin)).unwrap();
    assert_eq!(done.map(|k| k.announced), Some("active".to_string()));
    assert!(
        wait(store.announce_signing_key("a", "active", &admin))
            .unwrap()
            .is_none(),
        "announced once"
    );
    let journal = wait(store.journal_since(0)).unwrap();
    assert_eq!(
        journal.len(),
        5,
        "the first key and its removal, two inserts and one announcement journaled"
    );
    assert_eq!(
        wait(store.remove_signing_key("a", &admin))
            .unwrap()
            .map(|k| k.kid),
        Some("a".to_string())
    );
    assert!(
        wait(store.remove_signing_key("a", &admin))
            .unwrap()
            .is_none()
    );
    assert_eq!(wait(store.list_signing_keys()).unwrap().len(), 1);

    let first = wait(store.app_audiences(
        &[("api".into(), "t1".into()), ("web".into(), "t2".into())],
        t0,
    ))
    .unwrap();
    assert_eq!(
        first,
        [("api".into(), "t1".into()), ("web".into(), "t2".into())]
    );
    let again = wait(store.app_audiences(&[("api".into(), "other".into())], t0)).unwrap();
    assert_eq!(again, [("api".to_string(), "t1".to_string())], "stable");
    assert_eq!(wait(store.list_app_audiences()).unwrap(), first);
}
