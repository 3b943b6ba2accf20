//! Export formats for the audit log: `jsonl` (our own events, unchanged) and `logpush` (access
//! events with the field names of Cloudflare Access's `access_requests` Logpush dataset, so
//! existing dashboards and SIEM parsers work). Reading tolerates corrupt lines: each is
//! reported with its line number and skipped.

use std::io::{BufRead, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{AccessEvent, EventKind};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Cloudflare Access `access_requests` fields; access events only (the dataset has no
    /// admin or alert records).
    Logpush,
    /// Our audit events, every kind, unchanged.
    Jsonl,
}

/// One `access_requests` record. Every field of the dataset is present; what botgate cannot
/// know (there is no user, no identity provider app UUID, no purpose justification) is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogpushRecord<'a> {
    /// Cloudflare records `login` / `logout`; every gate decision is a `login` (an access
    /// attempt).
    #[serde(rename = "Action")]
    pub action: &'static str,
    #[serde(rename = "Allowed")]
    pub allowed: bool,
    /// The requested host (else the app name).
    #[serde(rename = "AppDomain")]
    pub app_domain: Option<&'a str>,
    #[serde(rename = "AppUUID")]
    pub app_uuid: Option<&'a str>,
    /// How the client authenticated: `service_token`, `mtls` or `none`.
    #[serde(rename = "Connection")]
    pub connection: &'static str,
    #[serde(rename = "Country")]
    pub country: Option<&'a str>,
    /// RFC 3339, UTC, milliseconds.
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// Always `null`: bots have no e-mail.
    #[serde(rename = "Email")]
    pub email: Option<&'a str>,
    #[serde(rename = "IPAddress")]
    pub ip_address: Option<&'a str>,
    #[serde(rename = "PurposeJustificationPrompt")]
    pub purpose_justification_prompt: Option<&'a str>,
    #[serde(rename = "PurposeJustificationResponse")]
    pub purpose_justification_response: Option<&'a str>,
    #[serde(rename = "RayID")]
    pub ray_id: &'a str,
    #[serde(rename = "TemporaryAccessApprovers")]
    pub temporary_access_approvers: Option<Vec<String>>,
    #[serde(rename = "TemporaryAccessDuration")]
    pub temporary_access_duration: Option<u64>,
    /// The service token's client id, or the client certificate's serial.
    #[serde(rename = "UserUID")]
    pub user_uid: Option<&'a str>,
}

impl<'a> LogpushRecord<'a> {
    /// The record for an access event; `None` for admin and alert events.
    pub fn from_event(ev: &'a AccessEvent) -> Option<Self> {
        if ev.event != EventKind::Access {
            return None;
        }
        Some(Self {
            action: "login",
            allowed: ev.allowed,
            app_domain: ev.host.as_deref().or(ev.app_name.as_deref()),
            app_uuid: None,
            connection: ev.connection_method.as_str(),
            country: ev.country.as_deref(),
            created_at: ev.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            email: None,
            ip_address: ev.ip_address.as_deref(),
            purpose_justification_prompt: None,
            purpose_justification_response: None,
            ray_id: &ev.ray_id,
            temporary_access_approvers: None,
            temporary_access_duration: None,
            user_uid: ev.service_token_id.as_deref().or(ev.cert_serial.as_deref()),
        })
    }
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records written.
    pub exported: u64,
    /// Valid events left out (older than `since`, or not an access event for `logpush`).
    pub filtered: u64,
    /// Lines that were not a valid event (each also passed to `on_corrupt`).
    pub corrupt: u64,
}

/// Copy the events of a JSONL audit log to `out` in `format`, one JSON object per line, keeping
/// those at or after `since`. A corrupt line is passed to `on_corrupt(line_number, error)` and
/// skipped; blank lines are ignored. Fails only on I/O errors.
pub fn export(
    input: impl BufRead,
    mut out: impl Write,
    format: ExportFormat,
    since: Option<DateTime<Utc>>,
    mut on_corrupt: impl FnMut(u64, &serde_json::Error),
) -> std::io::Result<ExportStats> {
    let mut stats = ExportStats::default();
    let mut input = input;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ev: AccessEvent = match serde_json::from_slice(&buf) {
            Ok(ev) => ev,
            Err(e) => {
                stats.corrupt += 1;
                on_corrupt(line_no, &e);
                continue;
            }
        };
        if since.is_some_and(|s| ev.created_at < s) {
            stats.filtered += 1;
            continue;
        }
        match format {
            ExportFormat::Jsonl => serde_json::to_writer(&mut out, &ev)?,
            ExportFormat::Logpush => match LogpushRecord::from_event(&ev) {
                Some(rec) => serde_json::to_writer(&mut out, &rec)?,
                None => {
                    stats.filtered += 1;
                    continue;
                }
            },
        }
        out.write_all(b"\n")?;
        stats.exported += 1;
    }
    out.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ConnectionMethod;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn access(time: &str) -> AccessEvent {
        let mut e = AccessEvent::empty(EventKind::Access, at(time), "0123456789abcdef".into());
        e.allowed = true;
        e.decision = "allow".into();
        e.app_name = Some("api".into());
        e.host = Some("api.example.com".into());
        e.connection_method = ConnectionMethod::ServiceToken;
        e.service_token_id = Some("0123456789abcdef0123456789abcdef.access".into());
        e.ip_address = Some("203.0.113.7".into());
        e.country = Some("SG".into());
        e
    }

    fn run(
        input: &str,
        format: ExportFormat,
        since: Option<DateTime<Utc>>,
    ) -> (Vec<serde_json::Value>, ExportStats, Vec<u64>) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let stats = export(input.as_bytes(), &mut out, format, since, |n, _| {
            bad.push(n)
        })
        .unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, stats, bad)
    }

    #[test]
    fn logpush_uses_the_access_requests_field_names() {
        let input = access("2026-11-28T12:00:00.123Z").to_json_line();
        let (lines, stats, _) = run(&input, ExportFormat::Logpush, None);
        assert_eq!(stats.exported, 1);
        let rec = lines[0].as_object().unwrap();
        let mut keys: Vec<&str> = rec.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "Action",
                "Allowed",
                "AppDomain",
                "AppUUID",
                "Connection",
                "Country",
                "CreatedAt",
                "Email",
                "IPAddress",
                "PurposeJustificationPrompt",
                "PurposeJustificationResponse",
                "RayID",
                "TemporaryAccessApprovers",
                "TemporaryAccessDuration",
                "UserUID"
            ]
        );
        assert_eq!(rec["Allowed"], true);
        assert_eq!(rec["AppDomain"], "api.example.com");
        assert_eq!(rec["Connection"], "service_token");
        assert_eq!(rec["CreatedAt"], "2026-11-28T12:00:00.123Z");
        assert_eq!(rec["IPAddress"], "203.0.113.7");
        assert_eq!(rec["RayID"], "0123456789abcdef");
        assert_eq!(rec["UserUID"], "0123456789abcdef0123456789abcdef.access");
        assert!(rec["Email"].is_null() && rec["AppUUID"].is_null());
    }

    #[test]
    fn corrupt_lines_are_reported_by_number_and_skipped() {
        let good = access("2026-11-28T12:00:00Z").to_json_line();
        let input = format!(
            "{good}\n{{not json\n\n{good}\n{{\"event\":\"access\"}}\n{}",
            &good[..good.len() / 2]
        );
        let (lines, stats, bad) = run(&input, ExportFormat::Jsonl, None);
        assert_eq!(lines.len(), 2);
        assert_eq!(bad, vec![2, 5, 6]);
        assert_eq!(
            stats,
            ExportStats {
                exported: 2,
                filtered: 0,
                corrupt: 3
            }
        );
        assert_eq!(
            serde_json::from_value::<AccessEvent>(lines[0].clone()).unwrap(),
            access("2026-11-28T12:00:00Z")
        );
    }

    #[test]
    fn since_and_event_kinds_filter() {
        let mut alert = access("2026-11-28T12:30:00Z");
        alert.event = EventKind::Alert;
        let input = [
            access("2026-11-28T11:00:00Z"),
            access("2026-11-28T12:10:00Z"),
            alert,
        ]
        .iter()
        .map(AccessEvent::to_json_line)
        .collect::<Vec<_>>()
        .join("\n");
        let since = Some(at("2026-11-28T12:00:00Z"));
        let (lines, stats, _) = run(&input, ExportFormat::Jsonl, since);
        assert_eq!((lines.len(), stats.filtered), (2, 1));
        let (lines, stats, _) = run(&input, ExportFormat::Logpush, since);
        assert_eq!(
            (lines.len(), stats.filtered),
            (1, 2),
            "logpush has no alert records"
        );
    }
}
