//! Evidence counting and incremental reading of the audit log.
use super::*;
use chrono::Duration;
use std::io::Write;

fn target() -> EvidenceTarget {
    EvidenceTarget {
        kind: CredentialKind::Token,
        old_key: "old.access".into(),
        new_key: Some("new.access".into()),
        versions: None,
        since: DateTime::UNIX_EPOCH,
    }
}

fn event(at: DateTime<Utc>, key: &str, ip: &str, allowed: bool) -> AccessEvent {
    let mut e = AccessEvent::empty(EventKind::Access, at, "r".into());
    e.connection_method = ConnectionMethod::ServiceToken;
    e.service_token_id = Some(key.into());
    e.ip_address = Some(ip.into());
    e.allowed = allowed;
    e.app_name = Some("api".into());
    if allowed {
        e.policy_name = Some("CI".into());
    } else {
        e.deny_reason = Some("token_revoked".into());
    }
    e
}

#[test]
fn counts_per_credential_and_tracks_who_is_left() {
    let t0 = Utc::now();
    let mut ev = Evidence::default();
    let tg = target();
    ev.ingest(&tg, &event(t0, "old.access", "10.0.0.1", true));
    ev.ingest(&tg, &event(t0, "old.access", "10.0.0.2", true));
    ev.ingest(
        &tg,
        &event(t0 + Duration::seconds(5), "new.access", "10.0.0.1", true),
    );
    ev.ingest(&tg, &event(t0, "someone-else", "10.0.0.3", true));
    let mut admin = event(t0, "old.access", "10.0.0.9", true);
    admin.event = EventKind::Admin;
    ev.ingest(&tg, &admin);
    let late_flush = EvidenceTarget {
        since: t0 + Duration::seconds(1),
        ..tg.clone()
    };
    ev.ingest(&late_flush, &event(t0, "old.access", "10.0.0.8", true));
    // Both times are whole milliseconds: a request in the start's own millisecond may have been
    // made just before it, so it is not evidence either.
    let same_ms = EvidenceTarget {
        since: t0,
        ..tg.clone()
    };
    ev.ingest(&same_ms, &event(t0, "old.access", "10.0.0.7", true));

    assert_eq!((ev.old.requests, ev.new.requests), (2, 1));
    assert_eq!(ev.clients.len(), 2, "other tokens and admin events ignored");
    let left: Vec<&str> = ev.stragglers().iter().map(|c| c.ip.as_str()).collect();
    assert_eq!(left, ["10.0.0.2"]);
    assert_eq!(ev.clients["10.0.0.1"].last_credential, Which::New);
    let policy = PolicyRef {
        app: "api".into(),
        policy: "CI".into(),
    };
    assert_eq!(ev.new_requests_through(std::slice::from_ref(&policy)), 1);
    assert_eq!(ev.new_requests_through(&[]), 1, "old's policies count too");
    let total: u64 = ev.timeline.values().map(|b| b[0] + b[1]).sum();
    assert_eq!(total, 3);
}

#[test]
fn a_token_request_over_mtls_is_not_cert_evidence() {
    let tg = EvidenceTarget {
        kind: CredentialKind::Cert,
        old_key: "fp-old".into(),
        new_key: Some("fp-new".into()),
        versions: None,
        since: DateTime::UNIX_EPOCH,
    };
    let mut e = event(Utc::now(), "x.access", "10.0.0.1", true);
    e.cert_fingerprint_sha256 = Some("fp-old".into());
    assert_eq!(tg.classify(&e), None);
    e.connection_method = ConnectionMethod::Mtls;
    assert_eq!(tg.classify(&e), Some(Which::Old));
}

#[test]
fn reader_reads_from_offset_incrementally_and_waits_for_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t0 = Utc::now();
    let before = event(t0, "old.access", "10.0.0.1", true).to_json_line();
    std::fs::write(&path, format!("{before}\n")).unwrap();
    let offset = std::fs::metadata(&path).unwrap().len();
    let mut r = EvidenceReader::new(path.clone(), offset, target());
    assert!(
        !r.poll().unwrap(),
        "what was there before the rotation is skipped"
    );

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let line = event(t0, "new.access", "10.0.0.1", true).to_json_line();
    let (a, b) = line.split_at(20);
    write!(f, "{a}").unwrap();
    assert!(!r.poll().unwrap(), "half a line is not read");
    writeln!(f, "{b}").unwrap();
    writeln!(f, "not json but names old.access").unwrap();
    assert!(r.poll().unwrap());
    assert_eq!(r.evidence().new.requests, 1);
    assert_eq!(r.evidence().old.requests, 0);
    assert_eq!(r.evidence().unreadable_lines, 1);

    std::fs::write(&path, format!("{before}\n")).unwrap();
    assert!(
        r.poll().unwrap(),
        "a truncated log is read again from the start"
    );
    assert!(r.evidence().log_reset);
    assert_eq!(r.evidence().old.requests, 1);
}

#[test]
fn missing_log_is_empty_evidence() {
    let mut r = EvidenceReader::new("/nonexistent/botgate/audit.jsonl".into(), 0, target());
    assert!(!r.poll().unwrap());
    assert_eq!(r.evidence(), &Evidence::default());
}

#[test]
fn start_offset_is_a_line_boundary_before_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    assert_eq!(start_offset(&path), 0, "missing log");
    std::fs::write(&path, "short\n").unwrap();
    assert_eq!(start_offset(&path), 0, "small log: read it all");
    let line = format!("{}\n", "x".repeat(999));
    let big = line.repeat(1000);
    std::fs::write(&path, &big).unwrap();
    let off = start_offset(&path);
    assert!(off > 0 && off < big.len() as u64);
    assert_eq!(off % 1000, 0, "on a line boundary");
    assert!(big.len() as u64 - off <= START_REWIND_BYTES);
}

#[test]
fn other_gates_requests_count_once_and_this_logs_own_rows_not_twice() {
    let t0 = Utc::now();
    let mut ev = Evidence::default();
    let tg = target();
    let mut here = event(t0, "new.access", "10.0.0.1", true);
    here.ray_id = "ray-here".into();
    ev.ingest(&tg, &here);
    // The usage row this log's own gate wrote: already counted.
    ev.ingest_remote(&tg, &here, 1);
    let mut there = event(t0, "new.access", "10.0.0.2", true);
    there.ray_id = "ray-there".into();
    ev.ingest_remote(&tg, &there, 40);
    ev.ingest_remote(&tg, &event(t0, "someone.else", "10.0.0.3", true), 9);
    assert_eq!(ev.new.requests, 41);
    assert_eq!(ev.from_other_gates, 40);
    assert_eq!(ev.clients["10.0.0.2"].new_requests, 40);
    let intended = [PolicyRef {
        app: "api".into(),
        policy: "CI".into(),
    }];
    assert_eq!(ev.new_requests_through(&intended), 41);
}

#[test]
fn an_in_place_rotation_tells_the_two_secrets_apart_by_version() {
    let tg = EvidenceTarget {
        kind: CredentialKind::Token,
        old_key: "same.access".into(),
        new_key: Some("same.access".into()),
        versions: Some((1, 2)),
        since: DateTime::UNIX_EPOCH,
    };
    let with = |v: Option<u32>, allowed: bool| {
        let mut e = event(Utc::now(), "same.access", "10.0.0.1", allowed);
        e.secret_version = v;
        e
    };
    assert_eq!(tg.classify(&with(Some(1), true)), Some(Which::Old));
    assert_eq!(tg.classify(&with(Some(2), true)), Some(Which::New));
    assert_eq!(
        tg.classify(&with(None, false)),
        Some(Which::Old),
        "a refused secret for the Client ID is a stale client"
    );
    assert_eq!(
        tg.classify(&event(Utc::now(), "other.access", "10.0.0.1", true)),
        None
    );
}
