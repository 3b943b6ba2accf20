//! Certificate rows: certificates issued here or found in watched directories, revocations (the
//! gate's deny set, and the input of botgate's CRL), and sightings of client certificates at the gate.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where an inventoried certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    Issued,
    Watched,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Issued => "issued",
            CertSource::Watched => "watched",
        }
    }
}

/// A certificate as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertRecord {
    #[serde(skip)]
    pub id: i64,
    /// Lowercase hex, no colons (see `pki::serial_hex`).
    pub serial: String,
    pub common_name: String,
    /// Issuer DN.
    pub issuer: String,
    #[serde(skip)]
    pub ca_id: Option<i64>,
    pub fingerprint_sha256: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub key_type: String,
    #[serde(skip)]
    pub cert_pem: String,
    pub source: CertSource,
    pub path: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_reason: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_seen_ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A certificate to insert.
#[derive(Debug, Clone)]
pub struct NewCert<'a> {
    pub serial: &'a str,
    pub common_name: &'a str,
    pub issuer: &'a str,
    pub ca_id: Option<i64>,
    pub fingerprint_sha256: &'a str,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub key_type: &'a str,
    pub cert_pem: &'a str,
    pub source: CertSource,
    pub path: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// A revoked certificate, for the gate's deny set and for CRLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokedCert {
    pub serial: String,
    pub fingerprint_sha256: String,
    pub issuer: String,
    pub common_name: String,
    pub revoked_at: DateTime<Utc>,
    #[serde(skip)]
    pub ca_id: Option<i64>,
}

/// One client certificate seen at the gate (batched by the gate, see `touch_certs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSeen {
    pub fingerprint_sha256: String,
    pub serial: String,
    pub common_name: Option<String>,
    pub issuer: String,
    pub not_after: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
    pub ip: String,
    /// The certificate as PEM (`None` when the event did not carry it, e.g. replayed logs).
    pub cert_pem: Option<String>,
}

/// A certificate the gate has seen, whether or not it is in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSighting {
    pub fingerprint_sha256: String,
    pub serial: String,
    pub common_name: Option<String>,
    pub issuer: String,
    pub not_after: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub last_seen_ip: Option<String>,
    /// The certificate as PEM, when the gate recorded it (sightings before migration 3 lack it).
    #[serde(skip)]
    pub cert_pem: Option<String>,
}

/// A fingerprint as stored: lowercase hex without colons.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}
