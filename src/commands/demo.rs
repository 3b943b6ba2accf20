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
    // The demo never touches the user's state dir or policy file: it builds its own.
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let demo = demo::start(DemoOptions::default())
            .await
            .context("cannot start the demo")?;
        eprintln!(
            "botgate demo: gate on http://{} (apps api.demo.local, status.demo.local, devices.demo.local), state dir {}",
            demo.gate().addr,
            demo.state_dir().display()
        );
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

/// Integration point for the console: run it on `demo` (its `bus`, `store`, `gate`,
/// `policy_path`, `credential_files`) until the user quits or `args.duration` passes.
/// Until `console/` is merged this says so and runs like `--headless` until Ctrl-C.
async fn open_console(_demo: &RunningDemo, args: &DemoArgs) -> Result<()> {
    eprintln!(
        "the console is not part of this build yet: running without it until Ctrl-C{} (use --headless for a timed run)",
        args.duration
            .map(|s| format!(" or {s} s"))
            .unwrap_or_default()
    );
    run_for(args.duration.map(Duration::from_secs)).await
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
