//! TLS to `https://` upstreams: the roots an app's upstream connections trust (the system's, or
//! only its `upstream_ca`), the name the upstream's certificate must carry
//! (`upstream_server_name`, default the upstream's host) and the client certificate the gate
//! shows (`upstream_client_cert` + `upstream_client_key`). `TlsProfiles::get` is the one builder:
//! validation calls it so `policy check` reports an unreadable file at its line, and compiling
//! calls it so the gate runs with exactly what was checked. Each distinct profile owns its
//! keep-alive pool, so a connection opened under one app's trust settings never carries another
//! app's requests, and a reload (a new `PolicySet`, new profiles) drops the old connections.
//!
//! Roots: the operating system's trust store, read with `rustls-native-certs` (on Linux the
//! distribution's CA bundle, `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), not the Mozilla list
//! compiled into `webpki-roots`. A gate is operated on a host: the host's store is what its
//! administrators curate (a corporate root added with `update-ca-certificates`, a distrusted
//! root removed by a security update) and what `curl` on that host trusts, so the two agree;
//! a compiled-in list changes only when botgate is rebuilt. The cost is a host with no CA bundle
//! (a `scratch` container): there an `https` app without `upstream_ca` is refused at load, with
//! a hint to install one or set `upstream_ca`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long opening an upstream TCP connection may take (every upstream pool, plain or TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The keep-alive pool of one TLS profile.
pub type HttpsPool = Client<HttpsConnector<HttpConnector>, Incoming>;

/// An app's `upstream_*` settings (file paths already resolved beside the policy file). Equal
/// settings mean one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamTlsSettings {
    /// `upstream_ca`: PEM CA certificates trusted instead of the system roots.
    pub ca: Option<PathBuf>,
    /// `upstream_server_name`: the name sent as SNI and verified in the certificate.
    pub server_name: Option<String>,
    /// `upstream_client_cert`: the PEM certificate (chain) shown to the upstream.
    pub client_cert: Option<PathBuf>,
    /// `upstream_client_key`: its PEM private key.
    pub client_key: Option<PathBuf>,
}

/// The setting a problem is about, so `policy check` can point at its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSetting {
    /// The system roots (reported on `upstream`).
    SystemRoots,
    Ca,
    ServerName,
    ClientCert,
    ClientKey,
}

/// Why an app's upstream TLS profile cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamTlsError {
    pub setting: TlsSetting,
    pub message: String,
    pub hint: Option<&'static str>,
}

/// One TLS profile: the client config, the server name override and the profile's pool.
pub struct UpstreamTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
    pool: HttpsPool,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// The profile's keep-alive pool (absolute `https://` request URIs).
    pub fn pool(&self) -> &HttpsPool {
        &self.pool
    }

    /// The TLS handshake over `tcp` with the upstream at `host` (verified against
    /// `upstream_server_name` when set), for the sticky connection.
    pub async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?,
        };
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// Builds the TLS profiles of one policy file: the system roots are read at most once, and apps
/// with equal settings share one profile (and so one pool).
#[derive(Debug, Default)]
pub struct TlsProfiles {
    system_roots: Option<Arc<RootCertStore>>,
    built: HashMap<UpstreamTlsSettings, Arc<UpstreamTls>>,
}

impl TlsProfiles {
    /// The profile for `settings`, reading the files they name.
    pub fn get(
        &mut self,
        settings: &UpstreamTlsSettings,
    ) -> Result<Arc<UpstreamTls>, UpstreamTlsError> {
        if let Some(p) = self.built.get(settings) {
            return Ok(p.clone());
        }
        let server_name = settings
            .server_name
            .as_deref()
            .map(parse_server_name)
            .transpose()?;
        let client_auth = match (&settings.client_cert, &settings.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => return Err(half_pair(settings)),
        };
        let roots = match &settings.ca {
            Some(ca) => Arc::new(read_ca(ca)?),
            None => self.system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Cannot fail with ring's provider (it has TLS 1.2 and 1.3); mapped rather than unwrapped.
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| problem(TlsSetting::SystemRoots, format!("TLS set-up: {e}")))?
            .with_root_certificates(roots);
        let config = match client_auth {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_chain(cert)?;
                // rustls takes only v3 certificates; say so rather than "the key does not match".
                if chain
                    .first()
                    .is_some_and(|c| crate::pki::verify::is_x509_v1(c.as_ref()))
                {
                    return Err(UpstreamTlsError {
                        setting: TlsSetting::ClientCert,
                        message: format!(
                            "upstream_client_cert {} is an X.509 v1 certificate (what `openssl x509 -req` makes without -extfile or -copy_extensions): a TLS client certificate must be v3",
                            cert.display()
                        ),
                        hint: Some(
                            "sign the CSR again with -copy_extensions copy (or -extfile), or issue one with `botgate cert issue --csr FILE`",
                        ),
                    });
                }
                let key_der = read_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    let message = format!(
                        "upstream_client_key {} does not go with upstream_client_cert {}: {e}",
                        key.display(),
                        cert.display()
                    );
                    UpstreamTlsError {
                        setting: TlsSetting::ClientKey,
                        message,
                        hint: Some(
                            "the key must be the private key of the certificate's public key",
                        ),
                    }
                })?
            }
        };
        // No ALPN: the gate speaks HTTP/1.1 to upstreams (pool and sticky connection), which a
        // server assumes when none is offered (hyper-rustls' HTTP/1-only connector offers none).
        let config = Arc::new(config);
        let profile = Arc::new(UpstreamTls {
            pool: https_pool(config.clone(), server_name.clone()),
            config,
            server_name,
        });
        self.built.insert(settings.clone(), profile.clone());
        Ok(profile)
    }

    fn system_roots(&mut self) -> Result<Arc<RootCertStore>, UpstreamTlsError> {
        if let Some(r) = &self.system_roots {
            return Ok(r.clone());
        }
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let why = found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(UpstreamTlsError {
                setting: TlsSetting::SystemRoots,
                message: format!(
                    "this https upstream would be verified against the system's root certificates, but none were found{why}"
                ),
                hint: Some(
                    "install the CA bundle (e.g. the ca-certificates package), point SSL_CERT_FILE at one, or set upstream_ca = \"FILE\"",
                ),
            });
        }
        let roots = Arc::new(roots);
        self.system_roots = Some(roots.clone());
        Ok(roots)
    }
}

/// The keep-alive pool settings of every upstream pool (plain and TLS).
pub fn pool_builder() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    b
}

/// The TCP connector of every upstream pool. It refuses `https` URIs, so a plain pool can never
/// send an https app's request in clear text.
pub fn tcp_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http
}

fn https_pool(config: Arc<rustls::ClientConfig>, name: Option<ServerName<'static>>) -> HttpsPool {
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config((*config).clone())
        .https_only();
    let builder = match name {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let mut tcp = tcp_connector();
    // Under the TLS layer (`https_only`), which refuses `http` URIs itself.
    tcp.enforce_http(false);
    pool_builder().build(builder.enable_http1().wrap_connector(tcp))
}

/// The TLS error that made `err` (a pool, hyper or I/O error) fail, if a TLS error did: a
/// certificate the roots do not vouch for, a name mismatch, an alert from the upstream (e.g.
/// it wanted a client certificate), a peer that does not speak TLS.
pub fn tls_failure<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source` is the wrapped error's source, skipping the wrapped error
        // itself (where tokio-rustls puts the rustls::Error): look inside instead.
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// `upstream_client_cert` without `upstream_client_key`, or the other way round.
fn half_pair(settings: &UpstreamTlsSettings) -> UpstreamTlsError {
    let (setting, message) = match settings.client_cert {
        Some(_) => (
            TlsSetting::ClientCert,
            "upstream_client_cert is set but upstream_client_key is not",
        ),
        None => (
            TlsSetting::ClientKey,
            "upstream_client_key is set but upstream_client_cert is not",
        ),
    };
    UpstreamTlsError {
        setting,
        message: message.into(),
        hint: Some("set both (PEM files), or neither"),
    }
}

fn problem(setting: TlsSetting, message: String) -> UpstreamTlsError {
    UpstreamTlsError {
        setting,
        message,
        hint: None,
    }
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, UpstreamTlsError> {
    ServerName::try_from(name.to_string()).map_err(|_| UpstreamTlsError {
        setting: TlsSetting::ServerName,
        message: format!("{name:?} is not a DNS name or IP address"),
        hint: Some("the name the upstream's certificate carries, e.g. \"backend.internal\""),
    })
}

fn read_pem(setting: TlsSetting, key: &str, path: &Path) -> Result<Vec<u8>, UpstreamTlsError> {
    crate::input::read(path, crate::input::PKI_FILE).map_err(|e| UpstreamTlsError {
        setting,
        message: format!("{key} {}: cannot read it: {e}", path.display()),
        hint: Some("a relative path is beside the policy file"),
    })
}

/// `upstream_ca`: one or more PEM CA certificates.
fn read_ca(path: &Path) -> Result<RootCertStore, UpstreamTlsError> {
    let pem = read_pem(TlsSetting::Ca, "upstream_ca", path)?;
    let bad = |m: String| {
        problem(
            TlsSetting::Ca,
            format!("upstream_ca {}: {m}", path.display()),
        )
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// `upstream_client_cert`: the certificate, optionally followed by its intermediates.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let pem = read_pem(TlsSetting::ClientCert, "upstream_client_cert", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            problem(
                TlsSetting::ClientCert,
                format!("upstream_client_cert {}: not PEM: {e}", path.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(problem(
            TlsSetting::ClientCert,
            format!(
                "upstream_client_cert {}: holds no PEM certificate",
                path.display()
            ),
        ));
    }
    Ok(chain)
}

/// `upstream_client_key`: a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM private key.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, UpstreamTlsError> {
    let pem = read_pem(TlsSetting::ClientKey, "upstream_client_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| UpstreamTlsError {
        setting: TlsSetting::ClientKey,
        message: format!(
            "upstream_client_key {}: no usable private key: {e}",
            path.display()
        ),
        hint: Some("a PEM private key: PKCS#8 (BEGIN PRIVATE KEY), RSA or EC, not encrypted"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ca_and_leaf() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["gate.test".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.pem(), leaf.pem(), key.serialize_pem())
    }

    #[test]
    fn equal_settings_share_one_profile() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, _) = ca_and_leaf();
        let settings = UpstreamTlsSettings {
            ca: Some(write(dir.path(), "ca.pem", &ca)),
            ..Default::default()
        };
        let mut profiles = TlsProfiles::default();
        let a = profiles.get(&settings).unwrap();
        let b = profiles.get(&settings).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = UpstreamTlsSettings {
            server_name: Some("backend.test".into()),
            ..settings
        };
        assert!(!Arc::ptr_eq(&a, &profiles.get(&other).unwrap()));
    }

    #[test]
    fn each_bad_file_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, leaf, key) = ca_and_leaf();
        let (_, _, other_key) = ca_and_leaf();
        let mut profiles = TlsProfiles::default();
        let err =
            |s: UpstreamTlsSettings, profiles: &mut TlsProfiles| profiles.get(&s).unwrap_err();

        let missing = err(
            UpstreamTlsSettings {
                ca: Some(dir.path().join("nope.pem")),
                ..Default::default()
            },
            &mut profiles,
        );
        assert_eq!(missing.setting, TlsSetting::Ca);
        assert!(
            missing.message.contains("nope.pem: cannot read it"),
            "{missing}"
        );

        let not_pem = err(
            UpstreamTlsSettings {
                ca: Some(write(dir.path(), "empty.pem", "hello\n")),
                ..Default::default()
            },
            &mut profiles,
        );
        assert!(
            not_pem.message.contains("holds no PEM certificate"),
            "{not_pem}"
        );

        let ca = write(dir.path(), "ca.pem", &ca);
        let leaf = write(dir.path(), "leaf.pem", &leaf);
        let key_path = write(dir.path(), "key.pem", &key);
        let half = err(
            UpstreamTlsSettings {
                ca: Some(ca.clone()),
                client_cert: Some(leaf.clone()),
                ..Default::default()
            },
            &mut profiles,
        );
        assert_eq!(half.setting, TlsSetting::ClientCert);

        let mismatch = err(
            UpstreamTlsSettings {
                ca: Some(ca.clone()),
                client_cert: Some(leaf.clone()),
                client_key: Some(write(dir.path(), "other.pem", &other_key)),
                ..Default::default()
            },
            &mut profiles,
        );
        assert_eq!(mismatch.setting, TlsSetting::ClientKey);
        assert!(mismatch.message.contains("does not go with"), "{mismatch}");

        let name = err(
            UpstreamTlsSettings {
                ca: Some(ca.clone()),
                server_name: Some("not a name".into()),
                ..Default::default()
            },
            &mut profiles,
        );
        assert_eq!(name.setting, TlsSetting::ServerName);

        let ok = UpstreamTlsSettings {
            ca: Some(ca),
            client_cert: Some(leaf),
            client_key: Some(key_path),
            server_name: Some("backend.test".into()),
        };
        assert!(profiles.get(&ok).is_ok());
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // tokio-rustls wraps it in an io::Error; hyper-rustls wraps that in another.
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
        let outer = std::io::Error::other(inner);
        assert_eq!(tls_failure(&outer), Some(&tls));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure(&plain), None);
    }
}
