use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{SqliteStore, from_db_time, to_db_time};
use crate::store::usage::{UsageRecord, UsageRow};
use crate::store::{StoreError, UsageFeed};

#[async_trait]
impl UsageFeed for SqliteStore {
    async fn record_usage(
        &self,
        instance: &str,
        rows: &[UsageRow],
        keep_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM usage WHERE at < ?1", [to_db_time(keep_after)])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO usage (instance, at, requests, event) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                let requests = i64::try_from(r.requests).unwrap_or(i64::MAX);
                insert.execute(params![instance, to_db_time(r.at), requests, r.event])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    async fn usage_since(
        &self,
        after: i64,
        instance: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, instance, at, requests, event FROM usage
             WHERE id > ?1 AND instance <> ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after, instance, limit as i64], |r| {
            Ok(UsageRecord {
                id: r.get(0)?,
                instance: r.get(1)?,
                row: UsageRow {
                    at: from_db_time(r.get(2)?),
                    requests: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    event: r.get(4)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_usage_feed_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::usage::contract(&crate::store::Store::open(dir.path()).unwrap());
    }
}
