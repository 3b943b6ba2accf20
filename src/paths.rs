//! Where things live: the state dir and the policy file, from flags, env or platform defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::GlobalArgs;
use crate::store::{Store, StoreLocation};

/// The environment variable that names the store when the policy file does not.
pub const STORE_URL_ENV: &str = "BOTGATE_STORE_URL";

/// Resolved locations for one invocation.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    pub config: PathBuf,
}

impl Paths {
    /// From `--state-dir` / `--config` (or their env vars), else the platform dirs.
    pub fn resolve(global: &GlobalArgs) -> Result<Self> {
        let dirs = || {
            directories::ProjectDirs::from("dev", "botgate", "botgate").context(
                "cannot determine the platform data dir (no HOME?); pass --state-dir and --config",
            )
        };
        let state_dir = match &global.state_dir {
            Some(d) => d.clone(),
            None => dirs()?.data_dir().to_path_buf(),
        };
        let config = match &global.config {
            Some(c) => c.clone(),
            None => dirs()?.config_dir().join("policy.toml"),
        };
        Ok(Self { state_dir, config })
    }

    /// The audit log: `[gate] audit_log` from the policy file when it loads, else the default,
    /// relative to the state dir.
    pub fn audit_log(&self) -> PathBuf {
        let configured = crate::config::load(&self.config)
            .ok()
            .map(|c| c.file.gate.audit_log);
        self.in_state_dir(
            &configured.unwrap_or_else(|| crate::config::GateSection::default().audit_log),
        )
    }

    /// Which store to use: `[store] url` in the policy file, else `BOTGATE_STORE_URL`, else
    /// the embedded SQLite store. Read from the file's TOML alone, so a policy with other
    /// errors still names its store (and never silently falls back to SQLite).
    pub fn store_location(&self) -> Result<StoreLocation> {
        let text = match std::fs::read_to_string(&self.config) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => bail!("cannot read {}: {e}", self.config.display()),
        };
        if let Some(text) = text {
            let url = match text.parse::<toml::Table>() {
                Ok(table) => match table.get("store").and_then(|s| s.get("url")) {
                    Some(toml::Value::String(url)) => Some(url.clone()),
                    Some(_) => bail!(
                        "{}: [store] url must be a string like \"postgres://USER@HOST:PORT/DB\"",
                        self.config.display()
                    ),
                    None => None,
                },
                Err(e) if text.contains("[store]") => bail!(
                    "cannot read [store] from {} (fix the file, see `botgate policy check`): {e}",
                    self.config.display()
                ),
                Err(_) => None,
            };
            if let Some(url) = url {
                let url = crate::config::resolve_store_url(&url)
                    .map_err(|e| anyhow!("{}: {e}", self.config.display()))?;
                return Ok(StoreLocation::Url(url));
            }
        }
        match std::env::var(STORE_URL_ENV) {
            Ok(url) if !url.is_empty() => Ok(StoreLocation::Url(url)),
            _ => Ok(StoreLocation::Embedded),
        }
    }

    /// Whether the store exists without creating it: a URL names a server that does; the
    /// embedded store exists once its file does.
    pub fn store_exists(&self) -> Result<bool> {
        Ok(match self.store_location()? {
            StoreLocation::Url(_) => true,
            StoreLocation::Embedded => self.state_dir.join(crate::store::STORE_FILE).exists(),
        })
    }

    /// The store for messages: the SQLite file, or the URL without its password.
    pub fn store_name(&self) -> String {
        match self.store_location() {
            Ok(location) => location.describe(&self.state_dir),
            Err(_) => StoreLocation::Embedded.describe(&self.state_dir),
        }
    }

    /// Open the store this invocation uses (see `store_location`).
    pub fn open_store(&self) -> Result<Store> {
        let location = self.store_location()?;
        Ok(Store::open_at(&location, &self.state_dir)?)
    }

    /// A path from the policy file: relative ones are under the state dir.
    pub fn in_state_dir(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.state_dir.join(p)
        }
    }
}
