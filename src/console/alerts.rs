//! The alert book behind the Alerts view: one row per alert id (latest state wins), fed by
//! `alert` events from the detectors and by the console's own rules until detection lands:
//! expiring / expired credentials (from the inventory) and revoked-credential attempts (access
//! events denied with `token_revoked` / `cert_revoked`). Each stands down for a credential once a
//! detector alerts about the same problem for it (the detectors carry more evidence).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::audit::AccessEvent;

use super::model::{CertRow, CredentialStatus, TokenRow};

/// Alerts kept at most; resolved ones are dropped first, then the oldest.
pub const MAX_ALERTS: usize = 1_000;
/// Distinct IPs / countries kept as evidence of a revoked-credential attempt.
const MAX_EVIDENCE_VALUES: usize = 5;
const CONSOLE_PREFIX: &str = "console:";

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "critical" => Severity::Critical,
            "warning" | "warn" => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// Whether an alert still needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Open,
    Resolved,
}

/// One row of the Alerts view.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub title: String,
    pub state: AlertState,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Token name or cert CN the alert is about.
    pub credential: Option<String>,
    /// Evidence as `key=value` pairs, in the order received.
    pub evidence: Vec<(String, String)>,
}

impl AlertRow {
    /// `count=12 ips=127.0.2.5,127.0.2.6`.
    pub fn evidence_text(&self) -> String {
        self.evidence
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// All alerts the console knows, keyed by id.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    rows: HashMap<String, AlertRow>,
    /// Alert events whose `details` could not be read.
    pub malformed: u64,
    /// Credentials (names, client ids, serials) a detector already alerts about, per problem:
    /// the console's own rule stands down for them so one problem is not listed twice.
    covered_revoked: std::collections::HashSet<String>,
    covered_expiry: std::collections::HashSet<String>,
}

impl AlertBook {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&AlertRow> {
        self.rows.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AlertRow> {
        self.rows.values()
    }

    /// Alerts in state `open`.
    pub fn open_count(&self) -> usize {
        self.rows
            .values()
            .filter(|a| a.state == AlertState::Open)
            .count()
    }

    /// Take an `alert` event from a detector: the row for its `alert_id` becomes this state.
    pub fn apply_alert_event(&mut self, e: &AccessEvent) {
        let Some(row) = alert_from_event(e) else {
            self.malformed += 1;
            return;
        };
        let idents = [
            &e.service_token_name,
            &e.service_token_id,
            &e.cert_common_name,
            &e.cert_serial,
        ];
        let (covered, what) = match row.rule.as_str() {
            "failed_auth_after_revocation" => (&mut self.covered_revoked, "revoked"),
            "credential_expiring" | "credential_expired" => (&mut self.covered_expiry, "expiry"),
            _ => {
                self.upsert(row);
                return;
            }
        };
        for who in idents.into_iter().flatten() {
            covered.insert(who.clone());
            for kind in ["token", "cert"] {
                self.rows
                    .remove(&format!("{CONSOLE_PREFIX}{what}:{kind}:{who}"));
            }
        }
        self.upsert(row);
    }

    /// Console rule: an access denied because the credential is revoked.
    pub fn observe_access(&mut self, e: &AccessEvent) {
        let kind = match e.deny_reason.as_deref() {
            Some("token_revoked") => "token",
            Some("cert_revoked") => "cert",
            _ => return,
        };
        let who = e.identity().unwrap_or("unknown").to_string();
        if self.covered_revoked.contains(&who) {
            return;
        }
        let id = format!("{CONSOLE_PREFIX}revoked:{kind}:{who}");
        let row = self.rows.entry(id.clone()).or_insert_with(|| AlertRow {
            id,
            rule: "revoked_credential_used".into(),
            severity: Severity::Critical,
            title: format!("revoked {kind} {who} still presented"),
            state: AlertState::Open,
            count: 0,
            first_seen: e.created_at,
            last_seen: e.created_at,
            credential: Some(who.clone()),
            evidence: vec![
                ("ips".into(), String::new()),
                ("countries".into(), String::new()),
            ],
        });
        row.count += 1;
        row.state = AlertState::Open;
        row.last_seen = row.last_seen.max(e.created_at);
        add_value(&mut row.evidence, 0, e.ip_address.as_deref());
        add_value(&mut row.evidence, 1, e.country.as_deref());
        self.enforce_cap();
    }

    /// Console rule: expiring and expired credentials, re-derived from the inventory at `now`.
    /// A credential that no longer qualifies (renewed, revoked, gone) resolves its alert.
    pub fn derive_expiry(&mut self, tokens: &[TokenRow], certs: &[CertRow], now: DateTime<Utc>) {
        let mut live: Vec<String> = Vec::new();
        let candidates = tokens
            .iter()
            .map(|t| {
                (
                    "token",
                    t.name.as_str(),
                    t.name.as_str(),
                    t.expires_at,
                    t.status(now),
                )
            })
            .chain(certs.iter().map(|c| {
                (
                    "cert",
                    c.common_name.as_str(),
                    c.serial.as_str(),
                    c.not_after,
                    c.status(now),
                )
            }));
        for (kind, name, key, expires_at, status) in candidates {
            let severity = match status {
                CredentialStatus::Expired | CredentialStatus::Critical => Severity::Critical,
                CredentialStatus::Warn => Severity::Warning,
                CredentialStatus::Ok | CredentialStatus::Revoked => continue,
            };
            if self.covered_expiry.contains(key) || self.covered_expiry.contains(name) {
                continue;
            }
            let id = format!("{CONSOLE_PREFIX}expiry:{kind}:{key}");
            let title = if status == CredentialStatus::Expired {
                format!("{kind} {name} expired")
            } else {
                format!(
                    "{kind} {name} expires in {}",
                    crate::duration::countdown(expires_at - now)
                )
            };
            let evidence = vec![(
                "expires_at".to_string(),
                expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            )];
            match self.rows.get_mut(&id) {
                Some(row) => {
                    if row.severity != severity || row.state != AlertState::Open {
                        row.last_seen = now;
                    }
                    row.severity = severity;
                    row.state = AlertState::Open;
                    row.title = title;
                    row.evidence = evidence;
                }
                None => {
                    let row = AlertRow {
                        id: id.clone(),
                        rule: "credential_expiry".into(),
                        severity,
                        title,
                        state: AlertState::Open,
                        count: 1,
                        first_seen: now,
                        last_seen: now,
                        credential: Some(name.to_string()),
                        evidence,
                    };
                    self.rows.insert(id.clone(), row);
                }
            }
            live.push(id);
        }
        let expiry_prefix = format!("{CONSOLE_PREFIX}expiry:");
        for row in self.rows.values_mut() {
            if row.id.starts_with(&expiry_prefix)
                && row.state == AlertState::Open
                && !live.contains(&row.id)
            {
                row.state = AlertState::Resolved;
                row.last_seen = now;
            }
        }
        self.enforce_cap();
    }

    fn upsert(&mut self, row: AlertRow) {
        match self.rows.get_mut(&row.id) {
            // An older update arriving late does not roll the row back.
            Some(old) if old.last_seen > row.last_seen => {}
            Some(old) => *old = row,
            None => {
                self.rows.insert(row.id.clone(), row);
            }
        }
        self.enforce_cap();
    }

    fn enforce_cap(&mut self) {
        if self.rows.len() <= MAX_ALERTS {
            return;
        }
        let mut order: Vec<(bool, DateTime<Utc>, String)> = self
            .rows
            .values()
            .map(|r| (r.state == AlertState::Open, r.last_seen, r.id.clone()))
            .collect();
        order.sort();
        let excess = self.rows.len() - MAX_ALERTS;
        for (_, _, id) in order.into_iter().take(excess) {
            self.rows.remove(&id);
        }
    }
}

fn add_value(evidence: &mut [(String, String)], i: usize, v: Option<&str>) {
    let (Some(slot), Some(v)) = (evidence.get_mut(i), v) else {
        return;
    };
    let values = &mut slot.1;
    if values.split(',').any(|x| x == v || x == "…") {
        return;
    }
    if values.split(',').filter(|x| !x.is_empty()).count() >= MAX_EVIDENCE_VALUES {
        values.push_str(",…");
    } else {
        if !values.is_empty() {
            values.push(',');
        }
        values.push_str(v);
    }
}

/// Read a detector's alert event. `None` when `details` lacks an `alert_id`.
fn alert_from_event(e: &AccessEvent) -> Option<AlertRow> {
    let d = e.details.as_ref()?.as_object()?;
    let s = |k: &str| d.get(k).and_then(Value::as_str);
    let time = |k: &str| {
        s(k).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(e.created_at)
    };
    let id = s("alert_id")?.to_string();
    let evidence = match d.get("evidence") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), compact(v))).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![("evidence".into(), compact(other))],
    };
    Some(AlertRow {
        rule: s("rule").unwrap_or(&e.decision).to_string(),
        severity: Severity::parse(s("severity").unwrap_or("info")),
        title: s("title").unwrap_or("").to_string(),
        state: if s("state") == Some("resolved") {
            AlertState::Resolved
        } else {
            AlertState::Open
        },
        count: d.get("count").and_then(Value::as_u64).unwrap_or(1),
        first_seen: time("first_seen"),
        last_seen: time("last_seen"),
        credential: e.identity().map(str::to_string),
        evidence,
        id,
    })
}

/// A JSON value as short text: strings bare, arrays comma-joined, objects as JSON.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(compact).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;
    use chrono::Duration;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn alert(id: &str, state: &str, last_seen: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(EventKind::Alert, now(), "r".into());
        e.service_token_name = Some("ci-deploy-prod".into());
        e.details = Some(json!({
            "alert_id": id, "rule": "new_country", "severity": "warning", "title": "new country",
            "state": state, "count": 3, "first_seen": "2026-11-28T11:00:00Z", "last_seen": last_seen,
            "evidence": {"countries": ["RU", "SG"], "requests": 3}
        }));
        e
    }

    #[test]
    fn one_row_per_alert_id_latest_state_wins() {
        let mut book = AlertBook::default();
        book.apply_alert_event(&alert("a1", "open", "2026-11-28T11:30:00Z"));
        book.apply_alert_event(&alert("a1", "resolved", "2026-11-28T11:40:00Z"));
        book.apply_alert_event(&alert("a1", "open", "2026-11-28T11:35:00Z")); // late, older
        assert_eq!(book.len(), 1);
        let row = book.get("a1").unwrap();
        assert_eq!(row.state, AlertState::Resolved);
        assert_eq!(row.evidence_text(), "countries=RU,SG requests=3");
        assert_eq!(row.credential.as_deref(), Some("ci-deploy-prod"));
        assert_eq!(book.open_count(), 0);
    }

    #[test]
    fn console_rule_stands_down_when_a_detector_covers_the_same_problem() {
        let mut book = AlertBook::default();
        let mut denied = AccessEvent::empty(EventKind::Access, now(), "r".into());
        denied.deny_reason = Some("token_revoked".into());
        denied.service_token_name = Some("ci-legacy-prod".into());
        book.observe_access(&denied);
        assert_eq!(book.len(), 1, "console rule fires without a detector");
        let mut det = alert(
            "failed_auth_after_revocation:x",
            "open",
            "2026-11-28T11:30:00Z",
        );
        det.service_token_name = Some("ci-legacy-prod".into());
        det.details.as_mut().unwrap()["rule"] = json!("failed_auth_after_revocation");
        book.apply_alert_event(&det);
        book.observe_access(&denied);
        let ids: Vec<&str> = book.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["failed_auth_after_revocation:x"],
            "one row for one problem"
        );
        // A detector alert about something else leaves the console's rules alone.
        book.apply_alert_event(&alert("new_country:y", "open", "2026-11-28T11:30:00Z"));
        denied.service_token_name = Some("other-legacy-prod".into());
        book.observe_access(&denied);
        assert_eq!(book.len(), 3);
    }

    #[test]
    fn malformed_alert_is_counted() {
        let mut book = AlertBook::default();
        let mut e = AccessEvent::empty(EventKind::Alert, now(), "r".into());
        e.details = Some(json!({"rule": "x"}));
        book.apply_alert_event(&e);
        assert_eq!((book.len(), book.malformed), (0, 1));
    }

    #[test]
    fn revoked_attempts_accumulate_evidence() {
        let mut book = AlertBook::default();
        for (ip, cc) in [
            ("127.0.2.5", "DE"),
            ("127.0.2.6", "DE"),
            ("127.0.2.5", "FR"),
        ] {
            let mut e = AccessEvent::empty(EventKind::Access, now(), "r".into());
            e.deny_reason = Some("token_revoked".into());
            e.service_token_name = Some("legacy-sync-prod".into());
            e.ip_address = Some(ip.into());
            e.country = Some(cc.into());
            book.observe_access(&e);
        }
        let row = book.iter().next().unwrap();
        assert_eq!(row.count, 3);
        assert_eq!(
            row.evidence_text(),
            "ips=127.0.2.5,127.0.2.6 countries=DE,FR"
        );
        assert_eq!(row.severity, Severity::Critical);
    }

    #[test]
    fn expiry_alerts_follow_the_inventory() {
        let token = |name: &str, days: i64| TokenRow {
            name: name.into(),
            client_id: "x".into(),
            created_at: now() - Duration::days(300),
            expires_at: now() + Duration::days(days),
            revoked: false,
            last_seen_at: None,
            policies: vec![],
            rotation_due_at: now() - Duration::days(210),
        };
        let mut book = AlertBook::default();
        book.derive_expiry(
            &[
                token("a", 5),
                token("b", 20),
                token("c", 200),
                token("d", -1),
            ],
            &[],
            now(),
        );
        let sev = |book: &AlertBook, id: &str| {
            book.get(&format!("console:expiry:token:{id}"))
                .map(|r| (r.severity, r.state))
        };
        assert_eq!(
            sev(&book, "a"),
            Some((Severity::Critical, AlertState::Open))
        );
        assert_eq!(sev(&book, "b"), Some((Severity::Warning, AlertState::Open)));
        assert_eq!(sev(&book, "c"), None);
        assert_eq!(
            book.get("console:expiry:token:d").unwrap().title,
            "token d expired"
        );
        book.derive_expiry(&[token("a", 5)], &[], now());
        assert_eq!(
            sev(&book, "b"),
            Some((Severity::Warning, AlertState::Resolved))
        );
    }
}
