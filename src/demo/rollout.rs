//! The demo's deployment pipeline: when a rotation writes a new credential (a token's secret
//! file in the secrets dir, a certificate pair in `<state>/rotations/`), roll it out to the bots
//! by rewriting their credential file. Bots that re-read their file switch; the straggler does
//! not, which is what the rotation's rollout evidence is there to show.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::credentials::{CredentialFile, read_credential_file, write_credential_file};
use crate::rotation::RotationState;
use crate::store::Store;

/// How often the pipeline looks for new credentials.
pub const POLL: Duration = Duration::from_millis(500);

/// Watch `secrets_dir` and `rotations_dir` and rewrite the matching entries of `bot_files`
/// (credential name → bot credential file). Runs until aborted.
pub async fn run(
    store: Arc<Store>,
    secrets_dir: PathBuf,
    rotations_dir: PathBuf,
    bot_files: BTreeMap<String, PathBuf>,
) {
    let mut done: HashSet<PathBuf> = HashSet::new();
    loop {
        tokio::time::sleep(POLL).await;
        let (st, s, r, b) = (
            store.clone(),
            secrets_dir.clone(),
            rotations_dir.clone(),
            bot_files.clone(),
        );
        let seen = done.clone();
        let pass = move || {
            // Like a real pipeline, deploy a new credential only once policies admit it.
            let admitted = admitted_credentials(&st);
            roll_out(&s, &r, &b, &seen, &admitted)
        };
        if let Ok(new) = tokio::task::spawn_blocking(pass).await {
            done.extend(new);
        }
    }
}

/// Names of new credentials whose rotation is past `created` (tokens by name, certs by CN).
fn admitted_credentials(store: &Store) -> HashSet<String> {
    let rotations = crate::rotation::list(store).unwrap_or_default();
    rotations
        .into_iter()
        .filter(|r| !matches!(r.state, RotationState::Created | RotationState::Aborted))
        .filter_map(|r| r.new.map(|n| n.name))
        .collect()
}

/// One pass; returns the source files handled.
fn roll_out(
    secrets_dir: &Path,
    rotations_dir: &Path,
    bot_files: &BTreeMap<String, PathBuf>,
    done: &HashSet<PathBuf>,
    admitted: &HashSet<String>,
) -> Vec<PathBuf> {
    let mut handled = Vec::new();
    for path in json_files(secrets_dir)
        .into_iter()
        .filter(|p| !done.contains(p))
    {
        // `<old>-vN.json` (or `<old>-vN.<unix>.json`) holds the new token of `<old>`'s rotation.
        let Ok(cred @ CredentialFile::Token { .. }) = read_credential_file(&path) else {
            continue;
        };
        if !admitted.contains(cred.name()) {
            continue;
        }
        let Some(target) = base_name(cred.name()).and_then(|old| bot_files.get(old)) else {
            continue;
        };
        if write_credential_file(target, &cred).is_ok() {
            tracing::info!(new = cred.name(), file = %target.display(), "demo pipeline rolled out a new token");
            handled.push(path);
        }
    }
    for crt in files_with_ext(rotations_dir, "crt")
        .into_iter()
        .filter(|p| !done.contains(p))
    {
        // `<CN>.<rotation id>.crt` + `.key`: the new certificate of `<CN>`'s rotation.
        let stem = crt
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('.'));
        let Some(cn) = stem.map(|(cn, _)| cn.to_string()) else {
            continue;
        };
        let key = crt.with_extension("key");
        let Some(target) = bot_files.get(&cn) else {
            continue;
        };
        if !key.exists() || !admitted.contains(&cn) {
            continue;
        }
        let cred = CredentialFile::Cert {
            name: cn,
            cert_file: crt.clone(),
            key_file: key,
        };
        if write_credential_file(target, &cred).is_ok() {
            handled.push(crt);
        }
    }
    handled
}

/// `ci-deploy-prod-v2` → `ci-deploy-prod`.
fn base_name(name: &str) -> Option<&str> {
    let (base, v) = name.rsplit_once("-v")?;
    v.bytes().all(|b| b.is_ascii_digit()).then_some(base)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "json")
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_suffix_names_the_old_credential() {
        assert_eq!(base_name("ci-deploy-prod-v2"), Some("ci-deploy-prod"));
        assert_eq!(base_name("ci-deploy-prod-v12"), Some("ci-deploy-prod"));
        assert_eq!(base_name("ci-deploy-prod"), None);
        assert_eq!(base_name("x-vx"), None);
    }

    #[test]
    fn a_new_token_file_is_rolled_out_once() {
        let dir = tempfile::tempdir().unwrap();
        let (secrets, rotations) = (dir.path().join("secrets"), dir.path().join("rotations"));
        std::fs::create_dir_all(&secrets).unwrap();
        let bot = dir.path().join("ci-deploy-prod.json");
        let new = CredentialFile::Token {
            name: "ci-deploy-prod-v2".into(),
            client_id: "id".into(),
            client_secret: "s".into(),
            expires_at: None,
        };
        write_credential_file(&secrets.join("ci-deploy-prod-v2.json"), &new).unwrap();
        let files = BTreeMap::from([("ci-deploy-prod".to_string(), bot.clone())]);
        let (none, nobody): (HashSet<PathBuf>, HashSet<String>) = (HashSet::new(), HashSet::new());
        assert!(
            roll_out(&secrets, &rotations, &files, &none, &nobody).is_empty(),
            "not before policies admit it"
        );
        let admitted = HashSet::from(["ci-deploy-prod-v2".to_string()]);
        let handled = roll_out(&secrets, &rotations, &files, &none, &admitted);
        assert_eq!(handled.len(), 1);
        assert_eq!(
            read_credential_file(&bot).unwrap().name(),
            "ci-deploy-prod-v2"
        );
        assert!(
            roll_out(
                &secrets,
                &rotations,
                &files,
                &handled.into_iter().collect(),
                &admitted
            )
            .is_empty()
        );
    }
}
