//! The admin-journal relay: while the gate runs it holds its audit file's writer lease (so CLI
//! runs leave their admin events to it) and, at least every `POLL_EVERY`, claims the journal
//! rows past the file's cursor and records them through the gate's one audit writer — which
//! writes them to the file and publishes them on the bus (console, sinks, `/metrics`,
//! `/events`). A claim advances the cursor in the same store transaction, so a row reaches the
//! file once whichever process writes it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::audit::{AccessEvent, AuditSink};
use crate::clock::SharedClock;
use crate::store::{JournalRow, Store, StoreError};

/// How often the journal is read (the lease is renewed each time).
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// The running relay.
pub(super) struct JournalRelay {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    link: Link,
}

/// What the relay reads from and writes to.
#[derive(Clone)]
struct Link {
    store: Arc<Store>,
    audit: AuditSink,
    key: String,
    holder: String,
    clock: SharedClock,
}

/// After `finish`: the lease to give up once the writer has flushed.
pub(super) struct Lease(Link);

impl JournalRelay {
    /// Take the lease and queue what is pending before returning, then poll.
    pub(super) async fn start(
        store: Arc<Store>,
        audit: AuditSink,
        audit_log: &Path,
        clock: SharedClock,
    ) -> Result<JournalRelay, StoreError> {
        let link = Link {
            store,
            audit,
            key: crate::audit::admin::journal_key(audit_log),
            holder: format!(
                "gate pid {} {}",
                std::process::id(),
                crate::audit::event::new_ray_id()
            ),
            clock,
        };
        link.relay().await?;
        let (stop, mut stopped) = watch::channel(false);
        let task_link = link.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = task_link.relay().await {
                            tracing::warn!(error = %e, "cannot read the admin journal; retrying");
                        }
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
        Ok(JournalRelay { stop, task, link })
    }

    /// Stop polling and relay what is left (before the writer finishes).
    pub(super) async fn finish(self) -> Lease {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Err(e) = self.link.relay().await {
            tracing::warn!(error = %e, "cannot read the admin journal a last time");
        }
        Lease(self.link)
    }

    /// Stop, relay what is left and give the lease up (a start-up that failed later on).
    pub(super) async fn stop(self) {
        self.finish().await.release().await;
    }
}

impl Lease {
    /// Give the lease up: the next CLI run appends its admin events itself.
    pub(super) async fn release(self) {
        let link = self.0;
        let result = link
            .store
            .release_writer_lease(&link.key, &link.holder)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot release the audit log's writer lease");
        }
    }
}

impl Link {
    /// One claim (renewing the lease), recorded through the writer.
    async fn relay(&self) -> Result<(), StoreError> {
        let rows = self
            .store
            .claim_journal(&self.key, &self.holder, self.clock.now())
            .await?;
        for row in rows {
            self.record(row);
        }
        Ok(())
    }

    fn record(&self, row: JournalRow) {
        match serde_json::from_str::<AccessEvent>(&row.event_line) {
            Ok(ev) => {
                if self.audit.record(ev).is_err() {
                    tracing::error!(
                        journal_id = row.id,
                        "the audit log refused an admin event; it stays in the store's journal"
                    );
                }
            }
            Err(e) => {
                tracing::error!(journal_id = row.id, error = %e, "unreadable admin journal row")
            }
        }
    }
}
