//! botgate's own CA: `ca init` makes a root and an intermediate (the issuing CA). The root only
//! signs the intermediate; with `--root-key-out` its key is written to a 0600 file and never
//! stored, so only the intermediate's key lives on the host and issuance keeps working.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use super::inspect::CertInfo;
use super::keys::{KeyAlgorithm, load_key_pem};
use super::{PkiError, to_offset};
use crate::store::Store;
use crate::store::pki::{CaKind, CaRecord, NewCa};

/// Root validity.
pub const ROOT_VALIDITY_DAYS: i64 = 3650;
/// Intermediate validity (capped by the root's).
pub const INTERMEDIATE_VALIDITY_DAYS: i64 = 1825;
/// Certificates start this much in the past, to tolerate clock skew between hosts.
pub const BACKDATE: Duration = Duration::hours(1);

/// What `ca init` is asked to do.
#[derive(Debug, Clone)]
pub struct CaInitOptions {
    /// Root CA name (its CN and its name in `trusted_cas`).
    pub name: String,
    pub key: KeyAlgorithm,
    /// Write the root key here (0600) and do not store it.
    pub root_key_out: Option<PathBuf>,
    pub now: DateTime<Utc>,
}

/// What `ca init` made.
#[derive(Debug, Clone)]
pub struct CaInit {
    pub root: CaRecord,
    pub intermediate: CaRecord,
    pub root_cert: CertInfo,
    pub intermediate_cert: CertInfo,
    pub root_key_written_to: Option<PathBuf>,
}

/// The issuing CA loaded from the store, ready to sign.
pub struct IssuingCa {
    pub record: CaRecord,
    pub cert: CertInfo,
    /// Issuing CA certificate first, then its parents up to the root.
    pub chain: Vec<CertificateDer<'static>>,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("name", &self.record.name)
            .field("key", &"[elided]")
            .finish()
    }
}

/// Create the root and intermediate CA and store them. Refuses when a local CA exists.
pub fn init_ca(store: &Store, opts: &CaInitOptions) -> Result<CaInit, PkiError> {
    validate_ca_name(&opts.name)?;
    if let Some(root) = crate::store::wait(store.local_root())? {
        return Err(PkiError::AlreadyInitialized(root.name));
    }
    if let Some(out) = &opts.root_key_out {
        check_new_file(out, "--root-key-out")?;
    }
    let inter_name = intermediate_name(&opts.name);
    let not_before = opts.now - BACKDATE;
    let root_not_after = opts.now + Duration::days(ROOT_VALIDITY_DAYS);

    let root_key = opts.key.generate()?;
    let root_params = ca_params(&opts.name, 1, not_before, root_not_after)?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = Issuer::new(root_params, &root_key);

    let inter_key = opts.key.generate()?;
    let inter_not_after =
        (opts.now + Duration::days(INTERMEDIATE_VALIDITY_DAYS)).min(root_not_after);
    let inter_params = ca_params(&inter_name, 0, not_before, inter_not_after)?;
    let inter_cert = inter_params.signed_by(&inter_key, &root_issuer)?;

    let root_info = CertInfo::from_der("new root CA", root_cert.der())?;
    let inter_info = CertInfo::from_der("new intermediate CA", inter_cert.der())?;
    let root_key_pem = root_key.serialize_pem();
    let inter_key_pem = inter_key.serialize_pem();

    if let Some(out) = &opts.root_key_out {
        write_private_file(out, root_key_pem.as_bytes())?;
    }
    let root_pem = root_info.to_pem();
    let inter_pem = inter_info.to_pem();
    let key_type = opts.key.label();
    let stored = crate::store::wait(store.insert_ca_chain(&[
        NewCa {
            name: &opts.name,
            kind: CaKind::Root,
            subject: &root_info.subject,
            fingerprint_sha256: &root_info.fingerprint_sha256,
            not_after: root_info.not_after,
            cert_pem: &root_pem,
            key_pem: if opts.root_key_out.is_some() {
                None
            } else {
                Some(&root_key_pem)
            },
            key_type: Some(key_type),
            crl_path: None,
            created_at: opts.now,
        },
        NewCa {
            name: &inter_name,
            kind: CaKind::Intermediate,
            subject: &inter_info.subject,
            fingerprint_sha256: &inter_info.fingerprint_sha256,
            not_after: inter_info.not_after,
            cert_pem: &inter_pem,
            key_pem: Some(&inter_key_pem),
            key_type: Some(key_type),
            crl_path: None,
            created_at: opts.now,
        },
    ]));
    let stored = match stored {
        Ok(rows) => rows,
        Err(e) => {
            // Nothing references the key we just wrote; do not leave a stray CA key behind.
            if let Some(out) = &opts.root_key_out {
                let _ = std::fs::remove_file(out);
            }
            return Err(e.into());
        }
    };
    let mut rows = stored.into_iter();
    let (Some(root), Some(intermediate)) = (rows.next(), rows.next()) else {
        return Err(PkiError::Crypto(
            "the store did not return the CA rows it inserted".into(),
        ));
    };
    Ok(CaInit {
        root,
        intermediate,
        root_cert: root_info,
        intermediate_cert: inter_info,
        root_key_written_to: opts.root_key_out.clone(),
    })
}

/// Load the issuing CA (intermediate + key) and its chain from the store.
pub fn load_issuing_ca(store: &Store) -> Result<IssuingCa, PkiError> {
    let record = crate::store::wait(store.issuing_ca())?.ok_or(PkiError::NoIssuingCa)?;
    let what = format!("stored CA {:?}", record.name);
    let cert = super::inspect::certificates(&what, record.cert_pem.as_bytes())?.remove(0);
    let key_pem = record.key_pem.as_deref().ok_or(PkiError::NoIssuingCa)?;
    let key = load_key_pem(key_pem)?;
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert.der.clone()), key)?;
    let mut chain = vec![CertificateDer::from(cert.der.clone())];
    let mut parent = record.parent_id;
    // Bounded walk: a CA chain deeper than 8 is a corrupt store, not a real hierarchy.
    for _ in 0..8 {
        let Some(id) = parent else { break };
        let ca = crate::store::wait(store.ca_by_id(id))?;
        let parent_cert = super::inspect::certificates(
            &format!("stored CA {:?}", ca.name),
            ca.cert_pem.as_bytes(),
        )?
        .remove(0);
        chain.push(CertificateDer::from(parent_cert.der));
        parent = ca.parent_id;
    }
    Ok(IssuingCa {
        record,
        cert,
        chain,
        issuer,
    })
}

/// A random, positive, 16-byte serial with a non-zero first byte (so its hex is canonical).
pub fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    rcgen::SerialNumber::from_slice(&bytes)
}

/// The intermediate's name: "X Root CA" → "X Issuing CA", else "NAME Issuing CA".
pub fn intermediate_name(root: &str) -> String {
    match root.strip_suffix("Root CA") {
        Some(prefix) if !prefix.trim().is_empty() => format!("{}Issuing CA", prefix),
        _ => format!("{root} Issuing CA"),
    }
}

fn ca_params(
    cn: &str,
    path_len: u8,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "botgate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn validate_ca_name(name: &str) -> Result<(), PkiError> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(PkiError::InvalidRequest(format!(
            "CA name {name:?} must be 1-64 printable characters (it becomes the certificate's CN)"
        )));
    }
    Ok(())
}

/// Refuse to overwrite: a path meant for a new key or certificate must not exist yet.
pub fn check_new_file(path: &Path, flag: &str) -> Result<(), PkiError> {
    if path.exists() {
        return Err(PkiError::InvalidRequest(format!(
            "{flag} {} already exists; refusing to overwrite it (it may hold another key)",
            path.display()
        )));
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => {
            Err(PkiError::InvalidRequest(format!(
                "{flag} {}: directory {} does not exist",
                path.display(),
                p.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Create `path` (must not exist) with mode 0600 and write `bytes`.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let write = |opts: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut f = opts.open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write(&opts).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, key_out: Option<PathBuf>) -> (Store, CaInitOptions) {
        let store = Store::open(&dir.join("state")).unwrap();
        (
            store,
            CaInitOptions {
                name: "botgate Root CA".into(),
                key: KeyAlgorithm::EcdsaP256,
                root_key_out: key_out,
                now: Utc::now(),
            },
        )
    }

    #[test]
    fn init_makes_root_and_intermediate() {
        let dir = tempfile::tempdir().unwrap();
        let (store, o) = opts(dir.path(), None);
        let made = init_ca(&store, &o).unwrap();
        assert_eq!(made.intermediate.name, "botgate Issuing CA");
        assert!(made.root_cert.is_ca && made.intermediate_cert.is_ca);
        assert!(made.root_cert.self_issued && !made.intermediate_cert.self_issued);
        assert_eq!(made.intermediate_cert.issuer, made.root_cert.subject);
        assert!(crate::store::wait(store.root_key_on_host()).unwrap());
        let ca = load_issuing_ca(&store).unwrap();
        assert_eq!(ca.chain.len(), 2);
        assert!(matches!(
            init_ca(&store, &o),
            Err(PkiError::AlreadyInitialized(_))
        ));
    }

    #[test]
    fn root_key_out_keeps_the_root_key_off_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("root.key");
        let (store, o) = opts(dir.path(), Some(out.clone()));
        init_ca(&store, &o).unwrap();
        assert!(!crate::store::wait(store.root_key_on_host()).unwrap());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        load_issuing_ca(&store).unwrap();
        // A second init must not overwrite the key file.
        let (_, o2) = opts(dir.path(), Some(out));
        assert!(init_ca(&Store::open(&dir.path().join("other")).unwrap(), &o2).is_err());
    }

    #[test]
    fn intermediate_names() {
        assert_eq!(intermediate_name("botgate Root CA"), "botgate Issuing CA");
        assert_eq!(intermediate_name("Acme"), "Acme Issuing CA");
        assert_eq!(intermediate_name("Root CA"), "Root CA Issuing CA");
    }
}
