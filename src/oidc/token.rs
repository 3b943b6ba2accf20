//! One workload JWT: split and decode it (size-capped), find its issuer by `iss`, verify the
//! signature with the issuer's keys, then `iss`, `aud`, `exp`/`nbf`/`iat` with the issuer's
//! leeway. Errors never carry the token.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::jwks::{Alg, KeySet};
use super::settings::IssuerSettings;
use crate::credential::oidc::OidcIdentity;

/// The longest token read (GitHub's are ~1.5 KiB, Kubernetes' ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a workload token is refused. The variants are the audit event's `deny_reason`s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("{0}")]
    Malformed(String),
    #[error("iss {0:?} is not a configured [[oidc_issuer]]")]
    UnknownIssuer(String),
    /// The header's `kid` is not in the issuer's key set (refresh, then `BadSignature`).
    #[error("signed with key {kid:?}, which is not in {issuer}'s key set")]
    UnknownKey { issuer: Arc<str>, kid: String },
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    NotYetValid(String),
    #[error("aud {0} names none of the issuer's audiences")]
    WrongAudience(String),
}

/// A token split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Parsed<'t> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    signed: &'t [u8],
    signature: Vec<u8>,
    pub claims: Map<String, Value>,
    /// The `iss` claim (a token without one is malformed).
    pub iss: String,
}

/// Whether `text` has a JWT's shape: three base64url parts (the first two non-empty).
pub fn looks_like_jwt(text: &str) -> bool {
    let mut parts = text.split('.');
    let b64 = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && b64(h) && b64(p) && b64(s)
    )
}

/// Split and decode `token`.
pub fn parse(token: &str) -> Result<Parsed<'_>, OidcError> {
    let bad = |m: &str| OidcError::Malformed(m.to_string());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::Malformed(format!(
            "the token is {} bytes, over the {MAX_TOKEN_BYTES}-byte limit",
            token.len()
        )));
    }
    if !looks_like_jwt(token) {
        return Err(bad("not a JWT (three base64url parts separated by dots)"));
    }
    let mut parts = token.splitn(3, '.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s)) => (h, p, s),
        _ => return Err(bad("not a JWT (three base64url parts separated by dots)")),
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| OidcError::Malformed(format!("the {what} is not base64url")))
    };
    let header: Map<String, Value> = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| bad("the header is not a JSON object"))?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = match Alg::from_jose(alg_name) {
        Some(a) => a,
        None if alg_name.eq_ignore_ascii_case("none") => {
            return Err(OidcError::BadSignature(
                "alg \"none\": an unsigned token is never accepted".into(),
            ));
        }
        None if alg_name.to_ascii_uppercase().starts_with("HS") => {
            return Err(OidcError::BadSignature(format!(
                "alg {alg_name:?} (HMAC) is never accepted from an issuer: its key set is public"
            )));
        }
        None => {
            return Err(OidcError::BadSignature(format!(
                "alg {alg_name:?} is not an algorithm botgate verifies"
            )));
        }
    };
    if header.contains_key("crit") {
        return Err(bad(
            "the header has crit extensions botgate does not understand",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= 256 => Some(k.clone()),
        Some(Value::String(_)) => return Err(bad("the header's kid is longer than 256 bytes")),
        Some(_) => return Err(bad("the header's kid is not a string")),
    };
    let claims: Map<String, Value> = serde_json::from_slice(&decode(p, "payload")?)
        .map_err(|_| bad("the payload is not a JSON object"))?;
    let iss = match claims.get("iss") {
        Some(Value::String(i)) => i.clone(),
        _ => return Err(bad("the payload has no iss (string)")),
    };
    Ok(Parsed {
        alg,
        kid,
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: decode(s, "signature")?,
        claims,
        iss,
    })
}

impl Parsed<'_> {
    /// Check the signature with `keys`, then the claims against `issuer` at `now` (Unix
    /// seconds). The identity keeps every claim but `aud`, `exp`, `nbf` and `iat`.
    pub fn verify(
        self,
        issuer: &IssuerSettings,
        keys: &KeySet,
        now: i64,
    ) -> Result<OidcIdentity, OidcError> {
        if !issuer.algorithms.contains(&self.alg) {
            let allowed: Vec<&str> = issuer.algorithms.iter().map(|a| a.as_str()).collect();
            return Err(OidcError::BadSignature(format!(
                "alg {} is not one of {}'s algorithms ({})",
                self.alg.as_str(),
                issuer.name,
                allowed.join(", ")
            )));
        }
        let mut candidates = keys.candidates(self.kid.as_deref(), self.alg).peekable();
        if candidates.peek().is_none() {
            return Err(match &self.kid {
                Some(kid) => OidcError::UnknownKey {
                    issuer: issuer.name.clone(),
                    kid: kid.clone(),
                },
                None => OidcError::BadSignature(format!(
                    "no kid, and no key of {}'s set fits {}",
                    issuer.name,
                    self.alg.as_str()
                )),
            });
        }
        if !candidates.any(|k| k.verify(self.alg, self.signed, &self.signature)) {
            return Err(OidcError::BadSignature(format!(
                "the signature does not verify with {}'s key {}",
                issuer.name,
                self.kid.as_deref().unwrap_or("(no kid)")
            )));
        }
        if self.iss != issuer.issuer {
            return Err(OidcError::UnknownIssuer(truncate(&self.iss, 200)));
        }
        let mut claims = self.claims;
        let leeway = issuer.leeway.num_seconds();
        let time = |claims: &Map<String, Value>, name: &str| -> Result<Option<i64>, OidcError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| OidcError::Malformed(format!("{name} is not a number"))),
            }
        };
        let Some(exp) = time(&claims, "exp")? else {
            return Err(OidcError::Malformed(
                "the token has no exp: workload tokens must expire".into(),
            ));
        };
        if now >= exp + leeway {
            return Err(OidcError::Expired(format!(
                "expired {} ago",
                crate::duration::countdown(chrono::Duration::seconds(now - exp))
            )));
        }
        for name in ["nbf", "iat"] {
            if let Some(t) = time(&claims, name)?
                && t > now + leeway
            {
                return Err(OidcError::NotYetValid(format!(
                    "{name} is {} in the future (leeway {}s)",
                    crate::duration::countdown(chrono::Duration::seconds(t - now)),
                    leeway
                )));
            }
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => issuer.audiences.iter().any(|x| x == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| issuer.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !aud_ok {
            let shown = claims
                .get("aud")
                .map(|a| truncate(&a.to_string(), 200))
                .unwrap_or_else(|| "(absent)".into());
            return Err(OidcError::WrongAudience(shown));
        }
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 => s.clone(),
            _ => {
                return Err(OidcError::Malformed(
                    "the token has no sub (a non-empty string of at most 512 bytes)".into(),
                ));
            }
        };
        for registered in ["aud", "exp", "nbf", "iat"] {
            claims.remove(registered);
        }
        Ok(OidcIdentity::new(issuer.name.clone(), sub, claims))
    }
}

/// `s` cut to `max` characters (with `…`), for attacker-chosen text in messages.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
