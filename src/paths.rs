//! Where things live: the state dir and the policy file, from flags, env or platform defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::GlobalArgs;

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

    /// A path from the policy file: relative ones are under the state dir.
    pub fn in_state_dir(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.state_dir.join(p)
        }
    }
}
