use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, from_db_time, to_db_time};
use crate::store::rotations::RotationRow;
use crate::store::{RotationStore, StoreError};

const COLUMNS: &str = "id, kind, old_ref, new_ref, state, quiet_period_secs, min_requests, forced, details, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RotationRow> {
    let details: String = r.get(8)?;
    Ok(RotationRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        old_ref: r.get(2)?,
        new_ref: r.get(3)?,
        state: r.get(4)?,
        quiet_period_secs: r.get(5)?,
        min_requests: r.get(6)?,
        forced: r.get::<_, i64>(7)? != 0,
        // A details column that is not JSON is reported by the caller as a corrupt rotation.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        created_at: from_db_time(r.get(9)?),
        updated_at: from_db_time(r.get(10)?),
    })
}

#[async_trait]
impl RotationStore for SqliteStore {
    /// Insert a new rotation. An id that exists already is a `Conflict` (the caller picks another).
    async fn insert_rotation(&self, row: &RotationRow) -> Result<(), StoreError> {
        let conn = self.conn();
        let taken: Option<String> = conn
            .query_row("SELECT id FROM rotations WHERE id = ?1", [&row.id], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "rotation id {} is taken",
                row.id
            )));
        }
        conn.execute(
            &format!("INSERT INTO rotations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                row.id,
                row.kind,
                row.old_ref,
                row.new_ref,
                row.state,
                row.quiet_period_secs,
                row.min_requests,
                i64::from(row.forced),
                row.details.to_string(),
                to_db_time(row.created_at),
                to_db_time(row.updated_at),
            ],
        )?;
        Ok(())
    }

    /// Write `row` over the stored rotation, but only if it is still in `expected_state`: two
    /// steps of the same rotation racing (CLI and console) cannot both win.
    async fn update_rotation(
        &self,
        row: &RotationRow,
        expected_state: &str,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE rotations SET new_ref = ?2, state = ?3, forced = ?4, details = ?5, updated_at = ?6
             WHERE id = ?1 AND state = ?7",
            params![
                row.id,
                row.new_ref,
                row.state,
                i64::from(row.forced),
                row.details.to_string(),
                to_db_time(row.updated_at),
                expected_state,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "rotation {} is no longer {expected_state} (another botgate changed it); look at `botgate rotate status {}` and try again",
                row.id, row.id
            )));
        }
        Ok(())
    }

    /// One rotation by id.
    async fn find_rotation(&self, id: &str) -> Result<RotationRow, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM rotations WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no rotation {id:?} (see `botgate rotate status`)"))
            })
    }

    /// Every rotation, newest first.
    async fn list_rotations(&self) -> Result<Vec<RotationRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM rotations ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(id: &str, state: &str) -> RotationRow {
        let now = from_db_time(to_db_time(chrono::Utc::now()));
        RotationRow {
            id: id.into(),
            kind: "token".into(),
            old_ref: "old.access".into(),
            new_ref: None,
            state: state.into(),
            quiet_period_secs: 3600,
            min_requests: 1,
            forced: false,
            details: serde_json::json!({ "k": 1 }),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn insert_find_update_with_expected_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = row("rot-000001", "created");
        crate::store::wait(store.insert_rotation(&r)).unwrap();
        assert!(matches!(
            crate::store::wait(store.insert_rotation(&r)),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            crate::store::wait(store.find_rotation("rot-000001")).unwrap(),
            r
        );

        let mut next = r.clone();
        next.state = "added".into();
        next.new_ref = Some("new.access".into());
        crate::store::wait(store.update_rotation(&next, "created")).unwrap();
        assert_eq!(
            crate::store::wait(store.find_rotation("rot-000001"))
                .unwrap()
                .state,
            "added"
        );
        // A second writer that still believes the rotation is `created` loses.
        assert!(matches!(
            crate::store::wait(store.update_rotation(&next, "created")),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            crate::store::wait(store.find_rotation("rot-nope")),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(crate::store::wait(store.list_rotations()).unwrap().len(), 1);
    }
}
