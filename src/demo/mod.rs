//! `botgate demo`: a temporary state dir with realistic tokens (and, through the PKI hook,
//! certificates), the demo policy, a stub upstream, the gate, and simulated bots making real
//! HTTP(S) requests through it from distinct loopback addresses. Used only by the `demo` verb
//! and tests.
//!
//! Integration points: `DemoOptions::pki` (mTLS device fleet), `DemoOptions::services`
//! (detectors, metrics, sinks on the same bus), `DemoOptions::geo` (the real geo module); the
//! console reads `RunningDemo::bus`, `store`, `gate` and `policy_path`.

pub mod bots;
pub mod credentials;
pub mod hooks;
pub mod pki;
pub mod rollout;
pub mod roster;
pub mod scenario;
pub mod schedule;
pub mod siem;
pub mod summary;
pub mod upstream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bots::{BotFleet, FleetOptions, GateEndpoints, TlsEndpoint};
use hooks::{DemoContext, DemoPki, DemoService, DeviceSlot, PkiContext, ServiceStarter};
use siem::DemoSiem;
use summary::{CounterTask, DemoCounters, DemoSummary};
use upstream::StubUpstream;

use crate::audit::{AccessEvent, AuditBus};
use crate::clock::{SharedClock, SystemClock};
use crate::gate::{self, CountryLookup, GateOptions, RunningGate};
use crate::store::Store;

/// How to run the demo.
pub struct DemoOptions {
    /// Multiplies every bot's request rate: 1.0 is the realistic scenario, 20.0 makes a short
    /// test see everything, `f64::INFINITY` pushes as hard as `max_in_flight_per_bot` allows
    /// (load tests, console responsiveness). The scenario timeline (first leak at 3 s, runaway
    /// bursts from 12 s, every 60 s) stays wall-clock.
    pub rate_multiplier: f64,
    /// Concurrent requests per bot.
    pub max_in_flight_per_bot: usize,
    /// Stub upstream latency range (uniform).
    pub upstream_latency: std::ops::Range<Duration>,
    /// Where the temporary state dir is created (default: the system temp dir).
    pub temp_parent: Option<PathBuf>,
    /// IP → country for the gate; `None` uses the embedded `assets/demo-geo.csv`.
    pub geo: Option<Arc<dyn CountryLookup>>,
    /// mTLS integration: issues the device certificates and exposes the TLS listener. `None`
    /// leaves the device fleet out.
    pub pki: Option<Arc<dyn DemoPki>>,
    /// Number of simulated devices when `pki` is set.
    pub devices: usize,
    /// Services started on the demo's bus and store before the first bot sends.
    pub services: Vec<ServiceStarter>,
    /// Capacity of the audit bus per subscriber.
    pub bus_capacity: usize,
    /// Start the local SIEM endpoint (`siem`); services find its ingest URL in their context
    /// and the summary reports what it received.
    pub siem: bool,
    pub clock: SharedClock,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            rate_multiplier: 1.0,
            max_in_flight_per_bot: 64,
            upstream_latency: Duration::from_millis(1)..Duration::from_millis(12),
            temp_parent: None,
            geo: None,
            pki: None,
            devices: 8,
            services: Vec::new(),
            bus_capacity: 65_536,
            siem: false,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for DemoOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoOptions")
            .field("rate_multiplier", &self.rate_multiplier)
            .field("max_in_flight_per_bot", &self.max_in_flight_per_bot)
            .field("temp_parent", &self.temp_parent)
            .field("pki", &self.pki)
            .field("devices", &self.devices)
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

/// Demo start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create the demo's temporary state dir: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("demo policy: {0}")]
    Policy(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialFileError),
    #[error("cannot start the demo upstream: {0}")]
    Upstream(std::io::Error),
    #[error("cannot start the demo SIEM endpoint: {0}")]
    Siem(std::io::Error),
    #[error("cannot start the gate: {0}")]
    Gate(#[from] crate::gate::GateError),
    #[error("demo PKI: {0}")]
    Pki(String),
    #[error("demo service: {0}")]
    Service(String),
    #[error(transparent)]
    Bots(#[from] bots::BotError),
}

/// A running demo. `stop` shuts everything down in order and removes the state dir (dropping
/// it removes the dir too, but may leave the gate's tasks running until the runtime ends).
pub struct RunningDemo {
    gate: RunningGate,
    upstream: StubUpstream,
    siem: Option<DemoSiem>,
    bus: AuditBus,
    store: Arc<Store>,
    clock: SharedClock,
    policy_path: PathBuf,
    audit_log: PathBuf,
    credential_files: BTreeMap<String, PathBuf>,
    counters: Arc<DemoCounters>,
    counter_task: CounterTask,
    fleet: BotFleet,
    services: Vec<Box<dyn DemoService>>,
    warnings: Vec<String>,
    rate_multiplier: f64,
    started: Instant,
    // Last: removed after everything above has stopped using it.
    state_dir: tempfile::TempDir,
}

impl std::fmt::Debug for RunningDemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningDemo")
            .field("gate", &self.gate.addr)
            .field("upstream", &self.upstream.addr)
            .field("state_dir", &self.state_dir.path())
            .finish_non_exhaustive()
    }
}

/// Start the whole demo: state dir, tokens, policy, upstream, gate, services, bots.
pub async fn start(opts: DemoOptions) -> Result<RunningDemo, DemoError> {
    // reqwest 0.13 without a default provider panics on the first TLS client otherwise.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let now = opts.clock.now();
    let mut builder = tempfile::Builder::new();
    builder.prefix("botgate-demo-");
    let state_dir = match &opts.temp_parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .map_err(DemoError::TempDir)?;
    let dir = state_dir.path().to_path_buf();
    let store = Arc::new(Store::open(&dir)?);
    let creds_dir = dir.join(scenario::CREDENTIALS_DIR);
    let tokens = {
        let store = store.clone();
        let creds_dir = creds_dir.clone();
        tokio::task::spawn_blocking(move || scenario::create_tokens(&store, &creds_dir, now))
            .await
            .map_err(|e| DemoError::Service(format!("token set-up task failed: {e}")))??
    };
    let mut credential_files = tokens.files.clone();
    let mut warnings = Vec::new();

    let upstream = StubUpstream::start(opts.upstream_latency.clone())
        .await
        .map_err(DemoError::Upstream)?;
    let siem = if opts.siem {
        Some(DemoSiem::start().await.map_err(DemoError::Siem)?)
    } else {
        None
    };
    let policy_path = dir.join("policy.toml");
    write_file(
        &policy_path,
        &scenario::demo_policy(&upstream.url(), opts.pki.is_some())?,
    )?;

    let devices: Vec<DeviceSlot> = match &opts.pki {
        Some(_) => scenario::device_common_names(opts.devices)
            .into_iter()
            .map(|cn| DeviceSlot {
                credential_file: creds_dir.join(format!("{cn}.json")),
                common_name: cn,
            })
            .collect(),
        None => Vec::new(),
    };
    let provision = match &opts.pki {
        Some(pki) => Some(
            pki.provision(&PkiContext {
                store: &store,
                state_dir: &dir,
                policy_path: &policy_path,
                devices: &devices,
                now,
            })
            .map_err(DemoError::Pki)?,
        ),
        None => None,
    };

    let file = load_policy(&policy_path)?;
    let policies = crate::policy::compile(&file)
        .map_err(|e| DemoError::Policy(format!("{}: {e}", policy_path.display())))?;
    let mut gate_opts = GateOptions::from_file(&file, &dir)
        .map_err(|e| DemoError::Policy(format!("{}: [gate] {e}", policy_path.display())))?;
    if gate_opts.tls_listen.is_some() {
        let hostnames: Vec<String> = policies
            .apps
            .iter()
            .flat_map(|a| a.hostnames.clone())
            .collect();
        let source = crate::gate::store_tls::StoreTlsSource::new(store.clone(), None, &hostnames)
            .map_err(DemoError::Pki)?;
        gate_opts.tls = Some(Arc::new(source));
    }
    let audit_log = gate_opts.audit_log.clone();
    let geo = opts.geo.clone().map_or_else(demo_geo, Ok)?;
    let bus = AuditBus::new(opts.bus_capacity);
    let gate = gate::start(
        gate_opts,
        policies,
        store.clone(),
        bus.clone(),
        opts.clock.clone(),
        Some(geo),
    )
    .await?;
    let counters = Arc::new(DemoCounters::default());
    let counter_task = CounterTask::start(&bus, counters.clone());

    let tls = match (&opts.pki, provision) {
        (Some(pki), Some(p)) => match pki.tls_addr(&gate) {
            Some(addr) => Some(TlsEndpoint {
                addr,
                server_ca_pem: p.server_ca_pem,
            }),
            None => {
                warnings.push("the gate has no TLS listener: the device fleet stays home".into());
                None
            }
        },
        _ => None,
    };
    let fleet_devices = if tls.is_some() {
        for d in &devices {
            credential_files.insert(d.common_name.clone(), d.credential_file.clone());
        }
        devices.as_slice()
    } else {
        &[]
    };

    let aliases = scenario::loopback_aliases_work();
    if !aliases {
        warnings.push(
            "this host cannot bind 127.0.x.y source addresses: every bot uses 127.0.0.1, so every country is US".into(),
        );
    }
    let mut services = Vec::new();
    let mut failure = None;
    for starter in opts.services {
        let ctx = DemoContext {
            gate: &gate,
            bus: &bus,
            store: &store,
            clock: &opts.clock,
            state_dir: &dir,
            policy_path: &policy_path,
            audit_log: &audit_log,
            siem_ingest_url: siem.as_ref().map(DemoSiem::ingest_url),
        };
        match starter(&ctx) {
            Ok(s) => services.push(s),
            Err(e) => {
                failure = Some(DemoError::Service(e));
                break;
            }
        }
    }
    if failure.is_none() {
        record_setup_events(&gate, &opts.clock, &tokens.client_ids);
    }
    let fleet = match failure {
        Some(e) => Err(e),
        None => BotFleet::spawn(
            roster::demo_roster(&roster::RosterInputs {
                token_files: &tokens.files,
                client_ids: &tokens.client_ids,
                aliases,
                devices: fleet_devices,
            }),
            &GateEndpoints {
                plain: gate.addr,
                tls,
            },
            FleetOptions {
                rate_multiplier: opts.rate_multiplier,
                max_in_flight: opts.max_in_flight_per_bot,
                ..FleetOptions::default()
            },
        )
        .map_err(DemoError::from),
    };
    let fleet = match fleet {
        Ok(f) => f,
        Err(e) => {
            // Leave nothing running behind a failed start.
            for s in services {
                s.stop().await;
            }
            gate.shutdown().await;
            upstream.stop().await;
            counter_task.finish().await;
            return Err(e);
        }
    };

    Ok(RunningDemo {
        gate,
        upstream,
        siem,
        bus,
        store,
        clock: opts.clock,
        policy_path,
        audit_log,
        credential_files,
        counters,
        counter_task,
        fleet,
        services,
        warnings,
        rate_multiplier: opts.rate_multiplier,
        started: Instant::now(),
        state_dir,
    })
}

impl RunningDemo {
    /// The gate (`.addr` is the plain listener; `.state` its live state and metrics).
    pub fn gate(&self) -> &RunningGate {
        &self.gate
    }

    /// The local SIEM endpoint, when `DemoOptions::siem` started one.
    pub fn siem(&self) -> Option<&DemoSiem> {
        self.siem.as_ref()
    }

    /// The stub upstream's address.
    pub fn upstream_addr(&self) -> std::net::SocketAddr {
        self.upstream.addr
    }

    /// The in-process audit bus (subscribe for live events and alerts).
    pub fn bus(&self) -> &AuditBus {
        &self.bus
    }

    /// The demo's credential store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The clock the gate uses.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The temporary state dir (removed by `stop`).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// The policy file the gate loaded (edit it, then `reload_policy_file`).
    pub fn policy_path(&self) -> &Path {
        &self.policy_path
    }

    /// The JSONL audit log.
    pub fn audit_log(&self) -> &Path {
        &self.audit_log
    }

    /// Credential file per credential name (token name or device CN). Rewriting one (same JSON
    /// as `token create --json`) hands the bots that use it a new credential within 250 ms;
    /// the straggler (`ci-deploy-prod runner-2`) never re-reads.
    pub fn credential_files(&self) -> &BTreeMap<String, PathBuf> {
        &self.credential_files
    }

    /// The live counters (cheap to read; the console may prefer its own bus subscription).
    pub fn counters(&self) -> &Arc<DemoCounters> {
        &self.counters
    }

    /// Warnings about degraded set-up (no loopback aliases, no TLS listener).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The counts so far.
    pub fn summary(&self) -> DemoSummary {
        DemoSummary::collect(
            &self.counters,
            self.fleet.counts(),
            self.started.elapsed(),
            self.rate_multiplier,
            self.warnings.clone(),
        )
    }

    /// Re-read the policy file and swap it into the gate; a bad file keeps the running policy.
    pub fn reload_policy_file(&self) -> Result<(), DemoError> {
        let file = load_policy(&self.policy_path)?;
        let policies = crate::policy::compile(&file)
            .map_err(|e| DemoError::Policy(format!("{}: {e}", self.policy_path.display())))?;
        self.gate.reload_policies(policies);
        Ok(())
    }

    /// Stop the bots (waiting for their requests), the services, the gate (flushing the audit
    /// log), the upstream; count the last events; remove the state dir; return the summary.
    pub async fn stop(self) -> DemoSummary {
        let elapsed = self.started.elapsed();
        let bot_counters = self.fleet.counters.clone();
        self.fleet.stop().await;
        if let Some(siem) = &self.siem {
            siem_settle(siem).await;
        }
        for s in self.services {
            s.stop().await;
        }
        self.gate.shutdown().await;
        self.upstream.stop().await;
        let siem = match self.siem {
            Some(siem) => {
                let report = siem.report();
                siem.stop().await;
                Some(report)
            }
            None => None,
        };
        self.counter_task.finish().await;
        if let Err(e) = self.state_dir.close() {
            tracing::warn!(error = %e, "cannot remove the demo state dir");
        }
        DemoSummary::collect(
            &self.counters,
            bot_counters.iter().map(|c| c.snapshot()).collect(),
            elapsed,
            self.rate_multiplier,
            self.warnings,
        )
        .with_siem(siem)
    }
}

/// After the bots stopped, give the sink its last batch: wait (at most 3 s) until the SIEM
/// endpoint has received nothing new for a little longer than the demo sink's flush interval.
async fn siem_settle(siem: &DemoSiem) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let quiet = Duration::from_millis(DEMO_SINK_FLUSH_MS * 2 + 100);
    let mut last = siem.report().events;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = siem.report().events;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

/// How often the demo's SIEM sink sends a partial batch.
pub const DEMO_SINK_FLUSH_MS: u64 = 200;

/// Admin events for what the set-up did, on the bus and in the audit log (the console's Log
/// view and the revoked-credential detector start from them).
fn record_setup_events(
    gate: &RunningGate,
    clock: &SharedClock,
    client_ids: &BTreeMap<String, String>,
) {
    let now = clock.now();
    for t in scenario::DEMO_TOKENS {
        let id = client_ids.get(t.name).cloned().unwrap_or_default();
        let mut events = vec![AccessEvent::admin(
            now,
            "token_create",
            t.name,
            serde_json::json!({ "client_id": id, "by": "botgate demo" }),
        )];
        if t.revoked {
            events.push(AccessEvent::admin(
                now,
                "token_revoke",
                t.name,
                serde_json::json!({ "client_id": id, "by": "botgate demo" }),
            ));
        }
        for mut ev in events {
            ev.service_token_name = Some(t.name.to_string());
            ev.service_token_id = Some(id.clone());
            if gate.state.audit.record(ev).is_err() {
                tracing::warn!("cannot record a demo set-up event in the audit log");
            }
        }
    }
}

fn load_policy(path: &Path) -> Result<crate::config::PolicyFile, DemoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DemoError::Policy(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| DemoError::Policy(format!("{}: {e}", path.display())))
}

fn write_file(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(|source| DemoError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The shipped demo IP → country table (`assets/demo-geo.csv`), embedded.
fn demo_geo() -> Result<Arc<dyn crate::gate::CountryLookup>, DemoError> {
    const CSV: &str = include_str!("../../assets/demo-geo.csv");
    let db = crate::geo::GeoDb::from_csv(CSV, Path::new("assets/demo-geo.csv"))
        .map_err(|e| DemoError::Policy(e.to_string()))?;
    Ok(Arc::new(db))
}
