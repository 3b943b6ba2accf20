//! TLS material from the local PKI and the store: the server certificate (from `[gate]
//! tls_cert`/`tls_key`, else issued by the local CA for the app hostnames), trusted CAs by name,
//! botgate's own CRLs and external CRL files (re-read when they change).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::tls::{TlsMaterial, TlsSource};
use crate::pki::TrustMaterial;
use crate::store::Store;

/// File name of the local root certificate in the state dir (`ca init` and `serve` publish it
/// there, for `curl --cacert`).
pub const LOCAL_ROOT_CERT_FILE: &str = "ca-root.crt";

/// The local CA `serve` created because HTTPS needed a server certificate.
#[derive(Debug, Clone)]
pub struct CreatedLocalCa {
    pub name: String,
    /// The root certificate, for clients (`curl --cacert`).
    pub root_cert: PathBuf,
}

/// Zero-step HTTPS: when the TLS listener has no `tls_cert`/`tls_key` and the store has no local
/// CA to issue a server certificate from, create the local CA as `botgate ca init` would (same
/// name, key type and root key handling), publish its root certificate in `state_dir` and its
/// first CRL. `None` when a local CA already exists.
pub fn ensure_local_ca(
    store: &Store,
    state_dir: &std::path::Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<CreatedLocalCa>, String> {
    if crate::store::wait(store.local_root())
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(None);
    }
    let opts = crate::pki::CaInitOptions {
        name: "botgate Root CA".into(),
        key: crate::pki::KeyAlgorithm::EcdsaP256,
        root_key_out: None,
        now,
    };
    let made = crate::pki::init_ca(store, &opts)
        .map_err(|e| format!("cannot create the local CA for the TLS listener: {e}"))?;
    let root_cert = state_dir.join(LOCAL_ROOT_CERT_FILE);
    std::fs::write(&root_cert, &made.root.cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", root_cert.display()))?;
    crate::pki::issue_crl(store, now).map_err(|e| e.to_string())?;
    let details = serde_json::json!({
        "root": made.root.name, "intermediate": made.intermediate.name, "key_type": opts.key.label(),
        "root_fingerprint_sha256": made.root.fingerprint_sha256, "root_key_offline": false,
        "by": "serve (tls_listen without tls_cert/tls_key)",
    });
    // Journaled only: the gate that is starting relays it through its audit writer.
    let ev = crate::audit::AccessEvent::admin(now, "ca_init", &made.root.name, details);
    if let Err(e) =
        crate::store::wait(store.record_admin(&crate::audit::admin::entry(&ev, &made.root.name)))
    {
        tracing::warn!(error = %e, "could not record the admin event for the new local CA");
    }
    Ok(Some(CreatedLocalCa {
        name: made.root.name,
        root_cert,
    }))
}

/// A `TlsSource` over the store.
#[derive(Debug)]
pub struct StoreTlsSource {
    store: Arc<Store>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    /// External CRL files and the modification time last loaded.
    crl_mtimes: Mutex<HashMap<PathBuf, Option<SystemTime>>>,
}

impl StoreTlsSource {
    /// Load the configured server certificate, or issue one from the local CA for `hostnames`.
    pub fn new(
        store: Arc<Store>,
        cert_files: Option<(PathBuf, PathBuf)>,
        hostnames: &[String],
    ) -> Result<Self, String> {
        let (server_chain, server_key) = match cert_files {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(&cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("[gate] tls_cert {}: {e}", cert.display()))?;
                if chain.is_empty() {
                    return Err(format!("[gate] tls_cert {}: no certificate in the file", cert.display()));
                }
                let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("[gate] tls_key {}: {e}", key.display()))?;
                (chain, key)
            }
            None => crate::pki::issue::issue_server_cert(&store, hostnames).map_err(|e| {
                format!("cannot issue a server certificate for the TLS listener ({e}); run `botgate ca init` or set [gate] tls_cert and tls_key")
            })?,
        };
        Ok(Self {
            store,
            server_chain,
            server_key,
            crl_mtimes: Mutex::new(HashMap::new()),
        })
    }

    /// Whether an external CRL file changed since the last `material()`.
    pub fn crl_files_changed(&self) -> bool {
        let seen = self.crl_mtimes.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().any(|(path, mtime)| mtime_of(path) != *mtime)
    }
}

fn mtime_of(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The trusted CAs and CRLs in the store (with external CRL files read now), and the
/// modification times of those files. The gate's TLS listener and `policy explain` both read
/// trust through this.
pub fn trust_material(
    store: &Store,
) -> Result<(TrustMaterial, HashMap<PathBuf, Option<SystemTime>>), String> {
    let bundles = crate::store::wait(store.trust_bundles()).map_err(|e| e.to_string())?;
    let mut m = TrustMaterial::default();
    let mut mtimes = HashMap::new();
    for b in bundles {
        let mut crls = b.crls.clone();
        for file in &b.crl_files {
            mtimes.insert(file.clone(), mtime_of(file));
            match crate::pki::crl::load_crl_file(file) {
                Ok(info) => crls.push(CertificateRevocationListDer::from(info.der)),
                // A CRL that cannot be read is reported, and the CA stays trusted with the rest.
                Err(e) => {
                    tracing::error!(ca = %b.name, file = %file.display(), error = %e, "cannot load CRL")
                }
            }
        }
        m.trusted.insert(b.name.clone(), b.anchors);
        m.crls.insert(b.name, crls);
    }
    Ok((m, mtimes))
}

impl TlsSource for StoreTlsSource {
    fn material(&self) -> Result<TlsMaterial, String> {
        let (trust, mtimes) = trust_material(&self.store)?;
        *self.crl_mtimes.lock().unwrap_or_else(|p| p.into_inner()) = mtimes;
        Ok(TlsMaterial {
            server_chain: self.server_chain.clone(),
            server_key: Some(self.server_key.clone_key()),
            trust,
        })
    }

    fn changed(&self) -> bool {
        self.crl_files_changed()
    }
}
