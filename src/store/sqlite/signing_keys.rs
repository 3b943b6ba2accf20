use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::changes::record_change;
use super::{SqliteStore, from_db_time, to_db_time};
use crate::store::api::AdminFor;
use crate::store::signing_keys::{NewSigningKey, SigningKeyRecord, SigningKeyStore};
use crate::store::{ChangeKind, StoreError};

const COLUMNS: &str =
    "kid, alg, private_pem, public_jwk, cert_pem, created_at, activates_at, announced";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_pem: r.get(2)?,
        public_jwk: r.get(3)?,
        cert_pem: r.get(4)?,
        created_at: from_db_time(r.get(5)?),
        activates_at: from_db_time(r.get(6)?),
        announced: r.get(7)?,
    })
}

fn by_kid(conn: &rusqlite::Connection, kid: &str) -> rusqlite::Result<Option<SigningKeyRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM signing_keys WHERE kid = ?1"),
        [kid],
        from_row,
    )
    .optional()
}

/// Insert `k` with its change-feed and admin rows inside `tx`; an existing kid is a `Conflict`.
fn insert_in(
    tx: &rusqlite::Transaction<'_>,
    k: &NewSigningKey<'_>,
    admin: AdminFor<'_, SigningKeyRecord>,
) -> Result<SigningKeyRecord, StoreError> {
    if by_kid(tx, k.kid)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a signing key with kid {} exists already",
            k.kid
        )));
    }
    tx.execute(
        &format!("INSERT INTO signing_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            k.kid,
            k.alg,
            k.private_pem,
            k.public_jwk,
            k.cert_pem,
            to_db_time(k.created_at),
            to_db_time(k.activates_at),
            k.announced
        ],
    )?;
    record_change(tx, ChangeKind::Key, k.kid)?;
    let rec = by_kid(tx, k.kid)?
        .ok_or_else(|| StoreError::NotFound(format!("signing key {} vanished", k.kid)))?;
    super::journal::insert_entry(tx, &admin(&rec))?;
    Ok(rec)
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn insert_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<SigningKeyRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rec = insert_in(&tx, k, admin)?;
        tx.commit()?;
        Ok(rec)
    }

    async fn insert_first_signing_key(
        &self,
        k: &NewSigningKey<'_>,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: the write lock is taken before the count, so another process's first key
        // cannot land in between.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM signing_keys", [], |r| r.get(0))?;
        if n > 0 {
            return Ok(None);
        }
        let rec = insert_in(&tx, k, admin)?;
        tx.commit()?;
        Ok(Some(rec))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM signing_keys ORDER BY activates_at, created_at, kid"
        ))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    async fn announce_signing_key(
        &self,
        kid: &str,
        state: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE signing_keys SET announced = ?2 WHERE kid = ?1 AND announced <> ?2",
            params![kid, state],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let rec = by_kid(&tx, kid)?;
        if let Some(rec) = &rec {
            super::journal::insert_entry(&tx, &admin(rec))?;
        }
        tx.commit()?;
        Ok(rec)
    }

    async fn remove_signing_key(
        &self,
        kid: &str,
        admin: AdminFor<'_, SigningKeyRecord>,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(rec) = by_kid(&tx, kid)? else {
            return Ok(None);
        };
        tx.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
        record_change(&tx, ChangeKind::Key, kid)?;
        super::journal::insert_entry(&tx, &admin(&rec))?;
        tx.commit()?;
        Ok(Some(rec))
    }

    async fn app_audiences(
        &self,
        wanted: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(wanted.len());
        for (app, fresh) in wanted {
            tx.execute(
                "INSERT INTO app_audiences (app, aud, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (app) DO NOTHING",
                params![app, fresh, to_db_time(now)],
            )?;
            let aud: String =
                tx.query_row("SELECT aud FROM app_audiences WHERE app = ?1", [app], |r| {
                    r.get(0)
                })?;
            out.push((app.clone(), aud));
        }
        tx.commit()?;
        Ok(out)
    }

    async fn list_app_audiences(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT app, aud FROM app_audiences ORDER BY app")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn signing_keys_and_audiences_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::signing_keys::contract(&Store::open(dir.path()).unwrap());
    }
}
