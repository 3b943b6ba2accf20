//! Issuing end-entity certificates with the local issuing CA: client certificates (clientAuth)
//! from a CSR, keeping the CSR's subject (O, C …), or with a key generated here; and server
//! certificates (serverAuth) for the gate's TLS listener when no certificate is configured.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType, SubjectPublicKeyInfo,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ca::{BACKDATE, IssuingCa, load_issuing_ca, random_serial};
use super::inspect::{self, CertInfo, Item, to_pem};
use super::keys::{self, KeyAlgorithm};
use super::{PkiError, to_offset};
use crate::store::Store;
use crate::store::pki::{CertRecord, CertSource, NewCert};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

/// Default client certificate lifetime.
pub const DEFAULT_CLIENT_DAYS: u32 = 365;
/// Longest client certificate lifetime accepted.
pub const MAX_CLIENT_DAYS: u32 = 3650;
/// Lifetime of server certificates issued for the gate.
pub const SERVER_CERT_DAYS: i64 = 90;

/// A client certificate to issue.
#[derive(Debug, Clone)]
pub struct ClientCertRequest<'a> {
    /// The certificate's CN (`--cn`).
    pub common_name: &'a str,
    /// A CSR (PEM or DER) and its name for errors; `None` generates a key.
    pub csr: Option<(&'a str, &'a [u8])>,
    pub days: u32,
    /// Key type when generating.
    pub key: KeyAlgorithm,
    pub now: DateTime<Utc>,
}

/// A freshly issued client certificate, already in the inventory.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub record: CertRecord,
    pub info: CertInfo,
    /// Leaf then the issuing CA certificate (what `CN.crt` holds).
    pub chain_pem: String,
    /// PKCS#8 PEM of the generated key; `None` when issued from a CSR.
    pub key_pem: Option<String>,
}

/// Issue a client certificate signed by the local issuing CA and add it to the inventory.
pub fn issue_client_cert(
    store: &Store,
    req: &ClientCertRequest<'_>,
) -> Result<IssuedCert, PkiError> {
    issue_client_cert_with_sans(store, req, &[])
}

/// `issue_client_cert` with subject alternative names (`cert issue --san`), added to a CSR's own.
pub fn issue_client_cert_with_sans(
    store: &Store,
    req: &ClientCertRequest<'_>,
    sans: &[SanType],
) -> Result<IssuedCert, PkiError> {
    validate_common_name(req.common_name)?;
    if req.days == 0 || req.days > MAX_CLIENT_DAYS {
        return Err(PkiError::InvalidRequest(format!(
            "--days {} must be between 1 and {MAX_CLIENT_DAYS}",
            req.days
        )));
    }
    let ca = load_issuing_ca(store)?;
    let not_after = req.now + Duration::days(i64::from(req.days));
    let (der, key_pem) = match req.csr {
        Some((what, bytes)) => (
            sign_csr(&ca, what, bytes, req.common_name, sans, req.now, not_after)?,
            None,
        ),
        None => {
            let key = req.key.generate()?;
            let rsa = matches!(req.key, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096);
            let mut params = client_params(req.now, not_after, rsa)?;
            params.subject_alt_names = sans.to_vec();
            params
                .distinguished_name
                .push(DnType::CommonName, req.common_name);
            let cert = params.signed_by(&key, &ca.issuer)?;
            (cert.der().to_vec(), Some(key.serialize_pem()))
        }
    };
    let info = CertInfo::from_der("issued certificate", &der)?;
    let leaf_pem = info.to_pem();
    let record = crate::store::wait(store.insert_cert(&NewCert {
        serial: &info.serial_hex,
        common_name: info.common_name.as_deref().unwrap_or(req.common_name),
        issuer: &info.issuer,
        ca_id: Some(ca.record.id),
        fingerprint_sha256: &info.fingerprint_sha256,
        not_before: info.not_before,
        not_after: info.not_after,
        key_type: &info.key_type,
        cert_pem: &leaf_pem,
        source: CertSource::Issued,
        path: None,
        created_at: req.now,
    }))?;
    let chain_pem = format!("{leaf_pem}{}", ca.cert.to_pem());
    Ok(IssuedCert {
        record,
        info,
        chain_pem,
        key_pem,
    })
}

/// A server certificate for the gate's TLS listener, signed by the local issuing CA: SANs are
/// `hostnames` plus `localhost`, 127.0.0.1 and ::1; serverAuth; 90 days. Returns the chain
/// (leaf, then the issuing CA) and the key. Not stored: it is re-issued when the gate starts.
pub fn issue_server_cert(
    store: &Store,
    hostnames: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    issue_server_cert_at(store, hostnames, Utc::now())
}

/// `issue_server_cert` with an explicit time.
pub fn issue_server_cert_at(
    store: &Store,
    hostnames: &[String],
    now: DateTime<Utc>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let ca = load_issuing_ca(store)?;
    let mut names: Vec<String> = Vec::new();
    for h in hostnames
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .chain(["localhost".to_string()])
    {
        if !names.contains(&h) {
            names.push(h);
        }
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "botgate");
    for name in &names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().map_err(|_| {
                PkiError::InvalidRequest(format!(
                    "hostname {name:?} cannot be used in a certificate"
                ))
            })?),
        };
        params.subject_alt_names.push(san);
    }
    for ip in [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        if !params.subject_alt_names.contains(&SanType::IpAddress(ip)) {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = to_offset(now - BACKDATE)?;
    params.not_after = to_offset(now + Duration::days(SERVER_CERT_DAYS))?;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    let key = KeyAlgorithm::EcdsaP256.generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    let mut chain = vec![cert.der().clone()];
    chain.extend(ca.chain.iter().take(1).cloned());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((chain, key_der))
}

/// A CN botgate will put in a certificate: 1-64 characters, no control characters.
pub fn validate_common_name(cn: &str) -> Result<(), PkiError> {
    if cn.trim().is_empty() || cn.trim() != cn {
        return Err(PkiError::InvalidRequest(format!(
            "--cn {cn:?} must not be empty or have surrounding spaces"
        )));
    }
    if cn.chars().count() > 64 {
        return Err(PkiError::InvalidRequest(format!(
            "--cn {cn:?} is longer than 64 characters (the X.509 limit for a CN)"
        )));
    }
    if cn.chars().any(char::is_control) {
        return Err(PkiError::InvalidRequest(format!(
            "--cn {cn:?} contains control characters"
        )));
    }
    Ok(())
}

fn client_params(
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
    rsa: bool,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    apply_client_profile(&mut params, now, not_after, rsa)?;
    Ok(params)
}

/// Everything a client certificate must have, whatever the CSR asked for. keyEncipherment
/// only for RSA keys: ECDSA and Ed25519 keys cannot encipher (RFC 5480, RFC 8410 forbid it).
fn apply_client_profile(
    params: &mut CertificateParams,
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
    rsa: bool,
) -> Result<(), PkiError> {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if rsa {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = to_offset(now - BACKDATE)?;
    params.not_after = to_offset(not_after)?;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    params.name_constraints = None;
    params.crl_distribution_points.clear();
    params.custom_extensions.clear();
    Ok(())
}

/// A CSR that botgate can sign: its signature verified, its key one the gate accepts.
#[derive(Debug)]
pub struct ClientCsr {
    /// Subject, SANs and requested extensions (the profile overrides all but subject and SANs).
    pub request: CertificateSigningRequestParams,
    /// The CSR's key, with the algorithm taken from the key itself, not from the CSR's
    /// signature (a P-384 key signed with SHA-256 is still a P-384 key).
    pub key: SubjectPublicKeyInfo,
    /// Whether that key is RSA.
    pub rsa: bool,
}

/// Read a CSR (PEM or DER) for signing. The key type is checked before the signature, so an
/// unsupported or too small key is named as such rather than as "signature does not verify".
pub fn read_csr(what: &str, bytes: &[u8]) -> Result<ClientCsr, PkiError> {
    let invalid = |detail: String| PkiError::InvalidCsr {
        what: what.to_string(),
        detail,
    };
    let der = csr_der(what, bytes)?;
    let (_, parsed) = X509CertificationRequest::from_der(&der)
        .map_err(|e| invalid(format!("not a readable CSR ({e})")))?;
    let spki = &parsed.certification_request_info.subject_pki;
    keys::check_client_key(spki).map_err(|why| invalid(format!("cannot sign this CSR: {why}")))?;
    let rsa = spki.algorithm.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
    let key = SubjectPublicKeyInfo::from_der(spki.raw).map_err(|e| {
        invalid(format!(
            "cannot sign this CSR: its {} key is not usable ({e})",
            keys::describe_spki(spki)
        ))
    })?;
    let request = CertificateSigningRequestParams::from_der(&der.into()).map_err(|e| {
        invalid(match e {
            rcgen::Error::InvalidCertificationRequestSignature => {
                "the CSR's signature does not verify (altered or corrupt, or signed with a digest ring cannot check such as ECDSA with SHA-512); make a new one".to_string()
            }
            rcgen::Error::UnsupportedExtension => {
                "the CSR requests an extension botgate does not honour (only SAN, key usage, EKU, basic constraints); make it without -addext/-reqexts".to_string()
            }
            rcgen::Error::UnsupportedSignatureAlgorithm => {
                "the CSR is signed with an algorithm botgate does not support (sign it with SHA-256, SHA-384 or SHA-512 for RSA, SHA-256 or SHA-384 for ECDSA, or Ed25519)".to_string()
            }
            other => format!("cannot use the CSR: {other}"),
        })
    })?;
    Ok(ClientCsr { request, key, rsa })
}

/// Sign a CSR: keep its subject (set the CN to `cn` if it has none; refuse a different CN) and
/// its SANs; override CA flag, key usage, EKU, validity and serial.
fn sign_csr(
    ca: &IssuingCa,
    what: &str,
    bytes: &[u8],
    cn: &str,
    sans: &[SanType],
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<Vec<u8>, PkiError> {
    let ClientCsr { request, key, rsa } = read_csr(what, bytes)?;
    let mut params = request.params;
    match params.distinguished_name.get(&DnType::CommonName) {
        None => params.distinguished_name.push(DnType::CommonName, cn),
        Some(existing) => {
            let existing = dn_text(existing);
            if existing.as_deref() != Some(cn) {
                return Err(PkiError::InvalidCsr {
                    what: what.to_string(),
                    detail: format!(
                        "the CSR's CN is {:?} but --cn is {cn:?}; they must match",
                        existing.unwrap_or_else(|| "(unreadable)".into())
                    ),
                });
            }
        }
    }
    for san in sans {
        if !params.subject_alt_names.contains(san) {
            params.subject_alt_names.push(san.clone());
        }
    }
    apply_client_profile(&mut params, now, not_after, rsa)?;
    Ok(params.signed_by(&key, &ca.issuer)?.der().to_vec())
}

/// The DER of a CSR given as PEM or DER; any other object is a clear error.
fn csr_der(what: &str, bytes: &[u8]) -> Result<Vec<u8>, PkiError> {
    let items = inspect::inspect(what, bytes)?;
    if !items.iter().any(|i| matches!(i, Item::Csr(_))) {
        let found = items
            .first()
            .map(Item::describe)
            .unwrap_or_else(|| "empty".into());
        return Err(PkiError::WrongType {
            what: what.to_string(),
            found,
            expected: "a certificate signing request (CSR)",
        });
    }
    if super::pem::looks_like_pem(bytes) {
        let blocks = super::pem::parse(bytes).map_err(|e| PkiError::Malformed {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        blocks
            .into_iter()
            .find(|b| b.label.ends_with("CERTIFICATE REQUEST"))
            .map(|b| b.der)
            .ok_or_else(|| PkiError::Malformed {
                what: what.to_string(),
                detail: "no CERTIFICATE REQUEST block".into(),
            })
    } else {
        Ok(bytes.to_vec())
    }
}

fn dn_text(v: &DnValue) -> Option<String> {
    match v {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        DnValue::Ia5String(s) => Some(s.as_str().to_string()),
        DnValue::TeletexString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// PEM of a DER certificate (for callers holding `CertificateDer`).
pub fn cert_pem(der: &[u8]) -> String {
    to_pem("CERTIFICATE", der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::{CaInitOptions, init_ca};

    fn store_with_ca(dir: &std::path::Path) -> Store {
        let store = Store::open(dir).unwrap();
        init_ca(
            &store,
            &CaInitOptions {
                name: "Test Root CA".into(),
                key: KeyAlgorithm::EcdsaP256,
                root_key_out: None,
                now: Utc::now(),
            },
        )
        .unwrap();
        store
    }

    fn csr(cn: Option<&str>) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example Corp");
        params.distinguished_name.push(DnType::CountryName, "SG");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn issues_with_generated_key_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_ca(dir.path());
        let now = Utc::now();
        let req = ClientCertRequest {
            common_name: "device-a1.factory.corp",
            csr: None,
            days: 30,
            key: KeyAlgorithm::EcdsaP256,
            now,
        };
        let issued = issue_client_cert(&store, &req).unwrap();
        assert_eq!(
            issued.info.common_name.as_deref(),
            Some("device-a1.factory.corp")
        );
        assert_eq!(
            issued.info.issuer_common_name.as_deref(),
            Some("Test Issuing CA")
        );
        assert!(!issued.info.is_ca);
        assert!(
            (issued.info.not_after - (now + Duration::days(30)))
                .num_seconds()
                .abs()
                <= 1
        );
        assert!(issued.key_pem.as_deref().unwrap().contains("PRIVATE KEY"));
        assert_eq!(
            inspect::certificates("chain", issued.chain_pem.as_bytes())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            crate::store::wait(store.find_certs("device-a1.factory.corp"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn csr_subject_is_kept_and_cn_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_ca(dir.path());
        let now = Utc::now();
        let pem = csr(Some("github-actions-bot"));
        let req = |cn, bytes: &'static [u8]| ClientCertRequest {
            common_name: cn,
            csr: Some(("c.csr", bytes)),
            days: 365,
            key: KeyAlgorithm::EcdsaP256,
            now,
        };
        let bytes: &'static [u8] = Box::leak(pem.into_bytes().into_boxed_slice());
        let issued = issue_client_cert(&store, &req("github-actions-bot", bytes)).unwrap();
        assert_eq!(issued.info.organization.as_deref(), Some("Example Corp"));
        assert_eq!(issued.info.country.as_deref(), Some("SG"));
        assert!(issued.key_pem.is_none());
        let err = issue_client_cert(&store, &req("someone-else", bytes)).unwrap_err();
        assert!(err.to_string().contains("must match"), "{err}");

        let no_cn: &'static [u8] = Box::leak(csr(None).into_bytes().into_boxed_slice());
        let issued = issue_client_cert(&store, &req("from-flag", no_cn)).unwrap();
        assert_eq!(issued.info.common_name.as_deref(), Some("from-flag"));
    }

    #[test]
    fn a_certificate_is_not_a_csr() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_ca(dir.path());
        let ca_pem = crate::store::wait(store.local_root())
            .unwrap()
            .unwrap()
            .cert_pem;
        let req = ClientCertRequest {
            common_name: "x",
            csr: Some(("ca.crt", ca_pem.as_bytes())),
            days: 1,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        };
        let err = issue_client_cert(&store, &req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ca.crt: this is a certificate, not a certificate signing request (CSR)"
        );
        assert!(err.is_bad_input());
    }

    #[test]
    fn refuses_without_ca_and_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let req = ClientCertRequest {
            common_name: "x",
            csr: None,
            days: 1,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        };
        assert!(matches!(
            issue_client_cert(&store, &req),
            Err(PkiError::NoIssuingCa)
        ));
        for (cn, days) in [("", 1), (" x", 1), ("x", 0), ("x", 100_000)] {
            let req = ClientCertRequest {
                common_name: cn,
                days,
                ..req.clone()
            };
            assert!(
                matches!(
                    issue_client_cert(&store, &req),
                    Err(PkiError::InvalidRequest(_))
                ),
                "{cn:?} {days}"
            );
        }
    }

    #[test]
    fn server_cert_verifies_with_webpki_for_hostname_and_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_ca(dir.path());
        let (chain, _key) = issue_server_cert(&store, &["api.example.com".to_string()]).unwrap();
        assert_eq!(chain.len(), 2);
        let info = CertInfo::from_der("server", &chain[0]).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("api.example.com"));
        let root = crate::store::wait(store.local_root()).unwrap().unwrap();
        let root_der = inspect::certificates("root", root.cert_pem.as_bytes())
            .unwrap()
            .remove(0)
            .der;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(root_der)).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        for name in ["api.example.com", "localhost", "127.0.0.1"] {
            let sn = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &chain[0],
                    &chain[1..],
                    &sn,
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn client_cert_verifies_with_webpki_client_verifier() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_ca(dir.path());
        let req = ClientCertRequest {
            common_name: "bot",
            csr: None,
            days: 1,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        };
        let issued = issue_client_cert(&store, &req).unwrap();
        let bundle = crate::store::wait(store.trust_bundle("Test Root CA")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        // Only the root as anchor: the intermediate must come from the client's chain.
        roots.add(bundle.anchors[0].clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        let chain: Vec<CertificateDer<'static>> =
            inspect::certificates("chain", issued.chain_pem.as_bytes())
                .unwrap()
                .into_iter()
                .map(|c| CertificateDer::from(c.der))
                .collect();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
            .unwrap();
    }
}
