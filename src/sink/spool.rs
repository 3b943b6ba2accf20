//! The disk spool of one sink: append-only segment files of JSON lines
//! (`seg-00000000000000000001.ndjson`, …) and a `committed` file holding the position
//! (`segment offset`) up to which the endpoint acknowledged delivery.
//!
//! The writer appends to the newest segment and starts a new one past `SEGMENT_BYTES`; once a
//! newer segment exists an older one is never written again, which is what lets the reader
//! finish it and move on. The reader hands out batches of whole lines from the committed
//! position; `commit` (after a 2xx) persists the new position atomically (write, fsync, rename)
//! and deletes fully delivered segments. A restart resumes exactly at the committed position.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A segment is closed once it grows past this.
pub(crate) const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const COMMITTED: &str = "committed";

/// A position in the spool: segment number and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub seg: u64,
    pub offset: u64,
}

/// Lines read from the spool and the position just after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub lines: Vec<String>,
    pub end: Position,
}

fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("seg-{seg:020}.ndjson"))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut segs: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".ndjson")?
                .parse()
                .ok()
        })
        .collect();
    segs.sort_unstable();
    Ok(segs)
}

/// Total size of the segment files (what `max_spool_mb` limits).
pub(crate) fn spool_bytes(dir: &Path) -> std::io::Result<u64> {
    Ok(segments(dir)?
        .iter()
        .filter_map(|s| fs::metadata(seg_path(dir, *s)).ok())
        .map(|m| m.len())
        .sum())
}

/// The append side.
#[derive(Debug)]
pub(crate) struct SpoolWriter {
    dir: PathBuf,
    seg: u64,
    file: File,
    len: u64,
    /// Bytes in segment files, shared with the reader (which subtracts what it deletes).
    total: Arc<AtomicU64>,
}

impl SpoolWriter {
    /// Continue the newest segment (cutting a line a crash left half-written), or start one.
    pub(crate) fn open(dir: &Path, total: Arc<AtomicU64>) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let committed = read_committed(dir)?.map_or(1, |p| p.seg);
        let seg = segments(dir)?
            .last()
            .copied()
            .unwrap_or(committed)
            .max(committed);
        let path = seg_path(dir, seg);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let len = cut_partial_line(&mut file)?;
        total.store(spool_bytes(dir)?, Ordering::Relaxed);
        Ok(Self {
            dir: dir.to_path_buf(),
            seg,
            file,
            len,
            total,
        })
    }

    /// Append lines (each without its newline) and hand them to the OS. Not fsynced: a crash of
    /// the process loses nothing, a power cut may lose the last moments.
    pub(crate) fn append(&mut self, lines: &[String]) -> std::io::Result<()> {
        if self.len >= SEGMENT_BYTES {
            self.seg += 1;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, self.seg))?;
            self.len = 0;
        }
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.len += buf.len() as u64;
        self.total.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Truncate `file` after its last newline; returns the new length.
fn cut_partial_line(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let tail = len.min(1024 * 1024);
    file.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    file.take(tail).read_to_end(&mut buf)?;
    let keep = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => len - tail + i as u64 + 1,
        None if tail == len => 0,
        // A single line over 1 MiB cannot come from us; keep the file as it is.
        None => len,
    };
    if keep < len {
        tracing::warn!(
            dropped_bytes = len - keep,
            "spool: cut a half-written line left by a crash"
        );
        file.set_len(keep)?;
    }
    Ok(keep)
}

/// The delivery side.
#[derive(Debug)]
pub(crate) struct SpoolReader {
    dir: PathBuf,
    pos: Position,
    total: Arc<AtomicU64>,
}

impl SpoolReader {
    /// Resume at the committed position (or the oldest segment); deletes delivered segments.
    pub(crate) fn open(dir: &Path, total: Arc<AtomicU64>) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let segs = segments(dir)?;
        let pos = read_committed(dir)?.unwrap_or(Position {
            seg: segs.first().copied().unwrap_or(1),
            offset: 0,
        });
        let mut reader = Self {
            dir: dir.to_path_buf(),
            pos,
            total,
        };
        reader.delete_before(pos.seg)?;
        Ok(reader)
    }

    /// Up to `max` whole lines after the committed position (empty when there are none yet).
    pub(crate) fn read_batch(&mut self, max: usize) -> std::io::Result<Batch> {
        loop {
            // Look for a newer segment *before* reading: if one exists, this one is final.
            let newer = segments(&self.dir)?.into_iter().find(|s| *s > self.pos.seg);
            let batch = self.read_from(self.pos, max)?;
            match newer {
                Some(next) if batch.lines.is_empty() && batch.end == self.pos => {
                    // This segment is fully delivered: move on and forget it.
                    self.commit(Position {
                        seg: next,
                        offset: 0,
                    })?;
                }
                _ => return Ok(batch),
            }
        }
    }

    fn read_from(&self, pos: Position, max: usize) -> std::io::Result<Batch> {
        let mut file = match File::open(seg_path(&self.dir, pos.seg)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Batch {
                    lines: Vec::new(),
                    end: pos,
                });
            }
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(pos.offset))?;
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut offset = pos.offset;
        let mut buf = Vec::new();
        while lines.len() < max {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                break; // end of file, or a line the writer has not finished
            }
            offset += n as u64;
            buf.pop();
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        Ok(Batch {
            lines,
            end: Position {
                seg: pos.seg,
                offset,
            },
        })
    }

    /// Persist `end` as delivered (write + fsync a temp file, rename) and delete older segments.
    /// The position advances in memory even if persisting fails, so this process never resends
    /// (only a restart before the next successful commit would).
    pub(crate) fn commit(&mut self, end: Position) -> std::io::Result<()> {
        self.pos = end;
        let tmp = self.dir.join(format!("{COMMITTED}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{} {}", end.seg, end.offset)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, self.dir.join(COMMITTED))?;
        self.delete_before(end.seg)
    }

    fn delete_before(&mut self, seg: u64) -> std::io::Result<()> {
        for s in segments(&self.dir)?.into_iter().filter(|s| *s < seg) {
            let path = seg_path(&self.dir, s);
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path)?;
            let _ = self
                .total
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some(t.saturating_sub(len))
                });
        }
        Ok(())
    }
}

fn read_committed(dir: &Path) -> std::io::Result<Option<Position>> {
    let text = match fs::read_to_string(dir.join(COMMITTED)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seg)), Some(Ok(offset))) => Ok(Some(Position { seg, offset })),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is corrupt (expected \"SEGMENT OFFSET\")",
                dir.join(COMMITTED).display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(prefix: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{{\"n\":\"{prefix}{i}\"}}"))
            .collect()
    }

    fn open(dir: &Path) -> (SpoolWriter, SpoolReader, Arc<AtomicU64>) {
        let total = Arc::new(AtomicU64::new(0));
        let r = SpoolReader::open(dir, total.clone()).unwrap();
        let w = SpoolWriter::open(dir, total.clone()).unwrap();
        (w, r, total)
    }

    #[test]
    fn batches_resume_at_the_committed_position_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, _) = open(dir.path());
        w.append(&lines("a", 5)).unwrap();
        let b = r.read_batch(3).unwrap();
        assert_eq!(b.lines, lines("a", 5)[..3]);
        r.commit(b.end).unwrap();
        let unacknowledged = r.read_batch(10).unwrap();
        assert_eq!(unacknowledged.lines.len(), 2);
        drop((w, r)); // crash before that batch was acknowledged

        let (mut w, mut r, _) = open(dir.path());
        assert_eq!(
            r.read_batch(10).unwrap(),
            unacknowledged,
            "exactly the unacknowledged lines again"
        );
        w.append(&lines("b", 1)).unwrap();
        let b = r.read_batch(10).unwrap();
        assert_eq!(b.lines.len(), 3);
        r.commit(b.end).unwrap();
        assert!(r.read_batch(10).unwrap().lines.is_empty());
    }

    #[test]
    fn half_written_lines_are_neither_read_nor_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, _) = open(dir.path());
        w.append(&lines("a", 2)).unwrap();
        w.file.write_all(b"{\"n\":\"tor").unwrap(); // the process died mid-write
        assert_eq!(
            r.read_batch(10).unwrap().lines.len(),
            2,
            "the partial line is not handed out"
        );
        drop(w);
        let (mut w, mut r, _) = open(dir.path());
        w.append(&lines("b", 1)).unwrap();
        let got = r.read_batch(10).unwrap().lines;
        assert_eq!(got, [lines("a", 2), lines("b", 1)].concat());
    }

    #[test]
    fn rolls_segments_and_deletes_delivered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, total) = open(dir.path());
        let big = "x".repeat(1024 * 1024);
        for _ in 0..10 {
            w.append(std::slice::from_ref(&big)).unwrap();
        }
        w.append(&lines("tail", 1)).unwrap();
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
        assert!(total.load(Ordering::Relaxed) > 10 * 1024 * 1024);
        let mut seen = 0;
        loop {
            let b = r.read_batch(4).unwrap();
            if b.lines.is_empty() {
                break;
            }
            seen += b.lines.len();
            r.commit(b.end).unwrap();
        }
        assert_eq!(seen, 11);
        assert_eq!(
            segments(dir.path()).unwrap(),
            vec![2],
            "the delivered segment is gone"
        );
        assert_eq!(
            total.load(Ordering::Relaxed),
            spool_bytes(dir.path()).unwrap(),
            "the gauge follows deletions"
        );
    }

    #[test]
    fn corrupt_committed_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(COMMITTED), "garbage").unwrap();
        let e = SpoolReader::open(dir.path(), Arc::default()).unwrap_err();
        assert!(e.to_string().contains("committed is corrupt"));
    }
}
