//! The embedded credential store: one SQLite file (WAL, mode 0600) in the state dir holding
//! tokens (hashed secrets only), CAs, certificates, revocations, rotations and the admin journal
//! (`journal`: every admin action, relayed once into each audit file).
//!
//! Never called per request: the gate reads a `CredentialSnapshot` built from here and rebuilt
//! when `generation()` changes. Every write that changes what the gate must enforce bumps the
//! generation in the same transaction, so another process (the CLI) is seen within one poll.

pub mod journal;
pub mod pki;
pub mod rotations;
mod schema;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension};

pub use journal::{AdminEntry, Delivery, JournalRow};
pub use tokens::{NewToken, TokenRecord, TokenStatus};

/// File name of the store inside the state dir.
pub const STORE_FILE: &str = "botgate.db";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the state dir {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "store schema version {found} is newer than this botgate understands ({supported}); upgrade botgate"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Handle to the SQLite store. Cheap to share behind an `Arc`; one connection, serialized.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
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

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A counter bumped by every write that changes enforcement (tokens, certs, CAs, revocations).
    pub fn generation(&self) -> Result<i64, StoreError> {
        let conn = self.conn();
        Ok(conn.query_row("SELECT generation FROM meta WHERE id = 1", [], |r| r.get(0))?)
    }

    /// The schema version the file is at (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Bump the enforcement generation inside the caller's transaction.
pub(crate) fn bump_generation(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE meta SET generation = generation + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// Who performed an admin action: `$USER@host` as far as known.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} (cli pid {})", std::process::id())
}

/// Times are stored as integer milliseconds since the epoch (UTC).
pub(crate) fn to_db_time(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_db_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_db_time)
}

/// Create a directory (and parents) readable only by the owner.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
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

#[allow(dead_code)]
pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    r.optional()
}
