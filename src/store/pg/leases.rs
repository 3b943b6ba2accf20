use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, to_db_time};
use crate::store::{GateHeartbeats, JobLeases, StoreError};

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

#[async_trait]
impl GateHeartbeats for PgStore {
    async fn gate_heartbeat(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        alive_within: chrono::Duration,
    ) -> Result<u32, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let since = to_db_time(now - alive_within);
        tx.execute(
            "INSERT INTO gate_heartbeats (instance, at) VALUES ($1, $2)
             ON CONFLICT (instance) DO UPDATE SET at = excluded.at",
            &[&instance, &to_db_time(now)],
        )
        .await?;
        tx.execute("DELETE FROM gate_heartbeats WHERE at < $1", &[&since])
            .await?;
        let alive: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM gate_heartbeats WHERE at >= $1",
                &[&since],
            )
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(u32::try_from(alive).unwrap_or(u32::MAX))
    }

    async fn gate_stopped(&self, instance: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM gate_heartbeats WHERE instance = $1",
            &[&instance],
        )
        .await?;
        Ok(())
    }
}
