//! Shared credential: one credential used from many distinct client IPs or user agents within
//! a window (the "one token for every CI job" anti-pattern: a leak anywhere leaks it all, and
//! it can never be rotated without breaking everyone).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::alert::{AlertBook, Content, Hit, Rule, Severity, Subject};
use super::config::SharedConfig;
use super::window::BoundedMap;
use crate::audit::AccessEvent;

/// Distinct IPs / user agents remembered per credential (thresholds must not exceed it).
pub const MAX_DISTINCT: usize = 256;
/// How many of them an alert lists.
const LISTED: usize = 20;

#[derive(Debug)]
struct Users {
    ips: BoundedMap<String, ()>,
    user_agents: BoundedMap<String, ()>,
}

/// The rule.
#[derive(Debug)]
pub(crate) struct SharedCredential {
    cfg: SharedConfig,
    users: BoundedMap<String, Users>,
}

impl SharedCredential {
    pub(crate) fn new(cfg: SharedConfig, max_keys: usize) -> Self {
        Self {
            cfg,
            users: BoundedMap::new(max_keys),
        }
    }

    /// Note who used the credential; alert while too many distinct users are in the window.
    pub(crate) fn observe(
        &mut self,
        ev: &AccessEvent,
        subject: &Subject,
        book: &mut AlertBook,
    ) -> Option<AccessEvent> {
        let now = ev.created_at;
        let since = now - self.cfg.window;
        let users = self.users.touch(&*subject.key_str(), now, || Users {
            ips: BoundedMap::new(MAX_DISTINCT),
            user_agents: BoundedMap::new(MAX_DISTINCT),
        });
        if let Some(ip) = &ev.ip_address {
            users.ips.touch(ip, now, || ());
        }
        if let Some(ua) = &ev.user_agent {
            users.user_agents.touch(ua, now, || ());
        }
        users.ips.forget_before(since);
        users.user_agents.forget_before(since);
        let (n_ips, n_uas) = (users.ips.len(), users.user_agents.len());
        if n_ips < self.cfg.distinct_ips as usize && n_uas < self.cfg.distinct_user_agents as usize
        {
            return None;
        }
        let facts = [
            ("ips", ev.ip_address.as_deref()),
            ("user_agents", ev.user_agent.as_deref()),
        ];
        let hit = Hit {
            rule: Rule::SharedCredential,
            subject,
            at: now,
            add: 1,
            severity: Severity::Warning,
            phase: 0,
            notable: false,
            facts: &facts,
            event: Some(ev),
        };
        let window = self.cfg.window;
        book.hit(hit, || Content {
            title: format!(
                "{} shared: used from {n_ips} IPs and {n_uas} user agents within {}",
                subject.describe(),
                crate::duration::countdown(window)
            ),
            evidence: json!({
                "distinct_ips": n_ips,
                "distinct_user_agents": n_uas,
                "window_secs": window.num_seconds(),
                "ips_in_window": listed(&users.ips),
                "user_agents_in_window": listed(&users.user_agents),
            }),
        })
    }

    pub(crate) fn forget_idle(&mut self, now: DateTime<Utc>) {
        self.users.forget_before(now - self.cfg.window);
    }
}

fn listed(m: &BoundedMap<String, ()>) -> Vec<String> {
    let mut v: Vec<(DateTime<Utc>, String)> = m
        .keys()
        .map(|k| (m.touched_at(k).unwrap_or_default(), k.clone()))
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v.into_iter().take(LISTED).map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn ev(at: DateTime<Utc>, ip: &str, ua: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(crate::audit::EventKind::Access, at, "r".into());
        e.allowed = true;
        e.service_token_id = Some("abc.access".into());
        e.service_token_name = Some("ci-shared-prod".into());
        e.ip_address = Some(ip.into());
        e.user_agent = Some(ua.into());
        e
    }

    fn rule() -> SharedCredential {
        let cfg = SharedConfig {
            window: Duration::seconds(60),
            distinct_ips: 4,
            distinct_user_agents: 3,
            ..Default::default()
        };
        SharedCredential::new(cfg, 100)
    }

    fn run(r: &mut SharedCredential, book: &mut AlertBook, e: &AccessEvent) -> Option<AccessEvent> {
        r.observe(e, &Subject::of_event(e).unwrap(), book)
    }

    #[test]
    fn fires_on_many_ips_within_the_window() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        for i in 0..3 {
            assert!(run(&mut r, &mut book, &ev(t(i), &format!("10.0.0.{i}"), "ci/1")).is_none());
        }
        let alert = run(&mut r, &mut book, &ev(t(3), "10.0.0.3", "ci/1")).unwrap();
        let d = alert.details.unwrap();
        assert_eq!(alert.decision, "shared_credential");
        assert_eq!(d["evidence"]["distinct_ips"], 4);
        assert_eq!(d["evidence"]["ips_in_window"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn fires_on_many_user_agents() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        run(&mut r, &mut book, &ev(t(0), "10.0.0.1", "curl/8"));
        run(&mut r, &mut book, &ev(t(1), "10.0.0.1", "python/3"));
        assert!(run(&mut r, &mut book, &ev(t(2), "10.0.0.1", "go-http/1.1")).is_some());
    }

    #[test]
    fn the_same_users_spread_over_time_do_not_fire() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        for i in 0..20 {
            // A new IP every 30 s: never more than 3 in a 60 s window.
            assert!(
                run(
                    &mut r,
                    &mut book,
                    &ev(t(i * 30), &format!("10.0.1.{i}"), "ci/1")
                )
                .is_none()
            );
        }
    }

    #[test]
    fn dedups_then_resolves() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let emitted = (0..100)
            .filter(|i| {
                run(
                    &mut r,
                    &mut book,
                    &ev(t(i / 10), &format!("10.0.0.{}", i % 8), "ci/1"),
                )
                .is_some()
            })
            .count();
        assert!((1..=7).contains(&emitted), "{emitted}");
        // One user only from now on: no more hits; resolved after the quiet time.
        assert!(run(&mut r, &mut book, &ev(t(200), "10.0.0.1", "ci/1")).is_none());
        let done = book.resolve_quiet(t(9) + Duration::seconds(300), |_| {
            Some(Duration::seconds(300))
        });
        assert_eq!(done.len(), 1);
    }
}
