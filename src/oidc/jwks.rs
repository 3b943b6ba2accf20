//! An issuer's key set (RFC 7517 JWKS) parsed into keys ring verifies with. Keys that cannot
//! sign (`use` other than `sig`), of a type botgate does not verify, or malformed are skipped
//! and counted; a set without one usable key is an error.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// The largest key-set document read (GitHub's is ~2 KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys one set may hold.
const MAX_KEYS: usize = 64;

/// The asymmetric JWS algorithms accepted from issuers. `none` and the HMAC family are never
/// accepted: a public key used as an HMAC secret is the classic algorithm-confusion forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a JOSE header names, exactly (JOSE names are case-sensitive).
    pub fn from_jose(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// An algorithm name as written in `algorithms = [...]`, with why it is refused.
    pub fn parse_config(name: &str) -> Result<Alg, String> {
        if let Some(a) = Alg::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
        {
            return Ok(a);
        }
        let upper = name.to_ascii_uppercase();
        let all: Vec<&str> = Alg::ALL.iter().map(|a| a.as_str()).collect();
        Err(if upper == "NONE" {
            "\"none\" is refused: an unsigned token proves nothing".to_string()
        } else if upper.starts_with("HS") {
            format!(
                "{name:?} is refused: HMAC needs a secret shared with the issuer, and with a public key set it lets anyone who has the public key forge tokens (algorithm confusion); use {}",
                all.join(", ")
            )
        } else {
            format!("unknown algorithm {name:?}; use one of {}", all.join(", "))
        })
    }

    fn kty(self) -> &'static str {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => "RSA",
            Alg::ES256 | Alg::ES384 => "EC",
            Alg::EdDSA => "OKP",
        }
    }
}

/// A public key of one issuer's set.
#[derive(Debug, Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    /// The key's own `alg`, when the set names one: then only that algorithm is verified.
    pub alg: Option<Alg>,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// SEC1 uncompressed point (0x04 ‖ x ‖ y).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl VerifyKey {
    /// Whether this key can verify `alg` (its type fits, and its own `alg` if any is that one).
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        matches!(
            (&self.key, alg),
            (
                PublicKey::Rsa { .. },
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ) | (PublicKey::P256(_), Alg::ES256)
                | (PublicKey::P384(_), Alg::ES384)
                | (PublicKey::Ed25519(_), Alg::EdDSA)
        )
    }

    /// Whether `sig` is this key's `alg` signature over `message` (false when it does not fit).
    pub fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(k) => UnparsedPublicKey::new(&signature::ED25519, k)
                .verify(message, sig)
                .is_ok(),
        }
    }

    /// `RSA 2048`, `EC P-256`, `OKP Ed25519`.
    pub fn describe(&self) -> String {
        match &self.key {
            PublicKey::Rsa { n, .. } => {
                let lead = n.iter().take_while(|b| **b == 0).count();
                format!("RSA {}", (n.len() - lead) * 8)
            }
            PublicKey::P256(_) => "EC P-256".into(),
            PublicKey::P384(_) => "EC P-384".into(),
            PublicKey::Ed25519(_) => "OKP Ed25519".into(),
        }
    }
}

/// The usable keys of one key-set document.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    /// Keys in the document that were not usable (another `use`, type or curve; malformed).
    pub skipped: usize,
}

impl KeySet {
    /// Parse a JWKS document.
    pub fn parse(doc: &[u8]) -> Result<KeySet, String> {
        if doc.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the key set is {} bytes, over the {MAX_JWKS_BYTES}-byte limit",
                doc.len()
            ));
        }
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(doc).map_err(|e| {
            format!("not a JSON Web Key Set (an object with a \"keys\" array): {e}")
        })?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!(
                "the key set has {} keys, over the limit of {MAX_KEYS}",
                doc.keys.len()
            ));
        }
        let mut set = KeySet::default();
        for jwk in &doc.keys {
            match parse_jwk(jwk) {
                Some(k) => set.keys.push(k),
                None => set.skipped += 1,
            }
        }
        if set.keys.is_empty() {
            return Err(format!(
                "the key set has no usable signing key ({} skipped: botgate verifies RSA ≥ 2048 bits, EC P-256/P-384 and Ed25519 keys with use \"sig\")",
                set.skipped
            ));
        }
        Ok(set)
    }

    /// The key ids, in document order (`-` for a key without one).
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.kid.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// The keys that may have made a signature with header `kid` and `alg`: the key with that
    /// id, or without a `kid` every key that fits the algorithm.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Alg,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys.iter().filter(move |k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => k.fits(alg),
        })
    }
}

fn parse_jwk(jwk: &serde_json::Value) -> Option<VerifyKey> {
    let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    let bytes = |name: &str| field(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match field("alg") {
        Some(a) => Some(Alg::from_jose(a)?),
        None => None,
    };
    let key = match (field("kty")?, field("crv")) {
        ("RSA", _) => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            let lead = n.iter().take_while(|b| **b == 0).count();
            if (n.len() - lead) * 8 < 2048 || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            let size = if crv == "P-256" { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if size == 32 {
                PublicKey::P256(point)
            } else {
                PublicKey::P384(point)
            }
        }
        ("OKP", Some("Ed25519")) => {
            let x = bytes("x")?;
            if x.len() != 32 {
                return None;
            }
            PublicKey::Ed25519(x)
        }
        _ => return None,
    };
    let k = VerifyKey {
        kid: field("kid").map(str::to_string),
        alg,
        key,
    };
    // A key whose own alg it cannot verify is unusable.
    if let Some(a) = alg
        && (!k.fits(a) || a.kty() != field("kty")?)
    {
        return None;
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_none_and_hmac_at_load() {
        assert!(Alg::parse_config("none").unwrap_err().contains("unsigned"));
        assert!(
            Alg::parse_config("HS256")
                .unwrap_err()
                .contains("algorithm confusion")
        );
        assert_eq!(Alg::parse_config("rs256"), Ok(Alg::RS256));
        assert!(Alg::parse_config("XX1").unwrap_err().contains("unknown"));
    }

    #[test]
    fn parses_and_skips() {
        let ec = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ec.as_ref(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        use ring::signature::KeyPair as _;
        let point = pair.public_key().as_ref();
        let doc = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
              "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]) },
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny" },
            { "kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "", "y": "" }
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.kids(), vec!["k1"]);
        assert_eq!(set.skipped, 3);
        let sig = pair
            .sign(&ring::rand::SystemRandom::new(), b"hello")
            .unwrap();
        let k = set.candidates(Some("k1"), Alg::ES256).next().unwrap();
        assert!(k.verify(Alg::ES256, b"hello", sig.as_ref()));
        assert!(!k.verify(Alg::ES256, b"hellO", sig.as_ref()));
        assert!(!k.verify(Alg::RS256, b"hello", sig.as_ref()));
        assert_eq!(k.describe(), "EC P-256");
        assert!(KeySet::parse(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::parse(b"[1,2]").is_err());
    }
}
