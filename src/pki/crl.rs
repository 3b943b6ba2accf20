//! Certificate revocation lists: the CRL botgate's issuing CA signs (listing every certificate
//! it issued that was revoked, with a nextUpdate and an increasing crlNumber, stored so the gate
//! loads it without signing), and reading external CRL files for trusted CAs.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::ca::load_issuing_ca;
use super::inspect::{self, Item, name_cn, to_pem};
use super::{PkiError, serial_hex, to_offset, utc_from_unix};
use crate::store::Store;

/// How long a CRL botgate signs is valid (its nextUpdate).
pub const CRL_VALIDITY_DAYS: i64 = 7;

/// A parsed CRL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrlInfo {
    pub issuer: String,
    pub issuer_common_name: Option<String>,
    pub this_update: DateTime<Utc>,
    pub next_update: Option<DateTime<Utc>>,
    /// Decimal crlNumber, when present.
    pub crl_number: Option<String>,
    /// Revoked serials, canonical hex (see `pki::serial_hex`).
    pub revoked_serials: Vec<String>,
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CrlInfo {
    /// Whether the CRL is past its nextUpdate at `now` (the gate alerts on this).
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.next_update.is_some_and(|n| n <= now)
    }
}

/// A CRL botgate just signed and stored.
#[derive(Debug, Clone)]
pub struct IssuedCrl {
    pub ca_name: String,
    pub crl_number: i64,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    pub revoked: usize,
    pub der: Vec<u8>,
    pub pem: String,
}

/// Parse one DER CRL. `what` names the input in errors.
pub fn parse_crl(what: &str, der: &[u8]) -> Result<CrlInfo, PkiError> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| PkiError::Malformed {
        what: what.to_string(),
        detail: format!("not a valid CRL ({e})"),
    })?;
    let this_update =
        utc_from_unix(crl.last_update().timestamp()).ok_or_else(|| PkiError::Malformed {
            what: what.to_string(),
            detail: "thisUpdate out of range".into(),
        })?;
    Ok(CrlInfo {
        issuer: crl.issuer().to_string(),
        issuer_common_name: name_cn(crl.issuer()),
        this_update,
        next_update: crl.next_update().and_then(|t| utc_from_unix(t.timestamp())),
        crl_number: crl.crl_number().map(|n| n.to_string()),
        revoked_serials: crl
            .iter_revoked_certificates()
            .map(|r| serial_hex(r.raw_serial()))
            .collect(),
        der: der.to_vec(),
    })
}

/// Read a CRL file (PEM or DER) such as an external CA publishes.
pub fn load_crl_file(path: &Path) -> Result<CrlInfo, PkiError> {
    let bytes =
        crate::input::read(path, crate::input::CRL_FILE).map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let what = path.display().to_string();
    let items = inspect::inspect(&what, &bytes)?;
    let first = items.first().map(Item::describe);
    items
        .into_iter()
        .find_map(|i| match i {
            Item::Crl(c) => Some(c),
            _ => None,
        })
        .ok_or_else(|| PkiError::WrongType {
            what,
            found: first.unwrap_or_else(|| "empty".into()),
            expected: "a certificate revocation list (CRL)",
        })
}

/// Sign a new CRL with the local issuing CA listing every revoked certificate it issued, store
/// it (the gate picks it up via the generation bump) and advance the CRL number.
pub fn issue_crl(store: &Store, now: DateTime<Utc>) -> Result<IssuedCrl, PkiError> {
    let ca = load_issuing_ca(store)?;
    let revoked: Vec<_> = crate::store::wait(store.revoked_certs())?
        .into_iter()
        .filter(|r| r.ca_id == Some(ca.record.id))
        .collect();
    let mut revoked_params = Vec::with_capacity(revoked.len());
    for r in &revoked {
        let bytes = hex::decode(&r.serial).map_err(|_| {
            PkiError::Crypto(format!(
                "stored serial {:?} of {} is not hex",
                r.serial, r.common_name
            ))
        })?;
        revoked_params.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: to_offset(r.revoked_at)?,
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let crl_number = ca.record.next_crl_number.max(1);
    let this_update = now;
    let next_update = now + Duration::days(CRL_VALIDITY_DAYS);
    let params = CertificateRevocationListParams {
        this_update: to_offset(this_update)?,
        next_update: to_offset(next_update)?,
        crl_number: SerialNumber::from_slice(
            &crl_number.to_be_bytes()[first_nonzero(&crl_number.to_be_bytes())..],
        ),
        issuing_distribution_point: None,
        revoked_certs: revoked_params,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca.issuer)?;
    let der = crl.der().to_vec();
    crate::store::wait(store.record_crl(ca.record.id, crl_number, &der, this_update, next_update))?;
    Ok(IssuedCrl {
        ca_name: ca.record.name.clone(),
        crl_number,
        this_update,
        next_update,
        revoked: revoked.len(),
        pem: to_pem("X509 CRL", &der),
        der,
    })
}

/// Re-sign the local CRL when none exists or more than half of its validity has passed; the
/// gate calls this periodically so its own CRL never goes stale. `None` when no local CA exists
/// or the stored CRL is fresh.
pub fn refresh_crl_if_due(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Option<IssuedCrl>, PkiError> {
    let Some(ca) = crate::store::wait(store.issuing_ca())? else {
        return Ok(None);
    };
    let due = match (ca.crl_this_update, ca.crl_next_update, &ca.crl_der) {
        (Some(this), Some(next), Some(_)) => now >= this + (next - this) / 2,
        _ => true,
    };
    if due {
        issue_crl(store, now).map(Some)
    } else {
        Ok(None)
    }
}

/// Index of the first non-zero byte (keeps at least one byte).
fn first_nonzero(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::KeyAlgorithm;
    use crate::pki::ca::{CaInitOptions, init_ca};
    use crate::pki::issue::{ClientCertRequest, issue_client_cert};

    #[test]
    fn crl_lists_revoked_serials_and_numbers_increase() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        init_ca(
            &store,
            &CaInitOptions {
                name: "T Root CA".into(),
                key: KeyAlgorithm::EcdsaP256,
                root_key_out: None,
                now,
            },
        )
        .unwrap();
        let req = ClientCertRequest {
            common_name: "bot-1",
            csr: None,
            days: 10,
            key: KeyAlgorithm::EcdsaP256,
            now,
        };
        let a = issue_client_cert(&store, &req).unwrap();
        let _b = issue_client_cert(
            &store,
            &ClientCertRequest {
                common_name: "bot-2",
                ..req.clone()
            },
        )
        .unwrap();

        let first = issue_crl(&store, now).unwrap();
        assert_eq!((first.crl_number, first.revoked), (1, 0));
        crate::store::wait(store.revoke_cert(a.record.id, now, None)).unwrap();
        let second = issue_crl(&store, now).unwrap();
        assert_eq!((second.crl_number, second.revoked), (2, 1));

        let parsed = parse_crl("crl", &second.der).unwrap();
        assert_eq!(parsed.revoked_serials, vec![a.info.serial_hex.clone()]);
        assert_eq!(parsed.crl_number.as_deref(), Some("2"));
        assert_eq!(parsed.issuer_common_name.as_deref(), Some("T Issuing CA"));
        assert!(!parsed.is_stale(now));
        assert!(parsed.is_stale(now + Duration::days(8)));

        // The stored CRL is what the gate loads.
        let bundle = crate::store::wait(store.trust_bundle("T Root CA")).unwrap();
        assert_eq!(bundle.crls.len(), 1);
        assert_eq!(bundle.crls[0].as_ref(), second.der.as_slice());

        assert!(refresh_crl_if_due(&store, now).unwrap().is_none());
        assert_eq!(
            refresh_crl_if_due(&store, now + Duration::days(4))
                .unwrap()
                .unwrap()
                .crl_number,
            3
        );

        // rustls' verifier refuses the revoked cert with this CRL and accepts the other one.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(bundle.anchors[0].clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .with_crls(vec![rustls_pki_types::CertificateRevocationListDer::from(
            second.der.clone(),
        )])
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .unwrap();
        let chain = |pem: &str| -> Vec<rustls_pki_types::CertificateDer<'static>> {
            crate::pki::certificates("c", pem.as_bytes())
                .unwrap()
                .into_iter()
                .map(|c| c.der.into())
                .collect()
        };
        let ca_chain = chain(&a.chain_pem);
        let err = verifier
            .verify_client_cert(
                &ca_chain[0],
                &ca_chain[1..],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
        let ok_chain = chain(&_b.chain_pem);
        verifier
            .verify_client_cert(
                &ok_chain[0],
                &ok_chain[1..],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
    }

    #[test]
    fn crl_file_must_be_a_crl() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, to_pem("PRIVATE KEY", &[0x30, 0x00])).unwrap();
        let err = load_crl_file(&p).unwrap_err();
        assert!(
            err.to_string()
                .contains("this is a private key, not a certificate revocation list"),
            "{err}"
        );
    }
}
