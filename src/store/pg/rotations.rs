use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PgStore, from_db_time, to_db_time};
use crate::store::rotations::RotationRow;
use crate::store::{RotationStore, StoreError};

const COLUMNS: &str = "id, kind, old_ref, new_ref, state, quiet_period_secs, min_requests, forced, details, created_at, updated_at";

fn from_row(r: &Row) -> Result<RotationRow, tokio_postgres::Error> {
    let details: String = r.try_get(8)?;
    Ok(RotationRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        old_ref: r.try_get(2)?,
        new_ref: r.try_get(3)?,
        state: r.try_get(4)?,
        quiet_period_secs: r.try_get(5)?,
        min_requests: r.try_get(6)?,
        forced: r.try_get::<_, i64>(7)? != 0,
        // A details column that is not JSON is reported by the caller as a corrupt rotation.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        created_at: from_db_time(r.try_get(9)?),
        updated_at: from_db_time(r.try_get(10)?),
    })
}

#[async_trait]
impl RotationStore for PgStore {
    async fn insert_rotation(&self, row: &RotationRow) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                &format!(
                    "INSERT INTO rotations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (id) DO NOTHING"
                ),
                &[
                    &row.id,
                    &row.kind,
                    &row.old_ref,
                    &row.new_ref,
                    &row.state,
                    &row.quiet_period_secs,
                    &row.min_requests,
                    &i64::from(row.forced),
                    &row.details.to_string(),
                    &to_db_time(row.created_at),
                    &to_db_time(row.updated_at),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "rotation id {} is taken",
                row.id
            )));
        }
        Ok(())
    }

    async fn update_rotation(
        &self,
        row: &RotationRow,
        expected_state: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE rotations SET new_ref = $2, state = $3, forced = $4, details = $5, updated_at = $6
                 WHERE id = $1 AND state = $7",
                &[
                    &row.id,
                    &row.new_ref,
                    &row.state,
                    &i64::from(row.forced),
                    &row.details.to_string(),
                    &to_db_time(row.updated_at),
                    &expected_state,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "rotation {} is no longer {expected_state} (another botgate changed it); look at `botgate rotate status {}` and try again",
                row.id, row.id
            )));
        }
        Ok(())
    }

    async fn find_rotation(&self, id: &str) -> Result<RotationRow, StoreError> {
        let conn = self.conn().await?;
        match conn
            .query_opt(
                &format!("SELECT {COLUMNS} FROM rotations WHERE id = $1"),
                &[&id],
            )
            .await?
        {
            Some(r) => Ok(from_row(&r)?),
            None => Err(StoreError::NotFound(format!(
                "no rotation {id:?} (see `botgate rotate status`)"
            ))),
        }
    }

    async fn list_rotations(&self) -> Result<Vec<RotationRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!("SELECT {COLUMNS} FROM rotations ORDER BY created_at DESC, id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
