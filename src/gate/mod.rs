//! The gate: listeners, identity extraction, enforcement, forwarding and header hygiene.
//! Built from one `GateOptions` + `PolicySet` + `Store`; never parses config itself and never
//! reads SQLite per request (see `snapshot`).

pub mod admin;
pub mod assertion;
pub mod client_auth;
pub mod deny;
pub mod forward;
pub mod handler;
pub mod identify;
pub mod limits;
pub mod listener;
pub mod metrics;
mod parse_reject;
pub mod request_head;
pub mod snapshot;
pub mod store_tls;
pub mod tls;
pub mod upstream;
mod usage;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::watch;

pub use handler::{ConnInfo, CountryLookup, Downstream, GateState, PeerCert};
use listener::ConnLimits;
use snapshot::{CredentialSnapshot, SnapshotRefresher};

use crate::audit::{AuditBus, AuditWriter, BusMessage, WriterOptions};
use crate::clock::SharedClock;
use crate::config::{AuditDurability, AuditFailure, PolicyFile};
use crate::policy::PolicySet;
use crate::store::Store;
use crate::store::hub::InventoryHub;

/// How the gate runs, resolved from the `[gate]` section.
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    /// Server certificate and trusted CAs for `tls_listen`, re-read when the store changes.
    pub tls: Option<Arc<dyn tls::TlsSource>>,
    pub audit_log: PathBuf,
    pub audit_failure: AuditFailure,
    pub audit_durability: AuditDurability,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: ConnLimits,
    pub upstream_timeout: Duration,
    /// Events that may wait for the writer before the gate fails closed.
    pub audit_queue: usize,
    /// Threads that accept and serve the plain and TLS listeners, each a single-threaded
    /// runtime with its own `SO_REUSEPORT` sockets. 0: the accept loops and connections run as
    /// tasks on the caller's runtime (the default; `botgate serve` uses one per CPU).
    pub workers: usize,
    /// `node` in every audit event this gate writes.
    pub node: Option<Arc<str>>,
    /// How the origin assertion is signed (`[gate] issuer`, `assertion_*`).
    pub assertion: crate::assertion::Settings,
    /// Where the OIDC issuers' state files live (`<state>/oidc`); `None` keeps none.
    pub state_dir: Option<PathBuf>,
    /// The policy file's directory (relative `jwks_file` paths are under it).
    pub policy_dir: PathBuf,
}

impl GateOptions {
    /// Resolve from the policy file; relative audit paths are under `state_dir`.
    pub fn from_file(file: &PolicyFile, state_dir: &std::path::Path) -> Result<Self, String> {
        let g = &file.gate;
        let audit_log = if g.audit_log.is_absolute() {
            g.audit_log.clone()
        } else {
            state_dir.join(&g.audit_log)
        };
        let trusted_proxies = g
            .trusted_proxies
            .iter()
            .map(|p| crate::config::values::parse_cidr(p.get_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            listen: *g.listen.get_ref(),
            admin_listen: g.admin_listen.as_ref().map(|a| *a.get_ref()),
            tls_listen: g.tls_listen.as_ref().map(|a| *a.get_ref()),
            tls: None,
            audit_log,
            audit_failure: g.audit_failure,
            audit_durability: g.audit_durability,
            trusted_proxies,
            limits: ConnLimits {
                header_read_timeout: Duration::from_millis(g.header_read_timeout_ms),
                max_header_bytes: g.max_header_bytes,
                max_headers: g.max_headers,
            },
            upstream_timeout: Duration::from_millis(g.upstream_timeout_ms),
            audit_queue: 65_536,
            workers: 0,
            node: g
                .node
                .clone()
                .or_else(crate::config::model::host_node_name)
                .map(Into::into),
            assertion: crate::assertion::Settings::from_gate(g).map_err(|e| e.to_string())?,
            state_dir: Some(state_dir.to_path_buf()),
            policy_dir: PathBuf::from("."),
        })
    }
}

/// Gate start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("tls_listen is set but no TLS material source was given")]
    NoTlsSource,
    #[error("cannot load TLS material: {0}")]
    TlsMaterial(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("origin assertion: {0}")]
    Assertion(String),
}

/// The TLS material source and the configs built from it, swapped on change.
type LiveTls = (Arc<dyn tls::TlsSource>, Arc<ArcSwap<tls::TlsConfigs>>);

/// A running gate. Drop or `shutdown` to stop.
#[derive(Debug)]
pub struct RunningGate {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub state: Arc<GateState>,
    /// The gate's name in events (`[gate] node`, default the host name).
    pub node: Option<Arc<str>>,
    /// This process among the gates on the store (node, pid and a random part: two gates
    /// with one node name stay apart), for the usage feed.
    pub instance: Arc<str>,
    tls_configs: Option<LiveTls>,
    shutdown: watch::Sender<bool>,
    writer: AuditWriter,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _refresher: SnapshotRefresher,
    /// The store follower the snapshot comes from (kept for the gate's lifetime).
    _hub: Arc<InventoryHub>,
}

/// Start the gate: audit writer, snapshot refresher, last-seen recorder and the listener.
pub async fn start(
    opts: GateOptions,
    policies: PolicySet,
    hub: Arc<InventoryHub>,
    bus: AuditBus,
    clock: SharedClock,
    geo: Option<Arc<dyn CountryLookup>>,
) -> Result<RunningGate, GateError> {
    let store = Arc::new(hub.store().clone());
    let mut policies = policies;
    assertion::resolve_audiences(&store, &mut policies).await?;
    let mut first = CredentialSnapshot::from_inventory(&hub.current());
    let made = crate::assertion::lifecycle::ensure_key(&store, &opts.assertion.keys, clock.now())
        .await
        .map_err(|e| GateError::Assertion(e.to_string()))?;
    if let Some(k) = made {
        tracing::info!(kid = %k.kid, alg = %k.alg, "created the first origin assertion signing key");
        first.keys = Arc::new(crate::assertion::KeyRing::from_records(
            &store.list_signing_keys().await?,
        ));
    }
    let snapshot = Arc::new(ArcSwap::from_pointee(first));
    let tls_configs = match (opts.tls_listen, &opts.tls) {
        (None, _) => None,
        (Some(_), None) => return Err(GateError::NoTlsSource),
        (Some(_), Some(source)) => {
            let material = source.material().map_err(GateError::TlsMaterial)?;
            Some((
                source.clone(),
                Arc::new(ArcSwap::from_pointee(tls::TlsConfigs::build(
                    &policies, &material,
                )?)),
            ))
        }
    };
    let policies = Arc::new(ArcSwap::from_pointee(policies));
    let on_change: Box<dyn Fn() + Send> = match &tls_configs {
        Some((source, configs)) => {
            let (source, configs, policies) = (source.clone(), configs.clone(), policies.clone());
            Box::new(move || rebuild_tls(&*source, &configs, &policies.load()))
        }
        None => Box::new(|| {}),
    };
    let on_poll: Box<dyn Fn() + Send> = match &tls_configs {
        Some((source, configs)) => {
            let (source, configs, policies) = (source.clone(), configs.clone(), policies.clone());
            Box::new(move || {
                if source.changed() {
                    rebuild_tls(&*source, &configs, &policies.load());
                }
            })
        }
        None => Box::new(|| {}),
    };
    let refresher = SnapshotRefresher::start(hub.subscribe(), snapshot.clone(), on_change, on_poll);
    let node = opts.node.clone();
    let writer_opts = WriterOptions {
        queue: opts.audit_queue,
        durability: opts.audit_durability,
        clock: clock.clone(),
        node: opts.node.clone(),
    };
    let (audit, writer) = AuditWriter::start(&opts.audit_log, bus.clone(), writer_opts)
        .await
        .map_err(|source| GateError::AuditLog {
            path: opts.audit_log.clone(),
            source,
        })?;
    let oidc = crate::oidc::Issuers::new(opts.state_dir.as_deref(), &opts.policy_dir);
    oidc.sync(&policies.load().issuers, clock.now());
    let state = Arc::new(GateState {
        policies,
        snapshot,
        audit,
        audit_failure: opts.audit_failure,
        client: forward::upstream_client(),
        trusted_proxies: opts.trusted_proxies,
        geo,
        clock,
        metrics: Default::default(),
        upstream_timeout: opts.upstream_timeout,
        assertions: assertion::Assertions::new(opts.assertion.clone()),
        limits: Default::default(),
        oidc,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tls = match (&tls_configs, opts.tls_listen) {
        (Some((_, configs)), Some(a)) => Some((a, configs.clone())),
        _ => None,
    };
    let (addr, tls_addr, mut tasks) = if opts.workers > 0 {
        let setup = workers::WorkerSetup {
            count: opts.workers,
            listen: opts.listen,
            tls,
            state: state.clone(),
            limits: opts.limits,
        };
        workers::start(setup, &shutdown_rx).await?
    } else {
        let listener = listener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let mut tasks = vec![tokio::spawn(listener::accept_plain(
            listener,
            state.clone(),
            opts.limits,
            shutdown_rx.clone(),
        ))];
        let tls_addr = match tls {
            Some((a, configs)) => {
                let l = listener::bind(a).await?;
                let tls_addr = l.local_addr()?;
                tasks.push(tokio::spawn(tls::accept_tls(
                    l,
                    state.clone(),
                    configs,
                    opts.limits,
                    shutdown_rx.clone(),
                )));
                Some(tls_addr)
            }
            None => None,
        };
        (addr, tls_addr, tasks)
    };
    let instance: Arc<str> = format!(
        "{} pid {} {}",
        node.as_deref().unwrap_or("gate"),
        std::process::id(),
        crate::audit::event::new_ray_id()
    )
    .into();
    tasks.push(tokio::spawn(heartbeat(
        store.clone(),
        instance.clone(),
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(refresh_issuers(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(record_last_seen(
        store,
        instance.clone(),
        bus.clone(),
        shutdown_rx.clone(),
    )));
    let admin_addr = match opts.admin_listen {
        Some(a) => {
            let admin = listener::bind(a).await?;
            let admin_addr = admin.local_addr()?;
            let metrics = Arc::new(std::sync::Mutex::new(admin::TrafficMetrics::default()));
            tasks.push(tokio::spawn(admin::aggregate(
                bus,
                metrics.clone(),
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(admin::serve(
                admin,
                state.clone(),
                metrics,
                hub.subscribe(),
                shutdown_rx,
            )));
            Some(admin_addr)
        }
        None => None,
    };
    tracing::info!(%addr, ?tls_addr, ?admin_addr, "gate listening");
    Ok(RunningGate {
        addr,
        admin_addr,
        tls_addr,
        state,
        node,
        instance,
        tls_configs,
        shutdown,
        writer,
        tasks,
        _refresher: refresher,
        _hub: hub,
    })
}

/// Rebuild the TLS configs; on failure keep the current ones and say why.
fn rebuild_tls(
    source: &dyn tls::TlsSource,
    configs: &ArcSwap<tls::TlsConfigs>,
    policies: &PolicySet,
) {
    let built = source
        .material()
        .map_err(tls::TlsError::Material)
        .and_then(|m| tls::TlsConfigs::build(policies, &m));
    match built {
        Ok(c) => configs.store(Arc::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "cannot rebuild TLS configuration; keeping the previous one")
        }
    }
}

/// Swaps policy sets into a running gate from another task (the runtime's reload task).
#[derive(Clone)]
pub struct PolicyReloader {
    tls_configs: Option<LiveTls>,
    oidc: Arc<crate::oidc::Issuers>,
    clock: SharedClock,
    policies: Arc<ArcSwap<PolicySet>>,
    store: Store,
}

impl PolicyReloader {
    /// Swap in a new policy set (hot reload); requests in flight keep the old one. Refused
    /// (the old set stays) when the store cannot give a new app its audience tag.
    pub fn reload(&self, mut policies: PolicySet) -> Result<(), String> {
        crate::store::wait(assertion::resolve_audiences(&self.store, &mut policies)).map_err(
            |e| format!("cannot read the apps' assertion audience tags from the store: {e}"),
        )?;
        if let Some((source, configs)) = &self.tls_configs {
            rebuild_tls(&**source, configs, &policies);
        }
        self.oidc.sync(&policies.issuers, self.clock.now());
        self.policies.store(Arc::new(policies));
        Ok(())
    }
}

impl RunningGate {
    /// Swap in a new policy set (hot reload); requests in flight keep the old one.
    pub fn reload_policies(&self, policies: PolicySet) -> Result<(), String> {
        self.reloader().reload(policies)
    }

    /// The audit log the gate's writer appends to.
    pub fn audit_log(&self) -> &std::path::Path {
        &self.writer.path
    }

    /// A handle that reloads policies into this gate.
    pub fn reloader(&self) -> PolicyReloader {
        PolicyReloader {
            tls_configs: self.tls_configs.clone(),
            oidc: self.state.oidc.clone(),
            clock: self.state.clock.clone(),
            policies: self.state.policies.clone(),
            store: self._hub.store().clone(),
        }
    }

    /// What makes the audit writer reopen its path (SIGHUP/SIGUSR1 after a log rotation).
    pub fn audit_reopen_handle(&self) -> crate::audit::ReopenHandle {
        self.writer.reopen_handle()
    }

    /// Stop accepting, let in-flight requests finish (up to 5 s), and flush the audit log.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.writer.finish().await;
    }
}

/// How long a gate's heartbeat counts it as alive (five beats: one slow write does not halve
/// every other gate's share of a rate limit).
pub const GATE_ALIVE_WITHIN: chrono::Duration = chrono::Duration::seconds(10);

/// Beat every `usage::RECORD_EVERY` in the store, so each gate knows how many gates share a
/// rate limit (`limits`), and tidy the limiter's idle buckets on the same beat. When the store
/// cannot be reached the last count stays; a clean stop removes this gate's row at once.
async fn heartbeat(
    store: Arc<Store>,
    instance: Arc<str>,
    state: Arc<GateState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(crate::store::usage::RECORD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            if let Err(e) = store.gate_stopped(&instance).await {
                tracing::debug!(error = %e, "cannot remove this gate's heartbeat; it expires on its own");
            }
            return;
        }
        match store
            .gate_heartbeat(&instance, state.clock.now(), GATE_ALIVE_WITHIN)
            .await
        {
            Ok(gates) => {
                if gates.max(1) != state.limits.gates_alive() {
                    tracing::info!(
                        gates,
                        "gates alive on this store changed; each enforces its share of rate limits"
                    );
                }
                state.limits.set_gates_alive(gates);
            }
            Err(e) => tracing::debug!(error = %e, "cannot write this gate's heartbeat"),
        }
        state.limits.housekeep();
    }
}

/// Keep the OIDC issuers' key sets fresh: at start, then every `ISSUER_TICK` each set whose
/// cache lifetime ended (failures back off). A changed key set (a kid added or removed) is an
/// admin event, `oidc_keys_changed`; a failed refresh is logged (the last good set stays).
async fn refresh_issuers(state: Arc<GateState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ISSUER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        for (issuer, outcome) in state.oidc.refresh_due(state.clock.now()).await {
            match outcome {
                Ok(change) if change.changed() => {
                    let keys = issuer.keys().map(|k| k.set.kids()).unwrap_or_default();
                    let ev = crate::audit::AccessEvent::admin(
                        state.clock.now(),
                        crate::oidc::KEYS_CHANGED,
                        &format!("{}{}", crate::oidc::ADMIN_TARGET, issuer.settings.name),
                        serde_json::json!({
                            "issuer": issuer.settings.issuer,
                            "added": change.added,
                            "removed": change.removed,
                            "kids": keys,
                        }),
                    );
                    if state.audit.record(ev).is_err() {
                        tracing::warn!("the audit log refused the oidc_keys_changed event");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    issuer = %issuer.settings.name,
                    error = %e,
                    "cannot refresh the OIDC issuer's key set; the last good one stays in use"
                ),
            }
        }
    }
}

/// How often the gate looks for OIDC key sets to refresh.
pub const ISSUER_TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// Keep token last-seen times and the usage feed in the store, from the bus, batched every 2 s
/// (never per request).
async fn record_last_seen(
    store: Arc<Store>,
    instance: Arc<str>,
    bus: AuditBus,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = bus.subscribe();
    let mut usage = usage::UsageBatch::default();
    let mut seen: std::collections::HashMap<String, (chrono::DateTime<chrono::Utc>, String)> =
        Default::default();
    let mut certs: std::collections::HashMap<String, crate::store::pki::CertSeen> =
        Default::default();
    let mut tick = tokio::time::interval(crate::store::usage::RECORD_EVERY);
    loop {
        let flush = tokio::select! {
            msg = rx.recv() => match msg {
                Ok(BusMessage::Event(ev)) => {
                    usage.observe(&ev);
                    if ev.allowed && let Some(id) = &ev.service_token_id {
                        let ip = ev.ip_address.as_deref().unwrap_or_default();
                        // The same few tokens over and over: update in place, allocate only for new ones.
                        match seen.get_mut(id.as_str()) {
                            Some((at, seen_ip)) => {
                                *at = ev.created_at;
                                if seen_ip != ip {
                                    ip.clone_into(seen_ip);
                                }
                            }
                            None => {
                                seen.insert(id.clone(), (ev.created_at, ip.to_string()));
                            }
                        }
                    }
                    if let (Some(fp), Some(serial)) = (&ev.cert_fingerprint_sha256, &ev.cert_serial) {
                        let ip = ev.ip_address.as_deref().unwrap_or_default();
                        match certs.get_mut(fp.as_str()) {
                            Some(seen) => {
                                seen.at = ev.created_at;
                                ip.clone_into(&mut seen.ip);
                            }
                            // The whole certificate once per batch, so the inventory knows
                            // validity, key type, issuer and SANs of certs botgate did not issue.
                            None => {
                                certs.insert(fp.clone(), crate::store::pki::CertSeen {
                                    fingerprint_sha256: fp.clone(),
                                    serial: serial.clone(),
                                    common_name: ev.cert_common_name.clone(),
                                    issuer: ev.cert_issuer.clone().unwrap_or_default(),
                                    not_after: ev.peer_cert.as_ref().map(|c| c.not_after),
                                    at: ev.created_at,
                                    ip: ip.to_string(),
                                    cert_pem: ev.peer_cert.as_ref().map(|c| c.to_pem()),
                                });
                            }
                        }
                    }
                    false
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => false,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => true,
            },
            _ = tick.tick() => true,
            _ = shutdown.changed() => true,
        };
        if flush && (!seen.is_empty() || !certs.is_empty()) {
            let batch: Vec<_> = seen.drain().map(|(id, (at, ip))| (id, at, ip)).collect();
            let cert_batch: Vec<_> = certs.drain().map(|(_, c)| c).collect();
            let res = match store.touch_tokens(&batch).await {
                Ok(()) => store.touch_certs(&cert_batch).await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "cannot record last-seen times");
            }
        }
        if flush && !usage.is_empty() {
            if usage.overflow > 0 {
                tracing::warn!(
                    requests = usage.overflow,
                    groups = crate::store::usage::MAX_ROWS,
                    "usage feed: more credential/IP/user-agent groups than one batch holds; the rest were not relayed to the other gates"
                );
                usage.overflow = 0;
            }
            let rows = usage.take();
            let keep_after = chrono::Utc::now() - crate::store::usage::KEEP;
            if let Err(e) = store.record_usage(&instance, &rows, keep_after).await {
                tracing::warn!(error = %e, "cannot write the usage feed; the other gates' detectors miss these requests");
            }
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
