use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, to_db_time};
use crate::store::api::AppendRows;
use crate::store::journal::{CLAIM_LIMIT, WRITER_LEASE};
use crate::store::{AdminEntry, AdminJournal, Delivery, JournalRow, StoreError};

/// Insert an entry inside the caller's transaction (the change it records commits with it).
pub(super) fn insert_entry(conn: &Connection, e: &AdminEntry) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO admin_audit (created_at, actor, action, target, details, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![to_db_time(e.at), crate::store::actor(), e.action, e.target, e.details.to_string(), e.event_line],
    )?;
    Ok(conn.last_insert_rowid())
}

#[async_trait]
impl AdminJournal for SqliteStore {
    /// Record an admin action on its own (for changes that are not a single store write).
    async fn record_admin(&self, entry: &AdminEntry) -> Result<i64, StoreError> {
        Ok(insert_entry(&self.conn(), entry)?)
    }

    /// Gate side: take (or renew) `audit_log`'s writer lease for `holder` and claim the rows
    /// past the file's cursor, advancing it. The caller writes them through its audit writer.
    async fn claim_journal(
        &self,
        audit_log: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO audit_writers (audit_log, holder, heartbeat_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (audit_log) DO UPDATE SET holder = ?2, heartbeat_at = ?3",
            params![audit_log, holder, to_db_time(now)],
        )?;
        let rows = claim(&tx, audit_log)?;
        tx.commit()?;
        Ok(rows)
    }

    /// Gate side, on stop: give the lease up so the next CLI run writes its own rows at once.
    async fn release_writer_lease(&self, audit_log: &str, holder: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM audit_writers WHERE audit_log = ?1 AND holder = ?2",
            params![audit_log, holder],
        )?;
        Ok(())
    }

    /// CLI side: unless a gate holds a live lease on `audit_log`, hand the pending rows to
    /// `write` (which appends them to the file) and advance the cursor only if it succeeded.
    async fn deliver_journal(
        &self,
        audit_log: &str,
        now: DateTime<Utc>,
        write: AppendRows<'_>,
    ) -> Result<Result<Delivery, std::io::Error>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let heartbeat: Option<i64> = tx
            .query_row(
                "SELECT heartbeat_at FROM audit_writers WHERE audit_log = ?1",
                [audit_log],
                |r| r.get(0),
            )
            .optional()?;
        if heartbeat.is_some_and(|h| h > to_db_time(now - WRITER_LEASE)) {
            return Ok(Ok(Delivery::GateRelays));
        }
        let rows = claim(&tx, audit_log)?;
        if rows.is_empty() {
            return Ok(Ok(Delivery::Written(0)));
        }
        // Written while the transaction holds the store's write lock: no gate can take the
        // lease and claim these rows meanwhile; a failed write rolls the cursor back.
        if let Err(e) = write(&rows) {
            return Ok(Err(e));
        }
        tx.commit()?;
        Ok(Ok(Delivery::Written(rows.len())))
    }

    /// The admin journal rows past `after_id` (oldest first), for tests and `logs export`.
    async fn journal_since(&self, after_id: i64) -> Result<Vec<JournalRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, event FROM admin_audit WHERE id > ?1 AND event IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map([after_id], |r| {
                Ok(JournalRow {
                    id: r.get(0)?,
                    event_line: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// Rows past the cursor of `audit_log` (a new file starts at the journal floor: rows older
/// than the journal were appended by the CLI directly), and the cursor moved past them.
fn claim(conn: &Connection, audit_log: &str) -> rusqlite::Result<Vec<JournalRow>> {
    let cursor: i64 = conn
        .query_row(
            "SELECT last_id FROM audit_cursors WHERE audit_log = ?1",
            [audit_log],
            |r| r.get(0),
        )
        .optional()?
        .map_or_else(
            || {
                conn.query_row("SELECT journal_floor FROM meta WHERE id = 1", [], |r| {
                    r.get(0)
                })
            },
            Ok,
        )?;
    let rows = {
        let mut stmt = conn.prepare(
            "SELECT id, event FROM admin_audit WHERE id > ?1 AND event IS NOT NULL ORDER BY id LIMIT ?2",
        )?;
        stmt.query_map(params![cursor, CLAIM_LIMIT], |r| {
            Ok(JournalRow {
                id: r.get(0)?,
                event_line: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?
    };
    if let Some(last) = rows.last() {
        conn.execute(
            "INSERT INTO audit_cursors (audit_log, last_id) VALUES (?1, ?2)
             ON CONFLICT (audit_log) DO UPDATE SET last_id = ?2",
            params![audit_log, last.id],
        )?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn entry(n: u32) -> AdminEntry {
        AdminEntry {
            at: Utc::now(),
            action: "token_create".into(),
            target: format!("t{n}"),
            details: serde_json::json!({}),
            event_line: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn each_row_is_claimed_once_per_audit_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::store::wait(store.record_admin(&entry(1))).unwrap();
        crate::store::wait(store.record_admin(&entry(2))).unwrap();
        let now = Utc::now();
        let first = crate::store::wait(store.claim_journal("/a.jsonl", "gate-1", now)).unwrap();
        assert_eq!(first.len(), 2);
        assert!(
            crate::store::wait(store.claim_journal("/a.jsonl", "gate-1", now))
                .unwrap()
                .is_empty()
        );
        // Another audit file gets its own copy.
        assert_eq!(
            crate::store::wait(store.claim_journal("/b.jsonl", "gate-2", now))
                .unwrap()
                .len(),
            2
        );
        crate::store::wait(store.record_admin(&entry(3))).unwrap();
        let next = crate::store::wait(store.claim_journal("/a.jsonl", "gate-1", now)).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].event_line, "{\"n\":3}");
    }

    #[test]
    fn the_cli_leaves_rows_to_a_live_gate_and_writes_them_when_none_holds_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        crate::store::wait(store.claim_journal("/a.jsonl", "gate-1", now)).unwrap();
        crate::store::wait(store.record_admin(&entry(1))).unwrap();
        let d = crate::store::wait(
            store.deliver_journal("/a.jsonl", now, &mut |_| panic!("a gate relays")),
        )
        .unwrap();
        assert_eq!(d.unwrap(), Delivery::GateRelays);
        crate::store::wait(store.release_writer_lease("/a.jsonl", "gate-1")).unwrap();
        // A failed write keeps the row pending.
        let failed = crate::store::wait(store.deliver_journal("/a.jsonl", now, &mut |_| {
            Err(std::io::Error::other("disk full"))
        }))
        .unwrap();
        assert!(failed.is_err());
        let mut written = Vec::new();
        let d = crate::store::wait(store.deliver_journal(
            "/a.jsonl",
            now,
            &mut |rows: &[JournalRow]| {
                written.extend(rows.iter().map(|r| r.id));
                Ok(())
            },
        ))
        .unwrap();
        assert_eq!(d.unwrap(), Delivery::Written(1));
        assert_eq!(written.len(), 1);
        let again =
            crate::store::wait(store.deliver_journal("/a.jsonl", now, &mut |_| Ok(()))).unwrap();
        assert_eq!(again.unwrap(), Delivery::Written(0));
    }

    #[test]
    fn a_stale_lease_does_not_hold_rows_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let then = Utc::now() - WRITER_LEASE - chrono::Duration::seconds(1);
        crate::store::wait(store.claim_journal("/a.jsonl", "crashed-gate", then)).unwrap();
        crate::store::wait(store.record_admin(&entry(1))).unwrap();
        let d = crate::store::wait(store.deliver_journal("/a.jsonl", Utc::now(), &mut |_| Ok(())))
            .unwrap();
        assert_eq!(d.unwrap(), Delivery::Written(1));
    }
}
