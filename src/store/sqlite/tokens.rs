use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::changes::record_change;
use super::{SqliteStore, from_db_time, opt_time, to_db_time};
use crate::bounds::TokenBounds;
use crate::credential::SecretHash;
use crate::store::api::AdminFor;
use crate::store::{ChangeKind, NewToken, StoreError, TokenRecord, TokenStore};

const COLUMNS: &str = "id, name, client_id, secret_sha256, created_at, expires_at, revoked_at, last_seen_at, last_seen_ip, created_by, disabled_at, secret_version, previous_secret_sha256, previous_secret_expires_at, allow_ips, rate_limit";

fn from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: String = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        client_id: r.get(2)?,
        secret_hash: SecretHash::from_hex(&hash).unwrap_or(SecretHash([0; 32])),
        created_at: from_db_time(r.get(4)?),
        expires_at: from_db_time(r.get(5)?),
        revoked_at: opt_time(r.get(6)?),
        last_seen_at: opt_time(r.get(7)?),
        last_seen_ip: r.get(8)?,
        created_by: r.get(9)?,
        disabled_at: opt_time(r.get(10)?),
        secret_version: r.get(11)?,
        previous_secret_hash: r
            .get::<_, Option<String>>(12)?
            .and_then(|h| SecretHash::from_hex(&h)),
        previous_secret_expires_at: opt_time(r.get(13)?),
        bounds: crate::store::tokens::bounds_from_row(r.get("allow_ips")?, r.get("rate_limit")?),
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    /// Insert a token. Fails with `Conflict` when a live token already has this name.
    async fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRecord, StoreError> {
        self.create_token_in(t, None)
    }

    /// `create_token` with its admin journal row, in the same transaction.
    async fn create_token_recorded(
        &self,
        t: &NewToken<'_>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        self.create_token_in(t, Some(admin))
    }

    /// Every token, newest first, revoked included.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM tokens ORDER BY name, created_at DESC"
        ))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Find a token by name (the live one if any, else the newest) or by client id.
    async fn find_token(&self, name_or_client_id: &str) -> Result<TokenRecord, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM tokens WHERE name = ?1 OR client_id = ?1
                 ORDER BY (revoked_at IS NULL) DESC, created_at DESC LIMIT 1"
            ),
            [name_or_client_id],
            from_row,
        )
        .optional()?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no token named or with client id {name_or_client_id:?} (see `botgate token list`)"
            ))
        })
    }

    /// Revoke a token by name or client id. Revoking an already revoked token is refused.
    async fn revoke_token(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, StoreError> {
        self.revoke_token_in(name_or_client_id, at, None).await
    }

    /// `revoke_token` with its admin journal row, in the same transaction.
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
        super::super::tokens::check_secret_rotation(&rec, now)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE tokens SET previous_secret_sha256 = secret_sha256, previous_secret_expires_at = ?1,
             secret_sha256 = ?2, secret_version = secret_version + 1 WHERE id = ?3",
            params![to_db_time(previous_until), new_hash.to_hex(), rec.id],
        )?;
        self.finish_update(tx, &rec, Some(admin))
    }

    async fn end_secret_grace(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        super::super::tokens::check_grace_open(&rec, at)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE tokens SET previous_secret_expires_at = ?1 WHERE id = ?2",
            params![to_db_time(at), rec.id],
        )?;
        self.finish_update(tx, &rec, Some(admin))
    }

    async fn revert_token_secret(
        &self,
        name_or_client_id: &str,
        version: i64,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE tokens SET secret_sha256 = previous_secret_sha256, previous_secret_sha256 = NULL,
             previous_secret_expires_at = NULL, secret_version = secret_version - 1
             WHERE id = ?1 AND secret_version = ?2 AND previous_secret_sha256 IS NOT NULL",
            params![rec.id, version],
        )?;
        if changed == 0 {
            return Err(super::super::tokens::revert_conflict(&rec, version));
        }
        self.finish_update(tx, &rec, Some(admin))
    }

    async fn set_token_bounds(
        &self,
        name_or_client_id: &str,
        bounds: &TokenBounds,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let rec = self.live_token(name_or_client_id).await?;
        let (allow_ips, rate) = crate::store::tokens::bounds_columns(bounds);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE tokens SET allow_ips = ?1, rate_limit = ?2 WHERE id = ?3",
            params![allow_ips, rate, rec.id],
        )?;
        self.finish_update(tx, &rec, Some(admin))
    }

    /// Record last-seen times in one batch (called by the gate every few seconds, never per request).
    async fn touch_tokens(
        &self,
        seen: &[(String, DateTime<Utc>, String)],
    ) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                // Both SETs see the old row: the IP moves only with a newer (or equal) sighting.
                "UPDATE tokens SET last_seen_at = max(coalesce(last_seen_at, 0), ?2), \
                 last_seen_ip = CASE WHEN ?2 >= coalesce(last_seen_at, 0) THEN ?3 ELSE last_seen_ip END \
                 WHERE client_id = ?1",
            )?;
            for (client_id, at, ip) in seen {
                stmt.execute(params![client_id, to_db_time(*at), ip])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl SqliteStore {
    /// The token by name or client id, refused when it is revoked (nothing to change on it).
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

    /// After an update of `rec` in `tx`: the change-feed row, the admin row, commit.
    fn finish_update(
        &self,
        tx: rusqlite::Transaction<'_>,
        rec: &TokenRecord,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        record_change(&tx, ChangeKind::Token, &rec.client_id)?;
        let rec = tx.query_row(
            &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
            [rec.id],
            from_row,
        )?;
        if let Some(admin) = admin {
            super::journal::insert_entry(&tx, &admin(&rec))?;
        }
        tx.commit()?;
        Ok(rec)
    }

    /// Set one column of `rec` (a fixed name from this file, never input), record the change
    /// and, when given, the admin row, in one transaction.
    fn update_recorded(
        &self,
        rec: &TokenRecord,
        column: &'static str,
        value: Option<i64>,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!("UPDATE tokens SET {column} = ?1 WHERE id = ?2"),
            params![value, rec.id],
        )?;
        self.finish_update(tx, rec, admin)
    }

    fn create_token_in(
        &self,
        t: &NewToken<'_>,
        admin: Option<AdminFor<'_, TokenRecord>>,
    ) -> Result<TokenRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken: Option<String> = tx
            .query_row(
                "SELECT client_id FROM tokens WHERE name = ?1 AND revoked_at IS NULL",
                [t.name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = taken {
            return Err(StoreError::Conflict(format!(
                "a live token named {:?} already exists (client id {existing}); revoke it first or pick another name",
                t.name
            )));
        }
        tx.execute(
            "INSERT INTO tokens (name, client_id, secret_sha256, created_at, expires_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.name, t.client_id.as_str(), t.secret_hash.to_hex(), to_db_time(t.created_at), to_db_time(t.expires_at), crate::store::actor()],
        )?;
        let id = tx.last_insert_rowid();
        if t.bounds != TokenBounds::default() {
            let (allow_ips, rate) = crate::store::tokens::bounds_columns(&t.bounds);
            tx.execute(
                "UPDATE tokens SET allow_ips = ?1, rate_limit = ?2 WHERE id = ?3",
                params![allow_ips, rate, id],
            )?;
        }
        record_change(&tx, ChangeKind::Token, t.client_id.as_str())?;
        let rec = tx.query_row(
            &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
            [id],
            from_row,
        )?;
        if let Some(admin) = admin {
            super::journal::insert_entry(&tx, &admin(&rec))?;
        }
        tx.commit()?;
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
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::credential::{ClientId, ClientSecret};
    use crate::store::Store;
    use crate::store::TokenStatus;

    fn new_token<'a>(name: &'a str, id: &'a ClientId, now: DateTime<Utc>) -> NewToken<'a> {
        NewToken {
            name,
            client_id: id,
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + Duration::days(365),
            bounds: Default::default(),
        }
    }

    #[test]
    fn an_older_sighting_does_not_replace_the_last_seen_ip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let id = ClientId::generate();
        crate::store::wait(store.create_token(&new_token("ci-a-prod", &id, now))).unwrap();
        let key = id.as_str().to_string();
        crate::store::wait(store.touch_tokens(&[(key.clone(), now, "10.0.0.2".into())])).unwrap();
        crate::store::wait(store.touch_tokens(&[(
            key.clone(),
            now - Duration::seconds(5),
            "10.0.0.1".into(),
        )]))
        .unwrap();
        let t = crate::store::wait(store.find_token("ci-a-prod")).unwrap();
        assert_eq!(t.last_seen_ip.as_deref(), Some("10.0.0.2"));
        crate::store::wait(store.touch_tokens(&[(
            key,
            now + Duration::seconds(5),
            "10.0.0.3".into(),
        )]))
        .unwrap();
        let t = crate::store::wait(store.find_token("ci-a-prod")).unwrap();
        assert_eq!(t.last_seen_ip.as_deref(), Some("10.0.0.3"));
    }

    #[test]
    fn names_unique_among_live_tokens_and_generation_bumps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let g0 = crate::store::wait(store.change_version()).unwrap();
        let (a, b) = (ClientId::generate(), ClientId::generate());
        crate::store::wait(store.create_token(&new_token("ci-deploy-prod", &a, now))).unwrap();
        assert!(crate::store::wait(store.change_version()).unwrap() > g0);
        assert!(matches!(
            crate::store::wait(store.create_token(&new_token("ci-deploy-prod", &b, now))),
            Err(StoreError::Conflict(_))
        ));
        crate::store::wait(store.revoke_token("ci-deploy-prod", now)).unwrap();
        crate::store::wait(store.create_token(&new_token("ci-deploy-prod", &b, now))).unwrap();
        assert_eq!(
            crate::store::wait(store.find_token("ci-deploy-prod"))
                .unwrap()
                .client_id,
            b.as_str()
        );
        assert_eq!(crate::store::wait(store.list_tokens()).unwrap().len(), 2);
    }

    #[test]
    fn token_bounds_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::tokens::bounds_contract(&Store::open(dir.path()).unwrap());
    }

    #[test]
    fn status_follows_time() {
        let now = Utc::now();
        let id = ClientId::generate();
        let t = new_token("a-b-c", &id, now);
        let mut rec = TokenRecord {
            id: 1,
            name: t.name.into(),
            client_id: id.to_string(),
            secret_hash: t.secret_hash,
            created_at: now,
            expires_at: now + Duration::days(5),
            revoked_at: None,
            disabled_at: None,
            secret_version: 1,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            last_seen_at: None,
            last_seen_ip: None,
            created_by: "x".into(),
            bounds: Default::default(),
        };
        assert_eq!(rec.status(now), TokenStatus::Expiring);
        assert_eq!(rec.status(now + Duration::days(6)), TokenStatus::Expired);
        rec.revoked_at = Some(now);
        assert_eq!(rec.status(now), TokenStatus::Revoked);
    }
}
