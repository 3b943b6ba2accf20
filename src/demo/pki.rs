//! The demo's PKI: a local root + issuing CA ("Demo Device CA"), the gate's server certificate
//! (issued by the TLS source when the gate starts) and one client certificate per device, one of
//! them expiring in 20 days so the inventory has something to warn about.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::credentials::{CredentialFile, write_credential_file};
use crate::pki::{CaInitOptions, ClientCertRequest, KeyAlgorithm, init_ca, issue_client_cert};

/// Name of the demo CA, as `trusted_cas` in `assets/demo-policy.toml` names it.
pub const DEMO_CA: &str = "Demo Device CA";

/// The device whose certificate expires soon (index into the fleet).
const EXPIRING_DEVICE: usize = 1;

/// One device of the simulated fleet: the CN to issue and where its credential file goes.
#[derive(Debug, Clone)]
pub struct DeviceSlot {
    /// e.g. `device-0001.factory.corp`.
    pub common_name: String,
    /// A `CredentialFile::Cert` is written here; the device bot reads it, and re-reads it when
    /// a rotation rewrites it.
    pub credential_file: PathBuf,
}

/// What provisioning is given before the gate starts.
#[derive(Debug)]
pub struct PkiContext<'a> {
    pub store: &'a Arc<crate::store::Store>,
    pub state_dir: &'a Path,
    pub devices: &'a [DeviceSlot],
    pub now: DateTime<Utc>,
}

/// What provisioning hands back.
#[derive(Debug, Clone)]
pub struct PkiProvision {
    /// The CA (PEM) that issues the gate's server certificate, so bots can verify it.
    pub server_ca_pem: Vec<u8>,
}

/// Before the gate starts: the demo CA (which also issues the gate's server certificate when
/// the TLS listener starts) and one client certificate + credential file per device.
pub fn provision(ctx: &PkiContext<'_>) -> Result<PkiProvision, String> {
    let opts = CaInitOptions {
        name: DEMO_CA.into(),
        key: KeyAlgorithm::EcdsaP256,
        root_key_out: None,
        now: ctx.now,
    };
    let ca = init_ca(ctx.store, &opts).map_err(|e| format!("demo CA: {e}"))?;
    let dir = ctx.state_dir.join("certs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (i, device) in ctx.devices.iter().enumerate() {
        let days = if i == EXPIRING_DEVICE { 20 } else { 365 };
        let req = ClientCertRequest {
            common_name: &device.common_name,
            csr: None,
            days,
            key: KeyAlgorithm::EcdsaP256,
            now: ctx.now,
        };
        let issued = issue_client_cert(ctx.store, &req)
            .map_err(|e| format!("device {}: {e}", device.common_name))?;
        let cert_file = dir.join(format!("{}.crt", device.common_name));
        let key_file = dir.join(format!("{}.key", device.common_name));
        std::fs::write(&cert_file, &issued.chain_pem)
            .map_err(|e| format!("{}: {e}", cert_file.display()))?;
        let key = issued
            .key_pem
            .ok_or("a generated certificate always has a key")?;
        crate::pki::ca::write_private_file(&key_file, key.as_bytes()).map_err(|e| e.to_string())?;
        let cred = CredentialFile::Cert {
            name: device.common_name.clone(),
            cert_file,
            key_file,
        };
        write_credential_file(&device.credential_file, &cred).map_err(|e| e.to_string())?;
    }
    Ok(PkiProvision {
        server_ca_pem: ca.root.cert_pem.into_bytes(),
    })
}
