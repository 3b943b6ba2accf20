use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::changes::record_change;
use super::{SqliteStore, from_db_time, opt_time, to_db_time};
use crate::store::pki::{
    CertRecord, CertSeen, CertSighting, CertSource, NewCert, RevokedCert, normalize_fingerprint,
};
use crate::store::{CertStore, ChangeKind, StoreError};

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

#[async_trait]
impl CertStore for SqliteStore {
    /// Insert a certificate. The same certificate twice (fingerprint) is a `Conflict`.
    async fn insert_cert(&self, c: &NewCert<'_>) -> Result<CertRecord, StoreError> {
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
        record_change(&tx, ChangeKind::Cert, c.fingerprint_sha256)?;
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
    async fn upsert_watched_certs(&self, certs: &[NewCert<'_>]) -> Result<usize, StoreError> {
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
                    record_change(&tx, ChangeKind::Cert, c.fingerprint_sha256)?;
                    added += 1;
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Every inventoried certificate, by CN then newest first.
    async fn list_certs(&self) -> Result<Vec<CertRecord>, StoreError> {
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
    async fn find_certs(&self, serial_or_cn: &str) -> Result<Vec<CertRecord>, StoreError> {
        let serial = crate::pki::normalize_serial(serial_or_cn).unwrap_or_default();
        let fingerprint = normalize_fingerprint(serial_or_cn);
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
    async fn revoke_cert(
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
        record_change(&tx, ChangeKind::Cert, &rec.fingerprint_sha256)?;
        let rec = tx.query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certs WHERE id = ?1"),
            [id],
            cert_from_row,
        )?;
        tx.commit()?;
        Ok(rec)
    }

    /// Every revoked certificate (the gate denies these by fingerprint, whatever the CRLs say).
    async fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError> {
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
    async fn touch_certs(&self, seen: &[CertSeen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut sighting = tx.prepare(
                "INSERT INTO cert_sightings (fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip, cert_pem)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
                 ON CONFLICT (fingerprint_sha256) DO UPDATE SET
                     not_after = coalesce(not_after, excluded.not_after),
                     cert_pem = coalesce(cert_pem, excluded.cert_pem),
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
                    s.ip,
                    s.cert_pem
                ])?;
                cert.execute(params![s.fingerprint_sha256, at, s.ip])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every certificate the gate has seen, newest sighting first.
    async fn list_cert_sightings(&self) -> Result<Vec<CertSighting>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SIGHTING_COLUMNS} FROM cert_sightings ORDER BY last_seen_at DESC"
        ))?;
        let rows = stmt
            .query_map([], sighting_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Sightings matching a serial (any notation), a SHA-256 fingerprint or a CN (every one with
    /// that CN), newest first; the same query rules as `find_certs`.
    async fn find_cert_sightings(
        &self,
        serial_or_cn: &str,
    ) -> Result<Vec<CertSighting>, StoreError> {
        let serial = crate::pki::normalize_serial(serial_or_cn).unwrap_or_default();
        let fingerprint = normalize_fingerprint(serial_or_cn);
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SIGHTING_COLUMNS} FROM cert_sightings
             WHERE common_name = ?1 OR serial = ?2 OR fingerprint_sha256 = ?3
             ORDER BY last_seen_at DESC"
        ))?;
        let rows = stmt
            .query_map(
                params![serial_or_cn, serial, fingerprint],
                sighting_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

const SIGHTING_COLUMNS: &str = "fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip, cert_pem";

fn sighting_from_row(r: &Row<'_>) -> rusqlite::Result<CertSighting> {
    Ok(CertSighting {
        fingerprint_sha256: r.get(0)?,
        serial: r.get(1)?,
        common_name: r.get(2)?,
        issuer: r.get(3)?,
        not_after: opt_time(r.get(4)?),
        first_seen_at: from_db_time(r.get(5)?),
        last_seen_at: from_db_time(r.get(6)?),
        last_seen_ip: r.get(7)?,
        cert_pem: r.get(8)?,
    })
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
    use crate::store::Store;
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

    #[test]
    fn find_revoke_and_touch_certs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let a = crate::store::wait(store.insert_cert(&new_cert("0a1b", "device-a1", "f1", now)))
            .unwrap();
        crate::store::wait(store.insert_cert(&new_cert(
            "0c2d",
            "device-a1",
            "f2",
            now + Duration::seconds(1),
        )))
        .unwrap();
        assert!(matches!(
            crate::store::wait(store.insert_cert(&new_cert("0a1b", "x", "f1", now))),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            crate::store::wait(store.find_certs("device-a1"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            crate::store::wait(store.find_certs("0A:1B")).unwrap()[0].id,
            a.id
        );
        assert_eq!(
            crate::store::wait(store.find_certs("F1")).unwrap()[0].id,
            a.id
        );
        assert!(
            crate::store::wait(store.find_certs("nothing"))
                .unwrap()
                .is_empty()
        );

        let g = crate::store::wait(store.change_version()).unwrap();
        let revoked =
            crate::store::wait(store.revoke_cert(a.id, now, Some("key compromise"))).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(crate::store::wait(store.change_version()).unwrap() > g);
        assert!(matches!(
            crate::store::wait(store.revoke_cert(a.id, now, None)),
            Err(StoreError::Conflict(_))
        ));
        let set = crate::store::wait(store.revoked_certs()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].fingerprint_sha256, "f1");
        // Unrevoked first.
        assert_eq!(
            crate::store::wait(store.find_certs("device-a1")).unwrap()[0].serial,
            "0c2d"
        );

        let seen = |fp: &str, at, ip: &str| CertSeen {
            fingerprint_sha256: fp.into(),
            serial: "99".into(),
            common_name: Some("x".into()),
            issuer: "CN=Other".into(),
            not_after: None,
            at,
            ip: ip.into(),
            cert_pem: None,
        };
        crate::store::wait(store.touch_certs(&[
            seen("f2", now, "10.0.0.1"),
            seen("zz", now, "10.0.0.2"),
            seen("f2", now - Duration::seconds(5), "10.0.0.9"),
        ]))
        .unwrap();
        let b = &crate::store::wait(store.find_certs("0c2d")).unwrap()[0];
        assert_eq!(b.last_seen_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            b.last_seen_at.map(|t| t.timestamp_millis()),
            Some(now.timestamp_millis())
        );
        let sightings = crate::store::wait(store.list_cert_sightings()).unwrap();
        assert_eq!(sightings.len(), 2);
        assert!(
            sightings
                .iter()
                .all(|s| s.last_seen_ip.as_deref() != Some("10.0.0.9"))
        );
    }

    #[test]
    fn sightings_keep_the_first_recorded_certificate_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let seen = |pem: Option<&str>, at| CertSeen {
            fingerprint_sha256: "f9".into(),
            serial: "01".into(),
            common_name: Some("github-actions-bot".into()),
            issuer: "Build CA".into(),
            not_after: pem.map(|_| now + Duration::days(30)),
            at,
            ip: "10.0.0.1".into(),
            cert_pem: pem.map(str::to_string),
        };
        // First without the certificate (an older gate), then with it, then without again.
        crate::store::wait(store.touch_certs(&[seen(None, now)])).unwrap();
        crate::store::wait(store.touch_certs(&[seen(Some("PEM"), now + Duration::seconds(1))]))
            .unwrap();
        crate::store::wait(store.touch_certs(&[seen(None, now + Duration::seconds(2))])).unwrap();
        let found = crate::store::wait(store.find_cert_sightings("github-actions-bot")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].cert_pem.as_deref(), Some("PEM"));
        assert!(found[0].not_after.is_some());
        assert_eq!(
            crate::store::wait(store.find_cert_sightings("F9"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            crate::store::wait(store.find_cert_sightings("0x01"))
                .unwrap()
                .len(),
            1
        );
        assert!(
            crate::store::wait(store.find_cert_sightings("nobody"))
                .unwrap()
                .is_empty()
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
            crate::store::wait(store.upsert_watched_certs(std::slice::from_ref(&w))).unwrap(),
            1
        );
        let g = crate::store::wait(store.change_version()).unwrap();
        w.path = Some("/b/one.pem");
        assert_eq!(
            crate::store::wait(store.upsert_watched_certs(&[w])).unwrap(),
            0
        );
        assert_eq!(crate::store::wait(store.change_version()).unwrap(), g);
        assert_eq!(
            crate::store::wait(store.list_certs()).unwrap()[0]
                .path
                .as_deref(),
            Some("/b/one.pem")
        );
    }
}
