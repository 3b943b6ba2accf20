use std::time::Duration;

use super::*;
use crate::audit::{BusMessage, EventKind};
use crate::clock::SystemClock;

fn event(ray: &str) -> AccessEvent {
    AccessEvent::empty(EventKind::Access, chrono::Utc::now(), ray.into())
}

fn opts(durability: AuditDurability) -> WriterOptions {
    WriterOptions {
        queue: 4096,
        durability,
        clock: Arc::new(SystemClock),
        node: None,
    }
}

/// The ray ids of the complete lines in the file now (every one must be a whole event). A last
/// line without its newline is a write(2) the writer is in the middle of, not yet a line.
fn rays(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| {
            serde_json::from_str::<AccessEvent>(l)
                .unwrap_or_else(|e| panic!("corrupt line {l:?}: {e}"))
                .ray_id
        })
        .collect()
}

async fn poll(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn every_event_reaches_the_file_and_the_bus_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let bus = AuditBus::new(4096);
    let mut rx = bus.subscribe();
    let (sink, writer) = AuditWriter::start(&path, bus, opts(AuditDurability::Write))
        .await
        .unwrap();
    for i in 0..1000 {
        sink.record(event(&format!("r{i}"))).unwrap();
    }
    assert!(poll(|| rays(&path).len() >= 1000).await);
    for (i, ray) in rays(&path).iter().enumerate() {
        assert_eq!(ray, &format!("r{i}"));
        let BusMessage::Event(on_bus) = rx.recv().await.unwrap();
        assert_eq!(on_bus.ray_id, format!("r{i}"));
    }
    assert_eq!(sink.health().written.load(Ordering::Relaxed), 1000);
    writer.finish().await;
}

#[tokio::test]
async fn a_commit_resolves_only_once_its_line_is_in_the_file() {
    for durability in [AuditDurability::Write, AuditDurability::Fsync] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (sink, writer) = AuditWriter::start(&path, AuditBus::new(64), opts(durability))
            .await
            .unwrap();
        let commits: Vec<_> = (0..50)
            .map(|i| sink.commit(event(&format!("c{i}"))).unwrap())
            .collect();
        for (i, commit) in commits.into_iter().enumerate() {
            commit.await.unwrap();
            // No polling: resolved means written.
            assert!(rays(&path).contains(&format!("c{i}")), "{durability:?}");
        }
        writer.finish().await;
    }
}

#[tokio::test]
async fn a_stopped_writer_refuses_but_still_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let bus = AuditBus::new(64);
    let mut rx = bus.subscribe();
    let (sink, writer) = AuditWriter::start(&path, bus, opts(AuditDurability::Write))
        .await
        .unwrap();
    sink.record(event("a")).unwrap();
    writer.finish().await;
    assert_eq!(rays(&path), ["a"], "finish writes what was queued");
    assert!(!sink.is_available());
    assert!(sink.record(event("b")).is_err());
    assert!(sink.commit(event("c")).is_err());
    let mut seen = Vec::new();
    while let Ok(BusMessage::Event(ev)) = rx.try_recv() {
        seen.push(ev.ray_id.clone());
    }
    assert_eq!(seen, ["a", "b", "c"], "refused events are still published");
    assert_eq!(sink.health().failures.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_batch_written_to_a_deleted_file_is_written_again_to_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sink, writer) = AuditWriter::start(&path, AuditBus::new(64), opts(AuditDurability::Write))
        .await
        .unwrap();
    sink.commit(event("before")).unwrap().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    sink.commit(event("after")).unwrap().await.unwrap();
    assert_eq!(rays(&path), ["after"], "recreated at once, nothing lost");
    writer.finish().await;
}

#[tokio::test]
async fn a_renamed_file_is_reopened_on_request_and_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotated = dir.path().join("audit.jsonl.1");
    let (sink, writer) = AuditWriter::start(&path, AuditBus::new(64), opts(AuditDurability::Write))
        .await
        .unwrap();
    sink.commit(event("one")).unwrap().await.unwrap();
    // On request (SIGHUP after logrotate `create`): at once.
    std::fs::rename(&path, &rotated).unwrap();
    writer.reopen();
    sink.commit(event("two")).unwrap().await.unwrap();
    assert_eq!(rays(&rotated), ["one"]);
    assert_eq!(rays(&path), ["two"]);
    // Unasked: the periodic check finds it; until then lines go to the renamed file (kept).
    std::fs::rename(&path, &rotated).unwrap();
    let mut n = 0;
    assert!(
        poll(|| {
            n += 1;
            let _ = sink.record(event(&format!("p{n}")));
            path.exists()
        })
        .await
    );
    let mut all = rays(&rotated);
    sink.commit(event("last")).unwrap().await.unwrap();
    all.extend(rays(&path));
    assert_eq!(all.first().map(String::as_str), Some("two"));
    assert_eq!(all.last().map(String::as_str), Some("last"));
    assert_eq!(all.len(), n + 2, "every event in one of the two files");
    writer.finish().await;
}

#[tokio::test]
async fn a_blocked_path_fails_closed_with_an_alert_and_recovers_with_what_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let bus = AuditBus::new(256);
    let mut rx = bus.subscribe();
    let (sink, writer) = AuditWriter::start(&path, bus, opts(AuditDurability::Write))
        .await
        .unwrap();
    sink.commit(event("one")).unwrap().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    // The batch went into the deleted file and cannot be written again: refused, kept.
    assert!(sink.commit(event("two")).unwrap().await.is_err());
    assert!(sink.health().is_failing());
    assert!(!sink.is_available());
    assert!(sink.health().last_error().unwrap().contains("audit.jsonl"));
    assert!(sink.commit(event("refused")).is_err());
    let mut alert = None;
    while let Ok(BusMessage::Event(ev)) = rx.try_recv() {
        if ev.event == EventKind::Alert {
            alert = Some(ev);
        }
    }
    let alert = alert.expect("an outage alert on the bus");
    assert_eq!(alert.decision, "audit_log_unavailable");
    assert_eq!(alert.details.as_ref().unwrap()["state"], "open");

    std::fs::remove_dir(&path).unwrap();
    assert!(
        poll(|| !sink.health().is_failing()).await,
        "recovers by itself"
    );
    sink.commit(event("three")).unwrap().await.unwrap();
    let lines: Vec<AccessEvent> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let access: Vec<_> = lines
        .iter()
        .filter(|e| e.event == EventKind::Access)
        .map(|e| e.ray_id.as_str())
        .collect();
    assert_eq!(
        access,
        ["two", "three"],
        "the kept line is written, the refused one is not"
    );
    let states: Vec<_> = lines
        .iter()
        .filter(|e| e.event == EventKind::Alert)
        .map(|e| {
            e.details.as_ref().unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(states, ["open", "resolved"], "the outage is in the log");
    writer.finish().await;
}

#[tokio::test]
async fn buffered_commits_resolve_at_once_and_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sink, writer) =
        AuditWriter::start(&path, AuditBus::new(64), opts(AuditDurability::Buffered))
            .await
            .unwrap();
    // The writer is stopped before it could write: resolving anyway is what buffered means.
    sink.commit(event("b")).unwrap().await.unwrap();
    writer.finish().await;
    assert_eq!(rays(&path), ["b"]);
}

#[tokio::test]
async fn every_event_is_named_with_the_writers_node_unless_it_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let bus = AuditBus::new(64);
    let mut rx = bus.subscribe();
    let mut o = opts(AuditDurability::Write);
    o.node = Some("gate-a".into());
    let (sink, writer) = AuditWriter::start(&path, bus, o).await.unwrap();
    sink.record(event("mine")).unwrap();
    let mut relayed = event("relayed");
    relayed.node = Some("gate-b".into());
    sink.record(relayed).unwrap();
    assert!(poll(|| rays(&path).len() >= 2).await);
    let nodes: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["node"].to_string())
        .collect();
    assert_eq!(nodes, ["\"gate-a\"", "\"gate-b\""]);
    let BusMessage::Event(on_bus) = rx.recv().await.unwrap();
    assert_eq!(
        on_bus.node.as_deref(),
        Some("gate-a"),
        "the bus sees what the file holds"
    );
    writer.finish().await;
}
