//! PKI rows: CAs (local root + intermediate, and external CAs trusted by name), certificates
//! (issued here or found in watched directories), revocations, the latest CRL per local CA, and
//! sightings of client certificates at the gate. Private keys of local CAs live in `cas.key_pem`
//! (the store file is 0600); the root's is NULL once it was moved out with `--root-key-out`.
//!
//! Writes that change enforcement (a CA, a cert, a revocation, a CRL) bump the generation in the
//! same transaction, so a running gate rebuilds its trust stores within one poll.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::Serialize;

use super::{Store, StoreError, bump_generation, from_db_time, opt_time, to_db_time};

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
    fn parse(s: &str) -> Self {
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
}

const CA_COLUMNS: &str = "id, name, kind, parent_id, subject, fingerprint_sha256, not_after, cert_pem, key_pem, key_type, \
     crl_path, next_crl_number, created_at, crl_der, crl_this_update, crl_next_update";

fn ca_from_row(r: &Row<'_>) -> rusqlite::Result<CaRecord> {
    let kind: String = r.get(2)?;
    Ok(CaRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: CaKind::parse(&kind),
        parent_id: r.get(3)?,
        subject: r.get(4)?,
        fingerprint_sha256: r.get(5)?,
        not_after: from_db_time(r.get(6)?),
        cert_pem: r.get(7)?,
        key_pem: r.get(8)?,
        key_type: r.get(9)?,
        crl_path: r.get(10)?,
        next_crl_number: r.get(11)?,
        created_at: from_db_time(r.get(12)?),
        crl_der: r.get(13)?,
        crl_this_update: opt_time(r.get(14)?),
        crl_next_update: opt_time(r.get(15)?),
    })
}

const CERT_COLUMNS: &str = "id, serial, common_name, issuer, ca_id, fingerprint_sha256, not_before, not_after, key_type, \
     cert_pem, source, path, revoked_at, revocation_reason, last_seen_at, last_seen_ip, created_at";

fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<CertRecord> {
    let source: String = r.get(10)?;
    Ok(CertRecord {
        id: r.get(0)?,
        serial: r.get(1)?,
        common_name: r.get(2)?,
        issuer: r.get(3)?,
        ca_id: r.get(4)?,
        fingerprint_sha256: r.get(5)?,
        not_before: from_db_time(r.get(6)?),
        not_after: from_db_time(r.get(7)?),
        key_type: r.get(8)?,
        cert_pem: r.get(9)?,
        source: if source == "watched" {
            CertSource::Watched
        } else {
            CertSource::Issued
        },
        path: r.get(11)?,
        revoked_at: opt_time(r.get(12)?),
        revocation_reason: r.get(13)?,
        last_seen_at: opt_time(r.get(14)?),
        last_seen_ip: r.get(15)?,
        created_at: from_db_time(r.get(16)?),
    })
}

impl Store {
    // ---- CAs -------------------------------------------------------------------------------

    /// Insert CAs in one transaction, ordered from the anchor down: each row after the first
    /// gets the row before it as parent. A taken name is a `Conflict`.
    pub fn insert_ca_chain(&self, chain: &[NewCa<'_>]) -> Result<Vec<CaRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut parent: Option<i64> = None;
        let mut ids = Vec::with_capacity(chain.len());
        for ca in chain {
            let taken: Option<String> = tx
                .query_row("SELECT kind FROM cas WHERE name = ?1", [ca.name], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(kind) = taken {
                return Err(StoreError::Conflict(format!(
                    "a CA named {:?} already exists ({kind}); pick another --name (see `botgate ca list`)",
                    ca.name
                )));
            }
            let dup: Option<String> = tx
                .query_row(
                    "SELECT name FROM cas WHERE fingerprint_sha256 = ?1",
                    [ca.fingerprint_sha256],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = dup {
                return Err(StoreError::Conflict(format!(
                    "the CA certificate {} is already trusted as {existing:?}",
                    ca.subject
                )));
            }
            tx.execute(
                "INSERT INTO cas (name, kind, parent_id, subject, fingerprint_sha256, not_after, cert_pem, key_pem, key_type, crl_path, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    ca.name,
                    ca.kind.as_str(),
                    parent,
                    ca.subject,
                    ca.fingerprint_sha256,
                    to_db_time(ca.not_after),
                    ca.cert_pem,
                    ca.key_pem,
                    ca.key_type,
                    ca.crl_path,
                    to_db_time(ca.created_at)
                ],
            )?;
            let id = tx.last_insert_rowid();
            ids.push(id);
            parent = Some(id);
        }
        bump_generation(&tx)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(tx.query_row(
                &format!("SELECT {CA_COLUMNS} FROM cas WHERE id = ?1"),
                [id],
                ca_from_row,
            )?);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Every CA, in insertion order.
    pub fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {CA_COLUMNS} FROM cas ORDER BY id"))?;
        let rows = stmt
            .query_map([], ca_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A CA by name.
    pub fn find_ca(&self, name: &str) -> Result<CaRecord, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {CA_COLUMNS} FROM cas WHERE name = ?1"),
            [name],
            ca_from_row,
        )
        .optional()?
        .ok_or_else(|| {
            StoreError::NotFound(format!("no CA named {name:?} (see `botgate ca list`)"))
        })
    }

    /// A CA by row id.
    pub fn ca_by_id(&self, id: i64) -> Result<CaRecord, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {CA_COLUMNS} FROM cas WHERE id = ?1"),
            [id],
            ca_from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no CA with id {id}")))
    }

    /// botgate's own root CA, if `ca init` ran.
    pub fn local_root(&self) -> Result<Option<CaRecord>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {CA_COLUMNS} FROM cas WHERE kind = 'root' ORDER BY id DESC LIMIT 1"
                ),
                [],
                ca_from_row,
            )
            .optional()?)
    }

    /// botgate's issuing CA (an intermediate whose key is here), if `ca init` ran.
    pub fn issuing_ca(&self) -> Result<Option<CaRecord>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {CA_COLUMNS} FROM cas WHERE kind = 'intermediate' AND key_pem IS NOT NULL ORDER BY id DESC LIMIT 1"),
                [],
                ca_from_row,
            )
            .optional()?)
    }

    /// Whether a root CA private key sits in the store (policy lint warns: keep roots offline).
    pub fn root_key_on_host(&self) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM cas WHERE kind = 'root' AND key_pem IS NOT NULL)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Remove the local root's key from the store and return it (to write it somewhere offline).
    /// `None` when no root key is here.
    pub fn take_root_key(&self) -> Result<Option<(CaRecord, String)>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let root = tx
            .query_row(&format!("SELECT {CA_COLUMNS} FROM cas WHERE kind = 'root' AND key_pem IS NOT NULL LIMIT 1"), [], ca_from_row)
            .optional()?;
        let Some(mut root) = root else {
            return Ok(None);
        };
        let Some(key) = root.key_pem.take() else {
            return Ok(None);
        };
        tx.execute("UPDATE cas SET key_pem = NULL WHERE id = ?1", [root.id])?;
        tx.commit()?;
        Ok(Some((root, key)))
    }

    /// Set or clear the external CRL file for a CA.
    pub fn set_ca_crl_path(
        &self,
        name: &str,
        crl_path: Option<&str>,
    ) -> Result<CaRecord, StoreError> {
        let ca = self.find_ca(name)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE cas SET crl_path = ?1 WHERE id = ?2",
            params![crl_path, ca.id],
        )?;
        bump_generation(&tx)?;
        let ca = tx.query_row(
            &format!("SELECT {CA_COLUMNS} FROM cas WHERE id = ?1"),
            [ca.id],
            ca_from_row,
        )?;
        tx.commit()?;
        Ok(ca)
    }

    /// Store a CRL a local CA just signed with `crl_number` and advance its CRL number.
    pub fn record_crl(
        &self,
        ca_id: i64,
        crl_number: i64,
        der: &[u8],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE cas SET crl_der = ?1, crl_this_update = ?2, crl_next_update = ?3,
                 next_crl_number = max(next_crl_number, ?4 + 1) WHERE id = ?5",
            params![
                der,
                to_db_time(this_update),
                to_db_time(next_update),
                crl_number,
                ca_id
            ],
        )?;
        bump_generation(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Trust material for one CA name as used in `trusted_cas`.
    pub fn trust_bundle(&self, name: &str) -> Result<TrustBundle, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "WITH RECURSIVE grp(id) AS (
                 SELECT id FROM cas WHERE name = ?1
                 UNION SELECT c.id FROM cas c JOIN grp ON c.parent_id = grp.id)
             SELECT {CA_COLUMNS} FROM cas WHERE id IN grp ORDER BY id"
        ))?;
        let cas = stmt
            .query_map([name], ca_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        if cas.is_empty() {
            return Err(StoreError::NotFound(format!(
                "no CA named {name:?}; trust one with `botgate ca trust FILE --name {name:?}` or see `botgate ca list`"
            )));
        }
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
        Ok(bundle)
    }

    /// Trust bundles for every top-level CA name (rows without a parent).
    pub fn trust_bundles(&self) -> Result<Vec<TrustBundle>, StoreError> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare("SELECT name FROM cas WHERE parent_id IS NULL ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        names.iter().map(|n| self.trust_bundle(n)).collect()
    }

    // ---- certificates ----------------------------------------------------------------------

    /// Insert a certificate. The same certificate twice (fingerprint) is a `Conflict`.
    pub fn insert_cert(&self, c: &NewCert<'_>) -> Result<CertRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let dup: Option<String> = tx
            .query_row(
                "SELECT common_name FROM certs WHERE fingerprint_sha256 = ?1",
                [c.fingerprint_sha256],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(cn) = dup {
            return Err(StoreError::Conflict(format!(
                "certificate {} ({cn}) is already in the inventory",
                c.fingerprint_sha256
            )));
        }
        insert_cert_row(&tx, c)?;
        let id = tx.last_insert_rowid();
        bump_generation(&tx)?;
        let rec = tx.query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certs WHERE id = ?1"),
            [id],
            cert_from_row,
        )?;
        tx.commit()?;
        Ok(rec)
    }

    /// Add certificates found in watched directories that are not in the inventory yet (by
    /// fingerprint) and refresh the path of known ones. Returns how many were added.
    pub fn upsert_watched_certs(&self, certs: &[NewCert<'_>]) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        for c in certs {
            let known: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, source FROM certs WHERE fingerprint_sha256 = ?1",
                    [c.fingerprint_sha256],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match known {
                Some((id, source)) if source == "watched" => {
                    tx.execute(
                        "UPDATE certs SET path = ?1 WHERE id = ?2",
                        params![c.path, id],
                    )?;
                }
                Some(_) => {}
                None => {
                    insert_cert_row(&tx, c)?;
                    added += 1;
                }
            }
        }
        if added > 0 {
            bump_generation(&tx)?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Every inventoried certificate, by CN then newest first.
    pub fn list_certs(&self) -> Result<Vec<CertRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {CERT_COLUMNS} FROM certs ORDER BY common_name, created_at DESC, id DESC"
        ))?;
        let rows = stmt
            .query_map([], cert_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Certificates matching a serial (any notation openssl prints), a SHA-256 fingerprint or a
    /// CN; unrevoked first, newest first. Empty when nothing matches.
    pub fn find_certs(&self, serial_or_cn: &str) -> Result<Vec<CertRecord>, StoreError> {
        let serial = crate::pki::normalize_serial(serial_or_cn).unwrap_or_default();
        let fingerprint: String = serial_or_cn
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {CERT_COLUMNS} FROM certs WHERE common_name = ?1 OR serial = ?2 OR fingerprint_sha256 = ?3
             ORDER BY (revoked_at IS NULL) DESC, created_at DESC, id DESC"
        ))?;
        let rows = stmt
            .query_map(params![serial_or_cn, serial, fingerprint], cert_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Revoke one certificate by row id. Revoking twice is a `Conflict`.
    pub fn revoke_cert(
        &self,
        id: i64,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<CertRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let rec = tx
            .query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certs WHERE id = ?1"),
                [id],
                cert_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate with id {id}")))?;
        if let Some(when) = rec.revoked_at {
            return Err(StoreError::Conflict(format!(
                "certificate {} (serial {}) was already revoked at {}",
                rec.common_name,
                rec.serial,
                when.to_rfc3339()
            )));
        }
        tx.execute(
            "UPDATE certs SET revoked_at = ?1, revocation_reason = ?2 WHERE id = ?3",
            params![to_db_time(at), reason, id],
        )?;
        bump_generation(&tx)?;
        let rec = tx.query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certs WHERE id = ?1"),
            [id],
            cert_from_row,
        )?;
        tx.commit()?;
        Ok(rec)
    }

    /// Every revoked certificate (the gate denies these by fingerprint, whatever the CRLs say).
    pub fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT serial, fingerprint_sha256, issuer, common_name, revoked_at, ca_id FROM certs
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RevokedCert {
                    serial: r.get(0)?,
                    fingerprint_sha256: r.get(1)?,
                    issuer: r.get(2)?,
                    common_name: r.get(3)?,
                    revoked_at: from_db_time(r.get(4)?),
                    ca_id: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Record client certificates seen at the gate, in one batch (never per request).
    pub fn touch_certs(&self, seen: &[CertSeen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut sighting = tx.prepare(
                "INSERT INTO cert_sightings (fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
                 ON CONFLICT (fingerprint_sha256) DO UPDATE SET
                     last_seen_at = max(last_seen_at, excluded.last_seen_at),
                     last_seen_ip = CASE WHEN excluded.last_seen_at >= last_seen_at THEN excluded.last_seen_ip ELSE last_seen_ip END",
            )?;
            let mut cert = tx.prepare(
                "UPDATE certs SET last_seen_ip = CASE WHEN ?2 >= coalesce(last_seen_at, 0) THEN ?3 ELSE last_seen_ip END,
                     last_seen_at = max(coalesce(last_seen_at, 0), ?2)
                 WHERE fingerprint_sha256 = ?1",
            )?;
            for s in seen {
                let at = to_db_time(s.at);
                sighting.execute(params![
                    s.fingerprint_sha256,
                    s.serial,
                    s.common_name,
                    s.issuer,
                    s.not_after.map(to_db_time),
                    at,
                    s.ip
                ])?;
                cert.execute(params![s.fingerprint_sha256, at, s.ip])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every certificate the gate has seen, newest sighting first.
    pub fn list_cert_sightings(&self) -> Result<Vec<CertSighting>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip
             FROM cert_sightings ORDER BY last_seen_at DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CertSighting {
                    fingerprint_sha256: r.get(0)?,
                    serial: r.get(1)?,
                    common_name: r.get(2)?,
                    issuer: r.get(3)?,
                    not_after: opt_time(r.get(4)?),
                    first_seen_at: from_db_time(r.get(5)?),
                    last_seen_at: from_db_time(r.get(6)?),
                    last_seen_ip: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn insert_cert_row(tx: &rusqlite::Transaction<'_>, c: &NewCert<'_>) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO certs (serial, common_name, issuer, ca_id, fingerprint_sha256, not_before, not_after, key_type, cert_pem, source, path, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            c.serial,
            c.common_name,
            c.issuer,
            c.ca_id,
            c.fingerprint_sha256,
            to_db_time(c.not_before),
            to_db_time(c.not_after),
            c.key_type,
            c.cert_pem,
            c.source.as_str(),
            c.path,
            to_db_time(c.created_at)
        ],
    )
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn new_cert<'a>(serial: &'a str, cn: &'a str, fp: &'a str, now: DateTime<Utc>) -> NewCert<'a> {
        NewCert {
            serial,
            common_name: cn,
            issuer: "CN=Test CA",
            ca_id: None,
            fingerprint_sha256: fp,
            not_before: now,
            not_after: now + Duration::days(365),
            key_type: "ECDSA P-256",
            cert_pem: "",
            source: CertSource::Issued,
            path: None,
            created_at: now,
        }
    }

    fn new_ca<'a>(
        name: &'a str,
        kind: CaKind,
        fp: &'a str,
        key: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> NewCa<'a> {
        NewCa {
            name,
            kind,
            subject: name,
            fingerprint_sha256: fp,
            not_after: now + Duration::days(3650),
            cert_pem: "not pem",
            key_pem: key,
            key_type: Some("ECDSA P-256"),
            crl_path: None,
            created_at: now,
        }
    }

    #[test]
    fn ca_chain_parents_root_key_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let g0 = store.generation().unwrap();
        let rows = store
            .insert_ca_chain(&[
                new_ca("Root", CaKind::Root, "aa", None, now),
                new_ca("Issuing", CaKind::Intermediate, "bb", Some("KEY"), now),
            ])
            .unwrap();
        assert!(store.generation().unwrap() > g0);
        assert_eq!(rows[1].parent_id, Some(rows[0].id));
        assert!(!store.root_key_on_host().unwrap());
        assert_eq!(store.issuing_ca().unwrap().unwrap().name, "Issuing");
        assert!(matches!(
            store.insert_ca_chain(&[new_ca("Root", CaKind::Trusted, "cc", None, now)]),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.insert_ca_chain(&[new_ca("Other", CaKind::Trusted, "aa", None, now)]),
            Err(StoreError::Conflict(_))
        ));
        store
            .insert_ca_chain(&[new_ca("Other", CaKind::Trusted, "dd", None, now)])
            .unwrap();
        let names: Vec<String> = store
            .trust_bundles()
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["Root", "Other"]);
        assert!(matches!(
            store.trust_bundle("nope"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn root_key_can_be_taken_offline() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        store
            .insert_ca_chain(&[new_ca("Root", CaKind::Root, "aa", Some("ROOTKEY"), now)])
            .unwrap();
        assert!(store.root_key_on_host().unwrap());
        let (root, key) = store.take_root_key().unwrap().unwrap();
        assert_eq!((root.name.as_str(), key.as_str()), ("Root", "ROOTKEY"));
        assert!(!store.root_key_on_host().unwrap());
        assert!(store.take_root_key().unwrap().is_none());
    }

    #[test]
    fn find_revoke_and_touch_certs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let a = store
            .insert_cert(&new_cert("0a1b", "device-a1", "f1", now))
            .unwrap();
        store
            .insert_cert(&new_cert(
                "0c2d",
                "device-a1",
                "f2",
                now + Duration::seconds(1),
            ))
            .unwrap();
        assert!(matches!(
            store.insert_cert(&new_cert("0a1b", "x", "f1", now)),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.find_certs("device-a1").unwrap().len(), 2);
        assert_eq!(store.find_certs("0A:1B").unwrap()[0].id, a.id);
        assert_eq!(store.find_certs("F1").unwrap()[0].id, a.id);
        assert!(store.find_certs("nothing").unwrap().is_empty());

        let g = store.generation().unwrap();
        let revoked = store
            .revoke_cert(a.id, now, Some("key compromise"))
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(store.generation().unwrap() > g);
        assert!(matches!(
            store.revoke_cert(a.id, now, None),
            Err(StoreError::Conflict(_))
        ));
        let set = store.revoked_certs().unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].fingerprint_sha256, "f1");
        // Unrevoked first.
        assert_eq!(store.find_certs("device-a1").unwrap()[0].serial, "0c2d");

        let seen = |fp: &str, at, ip: &str| CertSeen {
            fingerprint_sha256: fp.into(),
            serial: "99".into(),
            common_name: Some("x".into()),
            issuer: "CN=Other".into(),
            not_after: None,
            at,
            ip: ip.into(),
        };
        store
            .touch_certs(&[
                seen("f2", now, "10.0.0.1"),
                seen("zz", now, "10.0.0.2"),
                seen("f2", now - Duration::seconds(5), "10.0.0.9"),
            ])
            .unwrap();
        let b = &store.find_certs("0c2d").unwrap()[0];
        assert_eq!(b.last_seen_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            b.last_seen_at.map(|t| t.timestamp_millis()),
            Some(now.timestamp_millis())
        );
        let sightings = store.list_cert_sightings().unwrap();
        assert_eq!(sightings.len(), 2);
        assert!(
            sightings
                .iter()
                .all(|s| s.last_seen_ip.as_deref() != Some("10.0.0.9"))
        );
    }

    #[test]
    fn watched_certs_are_added_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let mut w = new_cert("01", "watched-1", "w1", now);
        w.source = CertSource::Watched;
        w.path = Some("/a/one.pem");
        assert_eq!(
            store
                .upsert_watched_certs(std::slice::from_ref(&w))
                .unwrap(),
            1
        );
        let g = store.generation().unwrap();
        w.path = Some("/b/one.pem");
        assert_eq!(store.upsert_watched_certs(&[w]).unwrap(), 0);
        assert_eq!(store.generation().unwrap(), g);
        assert_eq!(
            store.list_certs().unwrap()[0].path.as_deref(),
            Some("/b/one.pem")
        );
    }
}
