//! `store copy` into PostgreSQL: rows from another store, table by table, into an empty
//! database, in one transaction; then the identity sequences move past the copied ids and one
//! `migrated` change tells running gates to read everything.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::Client;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::changes::record_change;
use crate::store::transfer::{Cell, TableRows};
use crate::store::{ChangeKind, StoreError};

/// Tables with an identity column (column name), whose sequence must continue after the copy.
const IDENTITIES: &[(&str, &str)] = &[
    ("tokens", "id"),
    ("cas", "id"),
    ("certs", "id"),
    ("admin_audit", "id"),
    ("changes", "version"),
];

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::TEXT => v.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot go into a {ty} column").into()),
            },
            Cell::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Cell::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("bytes cannot go into a {ty} column").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Copy `tables` into the (empty) database behind `client`.
pub async fn import(
    client: &mut Client,
    target: &str,
    tables: &[TableRows],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    super::lock_order(&tx).await?;
    let held: Vec<(String, i64)> = {
        let mut held = Vec::new();
        for table in ["tokens", "cas", "certs", "rotations", "admin_audit"] {
            let n: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?
                .try_get(0)?;
            if n > 0 {
                held.push((table.to_string(), n));
            }
        }
        held
    };
    if !held.is_empty() {
        let what = held
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(StoreError::Conflict(format!(
            "the target {target} is not empty (it holds {what}); copy into a new, empty database (e.g. `createdb botgate`), nothing was written"
        )));
    }
    for t in tables {
        if t.table == "meta" {
            if let Some(row) = t.rows.first()
                && let Some(i) = t.columns.iter().position(|c| c == "journal_floor")
            {
                tx.execute(
                    "UPDATE meta SET journal_floor = $1 WHERE id = 1",
                    &[&row[i]],
                )
                .await?;
            }
            continue;
        }
        if t.rows.is_empty() {
            continue;
        }
        let placeholders = (1..=t.columns.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                t.table,
                t.columns.join(", ")
            ))
            .await
            .map_err(|e| copy_error(&t.table, e))?;
        for row in &t.rows {
            let params: Vec<&(dyn ToSql + Sync)> =
                row.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            tx.execute(&stmt, &params)
                .await
                .map_err(|e| copy_error(&t.table, e))?;
        }
    }
    for (table, column) in IDENTITIES {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                     COALESCE((SELECT MAX({column}) FROM {table}), 1),
                     (SELECT MAX({column}) FROM {table}) IS NOT NULL)"
            ),
            &[],
        )
        .await?;
    }
    record_change(&tx, ChangeKind::Migrated, "store copy").await?;
    tx.commit().await?;
    Ok(())
}

fn copy_error(table: &str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(format!("copying table {table}: {}", super::render(&e)))
}
