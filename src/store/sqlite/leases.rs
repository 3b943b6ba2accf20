use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{SqliteStore, to_db_time};
use crate::store::{GateHeartbeats, JobLeases, StoreError};

#[async_trait]
impl JobLeases for SqliteStore {
    async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO job_leases (job, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?4",
            params![job, holder, to_db_time(now + ttl), to_db_time(now)],
        )?;
        let held: String =
            tx.query_row("SELECT holder FROM job_leases WHERE job = ?1", [job], |r| {
                r.get(0)
            })?;
        tx.commit()?;
        Ok(held == holder)
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM job_leases WHERE job = ?1 AND holder = ?2",
            params![job, holder],
        )?;
        Ok(())
    }
}

#[async_trait]
impl GateHeartbeats for SqliteStore {
    async fn gate_heartbeat(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        alive_within: chrono::Duration,
    ) -> Result<u32, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let since = to_db_time(now - alive_within);
        tx.execute(
            "INSERT INTO gate_heartbeats (instance, at) VALUES (?1, ?2)
             ON CONFLICT (instance) DO UPDATE SET at = excluded.at",
            params![instance, to_db_time(now)],
        )?;
        tx.execute("DELETE FROM gate_heartbeats WHERE at < ?1", [since])?;
        let alive: i64 = tx.query_row(
            "SELECT COUNT(*) FROM gate_heartbeats WHERE at >= ?1",
            [since],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(u32::try_from(alive).unwrap_or(u32::MAX))
    }

    async fn gate_stopped(&self, instance: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM gate_heartbeats WHERE instance = ?1",
            [instance],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn one_holder_at_a_time_until_its_lease_expires_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::leases::contract(&Store::open(dir.path()).unwrap());
    }

    #[test]
    fn gates_alive_are_the_heartbeats_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::leases::heartbeat_contract(&Store::open(dir.path()).unwrap());
    }
}
