//! Feeding the console: tasks that turn event sources into `Msg`s on the console's channel.
//! The in-process bus (demo, `serve --console`), a tailed JSONL log (`console --log`), and a
//! periodic inventory + policy snapshot read from the store and the policy file in a blocking
//! task, and the rotations with their live evidence (`spawn_rotations`). None of them runs on
//! the UI task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::audit::tail::{self, ReopenReason, TailHandle, TailItem, TailOptions};
use crate::audit::{AuditBus, BusMessage};
use crate::clock::SharedClock;
use crate::config::model::PolicyFile;
use crate::rotation::{self, EvidenceReader};
use crate::runtime::LivePolicy;
use tokio::sync::watch;

use crate::store::Store;
use crate::store::hub::Inventory;
use chrono::{DateTime, Utc};

use super::app::Msg;
use super::inventory;
use super::model::{AppRow, CertRow, RotationRow, TokenRow};

/// Messages buffered between the sources and the console.
pub const CHANNEL_CAPACITY: usize = 16_384;
/// How often the inventory is re-read.
pub const INVENTORY_EVERY: Duration = Duration::from_secs(2);
/// How often rotations and their evidence are re-read.
pub const ROTATIONS_EVERY: Duration = Duration::from_secs(1);

/// The console's input channel.
pub fn channel() -> (mpsc::Sender<Msg>, mpsc::Receiver<Msg>) {
    mpsc::channel(CHANNEL_CAPACITY)
}

/// A running bus → console bridge.
#[derive(Debug)]
pub struct BusBridge {
    pub task: JoinHandle<()>,
    /// Bus messages this subscriber missed because the console fell behind.
    pub lagged: Arc<AtomicU64>,
}

/// Forward every bus event to the console. When the console falls behind, the bus drops the
/// oldest messages for this subscriber (the gate never waits); the loss is counted and shown.
pub fn spawn_bus_bridge(bus: &AuditBus, tx: mpsc::Sender<Msg>) -> BusBridge {
    bridge_receiver(bus.subscribe(), tx)
}

/// Like `spawn_bus_bridge` for an existing subscription.
pub fn bridge_receiver(
    mut rx: broadcast::Receiver<BusMessage>,
    tx: mpsc::Sender<Msg>,
) -> BusBridge {
    let lagged = Arc::new(AtomicU64::new(0));
    let counter = lagged.clone();
    let task = tokio::spawn(async move {
        loop {
            let msg = match rx.recv().await {
                Ok(BusMessage::Event(ev)) => Msg::Event(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    counter.fetch_add(n, Ordering::Relaxed);
                    Msg::Dropped(n)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
    BusBridge { task, lagged }
}

/// Tail a JSONL audit log into the console (on a reader thread, with `blocking_send`).
pub fn spawn_tail(
    path: &Path,
    opts: TailOptions,
    tx: mpsc::Sender<Msg>,
) -> std::io::Result<TailHandle> {
    let shown = path.display().to_string();
    tail::follow(path, opts, move |item| {
        let msg = match item {
            TailItem::Event(ev) => Msg::Event(ev),
            TailItem::Corrupt { line, error } => Msg::CorruptLine { line, error },
            TailItem::Reopened(ReopenReason::Rotated) => {
                Msg::Notice(format!("{shown} rotated, reading the new file"))
            }
            TailItem::Reopened(ReopenReason::Truncated) => {
                Msg::Notice(format!("{shown} truncated, reading from the start"))
            }
            TailItem::Unreadable(e) => Msg::Notice(e),
        };
        tx.blocking_send(msg).is_ok()
    })
}

/// Until the tail has read the `total` bytes the log had at start, send its progress as
/// `Msg::Loading` five times a second (the header shows it), then once more as done.
pub fn spawn_load_progress(
    stats: Arc<tail::TailStats>,
    total: u64,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last = 0;
        loop {
            tick.tick().await;
            let mut read = stats.offset.load(Ordering::Relaxed).min(total);
            // Started over (rotated or truncated): the history as it was is gone; stop saying
            // it loads.
            if read < last {
                read = total;
            }
            last = read;
            if tx.send(Msg::Loading { read, total }).await.is_err() || read >= total {
                return;
            }
        }
    })
}

/// One read of the inventory and the policy file.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub tokens: Vec<TokenRow>,
    pub certs: Vec<CertRow>,
    pub apps: Vec<AppRow>,
    pub reload_error: Option<String>,
    /// The store could not be read.
    pub store_error: Option<String>,
}

/// Where the console's view of the policy comes from.
#[derive(Debug)]
pub enum PolicySource {
    /// No policy.
    None,
    /// A file the console re-reads itself (`botgate console` beside a gate in another process),
    /// with the gate's validation, keeping the last good one across bad edits.
    File(PathBuf),
    /// The running gate's own reloads (`serve --console`, `demo`): what the gate applied, and
    /// why it rejected the last edit.
    Live(watch::Receiver<LivePolicy>),
}

/// Turns the hub's inventory and the policy into rows.
#[derive(Debug)]
pub struct InventoryReader {
    policy: PolicySource,
    last_text: Option<String>,
    last_good: Option<PolicyFile>,
    last_error: Option<String>,
}

impl InventoryReader {
    pub fn new(policy: PolicySource) -> Self {
        Self {
            policy,
            last_text: None,
            last_good: None,
            last_error: None,
        }
    }

    /// Blocking (reads the policy file): rows of `inv`. The bool says whether the policy file
    /// changed since the previous call (the first call counts as a change).
    pub fn read(&mut self, inv: &Inventory) -> (Snapshot, bool) {
        let changed = self.reload_policy();
        let store_error = inv
            .store_error
            .as_ref()
            .map(|e| format!("STORE UNREACHABLE, inventory as last read: {e}"));
        let tokens = inventory::token_rows(&inv.tokens, self.last_good.as_ref());
        let certs = inventory::cert_rows(&inv.certs, self.last_good.as_ref());
        let apps = self
            .last_good
            .as_ref()
            .map(|p| inventory::app_rows(p, &certs, &inv.app_audiences))
            .unwrap_or_default();
        (
            Snapshot {
                tokens,
                certs,
                apps,
                reload_error: self.last_error.clone(),
                store_error,
            },
            changed,
        )
    }

    fn reload_policy(&mut self) -> bool {
        let path = match &mut self.policy {
            PolicySource::None => return self.last_text.replace(String::new()).is_none(),
            PolicySource::Live(rx) => {
                let first = self.last_text.replace(String::new()).is_none();
                if !first && !rx.has_changed().unwrap_or(false) {
                    return false;
                }
                let live = rx.borrow_and_update().clone();
                self.last_good = live.file.as_deref().cloned();
                self.last_error = live.rejected;
                return true;
            }
            PolicySource::File(path) => path,
        };
        // A missing file is "no policy yet", not a failed reload.
        let text =
            crate::input::read_to_string(path, crate::input::POLICY_FILE).unwrap_or_default();
        if self.last_text.as_ref() == Some(&text) {
            return false;
        }
        if text.is_empty() && !path.exists() {
            self.last_good = None;
            self.last_error = None;
        } else {
            // The same validation the gate applies, so the banner shows what the gate rejected.
            match crate::config::parse(path, &text) {
                Ok(loaded) => {
                    self.last_good = Some(loaded.file);
                    self.last_error = None;
                }
                Err(e) => self.last_error = Some(e.first_error_line()),
            }
        }
        self.last_text = Some(text);
        true
    }
}

/// Lists rotations with their live evidence; each rotation's audit log is read incrementally
/// (one `EvidenceReader` per rotation, kept across reads), so a poll costs the new lines only.
#[derive(Debug)]
pub struct RotationsReader {
    store: Arc<Store>,
    readers: HashMap<String, EvidenceReader>,
}

impl RotationsReader {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            readers: HashMap::new(),
        }
    }

    /// Blocking: every rotation (newest first) as the wizard shows it at `now`.
    pub fn read(&mut self, now: DateTime<Utc>) -> Result<Vec<RotationRow>, String> {
        let list =
            rotation::list(&self.store).map_err(|e| format!("rotations unavailable: {e}"))?;
        self.readers
            .retain(|id, _| list.iter().any(|r| &r.id == id));
        let mut rows = Vec::with_capacity(list.len());
        for r in &list {
            let reader = self
                .readers
                .entry(r.id.clone())
                .or_insert_with(|| EvidenceReader::for_rotation(r));
            // An unreadable log shows as "not seen" evidence; the rotation still lists.
            let _ = reader.poll();
            rows.push(RotationRow {
                view: rotation::view(r, reader.evidence(), now),
                old_name: r.old.name.clone(),
            });
        }
        Ok(rows)
    }
}

/// Every `every`, list rotations and their evidence (in a blocking task) and send
/// `Msg::Rotations`. Stops when the console is gone.
pub fn spawn_rotations(
    store: Arc<Store>,
    clock: SharedClock,
    tx: mpsc::Sender<Msg>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = Some(RotationsReader::new(store));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(mut r) = reader.take() else { return };
            let now = clock.now();
            let Ok((r, out)) = tokio::task::spawn_blocking(move || {
                let out = r.read(now);
                (r, out)
            })
            .await
            else {
                return;
            };
            reader = Some(r);
            let msg = match out {
                Ok(rows) => Msg::Rotations(rows),
                Err(e) => Msg::Notice(e),
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    })
}

/// On every inventory the hub publishes, and every `every` (for the policy file), send
/// `Msg::Inventory`, plus `Msg::Policies` when the policy file changed. Stops when the console
/// is gone.
pub fn spawn_inventory(
    mut hub: watch::Receiver<Arc<Inventory>>,
    policy: PolicySource,
    tx: mpsc::Sender<Msg>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = Some(InventoryReader::new(policy));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = hub.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let inv = hub.borrow_and_update().clone();
            let Some(mut r) = reader.take() else { return };
            let Ok((r, (snap, changed))) = tokio::task::spawn_blocking(move || {
                let out = r.read(&inv);
                (r, out)
            })
            .await
            else {
                return;
            };
            reader = Some(r);
            if changed
                && tx
                    .send(Msg::Policies {
                        apps: snap.apps,
                        reload_error: snap.reload_error,
                    })
                    .await
                    .is_err()
            {
                return;
            }
            if tx
                .send(Msg::Inventory {
                    tokens: snap.tokens,
                    certs: snap.certs,
                    store_error: snap.store_error,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// Follow a gate's `/events` stream (server-sent events of the audit bus), reconnecting with
/// backoff; each `data:` line is one event. Runs until aborted.
pub fn spawn_sse(url: String, tx: mpsc::Sender<Msg>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // `main` installed the crypto provider reqwest needs.
        let client = match reqwest::Client::builder().build() {
            Ok(c) => c,
            Err(e) => {
                let _ = tx
                    .send(Msg::Notice(format!("cannot build an HTTP client: {e}")))
                    .await;
                return;
            }
        };
        let mut backoff = std::time::Duration::from_millis(250);
        loop {
            match client
                .get(&url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
            {
                Ok(mut resp) => {
                    backoff = std::time::Duration::from_millis(250);
                    let _ = tx.send(Msg::Notice(format!("attached to {url}"))).await;
                    let mut buf = Vec::new();
                    let mut line_no = 0u64;
                    while let Ok(Some(chunk)) = resp.chunk().await {
                        buf.extend_from_slice(&chunk);
                        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buf.drain(..=end).collect();
                            line_no += 1;
                            let Some(data) = line.strip_prefix(b"data: ") else {
                                continue;
                            };
                            match serde_json::from_slice::<crate::audit::AccessEvent>(data) {
                                Ok(ev) => {
                                    if tx.send(Msg::Event(std::sync::Arc::new(ev))).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    let _ = tx
                                        .send(Msg::CorruptLine {
                                            line: line_no,
                                            error: e.to_string(),
                                        })
                                        .await;
                                }
                            }
                        }
                    }
                    let _ = tx
                        .send(Msg::Notice(format!("{url} closed; reconnecting")))
                        .await;
                }
                Err(e) => {
                    let _ = tx
                        .send(Msg::Notice(format!("cannot reach {url}: {e}; retrying")))
                        .await;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_console_shows_what_the_gate_applied_and_why_it_rejected_an_edit() {
        let file: crate::config::PolicyFile = toml::from_str(
            "[[app]]\nname = \"api\"\nhostnames = [\"api\"]\nupstream = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let (tx, rx) = watch::channel(LivePolicy {
            file: Some(Arc::new(file)),
            rejected: None,
        });
        let mut r = InventoryReader::new(PolicySource::Live(rx));
        let inv = Inventory::default();
        let (snap, changed) = r.read(&inv);
        assert!(changed && snap.reload_error.is_none());
        assert_eq!(snap.apps.len(), 1);
        assert!(!r.read(&inv).1, "no reload, no change");
        tx.send_modify(|l| l.rejected = Some("policy.toml:3:1: error: unknown field".into()));
        let (snap, changed) = r.read(&inv);
        assert!(changed);
        assert_eq!(snap.apps.len(), 1, "the gate kept its policy");
        assert_eq!(
            snap.reload_error.as_deref(),
            Some("policy.toml:3:1: error: unknown field")
        );
    }

    #[test]
    fn a_bad_policy_edit_keeps_the_last_good_one_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            "[[app]]\nname = \"api\"\nhostnames = [\"api\"]\nupstream = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let mut r = InventoryReader::new(PolicySource::File(policy.clone()));
        let inv = crate::store::wait(Inventory::read(&store)).unwrap();
        let (snap, changed) = r.read(&inv);
        assert!(changed && snap.reload_error.is_none());
        assert_eq!(snap.apps.len(), 1);
        assert!(!r.read(&inv).1, "unchanged file is not a change");
        std::fs::write(&policy, "[[app]]\nname = \"api\"\nbogus = 1\n").unwrap();
        let (snap, changed) = r.read(&inv);
        assert!(changed);
        assert_eq!(snap.apps.len(), 1, "last good policy kept");
        let err = snap.reload_error.unwrap();
        assert!(err.contains("policy.toml:3:1: error:"), "{err}");
        std::fs::remove_file(&policy).unwrap();
        let (snap, changed) = r.read(&inv);
        assert!(
            changed && snap.reload_error.is_none() && snap.apps.is_empty(),
            "no file: no policy, no error"
        );
    }

    #[tokio::test]
    async fn the_bus_bridge_counts_what_the_console_missed() {
        let bus = AuditBus::new(16);
        let (tx, mut rx) = channel();
        let bridge = spawn_bus_bridge(&bus, tx);
        let at = chrono::Utc::now();
        for i in 0..100 {
            bus.publish(Arc::new(crate::audit::AccessEvent::empty(
                crate::audit::EventKind::Access,
                at,
                format!("{i}"),
            )));
        }
        let (mut dropped, mut rays) = (0, Vec::new());
        while rays.len() < 16 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Msg::Dropped(n) => dropped += n,
                Msg::Event(e) => rays.push(e.ray_id.clone()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(dropped, 84);
        assert_eq!(bridge.lagged.load(Ordering::Relaxed), 84);
        assert_eq!(rays.first().map(String::as_str), Some("84"));
        assert_eq!(rays.last().map(String::as_str), Some("99"));
    }

    #[tokio::test]
    async fn the_inventory_poller_sends_policies_then_tokens_and_certs() {
        use crate::credential::{ClientId, ClientSecret};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let id = ClientId::generate();
        crate::store::wait(store.create_token(&crate::store::NewToken {
            name: "ci-deploy-prod",
            client_id: &id,
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + chrono::Duration::days(5),
            bounds: Default::default(),
        }))
        .unwrap();
        crate::store::wait(store.insert_cert(&crate::store::pki::NewCert {
            serial: "0a1b2c",
            common_name: "device-0001.factory.corp",
            issuer: "CN=botgate Device CA",
            ca_id: None,
            fingerprint_sha256: "ab",
            not_before: now,
            not_after: now + chrono::Duration::days(20),
            key_type: "ecdsa-p256",
            cert_pem: "",
            source: crate::store::pki::CertSource::Watched,
            path: Some("/etc/certs/d1.pem"),
            created_at: now,
        }))
        .unwrap();
        let (tx, mut rx) = channel();
        let hub = crate::store::hub::InventoryHub::start((*store).clone()).unwrap();
        let task = spawn_inventory(
            hub.subscribe(),
            PolicySource::None,
            tx,
            Duration::from_secs(3600),
        );
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(first, Msg::Policies { ref apps, reload_error: None } if apps.is_empty()),
            "{first:?}"
        );
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Msg::Inventory { tokens, certs, .. } => {
                assert_eq!(tokens.len(), 1);
                assert_eq!(tokens[0].name, "ci-deploy-prod");
                assert_eq!(
                    tokens[0].status(now),
                    super::super::model::CredentialStatus::Critical
                );
                assert_eq!(certs.len(), 1);
                assert_eq!(certs[0].source, "watched:/etc/certs/d1.pem");
                assert_eq!(
                    certs[0].status(now),
                    super::super::model::CredentialStatus::Warn
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        task.abort();
    }
}
