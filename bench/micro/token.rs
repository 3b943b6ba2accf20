//! `gate::identify::check_token`: SHA-256 of the presented secret, checksum, snapshot lookup and
//! constant-time compare, at 1,000 and 100,000 tokens in the snapshot.

use botgate::credential::{ClientId, ClientSecret};
use botgate::gate::identify::{CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, TokenCheck, check_token};
use botgate::gate::snapshot::{CredentialSnapshot, TokenEntry};
use chrono::Utc;
use divan::{Bencher, black_box};
use hyper::HeaderMap;
use hyper::header::HeaderValue;

const SIZES: &[usize] = &[1_000, 100_000];

/// A snapshot of `n` live tokens and the credentials of one of them.
fn snapshot(n: usize) -> (CredentialSnapshot, ClientId, ClientSecret) {
    let mut s = CredentialSnapshot::default();
    let mut keep = None;
    for i in 0..n {
        let (id, secret) = (ClientId::generate(), ClientSecret::generate());
        s.tokens.insert(
            id.as_str().into(),
            TokenEntry {
                name: format!("bench-{i:06}-prod").into(),
                secret_hash: secret.hash(),
                expires_at: Utc::now() + chrono::Duration::days(30),
                revoked: false,
                disabled: false,
                secret_version: 1,
                previous: None,
                bounds: Default::default(),
            },
        );
        if i == n / 2 {
            keep = Some((id, secret));
        }
    }
    let (id, secret) = keep.expect("n > 0");
    (s, id, secret)
}

fn headers(id: &str, secret: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CLIENT_ID_HEADER, HeaderValue::from_str(id).expect("ascii"));
    h.insert(
        CLIENT_SECRET_HEADER,
        HeaderValue::from_str(secret).expect("ascii"),
    );
    h.insert("host", HeaderValue::from_static("bench.local"));
    h.insert("user-agent", HeaderValue::from_static("wrk"));
    h
}

#[divan::bench(args = SIZES)]
fn valid(bencher: Bencher, n: usize) {
    let (snap, id, secret) = snapshot(n);
    let h = headers(id.as_str(), secret.expose());
    let now = Utc::now();
    assert!(matches!(
        check_token(&h, &snap, now),
        TokenCheck::Valid { .. }
    ));
    bencher.bench_local(|| check_token(black_box(&h), black_box(&snap), now));
}

#[divan::bench(args = SIZES)]
fn wrong_secret(bencher: Bencher, n: usize) {
    let (snap, id, _) = snapshot(n);
    let other = ClientSecret::generate();
    let h = headers(id.as_str(), other.expose());
    let now = Utc::now();
    assert!(matches!(
        check_token(&h, &snap, now),
        TokenCheck::Refused { .. }
    ));
    bencher.bench_local(|| check_token(black_box(&h), black_box(&snap), now));
}
