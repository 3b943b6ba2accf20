//! The shared store: PostgreSQL, for several gates on one state. Implements every `api` trait;
//! the only place PostgreSQL SQL is written. The schema mirrors the SQLite one column for
//! column (times as BIGINT milliseconds), so `store copy` moves rows table by table.
//!
//! The connections run on the store's own runtime thread, so the store's futures complete
//! wherever they are awaited, including from `store::wait` in one-shot CLI code. One
//! connection carries queries (serialized, like the SQLite handle; reconnected on the next
//! call after a failure); the change feed's `LISTEN` has its own (`changes`).
//!
//! Writes that change enforcement and admin journal rows take one transaction-scoped advisory
//! lock before they take their version or id, so versions and ids commit in order across
//! processes: a follower that read up to version N never sees a smaller one commit later.

mod cas;
mod certs;
mod changes;
mod journal;
mod leases;
mod location;
mod rotations;
mod schema;
mod signing_keys;
#[doc(hidden)]
pub mod testdb;
#[cfg(test)]
mod tests;
mod tokens;
mod transfer;
mod usage;

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{Mutex, MutexGuard, watch};
use tokio_postgres::{Client, GenericClient};

pub use location::{PgLocation, redact};

use super::{Backend, StoreError};

/// The advisory lock key that orders change-feed versions and journal ids ("botgate").
const ORDER_LOCK: i64 = 0x0062_6f74_6761_7465;

/// What to check when the server does not answer.
const UNREACHABLE_HINT: &str = "is the server running and the [store] url right?";

/// Handle to a PostgreSQL store.
pub struct PgStore {
    location: PgLocation,
    runtime: RuntimeThread,
    client: Mutex<Option<Client>>,
    signal: OnceLock<watch::Receiver<u64>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.location.target)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect and apply migrations.
    pub async fn open(location: PgLocation) -> Result<Self, StoreError> {
        let store = Self {
            location,
            runtime: RuntimeThread::start()?,
            client: Mutex::new(None),
            signal: OnceLock::new(),
        };
        {
            let mut conn = store.conn().await?;
            schema::migrate(&mut conn).await?;
        }
        Ok(store)
    }

    /// The query connection, (re)connected when there is none or it closed.
    async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            *guard = Some(self.connect().await?);
        }
        Ok(Conn(guard))
    }

    /// A new connection, driven on the store's runtime.
    async fn connect(&self) -> Result<Client, StoreError> {
        let config = self.location.config.clone();
        let tls = self.location.tls.clone();
        let target = self.location.target.clone();
        let joined = self
            .runtime
            .handle
            .spawn(async move {
                let (client, connection) = config.connect(tls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(store = %target, error = %e, "PostgreSQL store connection closed");
                    }
                });
                Ok::<_, tokio_postgres::Error>(client)
            })
            .await;
        match joined {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => {
                let message = render(&e);
                let hint = if message.contains("TLS handshake") {
                    "check that sslrootcert is the CA that signed the server's certificate and that the URL's host is a name the certificate carries"
                } else {
                    UNREACHABLE_HINT
                };
                Err(StoreError::Unreachable {
                    target: self.location.target.clone(),
                    message,
                    hint,
                })
            }
            Err(e) => Err(StoreError::Unreachable {
                target: self.location.target.clone(),
                hint: UNREACHABLE_HINT,
                message: format!("the store's connection task failed: {e}"),
            }),
        }
    }
}

/// The query connection, held for one call (or one transaction).
struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("connected by PgStore::conn")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("connected by PgStore::conn")
    }
}

#[async_trait::async_trait]
impl Backend for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL store {}", self.location.target)
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        schema::version(&*conn).await
    }

    fn file(&self) -> Option<&std::path::Path> {
        None
    }

    async fn export_tables(&self) -> Result<Vec<super::TableRows>, StoreError> {
        Err(StoreError::Location(format!(
            "copying out of {} is not supported; `store copy` reads the embedded SQLite store",
            self.describe()
        )))
    }

    async fn import_tables(&self, tables: &[super::TableRows]) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        transfer::import(&mut conn, &self.location.target, tables).await
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(render(&e))
    }
}

/// A server error as PostgreSQL words it (severity, code, message, detail); otherwise the
/// client's error and its cause. Neither carries the password.
fn render(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" ({detail})"));
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Take the lock that orders versions and journal ids (released at commit).
async fn lock_order(c: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&ORDER_LOCK])
        .await?;
    Ok(())
}

/// Times are stored as integer milliseconds since the epoch (UTC), as in SQLite.
fn to_db_time(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_db_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_db_time)
}

/// A tokio runtime on its own thread for the store's connections; stops when dropped.
struct RuntimeThread {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RuntimeThread {
    fn start() -> Result<Self, StoreError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("botgate-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Location(format!("cannot start the store thread: {e}")))?;
        let handle = handle_rx
            .recv()
            .map_err(|_| StoreError::Location("the store thread exited at start".into()))?
            .map_err(|e| StoreError::Location(format!("cannot start the store runtime: {e}")))?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }
}
