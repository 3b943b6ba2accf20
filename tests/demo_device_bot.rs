//! The demo's mTLS device bot against a real TLS server that requires client certificates (the
//! gate's TLS listener lands separately): SNI, client certificate, loopback source address, and
//! picking up a rotated certificate from its credential file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate::demo::bots::{BotAuth, BotFleet, BotSpec, FleetOptions, GateEndpoints, TlsEndpoint};
use botgate::demo::credentials::{CredentialFile, write_credential_file};
use botgate::demo::schedule::Schedule;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;

/// What the server saw on one request.
#[derive(Debug, Clone)]
struct Seen {
    sni: Option<String>,
    client_cn: Option<String>,
    client_serial: String,
    peer: SocketAddr,
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "Demo Device CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// (cert PEM, key PEM, cert DER, key DER)
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: Vec<String>,
    client: bool,
) -> (
    String,
    String,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.pem(), key.serialize_pem(), cert.der().clone(), key_der)
}

async fn mtls_server(
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (_, _, cert, key) = leaf(
        ca,
        "devices.demo.local",
        vec!["devices.demo.local".into()],
        false,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let sni = conn.server_name().map(str::to_string);
                let der = conn.peer_certificates().unwrap()[0].clone();
                let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
                let client_cn = x509
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|c| c.as_str().ok())
                    .map(str::to_string);
                let seen = Seen {
                    sni,
                    client_cn,
                    client_serial: x509.raw_serial_as_string(),
                    peer,
                };
                let svc = hyper::service::service_fn(move |_req| {
                    let _ = tx.send(seen.clone());
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn next_matching(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    f: impl Fn(&Seen) -> bool,
) -> Option<Seen> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            && f(&s)
        {
            return Some(s);
        }
    }
    None
}

#[tokio::test]
async fn device_bot_presents_its_certificate_and_picks_up_a_rotated_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = ca();
    let (addr, mut rx) = mtls_server(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let cn = "device-0001.factory.corp";
    let write_cert = |tag: &str| {
        let (cert, key, der, _) = leaf(&ca, cn, vec![], true);
        std::fs::write(dir.path().join(format!("{tag}.pem")), cert).unwrap();
        std::fs::write(dir.path().join(format!("{tag}.key")), key).unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        write_credential_file(
            &dir.path().join("device.json"),
            &CredentialFile::Cert {
                name: cn.into(),
                cert_file: format!("{tag}.pem").into(),
                key_file: format!("{tag}.key").into(),
            },
        )
        .unwrap();
        x509.raw_serial_as_string()
    };
    let first_serial = write_cert("v1");

    let fleet = BotFleet::spawn(
        vec![BotSpec {
            name: cn.into(),
            host: "devices.demo.local".into(),
            requests: vec![(reqwest::Method::POST, "/v1/telemetry".into())],
            sources: vec!["127.0.3.10".parse().unwrap()],
            user_agents: vec!["factory-agent/3.4.1 (linux; arm64)".into()],
            auth: BotAuth::CertFile {
                path: dir.path().join("device.json"),
                reread: true,
            },
            schedule: Schedule::Every {
                interval: Duration::from_millis(50),
                jitter: 0.0,
                first_at: Some(Duration::ZERO),
            },
        }],
        &GateEndpoints {
            plain: "127.0.0.1:9".parse().unwrap(),
            tls: Some(TlsEndpoint {
                addr,
                server_ca_pem: ca.pem().into_bytes(),
            }),
        },
        FleetOptions::default(),
    )
    .unwrap();

    let seen = next_matching(&mut rx, |_| true)
        .await
        .expect("the device bot reached the mTLS server");
    assert_eq!(seen.sni.as_deref(), Some("devices.demo.local"));
    assert_eq!(seen.client_cn.as_deref(), Some(cn));
    assert_eq!(seen.client_serial, first_serial);
    // Linux binds any 127/8 source; elsewhere the bot would not have started this address.
    assert_eq!(seen.peer.ip().to_string(), "127.0.3.10");

    let second_serial = write_cert("v2");
    assert_ne!(first_serial, second_serial);
    let rotated = next_matching(&mut rx, |s| s.client_serial == second_serial).await;
    assert!(
        rotated.is_some(),
        "the bot never presented the rotated certificate"
    );
    assert_eq!(fleet.counts()[0].failed, 0, "{:?}", fleet.counts());
    fleet.stop().await;
}
