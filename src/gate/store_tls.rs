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
use crate::store::Store;

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

impl TlsSource for StoreTlsSource {
    fn material(&self) -> Result<TlsMaterial, String> {
        let bundles = self.store.trust_bundles().map_err(|e| e.to_string())?;
        let mut m = TlsMaterial {
            server_chain: self.server_chain.clone(),
            server_key: Some(self.server_key.clone_key()),
            ..Default::default()
        };
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
        *self.crl_mtimes.lock().unwrap_or_else(|p| p.into_inner()) = mtimes;
        Ok(m)
    }

    fn changed(&self) -> bool {
        self.crl_files_changed()
    }
}
