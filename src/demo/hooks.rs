//! Where other modules plug into the demo without the demo knowing them: the PKI + TLS listener
//! (device fleet on mTLS), and services that run beside the gate on the same bus and store
//! (detectors, metrics, SIEM sinks). Each is passed in through `DemoOptions`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::audit::AuditBus;
use crate::clock::SharedClock;
use crate::gate::RunningGate;
use crate::store::Store;

/// One device of the simulated fleet: the CN to issue and where its credential file goes.
#[derive(Debug, Clone)]
pub struct DeviceSlot {
    /// e.g. `device-0001.factory.corp`.
    pub common_name: String,
    /// Write a `CredentialFile::Cert` here (see `credentials::write_credential_file`); the
    /// device bot reads it, and re-reads it when a rotation rewrites it.
    pub credential_file: PathBuf,
}

/// What the PKI hook is given before the gate starts.
#[derive(Debug)]
pub struct PkiContext<'a> {
    pub store: &'a Arc<Store>,
    pub state_dir: &'a Path,
    /// The policy file the gate will load; `[gate] tls_listen = "127.0.0.1:0"` is already set.
    pub policy_path: &'a Path,
    /// Devices to issue certificates for (one expiring in 20 days is a nice touch).
    pub devices: &'a [DeviceSlot],
    pub now: DateTime<Utc>,
}

/// What the PKI hook hands back.
#[derive(Debug, Clone)]
pub struct PkiProvision {
    /// The CA (PEM) that issued the gate's server certificate, so bots can verify it.
    pub server_ca_pem: Vec<u8>,
}

/// Integration point for `pki/` + the TLS listener. Without one, the demo runs plain HTTP only
/// and the device fleet stays home.
pub trait DemoPki: Send + Sync + std::fmt::Debug {
    /// Before the gate starts: create the demo CA(s), the gate's server certificate and one
    /// client certificate per device; record them in the store; write each device's credential
    /// file; edit the policy file if needed (e.g. `trusted_cas`, `tls_cert`).
    fn provision(&self, ctx: &PkiContext<'_>) -> Result<PkiProvision, String>;

    /// After the gate started: the address of its TLS listener (e.g. `gate.tls_addr`).
    fn tls_addr(&self, gate: &RunningGate) -> Option<SocketAddr>;
}

/// What a service started beside the gate can use.
#[derive(Debug)]
pub struct DemoContext<'a> {
    pub gate: &'a RunningGate,
    pub bus: &'a AuditBus,
    pub store: &'a Arc<Store>,
    pub clock: &'a SharedClock,
    pub state_dir: &'a Path,
    pub policy_path: &'a Path,
    pub audit_log: &'a Path,
    /// The local SIEM endpoint's NDJSON ingest URL when `DemoOptions::siem` is set.
    pub siem_ingest_url: Option<String>,
}

/// A service the demo keeps running until `stop` (detectors, `/metrics`, a SIEM sink …).
pub trait DemoService: Send {
    /// Stop and release everything (called before the gate shuts down).
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A task is the simplest service: stopping aborts it.
impl DemoService for tokio::task::JoinHandle<()> {
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.abort();
        Box::pin(async move {
            let _ = (*self).await;
        })
    }
}

/// Starts a service once the gate runs and before any bot sends (so it sees every event).
pub type ServiceStarter =
    Box<dyn FnOnce(&DemoContext<'_>) -> Result<Box<dyn DemoService>, String> + Send>;
