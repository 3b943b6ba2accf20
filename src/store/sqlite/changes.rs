use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, params};

use super::{SqliteStore, from_db_time, to_db_time};
use crate::store::{Change, ChangeFeed, ChangeKind, StoreError};

/// Append a change inside the caller's transaction (it commits with the write it describes).
pub(super) fn record_change(
    conn: &Connection,
    kind: ChangeKind,
    subject: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO changes (at, kind, subject) VALUES (?1, ?2, ?3)",
        params![to_db_time(Utc::now()), kind.as_str(), subject],
    )?;
    Ok(())
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn change_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(version), 0) FROM changes", [], |r| {
                r.get(0)
            })?)
    }

    async fn changes_since(&self, after: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version, at, kind, subject FROM changes WHERE version > ?1 ORDER BY version LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(Change {
                    version: r.get(0)?,
                    at: from_db_time(r.get(1)?),
                    kind: ChangeKind::parse(&r.get::<_, String>(2)?),
                    subject: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use crate::credential::{ClientId, ClientSecret};
    use crate::store::{ChangeKind, NewToken, Store, wait};

    #[test]
    fn every_enforcement_write_appends_one_versioned_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(wait(store.change_version()).unwrap(), 0);
        let id = ClientId::generate();
        let now = chrono::Utc::now();
        let token = NewToken {
            name: "ci-deploy-prod",
            client_id: &id,
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + Duration::days(30),
            bounds: Default::default(),
        };
        wait(store.create_token(&token)).unwrap();
        wait(store.revoke_token("ci-deploy-prod", now)).unwrap();
        assert_eq!(wait(store.change_version()).unwrap(), 2);
        let all = wait(store.changes_since(0, 10)).unwrap();
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .all(|c| c.kind == ChangeKind::Token && c.subject == id.as_str())
        );
        assert_eq!(all[0].version, 1);
        let later = wait(store.changes_since(1, 10)).unwrap();
        assert_eq!(later.iter().map(|c| c.version).collect::<Vec<_>>(), [2]);
        // A refused write (the token is already revoked) changes nothing.
        assert!(wait(store.revoke_token("ci-deploy-prod", now)).is_err());
        assert_eq!(wait(store.change_version()).unwrap(), 2);
        // Last-seen batches are per-request data: not a change.
        wait(store.touch_tokens(&[(id.as_str().into(), now, "10.0.0.1".into())])).unwrap();
        assert_eq!(wait(store.change_version()).unwrap(), 2);
    }

    #[test]
    fn a_store_from_before_the_feed_continues_past_its_generation() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            drop(store);
        }
        // Put the file back at schema 4 with a generation counter, as an older botgate left it.
        let path = dir.path().join(super::super::STORE_FILE);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE changes; DROP TABLE job_leases; DROP TABLE usage; ALTER TABLE tokens DROP COLUMN disabled_at;
             DROP TABLE signing_keys; DROP TABLE app_audiences;
             ALTER TABLE tokens DROP COLUMN secret_version; ALTER TABLE tokens DROP COLUMN previous_secret_sha256;
             ALTER TABLE tokens DROP COLUMN previous_secret_expires_at;
             DROP TABLE gate_heartbeats; ALTER TABLE tokens DROP COLUMN allow_ips; ALTER TABLE tokens DROP COLUMN rate_limit;
             UPDATE meta SET generation = 7; PRAGMA user_version = 4;",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            wait(store.schema_version()).unwrap(),
            11,
            "migrated to the newest schema"
        );
        assert_eq!(wait(store.change_version()).unwrap(), 7);
        let rows = wait(store.changes_since(0, 10)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, ChangeKind::Migrated);
    }
}
