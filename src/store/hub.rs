//! The inventory hub: the one follower of the store's change feed in a process. It reads the
//! tokens, certificates (revoked ones included) and CAs once per change (and on a slow refresh, for what
//! does not go through the feed: last-seen times, external CRL files) and publishes one
//! immutable `Inventory` on a watch channel. A network store's change signal (PostgreSQL
//! `LISTEN`) wakes it between polls. The gate's credential snapshot, the detectors'
//! inventory and the console all derive from it: one poller, not three.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::pki::{CaRecord, CertRecord};
use super::{Store, StoreError, TokenRecord};

/// How often the change feed's version is read.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// How often everything is re-read even without a change (last-seen times move without one).
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// What the store held at `version`.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The change-feed version this was read at (or past).
    pub version: i64,
    pub read_at: Option<DateTime<Utc>>,
    pub tokens: Vec<TokenRecord>,
    pub certs: Vec<CertRecord>,
    pub cas: Vec<CaRecord>,
    /// The origin assertion's signing keys (private keys included: the gate signs with them).
    pub signing_keys: Vec<super::signing_keys::SigningKeyRecord>,
    /// Each app's origin assertion audience tag (app name, tag).
    pub app_audiences: Vec<(String, String)>,
    /// The last read failed: what the store said (the rest is the last good read).
    pub store_error: Option<String>,
}

impl Inventory {
    /// Read everything once. The version is read first, so a change that lands during the read
    /// is read again on the next poll rather than missed.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let version = store.change_version().await?;
        Ok(Self {
            version,
            read_at: Some(Utc::now()),
            tokens: store.list_tokens().await?,
            certs: store.list_certs().await?,
            cas: store.list_cas().await?,
            signing_keys: store.list_signing_keys().await?,
            app_audiences: store.list_app_audiences().await?,
            store_error: None,
        })
    }
}

/// Follows the change feed until dropped.
#[derive(Debug)]
pub struct InventoryHub {
    store: Store,
    rx: watch::Receiver<Arc<Inventory>>,
    task: Option<JoinHandle<()>>,
}

impl InventoryHub {
    /// Read the inventory now (so followers start from the store's state) and follow it
    /// (inside a tokio runtime).
    pub fn start(store: Store) -> Result<Self, StoreError> {
        Self::start_with(store, FOLLOW_EVERY, REFRESH_EVERY)
    }

    pub fn start_with(
        store: Store,
        follow: Duration,
        refresh: Duration,
    ) -> Result<Self, StoreError> {
        let first = super::wait(Inventory::read(&store))?;
        let (tx, rx) = watch::channel(Arc::new(first));
        let task = tokio::spawn(follow_feed(store.clone(), tx, follow, refresh));
        Ok(Self {
            store,
            rx,
            task: Some(task),
        })
    }

    /// The store the hub follows.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The latest inventory.
    pub fn current(&self) -> Arc<Inventory> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every new inventory.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Inventory>> {
        self.rx.clone()
    }
}

impl Drop for InventoryHub {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn follow_feed(
    store: Store,
    tx: watch::Sender<Arc<Inventory>>,
    follow: Duration,
    refresh: Duration,
) {
    let mut tick = tokio::time::interval(follow);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_read = Instant::now();
    // A network store's notifications wake the hub at once; the tick stays as the safety net
    // (a notification sent while the listener was away is never delivered).
    let mut signal = store.change_signal();
    loop {
        let signal_lost = match signal.as_mut() {
            Some(rx) => tokio::select! {
                _ = tick.tick() => false,
                changed = rx.changed() => changed.is_err(),
            },
            None => {
                tick.tick().await;
                false
            }
        };
        if signal_lost {
            signal = None;
        }
        let held = tx.borrow().version;
        let due = last_read.elapsed() >= refresh;
        let read = async {
            if !due && store.change_version().await? == held {
                return Ok(None);
            }
            Inventory::read(&store).await.map(Some)
        };
        match read.await {
            Ok(None) => {}
            Ok(Some(inv)) => {
                last_read = Instant::now();
                if inv.version != held {
                    tracing::info!(
                        version = inv.version,
                        tokens = inv.tokens.len(),
                        "inventory changed"
                    );
                }
                if tx.send(Arc::new(inv)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let message = format!("{} unreachable: {e}", store.describe());
                let unchanged = tx.borrow().store_error.as_deref() == Some(message.as_str());
                if !unchanged {
                    tracing::error!(error = %message, "cannot read the store; keeping the last inventory");
                    let mut stale = (**tx.borrow()).clone();
                    stale.store_error = Some(message);
                    if tx.send(Arc::new(stale)).is_err() {
                        return;
                    }
                }
                last_read = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Days;

    use super::*;
    use crate::credential::{ClientId, ClientSecret};
    use crate::store::{NewToken, wait};

    #[tokio::test]
    async fn a_write_from_another_process_reaches_every_subscriber_once_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let hub = InventoryHub::start_with(
            Store::open(dir.path()).unwrap(),
            Duration::from_millis(20),
            Duration::from_secs(3600),
        )
        .unwrap();
        let (mut a, mut b) = (hub.subscribe(), hub.subscribe());
        assert_eq!(hub.current().version, 0);
        // Another handle on the same file, as the CLI in another process would have.
        let cli = Store::open(dir.path()).unwrap();
        let id = ClientId::generate();
        let now = Utc::now();
        wait(cli.create_token(&NewToken {
            name: "ci-deploy-prod",
            client_id: &id,
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + Days::days(30),
            bounds: Default::default(),
        }))
        .unwrap();
        for rx in [&mut a, &mut b] {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .unwrap()
                .unwrap();
            let inv = rx.borrow_and_update().clone();
            assert_eq!(inv.version, 1);
            assert_eq!(inv.tokens.len(), 1);
            assert_eq!(inv.tokens[0].client_id, id.as_str());
        }
        // Nothing new: no new inventory is published (the slow refresh is an hour away).
        let quiet = tokio::time::timeout(Duration::from_millis(200), a.changed()).await;
        assert!(quiet.is_err(), "no change, no publication");
    }
}
