//! The embedded store: one SQLite file (WAL, mode 0600) in the state dir, one connection,
//! serialized. Implements every `api` trait; the only place SQLite SQL is written.

mod cas;
mod certs;
mod changes;
mod journal;
mod leases;
mod rotations;
mod schema;
mod signing_keys;
mod tokens;
mod transfer;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;

use super::{Backend, StoreError, create_private_dir};

/// File name of the store inside the state dir.
pub const STORE_FILE: &str = "botgate.db";

/// Handle to the SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating if needed) the store in `state_dir`, applying migrations.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(STORE_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        restrict_permissions(&path);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&conn)?;
        for suffix in ["-wal", "-shm"] {
            restrict_permissions(&path.with_file_name(format!("{STORE_FILE}{suffix}")));
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite store {}", self.path.display())
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    async fn export_tables(&self) -> Result<Vec<crate::store::TableRows>, StoreError> {
        self.export()
    }

    async fn import_tables(&self, _: &[crate::store::TableRows]) -> Result<(), StoreError> {
        Err(StoreError::Location(format!(
            "copying into {} is not supported; `store copy --to` takes a postgres:// URL",
            self.describe()
        )))
    }
}

/// Times are stored as integer milliseconds since the epoch (UTC).
fn to_db_time(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_db_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_db_time)
}

fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
}
