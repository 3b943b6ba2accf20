use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::config::PolicyFile;

fn set(toml_text: &str) -> PolicySet {
    let file: PolicyFile = toml::from_str(toml_text).unwrap();
    compile(&file).unwrap()
}

const FILE: &str = r#"
[[app]]
name = "api"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "blocked office"
action = "block"
include = [{ ip = ["10.9.0.0/16"] }]

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-deploy-staging" }]
exclude = [{ country = ["RU"] }]

[[app.policy]]
name = "devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }]
require = [{ country = ["SG", "VN"] }]

[[app.policy]]
name = "health"
action = "bypass"
include = [{ ip = "127.0.0.0/8" }]
"#;

fn req<'a>(identity: Identity<'a>, ip: &str, country: Option<&'a str>) -> Request<'a> {
    Request {
        identity,
        ip: ip.parse::<IpAddr>().unwrap(),
        country,
    }
}

fn cert(cn: &str) -> CertIdentity {
    CertIdentity {
        common_name: Some(cn.into()),
        issuer: "Corporate Device CA".into(),
        ..Default::default()
    }
}

#[test]
fn first_match_in_file_order() {
    let s = set(FILE);
    let app = s.app_for_host("API.example.com:8080").unwrap();
    let d = evaluate(
        app,
        &req(
            Identity::Token {
                name: "ci-deploy-prod",
            },
            "10.9.1.1",
            None,
        ),
    );
    assert_eq!(
        (d.verdict, d.policy_name()),
        (Verdict::Block, Some("blocked office"))
    );
    let d = evaluate(
        app,
        &req(
            Identity::Token {
                name: "ci-deploy-prod",
            },
            "192.0.2.1",
            None,
        ),
    );
    assert_eq!((d.verdict, d.policy_name()), (Verdict::Allow, Some("CI")));
}

#[test]
fn exclude_wins_and_falls_through() {
    let s = set(FILE);
    let app = &s.apps[0];
    let d = evaluate(
        app,
        &req(
            Identity::Token {
                name: "ci-deploy-prod",
            },
            "192.0.2.1",
            Some("RU"),
        ),
    );
    assert_eq!(d.verdict, Verdict::NoMatch);
    let d = evaluate(
        app,
        &req(
            Identity::Token {
                name: "ci-deploy-prod",
            },
            "127.0.0.1",
            Some("RU"),
        ),
    );
    assert_eq!(
        (d.verdict, d.policy_name()),
        (Verdict::Bypass, Some("health"))
    );
}

#[test]
fn cn_regex_is_a_full_match_and_require_applies() {
    let s = set(FILE);
    let app = &s.apps[0];
    let good = cert("device-a1.factory.corp");
    let evil = cert("device-a1.factory.corp.evil");
    assert_eq!(
        evaluate(app, &req(Identity::Cert(&good), "192.0.2.1", Some("SG"))).verdict,
        Verdict::Allow
    );
    assert_eq!(
        evaluate(app, &req(Identity::Cert(&evil), "192.0.2.1", Some("SG"))).verdict,
        Verdict::NoMatch
    );
    assert_eq!(
        evaluate(app, &req(Identity::Cert(&good), "192.0.2.1", Some("DE"))).verdict,
        Verdict::NoMatch
    );
}

#[test]
fn service_auth_never_admits_a_certificate_client() {
    let s = set(FILE);
    let c = cert("ci-deploy-prod");
    let (d, trace) = explain(&s.apps[0], &req(Identity::Cert(&c), "192.0.2.1", None));
    assert_eq!(d.verdict, Verdict::NoMatch);
    assert!(matches!(
        trace[1].outcome,
        TraceOutcome::WrongCredentialKind(_)
    ));
}

#[test]
fn unanchored_pattern_is_still_full_match() {
    let s = set(&FILE.replace("^device-[a-z0-9-]+\\\\.factory\\\\.corp$", "device-.*"));
    let c = cert("xdevice-1");
    assert_eq!(
        evaluate(
            &s.apps[0],
            &req(Identity::Cert(&c), "192.0.2.1", Some("SG"))
        )
        .verdict,
        Verdict::NoMatch
    );
}

#[test]
fn bad_regex_and_cidr_refused() {
    let bad = FILE.replace("10.9.0.0/16", "10.9.0/16");
    let file: PolicyFile = toml::from_str(&bad).unwrap();
    assert!(
        compile(&file)
            .unwrap_err()
            .message
            .contains("not a valid CIDR")
    );
    let bad = FILE.replace("^device-[a-z0-9-]+", "(unclosed");
    let file: PolicyFile = toml::from_str(&bad).unwrap();
    assert!(
        compile(&file)
            .unwrap_err()
            .message
            .contains("is not a valid regex")
    );
}

fn arb_identity() -> impl Strategy<Value = (u8, String)> {
    (0u8..3, "[a-z]{1,3}(-[a-z]{1,3}){0,2}")
}

proptest! {
    /// No match means deny; an exclude that matches always prevents that policy from deciding.
    #[test]
    fn no_policy_matches_means_deny_and_exclude_wins((kind, name) in arb_identity(), ip in any::<u32>(), excl in any::<bool>()) {
        let text = format!(r#"
[[app]]
name = "a"
hostnames = ["a"]
upstream = "http://127.0.0.1:1"
[[app.policy]]
name = "p"
action = "allow"
include = [{{ service_token = "{name}" }}, {{ common_name = "{name}" }}]
exclude = [{{ everyone = {excl} }}]
"#);
        let text = if excl { text } else { text.replace("exclude = [{ everyone = false }]", "") };
        let s = set(&text);
        let c = cert(&name);
        let identity = match kind { 0 => Identity::None, 1 => Identity::Token { name: &name }, _ => Identity::Cert(&c) };
        let r = Request { identity, ip: IpAddr::from(ip.to_be_bytes()), country: None };
        let d = evaluate(&s.apps[0], &r);
        if excl || kind == 0 {
            prop_assert_eq!(d.verdict, Verdict::NoMatch);
            prop_assert!(d.policy.is_none());
        } else {
            prop_assert_eq!(d.verdict, Verdict::Allow);
        }
    }
}

/// Regression: the console counted a token named in `exclude` as admitted.
#[test]
fn a_token_named_in_exclude_is_not_admitted() {
    let s = set(r#"
[[app]]
name = "api"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "bots but not the leaked one"
action = "service_auth"
include = [{ any_service_token = true }]
exclude = [{ service_token = "ci-leaked-prod" }]
require = [{ country = ["US", "de"] }]

[[app.policy]]
name = "devices"
action = "non_identity"
include = [{ common_name = "device-.*" }]
"#);
    let app = &s.apps[0];
    let leaked = admitting_policies(
        app,
        Identity::Token {
            name: "ci-leaked-prod",
        },
    );
    assert!(leaked.is_empty(), "{leaked:?}");
    let other = admitting_policies(
        app,
        Identity::Token {
            name: "ci-deploy-prod",
        },
    );
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].policy.name, "bots but not the leaked one");
    assert!(!other[0].named);
    let countries: Vec<&str> = other[0]
        .countries
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(countries, ["DE", "US"]);
}

#[test]
fn admission_follows_first_match_block_and_ip() {
    let s = set(FILE);
    let app = &s.apps[0];
    // CI is admitted from anywhere but RU (so: any country), the health bypass from loopback.
    let ci = admitting_policies(
        app,
        Identity::Token {
            name: "ci-deploy-prod",
        },
    );
    let names: Vec<&str> = ci.iter().map(|a| a.policy.name.as_str()).collect();
    assert_eq!(names, ["CI", "health"]);
    assert!(ci[0].named && ci[0].countries.is_none());
    let cert = CertIdentity {
        common_name: Some("device-a1.factory.corp".into()),
        ..Default::default()
    };
    let dev = admitting_policies(app, Identity::Cert(&cert));
    assert_eq!(dev[0].policy.name, "devices");
    let countries: Vec<&str> = dev[0]
        .countries
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(countries, ["SG", "VN"]);
    // `admits` is evaluate + refusal: a blocked address is refused, whatever the credential.
    let blocked = Request {
        identity: Identity::Token {
            name: "ci-deploy-prod",
        },
        ip: "10.9.1.1".parse().unwrap(),
        country: None,
    };
    assert!(!admits(app, &blocked));
}
