use async_trait::async_trait;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::changes::record_change;
use super::{SqliteStore, from_db_time, opt_time, to_db_time};
use crate::store::pki::{CaKind, CaRecord, NewCa, TrustBundle};
use crate::store::{CaStore, ChangeKind, StoreError};

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

#[async_trait]
impl CaStore for SqliteStore {
    /// Insert CAs in one transaction, ordered from the anchor down: each row after the first
    /// gets the row before it as parent. A taken name is a `Conflict`.
    async fn insert_ca_chain(&self, chain: &[NewCa<'_>]) -> Result<Vec<CaRecord>, StoreError> {
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
            record_change(&tx, ChangeKind::Ca, ca.name)?;
        }
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
    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {CA_COLUMNS} FROM cas ORDER BY id"))?;
        let rows = stmt
            .query_map([], ca_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// A CA by name.
    async fn find_ca(&self, name: &str) -> Result<CaRecord, StoreError> {
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
    async fn ca_by_id(&self, id: i64) -> Result<CaRecord, StoreError> {
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
    async fn local_root(&self) -> Result<Option<CaRecord>, StoreError> {
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
    async fn issuing_ca(&self) -> Result<Option<CaRecord>, StoreError> {
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
    async fn root_key_on_host(&self) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM cas WHERE kind = 'root' AND key_pem IS NOT NULL)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Remove the local root's key from the store and return it (to write it somewhere offline).
    /// `None` when no root key is here.
    async fn take_root_key(&self) -> Result<Option<(CaRecord, String)>, StoreError> {
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
    async fn set_ca_crl_path(
        &self,
        name: &str,
        crl_path: Option<&str>,
    ) -> Result<CaRecord, StoreError> {
        let ca = self.find_ca(name).await?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE cas SET crl_path = ?1 WHERE id = ?2",
            params![crl_path, ca.id],
        )?;
        record_change(&tx, ChangeKind::Crl, &ca.name)?;
        let ca = tx.query_row(
            &format!("SELECT {CA_COLUMNS} FROM cas WHERE id = ?1"),
            [ca.id],
            ca_from_row,
        )?;
        tx.commit()?;
        Ok(ca)
    }

    /// Store a CRL a local CA just signed with `crl_number` and advance its CRL number.
    async fn record_crl(
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
        record_change(&tx, ChangeKind::Crl, &ca_id.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// Trust material for one CA name as used in `trusted_cas`.
    async fn trust_bundle(&self, name: &str) -> Result<TrustBundle, StoreError> {
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
        Ok(TrustBundle::from_cas(name, cas))
    }

    /// Trust bundles for every top-level CA name (rows without a parent).
    async fn trust_bundles(&self) -> Result<Vec<TrustBundle>, StoreError> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare("SELECT name FROM cas WHERE parent_id IS NULL ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut bundles = Vec::with_capacity(names.len());
        for name in &names {
            bundles.push(self.trust_bundle(name).await?);
        }
        Ok(bundles)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use chrono::Duration;

    use super::*;

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
        let g0 = crate::store::wait(store.change_version()).unwrap();
        let rows = crate::store::wait(store.insert_ca_chain(&[
            new_ca("Root", CaKind::Root, "aa", None, now),
            new_ca("Issuing", CaKind::Intermediate, "bb", Some("KEY"), now),
        ]))
        .unwrap();
        assert!(crate::store::wait(store.change_version()).unwrap() > g0);
        assert_eq!(rows[1].parent_id, Some(rows[0].id));
        assert!(!crate::store::wait(store.root_key_on_host()).unwrap());
        assert_eq!(
            crate::store::wait(store.issuing_ca())
                .unwrap()
                .unwrap()
                .name,
            "Issuing"
        );
        assert!(matches!(
            crate::store::wait(store.insert_ca_chain(&[new_ca(
                "Root",
                CaKind::Trusted,
                "cc",
                None,
                now
            )])),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            crate::store::wait(store.insert_ca_chain(&[new_ca(
                "Other",
                CaKind::Trusted,
                "aa",
                None,
                now
            )])),
            Err(StoreError::Conflict(_))
        ));
        crate::store::wait(store.insert_ca_chain(&[new_ca(
            "Other",
            CaKind::Trusted,
            "dd",
            None,
            now,
        )]))
        .unwrap();
        let names: Vec<String> = crate::store::wait(store.trust_bundles())
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["Root", "Other"]);
        assert!(matches!(
            crate::store::wait(store.trust_bundle("nope")),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn root_key_can_be_taken_offline() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        crate::store::wait(store.insert_ca_chain(&[new_ca(
            "Root",
            CaKind::Root,
            "aa",
            Some("ROOTKEY"),
            now,
        )]))
        .unwrap();
        assert!(crate::store::wait(store.root_key_on_host()).unwrap());
        let (root, key) = crate::store::wait(store.take_root_key()).unwrap().unwrap();
        assert_eq!((root.name.as_str(), key.as_str()), ("Root", "ROOTKEY"));
        assert!(!crate::store::wait(store.root_key_on_host()).unwrap());
        assert!(crate::store::wait(store.take_root_key()).unwrap().is_none());
    }
}
