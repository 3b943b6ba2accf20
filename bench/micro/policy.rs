//! `policy::evaluate` at 10 / 1,000 / 100,000 tokens referenced by one `service_auth` policy and
//! 1 / 100 / 1,000 `common_name` regex policies placed before it (file order), i.e. the worst
//! place for the token policy: a token request passes every CN policy first, and a certificate
//! request that matches only the last CN policy tries every regex before it.

use std::fmt::Write;
use std::net::IpAddr;

use botgate::config::PolicyFile;
use botgate::policy::{self, CertIdentity, Identity, PolicySet, Request, Verdict};
use divan::{Bencher, black_box};

const TOKENS: &[usize] = &[10, 1_000, 100_000];
const CN_POLICIES: &[usize] = &[1, 100, 1_000];

/// A policy file with `regexes` CN policies (the last matches `bench-client`) then one
/// `service_auth` policy naming `tokens` tokens.
pub fn policy_set(tokens: usize, regexes: usize) -> PolicySet {
    let mut t = String::from(
        "[[app]]\nname = \"bench\"\nhostnames = [\"bench.local\"]\nupstream = \"http://127.0.0.1:9\"\n\n",
    );
    for i in 1..regexes {
        let _ = write!(
            t,
            "[[app.policy]]\nname = \"devices {i}\"\naction = \"non_identity\"\ninclude = [{{ common_name = 'device-{i:04}-[a-z0-9-]+\\.factory\\.corp' }}]\n\n"
        );
    }
    t.push_str("[[app.policy]]\nname = \"bench clients\"\naction = \"non_identity\"\ninclude = [{ common_name = 'bench-(ecdsa|rsa)-client' }]\n\n");
    t.push_str("[[app.policy]]\nname = \"tokens\"\naction = \"service_auth\"\ninclude = [\n");
    for i in 0..tokens {
        let _ = writeln!(t, "  {{ service_token = \"bench-{i:06}-prod\" }},");
    }
    t.push_str("]\n");
    let file: PolicyFile = toml::from_str(&t).expect("generated policy file parses");
    policy::compile(&file).expect("generated policy file compiles")
}

fn ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// An allowed token request (the token policy is the last one).
#[divan::bench(consts = TOKENS, args = CN_POLICIES)]
fn token_allowed<const T: usize>(bencher: Bencher, regexes: usize) {
    let set = policy_set(T, regexes);
    let app = set.app_for_host("bench.local").expect("app");
    let name = format!("bench-{:06}-prod", T / 2);
    let req = Request {
        identity: Identity::Token { name: &name },
        ip: ip(),
        country: None,
    };
    assert_eq!(policy::evaluate(app, &req).verdict, Verdict::Allow);
    bencher.bench_local(|| policy::evaluate(black_box(app), black_box(&req)));
}

/// An allowed certificate request whose CN matches only the last CN policy.
#[divan::bench(consts = TOKENS, args = CN_POLICIES)]
fn cert_allowed_last_regex<const T: usize>(bencher: Bencher, regexes: usize) {
    let set = policy_set(T, regexes);
    let app = set.app_for_host("bench.local").expect("app");
    let cert = CertIdentity {
        common_name: Some("bench-ecdsa-client".into()),
        issuer: "Bench CA".into(),
        ..Default::default()
    };
    let req = Request {
        identity: Identity::Cert(&cert),
        ip: ip(),
        country: None,
    };
    assert_eq!(policy::evaluate(app, &req).verdict, Verdict::Allow);
    bencher.bench_local(|| policy::evaluate(black_box(app), black_box(&req)));
}

/// A certificate that no CN policy admits (the deny path walks everything).
#[divan::bench(args = CN_POLICIES)]
fn cert_no_match(bencher: Bencher, regexes: usize) {
    let set = policy_set(10, regexes);
    let app = set.app_for_host("bench.local").expect("app");
    let cert = CertIdentity {
        common_name: Some("device-99999-x.factory.corp".into()),
        issuer: "Bench CA".into(),
        ..Default::default()
    };
    let req = Request {
        identity: Identity::Cert(&cert),
        ip: ip(),
        country: None,
    };
    assert_eq!(policy::evaluate(app, &req).verdict, Verdict::NoMatch);
    bencher.bench_local(|| policy::evaluate(black_box(app), black_box(&req)));
}
