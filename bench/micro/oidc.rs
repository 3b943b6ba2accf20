//! OIDC workload-token verification on the request path, with the issuer's key set cached:
//! split and decode, signature (RS256 with a 2048-bit key, ES256), `iss`/`aud`/time checks, and
//! the claims kept for the identity. `issuers_verify_repeated_token` is the whole
//! `Issuers::verify` the gate calls with the same token each time (SHA-256 of the token and the
//! verified-token cache after the first; no fetch happens).

use std::sync::Arc;

use botgate::oidc::jwks::KeySet;
use botgate::oidc::token;
use botgate::oidc::{IssuerSettings, Issuers};
use divan::{Bencher, black_box};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk};

const ISS: &str = "https://token.actions.githubusercontent.com";

struct Fixture {
    token: String,
    settings: Arc<IssuerSettings>,
    keys: KeySet,
    jwks: String,
}

fn fixture(alg: Algorithm) -> Fixture {
    let pair = match alg {
        Algorithm::RS256 => botgate::pki::KeyAlgorithm::Rsa2048.generate().unwrap(),
        _ => botgate::pki::KeyAlgorithm::EcdsaP256.generate().unwrap(),
    };
    let pem = pair.serialize_pem();
    let enc = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    };
    let mut j = serde_json::to_value(jwk::Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap();
    j["kid"] = "k1".into();
    let jwks = serde_json::json!({ "keys": [j] }).to_string();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": ISS, "aud": "https://api.example.com",
        "sub": "repo:example/api:ref:refs/heads/main", "repository": "example/api",
        "repository_owner": "example", "ref": "refs/heads/main", "workflow": "deploy",
        "job_workflow_ref": "example/api/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": "123456789", "run_attempt": "1", "actor": "octocat", "event_name": "push",
        "sha": "8f3c6e7c3e1b9d2a4f6e8c0b1d3f5a7c9e1b3d5f", "environment": "prod",
        "iat": now, "nbf": now, "exp": now + 36_000,
    });
    let mut h = Header::new(alg);
    h.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&h, &claims, &enc).unwrap();
    let cfg: botgate::config::model::OidcIssuerConfig = toml::from_str(&format!(
        "name = \"github\"\nissuer = \"{ISS}\"\njwks_url = \"{ISS}/.well-known/jwks\"\naudiences = [\"https://api.example.com\"]"
    ))
    .unwrap();
    Fixture {
        token,
        settings: Arc::new(IssuerSettings::from_config(&cfg).unwrap()),
        keys: KeySet::parse(jwks.as_bytes()).unwrap(),
        jwks,
    }
}

fn alg_of(name: &str) -> Algorithm {
    match name {
        "RS256" => Algorithm::RS256,
        _ => Algorithm::ES256,
    }
}

#[divan::bench(args = ["RS256", "ES256"])]
fn verify(bencher: Bencher, alg: &str) {
    let f = fixture(alg_of(alg));
    let now = chrono::Utc::now().timestamp();
    bencher.bench_local(|| {
        let parsed = token::parse(black_box(&f.token)).unwrap();
        black_box(parsed.verify(&f.settings, &f.keys, now).unwrap())
    });
}

/// The same token on every request (a job's run): after the first, the verified-token cache.
#[divan::bench(args = ["RS256", "ES256"])]
fn issuers_verify_repeated_token(bencher: Bencher, alg: &str) {
    let f = fixture(alg_of(alg));
    let dir = tempfile::tempdir().unwrap();
    // The key set comes from a file the issuer state adopts, as after `issuer refresh`.
    let state = dir.path().join("oidc");
    std::fs::create_dir_all(&state).unwrap();
    let file = serde_json::json!({
        "name": "github", "issuer": ISS, "fetched_at": chrono::Utc::now().to_rfc3339(),
        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(10)).to_rfc3339(),
        "kids": ["k1"], "jwks": serde_json::from_str::<serde_json::Value>(&f.jwks).unwrap(),
    });
    std::fs::write(state.join("github.json"), file.to_string()).unwrap();
    let issuers = Issuers::new(Some(dir.path()), dir.path());
    issuers.sync(std::slice::from_ref(&f.settings), chrono::Utc::now());
    let now = chrono::Utc::now();
    let st = issuers.by_name("github").unwrap();
    assert!(st.keys().is_some(), "the state file's key set was adopted");
    bencher.bench_local(|| {
        black_box(futures::executor::block_on(issuers.verify(black_box(&f.token), now)).unwrap())
    });
    let c = &st.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "issuers_verify_repeated_token {alg}: {} verifications, {} from the verified-token cache, {} signature checks with a cached key, {} key-set fetches",
        load(&c.verified),
        load(&c.token_cache_hits),
        load(&c.cache_hits),
        load(&c.kid_misses)
    );
}
