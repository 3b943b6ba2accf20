//! `botgate console [--log FILE] [--since DURATION | --all] [--ring N] [--theme NAME]
//! [--read-only]`: open the ops console on a JSONL audit log written by another process
//! (default: the gate's log in the state dir), reading its last 4 MiB, the time since
//! DURATION ago, or all of it before following. The
//! inventory comes from its own hub on the store (`store::hub`); the policy file is re-read
//! every 2 s (with its `[[oidc_issuer]]`s and their state files) and rotations every 1 s, off
//! the UI task. Unless `--read-only`, the rotation
//! wizard acts on the state dir's store and policy file; new token secrets go to
//! `<state dir>/secrets/<name>.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::audit::tail::{StartAt, TailOptions};
use crate::cli::ConsoleArgs;
use crate::config::model::PolicyFile;
use crate::console::rebind;
use crate::console::settings::{self, ColumnChoices, NamedFilters};
use crate::console::theme::{Theme, catalogue, user_themes_dir};
use crate::console::{self, ActionContext, ConsoleOptions, HeaderInfo, feed, issuer_feed};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::store::hub::InventoryHub;

/// Run the console verb.
pub fn run(paths: &Paths, args: ConsoleArgs) -> Result<()> {
    let theme = resolve_theme(args.theme.as_deref())?;
    let policy = read_policy(&paths.config);
    let log = match &args.log {
        Some(p) if !p.exists() => {
            return Err(Failure::bad_input(format!(
                "{}: no such file; pass the gate's audit log (default {})",
                p.display(),
                default_log(paths, policy.as_ref()).display()
            )));
        }
        Some(p) => p.clone(),
        None => default_log(paths, policy.as_ref()),
    };
    let store = Arc::new(
        paths
            .open_store()
            .with_context(|| format!("opening the {}", paths.store_name()))?,
    );
    let mut opts = ConsoleOptions::new(theme);
    opts.header = HeaderInfo {
        listen: listen_addresses(policy.as_ref()),
        source: match args.attach.as_slice() {
            [] => format!("tail {}", log.display()),
            [url] => format!("attach {url}"),
            urls => format!("attach {} gates", urls.len()),
        },
        history: args.attach.is_empty().then(|| history_label(&args)),
        read_only: args.read_only,
    };
    if let Some(n) = args.ring {
        // clap bounds N (1..=100M), which fits a usize on every target we build for.
        opts.limits.ring_capacity = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let tail_opts = TailOptions {
        start: match (args.since, args.all) {
            (Some(d), _) => StartAt::Since(opts.clock.now() - d),
            (None, true) => StartAt::Beginning,
            (None, false) => TailOptions::default().start,
        },
        ..TailOptions::default()
    };
    if !args.read_only {
        opts.actions = Some(ActionContext {
            store: store.clone(),
            policy_file: paths.config.clone(),
            state_dir: paths.state_dir.clone(),
            secret_dir: paths.state_dir.join("secrets"),
        });
    }
    opts.latency_report = latency_report();
    opts.themes = catalogue(user_themes_dir().as_deref());
    load_settings(&mut opts)?;
    let clock = opts.clock.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        let (tx, rx) = feed::channel();
        // Events from a running gate's /events, or from its audit log file.
        let (tail, sse) = match args.attach.as_slice() {
            [] => {
                if !log.exists() {
                    let _ = tx
                        .send(console::Msg::Notice(format!(
                            "waiting for {}",
                            log.display()
                        )))
                        .await;
                }
                let total = std::fs::metadata(&log).map_or(0, |m| m.len());
                let tail = feed::spawn_tail(&log, tail_opts, tx.clone())
                    .with_context(|| format!("following {}", log.display()))?;
                feed::spawn_load_progress(tail.stats.clone(), total, tx.clone());
                (Some(tail), Vec::new())
            }
            // Several gates: one stream each, merged into the one event feed.
            urls => (
                None,
                urls.iter()
                    .map(|url| feed::spawn_sse(url.clone(), tx.clone()))
                    .collect(),
            ),
        };
        let rotations = feed::spawn_rotations(
            store.clone(),
            clock.clone(),
            tx.clone(),
            feed::ROTATIONS_EVERY,
        );
        let issuers = issuer_feed::spawn_issuers(
            issuer_feed::IssuerSource::Files {
                policy: paths.config.clone(),
                state_dir: paths.state_dir.clone(),
            },
            clock,
            tx.clone(),
            issuer_feed::ISSUERS_EVERY,
        );
        let hub = InventoryHub::start((*store).clone())
            .with_context(|| format!("reading the {}", store.describe()))?;
        let inventory = feed::spawn_inventory(
            hub.subscribe(),
            feed::PolicySource::File(paths.config.clone()),
            tx,
            feed::INVENTORY_EVERY,
        );
        let result = console::run(opts, rx).await;
        inventory.abort();
        rotations.abort();
        issuers.abort();
        drop(tail);
        for stream in sse {
            stream.abort();
        }
        result.map_err(anyhow::Error::from)
    });
    // The tail thread and a blocking inventory read stop on their own within a poll interval.
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// What the header says about the history read: `last 4 MiB`, `since 2h`, `from the start`.
fn history_label(args: &ConsoleArgs) -> String {
    match (args.since, args.all, TailOptions::default().start) {
        (Some(d), _, _) => format!("since {}", whole_unit(d)),
        (None, true, _) => "from the start".into(),
        (None, false, StartAt::LastBytes(n)) => format!("last {} MiB", n / (1024 * 1024)),
        (None, false, _) => "recent".into(),
    }
}

/// `2h`, `90m`, `1d`: the largest unit that divides `d` (as `--since` was given).
fn whole_unit(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match () {
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// The config dir's files (named filters, key bindings, columns): read before the terminal is taken,
/// so a broken one is an error naming its file and line, not a console that silently forgot
/// them.
fn load_settings(opts: &mut ConsoleOptions) -> Result<()> {
    opts.config_dir = settings::config_dir();
    if let Some(dir) = &opts.config_dir {
        let bad = |e: &dyn std::fmt::Display| Failure::bad_input(e.to_string());
        opts.saved_filters = NamedFilters::load(dir).map_err(|e| bad(&e))?;
        opts.keymap = rebind::load(dir).map_err(|e| bad(&e))?;
        opts.columns = ColumnChoices::load(dir).map_err(|e| bad(&e))?;
    }
    Ok(())
}

/// `--theme` / `BOTGATE_THEME`, else `NO_COLOR` → mono, else dark.
fn resolve_theme(requested: Option<&str>) -> Result<Theme> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Theme::resolve(requested, no_color, user_themes_dir().as_deref())
        .map_err(|e| Failure::bad_input(e.to_string()))
}

/// `BOTGATE_CONSOLE_LATENCY=FILE`: measure key-to-draw latency and write it to FILE on exit.
fn latency_report() -> Option<PathBuf> {
    std::env::var_os("BOTGATE_CONSOLE_LATENCY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The policy file if it exists and is valid (the console shows reload errors itself).
fn read_policy(path: &Path) -> Option<PolicyFile> {
    crate::config::load(path).ok().map(|c| c.file)
}

fn default_log(paths: &Paths, policy: Option<&PolicyFile>) -> PathBuf {
    let rel = policy
        .map(|p| p.gate.audit_log.clone())
        .unwrap_or_else(|| PathBuf::from("audit.jsonl"));
    paths.in_state_dir(&rel)
}

fn listen_addresses(policy: Option<&PolicyFile>) -> Vec<String> {
    let Some(p) = policy else { return Vec::new() };
    let mut out = vec![format!("http://{}", p.gate.listen.get_ref())];
    if let Some(tls) = &p.gate.tls_listen {
        out.push(format!("https://{}", tls.get_ref()));
    }
    out
}

/// A console on an in-process bus (`demo`, `serve --console`): the feeds run as tasks; the
/// caller drives `run` (alongside its own work, e.g. policy reloads) and then calls `stop`.
pub(crate) struct InProcessConsole {
    pub run: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), console::ConsoleError>> + Send>,
    >,
    pub tx: tokio::sync::mpsc::Sender<console::Msg>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What an in-process console shows and may act on.
pub(crate) struct InProcessSetup<'a> {
    pub runtime: &'a crate::runtime::Runtime,
    pub source: &'static str,
    pub theme: Option<String>,
    pub read_only: bool,
    pub quiet_period: chrono::Duration,
    /// More endpoints for the header, e.g. the demo's local SIEM (`"siem http://…/alerts"`).
    pub extra_endpoints: Vec<String>,
}

impl InProcessConsole {
    /// Refuse early (before starting anything) when stdout is not a terminal.
    pub fn require_terminal(hint: &str) -> Result<()> {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Ok(())
        } else {
            Err(Failure::bad_input(format!(
                "the console needs a terminal; {hint}"
            )))
        }
    }

    pub fn start(s: InProcessSetup<'_>) -> Result<Self> {
        let theme = resolve_theme(s.theme.as_deref())?;
        let rt = s.runtime;
        let (store, clock) = (rt.store.clone(), rt.clock.clone());
        let (policy_path, state_dir) = (rt.policy_path.clone(), rt.state_dir.clone());
        let (tx, rx) = feed::channel();
        let bridge = feed::spawn_bus_bridge(&rt.bus, tx.clone());
        let mut tasks = vec![
            bridge.task,
            feed::spawn_inventory(
                rt.hub.subscribe(),
                feed::PolicySource::Live(rt.live.clone()),
                tx.clone(),
                feed::INVENTORY_EVERY,
            ),
        ];
        let mut listen = vec![format!("http://{}", rt.gate.addr)];
        listen.extend(rt.gate.tls_addr.map(|a| format!("https://{a}")));
        listen.extend(
            rt.gate
                .admin_addr
                .map(|a| format!("admin http://{a}/metrics")),
        );
        listen.extend(s.extra_endpoints);
        let mut opts = ConsoleOptions::new(theme);
        opts.clock = clock.clone();
        opts.header = HeaderInfo {
            listen,
            source: s.source.into(),
            history: None,
            read_only: s.read_only,
        };
        if !s.read_only {
            opts.actions = Some(ActionContext {
                store: store.clone(),
                policy_file: policy_path.clone(),
                state_dir: state_dir.clone(),
                secret_dir: state_dir.join("secrets"),
            });
        }
        opts.rotation_quiet_period = s.quiet_period;
        opts.latency_report = latency_report();
        opts.themes = catalogue(user_themes_dir().as_deref());
        load_settings(&mut opts)?;
        tasks.push(feed::spawn_rotations(
            store,
            clock.clone(),
            tx.clone(),
            feed::ROTATIONS_EVERY,
        ));
        tasks.push(issuer_feed::spawn_issuers(
            issuer_feed::IssuerSource::Live(rt.gate.state.oidc.clone()),
            clock,
            tx.clone(),
            issuer_feed::ISSUERS_EVERY,
        ));
        Ok(Self {
            run: Box::pin(console::run(opts, rx)),
            tx,
            tasks,
        })
    }

    /// Stop the feeds.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
