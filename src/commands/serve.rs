//! `botgate serve`: the headless gate.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::audit::AuditBus;
use crate::clock::SystemClock;
use crate::exit::Failure;
use crate::gate::{self, GateOptions};
use crate::paths::Paths;
use crate::store::Store;

pub fn run(paths: &Paths, args: crate::cli::ServeArgs) -> Result<()> {
    if args.console {
        return Err(Failure::refused(
            "serve --console is not available in this build yet; run `botgate console` in another terminal",
        ));
    }
    let file = load_policy(paths)?;
    let policies = crate::policy::compile(&file)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", paths.config.display())))?;
    let opts = GateOptions::from_file(&file, &paths.state_dir)
        .map_err(|e| Failure::bad_input(format!("{}: [gate] {e}", paths.config.display())))?;
    let store = Arc::new(Store::open(&paths.state_dir)?);
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let running = gate::start(
            opts.clone(),
            policies,
            store,
            AuditBus::default(),
            Arc::new(SystemClock),
            None,
        )
        .await?;
        eprintln!(
            "botgate gate listening on http://{} (audit log {})",
            running.addr,
            opts.audit_log.display()
        );
        eprintln!(
            "policy file {}; press Ctrl-C to stop",
            paths.config.display()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        eprintln!("stopping: finishing in-flight requests and flushing the audit log");
        running.shutdown().await;
        Ok(())
    })
}

fn load_policy(paths: &Paths) -> Result<crate::config::PolicyFile> {
    let path = &paths.config;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(format!("cannot read the policy file {}: {e}. Start from assets/example-policy.toml and pass --config FILE", path.display()))
    })?;
    toml::from_str(&text).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
}
