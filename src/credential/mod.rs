//! Service-token credentials: the Client ID and Client Secret formats, generation, checksum,
//! hashing and constant-time comparison. Knows nothing about HTTP or storage.
//!
//! Client ID: 32 lowercase hex + `.access`. Client Secret: `bgs_` + 40 base62 + 6 base62 of the
//! CRC32 of the first 44 characters, so scanners find secrets and reject look-alikes offline.
//! Only the SHA-256 of a secret is ever stored.

pub mod oidc;

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix every botgate secret starts with.
pub const SECRET_PREFIX: &str = "bgs_";
const SECRET_BODY_LEN: usize = 40;
const CHECKSUM_LEN: usize = 6;
/// Total length of a Client Secret.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + SECRET_BODY_LEN + CHECKSUM_LEN;
const CLIENT_ID_SUFFIX: &str = ".access";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented credential string is malformed. Never carries the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("client id must be 32 lowercase hex characters followed by \".access\"")]
    BadClientId,
    #[error("client secret must be \"bgs_\" followed by 46 base62 characters")]
    BadSecretFormat,
    #[error("client secret checksum does not match (a typo or a look-alike)")]
    BadChecksum,
}

/// A syntactically valid Client ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh random Client ID.
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        Self(format!("{}{CLIENT_ID_SUFFIX}", hex::encode(bytes)))
    }

    /// Parse a presented Client ID.
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(CredentialError::BadClientId)
        }
    }

    /// Whether `s` is a well-formed Client ID (no allocation; for the request path).
    pub fn is_valid(s: &str) -> bool {
        s.strip_suffix(CLIENT_ID_SUFFIX).is_some_and(|hex| {
            hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Client Secret in memory. `Debug` and `Display` never show it; use `expose` on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// A fresh random secret with a valid checksum.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut s = String::with_capacity(SECRET_LEN);
        s.push_str(SECRET_PREFIX);
        for _ in 0..SECRET_BODY_LEN {
            s.push(BASE62[rng.random_range(0..62)] as char);
        }
        let sum = checksum(&s);
        s.push_str(&sum);
        Self(s)
    }

    /// Parse a presented secret, checking format and checksum.
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        if !looks_like_secret(s) {
            return Err(CredentialError::BadSecretFormat);
        }
        if !checksum_matches(s) {
            return Err(CredentialError::BadChecksum);
        }
        Ok(Self(s.to_string()))
    }

    /// The secret text, for printing once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash that is stored.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    /// `bgs_abcd…wxyz` (first 4 and last 4 of the body), for scan reports.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// SHA-256 of a secret: the only form that is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hash any presented string (even malformed, so timing does not depend on format).
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }
}

/// True when `s` has the shape of a secret (prefix, length, alphabet), checksum not checked.
pub fn looks_like_secret(s: &str) -> bool {
    s.len() == SECRET_LEN
        && s.starts_with(SECRET_PREFIX)
        && s.bytes()
            .skip(SECRET_PREFIX.len())
            .all(|b| b.is_ascii_alphanumeric())
}

/// True when the last 6 characters are the CRC32 of the rest.
pub fn checksum_matches(s: &str) -> bool {
    s.len() == SECRET_LEN
        && s.is_char_boundary(SECRET_LEN - CHECKSUM_LEN)
        && checksum(&s[..SECRET_LEN - CHECKSUM_LEN]) == s[SECRET_LEN - CHECKSUM_LEN..]
}

/// Mask a secret-shaped string for display: prefix, 4 + … + 4.
pub fn mask(s: &str) -> String {
    if s.len() < 12 || !s.is_ascii() {
        return "****".to_string();
    }
    format!("{}…{}", &s[..8], &s[s.len() - 4..])
}

fn checksum(s: &str) -> String {
    let mut n = crc32fast::hash(s.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    // 62^6 > 2^32, so six digits always hold the CRC32; the bytes are ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

/// Names follow `<team>-<purpose>-<env>`: at least three lowercase dash-separated parts.
pub fn follows_naming_convention(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A token name accepted by the store: 1–64 chars of `[A-Za-z0-9._-]`, starting alphanumeric.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid token name {name:?}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit (convention: <team>-<purpose>-<env>, e.g. ci-deploy-prod)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_credentials_parse() {
        let id = ClientId::generate();
        assert_eq!(ClientId::parse(id.as_str()).unwrap(), id);
        let s = ClientSecret::generate();
        assert_eq!(s.expose().len(), SECRET_LEN);
        assert!(ClientSecret::parse(s.expose()).is_ok());
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = ClientSecret::generate();
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn client_id_rejects_uppercase_and_wrong_suffix() {
        assert!(ClientId::parse("0123456789ABCDEF0123456789abcdef.access").is_err());
        assert!(ClientId::parse("0123456789abcdef0123456789abcdef.acces").is_err());
        assert!(ClientId::parse("0123456789abcdef0123456789abcdef.access").is_ok());
    }

    #[test]
    fn naming_convention() {
        assert!(follows_naming_convention("ci-deploy-prod"));
        assert!(follows_naming_convention("ci-deploy-prod-v2"));
        assert!(!follows_naming_convention("deploy"));
        assert!(!follows_naming_convention("CI-deploy-prod"));
    }

    proptest! {
        #[test]
        fn one_changed_character_is_rejected(pos in 4usize..SECRET_LEN, c in proptest::char::range('0', 'z')) {
            let s = ClientSecret::generate();
            let mut bytes = s.expose().as_bytes().to_vec();
            prop_assume!(c.is_ascii_alphanumeric() && bytes[pos] != c as u8);
            bytes[pos] = c as u8;
            let changed = String::from_utf8(bytes).unwrap();
            // Either the checksum catches it, or (never for a single change) the hash differs.
            prop_assert!(ClientSecret::parse(&changed).is_err() || !s.hash().matches(&SecretHash::of(&changed)));
            prop_assert!(!s.hash().matches(&SecretHash::of(&changed)));
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = ClientSecret::parse(&s);
            let _ = ClientId::parse(&s);
            let _ = mask(&s);
        }
    }
}
