//! The admin journal: one row per admin action (token create/revoke, CA and certificate
//! changes, rotation steps, policy reloads), each carrying the exact audit line it becomes, with
//! a monotonic id. Audit files read the journal past a per-file cursor, so every row reaches
//! every audit file once: a running gate holds the file's writer lease and relays new rows
//! through its one audit writer (and so the bus); with no gate holding it, the CLI that made the
//! change appends the pending rows itself.
//!
//! Claiming rows and advancing the cursor happen in one `IMMEDIATE` transaction, so two
//! processes never claim the same row; this is what keeps a line from being written twice.

use chrono::{DateTime, Utc};

/// How long a writer lease lasts without a heartbeat; a gate renews it on every poll.
pub const WRITER_LEASE: chrono::Duration = chrono::Duration::seconds(5);
/// The most rows one claim takes (the rest wait for the next poll).
pub(crate) const CLAIM_LIMIT: i64 = 1_000;

/// One admin action as the journal records it.
#[derive(Debug, Clone)]
pub struct AdminEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    /// The audit line (one JSON object, no newline) this row becomes in every audit file.
    pub event_line: String,
}

/// A journal row claimed for an audit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub id: i64,
    pub event_line: String,
}

/// What a CLI-side delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A gate holds the file's writer lease: it relays the rows (to the file and its bus).
    GateRelays,
    /// This many rows were handed to the caller's `write`, which succeeded.
    Written(usize),
}
