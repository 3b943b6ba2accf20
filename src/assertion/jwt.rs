//! The assertion as a compact JWS (RFC 7515/7519): its claims, signing with a ring key, and
//! verifying one against the key ring (for `/cdn-cgi/access/get-identity`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::KeyRing;
use super::keys::SigningKey;

/// The longest assertion `verify` reads (ours are well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an assertion, in the hosted product's names, plus botgate's `policy` and
/// `connection_method` (and the certificate's fingerprint and SPIFFE ID for mTLS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// One audience tag, in a list as the hosted product sends it.
    pub aud: Vec<String>,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Always `app`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Empty for non-human identities, as the hosted product sends it.
    pub sub: String,
    /// The Client ID for service tokens, the certificate CN for mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// The policy that admitted the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `service_token`, `mtls` or `none`.
    pub connection_method: String,
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// Sign `claims` with `key`: `header.payload.signature`, each base64url without padding (the
/// assertion's `Claims`, or any claims object: the demo's OIDC issuer signs its job tokens here).
pub fn sign<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, String> {
    let header = Header {
        alg: key.alg.as_str(),
        kid: &key.kid,
        typ: "JWT",
    };
    let mut out = String::with_capacity(1024);
    let header = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    URL_SAFE_NO_PAD.encode_string(header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

/// Why an assertion does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a JWT (three base64url parts with a JSON header and payload)")]
    Malformed,
    #[error("longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("signed with key {0:?}, which is not in the key set")]
    UnknownKey(String),
    #[error("the header's alg {0:?} is not the key's")]
    WrongAlgorithm(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
}

/// Verify `token` against `keys` at `now` (Unix seconds): signature by a key in the set with
/// the header's `alg`, then `nbf ≤ now < exp`.
pub fn verify(token: &str, keys: &KeyRing, now: i64) -> Result<Claims, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| VerifyError::Malformed)
    };
    let header_bytes = decode(h)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Malformed)?;
    let key = keys
        .key(header.kid)
        .ok_or_else(|| VerifyError::UnknownKey(header.kid.to_string()))?;
    if header.alg != key.alg.as_str() {
        return Err(VerifyError::WrongAlgorithm(header.alg.to_string()));
    }
    let signed_len = h.len() + 1 + p.len();
    if !key.verify(&token.as_bytes()[..signed_len], &decode(s)?) {
        return Err(VerifyError::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&decode(p)?).map_err(|_| VerifyError::Malformed)?;
    if now >= claims.exp {
        return Err(VerifyError::Expired);
    }
    if now < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}
