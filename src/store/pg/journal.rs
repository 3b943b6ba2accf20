use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::{PgStore, lock_order, to_db_time};
use crate::store::api::AppendRows;
use crate::store::journal::{CLAIM_LIMIT, WRITER_LEASE};
use crate::store::{AdminEntry, AdminJournal, Delivery, JournalRow, StoreError};

/// The advisory lock a claim holds, per audit file (a transaction lock keyed by the file's
/// name), so two processes never claim the same rows for one file.
const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// Insert an entry inside the caller's transaction (the change it records commits with it).
pub(super) async fn insert_entry(
    c: &impl GenericClient,
    e: &AdminEntry,
) -> Result<i64, tokio_postgres::Error> {
    lock_order(c).await?;
    let row = c
        .query_one(
            "INSERT INTO admin_audit (created_at, actor, action, target, details, event)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &to_db_time(e.at),
                &crate::store::actor(),
                &e.action,
                &e.target,
                &e.details.to_string(),
                &e.event_line,
            ],
        )
        .await?;
    row.try_get(0)
}

#[async_trait]
impl AdminJournal for PgStore {
    async fn record_admin(&self, entry: &AdminEntry) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let id = insert_entry(&tx, entry).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_journal(
        &self,
        audit_log: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(CLAIM_LOCK, &[&audit_log]).await?;
        tx.execute(
            "INSERT INTO audit_writers (audit_log, holder, heartbeat_at) VALUES ($1, $2, $3)
             ON CONFLICT (audit_log) DO UPDATE SET holder = $2, heartbeat_at = $3",
            &[&audit_log, &holder, &to_db_time(now)],
        )
        .await?;
        let rows = claim(&tx, audit_log).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn release_writer_lease(&self, audit_log: &str, holder: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM audit_writers WHERE audit_log = $1 AND holder = $2",
            &[&audit_log, &holder],
        )
        .await?;
        Ok(())
    }

    async fn deliver_journal(
        &self,
        audit_log: &str,
        now: DateTime<Utc>,
        write: AppendRows<'_>,
    ) -> Result<Result<Delivery, std::io::Error>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(CLAIM_LOCK, &[&audit_log]).await?;
        let heartbeat: Option<i64> = match tx
            .query_opt(
                "SELECT heartbeat_at FROM audit_writers WHERE audit_log = $1",
                &[&audit_log],
            )
            .await?
        {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        };
        if heartbeat.is_some_and(|h| h > to_db_time(now - WRITER_LEASE)) {
            return Ok(Ok(Delivery::GateRelays));
        }
        let rows = claim(&tx, audit_log).await?;
        if rows.is_empty() {
            return Ok(Ok(Delivery::Written(0)));
        }
        // Written while the transaction holds the file's claim lock: no gate can take the
        // lease and claim these rows meanwhile; a failed write rolls the cursor back.
        if let Err(e) = write(&rows) {
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok(Delivery::Written(rows.len())))
    }

    async fn journal_since(&self, after_id: i64) -> Result<Vec<JournalRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, event FROM admin_audit WHERE id > $1 AND event IS NOT NULL ORDER BY id",
                &[&after_id],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(JournalRow {
                id: r.try_get(0)?,
                event_line: r.try_get(1)?,
            });
        }
        Ok(out)
    }
}

/// Rows past the cursor of `audit_log` (a new file starts at the journal floor), and the
/// cursor moved past them.
async fn claim(
    c: &impl GenericClient,
    audit_log: &str,
) -> Result<Vec<JournalRow>, tokio_postgres::Error> {
    let cursor: i64 = match c
        .query_opt(
            "SELECT last_id FROM audit_cursors WHERE audit_log = $1",
            &[&audit_log],
        )
        .await?
    {
        Some(r) => r.try_get(0)?,
        None => c
            .query_one("SELECT journal_floor FROM meta WHERE id = 1", &[])
            .await?
            .try_get(0)?,
    };
    let rows = c
        .query(
            "SELECT id, event FROM admin_audit WHERE id > $1 AND event IS NOT NULL ORDER BY id LIMIT $2",
            &[&cursor, &CLAIM_LIMIT],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(JournalRow {
            id: r.try_get(0)?,
            event_line: r.try_get(1)?,
        });
    }
    if let Some(last) = out.last() {
        c.execute(
            "INSERT INTO audit_cursors (audit_log, last_id) VALUES ($1, $2)
             ON CONFLICT (audit_log) DO UPDATE SET last_id = $2",
            &[&audit_log, &last.id],
        )
        .await?;
    }
    Ok(out)
}
