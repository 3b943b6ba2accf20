//! Fuzz the credential header parser: arbitrary `CF-Access-Client-Id` / `-Secret` headers (any
//! number, any bytes hyper accepts) against a snapshot holding one real token, plus the id and
//! secret parsers on their own. Invariant: only the real pair is ever `Valid`.
#![no_main]

use botgate::credential::{self, ClientId, ClientSecret, SecretHash};
use botgate::gate::identify::{CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, TokenCheck, check_token};
use botgate::gate::snapshot::{CredentialSnapshot, TokenEntry};
use chrono::{TimeZone, Utc};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// A fixed, well-formed token (the seeds use it, so the fuzzer starts next to the valid path).
const ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90.access";
const SECRET: &str = "bgs_ZmV0Y2hlZC1mcm9tLXRoZS1zZWVkLWNvcnB1cw_5q2x9a";

fuzz_target!(|data: &[u8]| {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).single().unwrap_or_default();
    let mut snapshot = CredentialSnapshot::default();
    snapshot.tokens.insert(
        ID.into(),
        TokenEntry {
            name: "ci-deploy-prod".into(),
            secret_hash: SecretHash::of(SECRET),
            expires_at: now + chrono::Duration::days(30),
            revoked: false,
        },
    );
    // Input: lines of `name: value`; names other than the two credential headers are kept
    // too (they must be ignored).
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
        assert_eq!(client_id, ID, "only the one real token may be valid");
        let secret = headers.get(CLIENT_SECRET_HEADER).and_then(|v| v.to_str().ok());
        assert_eq!(secret.map(str::trim), Some(SECRET), "valid with a different secret");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = ClientId::parse(text) {
            assert!(ClientId::is_valid(id.as_str()));
        }
        if let Ok(secret) = ClientSecret::parse(text) {
            assert!(!secret.masked().contains(secret.expose()) || secret.expose().len() < 8);
        }
        let _ = credential::looks_like_secret(text);
        let _ = credential::checksum_matches(text);
        let _ = credential::mask(text);
    }
});
