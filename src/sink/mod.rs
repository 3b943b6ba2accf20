//! SIEM push: each `[[sink]]` POSTs batches of audit events (webhook JSON array, NDJSON,
//! Splunk HEC, Elasticsearch `_bulk`, Loki) to an HTTP endpoint, with an auth header, gzip,
//! retry with exponential backoff, and a disk spool in the state dir
//! (`spool/<sink name>/`, see `spool`).
//!
//! Two tasks per sink. The *spooler* drains the audit bus into the spool (so a slow or dead
//! endpoint never makes the bus drop events for this sink). The *sender* reads batches from the
//! committed position, POSTs them, retries until a 2xx, and only then commits the position.
//! So nothing is lost while the endpoint is down, and a restart resends nothing that was
//! acknowledged. Remaining duplicate window: a crash after the endpoint answered 2xx but before
//! the new position reached the disk (one fsync) resends that one batch; `elasticsearch_bulk`
//! uses the ray id as `_id`, so even that cannot duplicate there. A batch the endpoint rejects
//! with a permanent 4xx five times is moved to `dead-letter.ndjson` so it cannot block the rest.

pub mod config;
mod format;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

pub use config::{SinkConfig, SinkConfigError, SinkFormat};

use crate::audit::BusMessage;
use spool::{SpoolReader, SpoolWriter};

/// Attempts before a batch refused with a permanent 4xx is dead-lettered.
const PERMANENT_REJECTIONS: u32 = 5;
/// Events the spooler takes from the bus per disk write at most.
const SPOOL_CHUNK: usize = 1024;

/// A sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Config(#[from] SinkConfigError),
    #[error("sink {name:?}: cannot open the spool {dir}: {source}")]
    Spool {
        name: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("sink {name:?}: cannot build the HTTP client: {message}")]
    Client { name: String, message: String },
}

/// Counters for `/metrics` and the console.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events acknowledged by the endpoint.
    pub sent: AtomicU64,
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Failed POST attempts (network error, timeout or non-2xx).
    pub failed_attempts: AtomicU64,
    /// Events never spooled: the bus overtook the spooler, or the spool was full.
    pub dropped: AtomicU64,
    /// Events moved to `dead-letter.ndjson` after permanent rejections.
    pub dead_lettered: AtomicU64,
    /// Bytes in spool segment files (delivered bytes leave when their segment is deleted).
    pub spool_bytes: Arc<AtomicU64>,
    /// The last delivery error, for humans.
    pub last_error: Mutex<Option<String>>,
}

impl SinkStats {
    fn fail(&self, message: String) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(message);
        }
    }
}

/// A running sink. Dropping it stops the sink like `shutdown` (without waiting).
#[derive(Debug)]
pub struct SinkHandle {
    pub name: String,
    pub stats: Arc<SinkStats>,
    shutdown: watch::Sender<bool>,
    spooler: JoinHandle<()>,
    sender: JoinHandle<()>,
}

impl SinkHandle {
    /// Stop: the spooler writes what the bus already holds for it, the sender finishes the
    /// request in flight (never cut mid-request) and stops; the spool keeps the rest.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.spooler.await;
        let _ = self.sender.await;
    }
}

/// Namespace for starting sinks.
pub struct Sink;

impl Sink {
    /// Start one sink fed by `rx` (subscribe it before events you want delivered are
    /// published). Must be called inside a tokio runtime.
    pub fn start(
        cfg: SinkConfig,
        state_dir: &Path,
        rx: broadcast::Receiver<BusMessage>,
    ) -> Result<SinkHandle, SinkError> {
        cfg.validate().map_err(|message| SinkConfigError {
            which: format!("{:?}", cfg.name),
            message,
        })?;
        let auth = cfg.resolve_auth()?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("botgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::Client {
                name: cfg.name.clone(),
                message: e.to_string(),
            })?;
        let dir = state_dir.join("spool").join(&cfg.name);
        let stats = Arc::new(SinkStats::default());
        let spool_err = |source| SinkError::Spool {
            name: cfg.name.clone(),
            dir: dir.clone(),
            source,
        };
        let reader = SpoolReader::open(&dir, stats.spool_bytes.clone()).map_err(spool_err)?;
        let writer = SpoolWriter::open(&dir, stats.spool_bytes.clone()).map_err(spool_err)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let notify = Arc::new(Notify::new());
        let cfg = Arc::new(cfg);
        let spooler = tokio::spawn(spool_events(
            cfg.clone(),
            rx,
            writer,
            notify.clone(),
            stats.clone(),
            shutdown_rx.clone(),
        ));
        let sender = tokio::spawn(
            Sender {
                cfg: cfg.clone(),
                client,
                auth,
                dir,
                stats: stats.clone(),
                notify,
                shutdown: shutdown_rx,
            }
            .run(reader),
        );
        Ok(SinkHandle {
            name: cfg.name.clone(),
            stats,
            shutdown,
            spooler,
            sender,
        })
    }

    /// Start every configured sink on `bus`.
    pub fn start_all(
        cfgs: Vec<SinkConfig>,
        state_dir: &Path,
        bus: &crate::audit::AuditBus,
    ) -> Result<Vec<SinkHandle>, SinkError> {
        cfgs.into_iter()
            .map(|c| Sink::start(c, state_dir, bus.subscribe()))
            .collect()
    }
}

/// Drain the bus into the spool until the bus closes or shutdown.
async fn spool_events(
    cfg: Arc<SinkConfig>,
    mut rx: broadcast::Receiver<BusMessage>,
    writer: SpoolWriter,
    notify: Arc<Notify>,
    stats: Arc<SinkStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_bytes = cfg.max_spool_mb.saturating_mul(1024 * 1024);
    let mut writer = Some(writer);
    let mut full_warned = false;
    loop {
        let mut lines = Vec::new();
        let mut closing = false;
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(BusMessage::Event(ev)) => {
                    if cfg.wants(ev.event) {
                        lines.push(ev.to_json_line());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(sink = %cfg.name, missed = n, "sink spooler fell behind the audit bus; events lost for this sink");
                }
                Err(broadcast::error::RecvError::Closed) => closing = true,
            },
            _ = shutdown.changed() => closing = true,
        }
        // Take what is already queued too: one disk write per chunk, not per event (and
        // everything when closing, so that a shutdown loses nothing the bus delivered).
        while closing || lines.len() < SPOOL_CHUNK {
            match rx.try_recv() {
                Ok(BusMessage::Event(ev)) if cfg.wants(ev.event) => lines.push(ev.to_json_line()),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        if !lines.is_empty() {
            if stats.spool_bytes.load(Ordering::Relaxed) >= max_bytes {
                stats
                    .dropped
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                if !full_warned {
                    tracing::error!(sink = %cfg.name, max_spool_mb = cfg.max_spool_mb, "sink spool is full; dropping new events until the endpoint catches up");
                    full_warned = true;
                }
            } else if let Some(mut w) = writer.take() {
                full_warned = false;
                let n = lines.len() as u64;
                let Some((w, result)) = blocking(move || {
                    let r = w.append(&lines);
                    (w, r)
                })
                .await
                else {
                    return;
                };
                writer = Some(w);
                match result {
                    Ok(()) => notify.notify_one(),
                    Err(e) => {
                        stats.dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(sink = %cfg.name, error = %e, "cannot write the sink spool; events lost for this sink");
                    }
                }
            }
        }
        if closing {
            notify.notify_one();
            return;
        }
    }
}

struct Sender {
    cfg: Arc<SinkConfig>,
    client: reqwest::Client,
    auth: Option<String>,
    dir: PathBuf,
    stats: Arc<SinkStats>,
    notify: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl Sender {
    async fn run(mut self, reader: SpoolReader) {
        let mut reader = Some(reader);
        // When the oldest unsent event was first seen: a partial batch waits for the flush interval.
        let mut pending_since: Option<tokio::time::Instant> = None;
        let flush = Duration::from_millis(self.cfg.flush_interval_ms);
        loop {
            if self.stopping() {
                return;
            }
            let Some(r) = reader.take() else { return };
            let max = self.cfg.batch_size;
            let Some((r, batch)) = blocking(move || {
                let mut r = r;
                let b = r.read_batch(max);
                (r, b)
            })
            .await
            else {
                return;
            };
            reader = Some(r);
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.stats.fail(format!("cannot read the spool: {e}"));
                    self.pause(Duration::from_millis(self.cfg.retry_max_ms))
                        .await;
                    continue;
                }
            };
            if batch.lines.is_empty() {
                pending_since = None;
                self.idle(Duration::from_secs(1)).await;
                continue;
            }
            let since = *pending_since.get_or_insert_with(tokio::time::Instant::now);
            if batch.lines.len() < self.cfg.batch_size && since.elapsed() < flush {
                self.idle(flush.saturating_sub(since.elapsed())).await;
                continue;
            }
            if !self.deliver(&batch.lines).await {
                return; // shut down while retrying: the batch stays in the spool
            }
            let Some(r) = reader.take() else { return };
            let Some((r, committed)) = blocking(move || {
                let mut r = r;
                let c = r.commit(batch.end);
                (r, c)
            })
            .await
            else {
                return;
            };
            reader = Some(r);
            if let Err(e) = committed {
                // The next run would resend this batch: say so loudly.
                self.stats
                    .fail(format!("cannot record delivery in the spool: {e}"));
                tracing::error!(sink = %self.cfg.name, error = %e, "cannot commit the sink spool position");
            }
            pending_since = None;
        }
    }

    /// POST until acknowledged (true) or shut down during a backoff (false).
    async fn deliver(&mut self, lines: &[String]) -> bool {
        let body = match format::encode(
            self.cfg.format,
            lines,
            self.cfg.index.as_deref(),
            self.cfg.gzip,
        ) {
            Ok(b) => b,
            Err(e) => {
                self.stats.fail(format!("cannot encode a batch: {e}"));
                return self.dead_letter(lines).await;
            }
        };
        let mut backoff = Duration::from_millis(self.cfg.retry_initial_ms);
        let mut rejections = 0;
        loop {
            let mut req = self
                .client
                .post(&self.cfg.url)
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes.clone());
            if self.cfg.gzip {
                req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            if let Some(a) = &self.auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    self.stats
                        .sent
                        .fetch_add((lines.len() - body.skipped) as u64, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Ok(resp) => {
                    let status = resp.status();
                    self.stats
                        .fail(format!("{} answered {status}", self.cfg.url));
                    let permanent = status.is_client_error()
                        && !matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429);
                    if permanent {
                        rejections += 1;
                        if rejections >= PERMANENT_REJECTIONS {
                            tracing::error!(sink = %self.cfg.name, %status, "endpoint keeps rejecting a batch; moving it to dead-letter.ndjson");
                            return self.dead_letter(lines).await;
                        }
                    }
                }
                // Never print the request: it carries the auth header.
                Err(e) => self
                    .stats
                    .fail(format!("{}: {}", self.cfg.url, error_chain(&e))),
            }
            if !self.pause(backoff).await {
                return false;
            }
            backoff = (backoff * 2).min(Duration::from_millis(self.cfg.retry_max_ms));
        }
    }

    async fn dead_letter(&self, lines: &[String]) -> bool {
        let path = self.dir.join("dead-letter.ndjson");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let written = blocking(move || {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(text.as_bytes())
        })
        .await;
        match written.unwrap_or_else(|| Err(std::io::Error::other("runtime shutting down"))) {
            Ok(()) => self
                .stats
                .dead_lettered
                .fetch_add(lines.len() as u64, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(sink = %self.cfg.name, error = %e, "cannot write dead-letter.ndjson; dropping the batch");
                self.stats
                    .dropped
                    .fetch_add(lines.len() as u64, Ordering::Relaxed)
            }
        };
        true
    }

    /// Shutdown was asked for, or the handle was dropped.
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    /// Sleep unless shut down first; false when shut down.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = self.shutdown.changed() => false,
        }
    }

    /// Wait for new spool data, a timeout (polling fallback) or shutdown.
    async fn idle(&mut self, d: Duration) {
        if self.stopping() {
            return;
        }
        tokio::select! {
            _ = self.notify.notified() => {}
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.changed() => {}
        }
    }
}

/// Run blocking file work off the async workers; `None` if the runtime is shutting down.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
