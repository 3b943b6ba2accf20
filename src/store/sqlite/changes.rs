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
