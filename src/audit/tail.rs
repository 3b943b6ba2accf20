//! Follow a JSONL audit log written by another process (`botgate console --log FILE`): a
//! filesystem watcher (notify) wakes the reader, a poll interval is the fallback, and a saved
//! offset says where to continue. Survives rotation (the path now names another file: finish the
//! old one, reopen the new one from 0) and truncation (size < offset: restart at 0). A partial
//! last line waits for its newline; a corrupt line is reported and skipped, never fatal.
//!
//! The reader is a plain thread (notify has no tokio support); `follow_channel` bridges it into
//! tokio with `blocking_send`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::Watcher;

use super::AccessEvent;

/// Where to start reading a file that already exists when the tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    /// The last N bytes (from the first whole line in them): recent history without reading
    /// a huge file.
    LastBytes(u64),
    /// The first line created at or after this time, found by binary search over the file
    /// (an audit log is written in time order), so a day's history costs no scan of the days
    /// before.
    Since(DateTime<Utc>),
}

/// How to follow.
#[derive(Debug, Clone, Copy)]
pub struct TailOptions {
    pub start: StartAt,
    /// Checked at least this often even when the watcher is silent (or unavailable).
    pub poll_interval: Duration,
    /// A line longer than this is reported as corrupt and skipped (bounded memory).
    pub max_line_bytes: usize,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            start: StartAt::LastBytes(4 * 1024 * 1024),
            poll_interval: Duration::from_millis(250),
            max_line_bytes: 1024 * 1024,
        }
    }
}

/// What the reader reports.
#[derive(Debug, Clone)]
pub enum TailItem {
    Event(Arc<AccessEvent>),
    /// Line `line` (1-based, in the current file) is not an audit event. The text is not
    /// repeated: it may hold anything.
    Corrupt {
        line: u64,
        error: String,
    },
    /// The reader started over on a new or shortened file.
    Reopened(ReopenReason),
    /// The file cannot be read right now (the reader keeps trying).
    Unreadable(String),
}

/// Why the reader started over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReopenReason {
    /// The path names a different file now (log rotation).
    Rotated,
    /// The file got shorter than what was already read.
    Truncated,
}

/// Counters readable while the tail runs.
#[derive(Debug, Default)]
pub struct TailStats {
    pub events: AtomicU64,
    pub corrupt: AtomicU64,
    pub reopened: AtomicU64,
    /// Bytes of the current file consumed so far.
    pub offset: AtomicU64,
}

/// A running tail; dropping it stops the reader within one poll interval.
#[derive(Debug)]
pub struct TailHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<TailStats>,
}

impl TailHandle {
    /// Stop and wait for the reader thread (blocks up to one poll interval).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TailHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Follow `path`, calling `sink` with each item on the reader thread; the reader stops when
/// `sink` returns false or the handle is dropped. The file need not exist yet.
pub fn follow<F>(path: &Path, opts: TailOptions, sink: F) -> io::Result<TailHandle>
where
    F: FnMut(TailItem) -> bool + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(TailStats::default());
    let reader = Reader::new(path.to_path_buf(), opts, stats.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("audit-tail".into())
        .spawn(move || reader.run(sink))?;
    Ok(TailHandle {
        stop,
        thread: Some(thread),
        stats,
    })
}

/// `follow` into a tokio channel of `capacity` items (the reader waits when it is full).
pub fn follow_channel(
    path: &Path,
    opts: TailOptions,
    capacity: usize,
) -> io::Result<(TailHandle, tokio::sync::mpsc::Receiver<TailItem>)> {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let handle = follow(path, opts, move |item| tx.blocking_send(item).is_ok())?;
    Ok((handle, rx))
}

/// The identity of a file, to notice that the path now names another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

fn file_id(m: &std::fs::Metadata) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId(m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

struct Open {
    file: File,
    id: Option<FileId>,
}

struct Reader {
    path: PathBuf,
    opts: TailOptions,
    stats: Arc<TailStats>,
    stop: Arc<AtomicBool>,
    open: Option<Open>,
    offset: u64,
    line_no: u64,
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line, or the first partial line after a mid-file start.
    discarding: bool,
    first_open: bool,
    last_unreadable: Option<String>,
}

impl Reader {
    fn new(path: PathBuf, opts: TailOptions, stats: Arc<TailStats>, stop: Arc<AtomicBool>) -> Self {
        Self {
            // Decided now, not on the reader thread: a file created after `follow` returns is
            // new, and is read from its start.
            first_open: path.exists(),
            path,
            opts,
            stats,
            stop,
            open: None,
            offset: 0,
            line_no: 0,
            partial: Vec::new(),
            discarding: false,
            last_unreadable: None,
        }
    }

    fn run<F: FnMut(TailItem) -> bool>(mut self, mut sink: F) {
        let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
        // Watch the directory, not the file: rotation replaces the file. Without a watcher the
        // poll interval still finds every change.
        let _watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = wake_tx.send(());
        })
        .and_then(|mut w| {
            let dir = self
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            w.watch(dir, notify::RecursiveMode::NonRecursive).map(|_| w)
        })
        .ok();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if !self.step(&mut sink) {
                return;
            }
            let _ = wake_rx.recv_timeout(self.opts.poll_interval);
            while wake_rx.try_recv().is_ok() {}
        }
    }

    /// Read what is new and handle rotation / truncation. False when the sink is gone.
    fn step<F: FnMut(TailItem) -> bool>(&mut self, sink: &mut F) -> bool {
        for _ in 0..4 {
            if self.open.is_none() && !self.reopen(sink) {
                return true;
            }
            if !self.read_available(sink) {
                return false;
            }
            match std::fs::metadata(&self.path) {
                Ok(m) => {
                    let current = self.open.as_ref().and_then(|o| o.id);
                    if file_id(&m).is_some() && file_id(&m) != current {
                        // Rotated: finish the old file (the writer may have added a last batch
                        // before switching), then read the new one from 0.
                        if !self.read_available(sink) {
                            return false;
                        }
                        self.reset();
                        self.open = None;
                        self.stats.reopened.fetch_add(1, Ordering::Relaxed);
                        if !sink(TailItem::Reopened(ReopenReason::Rotated)) {
                            return false;
                        }
                        continue;
                    }
                    if m.len() < self.offset {
                        self.reset();
                        if let Some(o) = &mut self.open
                            && o.file.seek(SeekFrom::Start(0)).is_err()
                        {
                            self.open = None;
                        }
                        self.stats.reopened.fetch_add(1, Ordering::Relaxed);
                        if !sink(TailItem::Reopened(ReopenReason::Truncated)) {
                            return false;
                        }
                        continue;
                    }
                    return true;
                }
                // Removed (rotation in progress): keep the old handle until a new file appears.
                Err(_) => return true,
            }
        }
        true
    }

    fn reset(&mut self) {
        self.offset = 0;
        self.line_no = 0;
        self.partial.clear();
        self.discarding = false;
        self.stats.offset.store(0, Ordering::Relaxed);
    }

    /// Open the path; false when it cannot be opened yet.
    fn reopen<F: FnMut(TailItem) -> bool>(&mut self, sink: &mut F) -> bool {
        let opened = File::open(&self.path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        let (mut file, meta) = match opened {
            Ok(x) => x,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    let msg = format!("cannot open {}: {e}", self.path.display());
                    if self.last_unreadable.as_ref() != Some(&msg) {
                        self.last_unreadable = Some(msg.clone());
                        sink(TailItem::Unreadable(msg));
                    }
                }
                return false;
            }
        };
        self.last_unreadable = None;
        self.reset();
        if std::mem::take(&mut self.first_open) {
            let len = meta.len();
            let start = match self.opts.start {
                StartAt::Beginning => 0,
                StartAt::End => len,
                StartAt::LastBytes(n) => len.saturating_sub(n),
                // Unreadable while searching: read it all rather than show nothing.
                StartAt::Since(t) => offset_since(&mut file, len, t).unwrap_or(0),
            };
            if start > 0 && file.seek(SeekFrom::Start(start)).is_ok() {
                self.offset = start;
                self.stats.offset.store(start, Ordering::Relaxed);
                // Starting mid-file: the first (partial) line is not a whole event (a line
                // found by time starts exactly there).
                self.discarding = matches!(self.opts.start, StartAt::LastBytes(_));
            } else if file.seek(SeekFrom::Start(0)).is_err() {
                return false;
            }
        }
        self.open = Some(Open {
            file,
            id: file_id(&meta),
        });
        true
    }

    /// Read to the current end of the open file. False when the sink is gone.
    fn read_available<F: FnMut(TailItem) -> bool>(&mut self, sink: &mut F) -> bool {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let Some(open) = &mut self.open else {
                return true;
            };
            let n = match open.file.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.open = None;
                    return sink(TailItem::Unreadable(format!(
                        "cannot read {}: {e}",
                        self.path.display()
                    )));
                }
            };
            self.offset += n as u64;
            self.stats.offset.store(self.offset, Ordering::Relaxed);
            if !self.consume(&buf[..n], sink) {
                return false;
            }
        }
    }

    /// Split `chunk` into lines, keeping an unfinished last line for later.
    fn consume<F: FnMut(TailItem) -> bool>(&mut self, mut chunk: &[u8], sink: &mut F) -> bool {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(nl);
            chunk = &rest[1..];
            if std::mem::take(&mut self.discarding) {
                self.partial.clear();
                continue;
            }
            let line = if self.partial.is_empty() {
                head
            } else {
                self.partial.extend_from_slice(head);
                &self.partial[..]
            };
            self.line_no += 1;
            let item = parse_line(line, self.line_no);
            self.partial.clear();
            if let Some(item) = item {
                match &item {
                    TailItem::Event(_) => self.stats.events.fetch_add(1, Ordering::Relaxed),
                    _ => self.stats.corrupt.fetch_add(1, Ordering::Relaxed),
                };
                if !sink(item) {
                    return false;
                }
            }
        }
        if !self.discarding {
            self.partial.extend_from_slice(chunk);
            if self.partial.len() > self.opts.max_line_bytes {
                self.partial.clear();
                self.discarding = true;
                self.line_no += 1;
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                let error = format!(
                    "line longer than {} bytes, skipped",
                    self.opts.max_line_bytes
                );
                return sink(TailItem::Corrupt {
                    line: self.line_no,
                    error,
                });
            }
        }
        true
    }
}

/// The offset of the first whole line of `file` (`len` bytes) whose event was created at or
/// after `since`; `len` when there is none. Binary search over byte positions: for a position
/// `p`, "the first event starting at or after `p` is older than `since`" holds up to some
/// position and not after it in a time-ordered log. Lines that are not events are stepped
/// over (and kept: they are reported as corrupt when read, like any other).
fn offset_since(file: &mut File, len: u64, since: DateTime<Utc>) -> io::Result<u64> {
    let (mut lo, mut hi) = (0u64, len);
    let mut found = len;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match first_event_from(file, mid)? {
            Some((_, created)) if created < since => lo = mid + 1,
            Some((start, _)) => {
                found = start;
                hi = mid;
            }
            // No event after `mid` (or too far to look): start no later than here.
            None => {
                found = found.min(line_start_from(file, mid)?.unwrap_or(len));
                hi = mid;
            }
        }
    }
    Ok(found)
}

/// Lines `first_event_from` reads past before giving up on finding an event.
const MAX_NON_EVENT_LINES: usize = 1000;

/// The first whole line starting at or after `pos` and the `created_at` of the first event
/// from there on. None when no whole event line follows.
fn first_event_from(file: &mut File, pos: u64) -> io::Result<Option<(u64, DateTime<Utc>)>> {
    #[derive(serde::Deserialize)]
    struct Stamp {
        created_at: DateTime<Utc>,
    }
    let Some(start) = line_start_from(file, pos)? else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(start))?;
    let mut reader = io::BufReader::with_capacity(64 * 1024, &mut *file);
    let mut line = Vec::new();
    for _ in 0..MAX_NON_EVENT_LINES {
        line.clear();
        io::BufRead::read_until(&mut reader, b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Ok(None);
        }
        if let Ok(stamp) = serde_json::from_slice::<Stamp>(&line) {
            return Ok(Some((start, stamp.created_at)));
        }
    }
    Ok(None)
}

/// The offset of the first line starting at or after `pos` (0, or right after a newline);
/// None when none does.
fn line_start_from(file: &mut File, pos: u64) -> io::Result<Option<u64>> {
    if pos == 0 {
        return Ok(Some(0));
    }
    file.seek(SeekFrom::Start(pos - 1))?;
    let mut reader = io::BufReader::with_capacity(64 * 1024, &mut *file);
    let mut skipped = Vec::new();
    let n = io::BufRead::read_until(&mut reader, b'\n', &mut skipped)?;
    Ok((skipped.last() == Some(&b'\n')).then_some(pos - 1 + n as u64))
}

/// One line → an item; blank lines are nothing.
pub fn parse_line(line: &[u8], line_no: u64) -> Option<TailItem> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match serde_json::from_slice::<AccessEvent>(line) {
        Ok(ev) => TailItem::Event(Arc::new(ev)),
        Err(e) => {
            // Describe the problem without echoing the line's content.
            let what = match e.classify() {
                serde_json::error::Category::Syntax => "not valid JSON",
                serde_json::error::Category::Eof => "truncated JSON",
                serde_json::error::Category::Data => "JSON but not an audit event",
                serde_json::error::Category::Io => "unreadable",
            };
            TailItem::Corrupt {
                line: line_no,
                error: format!("{what} (column {})", e.column()),
            }
        }
    })
}
