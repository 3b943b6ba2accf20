//! Replacing a small file so no reader ever sees half of it: written to a temporary file beside
//! it (mode 0600 on unix) and renamed over it, the directory created when missing.

use std::io::Write as _;
use std::path::Path;

/// Replace `path` with `bytes`.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
