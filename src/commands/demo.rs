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

/// The full demo: the device fleet on mTLS and the local SIEM endpoint beside the runtime.
pub(crate) fn demo_options() -> DemoOptions {
    DemoOptions {
        mtls: true,
        siem: true,
        ..DemoOptions::default()
    }
}

/// The console on the demo's in-process bus until the user quits (or `--duration` passes).
async fn open_console(demo: &RunningDemo, args: &DemoArgs) -> Result<()> {
    use super::console::{InProcessConsole, InProcessSetup};
    let console = InProcessConsole::start(InProcessSetup {
        runtime: demo.runtime(),
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
    // The runtime hot-reloads the demo policy file, as `serve` does (rotations edit it).
    let mut console = console;
    let result = (&mut console.run).await;
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
