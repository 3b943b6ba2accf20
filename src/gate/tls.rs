//! The HTTPS listener: rustls with a per-app client-certificate policy chosen by SNI.
//! Client certificates are requested but optional (token bots can use HTTPS too) and never
//! refused in the handshake: after it, the presented chain is checked by `pki::verify` against
//! the app's `trusted_cas` (chain, validity, CRLs, instant revocation), and a refused
//! certificate makes the connection's requests 401 with a reason (see `client_auth`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::client_auth::{DeferredClientAuth, RefusedCert, deny_reason};
use super::deny::DenyReason;
use super::handler::{ConnInfo, GateState, PeerCert};
use super::listener::{ConnLimits, serve_connection};
use super::metrics::GateMetrics;
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::pki::{CertTrust, TrustMaterial};
use crate::policy::PolicySet;

/// Everything needed to build the TLS configs: our server certificate and the trusted CAs.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Option<PrivateKeyDer<'static>>,
    /// Trusted CAs and their CRLs, by name.
    pub trust: TrustMaterial,
}

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "no server certificate: set [gate] tls_cert/tls_key or run `botgate ca init` so one can be issued"
    )]
    NoServerCert,
    #[error("app {app:?}: {source}")]
    Verifier {
        app: String,
        source: crate::pki::verify::TrustError,
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
    by_host: HashMap<String, AppTls>,
    default: AppTls,
}

/// The TLS config for an app's hostnames and the trust its client certificates are checked
/// against (`None`: no certificate is asked for).
#[derive(Debug, Clone)]
struct AppTls {
    config: Arc<ServerConfig>,
    trust: Option<Arc<CertTrust>>,
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
        let default = AppTls {
            config: base(None)?,
            trust: None,
        };
        let mut by_host = HashMap::new();
        for app in &policies.apps {
            let trust = CertTrust::new(&app.trusted_cas, &material.trust).map_err(|source| {
                TlsError::Verifier {
                    app: app.name.clone(),
                    source,
                }
            })?;
            for ca in &trust.unknown_cas {
                // `policy check` reports it too; the gate keeps serving the app's other policies.
                tracing::warn!(app = %app.name, ca = %ca, "trusted CA is not known (see `botgate ca list`); no certificate can chain to it");
            }
            let tls = if trust.has_anchors() {
                AppTls {
                    config: base(Some(DeferredClientAuth::for_trust(&trust)))?,
                    trust: Some(Arc::new(trust)),
                }
            } else {
                default.clone()
            };
            for h in &app.hostnames {
                by_host.insert(h.clone(), tls.clone());
            }
        }
        Ok(Self { by_host, default })
    }

    fn for_sni(&self, sni: Option<&str>) -> AppTls {
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
    let app_tls = configs.load().for_sni(sni.as_deref());
    let tls = match tokio::time::timeout(
        limits.header_read_timeout,
        start.into_stream(app_tls.config),
    )
    .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            GateMetrics::inc(&state.metrics.tls_handshake_failures);
            // Trust is never judged in the handshake; what remains is a client that could not
            // prove it holds the certificate's key, or a certificate nothing can parse.
            if let Some(reason) = cert_failure(&e) {
                audit_handshake_failure(&state, peer, sni.as_deref(), reason, &e);
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
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let (cert, cert_refused) = match (&app_tls.trust, chain.first()) {
        (Some(trust), Some(leaf)) => {
            let verdict = trust.verify(
                chain,
                &state.snapshot.load().revoked_certs,
                state.clock.now(),
            );
            let parsed = peer_cert(leaf.as_ref());
            match verdict.refusal {
                None => (parsed.map(Arc::new), None),
                Some(r) => (
                    None,
                    Some(Arc::new(RefusedCert {
                        reason: deny_reason(r.problem),
                        detail: r.detail,
                        cert: parsed,
                    })),
                ),
            }
        }
        _ => (None, None),
    };
    let conn = ConnInfo {
        peer,
        tls: true,
        cert,
        cert_refused,
    };
    serve_connection(tls, state, conn, limits, shutdown).await;
}

/// Which client-certificate problem a handshake error is, if any.
fn cert_failure(e: &std::io::Error) -> Option<DenyReason> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature) => {
            Some(DenyReason::CertUntrusted)
        }
        rustls::Error::InvalidCertificate(_) => Some(DenyReason::CertUnsupported),
        _ => None,
    }
}

fn audit_handshake_failure(
    state: &GateState,
    peer: SocketAddr,
    sni: Option<&str>,
    reason: DenyReason,
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
    ev.details = Some(serde_json::json!({ "tls_error": e.to_string() }));
    GateMetrics::inc(&state.metrics.denied);
    let _ = state.audit.record(ev);
}

/// The fields policies and audits use, read from a verified leaf certificate.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    PeerCert::from_der(der)
}
