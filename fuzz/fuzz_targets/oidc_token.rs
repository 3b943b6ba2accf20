//! Fuzz workload-token verification: arbitrary bytes as a JWT (split, base64url, JSON header and
//! payload, algorithm, kid, claims and times) against a fixed issuer whose key set holds one real
//! ES256 key, and the same bytes as a key-set document. Invariants: nothing panics, and a token
//! verifies only if the real key signed it (the fuzzer cannot sign, so never).
#![no_main]

use std::sync::LazyLock;

use botgate::oidc::jwks::KeySet;
use botgate::oidc::{IssuerSettings, token};
use libfuzzer_sys::fuzz_target;

static ISSUER: LazyLock<(IssuerSettings, KeySet)> = LazyLock::new(|| {
    let key = botgate::assertion::keys::generate(botgate::assertion::Alg::Es256, chrono::Utc::now())
        .expect("an ES256 key");
    let set = serde_json::json!({ "keys": [key.public_jwk] }).to_string();
    let cfg: botgate::config::model::OidcIssuerConfig = toml::from_str(
        "name = \"github\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudiences = [\"https://api.example.com\"]\nalgorithms = [\"ES256\", \"RS256\", \"EdDSA\"]",
    )
    .expect("issuer config");
    (
        IssuerSettings::from_config(&cfg).expect("issuer settings"),
        KeySet::parse(set.as_bytes()).expect("key set"),
    )
});

fuzz_target!(|data: &[u8]| {
    let (settings, keys) = &*ISSUER;
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(parsed) = token::parse(text)
    {
        assert!(
            parsed.verify(settings, keys, 1_800_000_000).is_err(),
            "a token the fuzzer made verified"
        );
    }
    let _ = KeySet::parse(data);
});
