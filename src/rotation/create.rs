//! Step 1, create: the replacement credential. Tokens get the next version name
//! (`ci-deploy-prod` → `ci-deploy-prod-v2` → `-v3`) and the old token's original lifetime,
//! capped at one year; certificates get a new certificate for the same CN (or the new CN asked
//! for) from botgate's issuing CA, and when that is not the CA that issued the old one, the new chain must already be
//! trusted by every app whose policies admit the old certificate (checked, not assumed).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use super::{PolicyRef, RotationError};
use crate::credential::{ClientId, ClientSecret};
use crate::pki::issue::MAX_CLIENT_DAYS;
use crate::pki::{ClientCertRequest, IssuedCert, IssuingCa, KeyAlgorithm};
use crate::policy::PolicySet;
use crate::store::pki::CertRecord;
use crate::store::{NewToken, Store, TokenRecord};

/// Longest lifetime a rotated token gets (the one-year rule of `token create`).
pub use crate::store::tokens::MAX_TOKEN_LIFETIME;
/// Longest lifetime a rotated certificate gets.
pub const MAX_CERT_DAYS: u32 = 365;

/// The next version of a credential name: `x` → `x-v2`, `x-v2` → `x-v3`.
pub fn next_version_name(name: &str) -> String {
    if let Some((base, v)) = name.rsplit_once("-v")
        && !base.is_empty()
        && !v.starts_with('0')
        && let Ok(n) = v.parse::<u32>()
    {
        return format!("{base}-v{}", n.saturating_add(1));
    }
    format!("{name}-v2")
}

/// Create the replacement token: the next free version name, the old lifetime capped at a year.
pub(crate) fn create_token(
    store: &Store,
    old: &TokenRecord,
    now: DateTime<Utc>,
) -> Result<(TokenRecord, ClientSecret), RotationError> {
    let mut name = next_version_name(&old.name);
    // Skip versions that a live token holds already (e.g. made by hand).
    for _ in 0..100 {
        match crate::store::wait(store.find_token(&name)) {
            Ok(t) if t.revoked_at.is_none() => name = next_version_name(&name),
            _ => break,
        }
    }
    crate::credential::validate_token_name(&name).map_err(|e| {
        RotationError::BadInput(format!(
            "the replacement for {:?} would be named {name:?}: {e}",
            old.name
        ))
    })?;
    let original = old.expires_at - old.created_at;
    let lifetime = if original > Duration::zero() {
        original.min(MAX_TOKEN_LIFETIME)
    } else {
        MAX_TOKEN_LIFETIME
    };
    let client_id = ClientId::generate();
    let secret = ClientSecret::generate();
    let rec = crate::store::wait(store.create_token(&NewToken {
        name: &name,
        client_id: &client_id,
        secret_hash: secret.hash(),
        created_at: now,
        expires_at: now + lifetime,
        // The successor is bound as its predecessor was (the bound travels with the credential).
        bounds: old.bounds.clone(),
    }))?;
    Ok((rec, secret))
}

/// The secret file, the same object `token create --secret-out` writes (contract).
#[derive(Serialize)]
struct SecretFile<'a> {
    name: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    expires_at: String,
}

/// Write the new token's secret JSON to `path`: created new, mode 0600, never readable by
/// others even briefly.
pub(crate) fn write_secret_file(
    path: &Path,
    rec: &TokenRecord,
    secret: &ClientSecret,
) -> Result<(), RotationError> {
    let body = SecretFile {
        name: &rec.name,
        client_id: &rec.client_id,
        client_secret: secret.expose(),
        expires_at: rec.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    bytes.push(b'\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|source| RotationError::Io {
            action: "write the new secret to",
            path: path.to_path_buf(),
            source,
        })
}

/// A file the step will create must not exist (it may hold another secret) and its directory must.
pub(crate) fn check_new_path(path: &Path, what: &str) -> Result<(), RotationError> {
    if path.exists() {
        return Err(RotationError::BadInput(format!(
            "{what} {} already exists; refusing to overwrite a file that may hold another secret",
            path.display()
        )));
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => {
            Err(RotationError::BadInput(format!(
                "{what} {}: directory {} does not exist",
                path.display(),
                p.display()
            )))
        }
        _ => Ok(()),
    }
}

/// The one live certificate `query` (CN, serial or fingerprint) names.
pub(crate) fn find_old_cert(store: &Store, query: &str) -> Result<CertRecord, RotationError> {
    let all = crate::store::wait(store.find_certs(query))?;
    if all.is_empty() {
        return Err(RotationError::NotFound(format!(
            "no certificate with CN, serial or fingerprint {query:?} in the inventory (see `botgate cert list`)"
        )));
    }
    let live: Vec<CertRecord> = all.into_iter().filter(|c| c.revoked_at.is_none()).collect();
    match live.as_slice() {
        [] => Err(RotationError::Conflict(format!(
            "every certificate matching {query:?} is revoked already; nothing to rotate"
        ))),
        [one] => Ok(one.clone()),
        many => Err(RotationError::Conflict(format!(
            "{} live certificates match {query:?} (serials {}); pass the serial of the one to rotate",
            many.len(),
            many.iter()
                .map(|c| c.serial.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// When the issuing CA differs from the old certificate's, every app whose policies admit the
/// old certificate must trust the new chain before anything is issued.
pub(crate) fn check_new_chain_trusted(
    store: &Store,
    set: &PolicySet,
    old: &CertRecord,
    admitting: &[PolicyRef],
    issuing: &IssuingCa,
) -> Result<Vec<String>, RotationError> {
    let mut notes = Vec::new();
    if old.ca_id == Some(issuing.record.id) {
        return Ok(notes);
    }
    notes.push(format!(
        "the old certificate was not issued by {:?}, which issues the new one; checked that the apps trust it",
        issuing.record.name
    ));
    let chain: Vec<&[u8]> = issuing.chain.iter().map(|c| c.as_ref()).collect();
    match apps_trust_chain(store, set, admitting, &chain, &mut notes) {
        Ok(_) => Ok(notes),
        Err(app) => Err(RotationError::Conflict(format!(
            "the new certificate would be issued by {:?}, but app {:?} trusts only {:?}: its clients' new certificate would fail the TLS handshake. Add the CA to the app's trusted_cas first (see `botgate ca list`), then start the rotation again",
            issuing.record.name, app.name, app.trusted_cas
        ))),
    }
}

/// Whether every app whose policies are in `admitting` trusts a certificate chaining to `chain`
/// (DER, leaf's issuer first) through one of its `trusted_cas`. Apps that ask for no client
/// certificate get a note. Returns the apps checked, or the first app that does not trust it.
pub(crate) fn apps_trust_chain<'a>(
    store: &Store,
    set: &'a PolicySet,
    admitting: &[PolicyRef],
    chain: &[&[u8]],
    notes: &mut Vec<String>,
) -> Result<Vec<&'a str>, &'a crate::policy::CompiledApp> {
    let mut apps: Vec<&str> = admitting.iter().map(|p| p.app.as_str()).collect();
    apps.dedup();
    let mut checked = Vec::new();
    for app in set.apps.iter().filter(|a| apps.contains(&a.name.as_str())) {
        if app.trusted_cas.is_empty() {
            notes.push(format!(
                "app {:?} has no trusted_cas, so the gate does not ask its clients for certificates",
                app.name
            ));
            continue;
        }
        let trusted = app.trusted_cas.iter().any(|name| {
            crate::store::wait(store.trust_bundle(name))
                .is_ok_and(|b| b.anchors.iter().any(|a| chain.contains(&a.as_ref())))
        });
        if !trusted {
            return Err(app);
        }
        checked.push(app.name.as_str());
    }
    Ok(checked)
}

/// Issue the replacement certificate for `cn` (the old CN, or the new one asked for) and write
/// `<out>/<CN>.<rotation id>.crt` (chain) and `.key` (0600). Returns the issued certificate,
/// the files and notes.
pub(crate) fn issue_cert(
    store: &Store,
    old: &CertRecord,
    cn: &str,
    out_dir: &Path,
    rotation_id: &str,
    now: DateTime<Utc>,
) -> Result<(IssuedCert, Vec<PathBuf>, Vec<String>), RotationError> {
    let mut notes = Vec::new();
    let stem: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let crt = out_dir.join(format!("{stem}.{rotation_id}.crt"));
    let key = out_dir.join(format!("{stem}.{rotation_id}.key"));
    check_new_path(&crt, "certificate file")?;
    check_new_path(&key, "key file")?;
    let original_days = (old.not_after - old.not_before).num_days();
    let days = u32::try_from(original_days.max(1))
        .unwrap_or(MAX_CERT_DAYS)
        .min(MAX_CERT_DAYS)
        .min(MAX_CLIENT_DAYS);
    if original_days > i64::from(MAX_CERT_DAYS) {
        notes.push(format!(
            "the old certificate was valid for {original_days} days; the new one is capped at {MAX_CERT_DAYS}"
        ));
    }
    let key_alg = match old.key_type.as_str() {
        "RSA 2048" => KeyAlgorithm::Rsa2048,
        "RSA 4096" => KeyAlgorithm::Rsa4096,
        "ECDSA P-256" => KeyAlgorithm::EcdsaP256,
        other => {
            notes.push(format!(
                "the old key type {other:?} is not one botgate generates; the new key is ECDSA P-256"
            ));
            KeyAlgorithm::EcdsaP256
        }
    };
    let issued = crate::pki::issue_client_cert(
        store,
        &ClientCertRequest {
            common_name: cn,
            csr: None,
            days,
            key: key_alg,
            now,
        },
    )?;
    crate::pki::ca::write_private_file(&crt, issued.chain_pem.as_bytes())?;
    if let Some(pem) = &issued.key_pem {
        crate::pki::ca::write_private_file(&key, pem.as_bytes())?;
    }
    Ok((issued, vec![crt, key], notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        assert_eq!(next_version_name("ci-deploy-prod"), "ci-deploy-prod-v2");
        assert_eq!(next_version_name("ci-deploy-prod-v2"), "ci-deploy-prod-v3");
        assert_eq!(next_version_name("ci-deploy-prod-v9"), "ci-deploy-prod-v10");
        assert_eq!(next_version_name("ci-deploy-prod-v1"), "ci-deploy-prod-v2");
        // Not a version suffix: a new one is appended.
        assert_eq!(next_version_name("ops-dev-vault"), "ops-dev-vault-v2");
        assert_eq!(next_version_name("x-v02"), "x-v02-v2");
        assert_eq!(next_version_name("-v3"), "-v3-v2");
    }

    #[test]
    fn rotated_token_keeps_the_lifetime_capped_at_a_year_and_skips_taken_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let mk = |name: &str, days: i64| {
            crate::store::wait(store.create_token(&NewToken {
                name,
                client_id: &ClientId::generate(),
                secret_hash: ClientSecret::generate().hash(),
                created_at: now,
                expires_at: now + Duration::days(days),
                bounds: Default::default(),
            }))
            .unwrap()
        };
        let old = mk("ci-deploy-prod", 30);
        mk("ci-deploy-prod-v2", 10);
        let (new, _) = create_token(&store, &old, now).unwrap();
        assert_eq!(new.name, "ci-deploy-prod-v3");
        assert_eq!(new.expires_at - new.created_at, Duration::days(30));
        let long = mk("ops-backup-prod", 900);
        let (new, _) = create_token(&store, &long, now).unwrap();
        assert_eq!(new.expires_at - new.created_at, Duration::days(365));
    }

    #[test]
    fn secret_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let old = crate::store::wait(store.create_token(&NewToken {
            name: "a-b-c",
            client_id: &ClientId::generate(),
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + Duration::days(1),
            bounds: Default::default(),
        }))
        .unwrap();
        let (rec, secret) = create_token(&store, &old, now).unwrap();
        let path = dir.path().join("new.json");
        check_new_path(&path, "--secret-out").unwrap();
        write_secret_file(&path, &rec, &secret).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["client_secret"], secret.expose());
        assert_eq!(v["name"], "a-b-c-v2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(check_new_path(&path, "--secret-out").is_err());
        assert!(write_secret_file(&path, &rec, &secret).is_err());
    }
}
