//! Rules over the credential inventory rather than the traffic: expiring (30, 7, 1 days) and
//! expired credentials, credentials unused for N days, and CRLs past their next update. They
//! run on `Engine::tick`; an alert resolves at the first tick where its condition is gone
//! (renewed, used, revoked, removed from the inventory).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::alert::{AlertBook, Content, Hit, Rule, Severity, Subject, rfc3339};
use super::config::{ExpiryConfig, UnusedConfig};
use super::window::BoundedMap;
use crate::audit::AccessEvent;
use crate::duration::{ago, countdown};
use crate::store::TokenRecord;

/// Token or certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Token,
    Cert,
}

/// One live (not revoked) credential, as the inventory rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialExpiry {
    pub kind: CredentialKind,
    /// Token name or certificate CN.
    pub name: String,
    /// Client id or certificate serial (the alert key, as in access events).
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Last use known to the store (the engine also remembers what it saw itself).
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl CredentialExpiry {
    /// From a token row; `None` for a revoked token (it can neither expire nor be unused).
    pub fn from_token(t: &TokenRecord) -> Option<Self> {
        t.revoked_at.is_none().then(|| Self {
            kind: CredentialKind::Token,
            name: t.name.clone(),
            id: t.client_id.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_seen_at: t.last_seen_at,
        })
    }

    fn subject(&self) -> Subject {
        match self.kind {
            CredentialKind::Token => Subject::Token {
                id: Some(self.id.clone()),
                name: Some(self.name.clone()),
            },
            CredentialKind::Cert => Subject::Cert {
                serial: Some(self.id.clone()),
                common_name: Some(self.name.clone()),
            },
        }
    }
}

/// The key gates sign origin assertions with, and when a successor should be signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyDue {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    /// Rotation period plus publish-ahead after `created_at`.
    pub due_at: DateTime<Utc>,
}

/// The signing key outlived its rotation period (automatic rotation off or failing): verifiers
/// keep trusting one key for longer than the policy says.
pub(crate) fn signing_key_overdue(
    now: DateTime<Utc>,
    key: Option<&SigningKeyDue>,
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    if let Some(k) = key.filter(|k| k.due_at <= now) {
        let subject = Subject::SigningKey(k.kid.clone());
        present.insert(subject.key());
        let hit = inventory_hit(
            Rule::SigningKeyOverdue,
            &subject,
            now,
            book,
            Severity::Warning,
            0,
        );
        out.extend(book.hit(hit, || Content {
            title: format!(
                "{} still signs origin assertions {} after it was due to be replaced; run `botgate keys rotate`",
                subject.describe(),
                countdown(now - k.due_at)
            ),
            evidence: json!({
                "kid": k.kid,
                "created_at": rfc3339(k.created_at),
                "due_at": rfc3339(k.due_at),
            }),
        }));
    }
    out.extend(book.resolve_absent(Rule::SigningKeyOverdue, &present, now));
    out
}

/// An OIDC issuer whose key set this gate could not refresh for longer than `max_key_age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleIssuer {
    pub name: String,
    pub issuer: String,
    /// When the key set in use was fetched (`None`: never, since `since`).
    pub fetched_at: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    pub max_age: chrono::Duration,
    pub last_error: Option<String>,
}

/// Key sets kept past their issuer's `max_key_age` (the issuer is unreachable or failing):
/// tokens signed by a newly rotated key are refused, and revoked keys would still be trusted.
pub(crate) fn oidc_keys_stale(
    now: DateTime<Utc>,
    stale: &[StaleIssuer],
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for s in stale {
        let subject = Subject::OidcIssuer(s.name.clone());
        present.insert(subject.key());
        let hit = inventory_hit(
            Rule::OidcKeysStale,
            &subject,
            now,
            book,
            Severity::Warning,
            0,
        );
        out.extend(book.hit(hit, || Content {
            title: format!(
                "{}'s key set {} (max_key_age {}){}; run `botgate issuer show {}`",
                subject.describe(),
                match s.fetched_at {
                    Some(t) => format!("is {} old", countdown(now - t)),
                    None => format!("was never fetched in {}", countdown(now - s.since)),
                },
                countdown(s.max_age),
                s.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                s.name
            ),
            evidence: json!({
                "issuer": s.issuer,
                "fetched_at": s.fetched_at.map(rfc3339),
                "max_key_age_seconds": s.max_age.num_seconds(),
                "last_error": s.last_error,
            }),
        }));
    }
    out.extend(book.resolve_absent(Rule::OidcKeysStale, &present, now));
    out
}

/// A token the `[tokens]` retirement sweep disabled (its `token_retire` admin event): one
/// alert per token, resolved after the usual quiet time.
pub(crate) fn retired(ev: &AccessEvent, book: &mut AlertBook) -> Option<AccessEvent> {
    let subject = Subject::of_event(ev)?;
    // An admin event's own fields are under `details.details`.
    let details = ev
        .details
        .as_ref()
        .map(|d| d["details"].clone())
        .unwrap_or_default();
    let reason = details["reason"].as_str().unwrap_or("unused").to_string();
    if book.is_open(Rule::CredentialRetired, &subject.key()) {
        return None;
    }
    let hit = Hit {
        rule: Rule::CredentialRetired,
        subject: &subject,
        at: ev.created_at,
        add: 1,
        severity: Severity::Warning,
        phase: 0,
        notable: false,
        facts: &[],
        event: None,
    };
    book.hit(hit, || Content {
        title: format!(
            "{} disabled: {} (since {}); `botgate token enable` brings it back",
            subject.describe(),
            if reason == "unreferenced" {
                "no policy admits it"
            } else {
                "unused"
            },
            details["since"].as_str().unwrap_or("?")
        ),
        evidence: json!({ "reason": reason, "since": details["since"], "after_secs": details["after_secs"] }),
    })
}

/// When a CA's current CRL says the next one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlStatus {
    pub ca_name: String,
    pub next_update: DateTime<Utc>,
}

/// Expiring at the configured stages, and expired.
pub(crate) fn expiry(
    cfg: &ExpiryConfig,
    now: DateTime<Utc>,
    credentials: &[CredentialExpiry],
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut stages = cfg.warn_days.clone();
    stages.sort_unstable();
    stages.dedup();
    let mut out = Vec::new();
    let (mut expiring, mut expired) = (HashSet::new(), HashSet::new());
    for c in credentials {
        let left = c.expires_at - now;
        let subject = c.subject();
        let evidence = || json!({ "kind": c.kind, "expires_at": rfc3339(c.expires_at) });
        if left <= chrono::Duration::zero() {
            expired.insert(subject.key());
            let hit = inventory_hit(
                Rule::CredentialExpired,
                &subject,
                now,
                book,
                Severity::Critical,
                0,
            );
            out.extend(book.hit(hit, || Content {
                title: format!("{} expired {}", subject.describe(), ago(-left)),
                evidence: evidence(),
            }));
        } else if let Some(days) = stages
            .iter()
            .copied()
            .find(|d| left <= chrono::Duration::days(*d))
        {
            expiring.insert(subject.key());
            let severity = if days <= 7 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let hit = inventory_hit(
                Rule::CredentialExpiring,
                &subject,
                now,
                book,
                severity,
                days,
            );
            out.extend(book.hit(hit, || {
                let mut ev = evidence();
                ev["threshold_days"] = json!(days);
                ev["seconds_left"] = json!(left.num_seconds());
                Content {
                    title: format!(
                        "{} expires in {} (within {days}d)",
                        subject.describe(),
                        countdown(left)
                    ),
                    evidence: ev,
                }
            }));
        }
    }
    out.extend(book.resolve_absent(Rule::CredentialExpiring, &expiring, now));
    out.extend(book.resolve_absent(Rule::CredentialExpired, &expired, now));
    out
}

/// Never seen (by the store or by the engine) for `after`.
pub(crate) fn unused(
    cfg: &UnusedConfig,
    now: DateTime<Utc>,
    credentials: &[CredentialExpiry],
    seen: &BoundedMap<String, DateTime<Utc>>,
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for c in credentials.iter().filter(|c| c.expires_at > now) {
        let last = c.last_seen_at.max(seen.get(&c.id).copied());
        let since = last.unwrap_or(c.created_at);
        if now - since < cfg.after {
            continue;
        }
        let subject = c.subject();
        present.insert(subject.key());
        let hit = inventory_hit(
            Rule::UnusedCredential,
            &subject,
            now,
            book,
            Severity::Info,
            0,
        );
        out.extend(book.hit(hit, || Content {
            title: match last {
                Some(t) => format!("{} unused: last seen {}", subject.describe(), ago(now - t)),
                None => format!(
                    "{} never used since it was created {}",
                    subject.describe(),
                    ago(now - c.created_at)
                ),
            },
            evidence: json!({
                "kind": c.kind,
                "created_at": rfc3339(c.created_at),
                "last_seen_at": last.map(rfc3339),
                "unused_after_secs": cfg.after.num_seconds(),
            }),
        }));
    }
    out.extend(book.resolve_absent(Rule::UnusedCredential, &present, now));
    out
}

/// CRLs whose next update is overdue: relying parties may reject them, and revocations made
/// since are not published.
pub(crate) fn stale_crls(
    now: DateTime<Utc>,
    crls: &[CrlStatus],
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for crl in crls.iter().filter(|c| c.next_update < now) {
        let subject = Subject::Ca(crl.ca_name.clone());
        present.insert(subject.key());
        let hit = inventory_hit(Rule::StaleCrl, &subject, now, book, Severity::Warning, 0);
        out.extend(book.hit(hit, || Content {
            title: format!(
                "CRL of {} is stale: next update was due {}",
                subject.describe(),
                ago(now - crl.next_update)
            ),
            evidence: json!({ "next_update": rfc3339(crl.next_update) }),
        }));
    }
    out.extend(book.resolve_absent(Rule::StaleCrl, &present, now));
    out
}

/// The store cannot be read: the gate enforces from its last snapshot (known credentials keep
/// working, revoked ones stay refused) and changes made elsewhere do not reach it. Always on.
pub(crate) fn store_unreachable(
    now: DateTime<Utc>,
    error: Option<&str>,
    book: &mut AlertBook,
) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    if let Some(error) = error {
        let subject = Subject::Store;
        present.insert(subject.key());
        let hit = inventory_hit(
            Rule::StoreUnreachable,
            &subject,
            now,
            book,
            Severity::Critical,
            0,
        );
        out.extend(book.hit(hit, || Content {
            title: format!(
                "{error}; enforcing from the last snapshot, admin changes made elsewhere do not reach this gate"
            ),
            evidence: json!({ "error": error }),
        }));
    }
    out.extend(book.resolve_absent(Rule::StoreUnreachable, &present, now));
    out
}

/// A condition that holds over and over: count 1 when it opens, then nothing, so only a
/// severity or stage change emits an update.
fn inventory_hit<'a>(
    rule: Rule,
    subject: &'a Subject,
    now: DateTime<Utc>,
    book: &AlertBook,
    severity: Severity,
    phase: i64,
) -> Hit<'a> {
    let add = u64::from(!book.is_open(rule, &subject.key()));
    Hit {
        rule,
        subject,
        at: now,
        add,
        severity,
        phase,
        notable: false,
        facts: &[],
        event: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn token(expires_in: Duration) -> CredentialExpiry {
        CredentialExpiry {
            kind: CredentialKind::Token,
            name: "ci-deploy-prod".into(),
            id: "abc.access".into(),
            created_at: t0() - Duration::days(300),
            expires_at: t0() + expires_in,
            last_seen_at: Some(t0() - Duration::hours(1)),
        }
    }

    fn states(evs: &[AccessEvent]) -> Vec<(String, String, String)> {
        evs.iter()
            .map(|e| {
                let d = e.details.as_ref().unwrap();
                (
                    e.decision.clone(),
                    d["state"].as_str().unwrap().into(),
                    d["severity"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn expiring_escalates_at_30_7_1_then_expires() {
        let cfg = ExpiryConfig::default();
        let mut book = AlertBook::new(100);
        let c = token(Duration::days(31));
        let at = |d: i64| t0() + Duration::days(d);
        assert!(expiry(&cfg, at(0), std::slice::from_ref(&c), &mut book).is_empty());
        let mut s = |d| states(&expiry(&cfg, at(d), std::slice::from_ref(&c), &mut book));
        assert_eq!(
            s(2),
            vec![(
                "credential_expiring".into(),
                "open".into(),
                "warning".into()
            )]
        );
        assert!(s(3).is_empty(), "no repeat while in the same stage");
        assert_eq!(
            s(24),
            vec![(
                "credential_expiring".into(),
                "open".into(),
                "critical".into()
            )]
        );
        assert!(s(25).is_empty());
        assert_eq!(
            s(30),
            vec![(
                "credential_expiring".into(),
                "open".into(),
                "critical".into()
            )]
        );
        assert_eq!(
            s(31),
            vec![
                (
                    "credential_expired".into(),
                    "open".into(),
                    "critical".into()
                ),
                (
                    "credential_expiring".into(),
                    "resolved".into(),
                    "critical".into()
                ),
            ]
        );
        assert!(s(40).is_empty());
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn more_expiring_credentials_than_room_open_what_fits_once_and_do_not_churn() {
        let cfg = ExpiryConfig::default();
        let mut book = AlertBook::new(3);
        let many: Vec<CredentialExpiry> = (0..10)
            .map(|i| CredentialExpiry {
                name: format!("bulk-{i}-prod"),
                id: format!("{i}.access"),
                ..token(Duration::days(20))
            })
            .collect();
        let first = expiry(&cfg, t0(), &many, &mut book);
        assert_eq!(first.len(), 3, "as many alerts as there is room for");
        assert_eq!(book.take_suppressed(), 7);
        // The next ticks neither forget nor re-open anything: no alert events at all.
        for minute in 1..4 {
            let again = expiry(&cfg, t0() + Duration::minutes(minute), &many, &mut book);
            assert!(again.is_empty(), "tick {minute}: {:?}", states(&again));
        }
        assert_eq!(book.len(), 3);
    }

    #[test]
    fn renewal_or_revocation_resolves() {
        let cfg = ExpiryConfig::default();
        let mut book = AlertBook::new(100);
        let c = token(Duration::days(5));
        let evs = expiry(&cfg, t0(), std::slice::from_ref(&c), &mut book);
        let d = evs[0].details.as_ref().unwrap();
        assert_eq!(d["evidence"]["threshold_days"], 7);
        assert_eq!(evs[0].service_token_name.as_deref(), Some("ci-deploy-prod"));
        assert!(d["title"].as_str().unwrap().contains("expires in 5d 0h 0m"));
        let renewed = token(Duration::days(365));
        assert_eq!(
            states(&expiry(&cfg, t0(), &[renewed], &mut book))[0].1,
            "resolved"
        );
        expiry(&cfg, t0(), std::slice::from_ref(&c), &mut book);
        assert_eq!(states(&expiry(&cfg, t0(), &[], &mut book))[0].1, "resolved");
    }

    #[test]
    fn unused_fires_resolves_on_use_and_counts_engine_sightings() {
        let cfg = UnusedConfig {
            after: Duration::days(30),
            ..Default::default()
        };
        let mut book = AlertBook::new(100);
        let mut seen = BoundedMap::new(10);
        let mut c = token(Duration::days(200));
        c.last_seen_at = None;
        c.created_at = t0() - Duration::days(45);
        let evs = unused(&cfg, t0(), std::slice::from_ref(&c), &seen, &mut book);
        assert_eq!(
            states(&evs),
            vec![("unused_credential".into(), "open".into(), "info".into())]
        );
        assert!(
            evs[0].details.as_ref().unwrap()["title"]
                .as_str()
                .unwrap()
                .contains("never used")
        );
        assert!(
            unused(&cfg, t0(), std::slice::from_ref(&c), &seen, &mut book).is_empty(),
            "dedup"
        );
        seen.touch(&c.id, t0(), t0);
        let evs = unused(
            &cfg,
            t0() + Duration::hours(1),
            std::slice::from_ref(&c),
            &seen,
            &mut book,
        );
        assert_eq!(states(&evs)[0].1, "resolved");
        // Recently created, never used: not yet.
        c.created_at = t0() - Duration::days(3);
        assert!(unused(&cfg, t0(), &[c], &BoundedMap::new(1), &mut book).is_empty());
    }

    #[test]
    fn an_unreachable_store_opens_one_critical_alert_until_it_answers_again() {
        let mut book = AlertBook::new(100);
        let error = "PostgreSQL gate@10.0.0.5:5432/botgate unreachable: connection refused";
        let evs = store_unreachable(t0(), Some(error), &mut book);
        assert_eq!(
            states(&evs),
            [("store_unreachable".into(), "open".into(), "critical".into())]
        );
        let details = evs[0].details.as_ref().unwrap();
        assert_eq!(details["alert_id"], "store_unreachable:store");
        assert!(
            details["title"]
                .as_str()
                .unwrap()
                .contains("gate@10.0.0.5:5432/botgate")
        );
        // Still down on the next ticks: no new event.
        let later = t0() + Duration::seconds(5);
        assert!(store_unreachable(later, Some(error), &mut book).is_empty());
        let back = store_unreachable(later + Duration::seconds(5), None, &mut book);
        assert_eq!(states(&back)[0].1, "resolved");
        assert!(store_unreachable(later + Duration::seconds(10), None, &mut book).is_empty());
    }

    #[test]
    fn stale_crl_fires_and_resolves_on_refresh() {
        let mut book = AlertBook::new(100);
        let crl = CrlStatus {
            ca_name: "Corporate Device CA".into(),
            next_update: t0() - Duration::hours(2),
        };
        let evs = stale_crls(t0(), std::slice::from_ref(&crl), &mut book);
        assert_eq!(evs[0].decision, "stale_crl");
        assert_eq!(evs[0].cert_issuer.as_deref(), Some("Corporate Device CA"));
        assert_eq!(
            evs[0].details.as_ref().unwrap()["alert_id"],
            "stale_crl:ca:Corporate Device CA"
        );
        let fresh = CrlStatus {
            next_update: t0() + Duration::days(7),
            ..crl
        };
        assert_eq!(
            states(&stale_crls(t0(), &[fresh], &mut book))[0].1,
            "resolved"
        );
    }
}
