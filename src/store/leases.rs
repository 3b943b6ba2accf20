//! One-node jobs: among several gates on one store, jobs that must run once for the fleet
//! (re-signing CRLs, the inventory alerts: expiring, expired and unused credentials, stale
//! CRLs) run on the gate that holds their lease. Each gate's `LeaseKeeper` renews it every
//! `RENEW_EVERY`; a gate that stops renewing (killed, cut off from the store) loses it after
//! `TTL`, a gate that stops cleanly gives it up at once. With one gate it is always the holder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Store;
use crate::clock::SharedClock;

/// The lease the one-node jobs run under.
pub const ONE_NODE_JOBS: &str = "one-node-jobs";
/// How often the holder renews (and the others try to take it).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long a lease lasts unrenewed: three renewals, so one slow round trip does not move it.
pub const TTL: Duration = Duration::from_secs(15);

/// Keeps trying to hold `ONE_NODE_JOBS` for this process until stopped.
#[derive(Debug)]
pub struct LeaseKeeper {
    held: Arc<AtomicBool>,
    holder: String,
    store: Arc<Store>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Start renewing (inside a tokio runtime); `node` names the gate in the holder string.
    pub fn start(store: Arc<Store>, node: Option<&str>, clock: SharedClock) -> Self {
        let holder = format!(
            "{} pid {} {}",
            node.unwrap_or("gate"),
            std::process::id(),
            crate::audit::event::new_ray_id()
        );
        let held = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(renew(store.clone(), holder.clone(), held.clone(), clock));
        Self {
            held,
            holder,
            store,
            task,
        }
    }

    /// A flag that says whether this gate holds the lease now.
    pub fn held(&self) -> Arc<AtomicBool> {
        self.held.clone()
    }

    /// Stop renewing and give the lease up.
    pub async fn stop(self) {
        self.task.abort();
        if self.held.swap(false, Ordering::Relaxed)
            && let Err(e) = self.store.release_lease(ONE_NODE_JOBS, &self.holder).await
        {
            tracing::warn!(error = %e, "cannot give up the one-node job lease; another gate takes it when it expires");
        }
    }
}

async fn renew(store: Arc<Store>, holder: String, held: Arc<AtomicBool>, clock: SharedClock) {
    let ttl = chrono::Duration::from_std(TTL).unwrap_or(chrono::Duration::seconds(15));
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Unknown counts as not held: a gate cut off from the store must not run fleet jobs
        // beside the one that took over.
        let now_held = match store
            .hold_lease(ONE_NODE_JOBS, &holder, clock.now(), ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::debug!(error = %e, "cannot renew the one-node job lease");
                false
            }
        };
        if held.swap(now_held, Ordering::Relaxed) != now_held {
            tracing::info!(
                held = now_held,
                "one-node jobs (CRL re-signing, inventory alerts) {} on this gate",
                if now_held { "run" } else { "stop" }
            );
        }
    }
}

/// The contract every backend meets (run by each backend's tests).
#[cfg(test)]
pub(crate) fn contract(store: &Store) {
    use super::wait;
    let t0 = chrono::Utc::now();
    let ttl = chrono::Duration::seconds(15);
    let s = chrono::Duration::seconds;
    assert!(wait(store.hold_lease("job", "a", t0, ttl)).unwrap());
    assert!(!wait(store.hold_lease("job", "b", t0 + s(1), ttl)).unwrap());
    // Renewed by its holder, so still not free at the first expiry.
    assert!(wait(store.hold_lease("job", "a", t0 + s(10), ttl)).unwrap());
    assert!(!wait(store.hold_lease("job", "b", t0 + s(16), ttl)).unwrap());
    // Expired: the other takes it, and the first cannot renew.
    assert!(wait(store.hold_lease("job", "b", t0 + s(26), ttl)).unwrap());
    assert!(!wait(store.hold_lease("job", "a", t0 + s(27), ttl)).unwrap());
    // Another job is independent.
    assert!(wait(store.hold_lease("other", "a", t0 + s(27), ttl)).unwrap());
    // Released by someone else: nothing happens; by its holder: free at once.
    wait(store.release_lease("job", "a")).unwrap();
    assert!(!wait(store.hold_lease("job", "a", t0 + s(28), ttl)).unwrap());
    wait(store.release_lease("job", "b")).unwrap();
    assert!(wait(store.hold_lease("job", "a", t0 + s(29), ttl)).unwrap());
}

/// The heartbeat contract every backend meets (run by each backend's tests).
#[cfg(test)]
pub(crate) fn heartbeat_contract(store: &Store) {
    use super::wait;
    let t0 = chrono::Utc::now();
    let s = chrono::Duration::seconds;
    let within = s(10);
    assert_eq!(wait(store.gate_heartbeat("a", t0, within)).unwrap(), 1);
    assert_eq!(
        wait(store.gate_heartbeat("b", t0 + s(1), within)).unwrap(),
        2
    );
    // A's beat is 9 s old: still alive; renewed, it counts once.
    assert_eq!(
        wait(store.gate_heartbeat("a", t0 + s(9), within)).unwrap(),
        2
    );
    // B stopped beating 11 s ago: gone.
    assert_eq!(
        wait(store.gate_heartbeat("a", t0 + s(12), within)).unwrap(),
        1
    );
    assert_eq!(
        wait(store.gate_heartbeat("b", t0 + s(13), within)).unwrap(),
        2
    );
    // A clean stop leaves at once.
    wait(store.gate_stopped("b")).unwrap();
    assert_eq!(
        wait(store.gate_heartbeat("a", t0 + s(14), within)).unwrap(),
        1
    );
}
