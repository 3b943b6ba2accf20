//! `botgate ca …` and `botgate cert …`: the CLI edge of the PKI. Parses flags into `pki` calls,
//! maps PKI errors to exit codes (bad input 2, refused 1), prints text or `--json`, and records
//! every admin action in the store and the audit log.

mod ca;
mod cert;
mod cert_view;

use super::rfc3339;
use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::audit::AccessEvent;
use crate::cli::{CaCommand, CertCommand, KeyType};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::pki::{KeyAlgorithm, PkiError};
use crate::store::{Store, StoreError};

/// `botgate ca init|trust|list|crl`.
pub fn run_ca(paths: &Paths, cmd: CaCommand) -> Result<()> {
    let store = paths.open_store()?;
    ca::run(paths, &store, Utc::now(), cmd)
}

/// `botgate cert issue|list|show|revoke`.
pub fn run_cert(paths: &Paths, cmd: CertCommand) -> Result<()> {
    let store = paths.open_store()?;
    cert::run(paths, &store, Utc::now(), cmd)
}

fn key_algorithm(k: KeyType) -> KeyAlgorithm {
    match k {
        KeyType::EcdsaP256 => KeyAlgorithm::EcdsaP256,
        KeyType::Rsa2048 => KeyAlgorithm::Rsa2048,
        KeyType::Rsa4096 => KeyAlgorithm::Rsa4096,
    }
}

/// PKI errors at the CLI edge: bad input exits 2, refusals and conflicts exit 1.
fn pki_err(e: PkiError) -> anyhow::Error {
    match e {
        e if e.is_bad_input() => Failure::bad_input(e.to_string()),
        PkiError::Store(StoreError::NotFound(m) | StoreError::Conflict(m)) => Failure::refused(m),
        e @ (PkiError::NoIssuingCa | PkiError::AlreadyInitialized(_)) => {
            Failure::refused(e.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

fn store_err(e: StoreError) -> anyhow::Error {
    pki_err(PkiError::Store(e))
}

/// Certificate fields an admin event carries (so a rotation can tell two certs apart).
#[derive(Debug, Default)]
struct CertRef<'a> {
    common_name: Option<&'a str>,
    serial: Option<&'a str>,
    fingerprint: Option<&'a str>,
    issuer: Option<&'a str>,
}

/// Admin events go to the store's admin journal and from there, once, to the audit log (a
/// running gate relays them through its writer and bus).
fn record_admin(
    paths: &Paths,
    store: &Store,
    now: DateTime<Utc>,
    action: &str,
    target: &str,
    details: serde_json::Value,
    cert: CertRef<'_>,
) {
    let mut ev = AccessEvent::admin(now, action, target, details);
    ev.cert_common_name = cert.common_name.map(str::to_string);
    ev.cert_serial = cert.serial.map(str::to_string);
    ev.cert_fingerprint_sha256 = cert.fingerprint.map(str::to_string);
    ev.cert_issuer = cert.issuer.map(str::to_string);
    if let Err(e) = crate::audit::admin::record(store, &paths.audit_log(), &ev, target) {
        eprintln!("warning: {e}");
    }
}
