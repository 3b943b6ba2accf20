//! `botgate demo`: a temporary state dir with realistic tokens and device certificates, the
//! demo policy, a stub upstream and a local SIEM endpoint, the one `Runtime` (gate, detectors,
//! sinks, journal relay, reload — as `serve` runs it), and simulated bots making real HTTP(S)
//! requests through it from distinct loopback addresses. Used only by the `demo` verb and tests.
//! The console reads `RunningDemo::runtime`.

pub mod bots;
pub mod credentials;
pub mod issuer;
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
use pki::{DeviceSlot, PkiContext};
use siem::DemoSiem;
use summary::{CounterTask, DemoCounters, DemoSummary};
use upstream::StubUpstream;

use crate::audit::AuditBus;
use crate::clock::{SharedClock, SystemClock};
use crate::gate::{CountryLookup, RunningGate};
use crate::runtime::{ReloadOutcome, ReloadReport, Runtime, RuntimeOptions};
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
    /// The device fleet on mTLS: the demo CA, device certificates and the TLS listener.
    pub mtls: bool,
    /// Number of simulated devices with `mtls`.
    pub devices: usize,
    /// The audit bus (pass one to subscribe before the first event); `None`: a new one.
    pub bus: Option<AuditBus>,
    /// Capacity of a new audit bus per subscriber.
    pub bus_capacity: usize,
    /// Start the local SIEM endpoint (`siem`) with a sink delivering every event to it; the
    /// summary reports what it received.
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
            mtls: false,
            devices: 8,
            bus: None,
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
            .field("mtls", &self.mtls)
            .field("devices", &self.devices)
            .field("siem", &self.siem)
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
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("demo PKI: {0}")]
    Pki(String),
    #[error("demo set-up: {0}")]
    Setup(String),
    #[error(transparent)]
    Bots(#[from] bots::BotError),
}

/// A running demo. `stop` shuts everything down in order and removes the state dir (dropping
/// it removes the dir too, but may leave the gate's tasks running until the runtime ends).
pub struct RunningDemo {
    runtime: Runtime,
    upstream: StubUpstream,
    issuer: issuer::DemoIssuer,
    siem: Option<DemoSiem>,
    credential_files: BTreeMap<String, PathBuf>,
    counters: Arc<DemoCounters>,
    counter_task: CounterTask,
    fleet: BotFleet,
    warnings: Vec<String>,
    rate_multiplier: f64,
    started: Instant,
    // Last: removed after everything above has stopped using it.
    state_dir: tempfile::TempDir,
}

impl std::fmt::Debug for RunningDemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningDemo")
            .field("gate", &self.runtime.gate.addr)
            .field("upstream", &self.upstream.addr)
            .field("state_dir", &self.state_dir.path())
            .finish_non_exhaustive()
    }
}

/// Start the whole demo: state dir, tokens, policy, upstream, SIEM, the runtime, bots.
pub async fn start(opts: DemoOptions) -> Result<RunningDemo, DemoError> {
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
    // The set-up's admin events go to the journal with each change; the runtime relays them.
    let tokens = {
        let store = store.clone();
        let creds_dir = creds_dir.clone();
        tokio::task::spawn_blocking(move || scenario::create_tokens(&store, &creds_dir, now))
            .await
            .map_err(|e| DemoError::Setup(format!("token set-up task failed: {e}")))??
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
    // The CI platform's OIDC issuer, before the policy that trusts it.
    let issuer = issuer::DemoIssuer::start(&creds_dir, opts.clock.clone())
        .await
        .map_err(|e| DemoError::Setup(format!("cannot start the demo's OIDC issuer: {e}")))?;
    let policy_path = dir.join("policy.toml");
    write_file(
        &policy_path,
        &scenario::demo_policy(&upstream.url(), opts.mtls, &issuer.url())?,
    )?;

    let devices: Vec<DeviceSlot> = match opts.mtls {
        true => scenario::device_common_names(opts.devices)
            .into_iter()
            .map(|cn| DeviceSlot {
                credential_file: creds_dir.join(format!("{cn}.json")),
                common_name: cn,
            })
            .collect(),
        false => Vec::new(),
    };
    let provision = match opts.mtls {
        true => Some(
            pki::provision(&PkiContext {
                store: &store,
                state_dir: &dir,
                devices: &devices,
                now,
            })
            .map_err(DemoError::Pki)?,
        ),
        false => None,
    };

    let loaded = crate::config::load(&policy_path)
        .map_err(|e| DemoError::Policy(crate::runtime::describe_rejection(&e)))?;
    let bus = opts
        .bus
        .clone()
        .unwrap_or_else(|| AuditBus::new(opts.bus_capacity));
    let runtime_opts = RuntimeOptions {
        clock: opts.clock.clone(),
        bus: bus.clone(),
        geo: Some(opts.geo.clone().map_or_else(demo_geo, Ok)?),
        detect: Some(crate::detect::DetectConfig::demo()),
        extra_sinks: siem
            .as_ref()
            .map(|s| siem_sink(&s.ingest_url()))
            .into_iter()
            .collect(),
        tick_every: Some(Duration::from_secs(1)),
        // The demo's console (or its summary) shows reloads; stderr stays quiet.
        report: ReloadReport::Console,
        ..RuntimeOptions::new(&policy_path, &dir)
    };
    let counters = Arc::new(DemoCounters::default());
    let counter_task = CounterTask::start(&bus, counters.clone());
    let runtime = match Runtime::start(&loaded, store, runtime_opts).await {
        Ok(r) => r,
        Err(e) => {
            upstream.stop().await;
            issuer.stop();
            counter_task.finish().await;
            return Err(e.into());
        }
    };

    let tls = match provision {
        Some(p) => match runtime.gate.tls_addr {
            Some(addr) => Some(TlsEndpoint {
                addr,
                server_ca_pem: p.server_ca_pem,
            }),
            None => {
                warnings.push("the gate has no TLS listener: the device fleet stays home".into());
                None
            }
        },
        None => None,
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
    let fleet = BotFleet::spawn(
        roster::demo_roster(&roster::RosterInputs {
            token_files: &tokens.files,
            client_ids: &tokens.client_ids,
            aliases,
            devices: fleet_devices,
            oidc_token: Some(issuer.token_file.clone()),
        }),
        &GateEndpoints {
            plain: runtime.gate.addr,
            tls,
        },
        FleetOptions {
            rate_multiplier: opts.rate_multiplier,
            max_in_flight: opts.max_in_flight_per_bot,
            ..FleetOptions::default()
        },
    );
    let fleet = match fleet {
        Ok(f) => f,
        Err(e) => {
            // Leave nothing running behind a failed start.
            runtime.stop().await;
            upstream.stop().await;
            issuer.stop();
            counter_task.finish().await;
            return Err(e.into());
        }
    };

    Ok(RunningDemo {
        runtime,
        upstream,
        issuer,
        siem,
        credential_files,
        counters,
        counter_task,
        fleet,
        warnings,
        rate_multiplier: opts.rate_multiplier,
        started: Instant::now(),
        state_dir,
    })
}

/// The sink that hands the local SIEM endpoint every event, as a real webhook SIEM would.
fn siem_sink(ingest_url: &str) -> crate::sink::SinkConfig {
    let mut sink =
        crate::sink::SinkConfig::new("demo-siem", ingest_url, crate::sink::SinkFormat::Ndjson);
    sink.flush_interval_ms = DEMO_SINK_FLUSH_MS;
    sink.retry_initial_ms = 100;
    sink.retry_max_ms = 1_000;
    sink
}

impl RunningDemo {
    /// The gate (`.addr` is the plain listener; `.state` its live state and metrics).
    pub fn gate(&self) -> &RunningGate {
        &self.runtime.gate
    }

    /// The runtime the demo runs on (what `serve` runs).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
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
        &self.runtime.bus
    }

    /// The demo's credential store.
    pub fn store(&self) -> &Arc<Store> {
        &self.runtime.store
    }

    /// The clock the gate uses.
    pub fn clock(&self) -> &SharedClock {
        &self.runtime.clock
    }

    /// The temporary state dir (removed by `stop`).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// The policy file the gate loaded (watched; `reload_policy_file` applies it at once).
    pub fn policy_path(&self) -> &Path {
        &self.runtime.policy_path
    }

    /// The JSONL audit log.
    pub fn audit_log(&self) -> &Path {
        self.runtime.gate.audit_log()
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

    /// Re-read the policy file and apply it now (as the runtime's watcher does on a change); a
    /// bad file keeps the running policy.
    pub fn reload_policy_file(&self) -> Result<(), DemoError> {
        match self.runtime.reload_now() {
            ReloadOutcome::Applied { .. } => Ok(()),
            ReloadOutcome::Rejected(why) => Err(DemoError::Policy(why)),
        }
    }

    /// Stop the bots (waiting for their requests), the runtime (flushing the audit log), the
    /// upstream; count the last events; remove the state dir; return the summary.
    pub async fn stop(self) -> DemoSummary {
        let elapsed = self.started.elapsed();
        let bot_counters = self.fleet.counters.clone();
        self.fleet.stop().await;
        if let Some(siem) = &self.siem {
            siem_settle(siem).await;
        }
        self.runtime.stop().await;
        self.upstream.stop().await;
        self.issuer.stop();
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
