//! Read any PEM or DER input and say what it is: certificate, CSR, CRL, private key, public key,
//! or something else. Certificates become `CertInfo` (the fields the inventory, the policy
//! selectors and the audit events use). Never panics on any input; errors name the input and
//! the problem (not PEM, truncated, malformed, wrong type).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::der::{self, Outer};
use super::keys::describe_spki;
use super::pem::{self, Block};
use super::{PkiError, fingerprint_sha256, serial_hex, utc_from_unix};
use crate::cert_names::{SpiffeId, SubjectAltNames};

/// A parsed X.509 certificate, as the inventory, policies and audit events see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Full subject DN, e.g. `CN=device-a1.factory.corp, O=Example Corp, C=SG`.
    pub subject: String,
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub country: Option<String>,
    /// Full issuer DN.
    pub issuer: String,
    pub issuer_common_name: Option<String>,
    /// Lowercase hex, no colons, no leading zero bytes.
    pub serial_hex: String,
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint_sha256: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// "ECDSA P-256", "RSA 2048" …
    pub key_type: String,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Whether subject == issuer (a root, or any self-signed cert).
    pub self_issued: bool,
    /// Subject alternative names (DNS, URI, email, IP).
    pub san: SubjectAltNames,
    /// The only URI SAN, when it is a valid SPIFFE ID (see `SubjectAltNames::spiffe_id`).
    pub spiffe_id: Option<SpiffeId>,
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (the `spki_sha256` pin: the same for
    /// every certificate issued for one key).
    pub spki_sha256: String,
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertInfo {
    /// Parse one DER certificate. `what` names the input in errors.
    pub fn from_der(what: &str, der: &[u8]) -> Result<Self, PkiError> {
        check_outer(what, der, "certificate")?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::Malformed {
            what: what.to_string(),
            detail: format!("not a valid X.509 certificate ({e})"),
        })?;
        Self::from_parsed(what, &cert, der)
    }

    fn from_parsed(what: &str, cert: &X509Certificate<'_>, der: &[u8]) -> Result<Self, PkiError> {
        let time = |t: x509_parser::time::ASN1Time, field: &str| {
            utc_from_unix(t.timestamp()).ok_or_else(|| PkiError::Malformed {
                what: what.to_string(),
                detail: format!("{field} is out of range"),
            })
        };
        let validity = cert.validity();
        let san = subject_alt_names(cert);
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            common_name: first_attr(cert.subject().iter_common_name()),
            organization: first_attr(cert.subject().iter_organization()),
            country: first_attr(cert.subject().iter_country()),
            issuer: cert.issuer().to_string(),
            issuer_common_name: first_attr(cert.issuer().iter_common_name()),
            serial_hex: serial_hex(cert.raw_serial()),
            fingerprint_sha256: fingerprint_sha256(der),
            not_before: time(validity.not_before, "notBefore")?,
            not_after: time(validity.not_after, "notAfter")?,
            key_type: describe_spki(cert.public_key()),
            is_ca: cert.is_ca(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            spiffe_id: san.spiffe_id(),
            san,
            spki_sha256: fingerprint_sha256(cert.public_key().raw),
            der: der.to_vec(),
        })
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }

    /// A short name for messages: the CN, else the subject.
    pub fn display_name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.subject)
    }
}

/// A parsed certificate signing request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsrInfo {
    pub subject: String,
    pub common_name: Option<String>,
    pub key_type: String,
}

/// What one PEM block (or a whole DER file) turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Certificate(Box<CertInfo>),
    Csr(CsrInfo),
    Crl(super::CrlInfo),
    PrivateKey {
        encrypted: bool,
    },
    PublicKey,
    /// A PEM block with a label we do not handle (e.g. DH PARAMETERS).
    Other {
        label: String,
    },
}

/// The kind of an `Item`, for "this is X, not Y" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Certificate,
    Csr,
    Crl,
    PrivateKey,
    PublicKey,
    Other,
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Certificate(_) => ItemKind::Certificate,
            Item::Csr(_) => ItemKind::Csr,
            Item::Crl(_) => ItemKind::Crl,
            Item::PrivateKey { .. } => ItemKind::PrivateKey,
            Item::PublicKey => ItemKind::PublicKey,
            Item::Other { .. } => ItemKind::Other,
        }
    }

    /// "a private key", "a certificate signing request (CSR)" …
    pub fn describe(&self) -> String {
        match self {
            Item::Certificate(_) => "a certificate".into(),
            Item::Csr(_) => "a certificate signing request (CSR)".into(),
            Item::Crl(_) => "a certificate revocation list (CRL)".into(),
            Item::PrivateKey { encrypted: true } => "an encrypted private key".into(),
            Item::PrivateKey { encrypted: false } => "a private key".into(),
            Item::PublicKey => "a public key".into(),
            Item::Other { label } => format!("a PEM block labelled {label:?}"),
        }
    }
}

/// Classify every object in `bytes` (PEM with any number of blocks, or a single DER object).
/// `what` names the input in errors (usually the file path).
pub fn inspect(what: &str, bytes: &[u8]) -> Result<Vec<Item>, PkiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(PkiError::Empty {
            what: what.to_string(),
        });
    }
    if pem::looks_like_pem(bytes) {
        let blocks = pem::parse(bytes).map_err(|e| match e {
            pem::PemError::Unterminated { .. } => PkiError::Truncated {
                what: what.to_string(),
                detail: e.to_string(),
            },
            _ => PkiError::Malformed {
                what: what.to_string(),
                detail: e.to_string(),
            },
        })?;
        blocks.iter().map(|b| classify_block(what, b)).collect()
    } else {
        classify_der(what, bytes).map(|item| vec![item])
    }
}

/// The certificates in `bytes`, in order. Other objects next to certificates (a key in a combined
/// PEM) are ignored; input holding no certificate is an error saying what it holds instead.
pub fn certificates(what: &str, bytes: &[u8]) -> Result<Vec<CertInfo>, PkiError> {
    let items = inspect(what, bytes)?;
    let first_other = items.first().map(Item::describe);
    let certs: Vec<CertInfo> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Certificate(c) => Some(*c),
            _ => None,
        })
        .collect();
    match (certs.is_empty(), first_other) {
        (false, _) => Ok(certs),
        (true, Some(found)) => Err(PkiError::WrongType {
            what: what.to_string(),
            found,
            expected: "a certificate",
        }),
        (true, None) => Err(PkiError::Empty {
            what: what.to_string(),
        }),
    }
}

/// Read a file and return its certificates (see `certificates`).
pub fn read_certificate_file(path: &Path) -> Result<Vec<CertInfo>, PkiError> {
    let bytes =
        crate::input::read(path, crate::input::PKI_FILE).map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    certificates(&path.display().to_string(), &bytes)
}

/// The SANs of `cert` that selectors can match. A malformed or duplicated SAN extension reads
/// as no SANs, so SAN selectors fail closed (the TLS verifier refuses such a certificate anyway).
fn subject_alt_names(cert: &X509Certificate<'_>) -> SubjectAltNames {
    use x509_parser::extensions::GeneralName;
    let mut out = SubjectAltNames::default();
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return out;
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => out.dns.push(d.to_ascii_lowercase()),
            GeneralName::URI(u) => out.uri.push((*u).to_string()),
            GeneralName::RFC822Name(e) => out.email.push((*e).to_string()),
            GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    out.ip.push(std::net::IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    out.ip.push(std::net::IpAddr::from(v6));
                }
            }
            _ => {}
        }
    }
    out
}

/// Standard base64 (RFC 4648, padded, no line breaks), e.g. for `Cf-Client-Cert-Der-Base64`
/// (the `base64` crate, as the origin assertion's base64url).
pub fn base64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Encode DER as PEM with 64-column lines.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn classify_block(what: &str, block: &Block) -> Result<Item, PkiError> {
    let at = format!("{what} (PEM block at line {})", block.line);
    match block.label.as_str() {
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            // openssl's TRUSTED CERTIFICATE appends trust settings after the certificate.
            Ok(Item::Certificate(Box::new(cert_prefix(&at, &block.der)?)))
        }
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
            parse_csr(&at, &block.der).map(Item::Csr)
        }
        "X509 CRL" => super::crl::parse_crl(&at, &block.der).map(Item::Crl),
        "ENCRYPTED PRIVATE KEY" => Ok(Item::PrivateKey { encrypted: true }),
        l if l.ends_with("PRIVATE KEY") => Ok(Item::PrivateKey {
            encrypted: block.encrypted,
        }),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Ok(Item::PublicKey),
        other => Ok(Item::Other {
            label: other.to_string(),
        }),
    }
}

/// A certificate that may be followed by trailing bytes (TRUSTED CERTIFICATE).
fn cert_prefix(what: &str, der: &[u8]) -> Result<CertInfo, PkiError> {
    match der::outer(der) {
        Outer::Complete { total } => CertInfo::from_der(what, der.get(..total).unwrap_or(der)),
        _ => CertInfo::from_der(what, der),
    }
}

fn classify_der(what: &str, bytes: &[u8]) -> Result<Item, PkiError> {
    match der::outer(bytes) {
        Outer::NotDer => {
            let text = bytes
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
            let detail = if text {
                "it is text without any -----BEGIN …----- block".to_string()
            } else {
                "the bytes are neither text nor an ASN.1 DER structure (garbage, or an unsupported format such as PKCS#12)".to_string()
            };
            Err(PkiError::NotPem {
                what: what.to_string(),
                detail,
            })
        }
        Outer::Truncated { stated, have } => Err(PkiError::Truncated {
            what: what.to_string(),
            detail: truncation_detail(stated, have),
        }),
        Outer::Complete { .. } => {
            if let Ok((_, cert)) = X509Certificate::from_der(bytes) {
                let total = bytes.len() - x509_rest_len(bytes);
                return CertInfo::from_parsed(what, &cert, bytes.get(..total).unwrap_or(bytes))
                    .map(|c| Item::Certificate(Box::new(c)));
            }
            if X509CertificationRequest::from_der(bytes).is_ok() {
                return parse_csr(what, bytes).map(Item::Csr);
            }
            if let Ok(crl) = super::crl::parse_crl(what, bytes) {
                return Ok(Item::Crl(crl));
            }
            if der::looks_like_private_key(bytes) {
                return Ok(Item::PrivateKey { encrypted: false });
            }
            Err(PkiError::Malformed {
                what: what.to_string(),
                detail: "DER data that is not a certificate, CSR, CRL or private key".to_string(),
            })
        }
    }
}

/// Bytes after the first DER object (0 if it fills the input).
fn x509_rest_len(bytes: &[u8]) -> usize {
    match der::outer(bytes) {
        Outer::Complete { total } => bytes.len().saturating_sub(total),
        _ => 0,
    }
}

fn check_outer(what: &str, der: &[u8], expected: &str) -> Result<(), PkiError> {
    match der::outer(der) {
        Outer::Complete { .. } => Ok(()),
        Outer::Truncated { stated, have } => Err(PkiError::Truncated {
            what: what.to_string(),
            detail: truncation_detail(stated, have),
        }),
        Outer::NotDer => Err(PkiError::Malformed {
            what: what.to_string(),
            detail: format!("the {expected} data does not start with an ASN.1 SEQUENCE"),
        }),
    }
}

fn truncation_detail(stated: usize, have: usize) -> String {
    if stated == usize::MAX {
        format!("the DER header is cut off after {have} bytes")
    } else {
        format!("the DER object says it is {stated} bytes but only {have} are present")
    }
}

fn parse_csr(what: &str, der: &[u8]) -> Result<CsrInfo, PkiError> {
    check_outer(what, der, "CSR")?;
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| PkiError::Malformed {
        what: what.to_string(),
        detail: format!("not a valid certificate signing request ({e})"),
    })?;
    let info = &csr.certification_request_info;
    Ok(CsrInfo {
        subject: info.subject.to_string(),
        common_name: first_attr(info.subject.iter_common_name()),
        key_type: describe_spki(&info.subject_pki),
    })
}

pub(crate) fn first_attr<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

/// The CN of a DN, for issuer names in CRLs and elsewhere.
pub(crate) fn name_cn(name: &X509Name<'_>) -> Option<String> {
    first_attr(name.iter_common_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_cert() -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["device-a1.factory.corp".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "device-a1.factory.corp");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Corp");
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "SG");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x8a, 0x01]));
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_der())
    }

    #[test]
    fn reads_certificate_fields() {
        let (pem, _) = sample_cert();
        let certs = certificates("sample.pem", pem.as_bytes()).unwrap();
        let c = &certs[0];
        assert_eq!(c.common_name.as_deref(), Some("device-a1.factory.corp"));
        assert_eq!(c.organization.as_deref(), Some("Example Corp"));
        assert_eq!(c.country.as_deref(), Some("SG"));
        assert_eq!(
            c.issuer_common_name.as_deref(),
            Some("device-a1.factory.corp")
        );
        assert_eq!(c.serial_hex, "8a01");
        assert_eq!(c.key_type, "ECDSA P-256");
        assert_eq!(c.fingerprint_sha256.len(), 64);
        assert!(!c.is_ca);
        assert!(c.self_issued);
        assert_eq!(to_pem("CERTIFICATE", &c.der), pem.replace("\r\n", "\n"));
        // The same certificate as DER.
        let from_der = certificates("sample.der", &c.der).unwrap();
        assert_eq!(from_der[0].fingerprint_sha256, c.fingerprint_sha256);
    }

    #[test]
    fn a_key_is_not_a_certificate() {
        let (_, key_der) = sample_cert();
        let pem = to_pem("PRIVATE KEY", &key_der);
        let err = certificates("k.pem", pem.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.pem: this is a private key, not a certificate"
        );
        let err = certificates("k.der", &key_der).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
    }

    #[test]
    fn truncated_and_garbage_inputs_say_so() {
        let (pem, _) = sample_cert();
        let cut = &pem.as_bytes()[..pem.len() / 2];
        assert!(matches!(
            certificates("a", cut),
            Err(PkiError::Truncated { .. })
        ));
        let (_, key_der) = sample_cert();
        assert!(matches!(
            certificates("b", &key_der[..key_der.len() - 5]),
            Err(PkiError::Truncated { .. })
        ));
        assert!(matches!(
            certificates("c", b"hello world"),
            Err(PkiError::NotPem { .. })
        ));
        assert!(matches!(
            certificates("d", &[0xff, 0x00, 0x13]),
            Err(PkiError::NotPem { .. })
        ));
        assert!(matches!(
            certificates("e", b"  \n"),
            Err(PkiError::Empty { .. })
        ));
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use super::sample_cert;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = inspect("fuzz", &bytes);
            }

            #[test]
            fn garbage_inside_pem_never_panics(body in "[A-Za-z0-9+/=\n]{0,600}", label in "(CERTIFICATE|X509 CRL|CERTIFICATE REQUEST|PRIVATE KEY|FOO)") {
                let text = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
                let _ = inspect("fuzz", text.as_bytes());
            }

            #[test]
            fn truncated_or_mutated_certs_never_panic(cut in 0usize..2000, flip in 0usize..2000, bit in 0u8..8) {
                let (pem, _) = sample_cert();
                let der = certificates("x", pem.as_bytes()).unwrap().remove(0).der;
                let cut_der = &der[..cut.min(der.len())];
                let _ = inspect("cut.der", cut_der);
                let _ = inspect("cut.pem", to_pem("CERTIFICATE", cut_der).as_bytes());
                let _ = inspect("cut-text.pem", &pem.as_bytes()[..cut.min(pem.len())]);
                let mut flipped = der.clone();
                let i = flip % flipped.len();
                flipped[i] ^= 1 << bit;
                let _ = inspect("flip.der", &flipped);
                let _ = inspect("flip.pem", to_pem("CERTIFICATE", &flipped).as_bytes());
            }
        }
    }
}
