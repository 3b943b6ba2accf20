//! The credential store behind one interface (`api`): tokens (hashed secrets only), CAs,
//! certificates, revocations, rotations, the admin journal (`journal`: every admin action,
//! relayed once into each audit file) and the change feed (`changes`).
//!
//! `Store` is a cheap handle to one implementation; the embedded default is SQLite
//! (`sqlite/`, one file in the state dir). Never called per request: the gate reads a
//! snapshot that the inventory hub (`hub`) rebuilds when the change feed moves. Every write
//! that changes what the gate must enforce appends to the change feed in the same transaction,
//! so another process (the CLI) is seen within one poll.

pub mod api;
pub mod changes;
pub mod hub;
pub mod journal;
pub mod pki;
pub mod rotations;
mod sqlite;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use api::{AdminJournal, Backend, CaStore, CertStore, ChangeFeed, RotationStore, TokenStore};
pub use changes::{Change, ChangeKind};
pub use journal::{AdminEntry, Delivery, JournalRow};
pub use sqlite::STORE_FILE;
pub use tokens::{NewToken, TokenRecord, TokenStatus};

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

/// A handle to the store: clone it freely; every method comes from the `api` traits.
#[derive(Debug, Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Open (creating if needed) the embedded store in `state_dir`, applying migrations.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self(Arc::new(sqlite::SqliteStore::open(state_dir)?)))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Run a store call to completion on this thread, for one-shot (CLI) callers outside async
/// code. The running gate's tasks await instead.
pub fn wait<F: std::future::Future>(call: F) -> F::Output {
    futures::executor::block_on(call)
}

/// Who performed an admin action: `$USER@host` as far as known.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} (cli pid {})", std::process::id())
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
