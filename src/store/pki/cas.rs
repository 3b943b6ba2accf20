//! CA rows: botgate's root and issuing CA (keys in `key_pem`, the root's NULL when offline),
//! external CAs trusted by name, their CRLs, and the trust bundles the gate builds root stores from.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::Serialize;

/// What a CA row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKind {
    /// botgate's own root (its key may be offline).
    Root,
    /// botgate's issuing CA (signs client and server certs and the CRL).
    Intermediate,
    /// An external CA trusted with `ca trust` (never has a key here).
    Trusted,
}

impl CaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKind::Root => "root",
            CaKind::Intermediate => "intermediate",
            CaKind::Trusted => "trusted",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "root" => CaKind::Root,
            "intermediate" => CaKind::Intermediate,
            _ => CaKind::Trusted,
        }
    }
}

/// A CA as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaRecord {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub kind: CaKind,
    #[serde(skip)]
    pub parent_id: Option<i64>,
    pub subject: String,
    pub fingerprint_sha256: String,
    pub not_after: DateTime<Utc>,
    #[serde(skip)]
    pub cert_pem: String,
    /// PKCS#8 PEM of the CA key; never serialized.
    #[serde(skip)]
    pub key_pem: Option<String>,
    pub key_type: Option<String>,
    /// An external CRL file for this CA (re-read by the gate on change).
    pub crl_path: Option<String>,
    pub next_crl_number: i64,
    pub created_at: DateTime<Utc>,
    /// DER of the latest CRL this (local) CA issued.
    #[serde(skip)]
    pub crl_der: Option<Vec<u8>>,
    pub crl_this_update: Option<DateTime<Utc>>,
    pub crl_next_update: Option<DateTime<Utc>>,
}

impl CaRecord {
    /// Whether the CA's private key is in the store.
    pub fn key_on_host(&self) -> bool {
        self.key_pem.is_some()
    }
}

/// A CA to insert; see `insert_ca_chain`.
#[derive(Debug, Clone)]
pub struct NewCa<'a> {
    pub name: &'a str,
    pub kind: CaKind,
    pub subject: &'a str,
    pub fingerprint_sha256: &'a str,
    pub not_after: DateTime<Utc>,
    pub cert_pem: &'a str,
    pub key_pem: Option<&'a str>,
    pub key_type: Option<&'a str>,
    pub crl_path: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// Everything the gate needs to verify client certs for one trusted CA name (`trusted_cas`
/// in the policy): the named CA and every CA stored under it, as trust anchors, plus CRLs.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    pub name: String,
    /// The named CA and its stored descendants (e.g. botgate's root and its intermediate), so a
    /// client that sends only its leaf still verifies.
    pub anchors: Vec<CertificateDer<'static>>,
    /// CRLs issued by local CAs in this bundle (already signed, from the store).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// External CRL files configured for CAs in this bundle; the gate reads (and watches) them,
    /// see `pki::load_crl_file`.
    pub crl_files: Vec<PathBuf>,
}

impl TrustBundle {
    /// The bundle for `name` from its CA rows (the named CA and its descendants), as any
    /// backend reads them.
    pub fn from_cas(name: &str, cas: Vec<CaRecord>) -> Self {
        let mut bundle = TrustBundle {
            name: name.to_string(),
            anchors: Vec::new(),
            crls: Vec::new(),
            crl_files: Vec::new(),
        };
        for ca in cas {
            // Rows were written from parsed certificates; an unreadable one is skipped, not fatal.
            if let Ok(der) = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()) {
                bundle.anchors.push(der);
            } else {
                tracing::warn!(ca = %ca.name, "stored CA certificate is not readable PEM; skipped");
            }
            if let Some(crl) = ca.crl_der {
                bundle.crls.push(CertificateRevocationListDer::from(crl));
            }
            if let Some(p) = ca.crl_path {
                bundle.crl_files.push(PathBuf::from(p));
            }
        }
        bundle
    }
}
