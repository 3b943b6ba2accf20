use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, from_db_time, to_db_time};
use crate::store::usage::{UsageRecord, UsageRow};
use crate::store::{StoreError, UsageFeed};

#[async_trait]
impl UsageFeed for PgStore {
    async fn record_usage(
        &self,
        instance: &str,
        rows: &[UsageRow],
        keep_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (mut at, mut requests, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for r in rows {
            at.push(to_db_time(r.at));
            requests.push(i64::try_from(r.requests).unwrap_or(i64::MAX));
            events.push(r.event.as_str());
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "DELETE FROM usage WHERE at < $1",
            &[&to_db_time(keep_after)],
        )
        .await?;
        // One round trip for the whole batch.
        tx.execute(
            "INSERT INTO usage (instance, at, requests, event)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[])",
            &[&instance, &at, &requests, &events],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn usage_since(
        &self,
        after: i64,
        instance: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, instance, at, requests, event FROM usage
                 WHERE id > $1 AND instance <> $2 ORDER BY id LIMIT $3",
                &[&after, &instance, &(limit as i64)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(UsageRecord {
                id: r.try_get(0)?,
                instance: r.try_get(1)?,
                row: UsageRow {
                    at: from_db_time(r.try_get(2)?),
                    requests: u64::try_from(r.try_get::<_, i64>(3)?).unwrap_or(0),
                    event: r.try_get(4)?,
                },
            });
        }
        Ok(out)
    }
}
