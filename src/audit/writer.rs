//! The JSONL audit writer, with group commit. `AuditSink::commit` queues an event and returns a
//! `Commit` that resolves once the batch holding the event has been handed to the kernel
//! (`write(2)` returned; with `audit_durability = "fsync"` also `fdatasync`), so a response
//! sent after it survives a crash of the process. `AuditSink::record` queues without waiting
//! (alerts, admin events). One writer thread takes whatever has queued while it wrote the last
//! batch, so batches grow with the load and an idle gate adds one write's latency.
//! The writer keeps the file true to its path: at least every second, and at once on
//! `AuditWriter::reopen` (SIGHUP/SIGUSR1 in `serve`), it reopens the path when the file was
//! renamed, deleted or replaced; a batch written to a file deleted under it is written again to
//! the new one. When the path cannot be opened or written, the log is *failing*: `commit`,
//! `record` and `is_available` refuse (the gate fails closed), `/healthz` says so, an
//! `audit_log_unavailable` alert goes on the bus, and the writer retries every 100 ms, writing
//! what it kept once it can (see `group_commit`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::group_commit::{self, Msg};
use super::{AccessEvent, AuditBus};
use crate::clock::SharedClock;
use crate::config::AuditDurability;

pub use super::group_commit::{PATH_CHECK_INTERVAL, RETRY_INTERVAL};

/// Counters shared between the writer, the gate and `/metrics`.
#[derive(Debug, Default)]
pub struct WriterHealth {
    failed: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Events written to the file.
    pub written: AtomicU64,
    /// Events that could not be queued or written.
    pub failures: AtomicU64,
}

impl WriterHealth {
    /// True while the audit log cannot be written (from the first failure to the next success).
    pub fn is_failing(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Why the log is failing (the last error), while it is.
    pub fn last_error(&self) -> Option<String> {
        if !self.is_failing() {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Mark the log failing; true when it was not failing before.
    pub(super) fn fail(&self, error: &str) -> bool {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        !self.failed.swap(true, Ordering::AcqRel)
    }

    /// Mark the log writable; true when it was failing before.
    pub(super) fn recover(&self) -> bool {
        self.failed.swap(false, Ordering::AcqRel)
    }
}

/// The audit log cannot take this event.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit log cannot be written")]
pub struct AuditUnavailable;

/// What the sink, the writer handle and the writer thread share.
#[derive(Debug)]
pub(super) struct Shared {
    pub health: Arc<WriterHealth>,
    /// Events in the channel (the sink's view of how full it is).
    pub queued: AtomicUsize,
    pub capacity: usize,
    pub durability: AuditDurability,
    /// Reopen the path at the next chance (set by `reopen`).
    pub reopen: AtomicBool,
    /// Write what is queued and stop (set by `finish`).
    pub stop: AtomicBool,
    pub node: Option<Arc<str>>,
}

/// Where the gate sends events: the writer's channel (and through it the bus).
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: SyncSender<Msg>,
    bus: AuditBus,
    shared: Arc<Shared>,
}

impl AuditSink {
    /// Whether an event recorded now would be accepted (used before answering a request).
    pub fn is_available(&self) -> bool {
        !self.shared.health.is_failing()
            && !self.shared.stop.load(Ordering::Acquire)
            && self.shared.queued.load(Ordering::Relaxed) < self.shared.capacity
    }

    /// Queue an event for the file and the bus without waiting for it to be written (events no
    /// response waits for: alerts, admin actions, refused handshakes). A refused event still
    /// goes on the bus, at once.
    pub fn record(&self, event: AccessEvent) -> Result<(), AuditUnavailable> {
        self.send(self.stamp(event), None)
    }

    /// The event with this writer's node, unless it names one.
    fn stamp(&self, mut event: AccessEvent) -> Arc<AccessEvent> {
        if event.node.is_none() {
            event.node = self.shared.node.clone();
        }
        Arc::new(event)
    }

    /// Queue an event; the returned `Commit` resolves when its batch is in the file (handed to
    /// the kernel, or fsynced with `audit_durability = "fsync"`), or fails when that batch
    /// could not be written. Answer the request only after it resolved.
    /// With `audit_durability = "buffered"` it resolves at once.
    pub fn commit(&self, event: AccessEvent) -> Result<Commit, AuditUnavailable> {
        if self.shared.durability == AuditDurability::Buffered {
            self.send(self.stamp(event), None)?;
            return Ok(Commit(None));
        }
        let (done, rx) = oneshot::channel();
        self.send(self.stamp(event), Some(done))?;
        Ok(Commit(Some(rx)))
    }

    fn send(
        &self,
        event: Arc<AccessEvent>,
        done: Option<oneshot::Sender<bool>>,
    ) -> Result<(), AuditUnavailable> {
        if self.shared.health.is_failing() || self.shared.stop.load(Ordering::Acquire) {
            return self.refuse(event);
        }
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Event(event, done)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                match msg {
                    Msg::Event(event, _) => self.refuse(event),
                    Msg::Wake => Err(AuditUnavailable),
                }
            }
        }
    }

    fn refuse(&self, event: Arc<AccessEvent>) -> Result<(), AuditUnavailable> {
        self.bus.publish(event);
        self.shared.health.failures.fetch_add(1, Ordering::Relaxed);
        Err(AuditUnavailable)
    }

    pub fn health(&self) -> &Arc<WriterHealth> {
        &self.shared.health
    }

    pub fn bus(&self) -> &AuditBus {
        &self.bus
    }
}

/// Resolves when the batch holding an event is in the audit log (`Ok`), or could not be
/// written (`Err`: answer 503 when failing closed).
#[derive(Debug)]
#[must_use = "a response must wait for its audit event to be written"]
pub struct Commit(Option<oneshot::Receiver<bool>>);

impl Future for Commit {
    type Output = Result<(), AuditUnavailable>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(rx) = self.0.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        Pin::new(rx).poll(cx).map(|r| match r {
            Ok(true) => Ok(()),
            // Written false, or the writer stopped without answering.
            _ => Err(AuditUnavailable),
        })
    }
}

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Events that may wait for the writer before `record` refuses more.
    pub queue: usize,
    pub durability: AuditDurability,
    /// Timestamps of the writer's own events (quarantine, outage alerts).
    pub clock: SharedClock,
    /// Stamped as `node` on every event that does not name one.
    pub node: Option<Arc<str>>,
}

/// Asks the writer to reopen its path (what `serve` does on SIGHUP and SIGUSR1, after a
/// logrotate `postrotate`). Cloneable; cheap.
#[derive(Debug, Clone)]
pub struct ReopenHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl ReopenHandle {
    /// Reopen (and recreate if missing) the audit log path before the next batch.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        // A full channel means the writer is busy and sees the flag before its next batch.
        let _ = self.tx.try_send(Msg::Wake);
    }
}

/// Reopens the audit log on SIGUSR1 and SIGHUP (as nginx does) until dropped.
#[derive(Debug)]
pub struct ReopenOnSignals(tokio::task::JoinHandle<()>);

impl ReopenOnSignals {
    /// Listen for SIGUSR1 and, with `hangup`, SIGHUP (not when SIGHUP is a terminal's hangup
    /// that must end the process); each makes `handle` reopen the log. Inside a runtime.
    pub fn start(handle: ReopenHandle, hangup: bool) -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match hangup {
            true => Some(signal(SignalKind::hangup())?),
            false => None,
        };
        let mut usr1 = signal(SignalKind::user_defined1())?;
        Ok(Self(tokio::spawn(async move {
            loop {
                let hup = async {
                    match hup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    Some(()) = hup => {}
                    Some(()) = usr1.recv() => {}
                    else => return,
                }
                tracing::info!("reopening the audit log (signal)");
                handle.reopen();
            }
        })))
    }
}

impl Drop for ReopenOnSignals {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The writer thread's handle. Dropping it stops the writer like `finish`, without waiting.
#[derive(Debug)]
pub struct AuditWriter {
    pub path: PathBuf,
    reopen: ReopenHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditWriter {
    /// Open (append) `path` — moving a partial last line to a side file first — and start the
    /// writer thread. Must run inside a tokio runtime (it installs the SIGXFSZ handler, so a
    /// file-size limit makes writes fail with EFBIG instead of killing the process).
    pub async fn start(
        path: &Path,
        bus: AuditBus,
        opts: WriterOptions,
    ) -> std::io::Result<(AuditSink, AuditWriter)> {
        ignore_file_size_signal()?;
        let capacity = opts.queue.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let shared = Arc::new(Shared {
            health: Arc::new(WriterHealth::default()),
            queued: AtomicUsize::new(0),
            capacity,
            durability: opts.durability,
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            node: opts.node.clone(),
        });
        let out = group_commit::Output::open(path, bus.clone(), opts, shared.clone())?;
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || group_commit::run(out, rx))?;
        Ok((
            AuditSink {
                tx: tx.clone(),
                bus,
                shared: shared.clone(),
            },
            AuditWriter {
                path: path.to_path_buf(),
                reopen: ReopenHandle { tx, shared },
                thread: Some(thread),
            },
        ))
    }

    /// A handle that makes the writer reopen its path (SIGHUP/SIGUSR1 in `serve`).
    pub fn reopen_handle(&self) -> ReopenHandle {
        self.reopen.clone()
    }

    /// Reopen (and recreate if missing) the audit log path before the next batch.
    pub fn reopen(&self) {
        self.reopen.reopen();
    }

    /// Write everything queued so far, then stop. Later `record`s fail.
    pub async fn finish(mut self) {
        self.request_stop();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn request_stop(&self) {
        self.reopen.shared.stop.store(true, Ordering::Release);
        let _ = self.reopen.tx.try_send(Msg::Wake);
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.request_stop();
    }
}

/// Catch SIGXFSZ (tokio's handler stays installed for the life of the process), so writing past
/// `RLIMIT_FSIZE` fails the write with EFBIG — the log then fails closed — instead of killing
/// the gate.
fn ignore_file_size_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::from_raw(libc::SIGXFSZ)).map(drop)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
