//! The audit stream: the `AccessEvent` schema (contract), the in-process bus, the JSONL writer
//! (batched, fail-closed), admin events recorded outside the gate (`admin`), the tail reader
//! for another process's log, and export formats.

pub mod admin;
pub mod bus;
pub mod event;
pub mod export;
mod group_commit;
pub mod log_file;
pub mod tail;
pub mod writer;

pub use bus::{AuditBus, BusMessage};
pub use event::{AccessEvent, ConnectionMethod, EventKind};
pub use writer::{
    AuditSink, AuditUnavailable, AuditWriter, Commit, ReopenHandle, ReopenOnSignals, WriterHealth,
    WriterOptions,
};
