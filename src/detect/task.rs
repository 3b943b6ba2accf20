//! The detection task: subscribes to the audit bus, feeds the `Engine` (with the other gates'
//! requests from the usage feed too), ticks it with the inventory, and hands every alert event
//! to `publish` (normally `AuditSink::record`, which writes it to the audit log and puts it on
//! the bus for the console, metrics and sinks).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::{CredentialExpiry, CrlStatus, Engine, ExpectedCountries};
use crate::audit::{AccessEvent, BusMessage};
use crate::clock::SharedClock;

/// What the inventory rules look at on each tick.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Live (not revoked) tokens and certificates.
    pub credentials: Vec<CredentialExpiry>,
    pub crls: Vec<CrlStatus>,
    /// The active origin assertion signing key and when its rotation should have finished.
    pub signing_key: Option<super::inventory::SigningKeyDue>,
    /// The last store read failed: what the store said (the rest is the last good read).
    pub store_error: Option<String>,
    /// OIDC issuers whose last good key set (on this gate) is older than their `max_key_age`.
    pub stale_issuers: Vec<super::inventory::StaleIssuer>,
    /// Another gate on the store holds the one-node lease: the fleet-wide inventory rules
    /// (expiring, expired and unused credentials, stale CRLs) run there, not here.
    pub standby: bool,
}

/// Handle to the running detection task.
#[derive(Debug)]
pub struct DetectHandle {
    /// Alerts open right now (for `/metrics`).
    pub open_alerts: Arc<AtomicUsize>,
    policy_tx: mpsc::UnboundedSender<ExpectedCountries>,
    pub task: JoinHandle<()>,
}

impl DetectHandle {
    /// Give the engine the expected countries of a (re)loaded policy.
    pub fn set_expected_countries(&self, expected: ExpectedCountries) {
        let _ = self.policy_tx.send(expected);
    }

    /// A sender for `set_expected_countries` from another task (the runtime's policy reload).
    pub fn expected_countries_tx(&self) -> mpsc::UnboundedSender<ExpectedCountries> {
        self.policy_tx.clone()
    }
}

/// Requests that went through other gates: an event like them and how many.
pub type RemoteUsage = Vec<(AccessEvent, u64)>;

/// Start the task. `inventory` runs on the task every `tick_every`: it must be cheap (read an
/// in-memory snapshot, not SQLite). `remote` brings the other gates' usage. The task ends when
/// the bus closes.
pub fn spawn(
    mut engine: Engine,
    mut rx: broadcast::Receiver<BusMessage>,
    mut remote: mpsc::UnboundedReceiver<RemoteUsage>,
    clock: SharedClock,
    tick_every: std::time::Duration,
    mut inventory: impl FnMut() -> Inventory + Send + 'static,
    mut publish: impl FnMut(AccessEvent) + Send + 'static,
) -> DetectHandle {
    let open_alerts = Arc::new(AtomicUsize::new(0));
    let open = open_alerts.clone();
    let (policy_tx, mut policy_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let alerts = tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(BusMessage::Event(ev)) => engine.observe(&ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "detection fell behind the audit bus; some events were not analysed");
                        Vec::new()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let inv = inventory();
                    engine.tick(clock.now(), &inv)
                }
                Some(batch) = remote.recv() => batch
                    .iter()
                    .flat_map(|(ev, n)| engine.observe_remote(ev, *n))
                    .collect(),
                Some(expected) = policy_rx.recv() => {
                    engine.set_expected_countries(expected);
                    Vec::new()
                }
            };
            for alert in alerts {
                publish(alert);
            }
            open.store(engine.open_alerts(), Ordering::Relaxed);
        }
    });
    DetectHandle {
        open_alerts,
        policy_tx,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditBus, EventKind};
    use crate::clock::{Clock, FixedClock};
    use crate::detect::DetectConfig;

    #[tokio::test]
    async fn alerts_from_bus_events_are_published() {
        let bus = AuditBus::new(64);
        let (tx, mut alerts) = mpsc::unbounded_channel();
        let clock = Arc::new(FixedClock::at(chrono::Utc::now()));
        let handle = spawn(
            Engine::new(DetectConfig::default()),
            bus.subscribe(),
            mpsc::unbounded_channel().1,
            clock.clone(),
            std::time::Duration::from_millis(20),
            Inventory::default,
            move |ev| {
                let _ = tx.send(ev);
            },
        );
        let mut ev = AccessEvent::empty(EventKind::Access, clock.now(), "r".into());
        ev.deny_reason = Some("cert_revoked".into());
        ev.cert_serial = Some("0a1b".into());
        ev.cert_common_name = Some("device-1.factory.corp".into());
        ev.ip_address = Some("10.0.0.3".into());
        bus.publish(Arc::new(ev));
        let alert = tokio::time::timeout(std::time::Duration::from_secs(5), alerts.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alert.decision, "failed_auth_after_revocation");
        assert_eq!(
            alert.cert_common_name.as_deref(),
            Some("device-1.factory.corp")
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while handle.open_alerts.load(Ordering::Relaxed) != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "open alert gauge not updated"
            );
            tokio::task::yield_now().await;
        }
        handle.task.abort();
    }
}
