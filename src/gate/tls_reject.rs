//! Which certificate a refused handshake presented. rustls' verification errors do not carry
//! the certificate, so the verifier is wrapped: on a refusal it keeps the leaf in a
//! thread-local slot, and the connection task takes it right after the handshake fails.
//!
//! Why a thread-local is enough: rustls verifies the client certificate while the handshake
//! future is being polled, and the failure returns from that same poll; the connection task
//! reads the slot before it yields, so no other task can run on this thread in between.
//! The slot is cleared on every read, so a value never outlives the poll that set it.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

thread_local! {
    static REFUSED_LEAF: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The leaf certificate (DER) the last refused verification on this thread saw, if any.
/// Call it right after a handshake failed, before yielding.
pub fn take_refused_leaf() -> Option<Vec<u8>> {
    REFUSED_LEAF.with(|slot| slot.borrow_mut().take())
}

/// A client-certificate verifier that remembers what it refused (see the module docs).
#[derive(Debug)]
pub struct RememberRefused {
    inner: Arc<dyn ClientCertVerifier>,
}

impl RememberRefused {
    pub fn wrap(inner: Arc<dyn ClientCertVerifier>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(Self { inner })
    }
}

impl ClientCertVerifier for RememberRefused {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if verdict.is_err() {
            REFUSED_LEAF.with(|slot| *slot.borrow_mut() = Some(end_entity.as_ref().to_vec()));
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}
