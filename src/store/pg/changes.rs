//! The change feed on PostgreSQL: rows appended in the writer's transaction (a trigger sends
//! `NOTIFY botgate_changes` at commit), and one `LISTEN` connection per process that turns
//! notifications into a signal the inventory hub waits on. The listener reconnects on its own
//! and signals once after each (re)connect, so what was committed while it was away is read.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, GenericClient};

use super::{PgStore, from_db_time, lock_order, to_db_time};
use crate::store::{Change, ChangeFeed, ChangeKind, StoreError};

/// Wait between attempts while the listener cannot reach the server.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Append a change inside the caller's transaction (it commits with the write it describes).
pub(super) async fn record_change(
    c: &impl GenericClient,
    kind: ChangeKind,
    subject: &str,
) -> Result<(), tokio_postgres::Error> {
    lock_order(c).await?;
    c.execute(
        "INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3)",
        &[&to_db_time(Utc::now()), &kind.as_str(), &subject],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl ChangeFeed for PgStore {
    async fn change_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM changes", &[])
            .await?
            .try_get(0)?)
    }

    async fn changes_since(&self, after: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT version, at, kind, subject FROM changes WHERE version > $1 ORDER BY version LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Change {
                version: r.try_get(0)?,
                at: from_db_time(r.try_get(1)?),
                kind: ChangeKind::parse(r.try_get(2)?),
                subject: r.try_get(3)?,
            });
        }
        Ok(out)
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(
            self.signal
                .get_or_init(|| {
                    let (tx, rx) = watch::channel(0);
                    let location = self.location.clone();
                    self.runtime.handle.spawn(listen(location, tx));
                    rx
                })
                .clone(),
        )
    }
}

/// Keep one `LISTEN botgate_changes` connection up until every receiver is gone.
async fn listen(location: super::PgLocation, tx: watch::Sender<u64>) {
    while !tx.is_closed() {
        match location.config.connect(location.tls.clone()).await {
            Ok((client, mut connection)) => {
                let (note_tx, mut notes) = futures::channel::mpsc::unbounded();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => {
                                let _ = note_tx.unbounded_send(());
                            }
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "the server closed the connection".to_string()
                });
                if let Err(e) = client.batch_execute("LISTEN botgate_changes").await {
                    tracing::warn!(store = %location.target, error = %e, "cannot LISTEN for store changes");
                } else {
                    tracing::debug!(store = %location.target, "listening for store changes");
                    // Catch up on whatever committed while no listener was connected.
                    tx.send_modify(|n| *n += 1);
                    while notes.next().await.is_some() {
                        tx.send_modify(|n| *n += 1);
                    }
                }
                drop(client);
                if let Ok(why) = driver.await {
                    tracing::warn!(store = %location.target, error = %why, "store change listener disconnected; reconnecting");
                }
            }
            Err(e) => {
                tracing::debug!(store = %location.target, error = %e, "store change listener cannot connect");
            }
        }
        tokio::time::sleep(RECONNECT_EVERY).await;
    }
}
