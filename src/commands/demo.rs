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
    if !args.headless && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(crate::exit::Failure::bad_input(
            "the console needs a terminal; use `botgate demo --headless` in scripts and CI",
        ));
    }
    // The demo never touches the user's state dir or policy file: it builds its own.
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let demo = demo::start(demo_options())
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
                sinks: Vec::new(),
                tick_every: std::time::Duration::from_secs(1),
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
        ..DemoOptions::default()
    }
}

/// The console on the demo's in-process bus until the user quits (or `--duration` passes).
async fn open_console(demo: &RunningDemo, args: &DemoArgs) -> Result<()> {
    use crate::console::{self, ConsoleOptions, HeaderInfo, Msg, feed, theme};
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = theme::Theme::resolve(
        args.theme.as_deref(),
        no_color,
        theme::user_themes_dir().as_deref(),
    )
    .map_err(|e| crate::exit::Failure::bad_input(e.to_string()))?;
    let (tx, rx) = feed::channel();
    let bridge = feed::spawn_bus_bridge(demo.bus(), tx.clone());
    let inventory = feed::spawn_inventory(
        demo.store().clone(),
        Some(demo.policy_path().to_path_buf()),
        tx.clone(),
        feed::INVENTORY_EVERY,
    );
    if let Some(secs) = args.duration {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let _ = tx.send(Msg::Quit).await;
        });
    }
    let mut listen = vec![format!("http://{}", demo.gate().addr)];
    if let Some(tls) = demo.gate().tls_addr {
        listen.push(format!("https://{tls}"));
    }
    if let Some(admin) = demo.gate().admin_addr {
        listen.push(format!("admin http://{admin}/metrics"));
    }
    let secrets = demo.state_dir().join("secrets");
    let mut opts = ConsoleOptions::new(theme);
    opts.clock = demo.clock().clone();
    opts.header = HeaderInfo {
        listen,
        source: "demo · in-process bus".into(),
        read_only: false,
    };
    opts.actions = Some(console::ActionContext {
        store: demo.store().clone(),
        policy_file: demo.policy_path().to_path_buf(),
        state_dir: demo.state_dir().to_path_buf(),
        secret_dir: secrets.clone(),
    });
    // Seconds, not the production hour: the demo shows a whole rotation in a minute.
    opts.rotation_quiet_period = chrono::Duration::seconds(10);
    let rotations = feed::spawn_rotations(
        demo.store().clone(),
        opts.clock.clone(),
        tx.clone(),
        feed::ROTATIONS_EVERY,
    );
    let pipeline = tokio::spawn(crate::demo::rollout::run(
        demo.store().clone(),
        secrets,
        demo.state_dir().join("rotations"),
        demo.credential_files().clone(),
    ));
    let (reload_tx, mut reloads) = tokio::sync::mpsc::channel(4);
    let _watch = crate::config::watch::watch(demo.policy_path().to_path_buf(), reload_tx)?;
    let console = console::run(opts, rx);
    tokio::pin!(console);
    // The gate hot-reloads the demo policy file, as `serve` does (rotations edit it).
    let result = loop {
        tokio::select! {
            r = &mut console => break r,
            Some(reload) = reloads.recv() => {
                if matches!(reload, crate::config::watch::Reload::Loaded(_)) && let Err(e) = demo.reload_policy_file() {
                    tracing::warn!(error = %e, "demo policy reload failed");
                }
            }
        }
    };
    bridge.task.abort();
    inventory.abort();
    rotations.abort();
    pipeline.abort();
    result.map_err(|e| match e {
        console::ConsoleError::NotATerminal => crate::exit::Failure::bad_input(
            "the console needs a terminal; use `botgate demo --headless` in scripts and CI",
        ),
        other => anyhow::Error::new(other),
    })
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
