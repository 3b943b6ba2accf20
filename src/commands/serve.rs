//! `botgate serve`: the headless gate (plain, TLS and admin listeners) with policy hot reload.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::audit::AuditBus;
use crate::clock::SystemClock;
use crate::config::{ConfigError, LoadedConfig};
use crate::exit::Failure;
use crate::gate::store_tls::StoreTlsSource;
use crate::gate::{self, GateOptions};
use crate::paths::Paths;
use crate::store::Store;

pub fn run(paths: &Paths, args: crate::cli::ServeArgs) -> Result<()> {
    if args.console {
        super::console::InProcessConsole::require_terminal(
            "run `botgate serve` without --console, and `botgate console` in a terminal",
        )?;
    }
    let loaded = load_config(paths)?;
    let store = Arc::new(Store::open(&paths.state_dir)?);
    let (mut opts, policies) = gate_setup(paths, &loaded, &store)?;
    // One single-threaded accept runtime per CPU (SO_REUSEPORT): a connection stays on one thread.
    opts.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = paths.config.display();
    let base = paths.config.parent().unwrap_or(std::path::Path::new("."));
    let geo = crate::services::geo_from_file(&loaded.file, base)
        .map_err(|e| Failure::bad_input(format!("{config}: {e}")))?;
    let mut service_opts = crate::services::ServiceOptions::from_file(&loaded.file)
        .map_err(|e| Failure::bad_input(format!("{config}: {e}")))?;
    service_opts.inventory_dirs = loaded
        .file
        .inventory
        .watch
        .iter()
        .map(|d| base.join(d))
        .collect();
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let bus = AuditBus::default();
        let clock: crate::clock::SharedClock = Arc::new(SystemClock);
        let (console_store, console_clock) = (store.clone(), clock.clone());
        let running = gate::start(
            opts.clone(),
            policies,
            store.clone(),
            bus.clone(),
            clock.clone(),
            geo,
        )
        .await?;
        let services =
            crate::services::start(service_opts, &running, &bus, store, clock, &paths.state_dir)
                .map_err(Failure::refused)?;
        eprintln!(
            "botgate gate listening on http://{} (audit log {})",
            running.addr,
            opts.audit_log.display()
        );
        if let Some(a) = running.tls_addr {
            eprintln!("TLS listener on https://{a} (client certificates requested, optional)");
        }
        if let Some(a) = running.admin_addr {
            eprintln!("admin endpoints on http://{a}/healthz /metrics /events");
        }
        // logrotate's postrotate (`kill -HUP`, or -USR1) makes the writer reopen the audit log.
        let hangup = !args.console;
        let _reopen = crate::audit::ReopenOnSignals::start(running.audit_reopen_handle(), hangup)
            .context("cannot listen for SIGHUP/SIGUSR1")?;
        let (tx, mut reloads) = tokio::sync::mpsc::channel(4);
        let _watch = crate::config::watch::watch(paths.config.clone(), tx)
            .map_err(|e| anyhow::anyhow!("cannot watch the policy file for changes: {e}"))?;
        eprintln!(
            "policy file {} (hot reload on change); press Ctrl-C to stop",
            paths.config.display()
        );
        // With --console the console owns the terminal until the user quits.
        let mut console = match args.console {
            true => Some(super::console::InProcessConsole::start(
                super::console::InProcessSetup {
                    gate: &running,
                    bus: &bus,
                    store: console_store,
                    policy_path: paths.config.clone(),
                    state_dir: paths.state_dir.clone(),
                    clock: console_clock,
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
        tokio::pin!(console_done);
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    r.context("cannot wait for Ctrl-C")?;
                    break;
                }
                r = &mut console_done => {
                    r?;
                    break;
                }
                Some(reload) = reloads.recv() => apply_reload(&running, &services, reload),
            }
        }
        if let Some(c) = console {
            c.stop();
        }
        eprintln!("stopping: finishing in-flight requests and flushing the audit log");
        services.stop().await;
        running.shutdown().await;
        Ok(())
    })
}

/// Swap in a changed policy file, or keep the last good one and say why.
fn apply_reload(
    running: &gate::RunningGate,
    services: &crate::services::Services,
    reload: crate::config::watch::Reload,
) {
    use crate::config::watch::Reload;
    match reload {
        Reload::Loaded(cfg) => match crate::policy::compile(&cfg.file) {
            Ok(policies) => {
                running.reload_policies(policies);
                services.detect.set_expected_countries(
                    crate::detect::ExpectedCountries::from_policy(&cfg.file),
                );
                eprintln!("policy file reloaded ({} apps)", cfg.file.app.len());
            }
            Err(e) => eprintln!("policy file change rejected, keeping the last good policy: {e}"),
        },
        Reload::Rejected(e) => {
            eprintln!("policy file change rejected, keeping the last good policy: {e}");
            for f in e.findings() {
                eprintln!("  {f}");
            }
        }
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
    let mut msg = e.to_string();
    for f in e.findings() {
        msg.push_str(&format!("\n  {f}"));
    }
    Failure::bad_input(msg)
}

/// Gate options (with the TLS source when `tls_listen` is set) and compiled policies.
pub(crate) fn gate_setup(
    paths: &Paths,
    loaded: &LoadedConfig,
    store: &Arc<Store>,
) -> Result<(GateOptions, crate::policy::PolicySet)> {
    let config = paths.config.display();
    let policies = crate::policy::compile(&loaded.file)
        .map_err(|e| Failure::bad_input(format!("{config}: {e}")))?;
    let mut opts = GateOptions::from_file(&loaded.file, &paths.state_dir)
        .map_err(|e| Failure::bad_input(format!("{config}: [gate] {e}")))?;
    if opts.tls_listen.is_some() {
        let g = &loaded.file.gate;
        let files = match (&g.tls_cert, &g.tls_key) {
            (Some(c), Some(k)) => Some((paths.in_state_dir(c), paths.in_state_dir(k))),
            (None, None) => None,
            _ => {
                return Err(Failure::bad_input(format!(
                    "{config}: [gate] set both tls_cert and tls_key, or neither (a certificate is then issued by the local CA)"
                )));
            }
        };
        let hostnames: Vec<String> = policies
            .apps
            .iter()
            .flat_map(|a| a.hostnames.clone())
            .collect();
        let source =
            StoreTlsSource::new(store.clone(), files, &hostnames).map_err(Failure::refused)?;
        opts.tls = Some(Arc::new(source));
    }
    Ok((opts, policies))
}
