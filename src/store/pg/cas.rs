use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::changes::record_change;
use super::{PgStore, from_db_time, opt_time, to_db_time};
use crate::store::pki::{CaKind, CaRecord, NewCa, TrustBundle};
use crate::store::{CaStore, ChangeKind, StoreError};

const CA_COLUMNS: &str = "id, name, kind, parent_id, subject, fingerprint_sha256, not_after, cert_pem, key_pem, key_type, \
     crl_path, next_crl_number, created_at, crl_der, crl_this_update, crl_next_update";

fn ca_from_row(r: &Row) -> Result<CaRecord, tokio_postgres::Error> {
    Ok(CaRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        kind: CaKind::parse(r.try_get(2)?),
        parent_id: r.try_get(3)?,
        subject: r.try_get(4)?,
        fingerprint_sha256: r.try_get(5)?,
        not_after: from_db_time(r.try_get(6)?),
        cert_pem: r.try_get(7)?,
        key_pem: r.try_get(8)?,
        key_type: r.try_get(9)?,
        crl_path: r.try_get(10)?,
        next_crl_number: r.try_get(11)?,
        created_at: from_db_time(r.try_get(12)?),
        crl_der: r.try_get(13)?,
        crl_this_update: opt_time(r.try_get(14)?),
        crl_next_update: opt_time(r.try_get(15)?),
    })
}

async fn cas_where(
    c: &impl GenericClient,
    clause: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<CaRecord>, StoreError> {
    let rows = c
        .query(&format!("SELECT {CA_COLUMNS} FROM cas {clause}"), params)
        .await?;
    Ok(rows.iter().map(ca_from_row).collect::<Result<_, _>>()?)
}

#[async_trait]
impl CaStore for PgStore {
    async fn insert_ca_chain(&self, chain: &[NewCa<'_>]) -> Result<Vec<CaRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        super::lock_order(&tx).await?;
        let mut parent: Option<i64> = None;
        let mut out = Vec::with_capacity(chain.len());
        for ca in chain {
            if let Some(r) = tx
                .query_opt("SELECT kind FROM cas WHERE name = $1", &[&ca.name])
                .await?
            {
                let kind: String = r.try_get(0)?;
                return Err(StoreError::Conflict(format!(
                    "a CA named {:?} already exists ({kind}); pick another --name (see `botgate ca list`)",
                    ca.name
                )));
            }
            if let Some(r) = tx
                .query_opt(
                    "SELECT name FROM cas WHERE fingerprint_sha256 = $1",
                    &[&ca.fingerprint_sha256],
                )
                .await?
            {
                let existing: String = r.try_get(0)?;
                return Err(StoreError::Conflict(format!(
                    "the CA certificate {} is already trusted as {existing:?}",
                    ca.subject
                )));
            }
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO cas (name, kind, parent_id, subject, fingerprint_sha256, not_after, cert_pem, key_pem, key_type, crl_path, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {CA_COLUMNS}"
                    ),
                    &[
                        &ca.name,
                        &ca.kind.as_str(),
                        &parent,
                        &ca.subject,
                        &ca.fingerprint_sha256,
                        &to_db_time(ca.not_after),
                        &ca.cert_pem,
                        &ca.key_pem,
                        &ca.key_type,
                        &ca.crl_path,
                        &to_db_time(ca.created_at),
                    ],
                )
                .await?;
            let rec = ca_from_row(&row)?;
            parent = Some(rec.id);
            record_change(&tx, ChangeKind::Ca, ca.name).await?;
            out.push(rec);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let conn = self.conn().await?;
        cas_where(&*conn, "ORDER BY id", &[]).await
    }

    async fn find_ca(&self, name: &str) -> Result<CaRecord, StoreError> {
        let conn = self.conn().await?;
        cas_where(&*conn, "WHERE name = $1", &[&name])
            .await?
            .pop()
            .ok_or_else(|| {
                StoreError::NotFound(format!("no CA named {name:?} (see `botgate ca list`)"))
            })
    }

    async fn ca_by_id(&self, id: i64) -> Result<CaRecord, StoreError> {
        let conn = self.conn().await?;
        cas_where(&*conn, "WHERE id = $1", &[&id])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("no CA with id {id}")))
    }

    async fn local_root(&self) -> Result<Option<CaRecord>, StoreError> {
        let conn = self.conn().await?;
        Ok(
            cas_where(&*conn, "WHERE kind = 'root' ORDER BY id DESC LIMIT 1", &[])
                .await?
                .pop(),
        )
    }

    async fn issuing_ca(&self) -> Result<Option<CaRecord>, StoreError> {
        let conn = self.conn().await?;
        Ok(cas_where(
            &*conn,
            "WHERE kind = 'intermediate' AND key_pem IS NOT NULL ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?
        .pop())
    }

    async fn root_key_on_host(&self) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cas WHERE kind = 'root' AND key_pem IS NOT NULL)",
                &[],
            )
            .await?
            .try_get(0)?)
    }

    async fn take_root_key(&self) -> Result<Option<(CaRecord, String)>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(mut root) = cas_where(
            &tx,
            "WHERE kind = 'root' AND key_pem IS NOT NULL LIMIT 1 FOR UPDATE",
            &[],
        )
        .await?
        .pop() else {
            return Ok(None);
        };
        let Some(key) = root.key_pem.take() else {
            return Ok(None);
        };
        tx.execute("UPDATE cas SET key_pem = NULL WHERE id = $1", &[&root.id])
            .await?;
        tx.commit().await?;
        Ok(Some((root, key)))
    }

    async fn set_ca_crl_path(
        &self,
        name: &str,
        crl_path: Option<&str>,
    ) -> Result<CaRecord, StoreError> {
        let ca = self.find_ca(name).await?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "UPDATE cas SET crl_path = $1 WHERE id = $2",
            &[&crl_path, &ca.id],
        )
        .await?;
        record_change(&tx, ChangeKind::Crl, &ca.name).await?;
        let ca = cas_where(&tx, "WHERE id = $1", &[&ca.id])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("no CA named {name:?}")))?;
        tx.commit().await?;
        Ok(ca)
    }

    async fn record_crl(
        &self,
        ca_id: i64,
        crl_number: i64,
        der: &[u8],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "UPDATE cas SET crl_der = $1, crl_this_update = $2, crl_next_update = $3,
                 next_crl_number = GREATEST(next_crl_number, $4::BIGINT + 1) WHERE id = $5",
            &[
                &der,
                &to_db_time(this_update),
                &to_db_time(next_update),
                &crl_number,
                &ca_id,
            ],
        )
        .await?;
        record_change(&tx, ChangeKind::Crl, &ca_id.to_string()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn trust_bundle(&self, name: &str) -> Result<TrustBundle, StoreError> {
        let conn = self.conn().await?;
        let cas = cas_where(
            &*conn,
            "WHERE id IN (WITH RECURSIVE grp(id) AS (
                 SELECT id FROM cas WHERE name = $1
                 UNION SELECT c.id FROM cas c JOIN grp ON c.parent_id = grp.id)
             SELECT id FROM grp) ORDER BY id",
            &[&name],
        )
        .await?;
        if cas.is_empty() {
            return Err(StoreError::NotFound(format!(
                "no CA named {name:?}; trust one with `botgate ca trust FILE --name {name:?}` or see `botgate ca list`"
            )));
        }
        Ok(TrustBundle::from_cas(name, cas))
    }

    async fn trust_bundles(&self) -> Result<Vec<TrustBundle>, StoreError> {
        let names: Vec<String> = {
            let conn = self.conn().await?;
            let rows = conn
                .query(
                    "SELECT name FROM cas WHERE parent_id IS NULL ORDER BY id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?
        };
        let mut bundles = Vec::with_capacity(names.len());
        for name in &names {
            bundles.push(self.trust_bundle(name).await?);
        }
        Ok(bundles)
    }
}
