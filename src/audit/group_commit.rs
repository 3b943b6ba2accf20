//! The writer thread: takes every event queued while it wrote the previous batch, serialises
//! them into one buffer, publishes them on the bus, appends the buffer with `write(2)` (and
//! `fdatasync` in `fsync` mode), and only then tells the waiting requests their batch is in.
//!
//! Failure handling, in order of the promises it keeps:
//! - a failed or partial append leaves no partial line (`LogFile::append` cuts it back) and
//!   keeps the batch for the next attempt, so an outage loses nothing already queued (up to
//!   `KEPT_BYTES`); the requests waiting on it are told at once (the gate answers 503);
//! - a batch written into a file that was deleted meanwhile is written again into a new file at
//!   the path; a renamed or replaced file is noticed within `PATH_CHECK_INTERVAL` (or at once on
//!   reopen) and the path reopened;
//! - while the path cannot be opened or written the log is failing (the sink refuses, the gate
//!   fails closed) and the writer retries every `RETRY_INTERVAL`; the outage is an
//!   `audit_log_unavailable` alert on the bus, written to the log (opened and resolved) once it
//!   is writable again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::oneshot;

use super::log_file::{LogFile, PathState, Quarantined};
use super::writer::{Shared, WriterOptions};
use super::{AccessEvent, AuditBus, EventKind};
use crate::clock::SharedClock;
use crate::config::AuditDurability;

/// How often the writer checks that the path still names its file, at the latest.
pub const PATH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a failing log is retried.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Lines kept for retrying while the log is failing; beyond this they are dropped (counted).
const KEPT_BYTES: usize = 16 * 1024 * 1024;
const BATCH_BYTES: usize = 256 * 1024;
/// The alert rule of an audit-log outage (the alert event's `decision`).
pub const OUTAGE_RULE: &str = "audit_log_unavailable";

/// What travels on the writer's channel.
#[derive(Debug)]
pub(super) enum Msg {
    /// An event, and the request waiting for its batch (if any).
    Event(Arc<AccessEvent>, Option<oneshot::Sender<bool>>),
    /// Look at the flags (reopen, stop) now.
    Wake,
}

/// An outage in progress.
#[derive(Debug)]
struct Outage {
    since: DateTime<Utc>,
    error: String,
    failed_attempts: u64,
}

/// The writer's side: the file, the batch being built and the requests waiting on it.
pub(super) struct Output {
    path: PathBuf,
    /// `None` while the path cannot be opened (`open_error` says why).
    log: Option<LogFile>,
    open_error: String,
    durability: AuditDurability,
    /// Complete lines not yet in the file.
    buf: Vec<u8>,
    /// Lines in `buf`.
    pending: u64,
    waiters: Vec<oneshot::Sender<bool>>,
    shared: Arc<Shared>,
    bus: AuditBus,
    clock: SharedClock,
    last_path_check: Instant,
    last_attempt: Instant,
    outage: Option<Outage>,
}

impl Output {
    /// Open the log (quarantining a partial last line) for the writer thread.
    pub(super) fn open(
        path: &Path,
        bus: AuditBus,
        opts: WriterOptions,
        shared: Arc<Shared>,
    ) -> std::io::Result<Output> {
        let (log, quarantined) = LogFile::open(path, opts.clock.now())?;
        let now = Instant::now();
        let mut out = Output {
            path: path.to_path_buf(),
            log: Some(log),
            open_error: String::new(),
            durability: opts.durability,
            buf: Vec::with_capacity(BATCH_BYTES),
            pending: 0,
            waiters: Vec::new(),
            shared,
            bus,
            clock: opts.clock,
            last_path_check: now,
            last_attempt: now,
            outage: None,
        };
        if let Some(q) = quarantined {
            out.report_quarantine(&q);
        }
        Ok(out)
    }

    /// Serialise one event into the batch and publish it on the bus.
    fn take(&mut self, msg: Msg) {
        let Msg::Event(ev, done) = msg else { return };
        self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        self.push(ev);
        if let Some(done) = done {
            self.waiters.push(done);
        }
    }

    /// The writer's own event (quarantine, outage), named with this gate's node.
    fn push_own(&mut self, mut ev: AccessEvent) {
        ev.node = self.shared.node.clone();
        self.push(Arc::new(ev));
    }

    fn push(&mut self, ev: Arc<AccessEvent>) {
        // Serialising plain fields into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &*ev);
        self.buf.push(b'\n');
        self.pending += 1;
        self.bus.publish(ev);
    }

    /// How long the writer may sleep: until the next retry while failing, else the path check.
    fn idle_timeout(&self) -> Duration {
        let (since, every) = match self.outage {
            Some(_) => (self.last_attempt, RETRY_INTERVAL),
            None => (self.last_path_check, PATH_CHECK_INTERVAL),
        };
        every.saturating_sub(since.elapsed())
    }

    /// Reopen when asked to or when the path names another file; retry a failed open.
    fn check_path(&mut self) {
        let asked = self.shared.reopen.swap(false, Ordering::AcqRel);
        let due = self.last_path_check.elapsed() >= PATH_CHECK_INTERVAL;
        let moved = match &self.log {
            None => true,
            Some(log) => (asked || due) && log.state(&self.path) == PathState::Moved,
        };
        if due || asked {
            self.last_path_check = Instant::now();
        }
        if asked || moved {
            // A failed reopen is reported by the next write attempt.
            let _ = self.reopen();
        }
    }

    /// Open the path afresh (creating it); the old file is closed.
    fn reopen(&mut self) -> std::io::Result<()> {
        match LogFile::open(&self.path, self.clock.now()) {
            Ok((log, quarantined)) => {
                self.log = Some(log);
                if let Some(q) = quarantined {
                    self.report_quarantine(&q);
                }
                Ok(())
            }
            Err(e) => {
                self.open_error = format!("cannot open {}: {e}", self.path.display());
                self.log = None;
                Err(e)
            }
        }
    }

    /// Write the batch and answer its waiters. While failing, attempts are spaced by
    /// `RETRY_INTERVAL`; requests that queued meanwhile are refused at once.
    fn commit(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.outage.is_some() && self.last_attempt.elapsed() < RETRY_INTERVAL {
            self.answer(false);
            return;
        }
        self.last_attempt = Instant::now();
        match self.write_batch() {
            Ok(()) => self.written(),
            Err((e, reached_file)) => {
                if reached_file {
                    // In the file but not on the disk: writing it again would duplicate it.
                    self.buf.clear();
                    self.pending = 0;
                }
                // Failing before the waiters hear of it: a refused request sees a failing log.
                self.failed(&e);
                self.answer(false);
            }
        }
    }

    /// Append the batch (and fsync it in `fsync` mode). The error says whether the lines reached
    /// the file anyway (only fsync failed).
    fn write_batch(&mut self) -> Result<(), (std::io::Error, bool)> {
        let no_file = |why: &str| std::io::Error::other(why.to_string());
        let path = self.path.display().to_string();
        let cannot =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot write {path}: {e}"));
        let log = match self.log.as_mut() {
            Some(log) => log,
            None => return Err((no_file(&self.open_error), false)),
        };
        log.append(&self.buf).map_err(|e| (cannot(e), false))?;
        if log.is_unlinked() {
            // Deleted while we wrote: these lines are gone with it; write them to a new file.
            tracing::warn!(path = %self.path.display(), "the audit log was deleted; recreating it");
            self.reopen()
                .map_err(|_| (no_file(&self.open_error), false))?;
            if let Some(log) = self.log.as_mut() {
                log.append(&self.buf).map_err(|e| (cannot(e), false))?;
            }
        }
        if self.durability == AuditDurability::Fsync
            && let Some(log) = &self.log
        {
            log.sync().map_err(|e| (cannot(e), true))?;
        }
        Ok(())
    }

    fn written(&mut self) {
        self.shared
            .health
            .written
            .fetch_add(self.pending, Ordering::Relaxed);
        self.buf.clear();
        self.pending = 0;
        self.answer(true);
        if let Some(outage) = self.outage.take() {
            self.shared.health.recover();
            tracing::warn!(path = %self.path.display(), "audit log writable again");
            let ev = outage_alert(&self.path, &outage, "resolved", self.clock.now());
            // Written by the next commit (the caller's loop makes it now).
            self.push_own(ev);
        }
    }

    fn answer(&mut self, written: bool) {
        for done in self.waiters.drain(..) {
            // The request may have gone away (client disconnected): nothing to tell.
            let _ = done.send(written);
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        let error = e.to_string();
        self.shared.health.fail(&error);
        if self.buf.len() > KEPT_BYTES {
            self.shared
                .health
                .failures
                .fetch_add(self.pending, Ordering::Relaxed);
            tracing::error!(path = %self.path.display(), lines = self.pending, "audit log failing for too long; dropped the lines kept for it");
            self.buf.clear();
            self.pending = 0;
        }
        let opening = self.outage.is_none();
        if opening {
            tracing::error!(path = %self.path.display(), error = %error, "cannot write the audit log; failing closed");
        }
        let now = self.clock.now();
        let outage = self.outage.get_or_insert_with(|| Outage {
            since: now,
            error: String::new(),
            failed_attempts: 0,
        });
        outage.failed_attempts += 1;
        outage.error = error;
        // The alert goes on the bus now and into the file (kept with the batch) once it is
        // writable; a kept line also makes the next retry an attempt to write.
        if opening || self.buf.is_empty() {
            let ev = outage_alert(&self.path, outage, "open", now);
            self.push_own(ev);
        }
    }

    /// Say on stderr and in the log that a partial last line was moved aside.
    fn report_quarantine(&mut self, q: &Quarantined) {
        tracing::warn!(
            path = %self.path.display(),
            side_file = %q.side_file.display(),
            bytes = q.bytes,
            "the audit log ended with a partial line (a crash in the middle of a write?); moved it to the side file before appending"
        );
        let ev = AccessEvent::admin(
            self.clock.now(),
            "audit_partial_line_quarantined",
            &self.path.display().to_string(),
            serde_json::json!({
                "side_file": q.side_file.display().to_string(),
                "bytes": q.bytes,
            }),
        );
        self.push_own(ev);
    }

    /// Stopping: no waiter may be left hanging.
    fn close(&mut self) {
        self.commit();
        self.answer(false);
    }
}

/// The writer thread's loop.
pub(super) fn run(mut out: Output, rx: Receiver<Msg>) {
    loop {
        match rx.recv_timeout(out.idle_timeout()) {
            Ok(msg) => {
                out.take(msg);
                // Everything that queued while the last batch was written joins this one.
                while out.buf.len() < BATCH_BYTES
                    && let Ok(msg) = rx.try_recv()
                {
                    out.take(msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                out.close();
                return;
            }
        }
        if out.shared.stop.load(Ordering::Acquire) {
            while let Ok(msg) = rx.try_recv() {
                out.take(msg);
            }
            out.check_path();
            out.close();
            return;
        }
        out.check_path();
        out.commit();
        // A recovery queued its resolution: write it before sleeping.
        if out.outage.is_none() && !out.buf.is_empty() && out.waiters.is_empty() {
            out.commit();
        }
    }
}

/// The `alert` event of an audit-log outage, in the shape the detectors' alerts have.
fn outage_alert(path: &Path, o: &Outage, state: &str, at: DateTime<Utc>) -> AccessEvent {
    let mut ev = AccessEvent::empty(EventKind::Alert, at, super::event::new_ray_id());
    ev.decision = OUTAGE_RULE.to_string();
    let path = path.display().to_string();
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    ev.details = Some(serde_json::json!({
        "alert_id": format!("{OUTAGE_RULE}:{path}"),
        "rule": OUTAGE_RULE,
        "severity": "critical",
        "title": format!("the audit log {path} cannot be written; the gate fails closed"),
        "state": state,
        "count": o.failed_attempts,
        "first_seen": ts(o.since),
        "last_seen": ts(at),
        "evidence": { "path": path, "error": o.error },
    }));
    ev
}
