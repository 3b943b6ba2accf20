use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{SqliteStore, to_db_time};
use crate::store::{JobLeases, StoreError};

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

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn one_holder_at_a_time_until_its_lease_expires_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::leases::contract(&Store::open(dir.path()).unwrap());
    }
}
