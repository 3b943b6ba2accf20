//! Failed authentication: a spike of failures per client IP and per presented credential
//! (guessing, a broken deploy), and a revoked or rotated-out credential still being presented
//! (a client nobody updated, or someone holding a leaked old secret).

use chrono::DateTime;
use chrono::Utc;
use serde_json::json;

use super::alert::{AlertBook, Content, Hit, Rule, Severity, Subject};
use super::config::FailedAuthConfig;
use super::window::{BoundedMap, WindowCounter};
use crate::audit::AccessEvent;

/// Slots per failure window (its resolution).
const SLOTS: usize = 12;

/// `deny_reason`s that mean the request did not authenticate (revocations excluded: they have
/// their own rule).
pub(crate) fn is_auth_failure(reason: &str) -> bool {
    matches!(
        reason,
        "missing_credentials"
            | "half_credentials"
            | "duplicate_credential_headers"
            | "malformed_client_id"
            | "malformed_secret"
            | "unknown_client_id"
            | "bad_secret"
            | "token_expired"
            | "token_ip_not_allowed"
            | "cert_untrusted"
            | "cert_expired"
            | "cert_required"
            | "oidc_malformed"
            | "oidc_unknown_issuer"
            | "oidc_bad_signature"
            | "oidc_expired"
            | "oidc_not_yet_valid"
            | "oidc_wrong_audience"
    )
}

/// `deny_reason`s for a revoked credential (revocation is also how a rotation ends).
pub(crate) fn is_revoked(reason: &str) -> bool {
    // A superseded secret is a revoked credential presented: a client the rotation missed, or
    // someone holding the old secret.
    matches!(
        reason,
        "token_revoked" | "cert_revoked" | "token_secret_superseded"
    )
}

/// The spike rule.
#[derive(Debug)]
pub(crate) struct FailedAuthSpike {
    cfg: FailedAuthConfig,
    per_ip: BoundedMap<String, WindowCounter>,
    per_client: BoundedMap<String, WindowCounter>,
}

impl FailedAuthSpike {
    pub(crate) fn new(cfg: FailedAuthConfig, max_keys: usize) -> Self {
        Self {
            cfg,
            per_ip: BoundedMap::new(max_keys),
            per_client: BoundedMap::new(max_keys),
        }
    }

    /// Count one failed authentication (the caller checked `is_auth_failure`).
    pub(crate) fn observe(
        &mut self,
        ev: &AccessEvent,
        book: &mut AlertBook,
        out: &mut Vec<AccessEvent>,
    ) {
        let now = ev.created_at;
        let window = self.cfg.window;
        let reason = ev.deny_reason.as_deref();
        let presented = ev
            .identity()
            .or(ev.service_token_id.as_deref())
            .or(ev.cert_serial.as_deref());
        if let Some(ip) = ev.ip_address.as_deref() {
            let subject = Subject::ClientIp(ip.to_string());
            let counter = self
                .per_ip
                .touch(&subject.key(), now, || WindowCounter::new(window, SLOTS));
            counter.add(now, 1);
            let total = counter.total(now);
            if total >= self.cfg.per_ip {
                let facts = [
                    ("reasons", reason),
                    ("credentials", presented),
                    ("user_agents", ev.user_agent.as_deref()),
                ];
                out.extend(spike(book, ev, &subject, total, &facts, window));
            }
        }
        // A workload token that did not verify has no identity: it counts for its issuer.
        let subject = Subject::of_event(ev).or_else(|| {
            ev.details
                .as_ref()
                .and_then(|d| d.get("oidc_issuer"))
                .and_then(|i| i.as_str())
                .map(|i| Subject::OidcIssuer(i.to_string()))
        });
        if let Some(subject) = subject {
            let counter = self.per_client.touch(&*subject.key_str(), now, || {
                WindowCounter::new(window, SLOTS)
            });
            counter.add(now, 1);
            let total = counter.total(now);
            if total >= self.cfg.per_client {
                let facts = [
                    ("reasons", reason),
                    ("ips", ev.ip_address.as_deref()),
                    ("user_agents", ev.user_agent.as_deref()),
                ];
                out.extend(spike(book, ev, &subject, total, &facts, window));
            }
        }
    }

    pub(crate) fn forget_idle(&mut self, now: DateTime<Utc>) {
        self.per_ip.forget_before(now - self.cfg.window);
        self.per_client.forget_before(now - self.cfg.window);
    }
}

fn spike(
    book: &mut AlertBook,
    ev: &AccessEvent,
    subject: &Subject,
    in_window: u64,
    facts: &[(&'static str, Option<&str>)],
    window: chrono::Duration,
) -> Option<AccessEvent> {
    let add = if book.is_open(Rule::FailedAuthSpike, &subject.key()) {
        1
    } else {
        in_window
    };
    let hit = Hit {
        rule: Rule::FailedAuthSpike,
        subject,
        at: ev.created_at,
        add,
        severity: Severity::Warning,
        phase: 0,
        notable: false,
        facts,
        event: Some(ev),
    };
    book.hit(hit, || Content {
        title: format!(
            "{}: {in_window} failed authentications in {}",
            subject.describe(),
            crate::duration::countdown(window)
        ),
        evidence: json!({ "failures_in_window": in_window, "window_secs": window.num_seconds() }),
    })
}

/// A revoked credential presented again: one alert per credential, updated per new client IP.
pub(crate) fn revoked_presented(ev: &AccessEvent, book: &mut AlertBook) -> Option<AccessEvent> {
    let subject = Subject::of_event(ev)?;
    let ip = ev.ip_address.as_deref();
    let ua = ev.user_agent.as_deref();
    let notable = ip.is_some_and(|ip| {
        book.is_new_fact(Rule::FailedAuthAfterRevocation, &subject.key(), "ips", ip)
    });
    let facts = [("ips", ip), ("user_agents", ua)];
    let hit = Hit {
        rule: Rule::FailedAuthAfterRevocation,
        subject: &subject,
        at: ev.created_at,
        add: 1,
        severity: Severity::Warning,
        phase: 0,
        notable,
        facts: &facts,
        event: Some(ev),
    };
    book.hit(hit, || Content {
        title: format!(
            "revoked {} still presented by {} ({})",
            subject.describe(),
            ip.unwrap_or("unknown IP"),
            ua.unwrap_or("no user agent")
        ),
        evidence: json!({ "deny_reason": ev.deny_reason, "app": ev.app_name }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn failure(at: DateTime<Utc>, reason: &str, ip: &str, client: Option<&str>) -> AccessEvent {
        let mut e = AccessEvent::empty(crate::audit::EventKind::Access, at, "r".into());
        e.decision = "deny".into();
        e.deny_reason = Some(reason.into());
        e.ip_address = Some(ip.into());
        e.user_agent = Some("python-requests/2".into());
        e.service_token_id = client.map(str::to_string);
        e
    }

    fn rule() -> FailedAuthSpike {
        let cfg = FailedAuthConfig {
            window: Duration::seconds(60),
            per_ip: 10,
            per_client: 5,
            ..Default::default()
        };
        FailedAuthSpike::new(cfg, 100)
    }

    fn feed(
        r: &mut FailedAuthSpike,
        book: &mut AlertBook,
        evs: impl IntoIterator<Item = AccessEvent>,
    ) -> Vec<AccessEvent> {
        let mut out = Vec::new();
        for e in evs {
            r.observe(&e, book, &mut out);
        }
        out
    }

    #[test]
    fn fires_per_ip_at_the_threshold() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let evs = (0..9).map(|i| failure(t(i), "missing_credentials", "203.0.113.9", None));
        assert!(feed(&mut r, &mut book, evs).is_empty());
        let out = feed(
            &mut r,
            &mut book,
            [failure(t(9), "bad_secret", "203.0.113.9", None)],
        );
        assert_eq!(out.len(), 1);
        let d = out[0].details.as_ref().unwrap();
        assert_eq!(d["alert_id"], "failed_auth_spike:ip:203.0.113.9");
        assert_eq!(out[0].ip_address.as_deref(), Some("203.0.113.9"));
        assert_eq!(d["count"], 10);
        assert_eq!(d["evidence"]["reasons"]["bad_secret"], 1);
    }

    #[test]
    fn fires_per_client_id_across_ips() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let evs = (0..5).map(|i| {
            failure(
                t(i),
                "bad_secret",
                &format!("10.0.0.{i}"),
                Some("abc.access"),
            )
        });
        let out = feed(&mut r, &mut book, evs);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].details.as_ref().unwrap()["alert_id"],
            "failed_auth_spike:abc.access"
        );
        assert_eq!(out[0].service_token_id.as_deref(), Some("abc.access"));
    }

    #[test]
    fn slow_failures_do_not_fire() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let evs = (0..50).map(|i| failure(t(i * 20), "bad_secret", "10.0.0.1", Some("abc.access")));
        assert!(feed(&mut r, &mut book, evs).is_empty());
    }

    #[test]
    fn dedups_and_resolves() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let evs = (0..200).map(|i| failure(t(i / 10), "missing_credentials", "10.0.0.1", None));
        let out = feed(&mut r, &mut book, evs);
        assert!((1..=6).contains(&out.len()), "{} events", out.len());
        assert_eq!(book.len(), 1);
        let done = book.resolve_quiet(t(19) + Duration::minutes(15), |_| {
            Some(Duration::minutes(15))
        });
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].details.as_ref().unwrap()["state"], "resolved");
    }

    #[test]
    fn revoked_token_names_ip_and_user_agent() {
        let mut book = AlertBook::new(100);
        let mut e = failure(t(0), "token_revoked", "10.0.0.7", Some("abc.access"));
        e.service_token_name = Some("ci-deploy-prod".into());
        let alert = revoked_presented(&e, &mut book).unwrap();
        let d = alert.details.as_ref().unwrap();
        assert_eq!(alert.decision, "failed_auth_after_revocation");
        assert_eq!(alert.service_token_name.as_deref(), Some("ci-deploy-prod"));
        assert!(
            d["title"]
                .as_str()
                .unwrap()
                .contains("10.0.0.7 (python-requests/2)")
        );
        assert_eq!(d["evidence"]["ips"]["10.0.0.7"], 1);
        assert_eq!(d["evidence"]["user_agents"]["python-requests/2"], 1);
        // Same client again: deduplicated; a second client: an update.
        assert!(
            revoked_presented(
                &failure(t(1), "token_revoked", "10.0.0.7", Some("abc.access")),
                &mut book
            )
            .is_some()
        );
        assert!(
            revoked_presented(
                &failure(t(2), "token_revoked", "10.0.0.7", Some("abc.access")),
                &mut book
            )
            .is_none()
        );
        assert!(
            revoked_presented(
                &failure(t(3), "token_revoked", "10.0.0.8", Some("abc.access")),
                &mut book
            )
            .is_some()
        );
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn workload_token_failures_count_per_issuer() {
        let (mut r, mut book) = (rule(), AlertBook::new(100));
        let evs = (0..5).map(|i| {
            let mut e = failure(t(i), "oidc_bad_signature", &format!("198.51.100.{i}"), None);
            e.details = Some(serde_json::json!({ "oidc_issuer": "github", "oidc_error": "…" }));
            e
        });
        let out = feed(&mut r, &mut book, evs);
        assert_eq!(out.len(), 1, "{out:?}");
        let d = out[0].details.as_ref().unwrap();
        assert_eq!(d["alert_id"], "failed_auth_spike:oidc_issuer:github");
        assert!(is_auth_failure("oidc_expired") && is_auth_failure("oidc_wrong_audience"));
    }

    #[test]
    fn classification() {
        assert!(is_auth_failure("bad_secret") && !is_auth_failure("token_revoked"));
        assert!(!is_auth_failure("no_policy_matched") && !is_auth_failure("upstream_unreachable"));
        assert!(is_revoked("cert_revoked") && !is_revoked("cert_expired"));
    }
}
