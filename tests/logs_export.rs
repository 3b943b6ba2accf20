//! `botgate logs export` end to end on an audit log in a temporary state dir.

use assert_cmd::Command;
use botgate::audit::{AccessEvent, ConnectionMethod, EventKind};
use chrono::{Duration, Utc};

fn event(kind: EventKind, age: Duration, ray: &str) -> AccessEvent {
    let mut e = AccessEvent::empty(kind, Utc::now() - age, ray.into());
    e.allowed = kind == EventKind::Access;
    e.decision = "allow".into();
    e.host = Some("api.example.com".into());
    e.connection_method = ConnectionMethod::ServiceToken;
    e.service_token_id = Some("0123456789abcdef0123456789abcdef.access".into());
    e.ip_address = Some("127.0.1.5".into());
    e
}

fn state_with_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        event(EventKind::Access, Duration::hours(3), "old").to_json_line(),
        "{\"event\": \"access\", \"trunc".to_string(),
        event(EventKind::Access, Duration::minutes(5), "recent").to_json_line(),
        event(EventKind::Alert, Duration::minutes(1), "alert").to_json_line(),
    ];
    std::fs::write(dir.path().join("audit.jsonl"), lines.join("\n") + "\n").unwrap();
    dir
}

fn export(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("botgate")
        .unwrap()
        .env_remove("BOTGATE_CONFIG")
        .arg("--state-dir")
        .arg(state)
        .args(["logs", "export"])
        .args(args)
        .output()
        .unwrap()
}

fn rays(out: &std::process::Output, field: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()[field]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn jsonl_exports_every_event_and_reports_the_corrupt_line() {
    let state = state_with_log();
    let out = export(state.path(), &["--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(rays(&out, "ray_id"), ["old", "recent", "alert"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("audit.jsonl:2: skipped a corrupt line"),
        "{stderr}"
    );
}

#[test]
fn logpush_with_since_keeps_recent_access_events() {
    let state = state_with_log();
    let out = export(state.path(), &["--format", "logpush", "--since", "1h"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(rays(&out, "RayID"), ["recent"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["AppDomain"], "api.example.com");
    assert_eq!(rec["UserUID"], "0123456789abcdef0123456789abcdef.access");
}

#[test]
fn missing_log_fails_and_bad_since_is_bad_input() {
    let empty = tempfile::tempdir().unwrap();
    let out = export(empty.path(), &["--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no audit log"));
    let state = state_with_log();
    assert_eq!(
        export(state.path(), &["--since", "soon"]).status.code(),
        Some(2)
    );
}
