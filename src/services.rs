//! Services that run beside the gate on the same bus and store, for `serve` and `demo` alike:
//! the detection engine (alerts published through the audit sink, so they reach the log, the
//! bus, `/metrics` and the SIEM sinks), the SIEM sinks, a cached credential inventory for the
//! detectors (read from SQLite every few seconds, never per event) and the CRL refresh.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::assertion::lifecycle::{self, KeyPolicy};
use crate::audit::AuditBus;
use crate::clock::SharedClock;
use crate::config::PolicyFile;
use crate::detect::{
    self, CredentialExpiry, CredentialKind, CrlStatus, DetectConfig, DetectHandle, Engine,
    ExpectedCountries, Inventory,
};
use crate::gate::{CountryLookup, RunningGate};
use crate::geo::GeoDb;
use crate::sink::{Sink, SinkConfig, SinkHandle};
use crate::store::Store;
use crate::store::hub::{Inventory as HubInventory, InventoryHub};
use crate::store::leases::{self, LeaseKeeper};

/// How often the inventory cache and the detectors' expiry rules run.
pub const INVENTORY_EVERY: Duration = Duration::from_secs(5);
/// How often the lease holder moves signing keys on (announce, rotate, remove).
pub const SIGNING_KEYS_EVERY: Duration = Duration::from_secs(5);
/// How often botgate's own CRL is re-signed when due.
pub const CRL_REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// What to start.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub detect: DetectConfig,
    pub expected_countries: ExpectedCountries,
    pub sinks: Vec<SinkConfig>,
    pub tick_every: Duration,
    /// `[inventory] watch` directories (resolved), re-scanned into the inventory on change.
    pub inventory_dirs: Vec<std::path::PathBuf>,
    /// How the origin assertion's signing keys rotate (`[gate] assertion_key_*`).
    pub signing_keys: KeyPolicy,
    /// `[tokens]`: when unused tokens are disabled (off by default).
    pub retire: crate::retire::RetirePolicy,
}

impl ServiceOptions {
    /// From the policy file's `[detect]` and `[[sink]]` sections.
    pub fn from_file(file: &PolicyFile) -> Result<Self, String> {
        Ok(Self {
            detect: DetectConfig::from_table(&file.detect).map_err(|e| format!("[detect] {e}"))?,
            expected_countries: ExpectedCountries::from_policy(file),
            sinks: SinkConfig::parse_all(&file.sink).map_err(|e| format!("[[sink]] {e}"))?,
            tick_every: INVENTORY_EVERY,
            inventory_dirs: Vec::new(),
            signing_keys: crate::assertion::Settings::from_gate(&file.gate)
                .map_err(|e| e.to_string())?
                .keys,
            retire: crate::retire::RetirePolicy::from_section(&file.tokens)
                .map_err(|(key, e)| format!("[tokens] {key}: {e}"))?,
        })
    }
}

/// The running services; `stop` before the gate shuts down.
#[derive(Debug)]
pub struct Services {
    /// The one-node job lease (CRL re-signing and the inventory alerts run while held).
    lease: LeaseKeeper,
    pub detect: DetectHandle,
    pub sinks: Vec<SinkHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Keeps the `[inventory] watch` notifier alive.
    _inventory_watcher: Option<notify::RecommendedWatcher>,
}

/// Start detection, sinks, the inventory cache and the CRL refresh beside `gate` (inside a
/// tokio runtime).
pub fn start(
    opts: ServiceOptions,
    gate: &RunningGate,
    bus: &AuditBus,
    hub: &InventoryHub,
    clock: SharedClock,
    state_dir: &Path,
) -> Result<Services, String> {
    let store = Arc::new(hub.store().clone());
    let sinks = Sink::start_all(opts.sinks, state_dir, bus).map_err(|e| e.to_string())?;
    let inventory_watcher =
        watch_inventory_dirs(opts.inventory_dirs, store.clone(), clock.clone())?;
    let lease = LeaseKeeper::start(store.clone(), gate.node.as_deref(), clock.clone());
    let keys = opts.signing_keys;
    let cache = Arc::new(ArcSwap::from_pointee(detector_inventory(
        &hub.current(),
        &keys,
    )));
    let mut tasks = vec![tokio::spawn(follow_inventory(
        hub.subscribe(),
        cache.clone(),
        keys,
    ))];
    if !opts.retire.is_off() {
        tasks.push(tokio::spawn(retire_unused_tokens(
            store.clone(),
            gate.state.policies.clone(),
            opts.retire,
            clock.clone(),
            lease.held(),
        )));
    }
    tasks.push(tokio::spawn(keep_signing_keys(
        store.clone(),
        keys,
        clock.clone(),
        lease.held(),
    )));
    tasks.push(tokio::spawn(refresh_crl(
        store.clone(),
        clock.clone(),
        lease.held(),
    )));
    let held = lease.held();
    let oidc = gate.state.oidc.clone();
    let oidc_clock = clock.clone();
    let mut engine = Engine::new(opts.detect);
    engine.set_expected_countries(opts.expected_countries);
    let audit = gate.state.audit.clone();
    let (remote_tx, remote_rx) = tokio::sync::mpsc::unbounded_channel();
    tasks.push(tokio::spawn(follow_usage(
        store.clone(),
        gate.instance.clone(),
        remote_tx,
    )));
    let detect = detect::task::spawn(
        engine,
        bus.subscribe(),
        remote_rx,
        clock,
        opts.tick_every,
        move || Inventory {
            standby: !held.load(Ordering::Relaxed),
            stale_issuers: stale_issuers(&oidc, oidc_clock.now()),
            ..(**cache.load()).clone()
        },
        move |alert| {
            // A full audit queue drops the alert from the file but it is still on the bus.
            let _ = audit.record(alert);
        },
    );
    Ok(Services {
        lease,
        detect,
        sinks,
        tasks,
        _inventory_watcher: inventory_watcher,
    })
}

impl Services {
    /// Stop every service, letting sinks persist their spool position.
    pub async fn stop(self) {
        self.detect.task.abort();
        for t in self.tasks {
            t.abort();
        }
        self.lease.stop().await;
        for s in self.sinks {
            s.shutdown().await;
        }
    }
}

/// Read the other gates' usage rows every `usage::RECORD_EVERY` and hand them to the detectors.
/// Starts at rows written from now on (what happened before this gate started is not replayed).
async fn follow_usage(
    store: Arc<Store>,
    instance: Arc<str>,
    tx: tokio::sync::mpsc::UnboundedSender<detect::task::RemoteUsage>,
) {
    use crate::store::usage::{READ_LIMIT, RECORD_EVERY};
    let mut tick = tokio::time::interval(RECORD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor: Option<i64> = None;
    let started = chrono::Utc::now();
    loop {
        tick.tick().await;
        loop {
            let after = cursor.unwrap_or(0);
            let rows = match store.usage_since(after, &instance, READ_LIMIT).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the usage feed");
                    break;
                }
            };
            let full = rows.len() == READ_LIMIT;
            let Some(last) = rows.last() else {
                cursor.get_or_insert(after);
                break;
            };
            let last_id = last.id;
            cursor = Some(last_id);
            let batch: detect::task::RemoteUsage = rows
                .into_iter()
                .filter(|r| r.row.at >= started)
                .filter_map(|r| {
                    match crate::audit::tail::parse_line(r.row.event.as_bytes(), 1) {
                        Some(crate::audit::tail::TailItem::Event(ev)) => {
                            Some(((*ev).clone(), r.row.requests))
                        }
                        _ => {
                            tracing::warn!(id = r.id, instance = %r.instance, "usage feed: a row that is not an audit event; skipped");
                            None
                        }
                    }
                })
                .collect();
            if !batch.is_empty() {
                tracing::debug!(
                    rows = batch.len(),
                    cursor = last_id,
                    "usage feed: other gates' requests for the detectors"
                );
                if tx.send(batch).is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// The issuers whose key set on this gate is older than their `max_key_age`.
fn stale_issuers(
    oidc: &crate::oidc::Issuers,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<detect::StaleIssuer> {
    oidc.all()
        .iter()
        .filter(|s| s.is_stale(now))
        .map(|s| detect::StaleIssuer {
            name: s.settings.name.to_string(),
            issuer: s.settings.issuer.clone(),
            fetched_at: s.keys().map(|k| k.fetched_at),
            since: s.since,
            max_age: s.settings.max_key_age,
            last_error: s.status().last_error,
        })
        .collect()
}

/// The live credentials, CRL deadlines and signing key age the inventory rules need.
pub fn detector_inventory(hub: &HubInventory, keys: &KeyPolicy) -> Inventory {
    let now = chrono::Utc::now();
    let period = keys
        .rotation
        .unwrap_or(chrono::Duration::days(lifecycle::DEFAULT_ROTATION_DAYS));
    let signing_key = lifecycle::statuses(&hub.signing_keys, now, keys)
        .into_iter()
        .find(|s| s.state == lifecycle::KeyState::Active)
        .map(|s| detect::SigningKeyDue {
            kid: s.record.kid.clone(),
            created_at: s.record.created_at,
            due_at: s.record.created_at + period + keys.publish_ahead,
        });
    let mut inv = Inventory {
        store_error: hub.store_error.clone(),
        signing_key,
        ..Default::default()
    };
    inv.credentials
        .extend(hub.tokens.iter().filter_map(CredentialExpiry::from_token));
    inv.credentials.extend(
        hub.certs
            .iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| CredentialExpiry {
                kind: CredentialKind::Cert,
                name: c.common_name.clone(),
                id: c.serial.clone(),
                created_at: c.created_at,
                expires_at: c.not_after,
                last_seen_at: c.last_seen_at,
            }),
    );
    inv.crls.extend(hub.cas.iter().filter_map(|ca| {
        // botgate's own CRL (stored), else an external CRL file configured for the CA.
        let next_update = ca.crl_next_update.or_else(|| {
            let path = ca.crl_path.as_deref()?;
            match crate::pki::crl::load_crl_file(Path::new(path)) {
                Ok(info) => info.next_update,
                Err(e) => {
                    tracing::warn!(ca = %ca.name, file = path, error = %e, "cannot read CRL for the stale-CRL check");
                    None
                }
            }
        })?;
        Some(CrlStatus {
            ca_name: ca.name.clone(),
            next_update,
        })
    }));
    inv
}

/// Scan the watched certificate directories now and again whenever notify reports a change in
/// one (debounced); the gate's snapshot and the console pick the rows up from the store.
fn watch_inventory_dirs(
    dirs: Vec<std::path::PathBuf>,
    store: Arc<Store>,
    clock: SharedClock,
) -> Result<Option<notify::RecommendedWatcher>, String> {
    use notify::Watcher;
    if dirs.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("cannot watch [inventory] directories: {e}"))?;
    for d in &dirs {
        // A directory that does not exist yet is reported by the scan, not fatal.
        if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch inventory directory");
        }
    }
    std::thread::Builder::new()
        .name("inventory-watch".into())
        .spawn(move || {
            let sync = || match crate::pki::inventory::sync_dirs(&store, &dirs, clock.now()) {
                Ok(scan) if scan.error_count() > 0 => tracing::warn!(
                    unreadable = scan.error_count(),
                    "inventory scan: some files could not be read (see `botgate cert list`)"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "inventory scan failed"),
            };
            sync();
            // Ends when the watcher (and so the sender) is dropped with the services.
            while rx.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                while rx.try_recv().is_ok() {}
                sync();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(watcher))
}

/// Rebuild the detectors' inventory from every inventory the hub publishes (the CRL files
/// are read here, off the hub's task).
async fn follow_inventory(
    mut hub: tokio::sync::watch::Receiver<Arc<HubInventory>>,
    cache: Arc<ArcSwap<Inventory>>,
    keys: KeyPolicy,
) {
    while hub.changed().await.is_ok() {
        let inv = hub.borrow_and_update().clone();
        if let Ok(built) =
            tokio::task::spawn_blocking(move || detector_inventory(&inv, &keys)).await
        {
            cache.store(Arc::new(built));
        }
    }
}

/// Move the origin assertion's signing keys on (publish a successor when rotation is due,
/// announce each state reached, remove keys past their overlap), on the gate holding the
/// one-node lease. Which key signs never waits for this: it follows from the timestamps.
async fn keep_signing_keys(
    store: Arc<Store>,
    keys: KeyPolicy,
    clock: SharedClock,
    held: Arc<AtomicBool>,
) {
    loop {
        if held.load(Ordering::Relaxed) {
            match lifecycle::tick(&store, &keys, clock.now()).await {
                Ok(steps) => {
                    for step in steps {
                        tracing::info!(?step, "origin assertion signing key");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot move the signing keys on"),
            }
        }
        tokio::time::sleep(SIGNING_KEYS_EVERY).await;
    }
}

/// How often the lease holder looks for tokens to retire.
pub const RETIRE_EVERY: Duration = Duration::from_secs(60);

/// Disable the tokens `[tokens]` retires (unused, or admitted by no policy), on the gate
/// holding the one-node lease, each with a `token_retire` admin event.
async fn retire_unused_tokens(
    store: Arc<Store>,
    policies: Arc<ArcSwap<crate::policy::PolicySet>>,
    retire: crate::retire::RetirePolicy,
    clock: SharedClock,
    held: Arc<AtomicBool>,
) {
    loop {
        if held.load(Ordering::Relaxed) {
            let now = clock.now();
            match crate::retire::sweep(&store, &policies.load(), &retire, now).await {
                Ok(done) => {
                    for (name, reason) in done {
                        tracing::warn!(token = %name, reason = reason.as_str(), "token disabled by [tokens] retirement");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot sweep tokens for retirement"),
            }
        }
        tokio::time::sleep(RETIRE_EVERY).await;
    }
}

/// Re-sign the CRL when due, on the gate holding the one-node lease.
async fn refresh_crl(store: Arc<Store>, clock: SharedClock, held: Arc<AtomicBool>) {
    loop {
        if !held.load(Ordering::Relaxed) {
            tokio::time::sleep(leases::RENEW_EVERY).await;
            continue;
        }
        let (store, now) = (store.clone(), clock.now());
        match tokio::task::spawn_blocking(move || crate::pki::crl::refresh_crl_if_due(&store, now))
            .await
        {
            Ok(Ok(Some(crl))) => {
                tracing::info!(ca = %crl.ca_name, number = crl.crl_number, "CRL re-signed")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot refresh the CRL"),
            _ => {}
        }
        tokio::time::sleep(CRL_REFRESH_EVERY).await;
    }
}

impl CountryLookup for GeoDb {
    fn country(&self, ip: std::net::IpAddr) -> Option<String> {
        GeoDb::country(self, ip)
    }
}

/// The `[geo]` database, if configured (relative paths are under `base`).
pub fn geo_from_file(
    file: &PolicyFile,
    base: &Path,
) -> Result<Option<Arc<dyn CountryLookup>>, String> {
    let path = match (&file.geo.csv, &file.geo.mmdb) {
        (Some(_), Some(_)) => return Err("[geo] set csv or mmdb, not both".into()),
        (Some(p), None) | (None, Some(p)) => base.join(p),
        (None, None) => return Ok(None),
    };
    let db = GeoDb::open(&path).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(db)))
}
