//! Alerts: what they are about (`Subject`), the open-alert book that deduplicates them (one
//! open alert per rule × subject), decides when a change is worth an update event, resolves
//! them, and renders them as typed `Alert`s in `alert` audit events.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Alert, AlertState};
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, EventKind};

/// The detection rules; `as_str` is the alert event's `decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    UnexpectedCountry,
    FrequencySpike,
    FailedAuthSpike,
    FailedAuthAfterRevocation,
    CredentialExpiring,
    CredentialExpired,
    SharedCredential,
    UnusedCredential,
    StaleCrl,
    StoreUnreachable,
    /// The origin assertion's signing key is older than its rotation period.
    SigningKeyOverdue,
    /// An OIDC issuer's last good key set is older than its `max_key_age` (issuer unreachable).
    OidcKeysStale,
    /// `[tokens]` retirement disabled a token nobody used (from its `token_retire` event).
    CredentialRetired,
}

impl Rule {
    /// Snake-case name, as written in `decision` and `details.rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnexpectedCountry => "unexpected_country",
            Rule::FrequencySpike => "frequency_spike",
            Rule::FailedAuthSpike => "failed_auth_spike",
            Rule::FailedAuthAfterRevocation => "failed_auth_after_revocation",
            Rule::CredentialExpiring => "credential_expiring",
            Rule::CredentialExpired => "credential_expired",
            Rule::SharedCredential => "shared_credential",
            Rule::UnusedCredential => "unused_credential",
            Rule::StaleCrl => "stale_crl",
            Rule::StoreUnreachable => "store_unreachable",
            Rule::SigningKeyOverdue => "signing_key_overdue",
            Rule::OidcKeysStale => "oidc_keys_stale",
            Rule::CredentialRetired => "credential_retired",
        }
    }

    /// Rules re-evaluated from the inventory on every tick (a state, not an event).
    pub fn from_inventory(self) -> bool {
        matches!(
            self,
            Rule::CredentialExpiring
                | Rule::CredentialExpired
                | Rule::UnusedCredential
                | Rule::StaleCrl
                | Rule::StoreUnreachable
                | Rule::SigningKeyOverdue
                | Rule::OidcKeysStale
        )
    }
}

/// How loud an alert is (the one severity scale: detectors, console, metrics, SIEM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// As written in `details.severity`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Token {
        id: Option<String>,
        name: Option<String>,
    },
    Cert {
        serial: Option<String>,
        common_name: Option<String>,
    },
    ClientIp(String),
    Ca(String),
    /// The shared store (what the gate reads its credentials from).
    Store,
    /// An origin assertion signing key, by kid.
    SigningKey(String),
    /// An OIDC workload, by identity (`oidc:<issuer>/<sub>`).
    Workload(String),
    /// An `[[oidc_issuer]]`, by name.
    OidcIssuer(String),
}

impl Subject {
    /// The credential an access event names, if any (token first, then certificate).
    pub fn of_event(ev: &AccessEvent) -> Option<Subject> {
        if ev.service_token_id.is_some() || ev.service_token_name.is_some() {
            Some(Subject::Token {
                id: ev.service_token_id.clone(),
                name: ev.service_token_name.clone(),
            })
        } else if let Some(id) = &ev.oidc_identity {
            Some(Subject::Workload(id.clone()))
        } else if ev.cert_serial.is_some() || ev.cert_common_name.is_some() {
            Some(Subject::Cert {
                serial: ev.cert_serial.clone(),
                common_name: ev.cert_common_name.clone(),
            })
        } else {
            None
        }
    }

    /// Stable key for dedup and `alert_id`: client id / serial (else name / CN), `ip:…`, `ca:…`.
    pub fn key(&self) -> String {
        self.key_str().into_owned()
    }

    /// `key` without copying it when the subject holds it as is (tokens and certificates).
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Subject::Token { id, name } => {
                Cow::Borrowed(id.as_deref().or(name.as_deref()).unwrap_or_default())
            }
            Subject::Cert {
                serial,
                common_name,
            } => Cow::Borrowed(
                serial
                    .as_deref()
                    .or(common_name.as_deref())
                    .unwrap_or_default(),
            ),
            Subject::ClientIp(ip) => Cow::Owned(format!("ip:{ip}")),
            Subject::Ca(name) => Cow::Owned(format!("ca:{name}")),
            Subject::Store => Cow::Borrowed("store"),
            Subject::SigningKey(kid) => Cow::Owned(format!("key:{kid}")),
            Subject::Workload(id) => Cow::Borrowed(id),
            Subject::OidcIssuer(name) => Cow::Owned(format!("{}{name}", crate::oidc::ADMIN_TARGET)),
        }
    }

    /// How a title names it: `token ci-deploy-prod`, `certificate device-1`, `client 10.0.0.5`.
    pub fn describe(&self) -> String {
        match self {
            Subject::Token { id, name } => {
                format!("token {}", name.as_deref().or(id.as_deref()).unwrap_or("?"))
            }
            Subject::Cert {
                serial,
                common_name,
            } => {
                format!(
                    "certificate {}",
                    common_name.as_deref().or(serial.as_deref()).unwrap_or("?")
                )
            }
            Subject::ClientIp(ip) => format!("client {ip}"),
            Subject::Ca(name) => format!("CA {name}"),
            Subject::Store => "the store".into(),
            Subject::SigningKey(kid) => format!("signing key {}", &kid[..kid.len().min(16)]),
            Subject::Workload(id) => format!("workload {id}"),
            Subject::OidcIssuer(name) => format!("OIDC issuer {name}"),
        }
    }

    /// Keep known names when a later event lacks them.
    fn merge(&mut self, newer: &Subject) {
        match (self, newer) {
            (Subject::Token { id, name }, Subject::Token { id: i2, name: n2 }) => {
                fill(id, i2);
                fill(name, n2);
            }
            (
                Subject::Cert {
                    serial,
                    common_name,
                },
                Subject::Cert {
                    serial: s2,
                    common_name: c2,
                },
            ) => {
                fill(serial, s2);
                fill(common_name, c2);
            }
            _ => {}
        }
    }
}

fn fill(slot: &mut Option<String>, newer: &Option<String>) {
    if newer.is_some() {
        slot.clone_from(newer);
    }
}

/// One occurrence of a rule's condition.
#[derive(Debug, Clone)]
pub(crate) struct Hit<'a> {
    pub rule: Rule,
    pub subject: &'a Subject,
    pub at: DateTime<Utc>,
    /// How much `count` grows (the rules pass the window total when opening).
    pub add: u64,
    pub severity: Severity,
    /// A rule-specific stage (e.g. the expiry threshold in days); a change is worth an update.
    pub phase: i64,
    /// Force an update event (e.g. a country not seen before in this alert).
    pub notable: bool,
    /// Values tallied into `evidence` (`("ips", "10.0.0.5")`); `None` values are skipped.
    pub facts: &'a [(&'static str, Option<&'a str>)],
    /// The access event behind the hit: its IP, country, user agent and app go on the alert.
    pub event: Option<&'a AccessEvent>,
}

/// What a rule says when an event is emitted (built only then).
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub title: String,
    /// Rule-specific evidence; the tallies are merged in.
    pub evidence: Value,
}

/// Distinct values tallied per evidence field are capped; the rest count under this key.
const TALLY_CAP: usize = 20;
const TALLY_OTHER: &str = "(other)";

#[derive(Debug, Clone)]
struct OpenAlert {
    subject: Subject,
    severity: Severity,
    phase: i64,
    count: u64,
    emitted_count: u64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    tallies: BTreeMap<&'static str, BTreeMap<String, u64>>,
    content: Content,
    ip: Option<String>,
    country: Option<String>,
    user_agent: Option<String>,
    app: Option<String>,
}

/// The open alerts, keyed by rule × subject key.
#[derive(Debug)]
pub(crate) struct AlertBook {
    open: HashMap<(Rule, String), OpenAlert>,
    cap: usize,
    /// Inventory alerts not opened because the book was full (since the last `take_suppressed`).
    suppressed: u64,
}

impl AlertBook {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            open: HashMap::new(),
            cap: cap.max(1),
            suppressed: 0,
        }
    }

    /// Drop an open alert without resolving it (nothing is published).
    pub(crate) fn forget(&mut self, rule: Rule, key: &str) {
        self.open.remove(&(rule, key.to_string()));
    }

    pub(crate) fn is_open(&self, rule: Rule, key: &str) -> bool {
        self.open.contains_key(&(rule, key.to_string()))
    }

    /// Whether `value` is not yet in the open alert's `field` tally (true when not open).
    pub(crate) fn is_new_fact(&self, rule: Rule, key: &str, field: &str, value: &str) -> bool {
        self.open
            .get(&(rule, key.to_string()))
            .and_then(|a| a.tallies.get(field))
            .is_none_or(|t| !t.contains_key(value))
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Inventory alerts not opened for lack of room since the last call.
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }

    /// Record a hit; returns the event to publish when the alert opens or changes enough: the
    /// count doubled since the last event, the severity or phase changed, or the hit is notable.
    pub(crate) fn hit(
        &mut self,
        hit: Hit<'_>,
        content: impl FnOnce() -> Content,
    ) -> Option<AccessEvent> {
        let id = (hit.rule, hit.subject.key());
        if !self.open.contains_key(&id) && self.open.len() >= self.cap {
            if hit.rule.from_inventory() {
                // Re-evaluated every tick: forgetting an older alert to open this one would
                // re-open the forgotten one on the next tick, a storm of alert events that
                // fills the audit queue. Wait for room instead.
                self.suppressed += 1;
                return None;
            }
            self.drop_stalest();
        }
        let opening = !self.open.contains_key(&id);
        let alert = self.open.entry(id).or_insert_with(|| OpenAlert {
            subject: hit.subject.clone(),
            severity: hit.severity,
            phase: hit.phase,
            count: 0,
            emitted_count: 0,
            first_seen: hit.at,
            last_seen: hit.at,
            tallies: BTreeMap::new(),
            content: Content {
                title: String::new(),
                evidence: Value::Null,
            },
            ip: None,
            country: None,
            user_agent: None,
            app: None,
        });
        alert.subject.merge(hit.subject);
        alert.count = alert.count.saturating_add(hit.add);
        alert.last_seen = alert.last_seen.max(hit.at);
        for (field, value) in hit.facts {
            if let Some(v) = value {
                tally(alert.tallies.entry(field).or_default(), v);
            }
        }
        if let Some(ev) = hit.event {
            alert.ip.clone_from(&ev.ip_address);
            alert.country.clone_from(&ev.country);
            alert.user_agent.clone_from(&ev.user_agent);
            fill(&mut alert.app, &ev.app_name);
        }
        let changed = hit.severity != alert.severity || hit.phase != alert.phase;
        alert.severity = hit.severity;
        alert.phase = hit.phase;
        let grew = alert.count >= alert.emitted_count.saturating_mul(2).max(1);
        if !(opening || changed || hit.notable || grew) {
            return None;
        }
        alert.content = content();
        alert.emitted_count = alert.count.max(1);
        let rule = hit.rule;
        Some(render(rule, alert, AlertState::Open, hit.at))
    }

    /// Resolve alerts of event-driven rules not hit for their quiet time (`quiet(rule)`; rules
    /// for which it returns `None` resolve only through `resolve_absent`).
    pub(crate) fn resolve_quiet(
        &mut self,
        now: DateTime<Utc>,
        quiet: impl Fn(Rule) -> Option<Duration>,
    ) -> Vec<AccessEvent> {
        let done: Vec<(Rule, String)> = self
            .open
            .iter()
            .filter(|((rule, _), a)| quiet(*rule).is_some_and(|q| now - a.last_seen >= q))
            .map(|(id, _)| id.clone())
            .collect();
        self.resolve_ids(done, now)
    }

    /// Resolve the open alerts of `rule` whose key is not in `present` (the condition is gone).
    pub(crate) fn resolve_absent(
        &mut self,
        rule: Rule,
        present: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Vec<AccessEvent> {
        let done: Vec<(Rule, String)> = self
            .open
            .keys()
            .filter(|(r, k)| *r == rule && !present.contains(k))
            .cloned()
            .collect();
        self.resolve_ids(done, now)
    }

    fn resolve_ids(
        &mut self,
        mut ids: Vec<(Rule, String)>,
        now: DateTime<Utc>,
    ) -> Vec<AccessEvent> {
        ids.sort();
        ids.into_iter()
            .filter_map(|id| {
                let alert = self.open.remove(&id)?;
                Some(render(id.0, &alert, AlertState::Resolved, now))
            })
            .collect()
    }

    /// Memory bound: forget the alert hit longest ago (no event: it did not resolve).
    fn drop_stalest(&mut self) {
        if let Some(id) = self
            .open
            .iter()
            .min_by_key(|(_, a)| a.last_seen)
            .map(|(id, _)| id.clone())
        {
            tracing::warn!(
                rule = id.0.as_str(),
                "too many open alerts; forgetting the stalest"
            );
            self.open.remove(&id);
        }
    }
}

fn tally(t: &mut BTreeMap<String, u64>, value: &str) {
    let key = if t.contains_key(value) || t.len() < TALLY_CAP {
        value
    } else {
        TALLY_OTHER
    };
    *t.entry(key.to_string()).or_default() += 1;
}

/// RFC 3339 UTC with milliseconds, like `created_at`.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn render(rule: Rule, alert: &OpenAlert, state: AlertState, at: DateTime<Utc>) -> AccessEvent {
    let mut ev = AccessEvent::empty(EventKind::Alert, at, new_ray_id());
    ev.allowed = false;
    ev.decision = rule.as_str().to_string();
    ev.app_name.clone_from(&alert.app);
    ev.ip_address.clone_from(&alert.ip);
    ev.country.clone_from(&alert.country);
    ev.user_agent.clone_from(&alert.user_agent);
    match &alert.subject {
        Subject::Token { id, name } => {
            ev.service_token_id.clone_from(id);
            ev.service_token_name.clone_from(name);
        }
        Subject::Cert {
            serial,
            common_name,
        } => {
            ev.cert_serial.clone_from(serial);
            ev.cert_common_name.clone_from(common_name);
        }
        Subject::ClientIp(ip) => ev.ip_address = Some(ip.clone()),
        Subject::Ca(name) => ev.cert_issuer = Some(name.clone()),
        Subject::Workload(id) => ev.oidc_identity = Some(id.clone()),
        Subject::Store | Subject::SigningKey(_) | Subject::OidcIssuer(_) => {}
    }
    let mut evidence = match &alert.content.evidence {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (field, counts) in &alert.tallies {
        let counts = counts
            .iter()
            .map(|(k, n)| (k.clone(), Value::from(*n)))
            .collect();
        evidence.insert((*field).to_string(), Value::Object(counts));
    }
    let typed = Alert {
        alert_id: format!("{}:{}", rule.as_str(), alert.subject.key()),
        rule,
        severity: alert.severity,
        title: alert.content.title.clone(),
        state,
        count: alert.count,
        first_seen: alert.first_seen,
        last_seen: alert.last_seen,
        evidence,
    };
    ev.details = Some(typed.to_details());
    ev
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
