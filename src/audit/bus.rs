//! The in-process event bus: a tokio broadcast channel of events and alerts. Slow subscribers
//! lose the oldest messages (and are told how many), never slow the gate down.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::AccessEvent;

/// What travels on the bus.
#[derive(Debug, Clone)]
pub enum BusMessage {
    Event(Arc<AccessEvent>),
}

/// Cloneable handle to the bus.
#[derive(Debug, Clone)]
pub struct AuditBus {
    tx: broadcast::Sender<BusMessage>,
}

impl AuditBus {
    /// A bus that buffers `capacity` messages per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }

    /// Publish; having no subscriber is fine.
    pub fn publish(&self, event: Arc<AccessEvent>) {
        let _ = self.tx.send(BusMessage::Event(event));
    }

    /// A new subscriber that sees messages sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }
}

impl Default for AuditBus {
    fn default() -> Self {
        Self::new(65_536)
    }
}
