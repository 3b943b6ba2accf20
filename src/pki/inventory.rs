//! The certificate inventory's file side: scan directories (from `[inventory] watch`) for
//! certificate files (*.crt, *.pem, *.cer, *.der) and read each one. A file that cannot be read
//! or holds no certificate is an error entry, counted and reported, never silently skipped.

use std::path::{Path, PathBuf};

use super::PkiError;
use super::inspect::{CertInfo, read_certificate_file};

/// File extensions treated as certificate files (case-insensitive).
pub const CERT_EXTENSIONS: &[&str] = &["crt", "pem", "cer", "der"];
/// How deep to descend below each watched directory.
const MAX_DEPTH: usize = 8;

/// One scanned file: its certificates, or why it could not be read.
#[derive(Debug)]
pub struct ScannedFile {
    pub path: PathBuf,
    pub result: Result<Vec<CertInfo>, PkiError>,
}

/// The outcome of scanning watched directories.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Every candidate file, in path order.
    pub files: Vec<ScannedFile>,
    /// Watched directories that could not be listed (missing, permission denied …).
    pub dir_errors: Vec<(PathBuf, std::io::Error)>,
}

impl ScanResult {
    /// Every (file, certificate) found.
    pub fn certificates(&self) -> impl Iterator<Item = (&Path, &CertInfo)> {
        self.files
            .iter()
            .filter_map(|f| {
                f.result
                    .as_ref()
                    .ok()
                    .map(|certs| (f.path.as_path(), certs))
            })
            .flat_map(|(p, certs)| certs.iter().map(move |c| (p, c)))
    }

    /// Files that could not be read as certificates.
    pub fn errors(&self) -> impl Iterator<Item = (&Path, &PkiError)> {
        self.files
            .iter()
            .filter_map(|f| f.result.as_ref().err().map(|e| (f.path.as_path(), e)))
    }

    /// Unreadable files plus unlistable directories.
    pub fn error_count(&self) -> usize {
        self.errors().count() + self.dir_errors.len()
    }
}

/// Scan `dirs` recursively (symlinked directories are not followed) for certificate files.
pub fn scan_dirs(dirs: &[PathBuf]) -> ScanResult {
    let mut result = ScanResult::default();
    for dir in dirs {
        let mut paths = Vec::new();
        if let Err(e) = collect(dir, 0, &mut paths) {
            result.dir_errors.push((dir.clone(), e));
        }
        paths.sort();
        for path in paths {
            let certs = read_certificate_file(&path);
            result.files.push(ScannedFile {
                path,
                result: certs,
            });
        }
    }
    result
}

/// Whether a path has a certificate file extension.
pub fn is_cert_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| CERT_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if depth < MAX_DEPTH {
                // A subdirectory that cannot be listed is reported as a file-level error.
                if let Err(e) = collect(&path, depth + 1, out) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot list watched subdirectory");
                    out.push(path);
                }
            }
        } else if is_cert_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Add certificates (path, PEM, parsed) to the store's inventory as watched; known ones (by
/// fingerprint) keep their row and get their path refreshed. The path is `None` for a
/// certificate adopted from the gate's sightings. Returns how many were new.
pub fn record_certs(
    store: &crate::store::Store,
    found: &[(Option<String>, String, &super::CertInfo)],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, crate::store::StoreError> {
    use crate::store::pki::{CertSource, NewCert};
    let cas = crate::store::wait(store.list_cas())?;
    let rows: Vec<NewCert<'_>> = found
        .iter()
        .map(|(path, pem, c)| NewCert {
            serial: &c.serial_hex,
            common_name: c.common_name.as_deref().unwrap_or(""),
            issuer: &c.issuer,
            ca_id: cas.iter().find(|ca| ca.subject == c.issuer).map(|ca| ca.id),
            fingerprint_sha256: &c.fingerprint_sha256,
            not_before: c.not_before,
            not_after: c.not_after,
            key_type: &c.key_type,
            cert_pem: pem,
            source: CertSource::Watched,
            path: path.as_deref(),
            created_at: now,
        })
        .collect();
    crate::store::wait(store.upsert_watched_certs(&rows))
}

/// Scan `dirs` and record what is found; the scan (with per-file errors) is returned.
pub fn sync_dirs(
    store: &crate::store::Store,
    dirs: &[PathBuf],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ScanResult, crate::store::StoreError> {
    let scan = scan_dirs(dirs);
    let found: Vec<(Option<String>, String, &super::CertInfo)> = scan
        .certificates()
        .map(|(p, c)| (Some(p.display().to_string()), c.to_pem(), c))
        .collect();
    record_certs(store, &found, now)?;
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_reports_errors_per_file_and_ignores_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("good.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("good.der"), cert.der().as_ref()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("sub/cut.pem"), &cert.pem()[..200]).unwrap();
        std::fs::write(dir.path().join("garbage.cer"), [0xde, 0xad, 0xbe, 0xef]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let missing = dir.path().join("missing");
        let r = scan_dirs(&[dir.path().to_path_buf(), missing]);
        assert_eq!(r.files.len(), 5);
        assert_eq!(r.certificates().count(), 2);
        assert_eq!(r.errors().count(), 3);
        assert_eq!(r.dir_errors.len(), 1);
        assert_eq!(r.error_count(), 4);
        let messages: Vec<String> = r.errors().map(|(_, e)| e.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("this is a private key, not a certificate")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("truncated")),
            "{messages:?}"
        );
    }
}
