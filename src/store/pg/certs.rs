use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::changes::record_change;
use super::{PgStore, from_db_time, opt_time, to_db_time};
use crate::store::pki::{
    CertRecord, CertSeen, CertSighting, CertSource, NewCert, RevokedCert, normalize_fingerprint,
};
use crate::store::{CertStore, ChangeKind, StoreError};

const CERT_COLUMNS: &str = "id, serial, common_name, issuer, ca_id, fingerprint_sha256, not_before, not_after, key_type, \
     cert_pem, source, path, revoked_at, revocation_reason, last_seen_at, last_seen_ip, created_at";

fn cert_from_row(r: &Row) -> Result<CertRecord, tokio_postgres::Error> {
    let source: &str = r.try_get(10)?;
    Ok(CertRecord {
        id: r.try_get(0)?,
        serial: r.try_get(1)?,
        common_name: r.try_get(2)?,
        issuer: r.try_get(3)?,
        ca_id: r.try_get(4)?,
        fingerprint_sha256: r.try_get(5)?,
        not_before: from_db_time(r.try_get(6)?),
        not_after: from_db_time(r.try_get(7)?),
        key_type: r.try_get(8)?,
        cert_pem: r.try_get(9)?,
        source: if source == "watched" {
            CertSource::Watched
        } else {
            CertSource::Issued
        },
        path: r.try_get(11)?,
        revoked_at: opt_time(r.try_get(12)?),
        revocation_reason: r.try_get(13)?,
        last_seen_at: opt_time(r.try_get(14)?),
        last_seen_ip: r.try_get(15)?,
        created_at: from_db_time(r.try_get(16)?),
    })
}

const SIGHTING_COLUMNS: &str = "fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip, cert_pem";

fn sighting_from_row(r: &Row) -> Result<CertSighting, tokio_postgres::Error> {
    Ok(CertSighting {
        fingerprint_sha256: r.try_get(0)?,
        serial: r.try_get(1)?,
        common_name: r.try_get(2)?,
        issuer: r.try_get(3)?,
        not_after: opt_time(r.try_get(4)?),
        first_seen_at: from_db_time(r.try_get(5)?),
        last_seen_at: from_db_time(r.try_get(6)?),
        last_seen_ip: r.try_get(7)?,
        cert_pem: r.try_get(8)?,
    })
}

async fn cert_by_id(c: &impl GenericClient, id: i64) -> Result<Option<CertRecord>, StoreError> {
    match c
        .query_opt(
            &format!("SELECT {CERT_COLUMNS} FROM certs WHERE id = $1"),
            &[&id],
        )
        .await?
    {
        Some(r) => Ok(Some(cert_from_row(&r)?)),
        None => Ok(None),
    }
}

async fn insert_cert_row(
    c: &impl GenericClient,
    cert: &NewCert<'_>,
) -> Result<i64, tokio_postgres::Error> {
    c.query_one(
        "INSERT INTO certs (serial, common_name, issuer, ca_id, fingerprint_sha256, not_before, not_after, key_type, cert_pem, source, path, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        &[
            &cert.serial,
            &cert.common_name,
            &cert.issuer,
            &cert.ca_id,
            &cert.fingerprint_sha256,
            &to_db_time(cert.not_before),
            &to_db_time(cert.not_after),
            &cert.key_type,
            &cert.cert_pem,
            &cert.source.as_str(),
            &cert.path,
            &to_db_time(cert.created_at),
        ],
    )
    .await?
    .try_get(0)
}

#[async_trait]
impl CertStore for PgStore {
    async fn insert_cert(&self, c: &NewCert<'_>) -> Result<CertRecord, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        super::lock_order(&tx).await?;
        if let Some(r) = tx
            .query_opt(
                "SELECT common_name FROM certs WHERE fingerprint_sha256 = $1",
                &[&c.fingerprint_sha256],
            )
            .await?
        {
            let cn: String = r.try_get(0)?;
            return Err(StoreError::Conflict(format!(
                "certificate {} ({cn}) is already in the inventory",
                c.fingerprint_sha256
            )));
        }
        let id = insert_cert_row(&tx, c).await?;
        record_change(&tx, ChangeKind::Cert, c.fingerprint_sha256).await?;
        let rec = cert_by_id(&tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate with id {id}")))?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn upsert_watched_certs(&self, certs: &[NewCert<'_>]) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        super::lock_order(&tx).await?;
        let mut added = 0;
        for c in certs {
            let known = tx
                .query_opt(
                    "SELECT id, source FROM certs WHERE fingerprint_sha256 = $1",
                    &[&c.fingerprint_sha256],
                )
                .await?;
            match known {
                Some(r) if r.try_get::<_, &str>(1)? == "watched" => {
                    let id: i64 = r.try_get(0)?;
                    tx.execute("UPDATE certs SET path = $1 WHERE id = $2", &[&c.path, &id])
                        .await?;
                }
                Some(_) => {}
                None => {
                    insert_cert_row(&tx, c).await?;
                    record_change(&tx, ChangeKind::Cert, c.fingerprint_sha256).await?;
                    added += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn list_certs(&self) -> Result<Vec<CertRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certs ORDER BY common_name, created_at DESC, id DESC"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(cert_from_row).collect::<Result<_, _>>()?)
    }

    async fn find_certs(&self, serial_or_cn: &str) -> Result<Vec<CertRecord>, StoreError> {
        let serial = crate::pki::normalize_serial(serial_or_cn).unwrap_or_default();
        let fingerprint = normalize_fingerprint(serial_or_cn);
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certs WHERE common_name = $1 OR serial = $2 OR fingerprint_sha256 = $3
                     ORDER BY (revoked_at IS NULL) DESC, created_at DESC, id DESC"
                ),
                &[&serial_or_cn, &serial, &fingerprint],
            )
            .await?;
        Ok(rows.iter().map(cert_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_cert(
        &self,
        id: i64,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<CertRecord, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let rec = cert_by_id(&tx, id)
            .await?
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
            "UPDATE certs SET revoked_at = $1, revocation_reason = $2 WHERE id = $3",
            &[&to_db_time(at), &reason, &id],
        )
        .await?;
        record_change(&tx, ChangeKind::Cert, &rec.fingerprint_sha256).await?;
        let rec = cert_by_id(&tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate with id {id}")))?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT serial, fingerprint_sha256, issuer, common_name, revoked_at, ca_id FROM certs
                 WHERE revoked_at IS NOT NULL ORDER BY revoked_at",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(RevokedCert {
                serial: r.try_get(0)?,
                fingerprint_sha256: r.try_get(1)?,
                issuer: r.try_get(2)?,
                common_name: r.try_get(3)?,
                revoked_at: from_db_time(r.try_get(4)?),
                ca_id: r.try_get(5)?,
            });
        }
        Ok(out)
    }

    async fn touch_certs(&self, seen: &[CertSeen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let sighting = tx
            .prepare(
                "INSERT INTO cert_sightings AS s (fingerprint_sha256, serial, common_name, issuer, not_after, first_seen_at, last_seen_at, last_seen_ip, cert_pem)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)
                 ON CONFLICT (fingerprint_sha256) DO UPDATE SET
                     not_after = COALESCE(s.not_after, excluded.not_after),
                     cert_pem = COALESCE(s.cert_pem, excluded.cert_pem),
                     last_seen_at = GREATEST(s.last_seen_at, excluded.last_seen_at),
                     last_seen_ip = CASE WHEN excluded.last_seen_at >= s.last_seen_at THEN excluded.last_seen_ip ELSE s.last_seen_ip END",
            )
            .await?;
        let cert = tx
            .prepare(
                "UPDATE certs SET last_seen_ip = CASE WHEN $2 >= COALESCE(last_seen_at, 0) THEN $3 ELSE last_seen_ip END,
                     last_seen_at = GREATEST(COALESCE(last_seen_at, 0), $2)
                 WHERE fingerprint_sha256 = $1",
            )
            .await?;
        for s in seen {
            let at = to_db_time(s.at);
            tx.execute(
                &sighting,
                &[
                    &s.fingerprint_sha256,
                    &s.serial,
                    &s.common_name,
                    &s.issuer,
                    &s.not_after.map(to_db_time),
                    &at,
                    &s.ip,
                    &s.cert_pem,
                ],
            )
            .await?;
            tx.execute(&cert, &[&s.fingerprint_sha256, &at, &s.ip])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_cert_sightings(&self) -> Result<Vec<CertSighting>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SIGHTING_COLUMNS} FROM cert_sightings ORDER BY last_seen_at DESC"
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(sighting_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn find_cert_sightings(
        &self,
        serial_or_cn: &str,
    ) -> Result<Vec<CertSighting>, StoreError> {
        let serial = crate::pki::normalize_serial(serial_or_cn).unwrap_or_default();
        let fingerprint = normalize_fingerprint(serial_or_cn);
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SIGHTING_COLUMNS} FROM cert_sightings
                     WHERE common_name = $1 OR serial = $2 OR fingerprint_sha256 = $3
                     ORDER BY last_seen_at DESC"
                ),
                &[&serial_or_cn, &serial, &fingerprint],
            )
            .await?;
        Ok(rows
            .iter()
            .map(sighting_from_row)
            .collect::<Result<_, _>>()?)
    }
}
