//! Detection: anomaly rules over the audit stream that raise typed `Alert`s (carried by `alert`
//! events). Each rule is a
//! small pure function of the events it sees and an injected `now` (the event's `created_at`,
//! or the `tick` argument); no rule sleeps or reads the wall clock, so every one is tested with
//! synthetic streams. Rules never block requests: they only say so, loudly.
//!
//! The `Engine` owns the rules and the open-alert book: one open alert per rule × credential
//! (or client IP / CA), updated when its count doubles or its severity changes, resolved (with a
//! `state: resolved` event) when the condition has been gone for the rule's quiet time, or, for
//! inventory rules, at the first tick where it no longer holds. Memory is bounded: each rule
//! tracks at most `max_tracked_keys` keys and forgets the stalest.
//!
//! Wiring: feed every access event to `observe`, call `tick` every few seconds with the
//! inventory, publish what both return on the audit bus; or let `task::spawn` do exactly that.

mod alert;
mod alert_event;
pub mod config;
mod country;
mod failed_auth;
mod frequency;
mod inventory;
mod shared;
pub mod task;
mod window;

use chrono::{DateTime, Utc};

pub use alert::{Rule, Severity, Subject};
pub use alert_event::{Alert, AlertReadError, AlertState};
pub use config::{DetectConfig, DetectConfigError};
pub use country::ExpectedCountries;
pub use inventory::{CredentialExpiry, CredentialKind, CrlStatus, SigningKeyDue, StaleIssuer};
pub use task::{DetectHandle, Inventory};

use crate::audit::{AccessEvent, EventKind};
use alert::AlertBook;
use country::UnexpectedCountry;
use failed_auth::FailedAuthSpike;
use frequency::FrequencySpike;
use shared::SharedCredential;
use window::BoundedMap;

/// Whether the fleet-wide rules (frequency spike, shared credential) count `ev`: an
/// authenticated access (allowed, or refused after authentication). Gates relay these through
/// the store's usage feed.
pub fn counts_for_fleet(ev: &AccessEvent) -> bool {
    let identified = ev.service_token_id.is_some()
        || ev.service_token_name.is_some()
        || ev.cert_serial.is_some()
        || ev.cert_common_name.is_some();
    let failed = ev
        .deny_reason
        .as_deref()
        .is_some_and(|r| failed_auth::is_revoked(r) || failed_auth::is_auth_failure(r));
    ev.event == EventKind::Access && identified && !failed
}

/// All detection rules and their open alerts.
#[derive(Debug)]
pub struct Engine {
    cfg: DetectConfig,
    book: AlertBook,
    country: UnexpectedCountry,
    frequency: FrequencySpike,
    failed: FailedAuthSpike,
    shared: SharedCredential,
    /// Credential key → last authenticated request the engine saw (for `unused_credential`).
    last_seen: BoundedMap<String, DateTime<Utc>>,
    /// Another gate holds the one-node lease (as of the last tick): this engine still counts
    /// the fleet's requests but leaves the fleet-wide alerts to that gate, keeping none open
    /// itself, so whichever gate holds the lease raises them on their next hit.
    standby: bool,
}

impl Engine {
    /// An engine with no expected countries from a policy (they are learned until
    /// `set_expected_countries` is called).
    pub fn new(cfg: DetectConfig) -> Self {
        let keys = cfg.max_tracked_keys;
        Self {
            book: AlertBook::new(cfg.max_open_alerts),
            country: UnexpectedCountry::new(cfg.unexpected_country.clone(), keys),
            frequency: FrequencySpike::new(cfg.frequency_spike.clone(), keys),
            failed: FailedAuthSpike::new(cfg.failed_auth_spike.clone(), keys),
            shared: SharedCredential::new(cfg.shared_credential.clone(), keys),
            last_seen: BoundedMap::new(keys),
            standby: false,
            cfg,
        }
    }

    /// Countries the (re)loaded policy expects per credential: `ExpectedCountries::from_policy`.
    pub fn set_expected_countries(&mut self, expected: ExpectedCountries) {
        self.country.set_policy(expected);
    }

    /// Look at one event (non-`access` events are ignored); returns alert events to publish.
    pub fn observe(&mut self, ev: &AccessEvent) -> Vec<AccessEvent> {
        let mut out = Vec::new();
        if ev.event == EventKind::Admin && ev.decision == "token_retire" && !self.standby {
            out.extend(inventory::retired(ev, &mut self.book));
        }
        if ev.event != EventKind::Access {
            return out;
        }
        let book = &mut self.book;
        match ev.deny_reason.as_deref() {
            Some(r) if failed_auth::is_revoked(r) => {
                if self.cfg.failed_auth_after_revocation.enabled {
                    out.extend(failed_auth::revoked_presented(ev, book));
                }
            }
            Some(r) if failed_auth::is_auth_failure(r) => {
                if self.cfg.failed_auth_spike.enabled {
                    self.failed.observe(ev, book, &mut out);
                }
            }
            // Authenticated (allowed, or refused by policy / upstream / audit afterwards).
            _ => self.observe_authenticated(ev, 1, true, &mut out),
        }
        out
    }

    /// `requests` authenticated requests like `ev` that went through another gate (from the
    /// store's usage feed): only the fleet-wide rules (frequency spike, shared credential)
    /// count them; the unexpected-country rule is each gate's own.
    pub fn observe_remote(&mut self, ev: &AccessEvent, requests: u64) -> Vec<AccessEvent> {
        let mut out = Vec::new();
        if counts_for_fleet(ev) {
            self.observe_authenticated(ev, requests.max(1), false, &mut out);
        }
        out
    }

    fn observe_authenticated(
        &mut self,
        ev: &AccessEvent,
        requests: u64,
        local: bool,
        out: &mut Vec<AccessEvent>,
    ) {
        let Some(subject) = Subject::of_event(ev) else {
            return;
        };
        let book = &mut self.book;
        let now = ev.created_at;
        let seen = self.last_seen.touch(&*subject.key_str(), now, || now);
        *seen = (*seen).max(now);
        if local && self.cfg.unexpected_country.enabled {
            out.extend(self.country.observe(ev, &subject, book));
        }
        let mut fleet = Vec::new();
        if self.cfg.frequency_spike.enabled {
            fleet.extend(self.frequency.observe(ev, requests, &subject, book));
        }
        if self.cfg.shared_credential.enabled {
            fleet.extend(self.shared.observe(ev, &subject, book));
        }
        if self.standby {
            book.forget(Rule::FrequencySpike, &subject.key_str());
            book.forget(Rule::SharedCredential, &subject.key_str());
        } else {
            out.extend(fleet);
        }
    }

    /// Run the inventory rules at `now` over the live (not revoked) credentials and the CRLs,
    /// resolve quiet alerts and forget idle keys; returns alert events to publish. Call it
    /// every few seconds (the resolution of resolve times), and `now` should not go backwards.
    pub fn tick(&mut self, now: DateTime<Utc>, inv: &Inventory) -> Vec<AccessEvent> {
        let Inventory {
            credentials,
            crls,
            signing_key,
            store_error,
            standby,
            stale_issuers,
        } = inv;
        self.standby = *standby;
        let mut out = Vec::new();
        let book = &mut self.book;
        out.extend(inventory::store_unreachable(
            now,
            store_error.as_deref(),
            book,
        ));
        // Each gate keeps its own key sets: checked here whether or not it holds the lease.
        out.extend(inventory::oidc_keys_stale(now, stale_issuers, book));
        if *standby {
            out.extend(book.resolve_quiet(now, |rule| quiet_time(&self.cfg, rule)));
            return out;
        }
        if self.cfg.credential_expiry.enabled {
            out.extend(inventory::expiry(
                &self.cfg.credential_expiry,
                now,
                credentials,
                book,
            ));
        }
        if self.cfg.unused_credential.enabled {
            out.extend(inventory::unused(
                &self.cfg.unused_credential,
                now,
                credentials,
                &self.last_seen,
                book,
            ));
        }
        if self.cfg.stale_crl.enabled {
            out.extend(inventory::stale_crls(now, crls, book));
        }
        out.extend(inventory::signing_key_overdue(
            now,
            signing_key.as_ref(),
            book,
        ));
        let suppressed = book.take_suppressed();
        if suppressed > 0 {
            tracing::warn!(
                suppressed,
                max_open_alerts = self.cfg.max_open_alerts,
                "too many open alerts: inventory alerts (expiring, expired, unused credentials) not opened until some resolve; raise [detect] max_open_alerts to see them all"
            );
        }
        let cfg = &self.cfg;
        out.extend(book.resolve_quiet(now, |rule| quiet_time(cfg, rule)));
        self.frequency.forget_idle(now);
        self.failed.forget_idle(now);
        self.shared.forget_idle(now);
        out
    }

    /// How many alerts are open now (for `/metrics`).
    pub fn open_alerts(&self) -> usize {
        self.book.len()
    }
}

/// The quiet time after which an event-driven alert resolves; `None` for inventory rules.
fn quiet_time(cfg: &DetectConfig, rule: Rule) -> Option<chrono::Duration> {
    let own = match rule {
        Rule::UnexpectedCountry => cfg.unexpected_country.resolve_after,
        Rule::FrequencySpike => cfg.frequency_spike.resolve_after,
        Rule::FailedAuthSpike => cfg.failed_auth_spike.resolve_after,
        Rule::FailedAuthAfterRevocation => cfg.failed_auth_after_revocation.resolve_after,
        Rule::SharedCredential => cfg.shared_credential.resolve_after,
        Rule::CredentialRetired => None,
        Rule::CredentialExpiring
        | Rule::CredentialExpired
        | Rule::UnusedCredential
        | Rule::StaleCrl
        | Rule::StoreUnreachable
        | Rule::SigningKeyOverdue
        | Rule::OidcKeysStale => {
            return None;
        }
    };
    Some(own.unwrap_or(cfg.resolve_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn access(at: DateTime<Utc>, deny_reason: Option<&str>, ip: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(EventKind::Access, at, "r".into());
        e.allowed = deny_reason.is_none();
        e.decision = if e.allowed { "allow" } else { "deny" }.into();
        e.deny_reason = deny_reason.map(str::to_string);
        e.service_token_id = Some("abc.access".into());
        e.service_token_name = Some("ci-deploy-prod".into());
        e.ip_address = Some(ip.into());
        e.user_agent = Some("curl/8".into());
        e
    }

    #[test]
    fn other_gates_requests_count_toward_the_fleet_wide_rules_only() {
        let mut cfg = DetectConfig::default();
        cfg.shared_credential.distinct_user_agents = 4;
        cfg.shared_credential.distinct_ips = 100;
        let mut engine = Engine::new(cfg);
        let with_ua = |s: i64, ua: &str| {
            let mut e = access(t(s), None, "10.0.0.1");
            e.user_agent = Some(ua.into());
            e
        };
        assert!(engine.observe(&with_ua(0, "runner-1")).is_empty());
        assert!(engine.observe(&with_ua(1, "runner-2")).is_empty());
        assert!(engine.observe_remote(&with_ua(1, "runner-3"), 3).is_empty());
        let out = engine.observe_remote(&with_ua(2, "runner-4"), 3);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].decision, "shared_credential");
        // On standby it counts but raises nothing: the lease holder does.
        let mut standby = Engine::new(engine.cfg.clone());
        standby.tick(
            t(0),
            &Inventory {
                standby: true,
                ..Default::default()
            },
        );
        standby.observe(&with_ua(0, "runner-1"));
        standby.observe(&with_ua(1, "runner-2"));
        standby.observe_remote(&with_ua(1, "runner-3"), 1);
        assert!(
            standby
                .observe_remote(&with_ua(2, "runner-4"), 1)
                .is_empty()
        );
        assert_eq!(standby.open_alerts(), 0);
        standby.tick(t(3), &Inventory::default());
        let raised = standby.observe(&with_ua(4, "runner-1"));
        assert_eq!(raised.len(), 1, "the new holder raises it on the next hit");
        // A failed authentication elsewhere is not the fleet rules' business.
        let failed = access(t(3), Some("bad_secret"), "10.0.0.9");
        assert!(!counts_for_fleet(&failed));
        assert!(engine.observe_remote(&failed, 50).is_empty());
    }

    #[test]
    fn routes_revoked_failed_and_authenticated_events() {
        let mut engine = Engine::new(DetectConfig::default());
        let out = engine.observe(&access(t(0), Some("token_revoked"), "10.0.0.9"));
        assert_eq!(out[0].decision, "failed_auth_after_revocation");
        assert!(
            engine
                .observe(&access(t(1), Some("bad_secret"), "10.0.0.9"))
                .is_empty()
        );
        assert!(engine.observe(&access(t(2), None, "10.0.0.1")).is_empty());
        // Alert and admin events are not inputs.
        let mut alert = out[0].clone();
        alert.event = EventKind::Alert;
        assert!(engine.observe(&alert).is_empty());
        assert_eq!(engine.open_alerts(), 1);
    }

    #[test]
    fn tick_resolves_with_the_rules_quiet_time() {
        let mut cfg = DetectConfig {
            resolve_after: Duration::seconds(30),
            ..Default::default()
        };
        cfg.failed_auth_after_revocation.resolve_after = Some(Duration::seconds(10));
        let mut engine = Engine::new(cfg);
        engine.observe(&access(t(0), Some("token_revoked"), "10.0.0.9"));
        assert!(engine.tick(t(9), &Inventory::default()).is_empty());
        let done = engine.tick(t(10), &Inventory::default());
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].details.as_ref().unwrap()["state"], "resolved");
        assert_eq!(engine.open_alerts(), 0);
    }

    #[test]
    fn engine_sightings_keep_a_credential_from_being_unused() {
        let mut engine = Engine::new(DetectConfig::default());
        let cred = CredentialExpiry {
            kind: CredentialKind::Token,
            name: "ci-deploy-prod".into(),
            id: "abc.access".into(),
            created_at: t(0) - Duration::days(90),
            expires_at: t(0) + Duration::days(200),
            last_seen_at: None,
        };
        engine.observe(&access(t(0), None, "10.0.0.1"));
        let inv = Inventory {
            credentials: vec![cred],
            ..Default::default()
        };
        assert!(engine.tick(t(60), &inv).is_empty());
        let out = engine.tick(t(0) + Duration::days(31), &inv);
        assert_eq!(out[0].decision, "unused_credential");
    }

    #[test]
    fn disabled_rules_stay_silent() {
        let cfg = DetectConfig::from_table(
            &"[failed_auth_after_revocation]\nenabled = false"
                .parse()
                .unwrap(),
        )
        .unwrap();
        let mut engine = Engine::new(cfg);
        assert!(
            engine
                .observe(&access(t(0), Some("token_revoked"), "10.0.0.9"))
                .is_empty()
        );
    }

    /// The demo's scenarios, as event streams: each raises exactly one alert within 30 s of
    /// starting, and the well-behaved traffic around them raises none.
    #[test]
    fn demo_preset_raises_one_alert_per_scenario_and_no_false_positives() {
        fn ev(at: DateTime<Utc>, id: &str, ip: &str, country: &str, ua: &str) -> AccessEvent {
            let mut e = AccessEvent::empty(EventKind::Access, at, "r".into());
            e.allowed = true;
            e.decision = "allow".into();
            e.service_token_id = Some(format!("{id}.access"));
            e.service_token_name = Some(id.into());
            e.ip_address = Some(ip.into());
            e.country = Some(country.into());
            e.user_agent = Some(ua.into());
            e
        }
        let mut engine = Engine::new(DetectConfig::demo());
        let start = t(0);
        let inventory = Inventory {
            credentials: vec![CredentialExpiry {
                kind: CredentialKind::Cert,
                name: "device-7.factory.corp".into(),
                id: "0a1b2c".into(),
                created_at: start - Duration::days(80),
                expires_at: start + Duration::days(5),
                last_seen_at: Some(start),
            }],
            ..Default::default()
        };
        let scenario = start + Duration::seconds(30);
        let mut opened: Vec<(String, DateTime<Utc>)> = Vec::new();
        for ms in (0..60_000).step_by(50) {
            let now = start + Duration::milliseconds(ms);
            let sec = ms % 1000 == 0;
            let mut batch = Vec::new();
            if sec {
                // Steady bots, one request per second each.
                batch.push(ev(now, "ci-deploy-prod", "127.0.1.1", "US", "ci/1"));
                batch.push(ev(now, "etl-nightly-prod", "127.0.1.2", "US", "etl/2"));
                let ip = format!("127.0.1.{}", 10 + (ms / 1000) % 4);
                batch.push(ev(now, "ci-shared-prod", &ip, "US", "runner/3"));
                if now >= scenario {
                    let mut revoked = ev(now, "ops-old-prod", "127.0.2.9", "DE", "cron/0.9");
                    revoked.allowed = false;
                    revoked.decision = "deny".into();
                    revoked.deny_reason = Some("token_revoked".into());
                    batch.push(revoked);
                }
            }
            if now >= scenario {
                // The runaway script: 20 requests per second.
                batch.push(ev(now, "etl-nightly-prod", "127.0.1.2", "US", "etl/2"));
                if ms % 5000 == 0 {
                    batch.push(ev(now, "ci-deploy-prod", "127.0.5.66", "RU", "curl/8"));
                }
            }
            for e in &batch {
                for a in engine.observe(e) {
                    opened.push((
                        a.details.unwrap()["alert_id"].as_str().unwrap().to_string(),
                        a.created_at,
                    ));
                }
            }
            if ms % 1000 == 0 {
                for a in engine.tick(now, &inventory) {
                    let d = a.details.unwrap();
                    assert_eq!(
                        d["state"], "open",
                        "nothing resolves while its scenario runs: {d}"
                    );
                    opened.push((d["alert_id"].as_str().unwrap().to_string(), a.created_at));
                }
            }
        }
        let mut ids: Vec<&str> = opened.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids,
            [
                "credential_expiring:0a1b2c",
                "failed_auth_after_revocation:ops-old-prod.access",
                "frequency_spike:etl-nightly-prod.access",
                "shared_credential:ci-shared-prod.access",
                "unexpected_country:ci-deploy-prod.access",
            ]
        );
        for id in ids
            .iter()
            .filter(|id| !id.starts_with("credential_") && !id.starts_with("shared"))
        {
            let first = opened.iter().find(|(i, _)| i == id).unwrap().1;
            assert!(
                first - scenario < Duration::seconds(30),
                "{id} first raised at {first}"
            );
        }
    }
}
