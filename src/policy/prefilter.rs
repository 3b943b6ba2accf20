//! A prefilter for `evaluate`: which policies of an app can possibly decide for a request. Built
//! once per app from its compiled policies, it lets a request walk only those policies, and runs
//! every `common_name` regex of certificate-only policies in one multi-pattern pass (the engine
//! behind `regex::RegexSet`, driven directly so the match set is reused and nothing allocates)
//! instead of one regex per policy. It only ever skips a policy that could not decide, so
//! `evaluate` keeps the first-match-in-file-order answer of trying every policy (the property
//! test below checks that against `explain`, which still tries them all).

use std::cell::RefCell;
use std::sync::OnceLock;

use regex_automata::meta;
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

use super::{CompiledPolicy, Identity, Matcher, Request, policy_decides};
use crate::config::Action;

/// The prefilter of one app, built on first use (`compile` builds it eagerly).
///
/// Invariant: it describes the `policies` it was built from; `compile` builds both together and
/// nothing mutates `CompiledApp::policies` afterwards (a changed policy file is compiled anew).
#[derive(Debug, Default)]
pub struct PrefilterCell(OnceLock<Prefilter>);

impl PrefilterCell {
    /// The prefilter for `policies`, building it if needed.
    pub fn get(&self, policies: &[CompiledPolicy]) -> &Prefilter {
        self.0.get_or_init(|| Prefilter::build(policies))
    }
}

/// Candidate policies per credential kind and one multi-pattern matcher over CN-only policies.
#[derive(Debug)]
pub struct Prefilter {
    policy_count: usize,
    /// Indices of the policies that can decide, in file order, per credential kind.
    for_none: Vec<usize>,
    for_token: Vec<usize>,
    for_cert: Vec<usize>,
    for_oidc: Vec<usize>,
    /// With `cn_set`: the certificate candidates whose include list is not only CN regexes.
    cert_other: Vec<usize>,
    /// Pattern id in `cn_set` → index of the (CN-only, certificate-capable) policy it came from;
    /// non-decreasing, as patterns are added in file order.
    cn_policy_of: Vec<usize>,
    /// The policies' own anchored CN regexes as one matcher. `None` when there are none, or when
    /// they exceed the size limit (then each regex runs on its own, as without a prefilter).
    cn_set: Option<meta::Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    Token,
    Cert,
    Oidc,
}

thread_local! {
    /// Which CN patterns matched, reused so a request does not allocate.
    static CN_MATCHES: RefCell<PatternSet> = RefCell::new(PatternSet::new(0));
}

impl Prefilter {
    /// Analyse `policies` (in file order).
    pub fn build(policies: &[CompiledPolicy]) -> Self {
        let candidates = |kind| {
            (0..policies.len())
                .filter(|&i| can_decide(&policies[i], kind))
                .collect::<Vec<_>>()
        };
        let for_cert = candidates(Kind::Cert);
        let mut patterns: Vec<&str> = Vec::new();
        let mut cn_policy_of = Vec::new();
        let mut cert_other = Vec::new();
        for &i in &for_cert {
            let include = &policies[i].include;
            if include.iter().all(|m| matches!(m, Matcher::CommonName(_))) {
                for m in include {
                    if let Matcher::CommonName(re) = m {
                        patterns.push(re.as_str());
                        cn_policy_of.push(i);
                    }
                }
            } else {
                cert_other.push(i);
            }
        }
        let cn_set = if patterns.is_empty() {
            None
        } else {
            build_set(&patterns)
        };
        Self {
            policy_count: policies.len(),
            for_none: candidates(Kind::None),
            for_token: candidates(Kind::Token),
            for_cert,
            for_oidc: candidates(Kind::Oidc),
            cert_other,
            cn_policy_of,
            cn_set,
        }
    }

    /// The first policy that decides `req`, trying only candidates, in file order.
    pub fn first_deciding<'p>(
        &self,
        policies: &'p [CompiledPolicy],
        req: &Request<'_>,
    ) -> Option<&'p CompiledPolicy> {
        if policies.len() != self.policy_count {
            // Built for other policies (see the invariant): try them all, as without a prefilter.
            return policies.iter().find(|p| policy_decides(p, req).is_ok());
        }
        let decides = |i: usize| policy_decides(&policies[i], req).is_ok();
        let found = match (req.identity, &self.cn_set) {
            (Identity::None, _) => self.for_none.iter().copied().find(|&i| decides(i)),
            (Identity::Token { .. }, _) => self.for_token.iter().copied().find(|&i| decides(i)),
            (Identity::Oidc(_), _) => self.for_oidc.iter().copied().find(|&i| decides(i)),
            (Identity::Cert(_), None) => self.for_cert.iter().copied().find(|&i| decides(i)),
            (Identity::Cert(cert), Some(set)) => CN_MATCHES.with(|scratch| {
                let mut matched = scratch.borrow_mut();
                if matched.capacity() < set.pattern_len() {
                    *matched = PatternSet::new(set.pattern_len());
                }
                matched.clear();
                if let Some(cn) = cert.common_name.as_deref() {
                    set.which_overlapping_matches(&Input::new(cn), &mut matched);
                }
                // Merge, in file order, the other candidates with the CN-only policies that
                // had a pattern match (several patterns of one policy collapse into one try).
                let mut others = self.cert_other.iter().copied().peekable();
                let mut cns = matched
                    .iter()
                    .map(|pid| self.cn_policy_of[pid.as_usize()])
                    .peekable();
                let mut last_cn = None;
                loop {
                    let i = match (others.peek(), cns.peek()) {
                        (None, None) => break None,
                        (Some(&o), Some(&c)) if o < c => others.next(),
                        (Some(_), None) => others.next(),
                        _ => cns.next().filter(|&c| last_cn.replace(c) != Some(c)),
                    };
                    if let Some(i) = i
                        && decides(i)
                    {
                        break Some(i);
                    }
                }
            }),
        };
        found.map(|i| &policies[i])
    }
}

/// One matcher for all `patterns`, configured as `regex::RegexSet` configures it (all matches,
/// same syntax), so pattern membership is exactly each policy regex's `is_match`.
fn build_set(patterns: &[&str]) -> Option<meta::Regex> {
    let config = meta::Config::new()
        .nfa_size_limit(Some(256 * (1 << 20)))
        .hybrid_cache_capacity(16 * (1 << 20))
        .match_kind(MatchKind::All)
        .utf8_empty(true)
        .which_captures(WhichCaptures::None);
    meta::Builder::new()
        .configure(config)
        .syntax(syntax::Config::default().utf8(true))
        .build_many(patterns)
        .ok()
}

/// Whether `policy` can ever decide for a request of `kind`, whatever its other facts.
fn can_decide(policy: &CompiledPolicy, kind: Kind) -> bool {
    let action_fits = match policy.action {
        Action::ServiceAuth => matches!(kind, Kind::Token | Kind::Oidc),
        Action::NonIdentity => kind == Kind::Cert,
        Action::Allow | Action::Block | Action::Bypass => true,
    };
    action_fits
        && policy.include.iter().any(|m| can_match(m, kind))
        && policy.require.iter().all(|m| can_match(m, kind))
}

/// Whether `m` can match some request of `kind` (mirrors `Matcher::matches`).
fn can_match(m: &Matcher, kind: Kind) -> bool {
    match m {
        Matcher::ServiceTokens(_) | Matcher::ServiceToken(_) | Matcher::AnyServiceToken => {
            kind == Kind::Token
        }
        Matcher::ValidCertificate
        | Matcher::CommonName(_)
        | Matcher::Issuer(_)
        | Matcher::Organization(_)
        | Matcher::CertCountry(_)
        | Matcher::SanDns(_)
        | Matcher::SanUri(_)
        | Matcher::SanEmail(_)
        | Matcher::SanIp(_)
        | Matcher::SpiffeId(_)
        | Matcher::SpiffeUnder(_)
        | Matcher::SpkiSha256(_) => kind == Kind::Cert,
        Matcher::Oidc { .. } | Matcher::OidcClaims(_) => kind == Kind::Oidc,
        Matcher::Ip(_) | Matcher::Country(_) | Matcher::Everyone => true,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::super::{CertIdentity, Identity, Request, compile, evaluate, explain};
    use crate::config::PolicyFile;

    /// Policies drawn from a small vocabulary so matches, misses and overlaps all occur.
    fn arb_policy() -> impl Strategy<Value = String> {
        let action = prop_oneof![
            Just("service_auth"),
            Just("non_identity"),
            Just("allow"),
            Just("block"),
            Just("bypass")
        ];
        let selector = prop_oneof![
            Just(r#"{ service_token = "a-b-c" }"#),
            Just(r#"{ service_token = "x-y-z" }"#),
            Just(r#"{ any_service_token = true }"#),
            Just(r#"{ valid_certificate = true }"#),
            Just(r#"{ common_name = 'dev-[0-9]+' }"#),
            Just(r#"{ common_name = 'dev-1.*' }"#),
            Just(r#"{ common_name = 'srv-[a-z]+' }"#),
            Just(r#"{ issuer = 'Bench CA' }"#),
            Just(r#"{ ip = "10.0.0.0/8" }"#),
            Just(r#"{ country = ["SG"] }"#),
            Just(r#"{ everyone = true }"#),
            Just(r#"{ san_dns = "a.example" }"#),
            Just(r#"{ san_dns = { regex = '[a-z]\.example' } }"#),
            Just(r#"{ spiffe_id = { prefix = "spiffe://example.org/ns" } }"#),
            Just(r#"{ spiffe_id = "spiffe://example.org/ns/x" }"#),
            Just(r#"{ san_ip = "10.0.0.0/8" }"#),
            Just(r#"{ oidc = { issuer = "gh", claims = { repository = "o/a" } } }"#),
            Just(r#"{ oidc = { issuer = "gh" } }"#),
            Just(r#"{ oidc_claim = { ref = '^refs/heads/.*$' } }"#),
        ];
        (
            action,
            prop::collection::vec(selector.clone(), 1..3),
            prop::collection::vec(selector.clone(), 0..2),
            prop::collection::vec(selector, 0..2),
        )
            .prop_map(|(action, inc, req, exc)| {
                format!(
                    "[[app.policy]]\nname = \"p\"\naction = \"{action}\"\ninclude = [{}]\nrequire = [{}]\nexclude = [{}]\n",
                    inc.join(", "),
                    req.join(", "),
                    exc.join(", ")
                )
            })
    }

    proptest! {
        /// The prefiltered `evaluate` picks the same policy as trying every policy in order.
        #[test]
        fn prefilter_never_changes_the_decision(
            policies in prop::collection::vec(arb_policy(), 0..8),
            kind in 0u8..4,
            name in prop_oneof![Just("a-b-c"), Just("x-y-z"), Just("q-q-q")],
            cn in prop_oneof![Just(Some("dev-12")), Just(Some("srv-ab")), Just(Some("dev-x")), Just(None)],
            ip in prop_oneof![Just("10.1.2.3"), Just("192.0.2.1")],
            country in prop_oneof![Just(Some("SG")), Just(None)],
            uris in prop_oneof![
                Just(vec![]),
                Just(vec!["spiffe://example.org/ns/x"]),
                Just(vec!["spiffe://example.org/ns/y"]),
                Just(vec!["spiffe://example.org/ns/x", "https://example.org/"]),
            ],
            dns in prop_oneof![Just(vec![]), Just(vec!["a.example"]), Just(vec!["b.example", "zz"])],
        ) {
            let text = format!(
                "[[oidc_issuer]]\nname = \"gh\"\nissuer = \"https://gh.example\"\naudiences = [\"x\"]\n\n[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:1\"\n\n{}",
                policies.iter().enumerate().map(|(i, p)| p.replacen("name = \"p\"", &format!("name = \"p{i}\""), 1)).collect::<Vec<_>>().join("\n")
            );
            let file: PolicyFile = toml::from_str(&text).unwrap();
            let set = compile(&file).unwrap();
            let san = crate::cert_names::SubjectAltNames {
                dns: dns.iter().map(|s| s.to_string()).collect(),
                uri: uris.iter().map(|s| s.to_string()).collect(),
                ip: vec!["10.1.1.1".parse().unwrap()],
                ..Default::default()
            };
            let cert = CertIdentity {
                common_name: cn.map(str::to_string),
                issuer: "Bench CA".into(),
                spiffe_id: san.spiffe_id(),
                san,
                ..Default::default()
            };
            let mut claims = serde_json::Map::new();
            claims.insert("repository".into(), if name == "a-b-c" { "o/a" } else { "o/b" }.into());
            claims.insert("ref".into(), if cn.is_some() { "refs/heads/main" } else { "v1" }.into());
            let workload = crate::credential::oidc::OidcIdentity::new("gh".into(), "s".into(), claims);
            let identity = match kind {
                0 => Identity::None,
                1 => Identity::Token { name },
                2 => Identity::Oidc(&workload),
                _ => Identity::Cert(&cert),
            };
            let req = Request { identity, ip: ip.parse::<IpAddr>().unwrap(), country };
            let app = &set.apps[0];
            let (reference, _) = explain(app, &req);
            prop_assert_eq!(evaluate(app, &req), reference);
        }
    }

    #[test]
    fn thousand_cn_policies_use_one_set_and_keep_file_order() {
        let mut text = String::from(
            "[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:1\"\n\n",
        );
        for i in 0..1000 {
            text.push_str(&format!(
                "[[app.policy]]\nname = \"d{i}\"\naction = \"non_identity\"\ninclude = [{{ common_name = 'device-{i:04}-[a-z]+' }}]\n\n"
            ));
        }
        text.push_str("[[app.policy]]\nname = \"any\"\naction = \"non_identity\"\ninclude = [{ common_name = 'device-.*' }]\n");
        let set = compile(&toml::from_str::<PolicyFile>(&text).unwrap()).unwrap();
        let app = &set.apps[0];
        let pf = app.prefilter.get(&app.policies);
        assert!(pf.cn_set.is_some());
        assert_eq!(pf.cn_policy_of.len(), 1001);
        let cert = |cn: &str| CertIdentity {
            common_name: Some(cn.into()),
            ..Default::default()
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let decide = |cn: &str| {
            let c = cert(cn);
            evaluate(
                app,
                &Request {
                    identity: Identity::Cert(&c),
                    ip,
                    country: None,
                },
            )
            .policy_name()
            .map(str::to_string)
        };
        assert_eq!(decide("device-0999-abc").as_deref(), Some("d999"));
        assert_eq!(decide("device-5000-abc").as_deref(), Some("any"));
        assert_eq!(decide("nothing"), None);
    }
}
