//! The local PKI: a root + intermediate CA, client and server certificate issuance (from a CSR
//! or a generated key), CRLs, validation of external CAs to trust, and inspection of any PEM/DER
//! input for the certificate inventory. rcgen issues, x509-parser reads; private keys never leave
//! this module except as PEM for the store or a 0600 file. Knows nothing about policies.

pub mod ca;
pub mod crl;
mod der;
pub mod details;
pub mod inspect;
pub mod inventory;
pub mod issue;
mod keys;
mod pem;
pub mod trust;
pub mod verify;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

pub use ca::{CaInit, CaInitOptions, IssuingCa, init_ca, load_issuing_ca};
pub use crl::{CrlInfo, IssuedCrl, issue_crl, load_crl_file, parse_crl};
pub use inspect::{
    CertInfo, CsrInfo, Item, ItemKind, certificates, inspect, read_certificate_file,
};
pub use inventory::{ScanResult, scan_dirs};
pub use issue::{ClientCertRequest, IssuedCert, issue_client_cert, issue_server_cert};
pub use keys::KeyAlgorithm;
pub use trust::{TrustedChain, trust_ca, validate_for_trust};
pub use verify::{CertProblem, CertTrust, RevokedCerts, TrustMaterial};

/// Days before not-after at which a certificate counts as "expiring" (the one threshold for
/// every credential).
pub use crate::store::tokens::EXPIRING_WITHIN_DAYS;

/// PKI failures. Messages name the input (file or "CSR") and say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: the file is empty")]
    Empty { what: String },
    #[error("{what}: not PEM (no -----BEGIN line) and not DER either: {detail}")]
    NotPem { what: String, detail: String },
    #[error("{what}: truncated: {detail}")]
    Truncated { what: String, detail: String },
    #[error("{what}: malformed: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{what}: this is {found}, not {expected}")]
    WrongType {
        what: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{what}: {subject} is not a CA certificate (basicConstraints CA:TRUE is missing); trust the CA that issued it instead"
    )]
    NotCa { what: String, subject: String },
    #[error(
        "{what}: {subject} expired on {not_after}; a CA past its not-after cannot verify anything"
    )]
    Expired {
        what: String,
        subject: String,
        not_after: DateTime<Utc>,
    },
    #[error("{what}: {subject} is not valid before {not_before}")]
    NotYetValid {
        what: String,
        subject: String,
        not_before: DateTime<Utc>,
    },
    #[error("{what}: {}; pass the CA's certificate (e.g. ca.crt, not ca.key) and keep its key offline", key_in_trust_file(*only_key))]
    ContainsPrivateKey { what: String, only_key: bool },
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    #[error("{what}: {detail}")]
    InvalidCsr { what: String, detail: String },
    #[error("no local issuing CA in the store; run `botgate ca init` first")]
    NoIssuingCa,
    #[error("a local CA already exists ({0}); botgate manages one root and one intermediate")]
    AlreadyInitialized(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key_in_trust_file(only_key: bool) -> &'static str {
    if only_key {
        "this is a private key, not a CA certificate"
    } else {
        "contains a private key next to the certificates; a CA file to trust must hold certificates only"
    }
}

impl PkiError {
    /// Whether this is the caller's bad input (exit 2) rather than a refused or failed operation.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PkiError::Read { .. }
                | PkiError::Empty { .. }
                | PkiError::NotPem { .. }
                | PkiError::Truncated { .. }
                | PkiError::Malformed { .. }
                | PkiError::WrongType { .. }
                | PkiError::NotCa { .. }
                | PkiError::Expired { .. }
                | PkiError::NotYetValid { .. }
                | PkiError::ContainsPrivateKey { .. }
                | PkiError::InvalidRequest(_)
                | PkiError::InvalidCsr { .. }
        )
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Crypto(e.to_string())
    }
}

/// Lifecycle status of a certificate in the inventory: the same statuses and thresholds as
/// tokens (`CertStatus::at(not_after, revoked, now)`).
pub use crate::store::tokens::LifecycleStatus as CertStatus;

/// Normalize a serial as typed by a human or printed by openssl (`0A:1B…`, `0x0a1b`) to our
/// canonical form: lowercase hex, no separators, no leading zero bytes. `None` if not hex.
pub fn normalize_serial(input: &str) -> Option<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let hex: String = s
        .chars()
        .filter(|c| *c != ':' && *c != ' ')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = hex.trim_start_matches('0');
    let mut out = if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    };
    if out.len() % 2 == 1 {
        out.insert(0, '0');
    }
    Some(out)
}

/// Canonical hex of a DER INTEGER's content bytes (leading zero bytes dropped).
pub fn serial_hex(raw: &[u8]) -> String {
    let first = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(raw.get(first..).unwrap_or_default())
}

/// Lowercase hex SHA-256 of `der`.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// chrono from a unix timestamp carried by x509-parser / rcgen times.
pub(crate) fn utc_from_unix(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// rcgen's time type from chrono (second precision).
pub(crate) fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| PkiError::InvalidRequest(format!("time {t} out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize_like_openssl_prints_them() {
        assert_eq!(normalize_serial("0A:1B:2C").as_deref(), Some("0a1b2c"));
        assert_eq!(normalize_serial("00:ff").as_deref(), Some("ff"));
        assert_eq!(normalize_serial("0x1").as_deref(), Some("01"));
        assert_eq!(normalize_serial("abc").as_deref(), Some("0abc"));
        assert_eq!(normalize_serial("device-a1"), None);
        assert_eq!(normalize_serial(""), None);
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn status_thresholds() {
        let now = Utc::now();
        assert_eq!(
            CertStatus::at(now + chrono::Duration::days(31), false, now),
            CertStatus::Active
        );
        assert_eq!(
            CertStatus::at(now + chrono::Duration::days(30), false, now),
            CertStatus::Expiring
        );
        assert_eq!(CertStatus::at(now, false, now), CertStatus::Expired);
        assert_eq!(
            CertStatus::at(now + chrono::Duration::days(300), true, now),
            CertStatus::Revoked
        );
    }
}
