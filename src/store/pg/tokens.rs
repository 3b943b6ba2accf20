use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::changes::record_change;
use super::{PgStore, from_db_time, opt_time, to_db_time};
use crate::bounds::TokenBounds;
use crate::credential::SecretHash;
use crate::store::api::AdminFor;
use crate::store::{ChangeKind, NewToken, StoreError, TokenRecord, TokenStore};

const COLUMNS: &str = "id, name, client_id, secret_sha256, created_at, expires_at, revoked_at, last_seen_at, last_seen_ip, created_by, disabled_at, secret_version, previous_secret_sha256, previous_secret_expires_at, allow_ips, rate_limit";

fn from_row(r: &Row) -> Result<TokenRecord, tokio_postgres::Error> {
    let hash: String = r.try_get(3)?;
    Ok(TokenRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        client_id: r.try_get(2)?,
        secret_hash: SecretHash::from_hex(&hash).unwrap_or(SecretHash([0; 32])),
        created_at: from_db_time(r.try_get(4)?),
        expires_at: from_db_time(r.try_get(5)?),
        revoked_at: opt_time(r.try_get(6)?),
        last_seen_at: opt_time(r.try_get(7)?),
        last_seen_ip: r.try_get(8)?,
        created_by: r.try_get(9)?,
        disabled_at: opt_time(r.try_get(10)?),
        secret_version: r.try_get(11)?,
        previous_secret_hash: r
            .try_get::<_, Option<String>>(12)?
            .and_then(|h| SecretHash::from_hex(&h)),
        previous_secret_expires_at: opt_time(r.try_get(13)?),
        bounds: crate::store::tokens::bounds_from_row(
            r.try_get("allow_ips")?,
            r.try_get("rate_limit")?,
        ),
    })
}

/// After an update of `rec` in `tx`: the change-feed row, the admin row when given, commit.
async fn finish_update(
    tx: tokio_postgres::Transaction<'_>,
    rec: &TokenRecord,
    admin: Option<AdminFor<'_, TokenRecord>>,
) -> Result<TokenRecord, StoreError> {
    record_change(&tx, ChangeKind::Token, &rec.client_id).await?;
    let rec = by_id(&tx, rec.id).await?;
    if let Some(admin) = admin {
        super::journal::insert_entry(&tx, &admin(&rec)).await?;
    }
    tx.commit().await?;
    Ok(rec)
}

async fn by_id(c: &impl GenericClient, id: i64) -> Result<TokenRecord, StoreError> {
    let row = c
        .query_one(
            &format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(from_row(&row)?)
}

#[async_trait]
impl TokenStore for PgStore {
    async fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRecord, StoreError> {
        self.create_token_in(t, None).await
    }

    async fn create_token_recorded(
        &self,
        t: &NewToken<'_>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        self.create_token_in(t, Some(admin)).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!("SELECT {COLUMNS} FROM tokens ORDER BY name, created_at DESC"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn find_token(&self, name_or_client_id: &str) -> Result<TokenRecord, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM tokens WHERE name = $1 OR client_id = $1
                     ORDER BY (revoked_at IS NULL) DESC, created_at DESC LIMIT 1"
                ),
                &[&name_or_client_id],
            )
            .await?;
        match row {
            Some(r) => Ok(from_row(&r)?),
            None => Err(StoreError::NotFound(format!(
                "no token named or with client id {name_or_client_id:?} (see `botgate token list`)"
            ))),
        }
    }

    async fn revoke_token(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, StoreError> {
        self.revoke_token_in(name_or_client_id, at, None).await
    }

    async fn revoke_token_recorded(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        self.revoke_token_in(name_or_client_id, at, Some(admin))
            .await
    }

    async fn set_token_disabled(
        &self,
        name_or_client_id: &str,
        disabled: bool,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        if rec.disabled_at.is_some() == disabled {
            let state = if disabled { "disabled" } else { "enabled" };
            return Err(StoreError::Conflict(format!(
                "token {:?} ({}) is already {state}",
                rec.name, rec.client_id
            )));
        }
        let value = disabled.then(|| to_db_time(at));
        self.update_recorded(&rec, "disabled_at", value, Some(admin))
            .await
    }

    async fn set_token_expiry(
        &self,
        name_or_client_id: &str,
        expires_at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        self.update_recorded(
            &rec,
            "expires_at",
            Some(to_db_time(expires_at)),
            Some(admin),
        )
        .await
    }

    async fn rotate_token_secret(
        &self,
        name_or_client_id: &str,
        new_hash: &SecretHash,
        now: DateTime<Utc>,
        previous_until: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        crate::store::tokens::check_secret_rotation(&rec, now)?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // Only if nobody rotated it since it was read (the version is the guard).
        let changed = tx
            .execute(
                "UPDATE tokens SET previous_secret_sha256 = secret_sha256, previous_secret_expires_at = $1,
                 secret_sha256 = $2, secret_version = secret_version + 1
                 WHERE id = $3 AND secret_version = $4",
                &[&to_db_time(previous_until), &new_hash.to_hex(), &rec.id, &rec.secret_version],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!(
                "token {:?} had its secret rotated meanwhile; look again with `botgate token show`",
                rec.name
            )));
        }
        finish_update(tx, &rec, Some(admin)).await
    }

    async fn end_secret_grace(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        crate::store::tokens::check_grace_open(&rec, at)?;
        self.update_recorded(
            &rec,
            "previous_secret_expires_at",
            Some(to_db_time(at)),
            Some(admin),
        )
        .await
    }

    async fn revert_token_secret(
        &self,
        name_or_client_id: &str,
        version: i64,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE tokens SET secret_sha256 = previous_secret_sha256, previous_secret_sha256 = NULL,
                 previous_secret_expires_at = NULL, secret_version = secret_version - 1
                 WHERE id = $1 AND secret_version = $2 AND previous_secret_sha256 IS NOT NULL",
                &[&rec.id, &version],
            )
            .await?;
        if changed == 0 {
            return Err(crate::store::tokens::revert_conflict(&rec, version));
        }
        finish_update(tx, &rec, Some(admin)).await
    }

    async fn set_token_bounds(
        &self,
        name_or_client_id: &str,
        bounds: &TokenBounds,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        let (allow_ips, rate) = crate::store::tokens::bounds_columns(bounds);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "UPDATE tokens SET allow_ips = $1, rate_limit = $2 WHERE id = $3",
            &[&allow_ips, &rate, &rec.id],
        )
        .await?;
        finish_update(tx, &rec, Some(admin)).await
    }

    async fn touch_tokens(
        &self,
        seen: &[(String, DateTime<Utc>, String)],
    ) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let stmt = tx
            .prepare(
                // Both SETs see the old row: the IP moves only with a newer (or equal) sighting.
                "UPDATE tokens SET last_seen_at = GREATEST(COALESCE(last_seen_at, 0), $2),
                 last_seen_ip = CASE WHEN $2 >= COALESCE(last_seen_at, 0) THEN $3 ELSE last_seen_ip END
                 WHERE client_id = $1",
            )
            .await?;
        for (client_id, at, ip) in seen {
            tx.execute(&stmt, &[client_id, &to_db_time(*at), ip])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl PgStore {
    async fn live_token(&self, name_or_client_id: &str) -> Result<TokenRecord, StoreError> {
        let rec = self.find_token(name_or_client_id).await?;
        if rec.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "token {:?} ({}) is revoked; create a new one",
                rec.name, rec.client_id
            )));
        }
        Ok(rec)
    }

    /// Set one column of `rec` (a fixed name from this file, never input), record the change
    /// and, when given, the admin row, in one transaction.
    async fn update_recorded(
        &self,
        rec: &TokenRecord,
        column: &'static str,
        value: Option<i64>,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            &format!("UPDATE tokens SET {column} = $1 WHERE id = $2"),
            &[&value, &rec.id],
        )
        .await?;
        finish_update(tx, rec, admin).await
    }

    async fn create_token_in(
        &self,
        t: &NewToken<'_>,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // The live-name index decides races; the lock makes the check below exact.
        super::lock_order(&tx).await?;
        let taken = tx
            .query_opt(
                "SELECT client_id FROM tokens WHERE name = $1 AND revoked_at IS NULL",
                &[&t.name],
            )
            .await?;
        if let Some(existing) = taken {
            let existing: String = existing.try_get(0)?;
            return Err(StoreError::Conflict(format!(
                "a live token named {:?} already exists (client id {existing}); revoke it first or pick another name",
                t.name
            )));
        }
        let row = tx
            .query_one(
                "INSERT INTO tokens (name, client_id, secret_sha256, created_at, expires_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &t.name,
                    &t.client_id.as_str(),
                    &t.secret_hash.to_hex(),
                    &to_db_time(t.created_at),
                    &to_db_time(t.expires_at),
                    &crate::store::actor(),
                ],
            )
            .await?;
        let id: i64 = row.try_get(0)?;
        if t.bounds != TokenBounds::default() {
            let (allow_ips, rate) = crate::store::tokens::bounds_columns(&t.bounds);
            tx.execute(
                "UPDATE tokens SET allow_ips = $1, rate_limit = $2 WHERE id = $3",
                &[&allow_ips, &rate, &id],
            )
            .await?;
        }
        record_change(&tx, ChangeKind::Token, t.client_id.as_str()).await?;
        let rec = by_id(&tx, id).await?;
        if let Some(admin) = admin {
            super::journal::insert_entry(&tx, &admin(&rec)).await?;
        }
        tx.commit().await?;
        Ok(rec)
    }

    async fn revoke_token_in(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.find_token(name_or_client_id).await?;
        if rec.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "token {:?} ({}) is already revoked",
                rec.name, rec.client_id
            )));
        }
        self.update_recorded(&rec, "revoked_at", Some(to_db_time(at)), admin)
            .await
    }
}
