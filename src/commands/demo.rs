//! `botgate demo`: everything on a temporary state dir. `--headless` runs the scenario for
//! `--duration` seconds (default 30) and prints a plain-text summary; otherwise the console opens
//! on the in-process bus. Ctrl-C stops cleanly and removes the temp dir either way.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::DemoArgs;
use crate::demo::{self, DemoOptions, RunningDemo};
use crate::paths::Paths;

/// Headless runs stop after this long unless `--duration` says otherwise.
const DEFAULT_HEADLESS_SECS: u64 = 30;

pub fn run(_paths: &Paths, args: DemoArgs) -> Result<()> {
    if !args.headless {
        super::console::InProcessConsole::require_terminal(
            "use `botgate demo --headless` in scripts and CI",
        )?;
    }
    // The demo never touches the user's state dir or policy file: it builds its own.
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let mut opts = demo_options();
        opts.rate_multiplier = args.rate_multiplier;
        let demo = demo::start(opts)
            .await
            .context("cannot start the demo")?;
        eprintln!(
            "botgate demo: gate on http://{} (apps api.demo.local, status.demo.local, devices.demo.local), state dir {}",
            demo.gate().addr,
            demo.state_dir().display()
        );
        if let Some(admin) = demo.gate().admin_addr {
            eprintln!("metrics on http://{admin}/metrics, events on http://{admin}/events");
        }
        if let Some(siem) = demo.siem() {
            eprintln!("local SIEM endpoint: alerts delivered by the sink on {}", siem.alerts_url());
        }
        for w in demo.warnings() {
            eprintln!("warning: {w}");
        }
        let ended = if args.headless {
            let secs = args.duration.unwrap_or(DEFAULT_HEADLESS_SECS);
            eprintln!("running headless for {secs} s; Ctrl-C stops early");
            run_for(Some(Duration::from_secs(secs))).await
        } else {
            open_console(&demo, &args).await
        };
        eprintln!("stopping: bots, gate (flushing the audit log), upstream; removing the state dir");
        let summary = demo.stop().await;
        print!("{summary}");
        ended
    })
}

/// The full demo: the device fleet on mTLS and the detectors (tuned for a short demo) beside
/// the gate.
pub(crate) fn demo_options() -> DemoOptions {
    let detect: crate::demo::hooks::ServiceStarter =
        Box::new(|ctx: &crate::demo::hooks::DemoContext<'_>| {
            let file = crate::config::load(ctx.policy_path)
                .map_err(|e| e.to_string())?
                .file;
            let opts = crate::services::ServiceOptions {
                detect: crate::detect::DetectConfig::demo(),
                expected_countries: crate::detect::ExpectedCountries::from_policy(&file),
                // The local SIEM endpoint gets every event, as a real webhook SIEM would.
                sinks: ctx
                    .siem_ingest_url
                    .iter()
                    .map(|url| {
                        let mut sink = crate::sink::SinkConfig::new(
                            "demo-siem",
                            url,
                            crate::sink::SinkFormat::Ndjson,
                        );
                        sink.flush_interval_ms = crate::demo::DEMO_SINK_FLUSH_MS;
                        sink.retry_initial_ms = 100;
                        sink.retry_max_ms = 1_000;
                        sink
                    })
                    .collect(),
                tick_every: std::time::Duration::from_secs(1),
                inventory_dirs: Vec::new(),
            };
            let s = crate::services::start(
                opts,
                ctx.gate,
                ctx.bus,
                ctx.store.clone(),
                ctx.clock.clone(),
                ctx.state_dir,
            )?;
            Ok(Box::new(s) as Box<dyn crate::demo::hooks::DemoService>)
        });
    DemoOptions {
        pki: Some(std::sync::Arc::new(crate::demo::pki::LocalPki)),
        services: vec![detect],
        siem: true,
        ..DemoOptions::default()
    }
}

/// The console on the demo's in-process bus until the user quits (or `--duration` passes).
async fn open_console(demo: &RunningDemo, args: &DemoArgs) -> Result<()> {
    use super::console::{InProcessConsole, InProcessSetup};
    let console = InProcessConsole::start(InProcessSetup {
        gate: demo.gate(),
        bus: demo.bus(),
        store: demo.store().clone(),
        policy_path: demo.policy_path().to_path_buf(),
        state_dir: demo.state_dir().to_path_buf(),
        clock: demo.clock().clone(),
        source: "demo · in-process bus",
        theme: args.theme.clone(),
        read_only: false,
        // Seconds, not the production hour: the demo shows a whole rotation in a minute.
        quiet_period: chrono::Duration::seconds(10),
        extra_endpoints: demo
            .siem()
            .iter()
            .map(|s| format!("siem {}", s.alerts_url()))
            .collect(),
    })?;
    if let Some(secs) = args.duration {
        let tx = console.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let _ = tx.send(crate::console::Msg::Quit).await;
        });
    }
    // The demo's deployment pipeline hands rotated credentials to the bots.
    let pipeline = tokio::spawn(crate::demo::rollout::run(
        demo.store().clone(),
        demo.state_dir().join("secrets"),
        demo.state_dir().join("rotations"),
        demo.credential_files().clone(),
    ));
    let (reload_tx, mut reloads) = tokio::sync::mpsc::channel(4);
    let _watch = crate::config::watch::watch(demo.policy_path().to_path_buf(), reload_tx)?;
    let mut console = console;
    // The gate hot-reloads the demo policy file, as `serve` does (rotations edit it).
    let result = loop {
        tokio::select! {
            r = &mut console.run => break r,
            Some(reload) = reloads.recv() => {
                if matches!(reload, crate::config::watch::Reload::Loaded(_)) && let Err(e) = demo.reload_policy_file() {
                    tracing::warn!(error = %e, "demo policy reload failed");
                }
            }
        }
    };
    console.stop();
    pipeline.abort();
    Ok(result?)
}

/// Wait for `limit` (forever if `None`) or Ctrl-C, whichever comes first.
async fn run_for(limit: Option<Duration>) -> Result<()> {
    let timer = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => Ok(()),
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
    }
}
