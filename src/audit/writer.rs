//! The JSONL audit writer. `AuditSink::record` puts the event on a bounded lock-free channel;
//! the writer task wakes for the first event of a batch only, then lets events gather for
//! `BATCH_WINDOW` without being woken, takes them all, serialises them and publishes them on the
//! bus (so the writer and every bus subscriber wake once per batch, not once per event), and
//! writes at least every 100 ms. `record` fails (so the gate can fail closed) when the channel is
//! full, the writer has stopped, or the last write failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{AccessEvent, AuditBus};

/// How often buffered lines are flushed at the latest.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long the writer lets events gather after the first one of a batch before taking them
/// (also the most an event waits before it is on the bus).
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
const BATCH_BYTES: usize = 256 * 1024;

/// Counters shared between the writer task, the gate and `/metrics`.
#[derive(Debug, Default)]
pub struct WriterHealth {
    failed: AtomicBool,
    /// Events written to the file.
    pub written: AtomicU64,
    /// Events that could not be queued or written.
    pub failures: AtomicU64,
}

impl WriterHealth {
    /// True when the last write to the file failed (and no later write succeeded).
    pub fn is_failing(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The audit log cannot take this event.
#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written")]
pub struct AuditUnavailable;

/// Where the gate sends events: the writer's channel (and through it the bus).
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Arc<AccessEvent>>,
    bus: AuditBus,
    health: Arc<WriterHealth>,
}

impl AuditSink {
    /// Whether an event recorded now would be accepted (used before answering a request).
    pub fn is_available(&self) -> bool {
        !self.health.is_failing() && !self.tx.is_closed() && self.tx.capacity() > 0
    }

    /// Queue an event for the file and the bus. A refused event still goes on the bus, at once.
    pub fn record(&self, event: AccessEvent) -> Result<(), AuditUnavailable> {
        let event = Arc::new(event);
        if self.health.is_failing() {
            return self.refuse(event);
        }
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event),
            ) => self.refuse(event),
        }
    }

    fn refuse(&self, event: Arc<AccessEvent>) -> Result<(), AuditUnavailable> {
        self.bus.publish(event);
        self.health.failures.fetch_add(1, Ordering::Relaxed);
        Err(AuditUnavailable)
    }

    pub fn health(&self) -> &Arc<WriterHealth> {
        &self.health
    }

    pub fn bus(&self) -> &AuditBus {
        &self.bus
    }
}

/// The writer task's handle.
#[derive(Debug)]
pub struct AuditWriter {
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl AuditWriter {
    /// Open (append) `path` and start the writer task. Must run inside a tokio runtime.
    /// `queue` events may wait for the writer before `record` refuses more.
    pub async fn start(
        path: &Path,
        bus: AuditBus,
        queue: usize,
    ) -> std::io::Result<(AuditSink, AuditWriter)> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = open_append(path).await?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let health = Arc::new(WriterHealth::default());
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let out = Output {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(BATCH_BYTES),
            pending: 0,
            health: health.clone(),
            bus: bus.clone(),
        };
        let task = tokio::spawn(run(out, rx, stop_rx));
        Ok((
            AuditSink { tx, bus, health },
            AuditWriter {
                path: path.to_path_buf(),
                task,
                stop,
            },
        ))
    }

    /// Write everything queued so far, then stop. Later `record`s fail.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path).await
}

/// The writer's side: the file, the batch being built, and the bus it publishes to.
struct Output {
    file: tokio::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Events in `buf`.
    pending: u64,
    health: Arc<WriterHealth>,
    bus: AuditBus,
}

impl Output {
    /// Serialise one event into the batch and publish it on the bus.
    fn take(&mut self, ev: Arc<AccessEvent>) {
        // Serialising plain fields cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &*ev);
        self.buf.push(b'\n');
        self.pending += 1;
        self.bus.publish(ev);
    }

    /// Take everything queued right now (without waiting).
    fn take_queued(&mut self, rx: &mut mpsc::Receiver<Arc<AccessEvent>>) {
        while let Ok(ev) = rx.try_recv() {
            self.take(ev);
        }
    }

    /// Write the batch. On failure keep it for the next attempt (unless it grows without bound),
    /// mark the log failing (the gate fails closed) and reopen the file for the next flush.
    async fn flush(&mut self) {
        let result = async {
            self.file.write_all(&self.buf).await?;
            self.file.flush().await
        }
        .await;
        let health = &self.health;
        match result {
            Ok(()) => {
                health.written.fetch_add(self.pending, Ordering::Relaxed);
                if health.failed.swap(false, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), "audit log writable again");
                }
                self.buf.clear();
                self.pending = 0;
            }
            Err(err) => {
                if !health.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(path = %self.path.display(), error = %err, "cannot write the audit log; failing closed");
                }
                if self.buf.len() > 64 * BATCH_BYTES {
                    health.failures.fetch_add(self.pending, Ordering::Relaxed);
                    self.buf.clear();
                    self.pending = 0;
                }
                // The file may have been removed or replaced.
                if let Ok(f) = open_append(&self.path).await {
                    self.file = f;
                }
            }
        }
    }
}

async fn run(
    mut out: Output,
    mut rx: mpsc::Receiver<Arc<AccessEvent>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    // An event waits at most BATCH_WINDOW to be taken, then at most this long to be written.
    let mut tick = tokio::time::interval(FLUSH_INTERVAL - BATCH_WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Parked here only when the channel is empty: the next event wakes the task once.
            msg = rx.recv() => match msg {
                Some(ev) => {
                    out.take(ev);
                    // Not waiting on the channel now, so the events of the window wake nobody.
                    tokio::select! {
                        _ = tokio::time::sleep(BATCH_WINDOW) => {}
                        _ = &mut stop => {
                            stop_writer(&mut out, &mut rx).await;
                            return;
                        }
                    }
                    out.take_queued(&mut rx);
                    if out.buf.len() >= BATCH_BYTES {
                        out.flush().await;
                    }
                }
                None => {
                    out.flush().await;
                    return;
                }
            },
            _ = &mut stop => {
                stop_writer(&mut out, &mut rx).await;
                return;
            }
            _ = tick.tick() => {
                if !out.buf.is_empty() || out.health.is_failing() {
                    out.flush().await;
                }
            }
        }
    }
}

/// Refuse new events, write what is queued, flush.
async fn stop_writer(out: &mut Output, rx: &mut mpsc::Receiver<Arc<AccessEvent>>) {
    rx.close();
    while let Some(ev) = rx.recv().await {
        out.take(ev);
    }
    out.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;

    fn event(ray: &str) -> AccessEvent {
        AccessEvent::empty(EventKind::Access, chrono::Utc::now(), ray.into())
    }

    async fn lines(path: &Path, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn every_event_reaches_the_file_and_the_bus_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let bus = AuditBus::new(4096);
        let mut rx = bus.subscribe();
        let (sink, writer) = AuditWriter::start(&path, bus, 4096).await.unwrap();
        for i in 0..1000 {
            sink.record(event(&format!("r{i}"))).unwrap();
        }
        let written = lines(&path, 1000).await;
        assert_eq!(written.len(), 1000);
        for (i, line) in written.iter().enumerate() {
            let ev: AccessEvent = serde_json::from_str(line).unwrap();
            assert_eq!(ev.ray_id, format!("r{i}"));
            let crate::audit::BusMessage::Event(on_bus) = rx.recv().await.unwrap();
            assert_eq!(on_bus.ray_id, format!("r{i}"));
        }
        assert_eq!(sink.health().written.load(Ordering::Relaxed), 1000);
        writer.finish().await;
    }

    #[tokio::test]
    async fn a_full_queue_and_a_stopped_writer_refuse_but_still_publish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let bus = AuditBus::new(64);
        let mut rx = bus.subscribe();
        let (sink, writer) = AuditWriter::start(&path, bus, 2).await.unwrap();
        // No await in between: the writer cannot take the queue.
        sink.record(event("a")).unwrap();
        sink.record(event("b")).unwrap();
        assert!(!sink.is_available());
        assert!(sink.record(event("c")).is_err());
        let crate::audit::BusMessage::Event(first) = rx.recv().await.unwrap();
        assert_eq!(first.ray_id, "c", "a refused event is published at once");
        writer.finish().await;
        assert_eq!(
            lines(&path, 2).await.len(),
            2,
            "finish writes what was queued"
        );
        assert!(!sink.is_available());
        assert!(sink.record(event("d")).is_err());
        assert_eq!(sink.health().failures.load(Ordering::Relaxed), 2);
    }
}
