//! `store copy` out of SQLite: every row of the copied tables as plain cells.

use rusqlite::types::ValueRef;

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::transfer::{COPIED_TABLES, Cell, META_COLUMNS, TableRows};

impl SqliteStore {
    pub(super) fn export(&self) -> Result<Vec<TableRows>, StoreError> {
        let conn = self.conn();
        let mut out = Vec::with_capacity(COPIED_TABLES.len());
        for table in COPIED_TABLES {
            let columns: Vec<String> = if *table == "meta" {
                META_COLUMNS.iter().map(|c| c.to_string()).collect()
            } else {
                let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
                stmt.query_map([], |r| r.get::<_, String>(1))?
                    .collect::<Result<_, _>>()?
            };
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY rowid",
                columns.join(", ")
            ))?;
            let rows = stmt
                .query_map([], |r| {
                    (0..columns.len())
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                ValueRef::Null => Cell::Null,
                                ValueRef::Integer(v) => Cell::Int(v),
                                ValueRef::Real(v) => Cell::Text(v.to_string()),
                                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into()),
                                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(TableRows {
                table: table.to_string(),
                columns,
                rows,
            });
        }
        Ok(out)
    }
}
