//! Tests of the alert book: dedup, doubling updates, resolution, bounds, event format.

use super::*;
use serde_json::json;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn token() -> Subject {
    Subject::Token {
        id: Some("abc.access".into()),
        name: Some("ci-deploy-prod".into()),
    }
}

fn hit<'a>(
    subject: &'a Subject,
    at: DateTime<Utc>,
    facts: &'a [(&'static str, Option<&'a str>)],
) -> Hit<'a> {
    Hit {
        rule: Rule::SharedCredential,
        subject,
        at,
        add: 1,
        severity: Severity::Warning,
        phase: 0,
        notable: false,
        facts,
        event: None,
    }
}

fn content() -> Content {
    Content {
        title: "shared".into(),
        evidence: json!({ "window_secs": 60 }),
    }
}

#[test]
fn opens_once_then_updates_only_when_the_count_doubles() {
    let mut book = AlertBook::new(10);
    let s = token();
    let mut emitted = Vec::new();
    for i in 0..100 {
        if let Some(ev) = book.hit(hit(&s, t(i), &[("ips", Some("10.0.0.1"))]), content) {
            emitted.push(ev.details.unwrap()["count"].as_u64().unwrap());
        }
    }
    assert_eq!(emitted, vec![1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(book.len(), 1);
}

#[test]
fn event_has_the_console_format() {
    let mut book = AlertBook::new(10);
    let s = token();
    let ev = book
        .hit(
            hit(
                &s,
                t(0),
                &[("ips", Some("10.0.0.1")), ("user_agents", None)],
            ),
            content,
        )
        .unwrap();
    assert_eq!(ev.event, EventKind::Alert);
    assert!(!ev.allowed);
    assert_eq!(ev.decision, "shared_credential");
    assert_eq!(ev.service_token_name.as_deref(), Some("ci-deploy-prod"));
    let d = ev.details.unwrap();
    assert_eq!(d["alert_id"], "shared_credential:abc.access");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["state"], "open");
    assert_eq!(d["first_seen"], "2027-01-15T08:00:00.000Z");
    assert_eq!(d["evidence"]["window_secs"], 60);
    assert_eq!(d["evidence"]["ips"]["10.0.0.1"], 1);
    assert!(d["evidence"].get("user_agents").is_none());
}

#[test]
fn severity_or_phase_change_is_an_update() {
    let mut book = AlertBook::new(10);
    let s = token();
    assert!(book.hit(hit(&s, t(0), &[]), content).is_some());
    let mut h = hit(&s, t(1), &[]);
    h.add = 0;
    assert!(book.hit(h.clone(), content).is_none());
    h.phase = 7;
    assert!(book.hit(h.clone(), content).is_some());
    h.severity = Severity::Critical;
    assert!(book.hit(h.clone(), content).is_some());
    assert!(book.hit(h, content).is_none());
}

#[test]
fn resolves_after_quiet_time_with_a_resolved_event() {
    let mut book = AlertBook::new(10);
    let s = token();
    book.hit(hit(&s, t(0), &[]), content);
    let q = |_| Some(Duration::seconds(60));
    assert!(book.resolve_quiet(t(59), q).is_empty());
    let done = book.resolve_quiet(t(60), q);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].details.as_ref().unwrap()["state"], "resolved");
    assert_eq!(book.len(), 0);
    assert!(
        book.hit(hit(&s, t(61), &[]), content).is_some(),
        "a new occurrence reopens"
    );
}

#[test]
fn tallies_are_capped() {
    let mut book = AlertBook::new(10);
    let s = token();
    let ips: Vec<String> = (0..50).map(|i| format!("10.0.0.{i}")).collect();
    let mut last = None;
    for (i, ip) in ips.iter().enumerate() {
        let mut h = hit(&s, t(i as i64), &[]);
        let facts = [("ips", Some(ip.as_str()))];
        h.facts = &facts;
        h.notable = true;
        last = book.hit(h, content);
    }
    let d = last.unwrap().details.unwrap();
    let ips = d["evidence"]["ips"].as_object().unwrap();
    assert_eq!(ips.len(), TALLY_CAP + 1);
    assert_eq!(ips[TALLY_OTHER], 30);
}

#[test]
fn book_is_bounded() {
    let mut book = AlertBook::new(3);
    for i in 0..10 {
        let s = Subject::ClientIp(format!("10.0.0.{i}"));
        book.hit(hit(&s, t(i), &[]), content);
    }
    assert_eq!(book.len(), 3);
    assert!(book.is_open(Rule::SharedCredential, "ip:10.0.0.9"));
    assert!(!book.is_open(Rule::SharedCredential, "ip:10.0.0.0"));
}
