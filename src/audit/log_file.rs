//! The audit log file itself: opened for append (mode 0600); a partial last line (left by a
//! crash in the middle of a write, or by another program) is moved to a side file before the
//! first append, so a new event is never glued to it; every append leaves only complete lines
//! (a partial write is cut back before the error is reported); and the checks that notice the
//! path no longer names the open file (rotated, deleted or replaced).

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How much of the file is read at a time when looking for the last newline.
const SCAN_CHUNK: u64 = 64 * 1024;

/// An open audit log, positioned for appends.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    /// (device, inode) of the open file, to compare with what the path names now.
    id: (u64, u64),
    /// Where a failed append began when cutting its partial bytes away failed too: cut again
    /// before the next append, so it cannot be glued to them.
    uncut: Option<u64>,
}

/// A partial last line found on open and moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The side file next to the log that now holds the bytes.
    pub side_file: PathBuf,
    pub bytes: u64,
}

/// What the path names now, compared with the open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// The open file is still the one at the path.
    Same,
    /// The path names another file or nothing (renamed, deleted or replaced).
    Moved,
}

impl LogFile {
    /// Open `path` for appending (creating it, mode 0600, and its directory), moving a partial
    /// last line to a side file first.
    pub fn open(
        path: &Path,
        now: chrono::DateTime<chrono::Utc>,
    ) -> io::Result<(LogFile, Option<Quarantined>)> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let meta = file.metadata()?;
        // A device or pipe (`/dev/stdout`) has no last line to look at.
        let quarantined = match meta.is_file() {
            true => quarantine_partial_tail(&file, meta.len(), path, now)?,
            false => None,
        };
        let log = LogFile {
            file,
            id: (meta.dev(), meta.ino()),
            uncut: None,
        };
        Ok((log, quarantined))
    }

    /// Append complete lines. On failure the bytes of this call that did reach the file are cut
    /// away again, so the file still ends with a complete line and `buf` can be retried whole.
    pub fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(start) = self.uncut {
            self.file.set_len(start)?;
            self.uncut = None;
        }
        let mut written = 0;
        while written < buf.len() {
            match self.file.write(&buf[written..]) {
                Ok(0) => {
                    self.cut_back(written);
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.cut_back(written);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Flush the file's data to the device (`fdatasync`).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Whether the open file has been deleted (no name left): what was just written to it is
    /// gone with it.
    pub fn is_unlinked(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// Whether `path` still names the open file.
    pub fn state(&self, path: &Path) -> PathState {
        match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => PathState::Same,
            _ => PathState::Moved,
        }
    }

    /// Remove the `written` bytes a failed append left at the end. With `O_APPEND` the offset
    /// after a write is the end of what it wrote, so the append began at `offset - written`.
    /// (Another process appending between two parts of one failed append would lose its line
    /// here; partial writes only happen when the disk or a limit is full, when its write fails too.)
    fn cut_back(&mut self, written: usize) {
        if written == 0 {
            return;
        }
        let Ok(end) = self.file.stream_position() else {
            return;
        };
        let start = end.saturating_sub(written as u64);
        if self.file.set_len(start).is_err() {
            self.uncut = Some(start);
        }
    }
}

/// The side file for a partial last line of `path`: `<name>.partial-<UTC time>` beside it.
pub fn side_file_path(path: &Path, now: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit.jsonl".into());
    path.with_file_name(format!(
        "{name}.partial-{}",
        now.format("%Y%m%dT%H%M%S%.3fZ")
    ))
}

/// If the file does not end with a newline, copy everything after its last newline to a side
/// file, then cut the file back to that newline.
fn quarantine_partial_tail(
    log: &File,
    len: u64,
    path: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> io::Result<Option<Quarantined>> {
    if len == 0 {
        return Ok(None);
    }
    let file = &File::open(path)?;
    if last_byte(file, len)? == b'\n' {
        return Ok(None);
    }
    let keep = end_of_last_line(file, len)?;
    let side_file = side_file_path(path, now);
    let mut side = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&side_file)?;
    let mut at = keep;
    let mut chunk = vec![0; SCAN_CHUNK as usize];
    while at < len {
        let n = (len - at).min(SCAN_CHUNK) as usize;
        file.read_exact_at(&mut chunk[..n], at)?;
        side.write_all(&chunk[..n])?;
        at += n as u64;
    }
    side.sync_all()?;
    log.set_len(keep)?;
    Ok(Some(Quarantined {
        side_file,
        bytes: len - keep,
    }))
}

fn last_byte(file: &File, len: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, len - 1)?;
    Ok(b[0])
}

/// The offset just after the last newline (0 when there is none).
fn end_of_last_line(file: &File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0; SCAN_CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-03T08:00:00.123Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn partial_last_line_is_moved_to_a_side_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"event\":\"acc").unwrap();
        let (mut log, q) = LogFile::open(&path, now()).unwrap();
        let q = q.expect("the partial line is quarantined");
        assert_eq!(q.bytes, 13);
        assert_eq!(
            q.side_file,
            dir.path().join("audit.jsonl.partial-20261203T080000.123Z")
        );
        assert_eq!(std::fs::read(&q.side_file).unwrap(), b"{\"event\":\"acc");
        log.append(b"{\"c\":3}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
    }

    #[test]
    fn a_file_of_one_partial_line_longer_than_a_scan_chunk_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let junk = vec![b'x'; 200_000];
        std::fs::write(&path, &junk).unwrap();
        let (_log, q) = LogFile::open(&path, now()).unwrap();
        let q = q.unwrap();
        assert_eq!(q.bytes, 200_000);
        assert_eq!(std::fs::read(&q.side_file).unwrap(), junk);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn complete_and_empty_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        assert_eq!(LogFile::open(&path, now()).unwrap().1, None);
        std::fs::write(&path, b"{\"a\":1}\n").unwrap();
        assert_eq!(LogFile::open(&path, now()).unwrap().1, None);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn rename_and_delete_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, _) = LogFile::open(&path, now()).unwrap();
        assert_eq!(log.state(&path), PathState::Same);
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        assert_eq!(log.state(&path), PathState::Moved);
        assert!(!log.is_unlinked());
        std::fs::remove_file(dir.path().join("audit.jsonl.1")).unwrap();
        assert!(log.is_unlinked());
    }

    #[test]
    fn a_device_is_appended_to_as_it_is() {
        let (mut log, q) = LogFile::open(Path::new("/dev/null"), now()).unwrap();
        assert_eq!(q, None);
        log.append(b"{}\n").unwrap();
    }

    #[test]
    fn a_directory_in_place_of_the_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::create_dir(&path).unwrap();
        assert!(LogFile::open(&path, now()).is_err());
    }
}
