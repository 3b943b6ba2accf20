use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::changes::record_change;
use super::{PgStore, from_db_time, to_db_time};
use crate::store::api::AdminFor;
use crate::store::signing_keys::{NewSigningKey, SigningKeyRecord, SigningKeyStore};
use crate::store::{ChangeKind, StoreError};

const COLUMNS: &str =
    "kid, alg, private_pem, public_jwk, cert_pem, created_at, activates_at, announced";

fn from_row(r: &Row) -> Result<SigningKeyRecord, tokio_postgres::Error> {
    Ok(SigningKeyRecord {
        kid: r.try_get(0)?,
        alg: r.try_get(1)?,
        private_pem: r.try_get(2)?,
        public_jwk: r.try_get(3)?,
        cert_pem: r.try_get(4)?,
        created_at: from_db_time(r.try_get(5)?),
        activates_at: from_db_time(r.try_get(6)?),
        announced: r.try_get(7)?,
    })
}

async fn by_kid(
    c: &impl GenericClient,
    kid: &str,
    lock: bool,
) -> Result<Option<SigningKeyRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM signing_keys WHERE kid = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    match c.query_opt(&sql, &[&kid]).await? {
        Some(r) => Ok(Some(from_row(&r)?)),
        None => Ok(None),
    }
}

#[async_trait]
impl SigningKeyStore for PgStore {
    async fn insert_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<SigningKeyRecord, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (kid) DO NOTHING"
                ),
                &[
                    &k.kid,
                    &k.alg,
                    &k.private_pem,
                    &k.public_jwk,
                    &k.cert_pem,
                    &to_db_time(k.created_at),
                    &to_db_time(k.activates_at),
                    &k.announced,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a signing key with kid {} exists already",
                k.kid
            )));
        }
        record_change(&tx, ChangeKind::Key, k.kid).await?;
        let rec = by_kid(&tx, k.kid, false)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("signing key {} vanished", k.kid)))?;
        super::journal::insert_entry(&tx, &admin(&rec)).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn insert_first_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // Two gates starting on an empty store: the table lock makes one of them wait, then see
        // the other's key.
        tx.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE", &[])
            .await?;
        let n: i64 = tx
            .query_one("SELECT COUNT(*) FROM signing_keys", &[])
            .await?
            .try_get(0)?;
        if n > 0 {
            return Ok(None);
        }
        tx.execute(
            &format!(
                "INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &k.kid,
                &k.alg,
                &k.private_pem,
                &k.public_jwk,
                &k.cert_pem,
                &to_db_time(k.created_at),
                &to_db_time(k.activates_at),
                &k.announced,
            ],
        )
        .await?;
        record_change(&tx, ChangeKind::Key, k.kid).await?;
        let rec = by_kid(&tx, k.kid, false)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("signing key {} vanished", k.kid)))?;
        super::journal::insert_entry(&tx, &admin(&rec)).await?;
        tx.commit().await?;
        Ok(Some(rec))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM signing_keys ORDER BY activates_at, created_at, kid"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn announce_signing_key(
        &self,
        kid: &str,
        state: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // The row lock makes the check-and-set exact when two gates announce at once.
        let changed = tx
            .execute(
                "UPDATE signing_keys SET announced = $2 WHERE kid = $1 AND announced <> $2",
                &[&kid, &state],
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        let rec = by_kid(&tx, kid, false).await?;
        if let Some(rec) = &rec {
            super::journal::insert_entry(&tx, &admin(rec)).await?;
        }
        tx.commit().await?;
        Ok(rec)
    }

    async fn remove_signing_key(
        &self,
        kid: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some(rec) = by_kid(&tx, kid, true).await? else {
            return Ok(None);
        };
        tx.execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid])
            .await?;
        record_change(&tx, ChangeKind::Key, kid).await?;
        super::journal::insert_entry(&tx, &admin(&rec)).await?;
        tx.commit().await?;
        Ok(Some(rec))
    }

    async fn app_audiences(
        &self,
        wanted: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let mut out = Vec::with_capacity(wanted.len());
        for (app, fresh) in wanted {
            tx.execute(
                "INSERT INTO app_audiences (app, aud, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (app) DO NOTHING",
                &[app, fresh, &to_db_time(now)],
            )
            .await?;
            let row = tx
                .query_one("SELECT aud FROM app_audiences WHERE app = $1", &[app])
                .await?;
            out.push((app.clone(), row.try_get(0)?));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_app_audiences(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query("SELECT app, aud FROM app_audiences ORDER BY app", &[])
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
