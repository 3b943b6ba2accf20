//! The JSONL audit writer: one task fed by a bounded channel, batching lines and flushing at
//! least every 100 ms. `AuditSink::record` fails (so the gate can fail closed) when the channel
//! is full or the last write failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{AccessEvent, AuditBus};

/// How often buffered lines are flushed at the latest.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
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

/// Where the gate sends events: the writer channel and the bus.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Arc<AccessEvent>>,
    bus: AuditBus,
    health: Arc<WriterHealth>,
}

impl AuditSink {
    /// Whether an event recorded now would be accepted (used before answering a request).
    pub fn is_available(&self) -> bool {
        !self.health.is_failing() && self.tx.capacity() > 0
    }

    /// Queue an event for the file and publish it on the bus.
    pub fn record(&self, event: AccessEvent) -> Result<(), AuditUnavailable> {
        let event = Arc::new(event);
        self.bus.publish(event.clone());
        if self.health.is_failing() {
            self.health.failures.fetch_add(1, Ordering::Relaxed);
            return Err(AuditUnavailable);
        }
        self.tx.try_send(event).map_err(|_| {
            self.health.failures.fetch_add(1, Ordering::Relaxed);
            AuditUnavailable
        })
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
        let task = tokio::spawn(run(file, path.to_path_buf(), rx, stop_rx, health.clone()));
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

async fn run(
    mut file: tokio::fs::File,
    path: PathBuf,
    mut rx: mpsc::Receiver<Arc<AccessEvent>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    health: Arc<WriterHealth>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut pending: u64 = 0;
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(ev) => {
                    // Serialising plain fields cannot fail.
                    let _ = serde_json::to_writer(&mut buf, &*ev);
                    buf.push(b'\n');
                    pending += 1;
                    // Drain what is already queued without waiting, then flush if the batch is big.
                    while buf.len() < BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(ev) => {
                                let _ = serde_json::to_writer(&mut buf, &*ev);
                                buf.push(b'\n');
                                pending += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    if buf.len() >= BATCH_BYTES {
                        flush(&mut file, &path, &mut buf, &mut pending, &health).await;
                    }
                }
                None => {
                    flush(&mut file, &path, &mut buf, &mut pending, &health).await;
                    return;
                }
            },
            _ = &mut stop => {
                rx.close();
                while let Some(ev) = rx.recv().await {
                    let _ = serde_json::to_writer(&mut buf, &*ev);
                    buf.push(b'\n');
                    pending += 1;
                }
                flush(&mut file, &path, &mut buf, &mut pending, &health).await;
                return;
            }
            _ = tick.tick() => {
                if !buf.is_empty() || health.is_failing() {
                    flush(&mut file, &path, &mut buf, &mut pending, &health).await;
                }
            }
        }
    }
}

async fn flush(
    file: &mut tokio::fs::File,
    path: &Path,
    buf: &mut Vec<u8>,
    pending: &mut u64,
    health: &WriterHealth,
) {
    let result = async {
        file.write_all(buf).await?;
        file.flush().await
    }
    .await;
    match result {
        Ok(()) => {
            health.written.fetch_add(*pending, Ordering::Relaxed);
            if health.failed.swap(false, Ordering::Relaxed) {
                tracing::warn!(path = %path.display(), "audit log writable again");
            }
            buf.clear();
            *pending = 0;
        }
        Err(err) => {
            if !health.failed.swap(true, Ordering::Relaxed) {
                tracing::error!(path = %path.display(), error = %err, "cannot write the audit log; failing closed");
            }
            // Keep the batch for the next attempt unless it grows without bound.
            if buf.len() > 64 * BATCH_BYTES {
                health.failures.fetch_add(*pending, Ordering::Relaxed);
                buf.clear();
                *pending = 0;
            }
            // The file may have been removed or replaced; try to reopen for the next flush.
            if let Ok(f) = open_append(path).await {
                *file = f;
            }
        }
    }
}

/// Append one event to a JSONL audit log from outside the gate (CLI admin actions). One
/// `write` per line with `O_APPEND`, so lines never interleave with the gate's writer.
pub fn append_event(path: &Path, event: &AccessEvent) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?
        .write_all(format!("{}\n", event.to_json_line()).as_bytes())
}
