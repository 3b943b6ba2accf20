//! Unexpected country: a credential used from a country it is not expected in (likely leaked).
//! Expected countries come from the policy's `country` requirements for the credential, or,
//! when the policy does not restrict it, are learned from its first requests.

use std::collections::BTreeSet;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::alert::{AlertBook, Content, Hit, Rule, Severity, Subject};
use super::config::CountryConfig;
use super::window::BoundedMap;
use crate::audit::AccessEvent;
use crate::config::PolicyFile;
use crate::policy::{CertIdentity, Identity, PolicySet};

/// Learned country sets stop growing at this size (memory bound; 32 is already "anywhere").
const MAX_LEARNED: usize = 32;

/// Which countries the policy file lets each credential in from (asked of
/// `policy::admitting_policies`, the same evaluation the gate makes).
#[derive(Debug, Clone, Default)]
pub struct ExpectedCountries {
    policies: Option<Arc<PolicySet>>,
}

impl ExpectedCountries {
    /// From the policy file; a file that does not compile expects nothing (`policy check` and
    /// the reload report why).
    pub fn from_policy(file: &PolicyFile) -> Self {
        Self {
            policies: crate::policy::compile(file).ok().map(Arc::new),
        }
    }

    /// Expected countries for `subject` per the policy; `None` when the policy does not
    /// restrict it (or admits it nowhere): its countries are then learned.
    ///
    /// Policies that name the credential (token name, CN pattern) speak for it; wildcard
    /// policies (`any_service_token`, `valid_certificate`) only count when none does, so a
    /// catch-all "any bot may read status" does not erase a CI token's `country = ["US"]`.
    pub fn for_subject(&self, subject: &Subject) -> Option<BTreeSet<String>> {
        let policies = self.policies.as_ref()?;
        let cert;
        let identity = match subject {
            Subject::Token {
                name: Some(name), ..
            } => Identity::Token { name },
            Subject::Cert {
                common_name: Some(cn),
                serial,
            } => {
                cert = CertIdentity {
                    common_name: Some(cn.clone()),
                    serial: serial.clone().unwrap_or_default(),
                    ..Default::default()
                };
                Identity::Cert(&cert)
            }
            _ => return None,
        };
        let admitted: Vec<_> = policies
            .apps
            .iter()
            .flat_map(|app| crate::policy::admitting_policies(app, identity))
            .collect();
        let named: Vec<_> = admitted.iter().filter(|a| a.named).collect();
        let speaking = if named.is_empty() {
            admitted.iter().collect()
        } else {
            named
        };
        let mut union: Option<BTreeSet<String>> = None;
        for a in speaking {
            match &a.countries {
                None => return None,
                Some(c) => union
                    .get_or_insert_with(BTreeSet::new)
                    .extend(c.iter().cloned()),
            }
        }
        union
    }
}

/// Per-credential state.
#[derive(Debug)]
struct Seen {
    first_seen: DateTime<Utc>,
    located_events: u64,
    /// From the policy (fixed) or learned (grows until learning ends).
    expected: BTreeSet<String>,
    from_policy: bool,
    subject: Subject,
}

/// The rule.
#[derive(Debug)]
pub(crate) struct UnexpectedCountry {
    cfg: CountryConfig,
    policy: ExpectedCountries,
    seen: BoundedMap<String, Seen>,
}

impl UnexpectedCountry {
    pub(crate) fn new(cfg: CountryConfig, max_keys: usize) -> Self {
        Self {
            cfg,
            policy: ExpectedCountries::default(),
            seen: BoundedMap::new(max_keys),
        }
    }

    /// New policy: policy-derived sets are recomputed; a credential the policy no longer
    /// restricts starts learning again.
    pub(crate) fn set_policy(&mut self, policy: ExpectedCountries) {
        for s in self.seen.values_mut() {
            match policy.for_subject(&s.subject) {
                Some(expected) => {
                    s.expected = expected;
                    s.from_policy = true;
                }
                None if s.from_policy => {
                    s.expected.clear();
                    s.from_policy = false;
                    s.located_events = 0;
                }
                None => {}
            }
        }
        self.policy = policy;
    }

    /// Look at one authenticated access event.
    pub(crate) fn observe(
        &mut self,
        ev: &AccessEvent,
        subject: &Subject,
        book: &mut AlertBook,
    ) -> Option<AccessEvent> {
        let country = ev.country.as_deref()?;
        let now = ev.created_at;
        let key = subject.key_str();
        let policy = &self.policy;
        let state = self.seen.touch(&*key, now, || {
            let expected = policy.for_subject(subject);
            Seen {
                first_seen: now,
                located_events: 0,
                from_policy: expected.is_some(),
                expected: expected.unwrap_or_default(),
                subject: subject.clone(),
            }
        });
        state.located_events += 1;
        let learning = !state.from_policy
            && (now - state.first_seen < self.cfg.learn_period
                || state.located_events <= self.cfg.learn_min_events);
        if learning {
            if state.expected.len() < MAX_LEARNED {
                state.expected.insert(country.to_string());
            }
            return None;
        }
        if state.expected.contains(country) {
            return None;
        }
        let (expected, source) = (
            &state.expected,
            if state.from_policy {
                "policy"
            } else {
                "learned"
            },
        );
        let notable = book.is_new_fact(Rule::UnexpectedCountry, &key, "countries", country);
        let facts = [
            ("countries", Some(country)),
            ("ips", ev.ip_address.as_deref()),
            ("user_agents", ev.user_agent.as_deref()),
        ];
        let hit = Hit {
            rule: Rule::UnexpectedCountry,
            subject,
            at: now,
            add: 1,
            severity: Severity::Critical,
            phase: 0,
            notable,
            facts: &facts,
            event: Some(ev),
        };
        book.hit(hit, || Content {
            title: format!(
                "{} used from {country}; expected {} ({source})",
                subject.describe(),
                expected.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            evidence: json!({ "expected": expected, "expected_source": source, "allowed": ev.allowed }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::alert::AlertBook;
    use super::*;
    use chrono::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn ev(at: DateTime<Utc>, name: &str, country: &str, ip: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(crate::audit::EventKind::Access, at, "r".into());
        e.allowed = true;
        e.decision = "allow".into();
        e.service_token_id = Some(format!("{name}.id"));
        e.service_token_name = Some(name.into());
        e.country = Some(country.into());
        e.ip_address = Some(ip.into());
        e.user_agent = Some("curl/8".into());
        e
    }

    fn rule(learn_secs: i64, learn_events: u64) -> UnexpectedCountry {
        let cfg = CountryConfig {
            learn_period: Duration::seconds(learn_secs),
            learn_min_events: learn_events,
            ..Default::default()
        };
        UnexpectedCountry::new(cfg, 100)
    }

    fn run(
        r: &mut UnexpectedCountry,
        book: &mut AlertBook,
        e: &AccessEvent,
    ) -> Option<AccessEvent> {
        let s = Subject::of_event(e).unwrap();
        r.observe(e, &s, book)
    }

    #[test]
    fn fires_after_learning_on_a_new_country() {
        let (mut r, mut book) = (rule(60, 5), AlertBook::new(100));
        for i in 0..10 {
            assert!(
                run(
                    &mut r,
                    &mut book,
                    &ev(t(i * 10), "ci-deploy-prod", "US", "10.0.0.1")
                )
                .is_none()
            );
        }
        let alert = run(
            &mut r,
            &mut book,
            &ev(t(200), "ci-deploy-prod", "RU", "10.9.9.9"),
        )
        .unwrap();
        let d = alert.details.unwrap();
        assert_eq!(alert.decision, "unexpected_country");
        assert_eq!(alert.country.as_deref(), Some("RU"));
        assert_eq!(d["severity"], "critical");
        assert_eq!(d["evidence"]["expected"], json!(["US"]));
        assert_eq!(d["evidence"]["expected_source"], "learned");
        assert_eq!(d["evidence"]["ips"]["10.9.9.9"], 1);
        assert!(d["title"].as_str().unwrap().contains("used from RU"));
    }

    #[test]
    fn does_not_fire_while_learning_or_from_a_learned_country() {
        let (mut r, mut book) = (rule(3600, 5), AlertBook::new(100));
        // Many countries during the learning period (time not yet passed) are all learned.
        for (i, c) in ["US", "DE", "SG"].iter().enumerate() {
            assert!(run(&mut r, &mut book, &ev(t(i as i64), "a-b-c", c, "10.0.0.1")).is_none());
        }
        for i in 0..20 {
            assert!(
                run(
                    &mut r,
                    &mut book,
                    &ev(t(4000 + i), "a-b-c", "DE", "10.0.0.1")
                )
                .is_none()
            );
        }
        // Unknown country (no geo data) never alerts.
        let mut e = ev(t(5000), "a-b-c", "US", "10.0.0.1");
        e.country = None;
        assert!(run(&mut r, &mut book, &e).is_none());
    }

    #[test]
    fn dedups_per_credential_and_updates_on_a_new_country() {
        let (mut r, mut book) = (rule(0, 2), AlertBook::new(100));
        for i in 0..3 {
            run(&mut r, &mut book, &ev(t(i), "a-b-c", "US", "10.0.0.1"));
        }
        assert!(run(&mut r, &mut book, &ev(t(10), "a-b-c", "RU", "10.9.9.9")).is_some());
        let emitted = (0..50)
            .filter(|i| run(&mut r, &mut book, &ev(t(11 + i), "a-b-c", "RU", "10.9.9.9")).is_some())
            .count();
        assert!(emitted <= 6, "count doublings only, got {emitted}");
        let update = run(&mut r, &mut book, &ev(t(100), "a-b-c", "BR", "10.8.8.8"))
            .expect("a new country is an update");
        let d = update.details.unwrap();
        assert_eq!(d["evidence"]["countries"]["RU"], 51);
        assert_eq!(d["evidence"]["countries"]["BR"], 1);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn resolves_when_quiet() {
        let (mut r, mut book) = (rule(0, 1), AlertBook::new(100));
        run(&mut r, &mut book, &ev(t(0), "a-b-c", "US", "10.0.0.1"));
        run(&mut r, &mut book, &ev(t(1), "a-b-c", "US", "10.0.0.1"));
        assert!(run(&mut r, &mut book, &ev(t(2), "a-b-c", "VN", "10.0.0.2")).is_some());
        run(&mut r, &mut book, &ev(t(500), "a-b-c", "US", "10.0.0.1"));
        let done = book.resolve_quiet(t(902), |_| Some(Duration::minutes(15)));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].details.as_ref().unwrap()["state"], "resolved");
    }

    #[test]
    fn wildcard_policy_does_not_erase_a_named_tokens_countries() {
        let file: PolicyFile = toml::from_str(
            r#"
            [[app]]
            name = "api"
            hostnames = ["api"]
            upstream = "http://127.0.0.1:1"
            [[app.policy]]
            name = "ci"
            action = "service_auth"
            include = [{ service_token = "ci-deploy-staging" }]
            require = [{ country = ["US"] }]
            [[app.policy]]
            name = "any bot may read status"
            action = "service_auth"
            include = [{ any_service_token = true }]
            "#,
        )
        .unwrap();
        let expected = ExpectedCountries::from_policy(&file);
        let named = Subject::Token {
            id: None,
            name: Some("ci-deploy-staging".into()),
        };
        assert_eq!(
            expected.for_subject(&named),
            Some(BTreeSet::from(["US".into()]))
        );
        let other = Subject::Token {
            id: None,
            name: Some("monitoring-probe-prod".into()),
        };
        assert_eq!(
            expected.for_subject(&other),
            None,
            "only the wildcard speaks for it"
        );
    }

    #[test]
    fn policy_countries_apply_from_the_first_request() {
        let file: PolicyFile = toml::from_str(
            r#"
            [[app]]
            name = "api"
            hostnames = ["api"]
            upstream = "http://127.0.0.1:1"
            [[app.policy]]
            name = "devices"
            action = "non_identity"
            include = [{ common_name = "device-.*" }]
            require = [{ country = ["SG", "VN"] }]
            [[app.policy]]
            name = "ci"
            action = "service_auth"
            include = [{ service_token = "ci-deploy-prod" }]
            require = [{ country = "us" }]
            [[app.policy]]
            name = "ops"
            action = "service_auth"
            include = [{ service_token = "ops-tool-prod" }]
            "#,
        )
        .unwrap();
        let expected = ExpectedCountries::from_policy(&file);
        let device = Subject::Cert {
            serial: Some("01".into()),
            common_name: Some("device-7".into()),
        };
        assert_eq!(
            expected.for_subject(&device),
            Some(BTreeSet::from(["SG".into(), "VN".into()]))
        );
        let ops = Subject::Token {
            id: None,
            name: Some("ops-tool-prod".into()),
        };
        assert_eq!(expected.for_subject(&ops), None);

        let (mut r, mut book) = (rule(3600, 100), AlertBook::new(100));
        r.set_policy(expected);
        assert!(
            run(
                &mut r,
                &mut book,
                &ev(t(0), "ci-deploy-prod", "US", "10.0.0.1")
            )
            .is_none()
        );
        let alert = run(
            &mut r,
            &mut book,
            &ev(t(1), "ci-deploy-prod", "DE", "10.0.0.2"),
        )
        .unwrap();
        assert_eq!(
            alert.details.unwrap()["evidence"]["expected_source"],
            "policy"
        );
        assert!(
            run(
                &mut r,
                &mut book,
                &ev(t(2), "ops-tool-prod", "DE", "10.0.0.2")
            )
            .is_none(),
            "unrestricted: learning"
        );
    }
}
