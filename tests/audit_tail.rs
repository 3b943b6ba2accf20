//! The tail reader against real files in a temp dir: appends, a partial last line, truncation,
//! rotation, corrupt and over-long lines, a file that appears later, and a mid-file start.
//! Every wait is a poll with a deadline.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use botgate::audit::tail::{self, ReopenReason, StartAt, TailHandle, TailItem, TailOptions};
use botgate::audit::{AccessEvent, EventKind};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc::Receiver;

const DEADLINE: Duration = Duration::from_secs(10);

fn opts() -> TailOptions {
    TailOptions {
        start: StartAt::Beginning,
        poll_interval: Duration::from_millis(50),
        max_line_bytes: 4096,
    }
}

fn line(ray: &str) -> String {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    format!(
        "{}\n",
        AccessEvent::empty(EventKind::Access, at, ray.into()).to_json_line()
    )
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
}

async fn next(rx: &mut Receiver<TailItem>) -> TailItem {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no item before the deadline")
        .expect("tail ended")
}

async fn next_ray(rx: &mut Receiver<TailItem>) -> String {
    match next(rx).await {
        TailItem::Event(e) => e.ray_id.clone(),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Wait until the reader has consumed `offset` bytes of the current file.
async fn consumed(handle: &TailHandle, offset: u64) {
    let stop = tokio::time::Instant::now() + DEADLINE;
    while handle
        .stats
        .offset
        .load(std::sync::atomic::Ordering::Relaxed)
        < offset
    {
        assert!(
            tokio::time::Instant::now() < stop,
            "reader never reached offset {offset}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn appended_lines_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, &(line("a") + &line("b")));
    let (_h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    assert_eq!(next_ray(&mut rx).await, "a");
    assert_eq!(next_ray(&mut rx).await, "b");
    append(&path, &line("c"));
    assert_eq!(next_ray(&mut rx).await, "c");
}

#[tokio::test]
async fn a_partial_last_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let full = line("half");
    let (head, tail_part) = full.split_at(full.len() / 2);
    append(&path, head);
    let (h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    consumed(&h, head.len() as u64).await;
    assert!(rx.try_recv().is_err(), "half a line is not an event");
    append(&path, tail_part);
    assert_eq!(next_ray(&mut rx).await, "half");
    assert_eq!(
        h.stats.corrupt.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn truncation_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, &(line("old-1") + &line("old-2") + &line("old-3")));
    let (h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    for r in ["old-1", "old-2", "old-3"] {
        assert_eq!(next_ray(&mut rx).await, r);
    }
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&path, &line("new"));
    assert!(matches!(
        next(&mut rx).await,
        TailItem::Reopened(ReopenReason::Truncated)
    ));
    assert_eq!(next_ray(&mut rx).await, "new");
    assert_eq!(
        h.stats.reopened.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[cfg(unix)]
#[tokio::test]
async fn rotation_finishes_the_old_file_then_reads_the_new_one_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, &line("before"));
    let (_h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    assert_eq!(next_ray(&mut rx).await, "before");
    // The writer adds a last line, then the file is rotated away and a new one started.
    append(&path, &line("last-of-old"));
    std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
    append(&path, &(line("first-of-new") + &line("second-of-new")));
    let mut rays = Vec::new();
    let mut rotated = false;
    while rays.len() < 3 {
        match next(&mut rx).await {
            TailItem::Event(e) => rays.push(e.ray_id.clone()),
            TailItem::Reopened(ReopenReason::Rotated) => rotated = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rotated);
    assert_eq!(rays, ["last-of-old", "first-of-new", "second-of-new"]);
}

#[tokio::test]
async fn corrupt_lines_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(
        &path,
        &format!(
            "not json at all\n{}{{\"event\":\"access\"}}\n\n{}",
            line("ok-1"),
            line("ok-2")
        ),
    );
    let (h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    match next(&mut rx).await {
        TailItem::Corrupt { line, error } => {
            assert_eq!(line, 1);
            assert!(error.contains("not valid JSON"), "{error}");
            assert!(
                !error.contains("at all"),
                "the line's text is not echoed: {error}"
            );
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert_eq!(next_ray(&mut rx).await, "ok-1");
    match next(&mut rx).await {
        TailItem::Corrupt { line, error } => assert_eq!(
            (line, error.contains("not an audit event")),
            (3, true),
            "{error}"
        ),
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert_eq!(next_ray(&mut rx).await, "ok-2");
    assert_eq!(
        h.stats.corrupt.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn an_over_long_line_is_skipped_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, &"x".repeat(10_000));
    let (_h, mut rx) = tail::follow_channel(&path, opts(), 64).unwrap();
    assert!(matches!(
        next(&mut rx).await,
        TailItem::Corrupt { line: 1, .. }
    ));
    append(&path, &("y".repeat(5000) + "\n" + &line("after")));
    assert_eq!(next_ray(&mut rx).await, "after");
}

#[tokio::test]
async fn a_file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.jsonl");
    let (_h, mut rx) = tail::follow_channel(
        &path,
        TailOptions {
            start: StartAt::End,
            ..opts()
        },
        64,
    )
    .unwrap();
    append(&path, &line("first"));
    assert_eq!(next_ray(&mut rx).await, "first");
}

#[tokio::test]
async fn starting_mid_file_skips_the_cut_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (a, b) = (line("a"), line("b"));
    append(&path, &(a.clone() + &b));
    // The last bytes cut into line "a": it must not be reported as corrupt.
    let start = StartAt::LastBytes((b.len() + 5) as u64);
    let (h, mut rx) = tail::follow_channel(&path, TailOptions { start, ..opts() }, 64).unwrap();
    assert_eq!(next_ray(&mut rx).await, "b");
    assert_eq!(
        h.stats.corrupt.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, &line("a"));
    let (h, rx) = tail::follow_channel(&path, opts(), 1).unwrap();
    drop(rx);
    append(&path, &(line("b") + &line("c")));
    // stop() joins the thread: it must return promptly.
    let joined = tokio::task::spawn_blocking(move || h.stop());
    tokio::time::timeout(DEADLINE, joined)
        .await
        .expect("reader did not stop")
        .unwrap();
}

#[tokio::test]
async fn starting_since_a_time_finds_its_first_line_by_binary_search() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut text = String::new();
    for i in 0..1000 {
        let at = t0 + chrono::Duration::seconds(i);
        text.push_str(&AccessEvent::empty(EventKind::Access, at, i.to_string()).to_json_line());
        text.push('\n');
        // Lines that are not events do not derail the search.
        if i % 97 == 0 {
            text.push_str("not json\n\n");
        }
    }
    append(&path, &text);
    for (since, first) in [(600, "600"), (0, "0"), (-50, "0"), (999, "999")] {
        let start = StartAt::Since(t0 + chrono::Duration::seconds(since));
        let (_h, mut rx) =
            tail::follow_channel(&path, TailOptions { start, ..opts() }, 64).unwrap();
        assert_eq!(next_ray(&mut rx).await, first, "since +{since}s");
    }
    // After the last line: nothing of the history, then what is appended.
    let start = StartAt::Since(t0 + chrono::Duration::hours(1));
    let (h, mut rx) = tail::follow_channel(&path, TailOptions { start, ..opts() }, 64).unwrap();
    consumed(&h, text.len() as u64).await;
    append(&path, &line("new"));
    assert_eq!(next_ray(&mut rx).await, "new");
}
