//! The one certificate-verification function: would this client certificate chain be accepted
//! for an app? The gate asks it after every handshake that presented a certificate, and
//! `policy explain --cert` asks it for a file, so the two cannot disagree.
//!
//! Checks, in order: the certificate parses and has a version we accept, it chains to one of the
//! app's `trusted_cas`, it is inside its validity window, and it is not revoked (the CAs' CRLs,
//! then botgate's own revocations by fingerprint, which apply instantly). X.509 v3 chains go
//! through webpki (rustls' client verifier: path building, EKU, CRLs). X.509 v1 leaves, which
//! `openssl x509 -req` makes without `-extfile`, are accepted only when signed directly by a
//! trusted CA; their signature is checked with x509-parser's `verify` feature (ring). A v1
//! certificate is never accepted as a CA.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, DistinguishedName, RootCertStore};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::X509Version;

use super::serial_hex;

/// What botgate says about X.509 v1 client certificates (`policy explain`, `policy check`,
/// `ca trust`).
pub const V1_ADVICE: &str = "X.509 v1 certificates (what `openssl x509 -req` makes without -extfile) are accepted when signed directly by a trusted CA, but they carry no extended key usage or SAN, so policies can match their subject only; issue a v3 certificate from the same CSR with `botgate cert issue --csr client.csr`";

/// Whether the PEM or DER certificate in `bytes` is X.509 v1.
pub fn is_x509_v1(bytes: &[u8]) -> bool {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(bytes)
        .map(|d| d.to_vec())
        .unwrap_or_else(|_| bytes.to_vec());
    X509Certificate::from_der(&der).is_ok_and(|(_, c)| c.version() == X509Version::V1)
}

/// The trusted CA material of the whole gate: CA name → certificates, CA name → CRLs.
#[derive(Debug, Default, Clone)]
pub struct TrustMaterial {
    /// Trusted CA name → its certificates (root, and intermediates for our own CA).
    pub trusted: HashMap<String, Vec<CertificateDer<'static>>>,
    /// Trusted CA name → CRLs issued under it.
    pub crls: HashMap<String, Vec<CertificateRevocationListDer<'static>>>,
}

/// Why a certificate is refused; the gate writes it as `deny_reason` (`cert_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    /// Does not chain to a trusted CA (unknown issuer, bad signature, wrong key usage).
    Untrusted,
    /// Outside its validity window (expired or not yet valid).
    Expired,
    /// On a CRL, or revoked with `botgate cert revoke`.
    Revoked,
    /// A form botgate does not accept (garbage, v2, v1 below an intermediate, v1 as a CA).
    Unsupported,
}

/// The result of one check, for `policy explain`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// `parse`, `version`, `chain`, `validity` or `revoked`.
    pub name: &'static str,
    pub ok: bool,
    /// What was found, e.g. `ok via "Corporate Device CA"` or `yes since 2026-12-03T08:00:00Z`.
    pub detail: String,
}

/// A refusal: the problem and a sentence for the audit log and `policy explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub problem: CertProblem,
    pub detail: String,
}

/// The answer for one certificate chain.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// The trusted CA (by name) the certificate chains to, when it does.
    pub anchor: Option<String>,
    /// `None` when the certificate is accepted.
    pub refusal: Option<Refusal>,
    /// Whether the leaf is X.509 v1 (no EKU or SAN; `policy explain` says how to issue v3).
    pub v1: bool,
}

/// Revocations made in botgate (`botgate cert revoke`), by SHA-256 fingerprint; they apply on
/// the next request, with or without a CRL.
#[derive(Debug, Default, Clone)]
pub struct RevokedCerts(HashMap<Box<str>, DateTime<Utc>>);

impl RevokedCerts {
    /// When the certificate with this fingerprint was revoked, if it was.
    pub fn revoked_at(&self, fingerprint_sha256: &str) -> Option<DateTime<Utc>> {
        self.0.get(fingerprint_sha256).copied()
    }

    /// The refusal for a revoked fingerprint: the one revocation check every caller makes (the
    /// handshake via `CertTrust::verify`, and every request on a kept-alive connection).
    pub fn refusal(&self, fingerprint_sha256: &str) -> Option<Refusal> {
        self.revoked_at(fingerprint_sha256).map(|at| Refusal {
            problem: CertProblem::Revoked,
            detail: format!("yes since {} (botgate cert revoke)", rfc3339(at)),
        })
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, DateTime<Utc>)> for RevokedCerts {
    fn from_iter<I: IntoIterator<Item = (String, DateTime<Utc>)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(f, t)| (f.into(), t)).collect())
    }
}

/// Building a `CertTrust` failed (a CRL webpki cannot read).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the client-certificate verifier: {0}")]
pub struct TrustError(#[from] rustls::server::VerifierBuilderError);

/// What one app's client certificates are checked against, built once per material change.
#[derive(Debug)]
pub struct CertTrust {
    /// webpki over the app's known CAs (v3 chains); `None` when none of them is known.
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    anchors: Vec<Anchor>,
    /// CRLs of the app's known CAs, by CA name.
    crls: Vec<(String, CertificateRevocationListDer<'static>)>,
    /// The app's `trusted_cas` that are not known (`botgate ca list`).
    pub unknown_cas: Vec<String>,
    names: Vec<String>,
}

#[derive(Debug)]
struct Anchor {
    ca_name: String,
    subject_raw: Vec<u8>,
    der: CertificateDer<'static>,
}

impl CertTrust {
    /// The trust for an app trusting `trusted_cas` (names as `botgate ca list` shows them).
    pub fn new(trusted_cas: &[String], material: &TrustMaterial) -> Result<Self, TrustError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let mut anchors = Vec::new();
        let mut crls = Vec::new();
        let mut unknown_cas = Vec::new();
        for name in trusted_cas {
            let Some(certs) = material.trusted.get(name) else {
                unknown_cas.push(name.clone());
                continue;
            };
            roots.add_parsable_certificates(certs.iter().cloned());
            for der in certs {
                if let Ok((_, c)) = X509Certificate::from_der(der.as_ref()) {
                    anchors.push(Anchor {
                        ca_name: name.clone(),
                        subject_raw: c.subject().as_raw().to_vec(),
                        der: der.clone(),
                    });
                }
            }
            for crl in material.crls.get(name).into_iter().flatten() {
                crls.push((name.clone(), crl.clone()));
            }
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls.iter().map(|(_, c)| c.clone()))
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status()
                .allow_unauthenticated()
                .build()?;
            Some(v)
        };
        Ok(Self {
            webpki,
            anchors,
            crls,
            unknown_cas,
            names: trusted_cas.to_vec(),
        })
    }

    /// Whether any trusted CA is known, i.e. whether client certificates are worth asking for.
    pub fn has_anchors(&self) -> bool {
        !self.anchors.is_empty()
    }

    /// The subjects of the trusted CAs, sent to clients in the CertificateRequest.
    pub fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki
            .as_ref()
            .map(|v| v.root_hint_subjects())
            .unwrap_or_default()
    }

    /// Verify `chain` (leaf first, then any intermediates the client sent) at `now`.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        revoked: &RevokedCerts,
        now: DateTime<Utc>,
    ) -> Verdict {
        let mut v = Verdict {
            checks: Vec::new(),
            anchor: None,
            refusal: None,
            v1: false,
        };
        let Some(leaf_der) = chain.first() else {
            v.fail(
                "parse",
                CertProblem::Untrusted,
                "no certificate was presented",
            );
            return v;
        };
        let leaf = match X509Certificate::from_der(leaf_der.as_ref()) {
            Ok((_, c)) => c,
            Err(e) => {
                v.fail(
                    "parse",
                    CertProblem::Unsupported,
                    format!("not an X.509 certificate ({e})"),
                );
                return v;
            }
        };
        let intermediates = &chain[1..];
        match leaf.version() {
            X509Version::V3 => v.pass("version", "v3"),
            X509Version::V1 => {
                v.v1 = true;
                v.pass(
                    "version",
                    "v1 (no extended key usage or SAN; issue v3 with `botgate cert issue --csr client.csr`)",
                );
            }
            other => {
                v.fail(
                    "version",
                    CertProblem::Unsupported,
                    format!(
                        "X.509 version {} is not accepted (only v1 and v3)",
                        other.0 + 1
                    ),
                );
                return v;
            }
        }
        let chained = if v.v1 {
            self.chain_v1(&leaf, intermediates)
        } else {
            self.chain_v3(leaf_der, &leaf, intermediates, now)
        };
        match chained {
            Ok(anchor) => {
                v.pass("chain", format!("ok via {anchor:?}"));
                v.anchor = Some(anchor);
            }
            Err(r) => {
                v.fail("chain", r.problem, r.detail);
                return v;
            }
        }
        let (nb, na) = (leaf.validity().not_before, leaf.validity().not_after);
        let (from, until) = (
            super::utc_from_unix(nb.timestamp()),
            super::utc_from_unix(na.timestamp()),
        );
        let window = format!(
            "{} .. {}",
            from.map(rfc3339).unwrap_or_else(|| nb.to_string()),
            until.map(rfc3339).unwrap_or_else(|| na.to_string())
        );
        if from.is_some_and(|f| now < f) {
            v.fail(
                "validity",
                CertProblem::Expired,
                format!("not yet valid ({window})"),
            );
            return v;
        }
        if until.is_none_or(|u| now >= u) {
            v.fail(
                "validity",
                CertProblem::Expired,
                format!("expired ({window})"),
            );
            return v;
        }
        v.pass("validity", format!("ok ({window})"));
        let fingerprint = super::fingerprint_sha256(leaf_der.as_ref());
        let crl_revoked = v
            .anchor
            .as_deref()
            .and_then(|a| self.crl_revocation(a, &leaf));
        match crl_revoked.or_else(|| revoked.refusal(&fingerprint)) {
            Some(r) => v.fail("revoked", r.problem, r.detail),
            None => v.pass("revoked", "no"),
        }
        v
    }

    /// A v1 leaf: signed directly by one of the trusted CA certificates.
    fn chain_v1(
        &self,
        leaf: &X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<String, Refusal> {
        let issuer = leaf.issuer().as_raw();
        let mut last = None;
        for a in self.anchors.iter().filter(|a| a.subject_raw == issuer) {
            let ca = match X509Certificate::from_der(a.der.as_ref()) {
                Ok((_, c)) => c,
                Err(_) => continue,
            };
            if ca.version() != X509Version::V3 || !ca.is_ca() {
                last = Some(unsupported(format!(
                    "trusted certificate {:?} is not an X.509 v3 CA certificate (v1 is never accepted as a CA)",
                    ca.subject().to_string()
                )));
                continue;
            }
            if is_sha1(leaf) {
                last = Some(unsupported(
                    "signed with SHA-1, which is not accepted".into(),
                ));
                continue;
            }
            match leaf.verify_signature(Some(ca.public_key())) {
                Ok(()) => return Ok(a.ca_name.clone()),
                Err(e) => {
                    last = Some(Refusal {
                        problem: CertProblem::Untrusted,
                        detail: format!(
                            "the signature does not verify with the key of {:?} ({e})",
                            a.ca_name
                        ),
                    })
                }
            }
        }
        if let Some(r) = last {
            return Err(r);
        }
        let under_intermediate = intermediates.iter().any(|i| {
            X509Certificate::from_der(i.as_ref()).is_ok_and(|(_, c)| c.subject().as_raw() == issuer)
        });
        if under_intermediate {
            return Err(unsupported(format!(
                "X.509 v1 certificate issued by the intermediate {:?}: v1 is accepted only when signed directly by a trusted CA; issue v3 with `botgate cert issue --csr client.csr`",
                leaf.issuer().to_string()
            )));
        }
        Err(self.unknown_issuer(leaf))
    }

    /// A v3 leaf: webpki path building to the trusted CAs (signatures, EKU, CRLs).
    fn chain_v3(
        &self,
        leaf_der: &CertificateDer<'_>,
        leaf: &X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        if let Some(i) = intermediates.iter().find_map(|i| {
            X509Certificate::from_der(i.as_ref())
                .ok()
                .filter(|(_, c)| c.version() != X509Version::V3)
                .map(|(_, c)| c.subject().to_string())
        }) {
            return Err(unsupported(format!(
                "the intermediate {i:?} is not X.509 v3 (v1 is never accepted as a CA)"
            )));
        }
        let Some(webpki) = &self.webpki else {
            return Err(self.unknown_issuer(leaf));
        };
        // Chain and time are checked together by webpki; the window is reported by `verify`,
        // so the chain is judged at an instant inside it.
        let nb = leaf.validity().not_before.timestamp();
        let na = leaf.validity().not_after.timestamp();
        let at = now.timestamp().clamp(nb, na.saturating_sub(1).max(nb));
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
        match webpki.verify_client_cert(leaf_der, intermediates, at) {
            Ok(_) => Ok(self.anchor_name(leaf, intermediates)),
            // Revocation is judged in `verify`, with the date from the CRL.
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {
                Ok(self.anchor_name(leaf, intermediates))
            }
            Err(rustls::Error::InvalidCertificate(e)) => Err(self.webpki_refusal(leaf, e)),
            Err(e) => Err(unsupported(e.to_string())),
        }
    }

    fn webpki_refusal(&self, leaf: &X509Certificate<'_>, e: CertificateError) -> Refusal {
        use CertificateError as E;
        match e {
            E::UnknownIssuer => self.unknown_issuer(leaf),
            E::BadSignature => Refusal {
                problem: CertProblem::Untrusted,
                detail: "a signature in the chain does not verify".into(),
            },
            E::InvalidPurpose | E::InvalidPurposeContext { .. } => Refusal {
                problem: CertProblem::Untrusted,
                detail: "the certificate's extended key usage does not allow client authentication (clientAuth)".into(),
            },
            E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. } => Refusal {
                problem: CertProblem::Expired,
                detail: "a certificate in the chain is outside its validity window".into(),
            },
            E::BadEncoding | E::UnhandledCriticalExtension | E::Other(_) => {
                unsupported(format!("webpki cannot use this certificate ({e:?})"))
            }
            other => Refusal {
                problem: CertProblem::Untrusted,
                detail: format!("webpki refused the chain ({other:?})"),
            },
        }
    }

    fn unknown_issuer(&self, leaf: &X509Certificate<'_>) -> Refusal {
        let trusted = if self.names.is_empty() {
            "the app has no trusted_cas".to_string()
        } else {
            format!(
                "trusted_cas: {}",
                self.names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Refusal {
            problem: CertProblem::Untrusted,
            detail: format!(
                "issuer {:?} is not one of the app's trusted CAs ({trusted})",
                leaf.issuer().to_string()
            ),
        }
    }

    /// Which trusted CA a chain accepted by webpki ends at: follow issuer names up the chain.
    fn anchor_name(
        &self,
        leaf: &X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> String {
        let parsed: Vec<X509Certificate<'_>> = intermediates
            .iter()
            .filter_map(|i| X509Certificate::from_der(i.as_ref()).ok().map(|(_, c)| c))
            .collect();
        let mut issuer = leaf.issuer().as_raw();
        for _ in 0..=parsed.len() {
            if let Some(a) = self.anchors.iter().find(|a| a.subject_raw == issuer) {
                return a.ca_name.clone();
            }
            match parsed.iter().find(|c| c.subject().as_raw() == issuer) {
                Some(c) => issuer = c.issuer().as_raw(),
                None => break,
            }
        }
        self.names.first().cloned().unwrap_or_default()
    }

    /// The leaf's entry on a CRL of `ca_name` signed by that CA, if any.
    fn crl_revocation(&self, ca_name: &str, leaf: &X509Certificate<'_>) -> Option<Refusal> {
        let serial = leaf.raw_serial();
        let issuer = leaf.issuer().as_raw();
        let ca = self
            .anchors
            .iter()
            .filter(|a| a.ca_name == ca_name && a.subject_raw == issuer)
            .find_map(|a| X509Certificate::from_der(a.der.as_ref()).ok());
        let key = ca.as_ref().map(|(_, c)| c.public_key());
        for (_, der) in self.crls.iter().filter(|(n, _)| n == ca_name) {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der.as_ref()) else {
                continue;
            };
            if crl.issuer().as_raw() != issuer {
                continue;
            }
            // A CRL counts only when signed by the issuer (webpki does the same for v3).
            if key.is_none_or(|k| crl.verify_signature(k).is_err()) {
                continue;
            }
            if let Some(r) = crl
                .iter_revoked_certificates()
                .find(|r| serial_hex(r.raw_serial()) == serial_hex(serial))
            {
                let since = super::utc_from_unix(r.revocation_date.timestamp())
                    .map(rfc3339)
                    .unwrap_or_else(|| r.revocation_date.to_string());
                return Some(Refusal {
                    problem: CertProblem::Revoked,
                    detail: format!("yes since {since} (CRL of {ca_name:?})"),
                });
            }
        }
        None
    }
}

impl Verdict {
    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok: true,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, name: &'static str, problem: CertProblem, detail: impl Into<String>) {
        let detail = detail.into();
        self.checks.push(Check {
            name,
            ok: false,
            detail: detail.clone(),
        });
        self.refusal = Some(Refusal { problem, detail });
    }
}

fn unsupported(detail: String) -> Refusal {
    Refusal {
        problem: CertProblem::Unsupported,
        detail,
    }
}

fn is_sha1(c: &X509Certificate<'_>) -> bool {
    use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
    let alg = &c.signature_algorithm.algorithm;
    *alg == OID_PKCS1_SHA1WITHRSA || *alg == OID_SHA1_WITH_RSA
}

use crate::clock::rfc3339;
