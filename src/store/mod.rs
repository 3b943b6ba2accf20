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
pub mod leases;
mod pg;
pub mod pki;
pub mod rotations;
pub mod signing_keys;
mod sqlite;
pub mod tokens;
pub mod transfer;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use api::{
    AdminJournal, Backend, CaStore, CertStore, ChangeFeed, GateHeartbeats, JobLeases,
    RotationStore, SigningKeyStore, TokenStore, UsageFeed,
};
pub use changes::{Change, ChangeKind};
pub use journal::{AdminEntry, Delivery, JournalRow};
pub use sqlite::STORE_FILE;
pub use tokens::{NewToken, TokenRecord, TokenStatus};
pub use transfer::{Cell, TableRows};

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
    /// The network store cannot be reached (`target` names host, port and database, never a
    /// password).
    #[error("cannot reach the PostgreSQL store at {target}: {message} ({hint})")]
    Unreachable {
        target: String,
        message: String,
        /// What to check.
        hint: &'static str,
    },
    /// The network store answered with an error.
    #[error("PostgreSQL store query failed: {0}")]
    Postgres(String),
    /// A store location that cannot be used as written.
    #[error("{0}")]
    Location(String),
}

/// A handle to the store: clone it freely; every method comes from the `api` traits.
#[derive(Debug, Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Open (creating if needed) the embedded store in `state_dir`, applying migrations.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self(Arc::new(sqlite::SqliteStore::open(state_dir)?)))
    }

    /// Connect to the PostgreSQL store at `url`, applying migrations.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let location = pg::PgLocation::parse(url)?;
        Ok(Self(Arc::new(wait(pg::PgStore::open(location))?)))
    }

    /// The store `location` names: PostgreSQL for a URL, else SQLite in `state_dir`.
    pub fn open_at(location: &StoreLocation, state_dir: &Path) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Embedded => Self::open(state_dir),
            StoreLocation::Url(url) => Self::connect(url),
        }
    }
}

/// Which store a process uses: `[store] url` (or `BOTGATE_STORE_URL`), else the embedded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Embedded,
    Url(String),
}

pub use pg::redact as redact_url;
#[doc(hidden)]
pub use pg::testdb;

impl StoreLocation {
    /// Parse a store URL without connecting (for `policy check`).
    pub fn check_url(url: &str) -> Result<(), String> {
        pg::PgLocation::parse(url)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// For messages: the URL with any password replaced by `***`.
    pub fn describe(&self, state_dir: &Path) -> String {
        match self {
            StoreLocation::Embedded => {
                format!("SQLite store {}", state_dir.join(STORE_FILE).display())
            }
            StoreLocation::Url(url) => pg::redact(url),
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Run a store call to completion on this thread, for one-shot (CLI) callers and the gate's
/// synchronous hooks (TLS rebuilds on a change or a reload). On a worker of a multi-thread tokio
/// runtime the wait is announced with `block_in_place`, so the worker's other tasks move to
/// another thread: one of them may hold the PostgreSQL connection this call waits for, and
/// blocking the worker with it queued behind would stall the gate's store reads for good.
pub fn wait<F: std::future::Future>(call: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| futures::executor::block_on(call))
        }
        _ => futures::executor::block_on(call),
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    /// The deadlock bench/run case 8 found: a TLS rebuild on a runtime worker waited for the
    /// PostgreSQL connection while the task holding it sat queued on that same worker.
    #[test]
    fn waiting_on_a_runtime_worker_lets_the_workers_other_tasks_run() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let conn = Arc::new(tokio::sync::Mutex::new(()));
                let held = conn.clone().lock_owned().await;
                // The holder: queued on the only worker, it lets go after a timer.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    drop(held);
                });
                let waiter = tokio::spawn(async move {
                    drop(super::wait(conn.lock()));
                });
                let _ = waiter.await;
            });
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "store::wait on a worker blocked the task it was waiting for"
        );
    }
}
