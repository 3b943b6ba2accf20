//! `botgate serve`: the gate process (plain, TLS and admin listeners, policy hot reload: the
//! one `Runtime`), headless or with the console in process (`--console`).

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::{ConfigError, LoadedConfig};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::runtime::{ReloadReport, Runtime, RuntimeError, RuntimeOptions};

pub fn run(paths: &Paths, args: crate::cli::ServeArgs) -> Result<()> {
    if args.console {
        super::console::InProcessConsole::require_terminal(
            "run `botgate serve` without --console, and `botgate console` in a terminal",
        )?;
    }
    let loaded = load_config(paths)?;
    let store = Arc::new(paths.open_store()?);
    let mut opts = RuntimeOptions::new(&paths.config, &paths.state_dir);
    // One single-threaded accept runtime per CPU (SO_REUSEPORT): a connection stays on one thread.
    opts.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.console {
        opts.report = ReloadReport::Console;
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let runtime = Runtime::start(&loaded, store, opts)
            .await
            .map_err(runtime_error)?;
        let gate = &runtime.gate;
        eprintln!(
            "botgate gate listening on http://{} (audit log {})",
            gate.addr,
            gate.audit_log().display()
        );
        if let Some(a) = gate.tls_addr {
            eprintln!("TLS listener on https://{a} (client certificates requested, optional)");
        }
        if let Some(a) = gate.admin_addr {
            eprintln!("admin endpoints on http://{a}/healthz /metrics /events");
        }
        // logrotate's postrotate (`kill -HUP`, or -USR1) makes the writer reopen the audit log.
        let hangup = !args.console;
        let _reopen = crate::audit::ReopenOnSignals::start(gate.audit_reopen_handle(), hangup)
            .context("cannot listen for SIGHUP/SIGUSR1")?;
        eprintln!(
            "policy file {} (hot reload on change); press Ctrl-C to stop",
            paths.config.display()
        );
        // With --console the console owns the terminal until the user quits.
        let mut console = match args.console {
            true => Some(super::console::InProcessConsole::start(
                super::console::InProcessSetup {
                    runtime: &runtime,
                    source: "serve · in-process bus",
                    theme: std::env::var("BOTGATE_THEME").ok(),
                    read_only: false,
                    quiet_period: crate::rotation::DEFAULT_QUIET_PERIOD,
                    extra_endpoints: Vec::new(),
                },
            )?),
            false => None,
        };
        let console_done = async {
            match console.as_mut() {
                Some(c) => (&mut c.run).await,
                None => std::future::pending().await,
            }
        };
        // SIGTERM (systemd, Kubernetes, a load balancer's drain) stops as Ctrl-C does.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot wait for SIGTERM")?;
        // A SIGHUP handler (reopen the audit log, as nginx does) joins this select.
        let stopped = tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
            r = console_done => r.map_err(anyhow::Error::from),
        };
        if let Some(c) = console {
            c.stop();
        }
        eprintln!("stopping: finishing in-flight requests and flushing the audit log");
        runtime.stop().await;
        stopped
    })
}

/// Start-up failures at the CLI edge: the configuration's fault exits 2, the rest 1.
pub(crate) fn runtime_error(e: RuntimeError) -> anyhow::Error {
    match e {
        RuntimeError::BadInput(m) => Failure::bad_input(m),
        RuntimeError::Refused(m) => Failure::refused(m),
        other => anyhow::Error::new(other),
    }
}

/// Load and validate the policy file, printing warnings; errors are bad input (exit 2).
pub(crate) fn load_config(paths: &Paths) -> Result<LoadedConfig> {
    match crate::config::load(&paths.config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded)
        }
        Err(e) => Err(config_error(e)),
    }
}

/// Every finding of a rejected policy file, as one bad-input error.
pub(crate) fn config_error(e: ConfigError) -> anyhow::Error {
    Failure::bad_input(crate::runtime::describe_rejection(&e))
}
