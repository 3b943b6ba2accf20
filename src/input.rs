//! Bounded reads of the files a user points botgate at (certificates, CSRs, CRLs, the policy
//! file, themes): never more than the file kind's limit is read, so `/dev/zero`, a FIFO or a
//! multi-gigabyte file by mistake is refused, naming the file and the limit, instead of
//! growing until the OOM killer ends the process. Streams (audit logs, `scan`) are read in
//! bounded pieces where they are parsed and do not come through here.

use std::io::{self, Read};
use std::path::Path;

/// How much of one kind of file botgate reads at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// The kind of file, as the refusal names it ("certificate, key and CSR files").
    pub what: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// Certificates, CA bundles, keys and CSRs (PEM or DER), and the demo's credential files. The
/// whole Mozilla root bundle is ~0.2 MiB.
pub const PKI_FILE: Limit = Limit {
    bytes: 4 * MIB,
    what: "certificate, key, CSR and credential files",
};
/// CRLs: one revoked certificate is ~40 bytes of DER, so this holds ~400,000 entries.
pub const CRL_FILE: Limit = Limit {
    bytes: 16 * MIB,
    what: "CRL files",
};
/// The policy file (100,000 token selectors are ~6 MiB of TOML).
pub const POLICY_FILE: Limit = Limit {
    bytes: 16 * MIB,
    what: "policy files",
};
/// GeoIP databases (MaxMind DB or CSV); GeoLite2-City is ~60 MiB.
pub const GEO_DB: Limit = Limit {
    bytes: 512 * MIB,
    what: "GeoIP databases",
};
/// The console's settings files (`filters.toml`, `columns.toml`, `keys.toml`).
pub const CONSOLE_SETTINGS_FILE: Limit = Limit {
    bytes: 1024 * 1024,
    what: "console settings files",
};
/// OIDC key sets (`jwks_file`) and the gate's per-issuer state files.
pub const JWKS_FILE: Limit = Limit {
    bytes: 1024 * 1024,
    what: "key-set files",
};
/// Console theme files.
pub const THEME_FILE: Limit = Limit {
    bytes: MIB,
    what: "theme files",
};

/// Read at most `limit.bytes` of `path`; a longer file is an `io::ErrorKind::FileTooLarge`
/// error whose message names the limit (callers name the file, as for any read error).
pub fn read(path: &Path, limit: Limit) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    file.take(limit.bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.bytes {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// `read`, as UTF-8 text.
pub fn read_to_string(path: &Path, limit: Limit) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))
}

/// Whether `e` is `read`'s refusal of a file over its limit.
pub fn is_too_large(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::FileTooLarge
}

fn too_large(limit: Limit) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "larger than {} MiB, the limit for {} (is it the right file?)",
            limit.bytes / MIB,
            limit.what
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        bytes: 8,
        what: "test files",
    };

    #[test]
    fn reads_up_to_the_limit_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("at");
        std::fs::write(&at, b"12345678").unwrap();
        assert_eq!(read(&at, TINY).unwrap(), b"12345678");
        let over = dir.path().join("over");
        std::fs::write(&over, b"123456789").unwrap();
        let e = read(&over, TINY).unwrap_err();
        assert!(is_too_large(&e));
        assert!(e.to_string().contains("the limit for test files"), "{e}");
    }

    /// Issue 11 defect 8: `ca trust /dev/zero` read until the OOM killer came.
    #[test]
    fn an_endless_file_is_refused_after_the_limit() {
        let e = read(Path::new("/dev/zero"), PKI_FILE).unwrap_err();
        assert!(is_too_large(&e), "{e}");
        assert!(e.to_string().contains("4 MiB"), "{e}");
    }

    #[test]
    fn text_must_be_utf8_and_missing_files_keep_their_error_kind() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"\xff\xfe").unwrap();
        let e = read_to_string(&bin, TINY).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = read(&dir.path().join("missing"), TINY).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
