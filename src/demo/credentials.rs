//! Bot credential files: one small JSON file per credential in the demo state dir (`creds/`),
//! which bots read and re-read when it changes, so a rotation can hand bots a new credential by
//! writing a file. A token file is the same object `botgate token create --json` prints (and
//! `--secret-out` writes); a cert file names PEM files. Straggler bots keep their first copy.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};

/// How often a re-reading bot looks at its file (a stat, not a read, unless it changed).
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// The content of a credential file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CredentialFile {
    /// A service token: `{"name","client_id","client_secret","expires_at"}`.
    Token {
        name: String,
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
    },
    /// A client certificate: PEM files, relative paths resolved against the file's directory.
    Cert {
        name: String,
        cert_file: PathBuf,
        key_file: PathBuf,
    },
}

impl CredentialFile {
    /// The credential's name (token name or certificate CN).
    pub fn name(&self) -> &str {
        match self {
            CredentialFile::Token { name, .. } | CredentialFile::Cert { name, .. } => name,
        }
    }
}

impl fmt::Debug for CredentialFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        match self {
            CredentialFile::Token {
                name, client_id, ..
            } => f
                .debug_struct("Token")
                .field("name", name)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            CredentialFile::Cert {
                name,
                cert_file,
                key_file,
            } => f
                .debug_struct("Cert")
                .field("name", name)
                .field("cert_file", cert_file)
                .field("key_file", key_file)
                .finish(),
        }
    }
}

/// A credential file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialFileError {
    #[error("cannot read the credential file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the credential file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "credential file {path} is not a token or cert credential object: {message} (expected {{\"name\",\"client_id\",\"client_secret\"}} or {{\"name\",\"cert_file\",\"key_file\"}})"
    )]
    Parse { path: PathBuf, message: String },
    #[error("credential file {path}: {message}")]
    Unusable { path: PathBuf, message: String },
}

/// Write a credential file atomically (temp file + rename, mode 0600), so a bot never reads
/// half a file.
pub fn write_credential_file(
    path: &Path,
    cred: &CredentialFile,
) -> Result<(), CredentialFileError> {
    let err = |source| CredentialFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec_pretty(cred).map_err(|e| err(std::io::Error::other(e)))?;
    crate::atomic_file::write(path, &json).map_err(err)
}

/// Read and parse a credential file.
pub fn read_credential_file(path: &Path) -> Result<CredentialFile, CredentialFileError> {
    let bytes = crate::input::read(path, crate::input::PKI_FILE).map_err(|source| {
        CredentialFileError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CredentialFileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A credential ready for requests.
#[derive(Clone)]
pub enum LoadedCredential {
    /// Header values for `CF-Access-Client-Id` / `CF-Access-Client-Secret` (marked sensitive).
    Token {
        name: String,
        client_id: HeaderValue,
        client_secret: HeaderValue,
    },
    /// A client identity for HTTPS.
    Cert {
        name: String,
        identity: reqwest::Identity,
    },
}

impl LoadedCredential {
    /// Turn a parsed file into request material; `base` resolves relative PEM paths.
    pub fn load(file: &CredentialFile, path: &Path) -> Result<Self, CredentialFileError> {
        let unusable = |message: String| CredentialFileError::Unusable {
            path: path.to_path_buf(),
            message,
        };
        match file {
            CredentialFile::Token {
                name,
                client_id,
                client_secret,
                ..
            } => {
                let id = HeaderValue::from_str(client_id)
                    .map_err(|_| unusable("client_id is not a valid header value".into()))?;
                let mut secret = HeaderValue::from_str(client_secret)
                    .map_err(|_| unusable("client_secret is not a valid header value".into()))?;
                secret.set_sensitive(true);
                Ok(Self::Token {
                    name: name.clone(),
                    client_id: id,
                    client_secret: secret,
                })
            }
            CredentialFile::Cert {
                name,
                cert_file,
                key_file,
            } => {
                let base = path.parent().unwrap_or(Path::new("."));
                let read = |p: &Path| {
                    let p = base.join(p);
                    crate::input::read(&p, crate::input::PKI_FILE)
                        .map_err(|source| CredentialFileError::Read { path: p, source })
                };
                let mut pem = read(cert_file)?;
                pem.push(b'\n');
                pem.extend(read(key_file)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    unusable(format!(
                        "cert_file/key_file are not a PEM certificate + key: {e}"
                    ))
                })?;
                Ok(Self::Cert {
                    name: name.clone(),
                    identity,
                })
            }
        }
    }

    /// The credential's name.
    pub fn name(&self) -> &str {
        match self {
            LoadedCredential::Token { name, .. } | LoadedCredential::Cert { name, .. } => name,
        }
    }
}

impl fmt::Debug for LoadedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCredential")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// What identifies one version of a file cheaply (a new rename changes the inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

/// One bot's view of its credential file.
#[derive(Debug)]
pub struct CredentialWatch {
    path: PathBuf,
    reread: bool,
    stamp: Option<FileStamp>,
    current: Option<Arc<LoadedCredential>>,
    /// Bumped each time a new version is loaded (bots rebuild TLS clients on change).
    generation: u64,
    next_check: Instant,
}

impl CredentialWatch {
    /// Watch `path`; `reread = false` is a straggler that keeps the first copy it loads.
    pub fn new(path: PathBuf, reread: bool) -> Self {
        Self {
            path,
            reread,
            stamp: None,
            current: None,
            generation: 0,
            next_check: Instant::now(),
        }
    }

    /// The file being watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential to use now and its generation. Loads on first use; a re-reading bot
    /// picks up a changed file within `RECHECK_EVERY`. A file that cannot be used keeps the
    /// previous credential (a half-edited file is not a reason to stop).
    pub fn current(&mut self) -> Option<(u64, Arc<LoadedCredential>)> {
        let due = Instant::now() >= self.next_check;
        if due && (self.current.is_none() || self.reread) {
            self.next_check = Instant::now() + RECHECK_EVERY;
            let now = stamp(&self.path);
            if now.is_some() && now != self.stamp {
                match read_credential_file(&self.path)
                    .and_then(|f| LoadedCredential::load(&f, &self.path))
                {
                    Ok(loaded) => {
                        self.stamp = now;
                        self.current = Some(Arc::new(loaded));
                        self.generation += 1;
                    }
                    Err(e) => tracing::debug!(error = %e, "keeping the previous credential"),
                }
            }
        }
        self.current.clone().map(|c| (self.generation, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str) -> CredentialFile {
        CredentialFile::Token {
            name: name.into(),
            client_id: "0123456789abcdef0123456789abcdef.access".into(),
            client_secret: secret.into(),
            expires_at: None,
        }
    }

    fn secret_of(c: &LoadedCredential) -> String {
        match c {
            LoadedCredential::Token { client_secret, .. } => {
                client_secret.to_str().unwrap().to_string()
            }
            LoadedCredential::Cert { .. } => panic!("not a token"),
        }
    }

    #[test]
    fn rereading_bot_picks_up_a_rewritten_file_and_straggler_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ci-deploy-prod.json");
        write_credential_file(&path, &token("ci-deploy-prod", "bgs_old")).unwrap();
        let mut fresh = CredentialWatch::new(path.clone(), true);
        let mut straggler = CredentialWatch::new(path.clone(), false);
        let (g1, c) = fresh.current().unwrap();
        assert_eq!(secret_of(&c), "bgs_old");
        assert_eq!(secret_of(&straggler.current().unwrap().1), "bgs_old");

        write_credential_file(&path, &token("ci-deploy-prod-v2", "bgs_new")).unwrap();
        fresh.next_check = Instant::now();
        straggler.next_check = Instant::now();
        let (g2, c) = fresh.current().unwrap();
        assert!(g2 > g1);
        assert_eq!(c.name(), "ci-deploy-prod-v2");
        assert_eq!(secret_of(&c), "bgs_new");
        assert_eq!(secret_of(&straggler.current().unwrap().1), "bgs_old");
    }

    #[test]
    fn a_broken_rewrite_keeps_the_previous_credential() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_credential_file(&path, &token("a-b-c", "bgs_one")).unwrap();
        let mut w = CredentialWatch::new(path.clone(), true);
        assert_eq!(secret_of(&w.current().unwrap().1), "bgs_one");
        std::fs::write(&path, b"{\"name\": ").unwrap();
        w.next_check = Instant::now();
        assert_eq!(secret_of(&w.current().unwrap().1), "bgs_one");
    }

    #[test]
    fn token_file_is_the_token_create_json_object_and_debug_hides_the_secret() {
        let json = r#"{"name":"ci-deploy-prod","client_id":"0123456789abcdef0123456789abcdef.access","client_secret":"bgs_SECRETVALUE","expires_at":"2027-01-01T00:00:00Z"}"#;
        let f: CredentialFile = serde_json::from_str(json).unwrap();
        assert_eq!(f.name(), "ci-deploy-prod");
        assert!(!format!("{f:?}").contains("SECRETVALUE"));
        let cert: CredentialFile = serde_json::from_str(
            r#"{"name":"device-0001.factory.corp","cert_file":"d.pem","key_file":"d.key"}"#,
        )
        .unwrap();
        assert!(matches!(cert, CredentialFile::Cert { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn credential_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_credential_file(&path, &token("a-b-c", "bgs_one")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
