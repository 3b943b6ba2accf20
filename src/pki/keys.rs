//! Key generation and key-type naming. ECDSA P-256 keys come from ring via rcgen; RSA keys come
//! from the `rsa` crate, because ring (our only crypto backend, to keep aws-lc out) cannot
//! generate RSA keys. The RSA key is exported as PKCS#8 and imported into rcgen, so every
//! signature is still made by ring.

use rcgen::KeyPair;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::PkiError;

/// Key algorithms botgate generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyAlgorithm {
    EcdsaP256,
    Rsa2048,
    Rsa4096,
}

impl KeyAlgorithm {
    /// Human name, as shown in inventories ("ECDSA P-256", "RSA 2048").
    pub fn label(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::Rsa2048 => "RSA 2048",
            KeyAlgorithm::Rsa4096 => "RSA 4096",
        }
    }

    /// A fresh key pair.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        match self {
            KeyAlgorithm::EcdsaP256 => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
            KeyAlgorithm::Rsa2048 => generate_rsa(2048),
            KeyAlgorithm::Rsa4096 => generate_rsa(4096),
        }
    }
}

fn generate_rsa(bits: usize) -> Result<KeyPair, PkiError> {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = getrandom::SysRng;
    let key = rsa::PrivateKey::new(&mut rng, bits)
        .map_err(|e| PkiError::Crypto(format!("RSA {bits} key generation: {e}")))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| PkiError::Crypto(format!("RSA key encoding: {e}")))?;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes());
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &der,
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

/// Load a PKCS#8 PEM key as stored by botgate (RSA or ECDSA), picking the matching signature
/// algorithm (SHA-256 for RSA and P-256, SHA-384 for P-384).
pub fn load_key_pem(pem: &str) -> Result<KeyPair, PkiError> {
    let key = KeyPair::from_pem(pem)?;
    Ok(key)
}

/// "ECDSA P-256", "RSA 2048", "Ed25519" … from a SubjectPublicKeyInfo.
pub fn describe_spki(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                format!("RSA {}", modulus_bits(rsa.modulus))
            }
            _ => "RSA (unreadable key)".to_string(),
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_string(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_string(),
            Some(c) if c == OID_NIST_EC_P521 => "ECDSA P-521".to_string(),
            Some(c) => format!("ECDSA ({c})"),
            None => "ECDSA (unknown curve)".to_string(),
        }
    } else if *alg == OID_SIG_ED25519 {
        "Ed25519".to_string()
    } else if *alg == OID_SIG_ED448 {
        "Ed448".to_string()
    } else {
        format!("unknown ({alg})")
    }
}

/// RSA modulus sizes a client key may have: ring (the gate's TLS verifier) checks RSA signatures
/// for 2048 to 8192 bits only.
pub const RSA_CLIENT_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// What a CSR's key may be, said in refusals.
const SUPPORTED_CLIENT_KEYS: &str = "RSA 2048-8192, ECDSA P-256 or P-384, or Ed25519";

/// Whether a key can go into a client certificate the gate will accept (rustls with ring
/// verifies RSA 2048-8192, ECDSA P-256/P-384 and Ed25519 client signatures). `Err` says what
/// the key is and what to use instead.
pub fn check_client_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<(), String> {
    let alg = &spki.algorithm.algorithm;
    let described = describe_spki(spki);
    let supported = if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => return Err("the RSA key in it cannot be read (corrupt CSR)".to_string()),
        };
        if bits < *RSA_CLIENT_BITS.start() {
            return Err(format!(
                "its key is RSA {bits}, too small: RSA keys must have at least {} bits (make a new key, e.g. `openssl req -newkey rsa:{}`)",
                RSA_CLIENT_BITS.start(),
                RSA_CLIENT_BITS.start()
            ));
        }
        if bits > *RSA_CLIENT_BITS.end() {
            return Err(format!(
                "its key is RSA {bits}, too large: RSA keys may have at most {} bits",
                RSA_CLIENT_BITS.end()
            ));
        }
        true
    } else {
        described == "ECDSA P-256" || described == "ECDSA P-384" || *alg == OID_SIG_ED25519
    };
    if supported {
        Ok(())
    } else {
        Err(format!(
            "its key is {described}, which botgate cannot issue for (the gate's TLS stack could not verify it); use {SUPPORTED_CLIENT_KEYS}"
        ))
    }
}

/// Bit length of an unsigned big-endian modulus (leading zero bytes ignored).
fn modulus_bits(m: &[u8]) -> usize {
    let Some(first) = m.iter().position(|b| *b != 0) else {
        return 0;
    };
    let lead = m[first];
    (m.len() - first) * 8 - lead.leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignores_sign_byte() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn rsa_keys_are_generated_and_usable_by_rcgen() {
        let key = KeyAlgorithm::Rsa2048.generate().unwrap();
        assert!(std::ptr::eq(key.algorithm(), &rcgen::PKCS_RSA_SHA256));
        let reloaded = load_key_pem(&key.serialize_pem()).unwrap();
        assert_eq!(reloaded.public_key_raw(), key.public_key_raw());
    }
}
