//! The alert book behind the Alerts view: one row per alert id (latest state wins), fed by
//! the detectors' typed `Alert`s (the `alert` events of the audit stream). The console has no
//! alert rules of its own: expiry and revoked-credential alerts come from the detectors that
//! run beside every gate (`runtime`), so the console, `/metrics` and the sinks list the same.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::audit::AccessEvent;
use crate::detect::Alert;
pub use crate::detect::{AlertState, Severity};

/// Alerts kept at most; resolved ones are dropped first, then the oldest.
pub const MAX_ALERTS: usize = 1_000;

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
    /// Alert events whose `details` are not an `Alert`.
    pub malformed: u64,
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
        match Alert::from_event(e) {
            Ok(alert) => self.upsert(row_from_alert(alert, e)),
            Err(_) => self.malformed += 1,
        }
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

/// The row for a detector's alert (the credential is the event's token name or cert CN).
fn row_from_alert(a: Alert, e: &AccessEvent) -> AlertRow {
    AlertRow {
        id: a.alert_id,
        rule: a.rule.as_str().to_string(),
        severity: a.severity,
        title: a.title,
        state: a.state,
        count: a.count,
        first_seen: a.first_seen,
        last_seen: a.last_seen,
        credential: e.identity().map(str::to_string),
        evidence: a
            .evidence
            .iter()
            .map(|(k, v)| (k.clone(), compact(v)))
            .collect(),
    }
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
    use crate::detect::Rule;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn alert(id: &str, state: AlertState, last_seen: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(EventKind::Alert, now(), "r".into());
        e.service_token_name = Some("ci-deploy-prod".into());
        let evidence = json!({"countries": ["RU", "SG"], "requests": 3});
        let a = Alert {
            alert_id: id.into(),
            rule: Rule::UnexpectedCountry,
            severity: Severity::Warning,
            title: "new country".into(),
            state,
            count: 3,
            first_seen: DateTime::parse_from_rfc3339("2026-11-28T11:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            last_seen: DateTime::parse_from_rfc3339(last_seen)
                .unwrap()
                .with_timezone(&Utc),
            evidence: evidence.as_object().unwrap().clone(),
        };
        e.details = Some(a.to_details());
        e
    }

    #[test]
    fn one_row_per_alert_id_latest_state_wins() {
        let mut book = AlertBook::default();
        book.apply_alert_event(&alert("a1", AlertState::Open, "2026-11-28T11:30:00Z"));
        book.apply_alert_event(&alert("a1", AlertState::Resolved, "2026-11-28T11:40:00Z"));
        // Late, older.
        book.apply_alert_event(&alert("a1", AlertState::Open, "2026-11-28T11:35:00Z"));
        assert_eq!(book.len(), 1);
        let row = book.get("a1").unwrap();
        assert_eq!(row.state, AlertState::Resolved);
        assert_eq!(row.evidence_text(), "countries=RU,SG requests=3");
        assert_eq!(row.credential.as_deref(), Some("ci-deploy-prod"));
        assert_eq!(book.open_count(), 0);
    }

    #[test]
    fn malformed_alert_is_counted() {
        let mut book = AlertBook::default();
        let mut e = AccessEvent::empty(EventKind::Alert, now(), "r".into());
        e.details = Some(json!({"rule": "x"}));
        book.apply_alert_event(&e);
        assert_eq!((book.len(), book.malformed), (0, 1));
    }
}
