//! The HTTPS listener: rustls with a per-app client-certificate verifier chosen by SNI.
//! Client certificates are requested but optional (token bots can use HTTPS too); a presented
//! certificate must chain to one of the app's `trusted_cas` and not be revoked (CRLs). A
//! handshake refused for a bad client certificate is audited like a request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::deny::DenyReason;
use super::handler::{ConnInfo, GateState, PeerCert};
use super::listener::{ConnLimits, serve_connection};
use super::metrics::GateMetrics;
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::policy::PolicySet;

/// Everything needed to build the TLS configs: our server certificate and the trusted CAs.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Option<PrivateKeyDer<'static>>,
    /// Trusted CA name → its certificates (root, and intermediates for our own CA).
    pub trusted: HashMap<String, Vec<CertificateDer<'static>>>,
    /// Trusted CA name → CRLs issued under it.
    pub crls: HashMap<String, Vec<CertificateRevocationListDer<'static>>>,
}

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "no server certificate: set [gate] tls_cert/tls_key or run `botgate ca init` so one can be issued"
    )]
    NoServerCert,
    #[error("app {app:?}: cannot build the client-certificate verifier: {source}")]
    Verifier {
        app: String,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot load TLS material: {0}")]
    Material(String),
}

/// Where TLS material comes from (the local PKI over the store, or files); re-read on change.
pub trait TlsSource: Send + Sync + std::fmt::Debug {
    fn material(&self) -> Result<TlsMaterial, String>;
    /// Whether material changed outside the store (e.g. an external CRL file); polled.
    fn changed(&self) -> bool {
        false
    }
}

/// One `ServerConfig` per SNI hostname, plus one for everything else (no client auth).
#[derive(Debug)]
pub struct TlsConfigs {
    by_host: HashMap<String, Arc<ServerConfig>>,
    default: Arc<ServerConfig>,
}

impl TlsConfigs {
    /// Build configs for every app from the material.
    pub fn build(policies: &PolicySet, material: &TlsMaterial) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = material.server_key.as_ref().ok_or(TlsError::NoServerCert)?;
        let base = |verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>| -> Result<Arc<ServerConfig>, TlsError> {
            let b = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
            let b = match verifier {
                Some(v) => b.with_client_cert_verifier(v),
                None => b.with_no_client_auth(),
            };
            let mut cfg = b.with_single_cert(material.server_chain.clone(), key.clone_key())?;
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Ok(Arc::new(cfg))
        };
        let default = base(None)?;
        let mut by_host = HashMap::new();
        for app in &policies.apps {
            for ca in app
                .trusted_cas
                .iter()
                .filter(|c| !material.trusted.contains_key(*c))
            {
                // `policy check` reports it too; the gate keeps serving the app's other policies.
                tracing::warn!(app = %app.name, ca = %ca, "trusted CA is not known (see `botgate ca list`); no certificate can chain to it");
            }
            let known: Vec<&String> = app
                .trusted_cas
                .iter()
                .filter(|c| material.trusted.contains_key(*c))
                .collect();
            let cfg = if known.is_empty() {
                default.clone()
            } else {
                let mut roots = RootCertStore::empty();
                let mut crls = Vec::new();
                for ca in known {
                    roots.add_parsable_certificates(material.trusted[ca].iter().cloned());
                    crls.extend(material.crls.get(ca).into_iter().flatten().cloned());
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .with_crls(crls)
                        .only_check_end_entity_revocation()
                        .allow_unknown_revocation_status()
                        .allow_unauthenticated()
                        .build()
                        .map_err(|source| TlsError::Verifier {
                            app: app.name.clone(),
                            source,
                        })?;
                base(Some(super::tls_reject::RememberRefused::wrap(verifier)))?
            };
            for h in &app.hostnames {
                by_host.insert(h.clone(), cfg.clone());
            }
        }
        Ok(Self { by_host, default })
    }

    fn for_sni(&self, sni: Option<&str>) -> Arc<ServerConfig> {
        sni.and_then(|s| self.by_host.get(&s.to_ascii_lowercase()))
            .unwrap_or(&self.default)
            .clone()
    }
}

/// Accept TLS connections until shutdown; configs are re-read per connection (hot swap).
pub async fn accept_tls(
    listener: TcpListener,
    state: Arc<GateState>,
    configs: Arc<ArcSwap<TlsConfigs>>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(handshake(stream, peer, state.clone(), configs.clone(), limits, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn handshake(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<GateState>,
    configs: Arc<ArcSwap<TlsConfigs>>,
    limits: ConnLimits,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    // The handshake shares the header read timeout: a silent client cannot hold a socket.
    let Ok(Ok(start)) = tokio::time::timeout(limits.header_read_timeout, acceptor).await else {
        GateMetrics::inc(&state.metrics.tls_handshake_failures);
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    let config = configs.load().for_sni(sni.as_deref());
    let tls =
        match tokio::time::timeout(limits.header_read_timeout, start.into_stream(config)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                // Before anything yields: the verifier left the refused leaf on this thread.
                let refused = super::tls_reject::take_refused_leaf();
                GateMetrics::inc(&state.metrics.tls_handshake_failures);
                if let Some(reason) = cert_failure(&e) {
                    let cert = refused.as_deref().and_then(peer_cert);
                    audit_handshake_failure(&state, peer, sni.as_deref(), reason, cert, &e);
                } else {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                return;
            }
            Err(_) => {
                GateMetrics::inc(&state.metrics.tls_handshake_failures);
                return;
            }
        };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| peer_cert(der.as_ref()))
        .map(Arc::new);
    let conn = ConnInfo {
        peer,
        tls: true,
        cert,
    };
    serve_connection(tls, state, conn, limits, shutdown).await;
}

/// Which client-certificate problem a handshake error is, if any.
fn cert_failure(e: &std::io::Error) -> Option<DenyReason> {
    let rustls::Error::InvalidCertificate(ce) = e.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    let text = format!("{ce:?}");
    Some(
        if text.starts_with("Expired") || text.starts_with("NotValidYet") {
            DenyReason::CertExpired
        } else if text.starts_with("Revoked") {
            DenyReason::CertRevoked
        } else {
            DenyReason::CertUntrusted
        },
    )
}

fn audit_handshake_failure(
    state: &GateState,
    peer: SocketAddr,
    sni: Option<&str>,
    reason: DenyReason,
    cert: Option<PeerCert>,
    e: &std::io::Error,
) {
    let mut ev = AccessEvent::empty(EventKind::Access, state.clock.now(), new_ray_id());
    ev.connection_method = ConnectionMethod::Mtls;
    ev.decision = "deny".into();
    ev.deny_reason = Some(reason.as_str().into());
    ev.ip_address = Some(peer.ip().to_string());
    ev.country = state.geo.as_ref().and_then(|g| g.country(peer.ip()));
    ev.host = sni.map(str::to_string);
    ev.app_name = sni.and_then(|s| {
        state
            .policies
            .load()
            .app_for_host(s)
            .map(|a| a.name.clone())
    });
    // The refused certificate names the credential, so detectors can say which client did
    // not roll over (e.g. a revoked device cert on a fresh connection).
    if let Some(c) = cert {
        super::handler::fill_cert(&mut ev, &c);
    }
    ev.details = Some(serde_json::json!({ "tls_error": e.to_string() }));
    GateMetrics::inc(&state.metrics.denied);
    let _ = state.audit.record(ev);
}

/// The fields policies and audits use, read from a verified leaf certificate.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    PeerCert::from_der(der)
}
