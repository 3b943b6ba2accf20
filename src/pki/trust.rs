//! `ca trust`: validate a PEM file holding an external root (e.g. made with `openssl req -x509`)
//! or a full chain, and store each CA certificate under the given name. Refuses, with the
//! reason, anything that is not a usable CA: not PEM, a private key pasted by mistake, a leaf,
//! an expired or not-yet-valid CA, or certificates that do not form one chain.

use std::path::Path;

use chrono::{DateTime, Utc};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::PkiError;
use super::inspect::{self, CertInfo, Item};
use crate::store::Store;
use crate::store::pki::{CaKind, CaRecord, NewCa};

/// A validated CA chain, ordered from the top (the trust anchor) down.
#[derive(Debug, Clone)]
pub struct TrustedChain {
    pub certs: Vec<CertInfo>,
}

/// Check that `bytes` hold one or more CA certificates forming a single chain, valid at `now`.
/// `what` names the input (the file) in errors.
pub fn validate_for_trust(
    what: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<TrustedChain, PkiError> {
    let items = inspect::inspect(what, bytes)?;
    let is_key = |i: &Item| matches!(i, Item::PrivateKey { .. });
    if items.iter().any(is_key) {
        return Err(PkiError::ContainsPrivateKey {
            what: what.to_string(),
            only_key: items.iter().all(is_key),
        });
    }
    let mut certs = Vec::new();
    for item in items {
        match item {
            Item::Certificate(c) => certs.push(*c),
            other => {
                return Err(PkiError::WrongType {
                    what: what.to_string(),
                    found: other.describe(),
                    expected: "a CA certificate",
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(PkiError::Empty {
            what: what.to_string(),
        });
    }
    for c in &certs {
        if !c.is_ca {
            return Err(PkiError::NotCa {
                what: what.to_string(),
                subject: c.subject.clone(),
            });
        }
        if c.not_after <= now {
            return Err(PkiError::Expired {
                what: what.to_string(),
                subject: c.subject.clone(),
                not_after: c.not_after,
            });
        }
        if c.not_before > now {
            return Err(PkiError::NotYetValid {
                what: what.to_string(),
                subject: c.subject.clone(),
                not_before: c.not_before,
            });
        }
    }
    let ordered = order_chain(what, certs)?;
    verify_links(what, &ordered)?;
    Ok(TrustedChain { certs: ordered })
}

/// Validate the file and store its CA certificates: the top one as `name`, the ones below it as
/// `"{name} / {CN}"`. `crl_path` is an external CRL file the gate should load for this CA.
pub fn trust_ca(
    store: &Store,
    name: &str,
    path: &Path,
    crl_path: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<(TrustedChain, Vec<CaRecord>), PkiError> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(PkiError::InvalidRequest(format!(
            "--name {name:?} must be a non-empty, printable name"
        )));
    }
    let bytes =
        crate::input::read(path, crate::input::PKI_FILE).map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let chain = validate_for_trust(&path.display().to_string(), &bytes, now)?;
    if let Some(crl) = crl_path {
        super::crl::load_crl_file(crl)?;
    }
    let names: Vec<String> = chain
        .certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                name.to_string()
            } else {
                format!("{name} / {}", c.display_name())
            }
        })
        .collect();
    let pems: Vec<String> = chain.certs.iter().map(CertInfo::to_pem).collect();
    let crl_text = crl_path.map(|p| p.display().to_string());
    let rows: Vec<NewCa<'_>> = chain
        .certs
        .iter()
        .enumerate()
        .map(|(i, c)| NewCa {
            name: &names[i],
            kind: CaKind::Trusted,
            subject: &c.subject,
            fingerprint_sha256: &c.fingerprint_sha256,
            not_after: c.not_after,
            cert_pem: &pems[i],
            key_pem: None,
            key_type: Some(&c.key_type),
            // An external CRL belongs to the CA that signs the end-entity certs: the lowest one.
            crl_path: if i + 1 == chain.certs.len() {
                crl_text.as_deref()
            } else {
                None
            },
            created_at: now,
        })
        .collect();
    let stored = crate::store::wait(store.insert_ca_chain(&rows))?;
    Ok((chain, stored))
}

/// Order certificates from the top of the chain down; refuse sets that are not one chain.
fn order_chain(what: &str, mut certs: Vec<CertInfo>) -> Result<Vec<CertInfo>, PkiError> {
    // The top: a self-issued cert, else one whose issuer is not among the others.
    let top = certs
        .iter()
        .position(|c| c.self_issued)
        .or_else(|| {
            certs.iter().position(|c| {
                !certs
                    .iter()
                    .any(|o| o.subject == c.issuer && o.fingerprint_sha256 != c.fingerprint_sha256)
            })
        })
        .unwrap_or(0);
    let mut ordered = vec![certs.remove(top)];
    while !certs.is_empty() {
        let Some(last) = ordered.last() else { break };
        let Some(next) = certs
            .iter()
            .position(|c| c.issuer == last.subject && !c.self_issued)
        else {
            let stray = certs
                .iter()
                .map(|c| c.subject.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(PkiError::Malformed {
                what: what.to_string(),
                detail: format!(
                    "the certificates do not form one chain: nothing links {stray} to {}",
                    last.subject
                ),
            });
        };
        ordered.push(certs.remove(next));
    }
    Ok(ordered)
}

/// Each certificate's signature verifies with its parent's key (and a self-signed top with its own).
fn verify_links(what: &str, chain: &[CertInfo]) -> Result<(), PkiError> {
    fn parse<'a>(what: &str, c: &'a CertInfo) -> Result<X509Certificate<'a>, PkiError> {
        X509Certificate::from_der(&c.der)
            .map(|(_, cert)| cert)
            .map_err(|e| PkiError::Malformed {
                what: what.to_string(),
                detail: format!("{}: {e}", c.subject),
            })
    }
    for (i, c) in chain.iter().enumerate() {
        let issuer = match i.checked_sub(1) {
            Some(p) => &chain[p],
            None if c.self_issued => c,
            None => continue,
        };
        let (cert, parent) = (parse(what, c)?, parse(what, issuer)?);
        cert.verify_signature(Some(parent.public_key()))
            .map_err(|e| PkiError::Malformed {
                what: what.to_string(),
                detail: format!(
                    "the signature on {} does not verify with the key of {} ({e})",
                    c.subject, issuer.subject
                ),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    use super::*;

    fn ca(cn: &str, days: i64) -> (CertificateParams, KeyPair) {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(400);
        p.not_after = now + time::Duration::days(days);
        (p, KeyPair::generate().unwrap())
    }

    #[test]
    fn accepts_root_and_chain_in_any_order() {
        let (rp, rk) = ca("Corporate Device CA", 3650);
        let root = rp.self_signed(&rk).unwrap();
        let (ip, ik) = ca("Corporate Issuing CA", 1000);
        let inter = ip.signed_by(&ik, &Issuer::new(rp, &rk)).unwrap();
        let now = Utc::now();
        let single = validate_for_trust("ca.crt", root.pem().as_bytes(), now).unwrap();
        assert_eq!(single.certs.len(), 1);
        let bundle = format!("{}{}", inter.pem(), root.pem());
        let chain = validate_for_trust("chain.pem", bundle.as_bytes(), now).unwrap();
        assert_eq!(
            chain.certs[0].common_name.as_deref(),
            Some("Corporate Device CA")
        );
        assert_eq!(
            chain.certs[1].common_name.as_deref(),
            Some("Corporate Issuing CA")
        );
    }

    #[test]
    fn refuses_leaf_expired_key_and_unrelated() {
        let now = Utc::now();
        let (mut lp, lk) = ca("leaf", 100);
        lp.is_ca = IsCa::NoCa;
        let leaf = lp.self_signed(&lk).unwrap();
        assert!(matches!(
            validate_for_trust("l", leaf.pem().as_bytes(), now),
            Err(PkiError::NotCa { .. })
        ));

        let (ep, ek) = ca("old", -1);
        let expired = ep.self_signed(&ek).unwrap();
        assert!(matches!(
            validate_for_trust("e", expired.pem().as_bytes(), now),
            Err(PkiError::Expired { .. })
        ));

        let with_key = format!("{}{}", expired.pem(), ek.serialize_pem());
        assert!(matches!(
            validate_for_trust("k", with_key.as_bytes(), now),
            Err(PkiError::ContainsPrivateKey { .. })
        ));

        let (ap, ak) = ca("A", 100);
        let (bp, bk) = ca("B", 100);
        let two = format!(
            "{}{}",
            ap.self_signed(&ak).unwrap().pem(),
            bp.self_signed(&bk).unwrap().pem()
        );
        let err = validate_for_trust("two", two.as_bytes(), now).unwrap_err();
        assert!(err.to_string().contains("do not form one chain"), "{err}");
        let _ = now + Duration::days(1);
    }

    #[test]
    fn stores_chain_under_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let (rp, rk) = ca("Corporate Device CA", 3650);
        let root = rp.self_signed(&rk).unwrap();
        let (ip, ik) = ca("Corporate Issuing CA", 1000);
        let inter = ip.signed_by(&ik, &Issuer::new(rp, &rk)).unwrap();
        let file = dir.path().join("chain.pem");
        std::fs::write(&file, format!("{}{}", root.pem(), inter.pem())).unwrap();
        let (_, rows) = trust_ca(&store, "Corp", &file, None, Utc::now()).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["Corp", "Corp / Corporate Issuing CA"]
        );
        assert_eq!(
            crate::store::wait(store.trust_bundle("Corp"))
                .unwrap()
                .anchors
                .len(),
            2
        );
        assert!(!crate::store::wait(store.root_key_on_host()).unwrap());
    }
}
