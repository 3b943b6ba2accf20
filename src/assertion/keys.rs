//! One signing key: generated here (RSA 2048 through `pki::keys`, P-256 through ring), parsed
//! into ring for signing and verifying, published as a JWK and a self-signed certificate.
//! Every signature is made by ring (RS256 = RSASSA-PKCS1-v1_5 with SHA-256, ES256 = ECDSA P-256
//! with SHA-256 in the fixed-length JOSE form).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use sha2::{Digest, Sha256};

/// The JWS algorithms botgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Alg {
    /// The hosted product's algorithm (the default).
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// `RS256` or `ES256` (case-insensitive).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            _ => Err(format!(
                "assertion algorithm {text:?} is not supported: use \"RS256\" (the default) or \"ES256\""
            )),
        }
    }
}

/// A freshly generated key, ready for the store.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: Alg,
    /// PKCS#8 PEM.
    pub private_pem: String,
    pub public_jwk: serde_json::Value,
    pub cert_pem: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Generate a key for `alg`. The kid is the SHA-256 (hex) of the public key's
/// SubjectPublicKeyInfo, as long as the hosted product's and stable for the key.
pub fn generate(alg: Alg, now: DateTime<Utc>) -> Result<GeneratedKey, String> {
    let algorithm = match alg {
        Alg::Rs256 => crate::pki::KeyAlgorithm::Rsa2048,
        Alg::Es256 => crate::pki::KeyAlgorithm::EcdsaP256,
    };
    let pair = algorithm.generate().map_err(|e| e.to_string())?;
    let kid = hex::encode(Sha256::digest(
        rcgen::PublicKeyData::subject_public_key_info(&pair),
    ));
    let private_pem = pair.serialize_pem();
    let key = SigningKey::from_pkcs8(kid.clone().into(), alg, &pair.serialize_der())?;
    let cert_pem = self_signed(&pair, &kid, now)?;
    Ok(GeneratedKey {
        public_jwk: key.jwk(),
        kid,
        alg,
        private_pem,
        cert_pem,
    })
}

/// A certificate for the key (the key set's `public_cert`), valid for two years.
fn self_signed(pair: &rcgen::KeyPair, kid: &str, now: DateTime<Utc>) -> Result<String, String> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("botgate assertion signing key {}", &kid[..16]),
    );
    let start = time::OffsetDateTime::from_unix_timestamp(now.timestamp() - 60)
        .map_err(|e| e.to_string())?;
    params.not_before = start;
    params.not_after = start + time::Duration::days(730);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params
        .self_signed(pair)
        .map(|c| c.pem())
        .map_err(|e| format!("cannot self-sign the key's certificate: {e}"))
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A key parsed for signing and verifying.
pub struct SigningKey {
    pub kid: Arc<str>,
    pub alg: Alg,
    signer: Signer,
    /// The public key as ring verifies with it (RSA: DER RSAPublicKey; EC: the point).
    public: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parse a stored key (PKCS#8 PEM).
    pub fn from_pem(kid: Arc<str>, alg: Alg, pem: &str) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("signing key {kid}: not a PKCS#8 PEM key ({e})"))?;
        Self::from_pkcs8(kid, alg, der.secret_pkcs8_der())
    }

    fn from_pkcs8(kid: Arc<str>, alg: Alg, der: &[u8]) -> Result<Self, String> {
        let bad =
            |e: ring::error::KeyRejected| format!("signing key {kid} ({}): {e}", alg.as_str());
        let (signer, public) = match alg {
            Alg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(bad)?;
                let public = pair.public().as_ref().to_vec();
                (Signer::Rsa(pair), public)
            }
            Alg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(bad)?;
                let public = pair.public_key().as_ref().to_vec();
                (Signer::Ec(pair), public)
            }
        };
        Ok(Self {
            kid,
            alg,
            signer,
            public,
        })
    }

    /// The JWS signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| format!("RSA signing with key {} failed", self.kid))?;
                Ok(sig)
            }
            Signer::Ec(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| format!("ECDSA signing with key {} failed", self.kid)),
        }
    }

    /// Whether `sig` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        signature::UnparsedPublicKey::new(alg, &self.public)
            .verify(message, sig)
            .is_ok()
    }

    /// The public key as a JWK (RFC 7517), with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> serde_json::Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &self.signer {
            Signer::Rsa(pair) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                serde_json::json!({
                    "kid": &*self.kid, "kty": "RSA", "alg": "RS256", "use": "sig",
                    "e": b64(&c.e), "n": b64(&c.n),
                })
            }
            Signer::Ec(_) => {
                // The uncompressed point: 0x04, x (32 bytes), y (32 bytes).
                let (x, y) = self.public[1..].split_at(32);
                serde_json::json!({
                    "kid": &*self.kid, "kty": "EC", "alg": "ES256", "use": "sig",
                    "crv": "P-256", "x": b64(x), "y": b64(y),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_what_they_verify_and_publish_their_public_half() {
        for alg in [Alg::Rs256, Alg::Es256] {
            let g = generate(alg, Utc::now()).unwrap();
            assert_eq!(g.kid.len(), 64);
            assert!(g.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            let key = SigningKey::from_pem(g.kid.clone().into(), alg, &g.private_pem).unwrap();
            let sig = key.sign(b"header.payload").unwrap();
            assert!(key.verify(b"header.payload", &sig));
            assert!(!key.verify(b"header.payloae", &sig));
            assert_eq!(g.public_jwk, key.jwk());
            assert_eq!(g.public_jwk["kid"], g.kid.as_str());
            assert_eq!(g.public_jwk["alg"], alg.as_str());
            assert!(
                !g.public_jwk.to_string().contains("\"d\""),
                "no private part"
            );
        }
    }

    #[test]
    fn unknown_algorithms_are_refused_by_name() {
        assert_eq!(Alg::parse("es256"), Ok(Alg::Es256));
        let e = Alg::parse("HS256").unwrap_err();
        assert!(e.contains("HS256") && e.contains("RS256"), "{e}");
    }
}
