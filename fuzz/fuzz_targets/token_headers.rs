//! Fuzz the credential header parser: arbitrary `CF-Access-Client-Id` / `-Secret` headers (any
//! number, any bytes hyper accepts) against a snapshot holding one real token, plus the id and
//! secret parsers on their own. Invariant: only the real pair is ever `Valid`.
//!
//! Input: lines of `name: value`; the names `i` and `s` stand for the two credential headers,
//! and `$I` / `$S` in a value for the real client id and secret (the secret is generated at
//! start, so no secret with a valid checksum is committed with the seed corpus).
#![no_main]

use std::sync::LazyLock;

use botgate::credential::{self, ClientId, ClientSecret, SecretHash};
use botgate::gate::identify::{CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, TokenCheck, check_token};
use botgate::gate::snapshot::{CredentialSnapshot, TokenEntry};
use chrono::{TimeZone, Utc};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The one real token.
static TOKEN: LazyLock<(ClientId, ClientSecret)> =
    LazyLock::new(|| (ClientId::generate(), ClientSecret::generate()));

fuzz_target!(|data: &[u8]| {
    let (id, secret) = &*TOKEN;
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).single().unwrap_or_default();
    let mut snapshot = CredentialSnapshot::default();
    snapshot.tokens.insert(
        id.as_str().into(),
        TokenEntry {
            name: "ci-deploy-prod".into(),
            secret_hash: SecretHash::of(secret.expose()),
            expires_at: now + chrono::Duration::days(30),
            revoked: false,
            disabled: false,
            // A rotated secret in its grace, so both comparisons run on every input.
            secret_version: 2,
            previous: Some((
                SecretHash::of("previous-secret"),
                now + chrono::Duration::hours(1),
            )),
            bounds: Default::default(),
        },
    );
    let data = substitute(data, id.as_str(), secret.expose());
    // Names other than the two credential headers are kept too (they must be ignored).
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let name = match name {
            b"i" => HeaderName::from_static(CLIENT_ID_HEADER),
            b"s" => HeaderName::from_static(CLIENT_SECRET_HEADER),
            other => match HeaderName::from_bytes(other) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        let Ok(value) = HeaderValue::from_bytes(value.strip_prefix(b" ").unwrap_or(value)) else {
            continue;
        };
        headers.append(name, value);
    }
    if let TokenCheck::Valid { client_id, .. } = check_token(&headers, &snapshot, now) {
        assert_eq!(&**client_id, id.as_str(), "only the one real token may be valid");
        let presented = headers.get(CLIENT_SECRET_HEADER).and_then(|v| v.to_str().ok());
        assert_eq!(presented.map(str::trim), Some(secret.expose()), "valid with another secret");
    }
    if let Ok(text) = std::str::from_utf8(&data) {
        if let Ok(id) = ClientId::parse(text) {
            assert!(ClientId::is_valid(id.as_str()));
        }
        if let Ok(parsed) = ClientSecret::parse(text) {
            assert!(!parsed.masked().contains(parsed.expose()), "mask shows the secret");
        }
        let _ = credential::looks_like_secret(text);
        let _ = credential::checksum_matches(text);
        let _ = credential::mask(text);
    }
});

/// `$I` → the client id, `$S` → the secret.
fn substitute(data: &[u8], id: &str, secret: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'$') {
        out.extend_from_slice(&rest[..pos]);
        match rest.get(pos + 1) {
            Some(b'I') => out.extend_from_slice(id.as_bytes()),
            Some(b'S') => out.extend_from_slice(secret.as_bytes()),
            _ => {
                out.push(b'$');
                rest = &rest[pos + 1..];
                continue;
            }
        }
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
    out
}
