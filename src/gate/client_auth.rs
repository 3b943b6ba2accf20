//! Client certificates at the TLS handshake, like nginx's `ssl_verify_client optional`: the
//! handshake asks for a certificate and checks that the client holds its private key, but
//! never refuses one for trust reasons. The connection task then asks `pki::verify` (the one
//! certificate-verification function, shared with `policy explain`) and keeps either a verified
//! `PeerCert` or a `RefusedCert`; a request on a connection with a refused certificate gets 401
//! with the usual JSON body and `ray_id`, and its audit event names why. A refused certificate
//! never reaches a policy as an identity.
//!
//! Cost: the chain is verified once per connection, after the handshake, on the connection's
//! task (the same work webpki did inside the handshake before).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use super::deny::DenyReason;
use super::handler::PeerCert;
use crate::pki::CertTrust;
use crate::pki::verify::CertProblem;

/// A certificate the client presented that `pki::verify` refused (kept for the audit event).
#[derive(Debug, Clone)]
pub struct RefusedCert {
    pub reason: DenyReason,
    /// The failed check, e.g. `issuer "CN=Rogue" is not one of the app's trusted CAs (…)`.
    pub detail: String,
    /// Its fields, when it parses; audit only, never an identity.
    pub cert: Option<PeerCert>,
}

/// The deny reason for a certificate problem.
pub fn deny_reason(p: CertProblem) -> DenyReason {
    match p {
        CertProblem::Untrusted => DenyReason::CertUntrusted,
        CertProblem::Expired => DenyReason::CertExpired,
        CertProblem::Revoked => DenyReason::CertRevoked,
        CertProblem::Unsupported => DenyReason::CertUnsupported,
    }
}

/// The handshake-time verifier: asks for a certificate (hinting the app's trusted CAs) and
/// accepts any, leaving the verdict to `pki::verify` after the handshake.
#[derive(Debug)]
pub struct DeferredClientAuth {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl DeferredClientAuth {
    pub fn for_trust(trust: &CertTrust) -> Arc<dyn ClientCertVerifier> {
        Arc::new(Self {
            hints: trust.root_hint_subjects().to_vec(),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Deferred on purpose: see the module docs.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let Some(key) = v1_public_key(cert) else {
            return rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms);
        };
        // webpki cannot parse a v1 certificate, so its key is used directly (TLS 1.2 tries
        // every algorithm of the scheme, as rustls does).
        let algs = self
            .algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == dss.scheme)
            .map(|(_, a)| *a)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        algs.iter()
            .find(|alg| {
                alg.verify_signature(&key.1, message, dss.signature())
                    .is_ok()
            })
            .map(|_| HandshakeSignatureValid::assertion())
            .ok_or(Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match v1_public_key(cert) {
            Some((spki, _)) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(spki),
                dss,
                &self.algorithms,
            ),
            None => rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The SubjectPublicKeyInfo (DER) and the raw key bits of a v1 certificate; `None` for other
/// versions (webpki handles those) and for garbage (webpki then refuses the handshake).
fn v1_public_key(cert: &CertificateDer<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, c) = X509Certificate::from_der(cert.as_ref()).ok()?;
    (c.version() == X509Version::V1).then(|| {
        let spki = c.public_key();
        (spki.raw.to_vec(), spki.subject_public_key.data.to_vec())
    })
}
