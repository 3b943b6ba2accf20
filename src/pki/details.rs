//! The structure of one certificate that `botgate inspect` shows beside `CertInfo` (which
//! already carries subject, validity, key, SANs, SPIFFE ID and SPKI hash): X.509 version,
//! extended key usage, key usage, basic constraints and the signature algorithm.

use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;

/// Structure and extensions of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetails {
    /// 1, 2 or 3.
    pub version: u32,
    /// Extended key usages by name (`clientAuth`, `serverAuth` …; other OIDs dotted).
    pub extended_key_usage: Vec<String>,
    /// Key usages by name (`digitalSignature`, `keyCertSign` …).
    pub key_usage: Vec<String>,
    /// Basic constraints: whether it is a CA, and its path length limit.
    pub basic_constraints: Option<BasicConstraints>,
    /// The signature algorithm (OID or name).
    pub signature_algorithm: String,
}

/// The basicConstraints extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BasicConstraints {
    pub ca: bool,
    pub path_len: Option<u32>,
}

impl CertDetails {
    /// Read the details of one DER certificate. `what` names the input in errors.
    pub fn from_der(what: &str, der: &[u8]) -> Result<Self, PkiError> {
        let malformed = |detail: String| PkiError::Malformed {
            what: what.to_string(),
            detail,
        };
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| malformed(format!("not a valid X.509 certificate ({e})")))?;
        let ext = |name: &str, e: x509_parser::error::X509Error| {
            malformed(format!("its {name} extension is malformed ({e})"))
        };
        let mut extended_key_usage = Vec::new();
        if let Some(eku) = cert
            .extended_key_usage()
            .map_err(|e| ext("extendedKeyUsage", e))?
        {
            let e = eku.value;
            for (set, name) in [
                (e.any, "any"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ] {
                if set {
                    extended_key_usage.push(name.to_string());
                }
            }
            extended_key_usage.extend(e.other.iter().map(|o| o.to_id_string()));
        }
        let key_usage = match cert.key_usage().map_err(|e| ext("keyUsage", e))? {
            Some(ku) => ku
                .value
                .to_string()
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        let basic_constraints = cert
            .basic_constraints()
            .map_err(|e| ext("basicConstraints", e))?
            .map(|b| BasicConstraints {
                ca: b.value.ca,
                path_len: b.value.path_len_constraint,
            });
        Ok(CertDetails {
            version: cert.version().0 + 1,
            extended_key_usage,
            key_usage,
            basic_constraints,
            signature_algorithm: signature_name(&cert),
        })
    }
}

fn signature_name(cert: &X509Certificate<'_>) -> String {
    use x509_parser::oid_registry::*;
    let oid = &cert.signature_algorithm.algorithm;
    let named = [
        (OID_PKCS1_SHA256WITHRSA, "sha256WithRSAEncryption"),
        (OID_PKCS1_SHA384WITHRSA, "sha384WithRSAEncryption"),
        (OID_PKCS1_SHA512WITHRSA, "sha512WithRSAEncryption"),
        (OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption"),
        (OID_SIG_ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
        (OID_SIG_ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
        (OID_SIG_ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
        (OID_SIG_ED25519, "Ed25519"),
        (OID_PKCS1_RSASSAPSS, "RSASSA-PSS"),
    ];
    named
        .iter()
        .find(|(o, _)| o == oid)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| oid.to_id_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_eku_basic_constraints_and_version_of_an_rcgen_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["api.example.com".to_string()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let d = CertDetails::from_der("test", cert.der()).expect("details");
        assert_eq!(d.version, 3);
        assert_eq!(d.extended_key_usage, vec!["clientAuth".to_string()]);
        assert_eq!(
            d.basic_constraints,
            Some(BasicConstraints {
                ca: true,
                path_len: Some(0)
            })
        );
        assert_eq!(d.signature_algorithm, "ecdsa-with-SHA256");
    }

    #[test]
    fn garbage_is_a_malformed_error_naming_the_input() {
        let e = CertDetails::from_der("x.pem", b"\x30\x03\x02\x01\x00").unwrap_err();
        assert!(e.to_string().contains("x.pem"), "{e}");
    }
}
