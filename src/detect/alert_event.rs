//! The one typed `Alert`: what the detectors emit and every reader (console, `/metrics`, the
//! demo SIEM, summaries) reads back. On the wire it is the `details` object of an `alert` audit
//! event (field names unchanged: `alert_id`, `rule`, `severity`, `title`, `state`, `count`,
//! `first_seen`, `last_seen`, `evidence`); the credential it is about is the event's own
//! `service_token_*` / `cert_*` fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Rule, Severity};
use crate::audit::{AccessEvent, EventKind};

/// Whether an alert still needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert update (opening, growing, changing severity, resolving).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `rule:subject key`: one id per rule × credential (or client, or CA).
    pub alert_id: String,
    pub rule: Rule,
    pub severity: Severity,
    pub title: String,
    pub state: AlertState,
    /// Occurrences so far.
    pub count: u64,
    #[serde(with = "crate::audit::event::rfc3339_ms")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "crate::audit::event::rfc3339_ms")]
    pub last_seen: DateTime<Utc>,
    /// Rule-specific evidence and tallies (`ips`, `countries`, …).
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
}

/// An `alert` event whose `details` are not an `Alert`.
#[derive(Debug, thiserror::Error)]
pub enum AlertReadError {
    #[error("not an alert event")]
    NotAlert,
    #[error("alert event without details")]
    NoDetails,
    #[error("unreadable alert details: {0}")]
    Details(#[from] serde_json::Error),
}

impl Alert {
    /// Read the alert an `alert` event carries.
    pub fn from_event(ev: &AccessEvent) -> Result<Alert, AlertReadError> {
        if ev.event != EventKind::Alert {
            return Err(AlertReadError::NotAlert);
        }
        let details = ev.details.as_ref().ok_or(AlertReadError::NoDetails)?;
        Ok(Alert::deserialize(details)?)
    }

    /// The `details` value of its event.
    pub fn to_details(&self) -> serde_json::Value {
        // A struct of strings, numbers and a JSON map always serialises.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_survives_its_event_and_keeps_the_wire_names() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let alert = Alert {
            alert_id: "frequency_spike:abc".into(),
            rule: Rule::FrequencySpike,
            severity: Severity::Warning,
            title: "spike".into(),
            state: AlertState::Open,
            count: 7,
            first_seen: at,
            last_seen: at,
            evidence: serde_json::Map::new(),
        };
        let mut ev = AccessEvent::empty(EventKind::Alert, at, "r".into());
        ev.details = Some(alert.to_details());
        let line: serde_json::Value = serde_json::from_str(&ev.to_json_line()).unwrap();
        assert_eq!(line["details"]["rule"], "frequency_spike");
        assert_eq!(line["details"]["severity"], "warning");
        assert_eq!(line["details"]["state"], "open");
        assert_eq!(line["details"]["first_seen"], "2026-11-28T12:00:00.250Z");
        let back: AccessEvent = serde_json::from_value(line).unwrap();
        assert_eq!(Alert::from_event(&back).unwrap(), alert);
    }

    #[test]
    fn an_unknown_rule_or_a_missing_id_is_unreadable() {
        let mut ev = AccessEvent::empty(EventKind::Alert, Utc::now(), "r".into());
        ev.details = Some(serde_json::json!({ "rule": "x" }));
        assert!(matches!(
            Alert::from_event(&ev),
            Err(AlertReadError::Details(_))
        ));
    }
}
