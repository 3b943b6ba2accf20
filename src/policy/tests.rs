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

/// One app whose only policy is `non_identity` with `include = [SELECTOR]`.
fn one_selector(selector: &str) -> PolicySet {
    set(&format!(
        "[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:1\"\n\n\
         [[app.policy]]\nname = \"p\"\naction = \"non_identity\"\ninclude = [{selector}]\n"
    ))
}

fn san_cert(san: crate::cert_names::SubjectAltNames) -> CertIdentity {
    CertIdentity {
        spiffe_id: san.spiffe_id(),
        san,
        spki_sha256: "ab".repeat(32),
        ..cert("c")
    }
}

fn admits_cert(s: &PolicySet, c: &CertIdentity) -> bool {
    evaluate(&s.apps[0], &req(Identity::Cert(c), "192.0.2.1", None)).verdict == Verdict::Allow
}

fn names(dns: &[&str], uri: &[&str], email: &[&str], ip: &[&str]) -> CertIdentity {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    san_cert(crate::cert_names::SubjectAltNames {
        dns: own(dns),
        uri: own(uri),
        email: own(email),
        ip: ip.iter().map(|s| s.parse().unwrap()).collect(),
    })
}

#[test]
fn san_dns_exact_is_case_insensitive_and_regex_is_a_full_match() {
    let exact = one_selector(r#"{ san_dns = ["Build.Example.com", "other.example.com"] }"#);
    // The certificate side is lowercased when parsed (see pki::inspect).
    assert!(admits_cert(
        &exact,
        &names(&["x.example.com", "build.example.com"], &[], &[], &[])
    ));
    assert!(!admits_cert(
        &exact,
        &names(&["build.example.com.evil"], &[], &[], &[])
    ));
    let re = one_selector(r#"{ san_dns = { regex = '[a-z0-9-]+\.svc\.example\.com' } }"#);
    assert!(admits_cert(
        &re,
        &names(&["api.svc.example.com"], &[], &[], &[])
    ));
    assert!(!admits_cert(
        &re,
        &names(&["api.svc.example.com.evil.net"], &[], &[], &[])
    ));
    assert!(!admits_cert(
        &re,
        &names(&[], &["https://api.svc.example.com"], &[], &[])
    ));
}

#[test]
fn san_uri_and_san_email_match_their_own_san_type_only() {
    let uri = one_selector(r#"{ san_uri = "urn:example:device:42" }"#);
    assert!(admits_cert(
        &uri,
        &names(&[], &["urn:example:device:42"], &[], &[])
    ));
    assert!(!admits_cert(
        &uri,
        &names(&["urn:example:device:42"], &[], &[], &[])
    ));
    let uri_re = one_selector(r#"{ san_uri = { regex = 'urn:example:device:[0-9]+' } }"#);
    assert!(admits_cert(
        &uri_re,
        &names(&[], &["x", "urn:example:device:7"], &[], &[])
    ));
    let email = one_selector(r#"{ san_email = { regex = '[a-z.]+@bots\.example\.com' } }"#);
    assert!(admits_cert(
        &email,
        &names(&[], &[], &["deploy@bots.example.com"], &[])
    ));
    assert!(!admits_cert(
        &email,
        &names(&[], &[], &["deploy@bots.example.com.evil"], &[])
    ));
}

#[test]
fn san_ip_takes_addresses_and_cidrs() {
    let s = one_selector(r#"{ san_ip = ["10.20.0.0/16", "2001:db8::7"] }"#);
    assert!(admits_cert(&s, &names(&[], &[], &[], &["10.20.3.4"])));
    assert!(admits_cert(&s, &names(&[], &[], &[], &["2001:db8::7"])));
    assert!(!admits_cert(&s, &names(&[], &[], &[], &["10.21.0.1"])));
    // The client's address is not the certificate's IP SAN.
    assert!(!admits_cert(&s, &names(&[], &[], &[], &[])));
}

#[test]
fn spiffe_id_exact_and_prefix() {
    let deployer = names(&[], &["spiffe://example.org/ns/prod/sa/deployer"], &[], &[]);
    let exact = one_selector(r#"{ spiffe_id = "spiffe://example.org/ns/prod/sa/deployer" }"#);
    assert!(admits_cert(&exact, &deployer));
    let prefix = one_selector(r#"{ spiffe_id = { prefix = "spiffe://example.org/ns/prod" } }"#);
    assert!(admits_cert(&prefix, &deployer));
    let td = one_selector(r#"{ spiffe_id = { prefix = "spiffe://example.org" } }"#);
    assert!(admits_cert(&td, &deployer));
    let other_td = one_selector(r#"{ spiffe_id = { prefix = "spiffe://example.com/ns/prod" } }"#);
    assert!(!admits_cert(&other_td, &deployer));
    let production = names(&[], &["spiffe://example.org/ns/production/sa/x"], &[], &[]);
    assert!(!admits_cert(&prefix, &production));
}

#[test]
fn spiffe_id_refuses_a_certificate_with_two_uri_sans() {
    let s = one_selector(r#"{ spiffe_id = { prefix = "spiffe://example.org" } }"#);
    let two = names(
        &[],
        &[
            "spiffe://example.org/ns/prod/sa/deployer",
            "https://example.org/",
        ],
        &[],
        &[],
    );
    assert_eq!(two.spiffe_id, None);
    assert!(!admits_cert(&s, &two));
    // san_uri still sees both.
    let uri = one_selector(r#"{ san_uri = "spiffe://example.org/ns/prod/sa/deployer" }"#);
    assert!(admits_cert(&uri, &two));
}

#[test]
fn spki_sha256_pins_the_key_in_any_notation() {
    let pin = "AB:".repeat(31) + "AB";
    let s = one_selector(&format!(r#"{{ spki_sha256 = "{pin}" }}"#));
    assert!(admits_cert(&s, &names(&[], &[], &[], &[])));
    let mut other = names(&[], &[], &[], &[]);
    other.spki_sha256 = "cd".repeat(32);
    assert!(!admits_cert(&s, &other));
}

#[test]
fn certificate_name_selectors_never_match_a_token_or_no_credential() {
    for sel in [
        r#"{ san_dns = { regex = '.*' } }"#,
        r#"{ san_uri = { regex = '.*' } }"#,
        r#"{ san_email = { regex = '.*' } }"#,
        r#"{ san_ip = "0.0.0.0/0" }"#,
        r#"{ spiffe_id = { prefix = "spiffe://example.org" } }"#,
    ] {
        let text = format!(
            "[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:1\"\n\n\
             [[app.policy]]\nname = \"p\"\naction = \"allow\"\ninclude = [{sel}]\n"
        );
        let s = set(&text);
        let app = &s.apps[0];
        for identity in [Identity::None, Identity::Token { name: "a-b-c" }] {
            let d = evaluate(app, &req(identity, "192.0.2.1", None));
            assert_eq!(d.verdict, Verdict::NoMatch, "{sel}");
        }
    }
}

proptest! {
    /// A `spiffe_id` prefix admits exactly the IDs that equal it or continue it with `/`.
    #[test]
    fn spiffe_prefix_is_a_whole_segment_prefix(
        prefix in prop::collection::vec("[a-c]{1,2}", 0..3),
        rest in prop::collection::vec("[a-c]{1,2}", 0..3),
        td in prop_oneof![Just("example.org"), Just("example.com")],
    ) {
        let prefix_id = format!("spiffe://example.org{}", prefix.iter().map(|s| format!("/{s}")).collect::<String>());
        let id = format!("spiffe://{td}{}", rest.iter().map(|s| format!("/{s}")).collect::<String>());
        let s = one_selector(&format!(r#"{{ spiffe_id = {{ prefix = "{prefix_id}" }} }}"#));
        let c = names(&[], &[id.as_str()], &[], &[]);
        let oracle = id == prefix_id || id.starts_with(&format!("{prefix_id}/"));
        prop_assert_eq!(admits_cert(&s, &c), oracle);
    }
}
