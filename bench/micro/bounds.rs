//! What a token's bounds cost per request: the `--allow-ip` check (`TokenEntry::ip_refusal`,
//! which the handler runs on the entry `check_token` already found) with 1 and 16 networks,
//! and one GCRA check of `gate::limits::RateLimits` (a bucket per credential, 1 and 10,000
//! credentials), with the allocation the limiter key makes (one `Arc<str>` per request).

use std::net::IpAddr;
use std::sync::Arc;

use botgate::bounds::{RateLimit, TokenBounds, parse_network};
use botgate::gate::limits::{LimitKey, RateLimits, Scope};
use botgate::gate::snapshot::TokenEntry;
use chrono::Utc;
use divan::{Bencher, black_box};

fn entry(networks: usize) -> TokenEntry {
    TokenEntry {
        name: "ci-deploy-prod".into(),
        secret_hash: botgate::credential::ClientSecret::generate().hash(),
        expires_at: Utc::now() + chrono::Duration::days(30),
        revoked: false,
        disabled: false,
        secret_version: 1,
        previous: None,
        bounds: TokenBounds {
            // The client's network last: the worst case for a list.
            allow_ips: (0..networks)
                .map(|i| parse_network(&format!("10.{i}.0.0/16")).expect("cidr"))
                .collect(),
            rate_limit: None,
        },
    }
}

#[divan::bench(args = [1, 16])]
fn ip_bound(bencher: Bencher, networks: usize) {
    let e = entry(networks);
    let ip: IpAddr = format!("10.{}.3.4", networks - 1).parse().expect("ip");
    assert!(e.ip_refusal(ip).is_none());
    bencher.bench_local(|| black_box(&e).ip_refusal(black_box(ip)));
}

#[divan::bench]
fn ip_unbound(bencher: Bencher) {
    let e = entry(0);
    let ip: IpAddr = "203.0.113.9".parse().expect("ip");
    bencher.bench_local(|| black_box(&e).ip_refusal(black_box(ip)));
}

/// One admitted request's rate check: key made from the Client ID (as the handler does), one
/// read-locked scope lookup, one GCRA update in the credential's bucket. The limit is high
/// enough that the bench never hits it.
#[divan::bench(args = [1, 10_000])]
fn rate_check(bencher: Bencher, credentials: usize) {
    let limits = RateLimits::default();
    let rate = RateLimit::parse("1000000000/s", None).expect("rate");
    let ids: Vec<String> = (0..credentials)
        .map(|i| format!("{i:032x}.access"))
        .collect();
    for id in &ids {
        limits.check(&Scope::Token, &rate, &LimitKey::Token(id.as_str().into()));
    }
    // The gate keys a token's bucket with the snapshot's shared Client ID: no copy per request.
    let key = LimitKey::Token(Arc::from(ids[credentials / 2].as_str()));
    bencher.bench_local(|| limits.check(&Scope::Token, &rate, black_box(&key)));
}
