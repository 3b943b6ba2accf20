//! The one start-up path of a gate process, used by `serve`, `serve --console` and `demo`:
//! from a policy file + store + options it starts the gate (listeners, TLS, the audit writer
//! and the bus it publishes to), the services beside it (detectors, sinks, the detectors'
//! inventory cache, CRL refresh, `[inventory] watch`), the admin-journal relay (admin events
//! made by other processes reach the writer, so the file, bus, console, sinks, `/metrics` and
//! `/events`, once), and policy hot reload (gate policies, TLS and the detectors' expected
//! countries together; every reload is an admin event). The demo adds only its upstream, bots
//! and SIEM endpoint on top.

mod journal;
mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditBus;
use crate::clock::SharedClock;
use crate::config::LoadedConfig;
use crate::detect::DetectConfig;
use crate::gate::store_tls::StoreTlsSource;
use crate::gate::{self, CountryLookup, GateOptions, RunningGate};
use crate::services::{ServiceOptions, Services};
use crate::sink::SinkConfig;
use crate::store::Store;
use crate::store::hub::InventoryHub;

pub use reload::{LivePolicy, ReloadOutcome, ReloadReport, describe_rejection};

/// What the runtime is started with, beyond the policy file and the store.
pub struct RuntimeOptions {
    /// The policy file (watched for hot reload; relative `[geo]` and `[inventory]` paths are
    /// beside it).
    pub policy_path: PathBuf,
    /// Relative `audit_log`, `tls_cert`, `tls_key` and sink spools are under it.
    pub state_dir: PathBuf,
    pub clock: SharedClock,
    /// The bus the audit writer publishes to (pass one to subscribe before anything is sent).
    pub bus: AuditBus,
    /// Accept threads (`GateOptions::workers`; 0 = tasks on the caller's runtime).
    pub workers: usize,
    /// IP → country instead of the policy file's `[geo]` (the demo's embedded table).
    pub geo: Option<Arc<dyn CountryLookup>>,
    /// Detector settings instead of the policy file's `[detect]` (the demo's short windows).
    pub detect: Option<DetectConfig>,
    /// Sinks beside the policy file's `[[sink]]`s (the demo's local SIEM).
    pub extra_sinks: Vec<SinkConfig>,
    /// How often the inventory rules run (default `services::INVENTORY_EVERY`).
    pub tick_every: Option<Duration>,
    /// Where a reload outcome is shown besides its admin event.
    pub report: ReloadReport,
}

impl RuntimeOptions {
    /// Defaults for `policy_path` and `state_dir`: system clock, a new bus, no overrides,
    /// reloads reported on stderr.
    pub fn new(policy_path: &Path, state_dir: &Path) -> Self {
        Self {
            policy_path: policy_path.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            clock: Arc::new(crate::clock::SystemClock),
            bus: AuditBus::default(),
            workers: 0,
            geo: None,
            detect: None,
            extra_sinks: Vec::new(),
            tick_every: None,
            report: ReloadReport::Stderr,
        }
    }
}

/// Start-up failures. `BadInput` is the configuration's fault (exit 2), the rest refusals.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Gate(#[from] gate::GateError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A running gate process. `stop` shuts it down in order.
pub struct Runtime {
    pub gate: RunningGate,
    pub bus: AuditBus,
    pub store: Arc<Store>,
    /// The one follower of the store's change feed: gate, detectors and console read from it.
    pub hub: Arc<InventoryHub>,
    /// The policy the gate runs (and the last rejected edit), updated by every reload.
    pub live: tokio::sync::watch::Receiver<LivePolicy>,
    pub clock: SharedClock,
    pub policy_path: PathBuf,
    pub state_dir: PathBuf,
    services: Services,
    relay: journal::JournalRelay,
    reload: reload::ReloadTask,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("gate", &self.gate.addr)
            .field("policy_path", &self.policy_path)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Start everything (inside a tokio runtime). Admin events already in the journal are
    /// queued for the writer before this returns, so they precede the first request's events.
    pub async fn start(
        loaded: &LoadedConfig,
        store: Arc<Store>,
        opts: RuntimeOptions,
    ) -> Result<Runtime, RuntimeError> {
        crate::install_crypto_provider();
        let file = &loaded.file;
        let config = opts.policy_path.display().to_string();
        let bad = |e: String| RuntimeError::BadInput(format!("{config}: {e}"));
        let policies = crate::policy::compile(file).map_err(|e| bad(e.to_string()))?;
        let mut gate_opts = gate_options(loaded, &opts, &store, &policies)?;
        gate_opts.workers = opts.workers;
        let base = opts.policy_path.parent().unwrap_or(Path::new("."));
        let geo = match opts.geo.clone() {
            Some(g) => Some(g),
            None => crate::services::geo_from_file(file, base).map_err(bad)?,
        };
        let mut service_opts = ServiceOptions::from_file(file).map_err(bad)?;
        if let Some(detect) = opts.detect.clone() {
            service_opts.detect = detect;
        }
        service_opts.sinks.extend(opts.extra_sinks.iter().cloned());
        if let Some(every) = opts.tick_every {
            service_opts.tick_every = every;
        }
        service_opts.inventory_dirs = file.inventory.watch.iter().map(|d| base.join(d)).collect();
        let audit_log = gate_opts.audit_log.clone();
        let (live_tx, live) = tokio::sync::watch::channel(LivePolicy {
            file: Some(Arc::new(file.clone())),
            rejected: None,
        });
        let hub = Arc::new(InventoryHub::start((*store).clone())?);
        let gate = gate::start(
            gate_opts,
            policies,
            hub.clone(),
            opts.bus.clone(),
            opts.clock.clone(),
            geo,
        )
        .await?;
        let started = async {
            let services = crate::services::start(
                service_opts,
                &gate,
                &opts.bus,
                &hub,
                opts.clock.clone(),
                &opts.state_dir,
            )
            .map_err(RuntimeError::Refused)?;
            let relay = journal::JournalRelay::start(
                store.clone(),
                gate.state.audit.clone(),
                &audit_log,
                opts.clock.clone(),
            )
            .await;
            let relay = match relay {
                Ok(r) => r,
                Err(e) => {
                    services.stop().await;
                    return Err(e.into());
                }
            };
            let target = reload::ReloadTarget {
                live: live_tx,
                gate: gate.reloader(),
                countries: services.detect.expected_countries_tx(),
                audit: gate.state.audit.clone(),
                clock: opts.clock.clone(),
                report: opts.report,
            };
            match reload::ReloadTask::start(opts.policy_path.clone(), target) {
                Ok(reload) => Ok((services, relay, reload)),
                Err(e) => {
                    relay.stop().await;
                    services.stop().await;
                    Err(RuntimeError::Refused(e))
                }
            }
        }
        .await;
        let (services, relay, reload) = match started {
            Ok(parts) => parts,
            Err(e) => {
                gate.shutdown().await;
                return Err(e);
            }
        };
        Ok(Runtime {
            gate,
            bus: opts.bus,
            store,
            hub,
            live,
            clock: opts.clock,
            policy_path: opts.policy_path,
            state_dir: opts.state_dir,
            services,
            relay,
            reload,
        })
    }

    /// Re-read the policy file now and apply it (as a file change would).
    pub fn reload_now(&self) -> ReloadOutcome {
        self.reload.reload_now()
    }

    /// The sinks' handles (delivery counters).
    pub fn sinks(&self) -> &[crate::sink::SinkHandle] {
        &self.services.sinks
    }

    /// Stop reloads, the services, relay the last journal rows, stop the gate (flushing the
    /// audit log) and give up the audit file's writer lease.
    pub async fn stop(self) {
        self.reload.stop();
        self.services.stop().await;
        let relay = self.relay.finish().await;
        self.gate.shutdown().await;
        relay.release().await;
    }
}

/// Gate options from `[gate]`, with the TLS source when `tls_listen` is set: the configured
/// `tls_cert`/`tls_key`, else a server certificate from the local CA.
fn gate_options(
    loaded: &LoadedConfig,
    opts: &RuntimeOptions,
    store: &Arc<Store>,
    policies: &crate::policy::PolicySet,
) -> Result<GateOptions, RuntimeError> {
    let config = opts.policy_path.display();
    let mut gate_opts = GateOptions::from_file(&loaded.file, &opts.state_dir)
        .map_err(|e| RuntimeError::BadInput(format!("{config}: [gate] {e}")))?;
    gate_opts.policy_dir = opts
        .policy_path
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if gate_opts.tls_listen.is_some() {
        let g = &loaded.file.gate;
        let in_state_dir = |p: &Path| match p.is_absolute() {
            true => p.to_path_buf(),
            false => opts.state_dir.join(p),
        };
        let files = match (&g.tls_cert, &g.tls_key) {
            (Some(c), Some(k)) => Some((in_state_dir(c), in_state_dir(k))),
            (None, None) => None,
            _ => {
                return Err(RuntimeError::BadInput(format!(
                    "{config}: [gate] set both tls_cert and tls_key, or neither (a certificate is then issued by the local CA)"
                )));
            }
        };
        let hostnames: Vec<String> = policies
            .apps
            .iter()
            .flat_map(|a| a.hostnames.clone())
            .collect();
        if files.is_none()
            && let Some(ca) =
                crate::gate::store_tls::ensure_local_ca(store, &opts.state_dir, chrono::Utc::now())
                    .map_err(RuntimeError::Refused)?
        {
            eprintln!(
                "created the local CA {:?} for HTTPS (as `botgate ca init` would; its root key is kept in the state dir); clients verify the gate with: curl --cacert {}",
                ca.name,
                ca.root_cert.display()
            );
        }
        let source =
            StoreTlsSource::new(store.clone(), files, &hostnames).map_err(RuntimeError::Refused)?;
        gate_opts.tls = Some(Arc::new(source));
    }
    Ok(gate_opts)
}
