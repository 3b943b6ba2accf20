use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, to_db_time};
use crate::store::{JobLeases, StoreError};

#[async_trait]
impl JobLeases for PgStore {
    async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        // One statement: the row is locked by the upsert, so two gates never both win.
        let won = conn
            .query_opt(
                "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4
                 RETURNING holder",
                &[&job, &holder, &to_db_time(now + ttl), &to_db_time(now)],
            )
            .await?;
        Ok(won.is_some())
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM job_leases WHERE job = $1 AND holder = $2",
            &[&job, &holder],
        )
        .await?;
        Ok(())
    }
}
