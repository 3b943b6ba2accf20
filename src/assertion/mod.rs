//! Signed identity for the origin: the `Cf-Access-Jwt-Assertion` JWT the gate adds to every
//! forwarded request, the keys that sign it (in the store, shared by every gate) and the public
//! key set origins verify it with (`/cdn-cgi/access/certs`, the hosted product's shape).
//!
//! - `keys`: generating, parsing and publishing one key;
//! - `jwt`: the claims, signing and verifying;
//! - `lifecycle`: a key's state (next, active, retiring) from its timestamps, and the steps of a
//!   rotation (publish ahead, activate, keep the old key published for the overlap, remove);
//! - `KeyRing` (here): the keys a gate signs and verifies with, built from the store's rows.

pub mod jwt;
pub mod keys;
pub mod lifecycle;
mod settings;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::signing_keys::SigningKeyRecord;
pub use keys::{Alg, SigningKey};
pub use settings::{SettingError, Settings};

/// The request header the assertion travels in (the hosted product's name).
pub const HEADER: &str = "cf-access-jwt-assertion";
/// Where every gate listener and the admin listener publish the key set.
pub const CERTS_PATH: &str = "/cdn-cgi/access/certs";
/// Where a holder of an assertion can ask what it says.
pub const IDENTITY_PATH: &str = "/cdn-cgi/access/get-identity";

/// One published key.
#[derive(Debug)]
struct RingKey {
    key: SigningKey,
    activates_at: DateTime<Utc>,
    jwk: serde_json::Value,
    cert_pem: String,
}

/// The keys of the store's key set, parsed. Immutable; rebuilt when the store's keys change.
#[derive(Debug, Default)]
pub struct KeyRing {
    /// By activation, oldest first (the store's order).
    keys: Vec<RingKey>,
}

impl KeyRing {
    /// Parse the stored keys; a row that does not parse is left out (and logged by kid, never
    /// its content).
    pub fn from_records(records: &[SigningKeyRecord]) -> Self {
        let mut keys: Vec<RingKey> = records
            .iter()
            .filter_map(|r| {
                let parsed = Alg::parse(&r.alg)
                    .and_then(|alg| SigningKey::from_pem(r.kid.as_str().into(), alg, &r.private_pem));
                match parsed {
                    Ok(key) => Some(RingKey {
                        jwk: key.jwk(),
                        key,
                        activates_at: r.activates_at,
                        cert_pem: r.cert_pem.clone(),
                    }),
                    Err(e) => {
                        tracing::error!(kid = %r.kid, error = %e, "an assertion signing key in the store cannot be used");
                        None
                    }
                }
            })
            .collect();
        keys.sort_by_key(|k| k.activates_at);
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key gates sign with at `now` (`lifecycle::active_index`).
    pub fn signer(&self, now: DateTime<Utc>) -> Option<&SigningKey> {
        let i = lifecycle::active_index(self.keys.iter().map(|k| k.activates_at), now)?;
        Some(&self.keys[i].key)
    }

    /// A published key by kid.
    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().map(|k| &k.key).find(|k| &*k.kid == kid)
    }

    /// The key set in the hosted product's shape: every published key as a JWK, the signing
    /// key's certificate as `public_cert`, every certificate in `public_certs`.
    pub fn key_set(&self, now: DateTime<Utc>) -> serde_json::Value {
        let cert = |k: &RingKey| serde_json::json!({ "kid": &*k.key.kid, "cert": k.cert_pem });
        let signer = lifecycle::active_index(self.keys.iter().map(|k| k.activates_at), now);
        serde_json::json!({
            "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
            "public_cert": signer.map(|i| cert(&self.keys[i])),
            "public_certs": self.keys.iter().map(cert).collect::<Vec<_>>(),
        })
    }
}

/// A shared key ring handle.
pub type SharedKeyRing = Arc<KeyRing>;

/// A fresh random audience tag: 32 random bytes in hex (as long as the hosted product's).
pub fn new_audience_tag() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}
