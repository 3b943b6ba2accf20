//! The usage feed: what each gate's authenticated requests did, relayed through the store so
//! the fleet-wide detectors (shared credential, frequency spike) count requests that went
//! through every gate. Per-request data never goes through the change feed: a gate folds its
//! requests into one row per (credential, client IP, user agent) and writes them every
//! `RECORD_EVERY`; every gate reads the other gates' rows on the same beat.

use chrono::{DateTime, Utc};

/// How often a gate writes its usage rows and reads the others'.
pub const RECORD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// How long rows are kept (longer than any detector window a reader could still need to
/// catch up on after a restart).
pub const KEEP: chrono::Duration = chrono::Duration::minutes(15);
/// Rows one batch may hold; requests of further groups in the same batch are counted in the
/// group's credential only when it already has a row (a flood of new IPs is capped, not lost).
pub const MAX_ROWS: usize = 2048;
/// Rows read per query.
pub const READ_LIMIT: usize = 1000;

/// One group of requests from this gate: `requests` like `event` (its latest), up to `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub at: DateTime<Utc>,
    pub requests: u64,
    /// The group's latest audit event as a JSONL line (no secret is ever in one).
    pub event: String,
}

/// A row as read back, with its id (the reader's cursor) and the gate instance that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub id: i64,
    pub instance: String,
    pub row: UsageRow,
}

/// The contract every backend meets (run by each backend's tests).
#[cfg(test)]
pub(crate) fn contract(store: &super::Store) {
    use super::wait;
    // The stores keep milliseconds.
    let t0 = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let row = |s: i64, n: u64| UsageRow {
        at: t0 + chrono::Duration::seconds(s),
        requests: n,
        event: format!("{{\"n\":{n}}}"),
    };
    let keep = t0 - KEEP;
    wait(store.record_usage("a", &[row(0, 1), row(1, 2)], keep)).unwrap();
    wait(store.record_usage("b", &[row(2, 3)], keep)).unwrap();
    // Each reader sees the others' rows only, oldest first, and pages by id.
    let for_a = wait(store.usage_since(0, "a", 10)).unwrap();
    assert_eq!(for_a.len(), 1);
    assert_eq!(
        (for_a[0].instance.as_str(), &for_a[0].row),
        ("b", &row(2, 3))
    );
    let for_b = wait(store.usage_since(0, "b", 10)).unwrap();
    assert_eq!(
        for_b.iter().map(|r| r.row.requests).collect::<Vec<_>>(),
        [1, 2]
    );
    let page = wait(store.usage_since(0, "b", 1)).unwrap();
    let rest = wait(store.usage_since(page[0].id, "b", 10)).unwrap();
    assert_eq!((page.len(), rest.len()), (1, 1));
    assert!(rest[0].id > page[0].id);
    assert!(
        wait(store.usage_since(for_a[0].id, "a", 10))
            .unwrap()
            .is_empty()
    );
    // Rows older than what the writer keeps are dropped when it writes.
    wait(store.record_usage("a", &[row(3, 4)], t0 + chrono::Duration::seconds(2))).unwrap();
    let left = wait(store.usage_since(0, "c", 10)).unwrap();
    assert_eq!(
        left.iter().map(|r| r.row.requests).collect::<Vec<_>>(),
        [3, 4]
    );
}
