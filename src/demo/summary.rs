//! What the demo did, counted from the audit bus (the gate's view: requests, allowed, denied,
//! alerts) and from the bots (what each client saw), and the plain-text summary printed by
//! `botgate demo --headless`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use super::bots::BotCount;
use crate::audit::{AccessEvent, AuditBus, BusMessage, EventKind};

/// Counters fed by one task subscribed to the bus.
#[derive(Debug, Default)]
pub struct DemoCounters {
    /// Access events (one per request the gate answered).
    pub requests: AtomicU64,
    pub allowed: AtomicU64,
    /// Refused by the gate (401/403/404).
    pub denied: AtomicU64,
    /// Answered with a gate error (502/503).
    pub errors: AtomicU64,
    /// `alert` events (opening, updates and resolutions).
    pub alerts: AtomicU64,
    /// Distinct alerts: alert id → rule.
    alert_ids: Mutex<BTreeMap<String, String>>,
    /// Events this counter missed because it fell behind the bus.
    pub lagged: AtomicU64,
    /// Denied requests by `deny_reason`.
    deny_reasons: Mutex<BTreeMap<String, u64>>,
}

impl DemoCounters {
    fn count(&self, ev: &AccessEvent) {
        match ev.event {
            EventKind::Alert => {
                self.alerts.fetch_add(1, Ordering::Relaxed);
                let id = crate::detect::Alert::from_event(ev)
                    .map(|a| a.alert_id)
                    .unwrap_or_else(|_| ev.ray_id.clone());
                let mut ids = self.alert_ids.lock().unwrap_or_else(|p| p.into_inner());
                ids.entry(id).or_insert_with(|| ev.decision.clone());
            }
            EventKind::Admin => {}
            EventKind::Access => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                if ev.allowed {
                    self.allowed.fetch_add(1, Ordering::Relaxed);
                } else if ev.decision == "error" {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.denied.fetch_add(1, Ordering::Relaxed);
                    let reason = ev.deny_reason.as_deref().unwrap_or("unknown");
                    let mut map = self
                        .deny_reasons
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    *map.entry(reason.to_string()).or_default() += 1;
                }
            }
        }
    }

    /// Distinct alerts per rule.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, u64> {
        let ids = self.alert_ids.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_rule = BTreeMap::new();
        for rule in ids.values() {
            *by_rule.entry(rule.clone()).or_default() += 1;
        }
        by_rule
    }

    /// Denied requests by reason.
    pub fn deny_reasons(&self) -> BTreeMap<String, u64> {
        self.deny_reasons
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The counting task. `finish` drains what is already on the bus, then stops.
#[derive(Debug)]
pub struct CounterTask {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CounterTask {
    /// Subscribe now and count every message from here on.
    pub fn start(bus: &AuditBus, counters: Arc<DemoCounters>) -> Self {
        let rx = bus.subscribe();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(count_loop(rx, counters, stop_rx));
        Self { stop, task }
    }

    /// Count what is queued, then stop.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn count_loop(
    mut rx: broadcast::Receiver<BusMessage>,
    counters: Arc<DemoCounters>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Ok(BusMessage::Event(ev)) => counters.count(&ev),
                Err(RecvError::Lagged(n)) => {
                    counters.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return,
            },
            _ = stop.changed() => break,
        }
    }
    loop {
        match rx.try_recv() {
            Ok(BusMessage::Event(ev)) => counters.count(&ev),
            Err(TryRecvError::Lagged(n)) => {
                counters.lagged.fetch_add(n, Ordering::Relaxed);
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// A summary of one demo run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub elapsed: Duration,
    pub rate_multiplier: f64,
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub errors: u64,
    pub alerts: u64,
    pub alerts_by_rule: BTreeMap<String, u64>,
    pub lagged: u64,
    pub deny_reasons: BTreeMap<String, u64>,
    pub bots: Vec<BotCount>,
    pub warnings: Vec<String>,
    /// What the demo's local SIEM endpoint received, when it ran.
    pub siem: Option<super::siem::SiemReport>,
}

impl DemoSummary {
    /// Build from the live counters.
    pub fn collect(
        counters: &DemoCounters,
        bots: Vec<BotCount>,
        elapsed: Duration,
        rate_multiplier: f64,
        warnings: Vec<String>,
    ) -> Self {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Self {
            elapsed,
            rate_multiplier,
            requests: get(&counters.requests),
            allowed: get(&counters.allowed),
            denied: get(&counters.denied),
            errors: get(&counters.errors),
            alerts: counters.alerts_by_rule().values().sum(),
            alerts_by_rule: counters.alerts_by_rule(),
            lagged: get(&counters.lagged),
            deny_reasons: counters.deny_reasons(),
            bots,
            warnings,
            siem: None,
        }
    }

    /// Add what the local SIEM endpoint received.
    pub fn with_siem(mut self, siem: Option<super::siem::SiemReport>) -> Self {
        self.siem = siem;
        self
    }
}

impl fmt::Display for DemoSummary {
    /// Plain text, no escape codes: `key: value` lines, then a per-bot table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "botgate demo summary")?;
        writeln!(f, "duration: {secs:.1} s")?;
        if self.rate_multiplier != 1.0 {
            writeln!(f, "rate multiplier: {}", self.rate_multiplier)?;
        }
        writeln!(f, "requests: {}", self.requests)?;
        if secs > 0.0 {
            writeln!(f, "requests/s: {:.1}", self.requests as f64 / secs)?;
        }
        writeln!(f, "allowed: {}", self.allowed)?;
        writeln!(f, "denied: {}", self.denied)?;
        writeln!(f, "errors: {}", self.errors)?;
        writeln!(f, "alerts: {}", self.alerts)?;
        if !self.alerts_by_rule.is_empty() {
            let rules: Vec<String> = self
                .alerts_by_rule
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(f, "alerts by rule: {}", rules.join(", "))?;
        }
        if let Some(siem) = &self.siem {
            writeln!(f, "siem endpoint: {}", siem.url)?;
            writeln!(f, "siem events: {}", siem.events)?;
            writeln!(f, "siem alerts: {}", siem.alerts.len())?;
            if !siem.alerts.is_empty() {
                let rules: Vec<String> = siem
                    .alerts_by_rule()
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                writeln!(f, "siem alerts by rule: {}", rules.join(", "))?;
            }
        }
        if self.lagged > 0 {
            writeln!(f, "events missed by the counter: {}", self.lagged)?;
        }
        if !self.deny_reasons.is_empty() {
            let reasons: Vec<String> = self
                .deny_reasons
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(f, "deny reasons: {}", reasons.join(", "))?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        writeln!(f)?;
        let name_w = self
            .bots
            .iter()
            .map(|b| b.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        writeln!(
            f,
            "{:<name_w$}  {:>8}  {:>8}  {:>8}  {:>8}",
            "BOT", "SENT", "OK", "DENIED", "FAILED"
        )?;
        for b in &self.bots {
            writeln!(
                f,
                "{:<name_w$}  {:>8}  {:>8}  {:>8}  {:>8}",
                b.name, b.sent, b.ok, b.denied, b.failed
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn access(allowed: bool, decision: &str, reason: Option<&str>) -> Arc<AccessEvent> {
        let mut e = AccessEvent::empty(EventKind::Access, Utc::now(), "r".into());
        e.allowed = allowed;
        e.decision = decision.into();
        e.deny_reason = reason.map(str::to_string);
        Arc::new(e)
    }

    #[tokio::test]
    async fn counts_every_queued_event_before_finishing() {
        let bus = AuditBus::new(64);
        let counters = Arc::new(DemoCounters::default());
        let task = CounterTask::start(&bus, counters.clone());
        bus.publish(access(true, "allow", None));
        bus.publish(access(true, "bypass", None));
        bus.publish(access(false, "deny", Some("token_revoked")));
        bus.publish(access(false, "deny", Some("token_revoked")));
        bus.publish(access(false, "error", Some("upstream_unreachable")));
        bus.publish(Arc::new(AccessEvent::empty(
            EventKind::Alert,
            Utc::now(),
            "a".into(),
        )));
        bus.publish(Arc::new(AccessEvent::admin(
            Utc::now(),
            "token_revoke",
            "x",
            serde_json::json!({}),
        )));
        task.finish().await;
        let s = DemoSummary::collect(&counters, vec![], Duration::from_secs(2), 1.0, vec![]);
        assert_eq!(
            (s.requests, s.allowed, s.denied, s.errors, s.alerts),
            (5, 2, 2, 1, 1)
        );
        assert_eq!(s.deny_reasons["token_revoked"], 2);
        let text = s.to_string();
        for line in [
            "requests: 5",
            "allowed: 2",
            "denied: 2",
            "alerts: 1",
            "deny reasons: token_revoked 2",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains('\u{1b}'), "no escape codes");
    }
}
